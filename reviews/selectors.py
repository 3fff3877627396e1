"""Every read of the reviews app, scoped to the viewer: a reviewer sees their region and its sub-regions."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from enrollment import selectors as enrollment_selectors
from enrollment.models import Application, AuditEntry, Disease, Region, State
from enrollment.periods import period_key
from kernel import roles
from reviews.models import BatchState, Outcome, ReviewBatch, ReviewItem, StageDecision

# ---------------------------------------------------------------------------
# Configuration: stages, cutoffs
# ---------------------------------------------------------------------------


def stages_for(disease: Disease) -> list[str]:
    """The disease's own stages, else its type's default (settings.REVIEW_STAGES)."""
    if disease.review_stages:
        return list(disease.review_stages)
    return stages_for_type(disease.disease_type)


def stages_for_type(disease_type: str) -> list[str]:
    """The default stages of a disease type (settings.REVIEW_STAGES; a single initial review otherwise)."""
    return list(settings.REVIEW_STAGES.get(disease_type) or ["initial_review"])


def batch_cutoff(period: str, batch_day: int) -> dt.datetime:
    """Midnight (Asia/Shanghai) at the start of the period's batch day: diagnosed before it = in the batch."""
    year, month = (int(part) for part in period.split("-"))
    return timezone.make_aware(dt.datetime(year, month, batch_day))


def reviewer_region_ids(user: Any) -> list[int] | None:
    """Regions whose items the user reviews; None means every region (admin)."""
    if roles.has_any_role(user, roles.ADMIN):
        return None
    if not roles.has_any_role(user, roles.REVIEWER):
        return []
    region_id = enrollment_selectors.user_region_id(user)
    if region_id is None:
        return []
    return enrollment_selectors.region_and_descendant_ids(region_id)


def stages_held(user: Any) -> list[str]:
    profile = getattr(user, "profile", None)
    return list(profile.review_stages or []) if profile is not None else []


# ---------------------------------------------------------------------------
# Batches
# ---------------------------------------------------------------------------


def batches_visible_to(user: Any) -> QuerySet[ReviewBatch]:
    base = ReviewBatch.objects.select_related("region")
    region_ids = reviewer_region_ids(user)
    if region_ids is None:
        return base
    return base.filter(region_id__in=region_ids)


def assembly_candidates(*, region_id: int, cutoff: dt.datetime) -> QuerySet[Application]:
    """Diagnosed applications of the region, diagnosed before the cutoff, that pass the enqueue guard."""
    return (
        Application.objects.filter(region_id=region_id, state=State.DIAGNOSED, diagnosed_at__lt=cutoff)
        .exclude(icd10_code="")
        .filter(diagnosis_date__isnull=False, physician__isnull=False)
    )


@dataclass(frozen=True)
class DueBatch:
    region_id: int
    period: str


def due_batches(day: dt.date) -> list[DueBatch]:
    """The batches to assemble on ``day``.

    A region is due from its policy's batch day on (so a day the beat missed is caught up the next
    day) when the month's batch is not assembled yet and something waits for it; a batch an
    interrupted run left unfinished is always due.
    """
    period = period_key(day)
    due: dict[tuple[int, str], DueBatch] = {}
    for batch in ReviewBatch.objects.filter(assembled_at__isnull=True).only("region_id", "period"):
        due[(batch.region_id, batch.period)] = DueBatch(batch.region_id, batch.period)
    assembled = set(
        ReviewBatch.objects.filter(period=period, assembled_at__isnull=False).values_list("region_id", flat=True)
    )
    region_ids = (
        Application.objects.filter(state=State.DIAGNOSED).order_by().values_list("region_id", flat=True).distinct()
    )
    for region in Region.objects.filter(pk__in=list(region_ids)).exclude(pk__in=assembled):
        policy = enrollment_selectors.policy_for_region(region)
        if day.day < policy.batch_day:
            continue
        if assembly_candidates(region_id=region.pk, cutoff=batch_cutoff(period, policy.batch_day)).exists():
            due.setdefault((region.pk, period), DueBatch(region.pk, period))
    return sorted(due.values(), key=lambda d: (d.period, d.region_id))


