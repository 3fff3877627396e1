"""ID numbers and diagnoses never reach the logs (docs/design.md: Access and privacy).

What is scanned is what the log handlers receive, after the configured filters (config/redaction.py:
ID-number masking, requests reduced to method + path). Diagnosis codes are not masked by any filter,
so for them the scan proves the code itself never logs them.

A whole scenario runs with every logger at DEBUG: register and look up persons, file, diagnose with
an upload, assemble the monthly batch, claim and decide in the queue, approve on the spot, reject
into 两病 coverage, and a series of error paths (bad numbers, wrong ICD-10 codes, other clinics' ids,
refused transitions, malformed bodies, failed logins). Every captured record — message, arguments,
traceback — is scanned for the numbers and codes used.
"""

from __future__ import annotations

import datetime as dt
import logging

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from config.redaction import redact_id_numbers
from enrollment import services
from enrollment.models import Application, State
from reviews.models import ReviewItem
from tests.conftest import pdf_upload
from tests.factories import synthetic_id_number

ICD10_CODES = ["I11.903", "E11.907", "N18.503", "Z99.901"]


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def record_texts(records: list[logging.LogRecord]) -> list[str]:
    texts = []
    for record in records:
        texts.append(record.getMessage())
        texts.append(repr(record.args))
        if record.exc_info:
            texts.append(logging.Formatter().formatException(record.exc_info))
        if record.exc_text:
            texts.append(record.exc_text)
        texts.append(repr(getattr(record, "request", "")))
    return texts


def needles_for(id_numbers: list[str]) -> list[str]:
    needles = []
    for number in id_numbers:
        needles += [number, number.lower(), number[:17]]
    for code in ICD10_CODES:
        needles += [code, code.replace(".", ""), code.lower()]
    return needles


def diagnose(client: APIClient, application_id: int, code: str):
    return client.post(
        f"/api/v1/applications/{application_id}/diagnose/",
        {"icd10_code": code, "diagnosis_date": "2026-01-05", "certificate": pdf_upload()},
        format="multipart",
    )


@pytest.fixture
def all_loggers_at_debug(caplog):
    """Root and every named logger at DEBUG, so nothing is filtered before the capture handler."""
    names = ["", *logging.root.manager.loggerDict]
    previous = {}
    for name in names:
        logger = logging.getLogger(name)
        previous[name] = logger.level
        logger.setLevel(logging.DEBUG)
    caplog.set_level(logging.DEBUG)
    yield caplog
    for name, level in previous.items():
        logging.getLogger(name).setLevel(level)


