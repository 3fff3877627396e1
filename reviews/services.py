"""Every write of the reviews app: batch assembly, claims and leases, stage decisions, immediate approval.

Application state changes go through enrollment.services (run_transition, application_approve), so
each writes its one audit row in the same transaction. Batch assembly is the one bulk path: it moves
applications with a queryset update and bulk-inserts their audit rows, chunk by chunk.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from enrollment import roles
from enrollment import selectors as enrollment_selectors
from enrollment.coverage import person_standing
from enrollment.errors import DomainError, InvalidInput, NotPermitted, RuleViolation, TransitionRefused
from enrollment.models import Application, ApplicationKind, Disease, InsuranceType, Region, State
from enrollment.services import (
    AuditFields,
    application_approve,
    audit_entry,
    audit_rows_insert,
    get_system_user,
    lock_application,
    renewal_closed,
    run_transition,
    sql_in,
)
from reviews import selectors
from reviews.models import (
    BatchState,
    Decision,
    Outcome,
    RejectReason,
    ReviewBatch,
    ReviewItem,
    Stage,
    StageDecision,
)

logger = logging.getLogger(__name__)


def _lease_minutes() -> int:
    return int(getattr(settings, "REVIEW_LEASE_MINUTES", 30))


def _two_diseases_codes() -> tuple[str, ...]:
    return tuple(getattr(settings, "TWO_DISEASES_CODES", ("M03900", "M01600")))


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
    actor: Any,
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
        raise NotPermitted(_("Only the system assembles review batches."))
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
            batch.state = BatchState.REVIEWING
            batch.save(update_fields=["assembled_at", "state"])
    batch_close_if_done(batch_id=batch.pk)
    batch.refresh_from_db()
    logger.info("review batch %s %s assembled: %s items", batch.region_id, batch.period, batch.item_count)
    return batch


def _assemble_chunk(
    *, batch_id: int, actor: Any, size: int, after: tuple[dt.datetime, int] | None = None
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
    return last_diagnosed_at, last_id


def _insert_review_items(*, batch: ReviewBatch, ids: list[int], queued_at: dt.datetime) -> int:
    """One ``INSERT … SELECT`` of the chunk's review items: round = the application's last round + 1,
    stages = its disease's own or its type's default (the few diseases of the chunk, decided here)."""
    stages_field = ReviewItem._meta.get_field("stages")
    by_disease = {
        pk: list(own) if own else _default_stages(disease_type)
        for pk, disease_type, own in Disease.objects.filter(applications__pk__in=ids)
        .distinct()
        .values_list("pk", "disease_type", "review_stages")
    }
    case = " ".join("WHEN %s THEN %s" for _pk in by_disease)
    stages_params = [
        value for pk, stages in by_disease.items() for value in (pk, stages_field.get_db_prep_save(stages, connection))
    ]
    stage_params = [value for pk, stages in by_disease.items() for value in (pk, stages[0])]
    where, where_params = sql_in("a.id", ids)
    sql = (
        "INSERT INTO reviews_reviewitem "
        "(batch_id, application_id, region_id, round, stages, stage, outcome, queued_at) "
        "SELECT %s, a.id, %s, "
        "COALESCE((SELECT MAX(r.round) FROM reviews_reviewitem r WHERE r.application_id = a.id), 0) + 1, "
        f"CASE a.disease_id {case} END, CASE a.disease_id {case} END, %s, %s "
        f"FROM enrollment_application a WHERE {where}"
    )
    queued_at_value = ReviewItem._meta.get_field("queued_at").get_db_prep_save(queued_at, connection)
    params = [batch.pk, batch.region_id, *stages_params, *stage_params, Outcome.PENDING, queued_at_value, *where_params]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def _insert_enqueue_audit_rows(*, batch: ReviewBatch, ids: list[int], actor: Any) -> int:
    """The chunk's ``enqueue`` audit rows, each with the stage its new review item waits at."""
    where, where_params = sql_in("i.application_id", ids)
    return audit_rows_insert(
        source=f"FROM reviews_reviewitem i WHERE i.batch_id = %s AND {where}",
        params=[batch.pk, *where_params],
        transition="enqueue",
        from_state=State.DIAGNOSED,
        to_state=State.IN_REVIEW,
        actor=actor,
        fields=AuditFields(batch_id=batch.pk, details={"period": batch.period}),
        per_row={"application_id": "i.application_id", "stage": "i.stage"},
    )


