"""Every read of the reviews app, scoped to the viewer: a reviewer sees their region and its sub-regions."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import BooleanField, Case, Count, Exists, F, OuterRef, Q, QuerySet, Subquery, Value, When
from django.db.models.functions import Coalesce
from django.utils import timezone

from enrollment import reference_cache as enrollment_reference_cache
from enrollment import selectors as enrollment_selectors
from enrollment.models import Application, AuditEntry, Disease, Region, State, with_diagnosis
from enrollment.periods import period_key
from kernel import roles
from reviews import sql
from reviews.models import BatchState, Escalation, Outcome, ReviewBatch, ReviewItem, StageDecision

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


def reviewer_region_ids(user: roles.AnyUser) -> list[int] | None:
    """Regions whose items the user reviews; None means every region (admin)."""
    if roles.has_any_role(user, roles.ADMIN):
        return None
    if not roles.has_any_role(user, roles.REVIEWER):
        return []
    region_id = enrollment_selectors.user_region_id(user)
    if region_id is None:
        return []
    return enrollment_selectors.region_and_descendant_ids(region_id)


def assembly_region_ids(user: roles.AnyUser) -> list[int] | None:
    """Regions whose batch the user may assemble from the web: None = every region (administrators); centre
    officers their institution's region and the regions under it; nobody else any."""
    if roles.has_any_role(user, roles.ADMIN):
        return None
    if not roles.has_any_role(user, roles.CENTER_OFFICER):
        return []
    region_id = enrollment_selectors.user_region_id(user)
    return enrollment_selectors.region_and_descendant_ids(region_id) if region_id is not None else []


def batch_region_ids(user: roles.AnyUser) -> list[int] | None:
    """Regions whose batch pages the user sees: reviewers' and centre officers' regions, administrators all."""
    reviewed = reviewer_region_ids(user)
    if reviewed is None:
        return None
    assembled = assembly_region_ids(user)
    if assembled is None:
        return None
    return sorted(set(reviewed) | set(assembled))


def stages_held(user: roles.AnyUser) -> list[str]:
    profile = getattr(user, "profile", None)
    return list(profile.review_stages or []) if profile is not None else []


# ---------------------------------------------------------------------------
# Batches
# ---------------------------------------------------------------------------


def batches_visible_to(user: roles.AnyUser) -> QuerySet[ReviewBatch]:
    base = ReviewBatch.objects.select_related("region")
    region_ids = batch_region_ids(user)
    if region_ids is None:
        return base
    return base.filter(region_id__in=region_ids)


