"""Delivering expiry reminders (SMS to the patient, email and in-app list for the clinic) and marking them read."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.mail import send_mail
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from enrollment import notifications, selectors
from enrollment.models import (
    ACTIVE_STATES,
    COVERING_STATES,
    ApplicationKind,
    Reminder,
    ReminderChannel,
    ReminderStatus,
    State,
)
from kernel import roles
from kernel.errors import InvalidInput


def reminder_deliver(*, reminder_id: int) -> Reminder:
    """Send one SMS or e-mail reminder, at most once.

    The conditional UPDATE pending/failed → sending is the claim: of two workers holding the same
    id, one gets it and the other sends nothing. A gateway error leaves the row ``failed`` for the
    task's retry with back-off; a reminder no longer due (renewal filed, enrollment ended) is cancelled.
    """
    claimed = Reminder.objects.filter(
        pk=reminder_id,
        status__in=(ReminderStatus.PENDING, ReminderStatus.FAILED),
        channel__in=(ReminderChannel.SMS, ReminderChannel.EMAIL),
        attempts__lt=settings.REMINDER_MAX_ATTEMPTS,
    ).update(status=ReminderStatus.SENDING, attempts=F("attempts") + 1, updated_at=timezone.now())
    reminder = Reminder.objects.select_related("application").get(pk=reminder_id)
    if not claimed:
        return reminder
    application = reminder.application
    if application.kind == ApplicationKind.RENEWAL and application.state != State.APPROVED:
        # The notice that an undiagnosed renewal will be withdrawn: due while it still waits for the diagnosis.
        if application.state != State.SUBMITTED:
            return _reminder_finish(reminder, ReminderStatus.CANCELLED, error="no longer due: diagnosis recorded")
    elif application.state not in COVERING_STATES or application.renewals.filter(state__in=ACTIVE_STATES).exists():
        return _reminder_finish(reminder, ReminderStatus.CANCELLED, error="no longer due: renewed or ended")
    try:
        if reminder.channel == ReminderChannel.SMS:
            notifications.get_sms_backend().send(
                notifications.SMSMessage(
                    to=reminder.recipient, text=reminder.message, reference=f"reminder-{reminder.pk}"
                )
            )
        else:
            send_mail(reminder.subject, reminder.message, None, reminder.recipient.split(","), fail_silently=False)
    except (notifications.DeliveryError, OSError) as exc:
        return _reminder_finish(reminder, ReminderStatus.FAILED, error=str(exc)[:500] or type(exc).__name__)
    return _reminder_finish(reminder, ReminderStatus.SENT)


def _reminder_finish(reminder: Reminder, status: str, *, error: str = "") -> Reminder:
    now = timezone.now()
    values: dict[str, Any] = {"status": status, "last_error": error, "updated_at": now}
    if status == ReminderStatus.SENT:
        values["sent_at"] = now
    Reminder.objects.filter(pk=reminder.pk, status=ReminderStatus.SENDING).update(**values)
    reminder.refresh_from_db()
    return reminder


def reminder_mark_read(*, reminder_id: int, actor: roles.Actor) -> Reminder:
    """A clinic acknowledges an in-app reminder of its own."""
    reminder = selectors.reminder_inbox(actor).filter(pk=reminder_id).first()
    if reminder is None:
        raise InvalidInput(_("Reminder #%(id)s does not exist.") % {"id": reminder_id}, code="not_found")
    if reminder.read_at is None:
        Reminder.objects.filter(pk=reminder.pk, read_at__isnull=True).update(read_at=timezone.now())
        reminder.refresh_from_db()
    return reminder
