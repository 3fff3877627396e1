"""Approvals of known kinds at known moments, for the re-check draw and the notices."""

from __future__ import annotations

import datetime as dt
from typing import Any

import time_machine

from enrollment.models import Application
from reviews import services as review_services
from reviews.models import ReviewBatch
from tests.reviews.helpers import FEBRUARY, MARCH_2, SHANGHAI, assemble, claim_and_decide, diagnosed, item_of, reviewer

MARCH_10 = dt.datetime(2026, 3, 10, 11, 0, tzinfo=SHANGHAI)
PERIOD = "2026-03"


def immediate_approval(world: Any, *, at: dt.datetime = MARCH_10) -> Application:
    """A dialysis application approved on the spot (即时办结) by world.officer."""
    application = diagnosed(world, disease=world.dialysis, at=at - dt.timedelta(days=1))
    with time_machine.travel(at, tick=False):
        review_services.application_approve_immediately(application_id=application.pk, actor=world.officer)
    return Application.objects.get(pk=application.pk)


def first_reviewer(world: Any) -> Any:
    return reviewer(world, ["initial_review"])


def batch_approvals(world: Any, count: int, *, at: dt.datetime = MARCH_10, by: Any = None) -> tuple[ReviewBatch, list]:
    """``count`` hypertension applications diagnosed in February, batched on 2 March and approved at the single
    initial-review stage at ``at`` by a reviewer other than world.reviewer."""
    applications = [diagnosed(world, at=FEBRUARY) for _ in range(count)]
    batch = assemble(world, at=MARCH_2)
    by = by or first_reviewer(world)
    with time_machine.travel(at, tick=False):
        for application in applications:
            claim_and_decide(item_of(application), by)
    return batch, [Application.objects.get(pk=a.pk) for a in applications]


def approve_all_stages(world: Any, application: Application, *, first: Any, at: dt.datetime = MARCH_10) -> Application:
    """A batched special-disease application approved after its three stages by three reviewers (``first``
    holds the initial review, and may already have claimed the item)."""
    with time_machine.travel(at, tick=False):
        for actor in (first, reviewer(world, ["recheck"]), reviewer(world, ["approval"])):
            claim_and_decide(item_of(application), actor)
    return Application.objects.get(pk=application.pk)
