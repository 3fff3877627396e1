"""Withdraw, close, resubmit and terminate: the transitions outside the review."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from enrollment import policies
from enrollment.models import (
    COVERING_STATES,
    Application,
    ApplicationKind,
    State,
    TerminationReason,
)
from enrollment.services.audit import AuditFields, get_system_user, lock_application, run_transition
from enrollment.services.documents import StoredFiles, prepare_document, store_document
from kernel import roles
from kernel.errors import InvalidInput, NotPermitted

# ---------------------------------------------------------------------------
# Withdraw, resubmit, terminate
# ---------------------------------------------------------------------------


def application_withdraw(*, application_id: int, actor: roles.Actor, reason: str = "") -> Application:
    with transaction.atomic():
        application = lock_application(application_id)
        policies.ensure_filing_institution(application, actor)
        run_transition(application=application, name="withdraw", actor=actor, audit=AuditFields(reason=reason))
        renewal_closed(renewal=application, actor=actor)
        return application


# Called with the application after the system closed it (status events): the reviews app registers
# one that takes a closed application's pending review item off the queue (reviews/apps.py).
APPLICATION_CLOSED_HOOKS: list[Any] = []

# Actions another app offers on the application page, by name: ``service(application_id=, actor=, reason=)``.
# The reviews app registers "approve_immediately" (即时办结 is a review decision) so that the enrollment
# pages offer it without importing reviews.
APPLICATION_ACTION_SERVICES: dict[str, Any] = {}


def application_close(
    *,
    application_id: int,
    actor: roles.Actor,
    reason_code: str,
    reason: str = "",
    details: dict[str, Any] | None = None,
) -> Application:
    """The system closes a pending application the person can no longer hold (death, insurance ended)."""
    if not roles.is_system(actor):
        raise NotPermitted(_("Only the system closes applications."))
    with transaction.atomic():
        application = lock_application(application_id)
        from_state = application.state
        run_transition(
            application=application,
            name="close",
            actor=actor,
            audit=AuditFields(reason_code=reason_code, reason=reason, details={**(details or {}), "from": from_state}),
        )
        for hook in APPLICATION_CLOSED_HOOKS:
            hook(application=application, from_state=from_state)
        renewal_closed(renewal=application, actor=actor)
    return application


def renewal_closed(*, renewal: Application, actor: roles.Actor) -> Application | None:
    """A renewal was rejected, withdrawn or closed: provisional coverage already given is honoured.

    Before the old enrollment's end nothing changes (the sweep expires it on time). After it, the old
    enrollment ends on the decision date, never retroactively, but not past the provisional bound fixed
    when the renewal was filed (复审期间待遇照常). The caller holds the transaction.
    """
    if renewal.kind != ApplicationKind.RENEWAL or renewal.renews_id is None:
        return None
    previous = Application.objects.select_for_update().get(pk=renewal.renews_id)
    today = timezone.localdate()
    if previous.state not in COVERING_STATES or previous.valid_until is None or today <= previous.valid_until:
        return None
    bound = renewal.provisional_until or previous.valid_until
    ended_on = min(today, bound)
    return run_transition(
        application=previous,
        name="expire",
        actor=get_system_user(),
        audit=AuditFields(
            reason_code="renewal_" + renewal.state,
            details={"ended_on": ended_on.isoformat(), "renewal": renewal.pk, "provisional_until": bound.isoformat()},
        ),
        ended_on=ended_on,
    )


def application_resubmit(
    *, application_id: int, actor: roles.Actor, note: str = "", documents: Sequence[tuple[str, UploadedFile]] = ()
) -> Application:
    """A returned application comes back, with what was missing, to wait for the next batch."""
    prepared = [prepare_document(doc_type, upload) for doc_type, upload in documents]
    with StoredFiles() as files, transaction.atomic():
        application = lock_application(application_id)
        policies.ensure_filing_institution(application, actor)
        for doc in prepared:
            store_document(application=application, prepared=doc, actor=actor, files=files)
        return run_transition(application=application, name="resubmit", actor=actor, audit=AuditFields(reason=note))


def application_terminate(
    *, application_id: int, actor: roles.Actor, reason: str, note: str = "", ended_on: dt.date | None = None
) -> Application:
    """End an enrollment early (death, loss of coverage, moved out, cured, disease removed)."""
    if reason not in TerminationReason.values:
        raise InvalidInput(
            _("Choose a termination reason: %(choices)s.") % {"choices": ", ".join(TerminationReason.values)},
            code="invalid_reason",
            details={"field": "reason"},
        )
    ended_on = ended_on or timezone.localdate()
    with transaction.atomic():
        # Renewals first, then the enrollment: the order approving a renewal takes its locks in.
        renewals = list(
            Application.objects.select_for_update(of=("self",))
            .filter(renews_id=application_id, state__in=RENEWAL_WITHDRAWN_ON_TERMINATION)
            .order_by("pk")
        )
        application = lock_application(application_id)
        if application.valid_from and ended_on < application.valid_from:
            raise InvalidInput(_("The end date is before the enrollment started."), details={"field": "ended_on"})
        if application.valid_until and ended_on > application.valid_until:
            ended_on = application.valid_until
        run_transition(
            application=application,
            name="terminate",
            actor=actor,
            audit=AuditFields(reason_code=reason, reason=note, details={"ended_on": ended_on.isoformat()}),
            reason=reason,
            ended_on=ended_on,
        )
        # There is nothing left to continue: a pending renewal is withdrawn with it (one a reviewer is
        # already deciding cannot be approved — see validity_for).
        for renewal in renewals:
            run_transition(
                application=renewal,
                name="withdraw",
                actor=get_system_user(),
                audit=AuditFields(
                    reason_code="enrollment_terminated",
                    reason=_("The enrollment this renewal continues was terminated."),
                    details={"terminated": application.pk, "by": getattr(actor, "pk", None)},
                ),
            )
        return application


# States of a pending renewal that terminating its enrollment withdraws (the withdraw transition's sources).
RENEWAL_WITHDRAWN_ON_TERMINATION = (State.SUBMITTED, State.DIAGNOSED, State.RETURNED)