def _default_stages(disease_type: str) -> list[str]:
    defaults = getattr(settings, "REVIEW_STAGES", selectors.DEFAULT_REVIEW_STAGES)
    return list(defaults.get(disease_type) or ["initial_review"])


def batches_assemble_due(*, day: dt.date, actor: Any) -> list[selectors.DueBatch]:
    """Assemble every batch due on ``day`` in this process (the task fans out instead)."""
    due = selectors.due_batches(day)
    for item in due:
        batch_assemble(region_id=item.region_id, period=item.period, actor=actor)
    return due


def batch_close_if_done(*, batch_id: int) -> bool:
    """Close an assembled batch whose every item is decided. One statement: safe to call any time."""
    from django.db.models import Exists, OuterRef

    pending = ReviewItem.objects.filter(batch_id=OuterRef("pk"), outcome=Outcome.PENDING)
    closed = (
        ReviewBatch.objects.filter(pk=batch_id, state=BatchState.REVIEWING, assembled_at__isnull=False)
        .exclude(Exists(pending))
        .update(state=BatchState.CLOSED, closed_at=timezone.now())
    )
    return bool(closed)


# ---------------------------------------------------------------------------
# Queues: claim and release
# ---------------------------------------------------------------------------


def queue_claim(*, actor: Any, count: int, stage: str | None = None) -> list[ReviewItem]:
    """Lease the next ``count`` waiting items to the reviewer, oldest first.

    ``skip_locked`` lets concurrent claims pass each other instead of queueing on the same rows,
    and the lease condition is re-checked on the locked rows, so no item is ever given twice.
    """
    if not roles.has_any_role(actor, roles.REVIEWER):
        raise NotPermitted(_("Only reviewers claim review items."))
    if count < 1 or count > 200:
        raise InvalidInput(_("Claim between 1 and 200 items at a time."), details={"field": "count"})
    if stage is not None and stage not in selectors.stages_held(actor):
        raise NotPermitted(_("You do not hold the %(stage)s stage.") % {"stage": stage}, details={"stage": stage})
    now = timezone.now()
    expires = now + dt.timedelta(minutes=_lease_minutes())
    with transaction.atomic():
        ids = list(
            selectors.queue_for(actor, stage=stage)
            .filter(selectors.lease_free(now))
            .select_for_update(skip_locked=True, of=("self",))
            .values_list("pk", flat=True)[:count]
        )
        ReviewItem.objects.filter(pk__in=ids, outcome=Outcome.PENDING).update(
            claimed_by=actor, lease_expires_at=expires
        )
    return list(
        ReviewItem.objects.filter(pk__in=ids)
        .select_related("batch", "region", "claimed_by", "application__person", "application__disease")
        .order_by("queued_at", "id")
    )


def queue_release(*, actor: Any, item_ids: Sequence[int] | None = None) -> int:
    """Give claimed items back to the queue (all of the reviewer's when no ids are given)."""
    queryset = ReviewItem.objects.filter(claimed_by=actor, outcome=Outcome.PENDING)
    if item_ids is not None:
        queryset = queryset.filter(pk__in=list(item_ids))
    with transaction.atomic():
        return queryset.update(claimed_by=None, lease_expires_at=None)


# ---------------------------------------------------------------------------
# Stage decisions
# ---------------------------------------------------------------------------


def ensure_separation_of_duties(*, application: Application, actor: Any, stage: str) -> None:
    """The same person may not decide two stages of one application, nor one they filed or diagnosed."""
    if application.filed_by_id == actor.pk:
        raise RuleViolation(
            _("You filed this application, so you may not review it."),
            code="separation_of_duties",
            details={"rule": "filed_by"},
        )
    physician_user = application.physician.user_id if application.physician_id else None
    if actor.pk in (application.diagnosed_by_id, physician_user):
        raise RuleViolation(
            _("You recorded the diagnosis of this application, so you may not review it."),
            code="separation_of_duties",
            details={"rule": "diagnosed_by"},
        )
    other = (
        StageDecision.objects.filter(application=application, decided_by=actor)
        .exclude(stage=stage)
        .values_list("stage", flat=True)
        .first()
    )
    if other:
        raise RuleViolation(
            _("You already decided the %(other)s stage of this application; another reviewer decides %(stage)s.")
            % {"other": Stage(other).label if other in Stage.values else other, "stage": stage},
            code="separation_of_duties",
            details={"rule": "two_stages", "decided_stage": other},
        )


