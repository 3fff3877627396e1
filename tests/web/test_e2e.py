"""End to end in headless Chromium (Debian's chromium + chromium-driver): a clerk files with an upload,
a physician diagnoses, the monthly batch runs, a reviewer claims and approves, and the validity shows.

Screenshots of each main page are saved under test-artifacts/screenshots/ (named in the README).
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.utils import timezone

from enrollment import services
from enrollment.models import Application, State
from enrollment.periods import period_key
from tests.conftest import PDF_BYTES
from tests.factories import synthetic_id_number

SCREENSHOTS = Path(settings.BASE_DIR) / "test-artifacts" / "screenshots"
CHROMEDRIVER = shutil.which("chromedriver")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not (CHROMEDRIVER and CHROMIUM) and os.environ.get("CI") != "true",
        reason="needs Debian's chromium and chromium-driver: `make test` installs them",
    ),
]


@pytest.fixture
def browser(tmp_path: Path) -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM or ""
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1366,1000",
        "--lang=zh-CN",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(argument)
    options.add_experimental_option("prefs", {"intl.accept_languages": "zh-CN,zh"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER or ""), options=options)
    driver.set_page_load_timeout(30)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    yield driver
    driver.quit()


class Page:
    """Small helpers over the WebDriver, in the words of the flow."""

    def __init__(self, driver: Any, base_url: str) -> None:
        self.driver = driver
        self.base = base_url

    def open(self, path: str) -> None:
        self.driver.get(self.base + path)

    def find(self, css: str) -> Any:
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.CSS_SELECTOR, css)

    def wait_for(self, css: str, text: str | None = None, timeout: int = 15) -> Any:
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions as ec
        from selenium.webdriver.support.ui import WebDriverWait

        wait = WebDriverWait(self.driver, timeout)
        if text is None:
            return wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, css)))
        wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, css), text))
        return self.find(css)

    def select(self, css: str, value: str) -> None:
        from selenium.webdriver.support.ui import Select

        Select(self.find(css)).select_by_value(value)

    def shot(self, name: str) -> None:
        """A full-page screenshot (beyond the viewport) through the DevTools protocol."""
        import base64

        data = self.driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
        (SCREENSHOTS / f"{name}.png").write_bytes(base64.b64decode(data["data"]))

    def login(self, user: Any) -> None:
        self.open("/login/")
        self.find("#id_username").send_keys(user.username)
        self.find("#id_password").send_keys("pw-for-tests-2026")
        self.find("button.primary").click()
        self.wait_for("[data-testid=current-role]")

    def logout(self) -> None:
        self.find(".who form button").click()
        self.wait_for("#id_username")


def test_file_diagnose_batch_review_approve(world: Any, live_server: Any, browser: Any, tmp_path: Path) -> None:
    page = Page(browser, live_server.url)
    certificate = tmp_path / "诊断证明.pdf"
    certificate.write_bytes(PDF_BYTES)
    number = synthetic_id_number()

    # 1. The clerk logs in (Chinese by default) and files for a person not registered yet.
    page.open("/login/")
    page.wait_for("#id_username")
    assert "登录" in browser.page_source
    page.shot("01-login")
    page.login(world.clerk)
    assert page.find("[data-testid=current-role]").text == "医疗机构经办人员"
    assert page.find("[data-testid=current-place]").text == world.county.name
    page.shot("02-clinic-home")

    page.open("/applications/new/")
    page.find("#id_id_number").send_keys(number[:10])
    page.wait_for("#id-status", "18")  # checked as typed: "should have 18 characters"
    page.find("#id_id_number").send_keys(number[10:])
    page.wait_for("#id-status", "尚未登记")
    page.find("#id_name").send_keys("测试患者")
    page.select("#id_insured_region", str(world.region.pk))
    page.find("#disease-search").send_keys("M03900")
    page.wait_for("#checklist li[data-code=limit_reached]")
    assert page.find("#id_disease").get_attribute("value") == str(world.hypertension.pk)
    page.wait_for("#checklist li[data-code=documents_missing].warn")
    page.select("#id_doc-0-doc_type", "diagnosis_certificate")
    page.find("#id_doc-0-file").send_keys(str(certificate))
    page.wait_for("#checklist li[data-code=documents_missing].pass")
    assert "已持有 0 个慢性病备案" in page.find("#checklist").text
    page.shot("03-file-application")
    page.find("#submit-filing").click()
    page.wait_for("[data-testid=state]", "已提交")
    application = Application.objects.get(person__id_number=number)
    assert application.documents.count() == 1
    assert number in page.find("[data-testid=id-number]").text  # the filing clerk sees the full number
    page.shot("04-application-submitted")
    page.logout()

    # 2. The physician diagnoses.
    page.login(world.physician_user)
    page.shot("05-physician-home")
    page.find("#waiting-diagnosis a.button").click()
    page.wait_for("#id_icd10_code").send_keys("I10")
    diagnosis_date = (timezone.localdate() - dt.timedelta(days=2)).isoformat()
    browser.execute_script("arguments[0].value = arguments[1]", page.find("#id_diagnosis_date"), diagnosis_date)
    page.shot("06-diagnosis-form")
    page.find("#submit-diagnosis").click()
    page.wait_for("[data-testid=state]", "已诊断")
    assert "*" in page.find("[data-testid=id-number]").text  # masked for the physician
    page.logout()

    # 3. The monthly batch runs (what the beat task does on the batch day).
    from reviews import services as review_services

    batch = review_services.batch_assemble(
        region_id=world.region.pk,
        period=period_key(timezone.localdate()),
        actor=services.get_system_user(),
        cutoff=timezone.now(),
    )
    application.refresh_from_db()
    assert application.state == State.IN_REVIEW

    # 4. The reviewer claims and approves from the queue.
    page.login(world.reviewer)
    page.open("/reviews/queue/")
    page.find("#claim-next").click()
    page.wait_for("#claimed-items tr[data-item]")
    assert "剩余" in page.find(".lease").text or ":" in page.find(".lease").text
    page.shot("07-review-queue")
    page.find("#claimed-items button[name=one]").click()
    page.wait_for(".messages li", "已审核 1 条")
    page.open(f"/reviews/batches/{batch.pk}/")
    page.wait_for("progress")
    page.shot("08-batch-detail")

    # 5. The validity shows on the application page.
    page.open(f"/applications/{application.pk}/")
    page.wait_for("[data-testid=state]", "已通过")
    application.refresh_from_db()
    assert application.valid_from == timezone.localdate()
    valid_until = page.find("[data-testid=valid-until]").text
    assert str(application.valid_until.year) in valid_until
    page.shot("09-application-approved")
    page.logout()

    # 6. The administrator's reports draw their charts with the bundled plotly.js.
    page.login(world.admin)
    page.open("/reports/")
    page.wait_for("#report-filings .chart .main-svg")
    page.shot("10-reports")
    assert not browser.get_log("browser") or all(entry["level"] != "SEVERE" for entry in browser.get_log("browser"))


def test_filing_works_without_javascript(world: Any, live_server: Any, tmp_path: Path) -> None:
    """The core filing flow with JavaScript switched off: look up, check, submit."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM or ""
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--lang=zh-CN",
        f"--user-data-dir={tmp_path / 'nojs-profile'}",
    ):
        options.add_argument(argument)
    options.add_experimental_option(
        "prefs", {"intl.accept_languages": "zh-CN,zh", "profile.managed_default_content_settings.javascript": 2}
    )
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER or ""), options=options)
    try:
        page = Page(driver, live_server.url)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        person = world.person(name="老参保人")
        page.login(world.clerk)
        page.open("/applications/new/")
        page.find("#id_id_number").send_keys(person.id_number)
        page.find("button[value=lookup]").click()
        page.wait_for("#id-status", "老参保人")
        assert page.find("#id_name").get_attribute("value") == "老参保人"
        page.select("#id_disease", str(world.diabetes.pk))
        page.find("button[value=check]").click()
        page.wait_for("#checklist li[data-code=limit_reached]")
        page.shot("11-file-without-javascript")
        page.find("#submit-filing").click()
        page.wait_for("[data-testid=state]", "已提交")
        assert Application.objects.filter(person=person, disease=world.diabetes).exists()
    finally:
        driver.quit()
