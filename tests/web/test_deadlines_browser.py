"""Issue 15 in headless Chromium: the stage's due date and its overdue flag on the reviewer's queue, the
batch page's deadlines, stragglers and escalation after the daily escalation run; an officer rejecting an
immediate-mode application on the spot; the clinic's renewal worklist and the application list sorted by due
date. Screenshots go to test-artifacts/screenshots/ (issue15-deadline-*.png)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.utils import timezone

from enrollment import services
from enrollment.models import State
from enrollment.periods import period_key
from reviews import services as review_services
from reviews.models import Escalation, ReviewItem, ReviewTimeLimit
from tests.web.conftest import diagnose, file_application
from tests.web.test_e2e import Page, browser, pytestmark  # noqa: F401 - the fixture and the markers

__all__ = ["browser", "pytestmark"]


def test_overdue_item_flagged_on_queue_and_batch_page_after_escalation(world: Any, live_server: Any, browser: Any):
    # The promised days of a whole application (seeded by a migration; a live-server test before this one may
    # have flushed the table).
    ReviewTimeLimit.objects.get_or_create(
        region=None, disease_type=world.hypertension.disease_type, stage="", defaults={"working_days": 15}
    )
    application = diagnose(world, file_application(world))
    batch = review_services.batch_assemble(
        region_id=world.region.pk,
        period=period_key(timezone.localdate()),
        actor=services.get_system_user(),
        cutoff=timezone.now(),
    )
    item = ReviewItem.objects.get(application=application)
    # The stage's promised date has passed (set directly: the clock of the live server is the real one).
    ReviewItem.objects.filter(pk=item.pk).update(due_on=timezone.localdate() - dt.timedelta(days=3))
    result = review_services.escalate_overdue(actor=services.get_system_user())
    assert Escalation.objects.filter(item=item).count() == 1 and result is not None

    page = Page(browser, live_server.url)
    page.login(world.reviewer)
    page.open("/reviews/queue/")
    page.find("#claim-next").click()
    page.wait_for("#claimed-items tr[data-item]")
    due = page.find(f"#claimed-items tr[data-item='{item.pk}'] [data-testid=due]")
    assert "error" in due.get_attribute("class")
    page.shot("issue15-deadline-queue-overdue")

    page.open(f"/reviews/batches/{batch.pk}/")
    page.wait_for("#stragglers")
    straggler = page.find(f"#stragglers tr[data-item='{item.pk}']")
    assert str(application.pk) in straggler.text
    deadlines = page.find("#deadlines tbody tr").text.split()
    assert deadlines[-4:-1] == ["1", "1", "1"]  # waiting, overdue, escalated at the first stage
    page.shot("issue15-deadline-batch-stragglers")

    page.open(f"/applications/{application.pk}/")
    page.wait_for("[data-testid=due-on]")
    page.shot("issue15-deadline-application-due")


def test_officer_rejects_an_immediate_mode_application_on_the_spot(world: Any, live_server: Any, browser: Any):
    application = diagnose(world, file_application(world, disease=world.dialysis), icd10="N18.5")
    page = Page(browser, live_server.url)
    page.login(world.officer)
    page.open(f"/applications/{application.pk}/")
    page.wait_for("#actions")
    summary = next(
        s
        for s in browser.find_elements("css selector", "#actions details summary")
        if "reject_immediately"
        in s.find_element("xpath", "..").find_element("css selector", "form").get_attribute("action")
    )
    summary.click()
    form = summary.find_element("xpath", "..").find_element("css selector", "form")
    from selenium.webdriver.support.ui import Select

    Select(form.find_element("css selector", "select")).select_by_index(1)
    form.find_element("css selector", "textarea").send_keys('透析记录不全 =HYPERLINK("x")')
    form.find_element("css selector", "input[type=checkbox]").click()
    page.shot("issue15-deadline-immediate-reject-form")
    form.find_element("css selector", "button[type=submit]").click()
    page.wait_for("[data-testid=state]", "未通过")
    application.refresh_from_db()
    assert application.state == State.REJECTED
    assert application.decision_reason.startswith("透析记录不全")
    page.shot("issue15-deadline-immediate-rejected")


def test_renewal_worklist_and_list_sorted_by_due_date(world: Any, live_server: Any, browser: Any):
    first = diagnose(world, file_application(world))
    second = diagnose(world, file_application(world))
    review_services.batch_assemble(
        region_id=world.region.pk,
        period=period_key(timezone.localdate()),
        actor=services.get_system_user(),
        cutoff=timezone.now(),
    )
    today = timezone.localdate()
    ReviewItem.objects.filter(application=first).update(due_on=today + dt.timedelta(days=9))
    ReviewItem.objects.filter(application=second).update(due_on=today + dt.timedelta(days=2))
    page = Page(browser, live_server.url)
    page.login(world.clerk)
    page.open("/applications/?o=due")
    page.wait_for("[data-testid=list-count]")
    rows = [r.get_attribute("data-application") for r in browser.find_elements("css selector", "tr[data-application]")]
    assert rows.index(str(second.pk)) < rows.index(str(first.pk))
    page.shot("issue15-deadline-list-by-due")
    page.open("/applications/renewals/")
    page.wait_for("#renewal-worklist")
    assert page.find("#renewal-filters") is not None
    assert page.find("[data-testid=list-count]").text == "0"  # nothing of this clinic is due for renewal yet
    page.shot("issue15-deadline-renewal-worklist")
