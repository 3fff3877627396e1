"""补正 (request supplements): a return asks the clinic for named documents or corrections; the review clock
pauses while the clinic holds the application; a request left unanswered is reminded once and then the
application is withdrawn by the system. docs/reviews.md, "补正".
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from enrollment import selectors as enrollment_selectors
from enrollment.models import Application, State
from enrollment.services import AuditFields, audit_entry, lock_application, renewal_closed, run_transition
from kernel import roles
from kernel.errors import InvalidInput, NotPermitted
from reviews.models import (
    StageDecision,
    SupplementPolicy,
    SupplementReason,
    SupplementRequest,
    SupplementState,
)
from reviews.services.notify import clinic_recipients, notify
from reviews.workdays import WorkCalendar


def masked_name(name: str) -> str:
    return (name[:1] + "*" * (len(name) - 1)) if name else ""


def clean_codes(codes: Sequence[str] | None, note: str) -> list[str]:
    """The checklist as given, validated: known codes, in the checklist's order; "other" needs a note."""
    given = list(dict.fromkeys(codes or []))
    unknown = [code for code in given if code not in SupplementReason.values]
    if unknown:
        raise InvalidInput(
            _("Unknown 补正 item: %(codes)s. Choose from: %(choices)s.")
            % {"codes": ", ".join(unknown), "choices": ", ".join(SupplementReason.values)},
            code="invalid_reason",
            details={"field": "supplement_codes"},
        )
    if SupplementReason.OTHER in given and not note.strip():
        raise InvalidInput(_("Say in the note what else the clinic should add."), details={"field": "reason"})
    return [code for code in SupplementReason.values if code in given]


def supplement_policy_for(application: Application) -> tuple[int, int]:
    """(answer_days, reminder_days) of the region's nearest policy row, else the settings' defaults."""
    lineage = enrollment_selectors.region_lineage_ids(application.region)
    rows = {p.region_id: p for p in SupplementPolicy.objects.filter(region_id__in=lineage)}
    for region_id in lineage:
        if region_id in rows:
            return rows[region_id].answer_days, rows[region_id].reminder_days
    return int(settings.REVIEW_SUPPLEMENT_ANSWER_DAYS), int(settings.REVIEW_SUPPLEMENT_REMINDER_DAYS)


def supplement_open(
    *, application: Application, decision: StageDecision, codes: Sequence[str], note: str, actor: roles.Actor
) -> SupplementRequest:
    """Record the 补正 request of a return decision and tell the clinic. The caller (review_decide,
    application_return_immediately) holds the transaction and the application lock, and has written the
    return's audit row, which carries the codes."""
    answer_days, reminder_days = supplement_policy_for(application)
    today = timezone.localdate()
    answer_by = today + dt.timedelta(days=answer_days)
    request = SupplementRequest.objects.create(
        application=application,
        decision=decision,
        codes=list(codes),
        note=note,
        requested_by=actor,
        requested_at=decision.decided_at,
        answer_by=answer_by,
        remind_on=answer_by - dt.timedelta(days=reminder_days) if reminder_days else None,
    )
    reasons = "；".join(request.reasons())
    notify(
        recipients=clinic_recipients(application),
        kind="supplement_requested",
        application=application,
        subject=_("Application #%(id)s (%(name)s) needs supplements (补正)")
        % {"id": application.pk, "name": masked_name(application.person.name)},
        message=_(
            "The reviewer asks for: %(reasons)s. %(note)s Add them and resubmit by %(answer_by)s; after that "
            "day the application is withdrawn."
        )
        % {"reasons": reasons or _("see the note"), "note": note, "answer_by": answer_by.isoformat()},
    )
    return request


def on_transition(*, application: Application, transition: str, from_state: str, actor: roles.Actor) -> None:
    """enrollment.services.TRANSITION_HOOKS (reviews/apps.py): a resubmission answers the open 补正 request
    (the clock resumes: the paused working days are stored); a withdrawal or closing closes it."""
    if from_state != State.RETURNED:
        return
    request = (
        SupplementRequest.objects.select_for_update()
        .filter(application=application, state=SupplementState.OPEN)
        .first()
    )
    if request is None:
        return
    now = timezone.now()
    if transition == "resubmit":
        request.state = SupplementState.ANSWERED
        request.answered_at = now
        request.paused_working_days = WorkCalendar().working_days_between(
            timezone.localdate(request.requested_at), timezone.localdate(now)
        )
        request.save(update_fields=["state", "answered_at", "paused_working_days"])
    elif transition in ("withdraw", "close") and request.state == SupplementState.OPEN:
        request.state = SupplementState.CLOSED
        request.answered_at = now
        request.save(update_fields=["state", "answered_at"])


@dataclass
class SweepResult:
    reminded: list[int] = field(default_factory=list)
    withdrawn: list[int] = field(default_factory=list)


