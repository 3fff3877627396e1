"""In-app notifications (站内消息) and their e-mail copies: clinics for 补正, supervisors for escalations.

The rows are written in the caller's transaction; the e-mails go after commit through Django's configured
e-mail backend, and a failed e-mail is logged (the in-app row stays). Texts never carry an ID number or a
diagnosis code: the person's masked name and the application number only.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from enrollment import selectors as enrollment_selectors
from enrollment.models import Application, Region
from kernel import roles
from reviews.models import Notification

logger = logging.getLogger(__name__)


def clinic_recipients(application: Application) -> QuerySet[Any]:
    """Active clinic staff of the institution that filed the application (who resubmit it)."""
    return (
        get_user_model()
        .objects.filter(
            is_active=True, groups__name=roles.CLINIC_STAFF, profile__institution_id=application.filing_institution_id
        )
        .distinct()
    )


def supervisor_recipients(region: Region) -> QuerySet[Any]:
    """The stage's supervisors: centre officers whose institution (or own region) is the region or one above
    it, and administrators of the region's lineage or of no region."""
    lineage = enrollment_selectors.region_lineage_ids(region)
    officers = Q(groups__name=roles.CENTER_OFFICER) & (
        Q(profile__institution__region_id__in=lineage) | Q(profile__region_id__in=lineage)
    )
    admins = (Q(groups__name=roles.ADMIN) | Q(is_superuser=True)) & (
        Q(profile__region_id__in=lineage) | Q(profile__region__isnull=True) | Q(profile__isnull=True)
    )
    return get_user_model().objects.filter(is_active=True).filter(officers | admins).distinct()


def notify(*, recipients: Iterable[Any], kind: str, application: Application | None, subject: str, message: str) -> int:
    """One in-app notification per recipient, and an e-mail to those with an address after commit."""
    now = timezone.now()
    users = list(recipients)
    Notification.objects.bulk_create(
        [
            Notification(
                recipient=user,
                kind=kind,
                application=application,
                subject=subject[:200],
                message=message,
                created_at=now,
            )
            for user in users
        ]
    )
    addresses = sorted({user.email for user in users if user.email})
    if addresses:

        def send() -> None:
            try:
                send_mail(subject, message, None, addresses, fail_silently=False)
            except Exception:  # the in-app notification stands; the mail server's trouble is the operator's
                logger.exception("notification e-mail %s failed (%d recipients)", kind, len(addresses))

        transaction.on_commit(send)
    return len(users)


def notifications_mark_read(*, actor: roles.Actor) -> int:
    """The user read their notifications (their own rows only)."""
    with transaction.atomic():
        return Notification.objects.filter(recipient=actor, read_at__isnull=True).update(read_at=timezone.now())
