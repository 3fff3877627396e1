"""Stage decisions (approve / reject / return) with separation of duties, bulk decisions, and the 两病 medication
enrollment a rejection may open.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from enrollment.coverage import person_standing, two_diseases_codes
from enrollment.models import Application, ApplicationKind, InsuranceType, State
from enrollment.services import (
    AuditFields,
    application_approve,
    application_insert,
    audit_entry,
    get_system_user,
    lock_application,
    renewal_closed,
    run_transition,
)
from kernel import roles
from kernel.errors import DomainError, InvalidInput, NotPermitted, RuleViolation, TransitionRefused
from reviews import selectors
from reviews.models import (
    Decision,
    Outcome,
    RejectReason,
    ReviewItem,
    StageDecision,
)
from reviews.policies import ensure_separation_of_duties
from reviews.services import supplements
from reviews.services.assembly import batch_close_if_done
from reviews.services.deadlines import application_due_on, item_stage_due_on

# ---------------------------------------------------------------------------
# Stage decisions
# ---------------------------------------------------------------------------


@dataclass
class DecisionInput:
    decision: str
    reason_code: str = ""
    reason: str = ""
    two_diseases: bool = False
    supplement_codes: list[str] = field(default_factory=list)

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
        if self.decision == Decision.RETURN:
            self.supplement_codes = supplements.clean_codes(self.supplement_codes, self.reason)
        elif self.supplement_codes:
            raise InvalidInput(_("A 补正 checklist goes with a return only."), details={"field": "supplement_codes"})
        if self.decision == Decision.RETURN and not self.reason and not self.supplement_codes:
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
    actor: roles.Actor,
    decision: str,
    reason_code: str = "",
    reason: str = "",
    two_diseases: bool = False,
    supplement_codes: Sequence[str] = (),
) -> ReviewItem:
    """Decide the stage a claimed item waits at.

    Approve moves it to the next stage, or approves the application at the last stage (validity set
    by application_approve); reject or return ends the review at any stage.
    """
    data = DecisionInput(
        decision=decision,
        reason_code=reason_code,
        reason=reason,
        two_diseases=two_diseases,
        supplement_codes=list(supplement_codes),
    )
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
        decides_application = data.decision == Decision.REJECT or (
            data.decision == Decision.APPROVE and item.next_stage() is None
        )
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
            due_on=item.due_on,
            application_due_on=application_due_on(application) if decides_application else None,
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
            details={
                "round": item.round,
                "decision": data.decision,
                **({"supplement_codes": data.supplement_codes} if data.decision == Decision.RETURN else {}),
            },
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
            item.due_on = item_stage_due_on(application=application, stage=next_stage, entered=now)
            item.claimed_by = None
            item.lease_expires_at = None
            item.save(update_fields=["stage", "queued_at", "due_on", "claimed_by", "lease_expires_at"])
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
                application=application,
                name="return_for_information",
                actor=actor,
                audit=audit,
                missing=supplements.clinic_text(data.supplement_codes, data.reason),
            )
            supplements.supplement_open(
                application=application, decision=record, codes=data.supplement_codes, note=data.reason, actor=actor
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


def _ensure_may_decide(*, item: ReviewItem, actor: roles.Actor) -> None:
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


def _ensure_claimed(*, item: ReviewItem, actor: roles.Actor) -> None:
    if item.claimed_by_id != actor.pk or item.lease_expires_at is None or item.lease_expires_at <= timezone.now():
        raise RuleViolation(
            _("Claim this item before deciding it (your claim may have expired)."),
            code="not_claimed",
            details={"item": item.pk},
        )


def _enrol_two_diseases(*, rejected: Application, actor: roles.Actor, audit: AuditFields) -> Application:
    """两病 medication coverage for a person whose hypertension/diabetes did not meet the chronic criteria.

    Filed, diagnosed (carried forward from the rejected application) and approved in the reviewer's
    step; every transition writes its own audit row. It never counts toward the chronic limit.
    """
    if rejected.disease.code not in two_diseases_codes():
        raise RuleViolation(
            _("两病 medication coverage exists only for %(codes)s.") % {"codes": ", ".join(two_diseases_codes())},
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
    details = {"kind": ApplicationKind.TWO_DISEASES, "fallback_for": rejected.pk}
    application_insert(
        application=enrolment,
        actor=actor,
        fields=AuditFields(batch_id=audit.batch_id, details=details),
        duplicate_message=_("The person already holds 两病 medication coverage for %(disease)s.")
        % {"disease": rejected.disease},
    )
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
    actor: roles.Actor,
    decision: str,
    reason_code: str = "",
    reason: str = "",
    two_diseases: bool = False,
    supplement_codes: Sequence[str] = (),
) -> BulkResult:
    """One decision and reason for a selection of claimed items; each item is its own transaction and
    gets its own audit row, and one refused item does not undo the others. The 两病 choice applies to
    every item exactly as in ``review_decide`` (an item it cannot apply to fails, with its reason)."""
    DecisionInput(
        decision=decision,
        reason_code=reason_code,
        reason=reason,
        two_diseases=two_diseases,
        supplement_codes=list(supplement_codes),
    ).validate()
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
                supplement_codes=supplement_codes,
            )
        except DomainError as exc:
            result.failed.append({"item": item_id, "code": exc.code, "message": str(exc.message)})
        else:
            result.decided.append(item_id)
    return result
