"""The page offers an action exactly when its service accepts it (issue 14): one rule, enrollment/policies.py.

Before, ``application_actions_for`` "mirrored" the services and skipped the institution and separation-of-duties
checks of approve-immediately, so the page offered an action the service then refused. Here every role of the
small world meets every action on applications in each state, and the page's answer is compared with what the
service does (in a savepoint rolled back after each call).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
import time_machine
from django.db import transaction

from enrollment import policies, services
from enrollment.models import Application
from kernel import roles
from kernel.errors import DomainError, NotPermitted
from reviews import services as review_services
from tests.conftest import pdf_upload
from tests.enrollment.validity_helpers import SHANGHAI, enrol
from tests.factories import PhysicianFactory, staff_user
from tests.reviews.helpers import diagnosed, icd_for

pytestmark = pytest.mark.django_db

FEBRUARY = dt.datetime(2026, 2, 10, 10, 0, tzinfo=SHANGHAI)
ACTIONS = (
    "diagnose",
    "withdraw",
    "resubmit",
    "terminate",
    "approve_immediately",
    "reject_immediately",
    "return_immediately",
    "renew",
)


class _Accepted(Exception):
    """Raised after a service returned, to roll its writes back."""


def _service_call(name: str, application: Application, actor: Any) -> Callable[[], Any]:
    pk = application.pk
    calls: dict[str, Callable[[], Any]] = {
        "diagnose": lambda: services.application_diagnose(
            application_id=pk,
            actor=actor,
            icd10_code=icd_for(application.disease),
            diagnosis_date=FEBRUARY.date() - dt.timedelta(days=1),
            documents=[("diagnosis_certificate", pdf_upload())],
        ),
        "withdraw": lambda: services.application_withdraw(application_id=pk, actor=actor, reason="applicant asked"),
        "resubmit": lambda: services.application_resubmit(application_id=pk, actor=actor, note="complete now"),
        "terminate": lambda: services.application_terminate(application_id=pk, actor=actor, reason="cured"),
        "approve_immediately": lambda: review_services.application_approve_immediately(
            application_id=pk, actor=actor, reason="ok"
        ),
        "reject_immediately": lambda: review_services.application_reject_immediately(
            application_id=pk, actor=actor, reason_code="criteria_not_met", reason="未达标准"
        ),
        "return_immediately": lambda: review_services.application_return_immediately(
            application_id=pk, actor=actor, supplement_codes=["id_copy"], reason=""
        ),
        "renew": lambda: services.application_renew(application_id=pk, actor=actor),
    }
    return calls[name]


def _accepted(call: Callable[[], Any]) -> bool:
    try:
        with transaction.atomic():
            call()
            raise _Accepted
    except _Accepted:
        return True
    except DomainError:
        return False


def _users(world: Any) -> dict[str, Any]:
    township_clerk = staff_user(roles.CLINIC_STAFF, institution=world.township)
    no_rights_officer = staff_user(roles.CENTER_OFFICER, institution=world.no_diagnosis)
    township_doctor = staff_user(roles.PHYSICIAN, institution=world.township)
    PhysicianFactory(institution=world.township, title=5, user=township_doctor)
    return {
        "clerk": world.clerk,
        "other_clerk": world.other_clerk,
        "township_clerk": township_clerk,
        "physician": world.physician_user,
        "resident": world.resident_user,
        "township_doctor": township_doctor,
        "reviewer": world.reviewer,
        "officer": world.officer,
        "no_rights_officer": no_rights_officer,
        "admin": world.admin,
    }


def _submitted(world: Any) -> Application:
    with time_machine.travel(FEBRUARY, tick=False):
        return services.application_submit(
            person=world.person(), disease=world.dialysis, treating_institution=world.county, actor=world.clerk
        )


def _returned(world: Any) -> Application:
    application = diagnosed(world, disease=world.dialysis)
    with time_machine.travel(FEBRUARY, tick=False):
        review_services.application_return_immediately(
            application_id=application.pk, actor=world.officer, supplement_codes=["id_copy"], reason=""
        )
    return Application.objects.get(pk=application.pk)


def _approved(world: Any) -> Application:
    return enrol(world, on=dt.date(2025, 3, 14))


# name -> (build the application, the moment the page and the service are asked at)
STATES: dict[str, tuple[Callable[[Any], Application], Callable[[Application], dt.datetime]]] = {
    "submitted": (_submitted, lambda _a: FEBRUARY),
    "diagnosed (immediate mode)": (lambda w: diagnosed(w, disease=w.dialysis), lambda _a: FEBRUARY),
    "diagnosed (batch mode)": (lambda w: diagnosed(w, disease=w.hypertension), lambda _a: FEBRUARY),
    "returned": (_returned, lambda _a: FEBRUARY),
    "approved, before the renewal window": (_approved, lambda a: _noon(a.valid_from + dt.timedelta(days=30))),
    "approved, in the renewal window": (_approved, lambda a: _noon(a.valid_until - dt.timedelta(days=3))),
    "expired": (_approved, lambda a: _noon(a.valid_until + dt.timedelta(days=400))),
}


def _noon(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, 12, tzinfo=SHANGHAI)


@pytest.mark.parametrize("state", list(STATES))
def test_the_page_offers_an_action_iff_its_service_accepts_it(world, state):
    build, moment = STATES[state]
    application = build(world)
    users = _users(world)
    offered_somewhere: set[str] = set()
    with time_machine.travel(moment(application), tick=False):
        if state == "expired":
            services.validity_sweep(actor=services.get_system_user())
        for who, user in users.items():
            fresh = Application.objects.get(pk=application.pk)
            offered = set(policies.application_actions_for(user, fresh))
            for action in ACTIONS:
                accepted = _accepted(_service_call(action, Application.objects.get(pk=application.pk), user))
                assert (action in offered) == accepted, (state, who, action, "offered" if accepted else "refused")
            offered_somewhere |= offered
    # The table is not empty: each state has someone who may act, and the rules were really exercised.
    assert offered_somewhere, state


def test_the_page_no_longer_offers_approve_immediately_where_the_service_refuses(world):
    """The defect: an officer of an institution without diagnosing rights, or one who filed the application,
    saw "approve now" and was refused on submitting it."""
    application = diagnosed(world, disease=world.dialysis)
    no_rights_officer = staff_user(roles.CENTER_OFFICER, institution=world.no_diagnosis)
    with time_machine.travel(FEBRUARY, tick=False):
        assert "approve_immediately" in policies.application_actions_for(world.officer, application)
        assert "approve_immediately" not in policies.application_actions_for(no_rights_officer, application)
        reason = policies.refusal(policies.ACTION_CHECKS["approve_immediately"], no_rights_officer, application)
        with pytest.raises(NotPermitted) as refused:
            review_services.application_approve_immediately(
                application_id=application.pk, actor=no_rights_officer, reason=""
            )
        assert reason == str(refused.value.message)  # the page's reason is the service's answer


def test_a_renewal_is_filed_only_by_the_filing_side(world):
    """application_renew used to accept any clinic's staff; the page offered it only to the filing side."""
    enrollment = _approved(world)
    with time_machine.travel(_noon(enrollment.valid_until - dt.timedelta(days=3)), tick=False):
        assert not _accepted(_service_call("renew", enrollment, world.other_clerk))
        assert _accepted(_service_call("renew", enrollment, world.clerk))
        assert policies.renewal_open_for(world.clerk, enrollment)
        assert not policies.renewal_open_for(world.other_clerk, enrollment)


