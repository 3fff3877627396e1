"""Helpers of the outbox tests: the real client against the simulator on 127.0.0.1 (no mocks).

The test modules import the ``platform`` fixture from here."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import transaction

from enrollment import services
from enrollment.models import Application, ApplicationKind
from nhsa.simulator import Simulator
from tests.conftest import pdf_upload

FIXMEDINS = "H53010000001"


@pytest.fixture
def platform(tmp_path: Any, settings: Any) -> Iterator[Simulator]:
    simulator = Simulator(tmp_path / "platform.sqlite3", timeout_seconds=1.0)
    settings.PLATFORM_URL = simulator.start()
    settings.PLATFORM_FIXMEDINS_CODE = FIXMEDINS
    settings.PLATFORM_FIXMEDINS_NAME = "测试医院"
    settings.PLATFORM_INSU_ADMDVS = "530100"
    settings.PLATFORM_TIMEOUT = 0.5
    settings.PLATFORM_SIGNIN_REQUIRED = False
    settings.PLATFORM_CRYPTO = "none"
    try:
        yield simulator
    finally:
        simulator.stop()


def known(simulator: Simulator, person: Any, **changes: Any) -> dict[str, Any]:
    """The platform knows the person as we do (unless ``changes`` say otherwise)."""
    values = {
        "psn_name": person.name,
        "insutype": person.insurance_type,
        "insuplc_admdvs": person.insured_region.code,
        **changes,
    }
    return simulator.add_person(person.id_number, **values)


def in_review(world: Any, person: Any = None, disease: Any = None) -> Application:
    person = person or world.person()
    application = services.application_submit(
        person=person, disease=disease or world.hypertension, treating_institution=world.county, actor=world.clerk
    )
    services.application_diagnose(
        application_id=application.pk,
        actor=world.physician_user,
        icd10_code=(disease or world.hypertension).icd10_prefixes[0],
        diagnosis_date=dt.date(2026, 1, 5),
        documents=[("diagnosis_certificate", pdf_upload())],
    )
    with transaction.atomic():
        locked = services.lock_application(application.pk)
        services.run_transition(application=locked, name="enqueue", actor=services.get_system_user())
    return application


def approved(world: Any, person: Any = None, disease: Any = None, *, kind: str = ApplicationKind.NEW) -> Application:
    application = in_review(world, person, disease)
    if kind != ApplicationKind.NEW:
        Application.objects.filter(pk=application.pk).update(kind=kind)
    return services.application_approve(application_id=application.pk, actor=world.reviewer)


def looked_up(simulator: Simulator, person: Any) -> str:
    """The platform knows the person and we already asked it (1101 through the real client): its psn_no."""
    from nhsa import services as outbox

    known(simulator, person)
    reason, psn_no = outbox._person_number(person)
    assert not reason, reason
    return psn_no