@dataclass
class DecisionInput:
    decision: str
    reason_code: str = ""
    reason: str = ""
    two_diseases: bool = False

    def validate(self) -> None:
        if self.decision not in Decision.values:
            raise InvalidInput(
                _("Choose a decision: %(choices)s.") % {"choices": ", ".join(Decision.values)},
                details={"field": "decision"},
            )
        self.reason = (self.reason or "").strip()
        if self.decision == Decision.REJECT:
            if self.reason_code not in RejectReason.values:
                raise InvalidInput(
                    _("Choose a reason code for the rejection: %(choices)s.")
                    % {"choices": ", ".join(RejectReason.values)},
                    code="invalid_reason",
                    details={"field": "reason_code"},
                )
            if not self.reason:
                raise InvalidInput(
                    _("Explain the rejection in a sentence the applicant can read."), details={"field": "reason"}
                )
        if self.decision == Decision.RETURN and not self.reason:
            raise InvalidInput(
                _("Say what is missing, so that the clinic can complete the application."),
                details={"field": "reason"},
            )
        if self.two_diseases and not (self.decision == Decision.REJECT and self.reason_code == "criteria_not_met"):
            raise InvalidInput(
                _("两病 medication coverage is offered only with a rejection for “criteria not met”."),
                code="two_diseases_not_applicable",
                details={"field": "two_diseases"},
            )


def review_decide(
    *,
    item_id: int,
    actor: Any,
    decision: str,
    reason_code: str = "",
    reason: str = "",
    two_diseases: bool = False,
) -> ReviewItem:
    """Decide the stage a claimed item waits at.

    Approve moves it to the next stage, or approves the application at the last stage (validity set
    by application_approve); reject or return ends the review at any stage.
    """
    data = DecisionInput(decision=decision, reason_code=reason_code, reason=reason, two_diseases=two_diseases)
    data.validate()
    with transaction.atomic():
        try:
            item = ReviewItem.objects.select_for_update(of=("self",)).select_related("batch").get(pk=item_id)
        except ReviewItem.DoesNotExist:
            raise InvalidInput(_("Review item #%(id)s does not exist.") % {"id": item_id}, code="not_found")
        application = lock_application(item.application_id)
        _ensure_may_decide(item=item, actor=actor)
        if application.state != State.IN_REVIEW:
            raise TransitionRefused(
                _("This application is %(state)s; it is not in review.") % {"state": application.get_state_display()},
                details={"state": application.state},
            )
        ensure_separation_of_duties(application=application, actor=actor, stage=item.stage)
        _ensure_claimed(item=item, actor=actor)
        now = timezone.now()
        record = StageDecision(
            application=application,
            item=item,
            batch_id=item.batch_id,
            round=item.round,
            stage=item.stage,
            decision=data.decision,
            reason_code=data.reason_code if data.decision == Decision.REJECT else "",
            reason=data.reason,
            decided_by=actor,
            decided_at=now,
        )
        try:
            with transaction.atomic():
                record.save()
        except IntegrityError:
            raise RuleViolation(_("This stage of the application has already been decided."), code="already_decided")
        audit = AuditFields(
            reason_code=record.reason_code,
            reason=data.reason,
            batch_id=item.batch_id,
            stage=item.stage,
            details={"round": item.round, "decision": data.decision},
        )
        next_stage = item.next_stage()
        if data.decision == Decision.APPROVE and next_stage is not None:
            # Not a state change: the application stays in review and waits for the next stage.
            audit_entry(
                application_id=application.pk,
                transition="stage_approve",
                from_state=application.state,
                to_state=application.state,
                actor=actor,
                fields=audit,
            ).save()
            item.stage = next_stage
            item.queued_at = now
            item.claimed_by = None
            item.lease_expires_at = None
            item.save(update_fields=["stage", "queued_at", "claimed_by", "lease_expires_at"])
            return item
        if data.decision == Decision.APPROVE:
            application_approve(application_id=application.pk, actor=actor, audit=audit)
            item.outcome = Outcome.APPROVED
        elif data.decision == Decision.REJECT:
            run_transition(
                application=application,
                name="reject",
                actor=actor,
                audit=audit,
                reason_code=data.reason_code,
                reason=data.reason,
            )
            item.outcome = Outcome.REJECTED
            renewal_closed(renewal=application, actor=actor)
            if data.two_diseases:
                record.two_diseases_application = _enrol_two_diseases(rejected=application, actor=actor, audit=audit)
                record.save(update_fields=["two_diseases_application"])
        else:
            run_transition(
                application=application, name="return_for_information", actor=actor, audit=audit, missing=data.reason
            )
            item.outcome = Outcome.RETURNED
        item.decided_at = now
        item.lease_expires_at = None
        item.save(update_fields=["outcome", "decided_at", "lease_expires_at"])
        batch_id = item.batch_id
        batch_close_if_done(batch_id=batch_id)
        # Two last decisions committing together each see the other's item pending; whichever commits
        # last sees both once committed.
        transaction.on_commit(lambda: batch_close_if_done(batch_id=batch_id))
    return item