# ---------------------------------------------------------------------------
# Services that take an actor check it and audit (issue 14)
# ---------------------------------------------------------------------------


def test_registering_a_person_is_for_institution_staff_and_the_office(world):
    from enrollment.models import Person, PersonAuditEntry
    from tests.factories import synthetic_id_number

    number = synthetic_id_number()
    with pytest.raises(NotPermitted):  # a reviewer works for a region, not at an institution
        services.person_register(id_number=number, name="张三", insured_region=world.region, actor=world.reviewer)
    assert not Person.objects.filter(id_number=number).exists()
    for actor in (world.clerk, world.physician_user, world.officer, world.admin, services.get_system_user()):
        person = services.person_register(
            id_number=number, name="张三", insured_region=world.region, actor=actor, phone=None
        )
    entry = PersonAuditEntry.objects.get(person=person)  # registered once; the same details again change nothing
    assert (entry.action, entry.actor) == ("person_registered", world.clerk)


def test_loading_the_catalogue_is_for_administrators_and_the_system_and_is_audited(world):
    from enrollment.models import Disease, RecordAuditEntry

    data = {"version": "t9", "diseases": [{"code": "M09902", "name": "测试病二", "type": "11"}]}
    for refused in (world.clerk, world.officer, world.reviewer):
        with pytest.raises(NotPermitted):
            services.catalogue_load(data=data, actor=refused)
    assert not Disease.objects.filter(code="M09902").exists() and not RecordAuditEntry.objects.exists()
    assert services.catalogue_load(data=data, actor=world.admin) == {"created": 1, "updated": 0, "version": "t9"}
    services.catalogue_load(
        data={**data, "diseases": [*data["diseases"], {"code": "M09903", "name": "测试病三", "type": "12"}]},
        actor=services.get_system_user(),
    )
    first, second = RecordAuditEntry.objects.filter(subject="catalogue").order_by("id")
    assert (first.actor, first.is_system, first.action, first.details["version"], first.details["created"]) == (
        world.admin,
        False,
        "catalogue_loaded",
        "t9",
        ["M09902"],
    )
    assert (second.is_system, second.details["created"], second.details["updated"]) == (True, ["M09903"], ["M09902"])


def test_the_catalogue_diff_and_the_loader_share_their_defaults(world):
    from interop.catalogue import normalised_entry

    entry = {"code": "M09904", "name": "测试病四", "type": "11", "aliases": ["别名"]}
    services.catalogue_load(data={"version": "t10", "diseases": [entry]}, actor=world.admin)
    from enrollment.models import Disease

    disease = Disease.objects.get(code="M09904")
    assert {name: getattr(disease, name) for name in normalised_entry(entry, "t10")} == normalised_entry(entry, "t10")