def test_a_full_scenario_logs_no_id_number_and_no_diagnosis(world, all_loggers_at_debug, time_machine):
    caplog = all_loggers_at_debug
    time_machine.move_to(dt.datetime(2026, 2, 10, 10, 0, tzinfo=timezone.get_current_timezone()), tick=False)
    clerk, physician, officer = client_for(world.clerk), client_for(world.physician_user), client_for(world.officer)
    reviewer, other_clerk = client_for(world.reviewer), client_for(world.other_clerk)
    used: list[str] = []

    # Register and look up persons through the API.
    numbers = [synthetic_id_number(dt.date(1958, 3, 1)), synthetic_id_number(dt.date(1961, 9, 9), sex="2")]
    used += numbers
    for number in numbers:
        created = clerk.post(
            "/api/v1/persons/",
            {"id_number": number, "name": "测试", "insured_region": world.region.code, "phone": "13800000000"},
            format="json",
        )
        assert created.status_code == 201, created.json()
        assert clerk.get("/api/v1/persons/", {"id_number": number.lower(), "reason": "window"}).status_code == 200

    # File: hypertension and diabetes for the first, dialysis (immediate mode) for the second.
    ids = {}
    filings = [("ht", numbers[0], "M03900"), ("dm", numbers[0], "M01600"), ("dx", numbers[1], "M07803")]
    for key, number, disease in filings:
        response = clerk.post(
            "/api/v1/applications/",
            {"id_number": number, "disease": disease, "treating_institution": world.county.code},
            format="json",
            HTTP_IDEMPOTENCY_KEY=f"key-{key}",
        )
        assert response.status_code == 201, response.json()
        ids[key] = response.json()["id"]

    # Diagnose (multipart upload), including a mismatching code first.
    assert diagnose(physician, ids["ht"], "Z99.901").status_code == 409
    assert diagnose(physician, ids["ht"], "I11.903").status_code == 200
    assert diagnose(physician, ids["dm"], "E11.907").status_code == 200
    assert diagnose(physician, ids["dx"], "N18.503").status_code == 200

    # Immediate approval of dialysis by the centre officer.
    approved = officer.post("/api/v1/immediate-approvals/", {"application": ids["dx"]}, format="json")
    assert approved.status_code == 200, approved.json()

    # Monthly batch, then the queue: approve hypertension, reject diabetes into 两病 coverage.
    from reviews.services import batch_assemble

    batch_assemble(
        region_id=world.region.pk,
        period="2026-02",
        actor=services.get_system_user(),
        cutoff=timezone.now() + dt.timedelta(minutes=1),
    )
    claimed = reviewer.post("/api/v1/queue/claim/", {"count": 10}, format="json")
    assert claimed.status_code == 200 and len(claimed.json()) == 2, claimed.json()
    by_app = {item.application_id: item.pk for item in ReviewItem.objects.all()}
    assert reviewer.post(f"/api/v1/review-items/{by_app[ids['ht']]}/approve/", {}, format="json").status_code == 200
    rejected = reviewer.post(
        f"/api/v1/review-items/{by_app[ids['dm']]}/reject/",
        {"reason_code": "criteria_not_met", "reason": "BP readings below threshold", "two_diseases": True},
        format="json",
    )
    assert rejected.status_code == 200, rejected.json()
    assert Application.objects.get(pk=ids["ht"]).state == State.APPROVED

    # Read paths: detail (full number, access-logged), lists, timeline.
    for key in ids:
        assert clerk.get(f"/api/v1/applications/{ids[key]}/", {"reason": "follow-up"}).status_code == 200
    assert clerk.get("/api/v1/applications/", {"state": ["approved", "rejected"]}).status_code == 200
    assert reviewer.get(f"/api/v1/applications/{ids['ht']}/").status_code == 200

    # Error paths.
    bad = numbers[0][:-1] + ("0" if numbers[0][-1] != "0" else "1")
    used.append(bad)
    assert clerk.get("/api/v1/persons/", {"id_number": bad}).status_code == 400
    assert clerk.get("/api/v1/persons/", {"id_number": numbers[0][:16]}).status_code == 400
    unregistered = synthetic_id_number(dt.date(1970, 1, 1))
    used.append(unregistered)
    assert clerk.get("/api/v1/persons/", {"id_number": unregistered}).status_code == 404
    dup = clerk.post(
        "/api/v1/applications/",
        {"id_number": numbers[1], "disease": "M07803", "treating_institution": world.county.code},
        format="json",
    )
    assert dup.status_code == 409
    assert other_clerk.get(f"/api/v1/applications/{ids['ht']}/").status_code == 404
    assert clerk.post(f"/api/v1/applications/{ids['ht']}/withdraw/", {}, format="json").status_code == 409
    assert diagnose(physician, ids["ht"], "I11.903").status_code == 409
    malformed = clerk.post(
        "/api/v1/applications/", data=f'{{"id_number": "{numbers[0]}", ', content_type="application/json"
    )
    assert malformed.status_code == 400
    assert APIClient().get(f"/api/v1/persons/?id_number={numbers[0]}").status_code == 401
    failed_login = APIClient().post(
        "/api/v1/auth/token/", {"username": numbers[0], "password": "I11.903"}, format="json"
    )
    assert failed_login.status_code == 400
    terminate = client_for(world.reviewer).post(
        f"/api/v1/applications/{ids['ht']}/terminate/", {"reason": "death", "ended_on": "2026-02-30"}, format="json"
    )
    assert terminate.status_code == 400

    assert caplog.records, "the scenario must produce log records, or the scan proves nothing"
    texts = record_texts(caplog.records)
    leaks = sorted({needle for needle in needles_for(used) for text in texts if needle in text})
    where = [text[:300] for text in texts if any(needle in text for needle in leaks)]
    assert not leaks, f"personal data in the logs: {leaks} in {where}"


def test_the_scan_would_catch_a_leak(world, all_loggers_at_debug):
    """The scanner is not blind: a record carrying a diagnosis code is found (codes are not redacted)."""
    logging.getLogger("enrollment").debug("diagnosis %s recorded", ICD10_CODES[0])
    texts = record_texts(all_loggers_at_debug.records)
    assert any(ICD10_CODES[0] in text for text in texts)


def test_a_number_logged_by_mistake_reaches_no_handler_unmasked(world, all_loggers_at_debug):
    number = synthetic_id_number()
    logging.getLogger("enrollment").warning("looking up %s", number)
    texts = record_texts(all_loggers_at_debug.records)
    assert texts and not any(number in text for text in texts)
    assert any(number[-4:] in text for text in texts)


def test_the_console_filter_masks_numbers_that_slip_through():
    number = synthetic_id_number()
    assert redact_id_numbers(f"person {number} filed") == f"person {number[:3]}{'*' * 11}{number[-4:]} filed"
    assert redact_id_numbers(f"id={number.lower()}") != f"id={number.lower()}"
    # Not part of a longer number (an order number, a timestamp in ms).
    assert redact_id_numbers("ref 123456789012345678901") == "ref 123456789012345678901"
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "lookup %s", (number,), None)
    from config.redaction import RedactPersonalData

    assert RedactPersonalData().filter(record) and number not in record.getMessage()


def test_a_refused_page_is_logged_in_one_line_and_a_server_error_keeps_its_traceback(world, caplog):
    from django.test import Client
    from django.urls import reverse

    from config.redaction import RedactPersonalData

    client = Client()
    client.force_login(world.clerk)
    with caplog.at_level(logging.WARNING, logger="django.request"):
        assert client.get(reverse("batch-list")).status_code == 403
    refused = [r for r in caplog.records if r.name == "django.request"]
    assert refused and all(r.exc_info is None and not r.exc_text for r in refused)
    assert "Forbidden" in refused[0].getMessage()

    try:
        raise RuntimeError("boom")
    except RuntimeError:
        import sys

        exc_info = sys.exc_info()
    record = logging.LogRecord("django.request", logging.ERROR, __file__, 1, "Internal Server Error", (), exc_info)
    record.status_code = 500
    assert RedactPersonalData().filter(record) and record.exc_info is not None and "boom" in record.exc_text