def _ensure_may_decide(*, item: ReviewItem, actor: Any) -> None:
    if item.outcome != Outcome.PENDING:
        raise RuleViolation(
            _("This item is already decided (%(outcome)s).") % {"outcome": item.get_outcome_display()},
            code="already_decided",
        )
    if not roles.has_any_role(actor, roles.REVIEWER):
        raise NotPermitted(_("Only reviewers decide review stages."))
    region_ids = selectors.reviewer_region_ids(actor)
    if region_ids is not None and item.region_id not in region_ids:
        raise NotPermitted(_("This item belongs to another region's review."))
    if item.stage not in selectors.stages_held(actor):
        raise NotPermitted(
            _("You do not hold the %(stage)s stage.") % {"stage": item.stage}, details={"stage": item.stage}
        )


def _ensure_claimed(*, item: ReviewItem, actor: Any) -> None:
    if item.claimed_by_id != actor.pk or item.lease_expires_at is None or item.lease_expires_at <= timezone.now():
        raise RuleViolation(
            _("Claim this item before deciding it (your claim may have expired)."),
            code="not_claimed",
            details={"item": item.pk},
        )


def _enrol_two_diseases(*, rejected: Application, actor: Any, audit: AuditFields) -> Application:
    """两病 medication coverage for a person whose hypertension/diabetes did not meet the chronic criteria.

    Filed, diagnosed (carried forward from the rejected application) and approved in the reviewer's
    step; every transition writes its own audit row. It never counts toward the chronic limit.
    """
    if rejected.disease.code not in _two_diseases_codes():
        raise RuleViolation(
            _("两病 medication coverage exists only for %(codes)s.") % {"codes": ", ".join(_two_diseases_codes())},
            code="two_diseases_not_applicable",
        )
    standing = person_standing(person=rejected.person)
    if standing.insurance_type != InsuranceType.RESIDENT:
        raise RuleViolation(
            _(
                "两病 medication coverage is a benefit of resident insurance (390); this person is insured as an "
                "employee (%(type)s). Reject without it."
            )
            % {"type": standing.insurance_type},
            code="two_diseases_residents_only",
            details={"insurance_type": standing.insurance_type},
        )
    if not standing.insured:
        raise RuleViolation(
            _("The person is not insured here on this day (%(status)s); 两病 medication coverage cannot start.")
            % {"status": standing.status},
            code="not_insured",
            details={"status": standing.status},
        )
    system = get_system_user()
    enrolment = Application(
        person=rejected.person,
        disease=rejected.disease,
        kind=ApplicationKind.TWO_DISEASES,
        filing_institution=rejected.filing_institution,
        treating_institution=rejected.treating_institution,
        region=rejected.region,
        filed_by=actor,
    )
    try:
        with transaction.atomic():
            enrolment.save()
    except IntegrityError:
        raise RuleViolation(
            _("The person already holds 两病 medication coverage for %(disease)s.") % {"disease": rejected.disease},
            code="duplicate_disease",
        )
    details = {"kind": ApplicationKind.TWO_DISEASES, "fallback_for": rejected.pk}
    audit_entry(
        application_id=enrolment.pk,
        transition="submit",
        from_state="",
        to_state=enrolment.state,
        actor=actor,
        fields=AuditFields(batch_id=audit.batch_id, details=details),
    ).save()
    run_transition(
        application=enrolment,
        name="diagnose",
        actor=system,
        audit=AuditFields(details={**details, "carried_forward": True}),
        physician=rejected.physician,
        icd10_code=rejected.icd10_code,
        diagnosis_date=rejected.diagnosis_date,
        recorded_by=rejected.diagnosed_by,
    )
    run_transition(application=enrolment, name="enqueue", actor=system, audit=AuditFields(batch_id=audit.batch_id))
    application_approve(
        application_id=enrolment.pk,
        actor=actor,
        audit=AuditFields(reason_code="two_diseases", batch_id=audit.batch_id, stage=audit.stage, details=details),
    )
    return enrolment


