"""Renewal (复审): a new application linked to the enrollment it continues."""

from __future__ import annotations

import datetime as dt

from django.db import transaction
from django.utils import timezone

from enrollment import policies, selectors
from enrollment.models import (
    Application,
    ApplicationKind,
    Institution,
    Reminder,
    ReminderStatus,
    State,
)
from enrollment.services.audit import AuditFields, get_system_user, lock_application, run_transition
from enrollment.services.filing import application_submit
from kernel import roles

# ---------------------------------------------------------------------------
# Renewal (复审), the daily validity sweep and expiry reminders (docs/design.md: Validity, renewal and reminders)
# ---------------------------------------------------------------------------


def application_renew(
    *, application_id: int, actor: roles.Actor, treating_institution: Institution | None = None
) -> Application:
    """File the renewal (复审) of an enrollment, from ``valid_until − renewal window`` on.

    The renewal is linked to the enrollment (``renews``) and carries its diagnosis forward for the
    physician to re-attest or update (``application_diagnose``); it does not count twice toward the
    limit, and while it is pending the old enrollment keeps covering and is not expired by the sweep.
    Once the old enrollment has lapsed (expired, or past ``valid_until + grace``) there is nothing
    left to continue: what is filed is a new application whose period starts on its approval.
    Filing cancels the old enrollment's reminders that have not gone out.
    """
    today = timezone.localdate()
    with transaction.atomic():
        previous = lock_application(application_id)
        policies.ensure_renewal_open(actor, previous, today=today)
        valid_until = previous.valid_until
        assert valid_until is not None  # ensure_renewal_open refuses a long-term enrollment
        policy = selectors.policy_for_region(previous.region)
        lapsed = previous.state == State.EXPIRED or today > valid_until + dt.timedelta(days=policy.grace_days)
        if lapsed and previous.state != State.EXPIRED:
            # The sweep has not reached it yet (a missed night): apply its rule to this row now, so
            # that the new filing does not collide with an enrollment that is over.
            run_transition(
                application=previous,
                name="expire",
                actor=get_system_user(),
                audit=AuditFields(details={"sweep_date": today.isoformat(), "on": "renewal filing"}),
            )
        renewal = application_submit(
            person=previous.person,
            disease=previous.disease,
            treating_institution=treating_institution or previous.treating_institution,
            actor=actor,
            kind=ApplicationKind.NEW if lapsed else ApplicationKind.RENEWAL,
            renews=None if lapsed else previous,
        )
        # The diagnosis the enrollment rests on, for the physician to re-attest or update; the
        # renewal stays "submitted" until they do (diagnosed_at/diagnosed_by stay empty). The provisional
        # bound is fixed now, so a later change of the policy's grace days cannot rewrite past answers.
        Application.objects.filter(pk=renewal.pk).update(
            icd10_code=previous.icd10_code,
            diagnosis_date=previous.diagnosis_date,
            physician=previous.physician_id,
            provisional_until=None if lapsed else valid_until + dt.timedelta(days=policy.grace_days),
        )
        Reminder.objects.filter(
            application=previous, status__in=(ReminderStatus.PENDING, ReminderStatus.FAILED)
        ).update(status=ReminderStatus.CANCELLED, last_error="renewal filed", updated_at=timezone.now())
    renewal.refresh_from_db()
    return renewal