def assembly_candidates(*, region_id: int, cutoff: dt.datetime) -> QuerySet[Application]:
    """Diagnosed applications of the region, diagnosed before the cutoff, that pass the enqueue guard."""
    return (
        Application.objects.filter(region_id=region_id, state=State.DIAGNOSED, diagnosed_at__lt=cutoff).filter(
            with_diagnosis()
        )  # the enqueue transition's own guard (enrollment.models)
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


def batch_labels(ids: set[int]) -> dict[int, str]:
    """Labels ("region code period") of batches by id, for audit rows (enrollment.selectors.BATCH_LABELS)."""
    rows = ReviewBatch.objects.filter(pk__in=ids).values_list("pk", "region__code", "period")
    return {pk: f"{code} {period}" for pk, code, period in rows}


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
    "due_on",
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


def with_deadline_flags(queryset: QuerySet[ReviewItem], today: dt.date | None = None) -> QuerySet[ReviewItem]:
    """Items annotated with ``overdue`` (pending and past the stage's ``due_on``) and ``escalated`` (an
    escalation of the current stage exists). ``working_days_left`` needs the calendar: ``attach_working_days``."""
    today = today or timezone.localdate()
    return queryset.annotate(
        overdue=Case(
            When(outcome=Outcome.PENDING, due_on__lt=today, then=Value(True)),
            default=Value(False),
            output_field=BooleanField(),
        ),
        escalated=Exists(Escalation.objects.filter(item_id=OuterRef("pk"), stage=OuterRef("stage"))),
    )


def attach_working_days(items: Any, calendar: Any = None, today: dt.date | None = None) -> Any:
    """Set ``working_days_left`` (0 on the due day, negative past it, None without a due date) on each item."""
    from reviews.workdays import WorkCalendar

    calendar = calendar or WorkCalendar()
    today = today or timezone.localdate()
    for item in items:
        item.working_days_left = calendar.working_days_left(today, item.due_on) if item.due_on else None
        item.calendar_provisional = calendar.provisional
    return items


def with_queue_row(queryset: QuerySet[ReviewItem]) -> QuerySet[ReviewItem]:
    """Items with what a queue row shows, in one query: ``batch_period``, ``region_code``, ``claimed_by_username``,
    and the deadline flags ``overdue`` and ``escalated`` (``due_on`` is a field)."""
    from django.contrib.auth import get_user_model

    return (
        with_deadline_flags(queryset.select_related("application__person", "application__disease"))
        .only(*QUEUE_ROW_FIELDS)
        .annotate(
            batch_period=Subquery(ReviewBatch.objects.filter(pk=OuterRef("batch_id")).values("period")[:1]),
            region_code=Subquery(Region.objects.filter(pk=OuterRef("region_id")).values("code")[:1]),
            claimed_by_username=Subquery(
                get_user_model().objects.filter(pk=OuterRef("claimed_by_id")).values("username")[:1]
            ),
        )
    )


def items_visible_to(user: roles.AnyUser) -> QuerySet[ReviewItem]:
    base = with_queue_row(ReviewItem.objects.all())
    region_ids = reviewer_region_ids(user)
    if region_ids is None:
        return base
    return base.filter(region_id__in=region_ids)


def queue_for(user: roles.AnyUser, *, stage: str | None = None) -> QuerySet[ReviewItem]:
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


def claimable_for(user: roles.AnyUser, *, stage: str | None = None) -> QuerySet[ReviewItem]:
    return queue_for(user, stage=stage).filter(lease_free(timezone.now()))


def queue_page(
    user: roles.AnyUser,
    *,
    after: tuple[dt.datetime, int] | None = None,
    limit: int = 50,
    mine: bool = False,
    stage: str | None = None,
) -> list[ReviewItem]:
    """One keyset page: items waiting or claimed by the user, after the (queued_at, id) cursor — the rows of
    ``queue_for`` that are the user's under a live lease or (unless ``mine``) free, each with what
    ``with_queue_row`` gives a row. One hand-written statement (reviews.sql.queue_page): the reviewer's queue
    is the page every reviewer reloads all day, and compiling its queryset was a third of its CPU."""
    held = stages_held(user)
    if stage is not None:
        held = [s for s in held if s == stage]
    region_ids = reviewer_region_ids(user)
    if not roles.has_any_role(user, roles.REVIEWER) or not held or not region_ids:
        return []
    statement, params = sql.queue_page(
        user_id=user.pk,
        region_ids=region_ids,
        stages=held,
        now=timezone.now(),
        today=timezone.localdate(),
        mine=mine,
        after=after,
        limit=limit,
    )
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        rows = cursor.fetchall()
    readers = (sql.QUEUE_ITEM, sql.QUEUE_APPLICATION, sql.QUEUE_PERSON)
    diseases: dict[int, Disease] = {}
    items: list[ReviewItem] = []
    for row in rows:
        start, parts = 0, []
        for reader in readers:
            parts.append(reader.read(row[start : start + reader.width]))
            start += reader.width
        item, application, person = parts
        disease = diseases.get(application.disease_id)
        if disease is None:
            disease = enrollment_reference_cache.disease(application.disease_id) or Disease.objects.get(
                pk=application.disease_id
            )
            diseases[application.disease_id] = disease
        application.person, application.disease = person, disease
        item.application = application
        item.batch_period, item.claimed_by_username = row[start], row[start + 1]
        item.overdue, item.escalated = bool(row[start + 2]), bool(row[start + 3])
        item.region_code = enrollment_reference_cache.region_code(item.region_id)
        items.append(item)
    return items


def items_by_ids(item_ids: list[int]) -> list[ReviewItem]:
    """Queue rows of items the caller has just been given (a claim), oldest first."""
    return list(with_queue_row(ReviewItem.objects.filter(pk__in=item_ids)).order_by("queued_at", "id"))


def claimed_by(user: roles.Actor) -> QuerySet[ReviewItem]:
    return ReviewItem.objects.filter(claimed_by=user, outcome=Outcome.PENDING, lease_expires_at__gt=timezone.now())


def item_decisions(item: ReviewItem) -> QuerySet[StageDecision]:
    return StageDecision.objects.filter(application_id=item.application_id).select_related("decided_by")


def next_round(application_id: int) -> int:
    rounds = list(ReviewItem.objects.filter(application_id=application_id).values_list("round", flat=True))
    rounds += list(StageDecision.objects.filter(application_id=application_id).values_list("round", flat=True))
    return max(rounds, default=0) + 1


# ---------------------------------------------------------------------------
# Batch outlook, stragglers, 补正 requests, notifications, on-time rates (issue 15)
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchOutlook:
    """``count`` diagnosed applications of ``region`` will be batched on ``batch_on``."""

    region: Region
    count: int
    batch_on: dt.date


def _next_month_day(day: dt.date, batch_day: int) -> dt.date:
    year, month = (day.year + 1, 1) if day.month == 12 else (day.year, day.month + 1)
    return dt.date(year, month, batch_day)


def batch_outlook(user: roles.AnyUser, *, today: dt.date | None = None, limit: int = 20) -> list[BatchOutlook]:
    """The viewer's diagnosed applications by region and the day each group enters its monthly batch: this
    month's batch day while it has not come (or, when it has come and the batch is not assembled yet, the
    next nightly run), else next month's batch day (docs/reviews.md, "Batch visibility")."""
    today = today or timezone.localdate()
    period = period_key(today)
    diagnosed = enrollment_selectors.applications_visible_to(user).filter(state=State.DIAGNOSED).order_by()
    by_region = list(diagnosed.values_list("region_id").annotate(n=Count("id")).order_by("region_id")[:limit])
    if not by_region:
        return []
    regions = Region.objects.in_bulk([region_id for region_id, _n in by_region])
    assembled = set(
        ReviewBatch.objects.filter(period=period, region_id__in=regions, assembled_at__isnull=False).values_list(
            "region_id", flat=True
        )
    )
    result: list[BatchOutlook] = []
    for region_id, total in by_region:
        region = regions[region_id]
        batch_day = enrollment_selectors.policy_for_region(region).batch_day
        this_day = dt.date(today.year, today.month, batch_day)
        next_day = _next_month_day(today, batch_day)
        if region_id in assembled:
            result.append(BatchOutlook(region, total, next_day))
            continue
        early = diagnosed.filter(region_id=region_id, diagnosed_at__lt=batch_cutoff(period, batch_day)).count()
        if early:
            when = this_day if today < this_day else today + dt.timedelta(days=1)
            result.append(BatchOutlook(region, early, when))
        if total - early:
            result.append(BatchOutlook(region, total - early, next_day))
    return result


def application_batch_on(application: Application, *, today: dt.date | None = None) -> dt.date | None:
    """The day a diagnosed application enters its monthly batch (None in any other state)."""
    if application.state != State.DIAGNOSED or application.diagnosed_at is None:
        return None
    today = today or timezone.localdate()
    period = period_key(today)
    batch_day = enrollment_selectors.policy_for_region(application.region).batch_day
    this_day = dt.date(today.year, today.month, batch_day)
    assembled = ReviewBatch.objects.filter(
        period=period, region_id=application.region_id, assembled_at__isnull=False
    ).exists()
    if not assembled and application.diagnosed_at < batch_cutoff(period, batch_day):
        return this_day if today < this_day else today + dt.timedelta(days=1)
    return _next_month_day(today, batch_day)


def batch_stragglers(batch: ReviewBatch, *, today: dt.date | None = None, limit: int = 100) -> list[ReviewItem]:
    """Pending items of the batch past their stage's due date, the longest overdue first."""
    today = today or timezone.localdate()
    items = with_deadline_flags(
        ReviewItem.objects.filter(batch=batch, outcome=Outcome.PENDING, due_on__lt=today), today
    ).select_related("application__person", "application__disease", "application__filing_institution", "claimed_by")
    rows = attach_working_days(list(items.order_by("due_on", "queued_at", "id")[:limit]), today=today)
    for item in rows:
        item.overdue_by = -item.working_days_left if item.working_days_left is not None else None
    return rows


def batch_deadlines(batch: ReviewBatch, *, today: dt.date | None = None) -> dict[str, Any]:
    """Per stage: pending, overdue and the earliest due date of the batch's waiting items."""
    today = today or timezone.localdate()
    from django.db.models import Min

    rows = (
        ReviewItem.objects.filter(batch=batch, outcome=Outcome.PENDING)
        .order_by()
        .values("stage")
        .annotate(
            pending=Count("id"),
            overdue=Count("id", filter=Q(due_on__lt=today)),
            escalated=Count("escalations", filter=Q(escalations__stage=F("stage")), distinct=True),
            earliest=Min("due_on"),
        )
        .order_by("stage")
    )
    return {"by_stage": list(rows), "overdue": sum(row["overdue"] for row in rows)}


def web_assembly_period(region_id: int, *, today: dt.date | None = None) -> str:
    """The period an officer's "assemble now" fills: this month's while it is not assembled, else next month's
    (brought forward; the monthly run then finds it assembled and leaves later diagnoses for the month after)."""
    today = today or timezone.localdate()
    period = period_key(today)
    if ReviewBatch.objects.filter(region_id=region_id, period=period, assembled_at__isnull=False).exists():
        return period_key(_next_month_day(today, 1))
    return period


def assembly_choices(user: roles.AnyUser, *, today: dt.date | None = None) -> list[tuple[int, str, int]]:
    """(region id, label, diagnosed count) of the regions whose batch the user may assemble this month and
    that have something to assemble."""
    allowed = assembly_region_ids(user)
    queryset = Application.objects.filter(state=State.DIAGNOSED).order_by()
    if allowed is not None:
        queryset = queryset.filter(region_id__in=allowed)
    counts = dict(queryset.values_list("region_id").annotate(n=Count("id")))
    regions = Region.objects.filter(pk__in=list(counts)).order_by("code")
    return [(region.pk, f"{region.code} {region.name}", counts[region.pk]) for region in regions[:200]]


def open_supplements_for(user: roles.AnyUser) -> QuerySet[Any]:
    """Open 补正 requests of the applications the user sees (the clinic's home page)."""
    from reviews.models import SupplementRequest, SupplementState

    visible = enrollment_selectors.applications_visible_to(user).values("pk")
    return (
        SupplementRequest.objects.filter(state=SupplementState.OPEN, application_id__in=visible)
        .select_related("application__person", "application__disease")
        .order_by("answer_by", "id")
    )


def supplements_of(application: Application) -> QuerySet[Any]:
    from reviews.models import SupplementRequest

    return SupplementRequest.objects.filter(application=application).select_related("requested_by")


def notifications_for(user: roles.Actor, *, unread_only: bool = False) -> QuerySet[Any]:
    from reviews.models import Notification

    queryset = Notification.objects.filter(recipient=user).select_related("application")
    return queryset.filter(read_at__isnull=True) if unread_only else queryset


@dataclass(frozen=True)
class OnTimeRow:
    dimension: str  # region / stage / institution
    key: str
    label: str
    decided: int
    on_time: int

    @property
    def rate(self) -> float | None:
        return round(100 * self.on_time / self.decided, 1) if self.decided else None


def on_time_rates(user: roles.AnyUser, *, since: dt.datetime) -> list[OnTimeRow]:
    """On-time rates of decisions since ``since`` within the viewer's applications, in one aggregate query over
    the stage decisions: per stage, each decision against its stage's due date (an immediate decision against
    the application's); per region and per filing institution, each application decided since ``since`` against
    its whole promise (pauses for 补正 counted), both dates kept on the decision when it was made
    (``StageDecision.due_on`` and ``application_due_on``)."""
    from django.db.models.functions import TruncDate
    from django.db.models.lookups import LessThanOrEqual

    from reviews import deadlines
    from reviews.models import Stage

    visible = enrollment_selectors.applications_visible_to(user).values("pk")
    stage_counted = Q(decided_at__gte=since, due_on__isnull=False)
    application_counted = Q(
        application_due_on__isnull=False,
        application__decided_at__gte=since,
        application__state__in=deadlines.DECIDED_STATES,
    )
    stage_kept = Q(LessThanOrEqual(TruncDate("decided_at"), F("due_on")))
    application_kept = Q(LessThanOrEqual(TruncDate("application__decided_at"), F("application_due_on")))
    groups = (
        StageDecision.objects.filter(application__in=visible)
        .filter(stage_counted | application_counted)
        .order_by()
        .values(
            "stage",
            "application__region__code",
            "application__region__name",
            "application__filing_institution_id",
            "application__filing_institution__name",
        )
        .annotate(
            stage_decided=Count("pk", filter=stage_counted),
            stage_on_time=Count("pk", filter=stage_counted & stage_kept),
            decided=Count("pk", filter=application_counted),
            on_time=Count("pk", filter=application_counted & application_kept),
        )
    )
    per_stage: dict[str, list[int]] = {}
    per_region: dict[str, list[Any]] = {}
    per_institution: dict[str, list[Any]] = {}
    for group in groups:
        if group["stage_decided"]:
            counts = per_stage.setdefault(group["stage"], [0, 0])
            counts[0] += group["stage_decided"]
            counts[1] += group["stage_on_time"]
        if group["decided"]:
            code, institution = group["application__region__code"], group["application__filing_institution_id"]
            for bucket, key, label in (
                (per_region, code, f"{code} {group['application__region__name']}"),
                (per_institution, str(institution), group["application__filing_institution__name"]),
            ):
                entry = bucket.setdefault(key, [label, 0, 0])
                entry[1] += group["decided"]
                entry[2] += group["on_time"]
    labels = dict(Stage.choices)
    rows: list[OnTimeRow] = []
    for stage, (decided, on_time) in sorted(per_stage.items()):
        rows.append(OnTimeRow("stage", stage, str(labels.get(stage, stage)), decided, on_time))
    for key, (label, decided, on_time) in sorted(per_region.items()):
        rows.append(OnTimeRow("region", key, label, decided, on_time))
    for key, (label, decided, on_time) in sorted(per_institution.items(), key=lambda kv: kv[1][0]):
        rows.append(OnTimeRow("institution", key, label, decided, on_time))
    return rows


def items_for_report(user: roles.AnyUser, item_ids: list[int]) -> QuerySet[ReviewItem]:
    """Review items named in the queue's outcome report, within the reviewer's regions."""
    queryset = ReviewItem.objects.filter(pk__in=item_ids).select_related("application__person", "application__disease")
    region_ids = reviewer_region_ids(user)
    return queryset if region_ids is None else queryset.filter(batch__region_id__in=region_ids)
