"""In headless Chromium: the centre officer's high-cost alert worklist (refer, close) and the printable
person-month statement (its print stylesheet hides the navigation). Screenshots under
test-artifacts/screenshots/ (assistance-*.png)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from assistance import services
from assistance.models import HighCostAlert
from tests.assistance.helpers import category, record, row
from tests.web.test_e2e import CHROMEDRIVER, CHROMIUM, Page, browser  # noqa: F401 - the fixture

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not (CHROMEDRIVER and CHROMIUM), reason="needs Debian's chromium and chromium-driver"),
]


def test_worklist_and_printable_statement(world: Any, live_server: Any, browser: Any) -> None:  # noqa: F811
    person = world.person(name="王芳")
    category(person, "minimum_living", dt.date(2025, 1, 1))
    other = world.person(name="李强")
    last_month = services.previous_period()
    record(world.officer, row(person, day=last_month, oop="7200.00"), row(other, day=last_month, oop="9100.00"))
    services.alerts_scan(period=last_month, actor=world.officer)
    page = Page(browser, live_server.url)
    page.login(world.officer)
    page.open("/assistance/alerts/")
    first = page.wait_for("#cost-alerts tbody tr")
    assert "王芳" in first.text  # a person with a support category first, although her amount is lower
    page.shot("assistance-01-alerts")
    alert = HighCostAlert.objects.get(person=person)
    page.find(f"tr[data-alert='{alert.pk}'] input[name=note]").send_keys("转民政救助")
    page.find(f"tr[data-alert='{alert.pk}'] button[formaction$='/refer/']").click()
    page.wait_for(".messages")
    alert.refresh_from_db()
    assert alert.state == "referred" and alert.note == "转民政救助"
    page.find(f"tr[data-alert='{alert.pk}'] a").click()
    total = page.wait_for("#statement-total")
    assert total.text == "5400.00"  # 75 % of 7,200
    assert page.find("#statement-pays").text == "1800.00"
    page.shot("assistance-02-statement")
    browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": "print"})
    assert not page.find(".topbar").is_displayed() and not page.find("form.no-print").is_displayed()
    assert page.find(".print-only").is_displayed()
    page.shot("assistance-03-statement-print")
