"""Approval and the validity period it starts (valid_from / valid_until by the region's policy)."""

from __future__ import annotations

import datetime as dt

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from enrollment import selectors
from enrollment.models import (
    COVERING_STATES,
    Application,
    ApplicationKind,
    BenefitStart,
    State,
)
from enrollment.periods import first_of_next_month, period_end
from enrollment.services.audit import AuditFields, lock_application, run_transition
from kernel import roles
from kernel.errors import RuleViolation

# ---------------------------------------------------------------------------
# Approval and its validity period (docs/design.md: Validity, renewal and reminders)
# ---------------------------------------------------------------------------


def validity_for(*, application: Application, decided_on: dt.date) -> tuple[dt.date, dt.date | None]:
    """The period an approval gives (docs/entitlement.md).

    A renewal continues the enrollment it renews: it starts the day after the old one ends, whatever
    day it is approved (no gap, no overlap). Otherwise the region's policy decides where the period
    starts: the filing date (default: the monthly batch costs the patient nothing), the diagnosis date
    (never before filing), the decision date or the first day of the next month. 两病 medication
    coverage has the policy's own validity (0: no fixed end while resident-insured).
    """
    previous = application.renews
    policy = selectors.policy_for_region(application.region)
    if previous is not None and previous.valid_until is not None and previous.state in COVERING_STATES:
        valid_from = previous.valid_until + dt.timedelta(days=1)
    else:
        filed_on = timezone.localtime(application.filed_at).date()
        rule = policy.benefit_start
        if rule == BenefitStart.FILING_DATE:
            valid_from = filed_on
        elif rule == BenefitStart.DIAGNOSIS_DATE:
            valid_from = max(application.diagnosis_date or filed_on, filed_on)
        elif rule == BenefitStart.NEXT_MONTH:
            valid_from = first_of_next_month(decided_on)
        else:
            valid_from = decided_on
    if application.kind == ApplicationKind.TWO_DISEASES:
        return valid_from, period_end(valid_from, policy.two_diseases_validity_months)
    return valid_from, period_end(valid_from, application.disease.validity_months)


def _refuse_renewal_of_terminated(application: Application) -> None:
    """A renewal continues its enrollment; once that was terminated there is nothing to approve."""
    previous = application.renews
    if previous is not None and previous.state == State.TERMINATED:
        raise RuleViolation(
            _(
                "The enrollment this renewal continues (application #%(id)s) was terminated on %(date)s; "
                "reject the renewal instead."
            )
            % {"id": previous.pk, "date": previous.ended_on.isoformat() if previous.ended_on else "?"},
            code="renewed_enrollment_terminated",
            details={"application": previous.pk},
        )


def approval_side_effects(application: Application, actor: roles.Actor, audit: AuditFields) -> None:
    """After an approval: a renewal supersedes the enrollment it renews (same transaction)."""
    previous_id = application.renews_id
    if previous_id is None:
        return
    previous = Application.objects.select_for_update().get(pk=previous_id)
    if previous.state in (State.APPROVED, State.EXPIRING):
        run_transition(
            application=previous,
            name="supersede",
            actor=actor,
            audit=AuditFields(batch_id=audit.batch_id, details={"renewed_by": application.pk}),
        )


def application_approve(
    *, application_id: int, actor: roles.Actor, audit: AuditFields = AuditFields(), immediate: bool = False
) -> Application:
    """The final approval: sets the validity period. Reviews call this for the last stage."""
    with transaction.atomic():
        application = lock_application(application_id)
        _refuse_renewal_of_terminated(application)
        valid_from, valid_until = validity_for(application=application, decided_on=timezone.localdate())
        run_transition(
            application=application,
            name="approve_immediately" if immediate else "approve",
            actor=actor,
            audit=AuditFields(
                reason_code=audit.reason_code,
                reason=audit.reason,
                batch_id=audit.batch_id,
                stage=audit.stage,
                details={
                    **(audit.details or {}),
                    "valid_from": valid_from.isoformat(),
                    "valid_until": valid_until.isoformat() if valid_until else None,
                },
            ),
            valid_from=valid_from,
            valid_until=valid_until,
        )
        approval_side_effects(application, actor, audit)
    return application