def stalled_batches(*, now: dt.datetime, idle: dt.timedelta) -> list[DueBatch]:
    """Batches a dead worker left half-assembled: not assembled, not closed, and nothing moved into them for
    ``idle``. Progress is the newest ``enqueue`` audit row of the batch (each chunk writes its rows when it
    commits), or the batch's creation when no chunk committed; a run that is alive commits a chunk every
    fraction of a second. A run that is alive but stuck inside a chunk (waiting on a row lock) holds the
    batch row: on PostgreSQL such a batch is skipped (``SKIP LOCKED``), so that resumes do not pile up
    behind it and fill the batch workers."""
    threshold = now - idle
    last_chunk = (
        AuditEntry.objects.filter(batch_id=OuterRef("pk"), transition="enqueue").order_by("-at").values("at")[:1]
    )
    rows = (
        ReviewBatch.objects.filter(assembled_at__isnull=True, created_at__lte=threshold)
        .exclude(state=BatchState.CLOSED)
        .annotate(progress=Coalesce(Subquery(last_chunk), F("created_at")))
        .filter(progress__lte=threshold)
        .order_by("period", "region_id")
        .values_list("pk", "region_id", "period")
    )
    candidates = list(rows)
    if not candidates:
        return []
    with transaction.atomic():
        free = set(
            ReviewBatch.objects.select_for_update(skip_locked=True)
            .filter(pk__in=[pk for pk, _region_id, _period in candidates])
            .values_list("pk", flat=True)
        )
    return [DueBatch(region_id, period) for pk, region_id, period in candidates if pk in free]


def batch_counts(batch: ReviewBatch) -> dict[str, Any]:
    """The data of a batch page: counts by outcome, stage and disease, ageing, who decided what."""
    items = ReviewItem.objects.filter(batch=batch).order_by()
    by_outcome = dict(items.values_list("outcome").annotate(n=Count("id")))
    by_stage = dict(items.filter(outcome=Outcome.PENDING).values_list("stage").annotate(n=Count("id")))
    by_disease: dict[str, dict[str, Any]] = {}
    for code, name, outcome, n in (
        items.values_list("application__disease__code", "application__disease__name", "outcome")
        .annotate(n=Count("id"))
        .order_by("application__disease__code")
    ):
        row = by_disease.setdefault(code, {"code": code, "name": name, **{o: 0 for o in Outcome.values}})
        row[outcome] = n
    now = timezone.now()
    ageing_buckets = [("0-7", 0, 7), ("8-14", 8, 14), ("15-30", 15, 30), ("31+", 31, None)]
    ageing = {}
    pending = items.filter(outcome=Outcome.PENDING)
    for label, low, high in ageing_buckets:
        bucket = pending.filter(queued_at__lte=now - dt.timedelta(days=low))
        if high is not None:
            bucket = bucket.filter(queued_at__gt=now - dt.timedelta(days=high + 1))
        ageing[label] = bucket.count()
    oldest = pending.order_by("queued_at").values_list("queued_at", flat=True).first()
    deciders = [
        {"user": username, "stage": stage, "decision": decision, "count": n}
        for username, stage, decision, n in StageDecision.objects.filter(batch=batch)
        .order_by("decided_by__username", "stage", "decision")
        .values_list("decided_by__username", "stage", "decision")
        .annotate(n=Count("id"))
    ]
    return {
        "items": batch.item_count,
        "by_outcome": {o: by_outcome.get(o, 0) for o in Outcome.values},
        "pending_by_stage": by_stage,
        "by_disease": list(by_disease.values()),
        "ageing_days": ageing,
        "oldest_pending_since": oldest,
        "decided_by": deciders,
    }


# ---------------------------------------------------------------------------
# Queues
# ---------------------------------------------------------------------------


# The columns of a queue row (reviews.serializers.ReviewItemSerializer). Joining batch, region and
# auth_user as well made PostgreSQL spend ~30 ms planning each page (bench/http_queue.py, 100k):
# those three come as correlated subqueries instead, which the planner does not reorder.
QUEUE_ROW_FIELDS: tuple[str, ...] = (
    "id",
    "application_id",
    "batch_id",
    "region_id",
    "round",
    "stages",
    "stage",
    "outcome",
    "queued_at",
    "claimed_by_id",
    "lease_expires_at",
    "decided_at",
    "application__state",
    "application__person",
    "application__disease",
    "application__person__name",
    "application__person__id_number",
    "application__disease__code",
    "application__disease__name",
)


