"""Helpers for the interop tests: rosters as CSV/XLSX bytes, approved enrollments through the services."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Sequence

from django.db import transaction
from rest_framework.test import APIClient

from enrollment import services
from enrollment.models import Application
from tests.conftest import pdf_upload

CN_HEADER = ["身份证号", "姓名", "医保区划", "联系电话", "帮扶类别", "申报病种"]
EN_HEADER = ["id_number", "name", "region", "phone", "support category", "declared conditions"]


def csv_bytes(rows: Sequence[Sequence[str]], header: Sequence[str] = CN_HEADER, encoding: str = "utf-8-sig") -> bytes:
    lines = [",".join(header)] + [",".join(f'"{cell}"' if "," in cell else cell for cell in row) for row in rows]
    return ("\r\n".join(lines) + "\r\n").encode(encoding)


def xlsx_bytes(rows: Sequence[Sequence[object]], header: Sequence[str] = CN_HEADER) -> bytes:
    from openpyxl import Workbook

    workbook = Workbook()
    sheet = workbook.active
    sheet.append(list(header))
    for row in rows:
        sheet.append(list(row))
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def approved_enrollment(world, person=None, disease=None, icd: str = "I10") -> Application:
    """submit → diagnose → enqueue → approve, through the services (audit rows included)."""
    person = person or world.person()
    disease = disease or world.hypertension
    application = services.application_submit(
        person=person, disease=disease, treating_institution=world.county, actor=world.clerk
    )
    services.application_diagnose(
        application_id=application.pk,
        actor=world.physician_user,
        icd10_code=icd,
        diagnosis_date=dt.date(2026, 1, 5),
        documents=[("diagnosis_certificate", pdf_upload())],
    )
    with transaction.atomic():
        locked = services.lock_application(application.pk)
        services.run_transition(application=locked, name="enqueue", actor=services.get_system_user())
    return services.application_approve(application_id=application.pk, actor=world.reviewer)
