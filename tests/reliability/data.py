"""Committed rows for the tests that run real worker processes: many persons and approved enrollments at once."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.utils import timezone

from enrollment.models import Application, Person, State
from tests.factories import synthetic_id_number


def bulk_persons(world: Any, count: int, *, name: str, phone_prefix: str) -> list[Person]:
    """``count`` persons insured in the world's region, each with a synthetic ID number and a mobile number."""
    return Person.objects.bulk_create(
        [
            Person(
                id_number=(number := synthetic_id_number()),
                name=f"{name}{n}",
                sex="1" if int(number[16]) % 2 else "2",
                birth_date=dt.date(int(number[6:10]), int(number[10:12]), int(number[12:14])),
                insured_region=world.region,
                phone=f"{phone_prefix}{n:08d}",
            )
            for n in range(count)
        ]
    )


def bulk_enrollments(
    world: Any, persons: list[Person], periods: list[tuple[dt.date, dt.date]], *, state: str = State.APPROVED
) -> list[Application]:
    """One hypertension enrollment per person, decided long ago, with the (valid_from, valid_until) given."""
    decided = timezone.now() - dt.timedelta(days=1000)
    return Application.objects.bulk_create(
        [
            Application(
                person=person,
                disease=world.hypertension,
                filing_institution=world.county,
                treating_institution=world.county,
                region=world.region,
                filed_by=world.clerk,
                state=state,
                icd10_code="I10",
                diagnosis_date=decided.date(),
                physician=world.physician,
                diagnosed_by=world.physician_user,
                diagnosed_at=decided,
                decided_at=decided,
                valid_from=valid_from,
                valid_until=valid_until,
            )
            for person, (valid_from, valid_until) in zip(persons, periods, strict=True)
        ]
    )
