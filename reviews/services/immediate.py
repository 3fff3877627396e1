"""Immediate mode (即时办结): a center officer decides right after the diagnosis, without waiting for the batch —
approves, rejects (reason code + text) or returns for 补正 (coded checklist + note), with the batch decisions'
separation of duties, StageDecision rows and audit rows."""

from __future__ import annotations

from collections.abc import Sequence

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from enrollment.models import Application
from enrollment.services import (
    AuditFields,
    application_approve,
    lock_application,
    renewal_closed,
    run_transition,
)
from kernel import roles
from kernel.errors import InvalidInput
from reviews import selectors
from reviews.models import (
    Decision,
    RejectReason,
    Stage,
    StageDecision,
)

# The rule (who decides on the spot, and when) is reviews.policies', shared with the application page.
from reviews.policies import ensure_immediate_decision, may_decide_immediately  # noqa: F401 - re-exported
from reviews.services import supplements

# ---------------------------------------------------------------------------
# Immediate mode (即时办结)
# ---------------------------------------------------------------------------


def _record(
    *, application: Application, actor: roles.Actor, decision: str, reason_code: str = "", reason: str = ""
) -> StageDecision:
    from reviews import deadlines

    deadline = deadlines.application_deadline(application)
    due_on = deadline.due_on if deadline else None
    return StageDecision.objects.create(
        application=application,
        round=selectors.next_round(application.pk),
        stage=Stage.IMMEDIATE,
        decision=decision,
        reason_code=reason_code,
        reason=reason,
        decided_by=actor,
        decided_at=timezone.now(),
        due_on=due_on,
        # A return leaves the application undecided: only an approval or a rejection keeps the promised date.
        application_due_on=due_on if decision in (Decision.APPROVE, Decision.REJECT) else None,
    )


def application_approve_immediately(*, application_id: int, actor: roles.Actor, reason: str = "") -> Application:
    """A center officer of a may-diagnose institution approves a diagnosed application on the spot."""
    with transaction.atomic():
        application = lock_application(application_id)
        ensure_immediate_decision(application=application, actor=actor)
        record = _record(application=application, actor=actor, decision=Decision.APPROVE, reason=reason.strip())
        return application_approve(
            application_id=application.pk,
            actor=actor,
            immediate=True,
            audit=AuditFields(reason=reason.strip(), stage=Stage.IMMEDIATE, details={"round": record.round}),
        )


def application_reject_immediately(
    *, application_id: int, actor: roles.Actor, reason_code: str, reason: str
) -> Application:
    """The officer rejects a diagnosed immediate-mode application: the batch's reason codes, a reason in words."""
    reason = (reason or "").strip()
    if reason_code not in RejectReason.values:
        raise InvalidInput(
            _("Choose a reason code for the rejection: %(choices)s.") % {"choices": ", ".join(RejectReason.values)},
            code="invalid_reason",
            details={"field": "reason_code"},
        )
    if not reason:
        raise InvalidInput(
            _("Explain the rejection in a sentence the applicant can read."), details={"field": "reason"}
        )
    with transaction.atomic():
        application = lock_application(application_id)
        ensure_immediate_decision(application=application, actor=actor)
        record = _record(
            application=application, actor=actor, decision=Decision.REJECT, reason_code=reason_code, reason=reason
        )
        run_transition(
            application=application,
            name="reject_immediately",
            actor=actor,
            audit=AuditFields(
                reason_code=reason_code,
                reason=reason,
                stage=Stage.IMMEDIATE,
                details={"round": record.round, "decision": Decision.REJECT},
            ),
            reason_code=reason_code,
            reason=reason,
        )
        renewal_closed(renewal=application, actor=actor)
        return application


def application_return_immediately(
    *, application_id: int, actor: roles.Actor, supplement_codes: Sequence[str] = (), reason: str = ""
) -> Application:
    """The officer returns a diagnosed immediate-mode application for 补正: the clinic resubmits it, and the
    officer decides it again on the spot."""
    reason = (reason or "").strip()
    codes = supplements.clean_codes(supplement_codes, reason)
    if not codes and not reason:
        raise InvalidInput(
            _("Say what is missing, so that the clinic can complete the application."), details={"field": "reason"}
        )
    with transaction.atomic():
        application = lock_application(application_id)
        ensure_immediate_decision(application=application, actor=actor)
        record = _record(application=application, actor=actor, decision=Decision.RETURN, reason=reason)
        run_transition(
            application=application,
            name="return_immediately",
            actor=actor,
            audit=AuditFields(
                reason=reason,
                stage=Stage.IMMEDIATE,
                details={"round": record.round, "decision": Decision.RETURN, "supplement_codes": codes},
            ),
            missing=supplements.clinic_text(codes, reason),
        )
        supplements.supplement_open(application=application, decision=record, codes=codes, note=reason, actor=actor)
        return application