def supplements_sweep(*, actor: roles.Actor, today: dt.date | None = None) -> SweepResult:
    """Beat, daily: remind each open request once on its reminder day, withdraw each unanswered past its
    answer-by day. Safe to run twice: each step re-checks the request's state under its lock."""
    if not roles.is_system(actor):
        raise NotPermitted(_("Only the system sweeps 补正 requests."))
    today = today or timezone.localdate()
    result = SweepResult()
    due_reminders = SupplementRequest.objects.filter(
        state=SupplementState.OPEN, reminded_at__isnull=True, remind_on__lte=today, answer_by__gte=today
    ).values_list("pk", flat=True)
    for request_id in list(due_reminders):
        if supplement_remind(request_id=request_id, actor=actor, today=today):
            result.reminded.append(request_id)
    overdue = SupplementRequest.objects.filter(state=SupplementState.OPEN, answer_by__lt=today).values_list(
        "pk", flat=True
    )
    for request_id in list(overdue):
        if supplement_withdraw_unanswered(request_id=request_id, actor=actor, today=today):
            result.withdrawn.append(request_id)
    return result


def supplement_remind(*, request_id: int, actor: roles.Actor, today: dt.date) -> bool:
    """The one reminder of an open request (a conditional update: a second run finds it sent)."""
    with transaction.atomic():
        request = (
            SupplementRequest.objects.select_for_update()
            .select_related("application__person")
            .filter(pk=request_id, state=SupplementState.OPEN, reminded_at__isnull=True)
            .first()
        )
        if request is None:
            return False
        request.reminded_at = timezone.now()
        request.save(update_fields=["reminded_at"])
        application = request.application
        audit_entry(
            application_id=application.pk,
            transition="supplement_reminder",
            from_state=application.state,
            to_state=application.state,
            actor=actor,
            fields=AuditFields(
                reason_code="supplement_reminder",
                details={"supplement_request": request.pk, "answer_by": request.answer_by.isoformat()},
            ),
        ).save()
        days_left = (request.answer_by - today).days
        notify(
            recipients=clinic_recipients(application),
            kind="supplement_reminder",
            application=application,
            subject=_("Reminder: application #%(id)s (%(name)s) still needs supplements (补正)")
            % {"id": application.pk, "name": masked_name(application.person.name)},
            message=_(
                "Add what the reviewer asked for (%(reasons)s) and resubmit by %(answer_by)s (%(days)s days "
                "left); after that day the application is withdrawn."
            )
            % {
                "reasons": "；".join(request.reasons()) or request.note,
                "answer_by": request.answer_by.isoformat(),
                "days": days_left,
            },
        )
    return True


def supplement_withdraw_unanswered(*, request_id: int, actor: roles.Actor, today: dt.date) -> bool:
    """Withdraw the application of a request not answered by its day (system actor, audited)."""
    with transaction.atomic():
        application_id = (
            SupplementRequest.objects.filter(pk=request_id, state=SupplementState.OPEN)
            .values_list("application_id", flat=True)
            .first()
        )
        if application_id is None:
            return False
        application = lock_application(application_id)  # the application first, as the resubmit path does
        request = SupplementRequest.objects.select_for_update().filter(pk=request_id).first()
        if request is None or request.state != SupplementState.OPEN or request.answer_by >= today:
            return False
        if application.state != State.RETURNED:
            request.state = SupplementState.CLOSED
            request.save(update_fields=["state"])
            return False
        run_transition(
            application=application,
            name="withdraw",
            actor=actor,
            audit=AuditFields(
                reason_code="supplement_unanswered",
                reason=_("Not resubmitted with the supplements (补正) by %(day)s.")
                % {"day": request.answer_by.isoformat()},
                details={"supplement_request": request.pk, "answer_by": request.answer_by.isoformat()},
            ),
        )
        renewal_closed(renewal=application, actor=actor)
        # The hook closed the request as "closed"; this one is the system's withdrawal.
        SupplementRequest.objects.filter(pk=request.pk).update(state=SupplementState.WITHDRAWN)
        notify(
            recipients=clinic_recipients(application),
            kind="supplement_withdrawn",
            application=application,
            subject=_("Application #%(id)s (%(name)s) was withdrawn: no supplements (补正) by %(day)s")
            % {
                "id": application.pk,
                "name": masked_name(application.person.name),
                "day": request.answer_by.isoformat(),
            },
            message=_("The person may file a new application with complete documents."),
        )
    return True


def clinic_text(codes: Sequence[str], note: str) -> str:
    """What the clinic reads as the reason of the return: the checklist in plain words, then the note."""
    labels = dict(SupplementReason.choices)
    parts = [str(labels[code]) for code in codes if code in labels]
    text = "；".join(parts)
    note = note.strip()
    if text and note:
        return f"{text}。{note}"
    return text or note