@dataclass
class BulkResult:
    decided: list[int] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)


def review_decide_bulk(
    *,
    item_ids: Sequence[int],
    actor: Any,
    decision: str,
    reason_code: str = "",
    reason: str = "",
    two_diseases: bool = False,
) -> BulkResult:
    """One decision and reason for a selection of claimed items; each item is its own transaction and
    gets its own audit row, and one refused item does not undo the others. The 两病 choice applies to
    every item exactly as in ``review_decide`` (an item it cannot apply to fails, with its reason)."""
    DecisionInput(decision=decision, reason_code=reason_code, reason=reason, two_diseases=two_diseases).validate()
    if not item_ids:
        raise InvalidInput(_("Select at least one item."), details={"field": "items"})
    if len(item_ids) > 200:
        raise InvalidInput(_("Decide at most 200 items at a time."), details={"field": "items"})
    result = BulkResult()
    for item_id in dict.fromkeys(item_ids):
        try:
            review_decide(
                item_id=item_id,
                actor=actor,
                decision=decision,
                reason_code=reason_code,
                reason=reason,
                two_diseases=two_diseases,
            )
        except DomainError as exc:
            result.failed.append({"item": item_id, "code": exc.code, "message": str(exc.message)})
        else:
            result.decided.append(item_id)
    return result


# ---------------------------------------------------------------------------
# Immediate mode (即时办结)
# ---------------------------------------------------------------------------


def application_approve_immediately(*, application_id: int, actor: Any, reason: str = "") -> Application:
    """A center officer of a may-diagnose institution approves a diagnosed application on the spot."""
    if not roles.has_any_role(actor, roles.CENTER_OFFICER):
        raise NotPermitted(_("Only a chronic-disease-centre officer approves on the spot."))
    institution = enrollment_selectors.user_institution(actor)
    if institution is None or not institution.may_diagnose:
        raise NotPermitted(_("Immediate approval is done at an institution with diagnosing rights."))
    with transaction.atomic():
        application = lock_application(application_id)
        if institution.pk not in (application.filing_institution_id, application.treating_institution_id):
            raise NotPermitted(_("The application was not filed at or treated by your institution."))
        # The catalogue's review mode, or the immediate list of the policy governing the application's region.
        if not application.review_is_immediate():
            raise TransitionRefused(
                _("%(disease)s is reviewed in the monthly batch in %(region)s, not on the spot.")
                % {"disease": application.disease, "region": application.region},
                code="not_immediate",
                details={"region": application.region.code},
            )
        if application.state != State.DIAGNOSED:
            raise TransitionRefused(
                _("This application is %(state)s; only a diagnosed application is approved on the spot.")
                % {"state": application.get_state_display()},
                details={"state": application.state},
            )
        ensure_separation_of_duties(application=application, actor=actor, stage=Stage.IMMEDIATE)
        round_ = selectors.next_round(application.pk)
        StageDecision.objects.create(
            application=application,
            round=round_,
            stage=Stage.IMMEDIATE,
            decision=Decision.APPROVE,
            reason=reason.strip(),
            decided_by=actor,
            decided_at=timezone.now(),
        )
        return application_approve(
            application_id=application.pk,
            actor=actor,
            immediate=True,
            audit=AuditFields(reason=reason.strip(), stage=Stage.IMMEDIATE, details={"round": round_}),
        )


# ---------------------------------------------------------------------------
# An application the system closed (status events) leaves the queue
# ---------------------------------------------------------------------------


def review_items_close_for(*, application: Application, from_state: str) -> int:
    """Registered in enrollment.services.APPLICATION_CLOSED_HOOKS (reviews/apps.py): the pending item of
    an application closed while in review is closed too, and its batch may close."""
    if from_state != State.IN_REVIEW:
        return 0
    batch_ids = list(
        ReviewItem.objects.filter(application=application, outcome=Outcome.PENDING).values_list("batch_id", flat=True)
    )
    closed = ReviewItem.objects.filter(application=application, outcome=Outcome.PENDING).update(
        outcome=Outcome.WITHDRAWN, decided_at=timezone.now(), claimed_by=None, lease_expires_at=None
    )
    for batch_id in batch_ids:
        transaction.on_commit(lambda batch_id=batch_id: batch_close_if_done(batch_id=batch_id))
    return closed
