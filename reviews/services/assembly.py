"""Monthly batch assembly (每月集中审批): diagnosed applications frozen into the region's batch, set-based and chunked,
one audit row per item; closing a batch when every item is decided.
"""

from __future__ import annotations

import datetime as dt
import logging

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from enrollment import selectors as enrollment_selectors
from enrollment.models import Application, Disease, Region, State
from enrollment.services import (
    AuditFields,
    audit_rows_insert,
    get_system_user,
    record_audit,
)
from kernel import roles
from kernel.errors import InvalidInput, NotPermitted
from reviews import deadlines, selectors, sql
from reviews.models import (
    BatchState,
    Outcome,
    ReviewBatch,
    ReviewItem,
)
from reviews.workdays import WorkCalendar

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------------
# Batch assembly (每月集中审批)
# ---------------------------------------------------------------------------


def _parse_period(period: str) -> str:
    try:
        year, month = (int(part) for part in period.split("-"))
        dt.date(year, month, 1)
    except (ValueError, TypeError):
        raise InvalidInput(_("A period is written YYYY-MM, e.g. 2026-03."), details={"field": "period"})
    return f"{year:04d}-{month:02d}"


def batch_assemble(
    *,
    region_id: int,
    period: str,
    actor: roles.Actor,
    cutoff: dt.datetime | None = None,
    chunk_size: int | None = None,
) -> ReviewBatch:
    """Freeze the region's diagnosed applications, diagnosed before the cutoff, into the period's batch.

    Safe to run twice and to resume after a crash: the batch is unique per (region, period), each
    chunk moves only rows that are still ``diagnosed`` in its own transaction, and a batch marked
    assembled is never added to again. The cutoff defaults to the start of the policy's batch day
    (never later than now).
    """
    if not roles.is_system(actor):
        allowed = selectors.assembly_region_ids(actor)
        if allowed is not None and region_id not in allowed:
            raise NotPermitted(
                _("Only the system, the region's centre officers and administrators assemble its batch.")
            )
    period = _parse_period(period)
    region = Region.objects.get(pk=region_id)
    if cutoff is None:
        policy = enrollment_selectors.policy_for_region(region)
        cutoff = min(selectors.batch_cutoff(period, policy.batch_day), timezone.now())
    try:
        with transaction.atomic():
            batch, _created = ReviewBatch.objects.get_or_create(
                region=region, period=period, defaults={"cutoff": cutoff}
            )
    except IntegrityError:
        # A concurrent run created it first.
        batch = ReviewBatch.objects.get(region=region, period=period)
    if batch.assembled_at is not None:
        return batch
    size = chunk_size or int(getattr(settings, "REVIEW_BATCH_CHUNK_SIZE", 1000))
    # Keyset: each chunk starts after the last row of the one before. The moved rows' entries stay in the
    # (region, state, diagnosed_at) index until vacuum, so restarting every chunk from the front walked over
    # all of them again and a region's assembly grew with the square of its size.
    after: tuple[dt.datetime, int] | None = None
    while after := _assemble_chunk(batch_id=batch.pk, actor=actor, size=size, after=after):
        pass
    with transaction.atomic():
        batch = ReviewBatch.objects.select_for_update().get(pk=batch.pk)
        if (
            batch.assembled_at is None
            and not selectors.assembly_candidates(region_id=batch.region_id, cutoff=batch.cutoff).exists()
        ):
            batch.assembled_at = timezone.now()
            batch_state_change(batch=batch, to_state=BatchState.REVIEWING, actor=actor, action="assembled")
            batch.save(update_fields=["assembled_at", "state"])
    batch_close_if_done(batch_id=batch.pk)
    batch.refresh_from_db()
    logger.info("review batch %s %s assembled: %s items", batch.region_id, batch.period, batch.item_count)
    return batch


def _assemble_chunk(
    *, batch_id: int, actor: roles.Actor, size: int, after: tuple[dt.datetime, int] | None = None
) -> tuple[dt.datetime, int] | None:
    """Move the next chunk (after the ``(diagnosed_at, id)`` cursor) into the batch; returns the cursor of
    its last row, or None when nothing is left. Rows behind the cursor that became eligible meanwhile
    (none can: a later diagnosis is past the cutoff) would be found by the final check and the next run."""
    with transaction.atomic():
        # The batch row lock serialises concurrent runs of the same batch chunk by chunk.
        batch = ReviewBatch.objects.select_for_update().get(pk=batch_id)
        if batch.assembled_at is not None:
            return None
        candidates = selectors.assembly_candidates(region_id=batch.region_id, cutoff=batch.cutoff)
        if after is not None:
            candidates = candidates.filter(Q(diagnosed_at__gt=after[0]) | Q(diagnosed_at=after[0], id__gt=after[1]))
        rows = list(
            candidates.select_for_update(of=("self",))
            .order_by("diagnosed_at", "id")
            .values_list("pk", "diagnosed_at")[:size]
        )
        if not rows:
            return None
        ids = [pk for pk, _diagnosed_at in rows]
        now = timezone.now()
        moved = Application.objects.filter(pk__in=ids, state=State.DIAGNOSED).update(
            state=State.IN_REVIEW, updated_at=now
        )
        if moved != len(ids):  # the rows are locked: this cannot happen unless the lock is gone
            raise RuntimeError(f"batch {batch_id}: locked {len(ids)} applications but moved {moved}")
        # Set-based: the rows are written by the database from the chunk's ids, never built in Python.
        _insert_review_items(batch=batch, ids=ids, queued_at=now)
        _insert_enqueue_audit_rows(batch=batch, ids=ids, actor=actor)
        ReviewBatch.objects.filter(pk=batch.pk).update(item_count=F("item_count") + moved)
    last_id, last_diagnosed_at = rows[-1]
    assert last_diagnosed_at is not None  # candidates were diagnosed before the cutoff
    return last_diagnosed_at, last_id


