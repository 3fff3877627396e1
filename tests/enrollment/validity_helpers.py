"""Helpers for the validity, renewal, sweep, reminder and coverage tests: an enrollment approved on a given day."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import Any

import time_machine
from django.db import transaction

from enrollment import services
from enrollment.models import Application, AuditEntry
from tests.conftest import pdf_upload

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")


def at(day: dt.date, hour: int = 10) -> time_machine.travel:
    """Move the clock to ``day`` (business time, Asia/Shanghai)."""
    return time_machine.travel(dt.datetime(day.year, day.month, day.day, hour, tzinfo=SHANGHAI), tick=False)


def diagnose(world: Any, application: Application, *, day: dt.date, icd: str = "I10") -> Application:
    return services.application_diagnose(
        application_id=application.pk,
        actor=world.physician_user,
        icd10_code=icd,
        diagnosis_date=day,
        documents=[("diagnosis_certificate", pdf_upload())],
    )


def approve(world: Any, application: Application, *, icd: str = "I10") -> Application:
    """Diagnose (today), enqueue and approve an application that is submitted, as of the current clock."""
    from django.utils import timezone

    diagnose(world, application, day=timezone.localdate(), icd=icd)
    with transaction.atomic():
        services.run_transition(
            application=services.lock_application(application.pk), name="enqueue", actor=services.get_system_user()
        )
    return services.application_approve(application_id=application.pk, actor=world.reviewer)


def enrol(world: Any, *, on: dt.date, person: Any = None, disease: Any = None, icd: str = "I10") -> Application:
    """A new enrollment filed and approved on ``on``."""
    with at(on):
        application = services.application_submit(
            person=person or world.person(phone="13812345678"),
            disease=disease or world.hypertension,
            treating_institution=world.county,
            actor=world.clerk,
        )
        return approve(world, application, icd=icd)


def renew_and_approve(world: Any, enrollment: Application, *, filed: dt.date, approved: dt.date) -> Application:
    with at(filed):
        renewal = services.application_renew(application_id=enrollment.pk, actor=world.clerk)
    with at(approved):
        return approve(world, renewal)


def sweep(day: dt.date, **kwargs: Any) -> services.SweepResult:
    with at(day, hour=1):
        return services.validity_sweep(day=day, actor=services.get_system_user(), enqueue=False, **kwargs)


def audit_of(application: Application, transition: str) -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(application=application, transition=transition).order_by("id"))
