"""Oversight in headless Chromium: an officer publishes a batch's approved list (公示), the public page shows it
masked, an objection holds an entry; a reviewer works the sample re-check queue (pass, then fail → termination).

Screenshots under test-artifacts/screenshots/ (oversight-*.png).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone

from enrollment.models import Application, State
from enrollment.periods import period_key
from enrollment.services import get_system_user
from oversight import services as oversight_services
from oversight.models import NoticeEntry, RecheckRate, RecheckSample
from reviews import services as review_services
from tests.oversight.helpers import first_reviewer
from tests.reviews.helpers import claim_and_decide, diagnosed, item_of
from tests.web.test_e2e import CHROMEDRIVER, CHROMIUM, Page, browser  # noqa: F401 - the browser fixture

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not (CHROMEDRIVER and CHROMIUM),
        reason="needs Debian's chromium and chromium-driver: `make test` installs them",
    ),
]


def _approved_batch(world: Any) -> tuple[Any, list[Application]]:
    earlier = timezone.now() - dt.timedelta(days=2)
    people = [world.person(name=name) for name in ("张三丰", "李四")]
    applications = [diagnosed(world, person=person, at=earlier) for person in people]
    batch = review_services.batch_assemble(
        region_id=world.region.pk,
        period=period_key(timezone.localdate()),
        actor=get_system_user(),
        cutoff=timezone.now(),
    )
    first = first_reviewer(world)
    for application in applications:
        claim_and_decide(item_of(application), first)
    return batch, [Application.objects.select_related("person").get(pk=a.pk) for a in applications]


def test_notice_objection_and_recheck_queue(world: Any, live_server: Any, browser: Any) -> None:  # noqa: F811
    page = Page(browser, live_server.url)
    batch, applications = _approved_batch(world)

    # 1. The officer publishes the batch's approved list.
    page.login(world.officer)
    page.find("[data-testid=nav-notices]").click()
    page.wait_for("[data-testid=publishable-batch]")
    page.shot("oversight-01-notices")
    page.find("[data-testid=publish]").click()
    page.wait_for("[data-testid=entry]")
    page.shot("oversight-02-notice-detail")
    public_url = page.find("[data-testid=public-link]").get_attribute("href")

    # 2. The public page (no login needed) shows the masked list only.
    page.open(public_url.replace(live_server.url, ""))
    page.wait_for("[data-testid=public-entry]")
    html = browser.page_source
    assert "张*丰" in html and "李*" in html
    for application in applications:
        assert application.person.name not in html and application.person.id_number not in html
        assert application.person.masked_id_number in html
    page.shot("oversight-03-public-notice")

    # 3. An objection received by phone holds entry 1.
    page.open(f"/oversight/notices/{batch.public_notice.pk}/")
    page.wait_for("#objection-form")
    page.select("#id_channel", "phone")
    page.find("#id_text").send_keys("来电反映：此人已迁出本省")
    page.find("#id_contact").send_keys("13900001111")
    page.find("#objection-form button[type=submit]").click()
    page.wait_for("tr[data-testid=entry][data-held='1']")
    page.shot("oversight-04-objection-recorded")
    page.open(public_url.replace(live_server.url, ""))
    page.wait_for("[data-testid=public-status]", "核实中")
    assert "13900001111" not in browser.page_source and "迁出本省" not in browser.page_source
    page.shot("oversight-05-public-held")
    assert NoticeEntry.objects.get(number=1).held
    page.open("/")
    page.logout()

    # 4. The draw puts both approvals in the re-check queue; the region's reviewer passes one and fails one.
    RecheckRate.objects.create(region=world.region, percent=Decimal(100))
    oversight_services.recheck_draw(
        region_id=world.region.pk, period=period_key(timezone.localdate()), actor=get_system_user()
    )
    assert RecheckSample.objects.count() == 2
    page.login(world.reviewer)
    page.find("[data-testid=nav-rechecks]").click()
    page.wait_for("[data-testid=recheck-row][data-state=pending]")
    page.shot("oversight-06-recheck-queue")
    first, second = RecheckSample.objects.order_by("id")
    page.open(f"/oversight/rechecks/{first.pk}/")
    page.find("input[name=outcome][value=pass]").click()
    page.find("#id_reason").send_keys("材料齐全，诊断依据充分")
    page.shot("oversight-07-recheck-form")
    page.find("#recheck-result button[type=submit]").click()
    page.wait_for(".messages li")
    page.open(f"/oversight/rechecks/{second.pk}/")
    page.find("input[name=outcome][value=fail]").click()
    page.find("#id_reason").send_keys("诊断证明与病种不符")  # no termination reason to pick: recheck_failed
    page.find("#recheck-result button[type=submit]").click()
    page.wait_for(".messages li")
    page.open("/oversight/rechecks/?state=all")
    page.wait_for("[data-testid=recheck-row][data-state=failed]")
    page.shot("oversight-08-recheck-done")
    failed = Application.objects.get(pk=second.application_id)
    assert (failed.state, failed.termination_reason) == (State.TERMINATED, "recheck_failed")
    assert Application.objects.get(pk=first.application_id).state == State.APPROVED

    # 5. Narrow screen: the public list stays readable at 375 px.
    browser.set_window_size(375, 800)
    page.open(public_url.replace(live_server.url, ""))
    page.wait_for("[data-testid=public-entry]")
    page.shot("oversight-09-public-narrow")


def test_recheck_return_answered_by_the_clinic(world: Any, live_server: Any, browser: Any, tmp_path: Any) -> None:  # noqa: F811
    """A reviewer returns a failed re-check to the clinic (the enrollment keeps covering); the clerk sees it on the
    home page and answers with a document; the sample is back in the queue and passes."""
    from oversight.models import CorrectionRequest
    from tests.conftest import PDF_BYTES

    page = Page(browser, live_server.url)
    _batch, applications = _approved_batch(world)
    RecheckRate.objects.create(region=world.region, percent=Decimal(100))
    oversight_services.recheck_draw(
        region_id=world.region.pk, period=period_key(timezone.localdate()), actor=get_system_user()
    )
    sample = RecheckSample.objects.order_by("id").first()
    assert sample is not None

    # 1. The reviewer fails it and chooses the return, with the checklist and a note.
    page.login(world.reviewer)
    page.open(f"/oversight/rechecks/{sample.pk}/")
    page.find("input[name=outcome][value=fail]").click()
    page.find("#id_reason").send_keys("缺少近三个月检验报告")
    page.find("input[name=correction][value=return]").click()
    page.find("input[name=codes][value=medical_records]").click()
    page.shot("oversight-10-recheck-return")
    page.find("#recheck-result button[type=submit]").click()
    page.wait_for(".messages li")
    assert Application.objects.get(pk=sample.application_id).state == State.APPROVED  # still covering
    page.logout()

    # 2. The clerk sees the request on the home page and answers it with a document.
    report = tmp_path / "检验报告.pdf"
    report.write_bytes(PDF_BYTES)
    page.login(world.clerk)
    page.wait_for("[data-testid=recheck-correction]")
    page.shot("oversight-11-clinic-home-correction")
    page.find("[data-testid=recheck-correction] a.button").click()
    page.wait_for("#correction-answer-form")
    page.find("#id_answer").send_keys("已补充2026年检验报告")
    page.select("#id_doc-0-doc_type", "test_report")
    page.find("#id_doc-0-file").send_keys(str(report))
    page.shot("oversight-12-correction-answer")
    page.find("#submit-correction").click()
    page.wait_for(".messages li")
    request = CorrectionRequest.objects.get(sample=sample)
    assert request.state == "answered" and request.documents.count() == 1
    page.logout()

    # 3. Back in the reviewer's queue: it passes, recorded as corrected.
    page.login(world.reviewer)
    page.open("/oversight/rechecks/")
    page.wait_for("[data-testid=recheck-answered]")
    page.open(f"/oversight/rechecks/{sample.pk}/")
    page.wait_for("[data-testid=correction-answer]")
    page.find("input[name=outcome][value=pass]").click()
    page.find("#recheck-result button[type=submit]").click()
    page.wait_for(".messages li")
    sample.refresh_from_db()
    assert (sample.state, sample.correction) == ("passed", "corrected")
    page.open(f"/oversight/rechecks/{sample.pk}/")
    page.wait_for("[data-testid=recheck-state]")
    page.shot("oversight-13-recheck-corrected")
