"""Fixtures for the web pages: logged-in clients for each role and applications in known states."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from enrollment import services
from enrollment.models import Application
from tests.conftest import pdf_upload


@pytest.fixture
def client_for(world: Any) -> Any:
    def make(user: Any, language: str = "en") -> Client:
        client = Client()
        client.force_login(user)
        client.cookies["django_language"] = language
        return client

    return make


def file_application(world: Any, *, person: Any = None, disease: Any = None, clerk: Any = None) -> Application:
    return services.application_submit(
        person=person or world.person(),
        disease=disease or world.hypertension,
        treating_institution=world.county,
        documents=[("diagnosis_certificate", pdf_upload())],
        actor=clerk or world.clerk,
    )


def diagnose(world: Any, application: Application, icd10: str = "I10") -> Application:
    return services.application_diagnose(
        application_id=application.pk,
        actor=world.physician_user,
        icd10_code=icd10,
        diagnosis_date=timezone.localdate() - dt.timedelta(days=3),
    )


@pytest.fixture
def submitted(world: Any) -> Application:
    return file_application(world)


@pytest.fixture
def diagnosed(world: Any) -> Application:
    return diagnose(world, file_application(world))


@pytest.fixture
def approved(world: Any) -> Application:
    """An approved enrollment expiring in 100 days (inside the renewal worklist's 180)."""
    application = diagnose(world, file_application(world))
    system = services.get_system_user()
    from django.db import transaction

    with transaction.atomic():
        locked = services.lock_application(application.pk)
        services.run_transition(application=locked, name="enqueue", actor=system)
    services.application_approve(application_id=application.pk, actor=world.reviewer)
    start = timezone.localdate() - dt.timedelta(days=365 * 3 - 100)
    # Move the validity back so that it ends in 100 days: a test-only shortcut past the service.
    Application.objects.filter(pk=application.pk).update(valid_from=start, valid_until=start + dt.timedelta(days=1094))
    application.refresh_from_db()
    return application
