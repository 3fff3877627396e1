"""Issue 15 in headless Chromium: a centre officer assembles a batch from the web; a reviewer returns an
application for 补正 with a checklist; the clinic sees the request on its home page and resubmits.

Screenshots go to test-artifacts/screenshots/ (issue15-*.png) like the other browser tests'.
"""

from __future__ import annotations

from typing import Any

from enrollment.models import Application, State
from reviews.models import ReviewBatch, SupplementRequest, SupplementState
from tests.web.conftest import diagnose, file_application
from tests.web.test_e2e import Page, browser, pytestmark  # noqa: F401 - the fixture and the markers

__all__ = ["browser", "pytestmark"]


def test_officer_assembles_reviewer_requests_supplements_clinic_resubmits(world: Any, live_server: Any, browser: Any):
    application = diagnose(world, file_application(world))
    page = Page(browser, live_server.url)

    # 1. The centre officer assembles the region's batch from the batch list, with the confirmation tick.
    page.login(world.officer)
    page.open("/reviews/batches/")
    page.wait_for("#assemble-batch")
    page.select("#id_region", str(world.region.pk))
    page.find("#id_confirm").click()
    page.shot("issue15-assemble-form")
    page.find("#assemble-batch").click()
    page.wait_for("#stragglers")
    page.shot("issue15-batch-page")
    batch = ReviewBatch.objects.get(region=world.region)
    assert batch.item_count == 1
    assert Application.objects.get(pk=application.pk).state == State.IN_REVIEW
    page.logout()

    # 2. The reviewer claims it and returns it with a 补正 checklist and a note.
    page.login(world.reviewer)
    page.open("/reviews/queue/")
    page.find("#claim-next").click()
    page.wait_for("#claimed-items tr[data-item]")
    # The sticky decision bar may cover the row: tick it the way a keyboard user would.
    browser.execute_script("arguments[0].click()", page.find("#claimed-items input[name=items]"))
    page.select("#id_decision", "return")
    browser.execute_script("arguments[0].click()", page.find("input[name=supplement_codes][value=unclear_scan]"))
    page.find("#id_reason").send_keys("请重新扫描诊断证明")
    page.shot("issue15-return-for-supplements")
    page.find("#decide-selected").click()
    page.wait_for("#claim-next")
    assert Application.objects.get(pk=application.pk).state == State.RETURNED
    page.logout()

    # 3. The clinic sees the request on its home page, in plain words, and resubmits.
    page.login(world.clerk)
    page.open("/")
    block = page.wait_for("[data-testid=supplement-requests]")
    assert "请重新扫描诊断证明" in block.text and "unclear_scan" not in block.text
    page.shot("issue15-clinic-home-supplements")
    page.find(f"[data-testid=supplement-requests] a[href='/applications/{application.pk}/']").click()
    page.wait_for("[data-testid=supplement-open]")
    browser.execute_script("document.querySelector(\"form[action$='/resubmit/']\").closest('details').open = true")
    page.find("#id_resubmit-note").send_keys("已重新扫描")
    page.find("#id_resubmit-confirm").click()
    page.find("button[value=resubmit]").click()
    page.wait_for("[data-testid=state]", "已")
    page.shot("issue15-resubmitted")
    assert Application.objects.get(pk=application.pk).state == State.DIAGNOSED
    assert SupplementRequest.objects.get(application=application).state == SupplementState.ANSWERED
