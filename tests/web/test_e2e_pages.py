# ruff: noqa: F811 - the browser fixture is imported from test_e2e and requested by name
"""The working pages in headless Chromium (issue 15 items 6–8): lists with shareable links, saved views and
export; the queue's bulk decision error path and outcome report; Enter in the ID field; the diagnosis date;
error pages; a narrow (375 px) run over the main pages; charts with legends clear of the plot and an empty state.

Screenshots go to test-artifacts/screenshots/ (names starting with 2x-).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from django.utils import timezone

from enrollment import services
from enrollment.periods import period_key
from reviews import services as review_services
from tests.conftest import PDF_BYTES
from tests.web.conftest import diagnose, file_application
from tests.web.test_e2e import Page, browser, pytestmark  # noqa: F401 - the fixture and the skip rule

NARROW = (375, 800)


def _batch(world: Any) -> Any:
    return review_services.batch_assemble(
        region_id=world.region.pk,
        period=period_key(timezone.localdate()),
        actor=services.get_system_user(),
        cutoff=timezone.now(),
    )


def test_list_filters_shareable_link_saved_view_and_export(world: Any, live_server: Any, browser: Any) -> None:
    page = Page(browser, live_server.url)
    wanted = file_application(world)
    file_application(world, disease=world.copd)
    diagnose(world, file_application(world, disease=world.diabetes), icd10="E11.9")
    number = wanted.person.id_number
    page.login(world.clerk)
    page.open("/applications/")
    page.wait_for("#application-list")
    assert len(browser.find_elements("css selector", "#application-list tbody tr[data-application]")) == 3

    # Search by ID number: the list narrows, the address carries a token only.
    page.find("#id_q").send_keys(number)
    page.find("#search-button").click()
    page.wait_for("#clear-search")
    assert number not in browser.current_url and "s=" in browser.current_url
    rows = browser.find_elements("css selector", "#application-list tbody tr[data-application]")
    assert [r.get_attribute("data-application") for r in rows] == [str(wanted.pk)]
    assert number not in rows[0].text  # masked in the list (the box shows what this user typed, from the session)
    assert page.find("#id_q").get_attribute("value") == number
    page.find("#clear-search").click()
    page.wait_for("#application-list")

    # Filters and sort are plain GET parameters: a link to share.
    page.find("#list-filters-box summary").click()
    page.find("#list-filters input[name=state][value=submitted]").click()
    page.select("#id_o", "-filed")
    page.find("#apply-filters").click()
    page.wait_for("#application-list")
    assert "state=submitted" in browser.current_url and "o=-filed" in browser.current_url
    shared = browser.current_url
    assert len(browser.find_elements("css selector", "#application-list tbody tr[data-application]")) == 2
    page.shot("20-list-filtered")

    # Save the view, open it again from the list of saved views.
    page.find("#id_view_name").send_keys("待诊断")
    page.find("#save-view button").click()
    page.wait_for(".messages li", "已保存")
    page.open("/applications/")
    page.find("#saved-views a[data-view='待诊断']").click()
    page.wait_for("#application-list")
    assert "state=submitted" in browser.current_url
    assert len(browser.find_elements("css selector", "#application-list tbody tr[data-application]")) == 2

    # Export what the list shows: masked numbers, the same filters.
    href = page.find("#export-csv").get_attribute("href")
    assert "state=submitted" in href and number not in href
    text = browser.execute_async_script(
        "const done = arguments[1]; fetch(arguments[0], {credentials: 'same-origin'}).then(r => r.text()).then(done);",
        href,
    )
    lines = [line for line in text.strip().splitlines() if line]
    assert len(lines) == 3 and number not in text and "*" in lines[1]
    assert browser.current_url.startswith(shared.split("?")[0])


def test_bulk_decision_error_path_and_outcome_report(world: Any, live_server: Any, browser: Any) -> None:
    page = Page(browser, live_server.url)
    diagnose(world, file_application(world))
    diagnose(world, file_application(world, disease=world.copd), icd10="J44.9")
    diagnose(world, file_application(world))
    _batch(world)
    page.login(world.reviewer)
    page.open("/reviews/queue/")
    page.find("#claim-next").click()
    page.wait_for("#claimed-items tr[data-item]")
    boxes = browser.find_elements("css selector", "#claimed-items input[name=items]")
    assert len(boxes) == 3
    for box in boxes[:2]:
        box.click()
    assert "2" in page.find("#selected-count").text

    # A rejection without its reason code: refused at the top of the page, in plain words, nothing ticked.
    page.select("#id_decision", "reject")
    page.find("#decide-selected").click()
    errors = page.wait_for("#decide-errors")
    assert "驳回需要理由" in errors.text
    for code in ("criteria_not_met", "insufficient_evidence", "reason_code"):
        assert code not in errors.text
    top = browser.execute_script("return arguments[0].getBoundingClientRect().top", errors)
    assert -2 <= top < 300  # brought into view at the top
    assert not any(b.is_selected() for b in browser.find_elements("css selector", "#claimed-items input[name=items]"))
    assert "0" in page.find("#selected-count").text
    page.shot("21-queue-error")

    # Reject all three for "criteria not met" with the 两病 choice: the COPD item cannot take it.
    page.find("#select-all").click()
    page.select("#id_decision", "reject")
    page.select("#id_reason_code", "criteria_not_met")
    page.find("#id_reason").send_keys("未达门慢标准")
    page.find("#id_two_diseases").click()
    page.find("#decide-selected").click()
    report = page.wait_for("#outcome-report")
    failed = browser.find_elements("css selector", "#outcome-report tr.failed")
    decided = browser.find_elements("css selector", "#outcome-report tr.ok")
    assert len(failed) == 1 and len(decided) == 2
    assert "两病" in failed[0].text and "未审核" in failed[0].text
    assert "2 项已审核" in report.text
    page.shot("22-queue-outcome-report")


def test_enter_in_the_id_field_looks_up_and_keeps_the_files(
    world: Any, live_server: Any, browser: Any, tmp_path: Path
) -> None:
    page = Page(browser, live_server.url)
    from selenium.webdriver.common.keys import Keys

    person = world.person(name="老病人")
    certificate = tmp_path / "诊断证明.pdf"
    certificate.write_bytes(PDF_BYTES)
    page.login(world.clerk)
    page.open("/applications/new/")
    page.select("#id_doc-0-doc_type", "diagnosis_certificate")
    page.find("#id_doc-0-file").send_keys(str(certificate))
    url = browser.current_url
    field = page.find("#id_id_number")
    field.send_keys(person.id_number + Keys.ENTER)  # what an ID-card reader sends
    page.wait_for("#id-status", "老病人")
    assert browser.current_url == url  # not submitted
    assert page.find("#id_name").get_attribute("value") == "老病人"
    assert browser.execute_script("return document.getElementById('id_doc-0-file').files.length") == 1
    assert not browser.find_elements("css selector", ".errors")
    page.shot("23-filing-enter-looks-up")


def test_diagnosis_date_defaults_to_today(world: Any, live_server: Any, browser: Any) -> None:
    page = Page(browser, live_server.url)
    submitted = file_application(world)
    page.login(world.physician_user)
    page.open(f"/applications/{submitted.pk}/diagnose/")
    assert page.wait_for("#id_diagnosis_date").get_attribute("value") == timezone.localdate().isoformat()


def test_error_pages_in_chinese_with_navigation(world: Any, live_server: Any, browser: Any) -> None:
    page = Page(browser, live_server.url)
    page.login(world.clerk)
    page.open("/applications/999999/")
    assert "这里没有您要找的内容" in page.wait_for("[data-testid=error-title]").text
    page.shot("24-not-found")
    page.find("#error-home").click()
    page.wait_for("[data-testid=current-role]")
    page.open("/reports/")
    assert "您的角色不能进行此操作" in page.wait_for("[data-testid=error-title]").text
    assert browser.find_element("css selector", "link[rel=icon]").get_attribute("href").endswith("favicon.svg")


def _no_sideways_scroll(page: Page, browser: Any, path: str, name: str, ready: str = "main") -> None:
    page.open(path)
    page.wait_for(ready)
    widths = browser.execute_script("return [document.documentElement.scrollWidth, window.innerWidth]")
    page.shot(name)
    assert widths[0] <= widths[1], f"{path} scrolls sideways at {widths[1]} px: {widths[0]} px wide"


def test_narrow_screen_has_no_sideways_scroll(world: Any, live_server: Any, browser: Any) -> None:
    browser.set_window_size(*NARROW)
    page = Page(browser, live_server.url)
    submitted = file_application(world)
    for _ in range(2):
        diagnose(world, file_application(world))
    _batch(world)
    assert browser.execute_script("return window.innerWidth") <= 400

    page.login(world.clerk)
    _no_sideways_scroll(page, browser, "/", "25-narrow-home")
    _no_sideways_scroll(page, browser, "/applications/", "26-narrow-list", "#application-list")
    _no_sideways_scroll(page, browser, f"/applications/{submitted.pk}/", "27-narrow-application")
    _no_sideways_scroll(page, browser, "/applications/new/", "28-narrow-filing", "#filing-form")
    page.logout()

    page.login(world.reviewer)
    page.open("/reviews/queue/")
    page.find("#claim-next").click()
    page.wait_for("#claimed-items tr[data-item]")
    _no_sideways_scroll(page, browser, "/reviews/queue/", "29-narrow-queue", "#claimed-items")
    # The decision buttons are on the screen (the sticky bar), not off to the side.
    for button in ("#decide-selected", "#claimed-items button[name=one]"):
        rect = browser.execute_script(
            "const r = arguments[0].getBoundingClientRect(); return [r.left, r.right];", page.find(button)
        )
        assert rect[0] >= 0 and rect[1] <= NARROW[0] or button.endswith("[name=one]"), (button, rect)
    decide = page.find("#decide-selected")
    bottom = browser.execute_script("return arguments[0].getBoundingClientRect().bottom", decide)
    assert bottom <= browser.execute_script("return window.innerHeight")  # sticky: reachable without scrolling
    page.logout()

    page.login(world.admin)
    _no_sideways_scroll(page, browser, "/reports/", "30-narrow-reports", "#report-filings")


def test_charts_legends_clear_of_the_plot_and_empty_state(world: Any, live_server: Any, browser: Any) -> None:
    page = Page(browser, live_server.url)
    page.login(world.admin)
    page.open("/reports/")
    empty = page.wait_for("#report-by_disease [data-testid=chart-empty]")
    assert "暂无数据" in empty.text
    assert not browser.find_elements("css selector", "#report-by_disease .main-svg")
    page.shot("31-reports-empty")

    # Decisions: approved (immediate mode, by the centre officer), returned and rejected (by the reviewer).
    dialysis = diagnose(world, file_application(world, disease=world.dialysis), icd10="N18.5")
    services.application_approve(application_id=dialysis.pk, actor=world.officer, immediate=True)
    for disease, icd10 in ((world.copd, "J44.9"), (world.diabetes, "E11.9")):
        diagnose(world, file_application(world, disease=disease), icd10=icd10)
    _batch(world)
    from reviews.models import ReviewItem

    items = list(ReviewItem.objects.order_by("id"))
    ReviewItem.objects.update(claimed_by=world.reviewer, lease_expires_at=timezone.now() + dt.timedelta(minutes=30))
    review_services.review_decide(item_id=items[0].pk, actor=world.reviewer, decision="return", reason="缺化验单")
    review_services.review_decide(
        item_id=items[1].pk, actor=world.reviewer, decision="reject", reason_code="criteria_not_met", reason="未达标"
    )

    page.open("/reports/")
    page.wait_for("#report-by_disease .main-svg")
    boxes = browser.execute_script(
        """
        const chart = document.querySelector('#report-by_disease .chart');
        const legend = chart.querySelector('.legend').getBoundingClientRect();
        const plot = chart.querySelector('.cartesianlayer .xy').getBBox ? chart.querySelector('.bglayer rect, .plot')
            .getBoundingClientRect() : null;
        const ticks = Array.from(chart.querySelectorAll('.ytick, .xtick')).map(t => t.getBoundingClientRect());
        return {legend: [legend.left, legend.top, legend.right, legend.bottom],
                plot: [plot.left, plot.top, plot.right, plot.bottom],
                ticks: ticks.map(t => [t.left, t.top, t.right, t.bottom]),
                colours: Array.from(chart.querySelectorAll('.trace.bars')).map(
                    t => [t.querySelector('.point path') && t.querySelector('.point path').style.fill])};
        """
    )

    def overlap(a: list[float], b: list[float]) -> bool:
        return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]

    assert not overlap(boxes["legend"], boxes["plot"]), boxes
    assert not any(overlap(boxes["legend"], tick) for tick in boxes["ticks"]), boxes
    fills = {fill[0] for fill in boxes["colours"] if fill[0]}
    assert "rgb(26, 127, 55)" in fills and "rgb(198, 40, 40)" in fills  # approved green, rejected red
    page.shot("32-reports-charts")