def with_queue_row(queryset: QuerySet[ReviewItem]) -> QuerySet[ReviewItem]:
    """Items with what a queue row shows, in one query: ``batch_period``, ``region_code``, ``claimed_by_username``."""
    from django.contrib.auth import get_user_model

    return (
        queryset.select_related("application__person", "application__disease")
        .only(*QUEUE_ROW_FIELDS)
        .annotate(
            batch_period=Subquery(ReviewBatch.objects.filter(pk=OuterRef("batch_id")).values("period")[:1]),
            region_code=Subquery(Region.objects.filter(pk=OuterRef("region_id")).values("code")[:1]),
            claimed_by_username=Subquery(
                get_user_model().objects.filter(pk=OuterRef("claimed_by_id")).values("username")[:1]
            ),
        )
    )


def items_visible_to(user: Any) -> QuerySet[ReviewItem]:
    base = with_queue_row(ReviewItem.objects.all())
    region_ids = reviewer_region_ids(user)
    if region_ids is None:
        return base
    return base.filter(region_id__in=region_ids)


def queue_for(user: Any, *, stage: str | None = None) -> QuerySet[ReviewItem]:
    """Pending items of the reviewer's region at a stage they hold that they may decide, oldest first.

    Items the user filed, diagnosed or already decided at another stage are left out: separation of
    duties would refuse them anyway.
    """
    held = stages_held(user)
    if stage is not None:
        held = [s for s in held if s == stage]
    region_ids = reviewer_region_ids(user)
    if not roles.has_any_role(user, roles.REVIEWER) or not held or not region_ids:
        return ReviewItem.objects.none()
    return (
        ReviewItem.objects.filter(outcome=Outcome.PENDING, region_id__in=region_ids, stage__in=held)
        .exclude(application__filed_by=user)
        .exclude(application__diagnosed_by=user)
        .exclude(
            Exists(
                StageDecision.objects.filter(application_id=OuterRef("application_id"), decided_by=user).exclude(
                    stage=OuterRef("stage")
                )
            )
        )
        .order_by("queued_at", "id")
    )


def lease_free(now: dt.datetime) -> Q:
    return Q(claimed_by__isnull=True) | Q(lease_expires_at__lte=now)


def claimable_for(user: Any, *, stage: str | None = None) -> QuerySet[ReviewItem]:
    return queue_for(user, stage=stage).filter(lease_free(timezone.now()))


def queue_page(
    user: Any,
    *,
    after: tuple[dt.datetime, int] | None = None,
    limit: int = 50,
    mine: bool = False,
    stage: str | None = None,
) -> list[ReviewItem]:
    """One keyset page: items waiting or claimed by the user, after the (queued_at, id) cursor."""
    now = timezone.now()
    queryset = queue_for(user, stage=stage)
    mine_q = Q(claimed_by=user, lease_expires_at__gt=now)
    queryset = queryset.filter(mine_q if mine else (mine_q | lease_free(now)))
    if after is not None:
        queued_at, item_id = after
        queryset = queryset.filter(Q(queued_at__gt=queued_at) | Q(queued_at=queued_at, id__gt=item_id))
    return list(with_queue_row(queryset)[:limit])


def items_by_ids(item_ids: list[int]) -> list[ReviewItem]:
    """Queue rows of items the caller has just been given (a claim), oldest first."""
    return list(with_queue_row(ReviewItem.objects.filter(pk__in=item_ids)).order_by("queued_at", "id"))


def claimed_by(user: Any) -> QuerySet[ReviewItem]:
    return ReviewItem.objects.filter(claimed_by=user, outcome=Outcome.PENDING, lease_expires_at__gt=timezone.now())


def item_decisions(item: ReviewItem) -> QuerySet[StageDecision]:
    return StageDecision.objects.filter(application_id=item.application_id).select_related("decided_by")


def next_round(application_id: int) -> int:
    rounds = list(ReviewItem.objects.filter(application_id=application_id).values_list("round", flat=True))
    rounds += list(StageDecision.objects.filter(application_id=application_id).values_list("round", flat=True))
    return max(rounds, default=0) + 1
