"""The coverage answer's direct serialisation (``coverage_answer_data``) gives exactly what the declared
``CoverageSerializer`` (the API schema) gives, for every shape of answer."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth import get_user_model

from enrollment.coverage import CoverageAnswer
from enrollment.models import Application, AuditEntry, PersonStatusEvent
from enrollment.serializers import CoverageSerializer, coverage_answer_data

DAY = dt.date(2024, 2, 29)
MOMENT = dt.datetime(2024, 12, 31, 23, 59, 59, 123456, tzinfo=ZoneInfo("UTC"))


def enrollment(**kwargs) -> Application:
    fields = {
        "id": 7,
        "kind": "new",
        "state": "approved",
        "valid_from": dt.date(2024, 1, 1),
        "valid_until": dt.date(2026, 12, 31),
        "ended_on": None,
        "termination_reason": "",
        "renews_id": None,
    }
    return Application(**{**fields, **kwargs})


def decision(**kwargs) -> AuditEntry:
    fields = {"id": 11, "transition": "approve", "at": MOMENT, "is_system": False, "batch_id": 3, "stage": "final"}
    entry = AuditEntry(**{**fields, **kwargs})
    entry.actor = get_user_model()(username="reviewer-1")
    return entry


ANSWERS = {
    "not enrolled": CoverageAnswer(on=DAY, covered=False, reason="not_enrolled"),
    "covered with decision": CoverageAnswer(
        on=DAY,
        covered=True,
        reason="covered",
        benefit="outpatient_chronic",
        enrollment=enrollment(),
        decision=decision(),
        insurance_type="resident",
        support_categories=["tekun", "dibao"],
        cross_province_settlement=True,
    ),
    "system decision, renewal pending, as of": CoverageAnswer(
        on=dt.date(2025, 1, 1),
        covered=True,
        reason="renewal_pending",
        as_of=MOMENT,
        enrollment=enrollment(kind="renewal", renews_id=5, valid_until=None),
        decision=decision(is_system=True, batch_id=None, stage=""),
        provisional=True,
        provisional_until=dt.date(2025, 3, 31),
        pending_renewal=enrollment(id=9, state="in_review"),
    ),
    "terminated, status event, two diseases": CoverageAnswer(
        on=DAY,
        covered=False,
        reason="person_deceased",
        enrollment=enrollment(state="terminated", ended_on=DAY, termination_reason="death"),
        insurance_status="person_deceased",
        status_event=PersonStatusEvent(id=4, kind="died", effective_date=DAY, reference="HIS-1"),
        two_diseases={
            "covered": False,
            "reason": "person_deceased",
            "valid_from": dt.date(2023, 6, 1),
            "valid_until": None,
            "enrollment": 12,
        },
    ),
    "two diseases only, none held": CoverageAnswer(
        on=DAY,
        covered=False,
        reason="two_diseases_only",
        two_diseases={
            "covered": True,
            "reason": "covered",
            "valid_from": None,
            "valid_until": None,
            "enrollment": None,
        },
    ),
}


@pytest.mark.parametrize("name", ANSWERS)
def test_direct_serialisation_equals_the_declared_serializer(name):
    answer = ANSWERS[name]
    assert coverage_answer_data(answer) == dict(CoverageSerializer(answer).data)


def test_every_declared_field_is_written():
    assert list(coverage_answer_data(ANSWERS["not enrolled"])) == list(CoverageSerializer().fields)
