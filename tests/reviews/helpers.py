"""Helpers for review tests: file and diagnose applications at a chosen moment, build batches."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import time_machine
from django.contrib.auth.models import Group

from enrollment import services
from enrollment.models import Application
from kernel import roles
from reviews import services as review_services
from reviews.models import ReviewBatch, ReviewItem
from tests.conftest import pdf_upload
from tests.factories import staff_user

SHANGHAI = ZoneInfo("Asia/Shanghai")
# Filed and diagnosed in February; the March batch (cutoff 1 March 00:00) takes them.
FEBRUARY = dt.datetime(2026, 2, 10, 10, 0, tzinfo=SHANGHAI)
MARCH_2 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=SHANGHAI)
PERIOD = "2026-03"


def icd_for(disease: Any) -> str:
    return disease.icd10_prefixes[0]


def diagnosed(world: Any, *, disease: Any = None, person: Any = None, at: dt.datetime = FEBRUARY) -> Application:
    """An application filed by world.clerk and diagnosed by world.physician_user at ``at``."""
    disease = disease or world.hypertension
    with time_machine.travel(at, tick=False):
        application = services.application_submit(
            person=person or world.person(), disease=disease, treating_institution=world.county, actor=world.clerk
        )
        services.application_diagnose(
            application_id=application.pk,
            actor=world.physician_user,
            icd10_code=icd_for(disease),
            diagnosis_date=at.date() - dt.timedelta(days=1),
            documents=[("diagnosis_certificate", pdf_upload())],
        )
    return Application.objects.get(pk=application.pk)


def assemble(world: Any, *, period: str = PERIOD, at: dt.datetime = MARCH_2, **kwargs: Any) -> ReviewBatch:
    with time_machine.travel(at, tick=False):
        return review_services.batch_assemble(
            region_id=world.region.pk, period=period, actor=services.get_system_user(), **kwargs
        )


def reviewer(world: Any, stages: list[str], *, region: Any = None, username: str | None = None) -> Any:
    return staff_user(roles.REVIEWER, region=region or world.region, stages=stages, username=username)


def add_role(user: Any, role: str) -> Any:
    user.groups.add(Group.objects.get_or_create(name=role)[0])
    if hasattr(user, "_role_names"):
        del user._role_names
    return user


def item_of(application: Application) -> ReviewItem:
    return ReviewItem.objects.filter(application=application).order_by("-round").first()


def claim_and_decide(item: ReviewItem, actor: Any, decision: str = "approve", **kwargs: Any) -> ReviewItem:
    review_services.queue_claim(actor=actor, count=200, stage=item.stage)
    item.refresh_from_db()
    assert item.claimed_by_id == actor.pk, "the item was not claimable by this reviewer"
    return review_services.review_decide(item_id=item.pk, actor=actor, decision=decision, **kwargs)