def _insert_review_items(*, batch: ReviewBatch, ids: list[int], queued_at: dt.datetime) -> int:
    """One ``INSERT … SELECT`` of the chunk's review items: round = the application's last round + 1,
    stages = its disease's own or its type's default (the few diseases of the chunk, decided here)."""
    stages_field = ReviewItem._meta.get_field("stages")
    rows = list(
        Disease.objects.filter(applications__pk__in=ids).distinct().values_list("pk", "disease_type", "review_stages")
    )
    by_disease = {pk: list(own) if own else selectors.stages_for_type(disease_type) for pk, disease_type, own in rows}
    # The first stage's due date (working days from now), per disease: the chunk shares region and queued_at.
    calendar = WorkCalendar()
    limits = deadlines.time_limits_for(batch.region)
    due_field = ReviewItem._meta.get_field("due_on")
    due_on = {
        pk: due_field.get_db_prep_save(
            deadlines.stage_due_on(
                calendar,
                limits=limits,
                disease_type=disease_type,
                stage=by_disease[pk][0],
                entered=queued_at,
            ),
            connection,
        )
        for pk, disease_type, _own in rows
    }
    statement = sql.review_items_insert(
        batch_id=batch.pk,
        region_id=batch.region_id,
        ids=ids,
        stages_by_disease={pk: stages_field.get_db_prep_save(stages, connection) for pk, stages in by_disease.items()},
        first_stage_by_disease={pk: stages[0] for pk, stages in by_disease.items()},
        due_on_by_disease=due_on,
        outcome=Outcome.PENDING,
        queued_at=ReviewItem._meta.get_field("queued_at").get_db_prep_save(queued_at, connection),
    )
    with connection.cursor() as cursor:
        cursor.execute(*statement)
        return cursor.rowcount


def _insert_enqueue_audit_rows(*, batch: ReviewBatch, ids: list[int], actor: roles.Actor) -> int:
    """The chunk's ``enqueue`` audit rows, each with the stage its new review item waits at."""
    source, params = sql.batch_items_of(batch_id=batch.pk, ids=ids)
    return audit_rows_insert(
        source=source,
        params=params,
        transition="enqueue",
        from_state=State.DIAGNOSED,
        to_state=State.IN_REVIEW,
        actor=actor,
        fields=AuditFields(batch_id=batch.pk, details={"period": batch.period}),
        per_row={"application_id": "i.application_id", "stage": "i.stage"},
    )


def batch_state_change(*, batch: ReviewBatch, to_state: str, actor: roles.Actor, action: str) -> None:
    """A batch's state moves only here, with its audit row (the caller holds the lock and the transaction)."""
    record_audit(
        subject="review_batch",
        subject_id=batch.pk,
        action=action,
        actor=actor,
        from_state=batch.state,
        to_state=to_state,
        details={"region": batch.region_id, "period": batch.period},
    )
    batch.state = to_state


def batch_close_if_done(*, batch_id: int) -> bool:
    """Close an assembled batch whose every item is decided. One conditional statement (compare-and-set on the
    state): safe to call any time; the audit row goes with it, by the system."""
    from django.db.models import Exists, OuterRef

    pending = ReviewItem.objects.filter(batch_id=OuterRef("pk"), outcome=Outcome.PENDING)
    with transaction.atomic():
        closed = (
            ReviewBatch.objects.filter(pk=batch_id, state=BatchState.REVIEWING, assembled_at__isnull=False)
            .exclude(Exists(pending))
            .update(state=BatchState.CLOSED, closed_at=timezone.now())
        )
        if closed:
            record_audit(
                subject="review_batch",
                subject_id=batch_id,
                action="closed",
                actor=get_system_user(),
                from_state=BatchState.REVIEWING,
                to_state=BatchState.CLOSED,
                details={"reason": "every item decided"},
            )
    return bool(closed)
