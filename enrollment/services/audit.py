"""The audit kit: the system actor, audit rows (one or many), running a transition under a row lock. Every app's
services write their state changes through these helpers, so the rule "one audit row per transition, in the same
transaction" lives in one place.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection
from django.utils import timezone
from django.utils.translation import gettext as _

from enrollment import policies, sql
from enrollment.models import (
    Application,
    AuditEntry,
    RecordAuditEntry,
)
from kernel import roles
from kernel.errors import InvalidInput
from kernel.sql import Fragment, sql_in  # noqa: F401 - sql_in: re-exported (services.sql_in)

User = get_user_model()


# ---------------------------------------------------------------------------
# The system actor and the audit trail
# ---------------------------------------------------------------------------


def get_system_user() -> roles.Actor:
    """The actor of beat jobs: an inactive account that cannot log in."""
    user, created = User.objects.get_or_create(
        username=settings.SYSTEM_USERNAME, defaults={"is_active": False, "first_name": "system"}
    )
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    return user


@dataclass(frozen=True)
class AuditFields:
    reason_code: str = ""
    reason: str = ""
    batch_id: int | None = None
    stage: str = ""
    details: dict[str, Any] | None = None


def audit_entry(
    *, application_id: int, transition: str, from_state: str, to_state: str, actor: roles.Actor, fields: AuditFields
) -> AuditEntry:
    """An unsaved audit row; per-row paths save it, bulk paths bulk_create many (ids only, no instances)."""
    system = roles.is_system(actor)
    return AuditEntry(
        application_id=application_id,
        transition=transition,
        from_state=from_state,
        to_state=to_state,
        actor=actor,
        is_system=system,
        at=timezone.now(),
        reason_code=fields.reason_code,
        reason=fields.reason,
        batch_id=fields.batch_id,
        stage=fields.stage,
        details=fields.details or {},
    )


def record_audit(
    *,
    subject: str,
    subject_id: int | None,
    action: str,
    actor: roles.Actor,
    from_state: str = "",
    to_state: str = "",
    details: dict[str, Any] | None = None,
) -> RecordAuditEntry:
    """The audit row of a change to a record other than an application or a person (the catalogue, a roster
    import's or a review batch's state). The caller holds the transaction of the change."""
    return RecordAuditEntry.objects.create(
        subject=subject,
        subject_id=subject_id,
        action=action,
        from_state=from_state,
        to_state=to_state,
        actor=actor,
        is_system=roles.is_system(actor),
        details=details or {},
    )


def audit_rows_insert(
    *,
    source: str,
    params: Sequence[Any],
    transition: str,
    from_state: str,
    to_state: str,
    actor: roles.Actor,
    fields: AuditFields,
    per_row: dict[str, str],
) -> int:
    """Bulk paths: one audit row per row of ``source`` (``FROM … WHERE …``) in one ``INSERT … SELECT``.

    Every value but the ``per_row`` columns (SQL expressions over ``source``, by attname; at least
    ``application_id``) comes from an ``audit_entry`` prototype, so a bulk row is exactly the row the
    per-row path writes. The caller holds the transaction.
    """
    prototype = audit_entry(
        application_id=0, transition=transition, from_state=from_state, to_state=to_state, actor=actor, fields=fields
    )
    statement = sql.audit_rows_insert(prototype=prototype, source=Fragment(source, tuple(params)), per_row=per_row)
    with connection.cursor() as cursor:
        cursor.execute(*statement)
        return cursor.rowcount


def run_transition(
    *,
    application: Application,
    name: str,
    actor: roles.Actor,
    audit: AuditFields = AuditFields(),
    **kwargs: Any,
) -> Application:
    """Call transition ``name`` on a locked application, save it and write its one audit row.

    The caller holds the transaction and the row lock.
    """
    from_state = application.state
    policies.ensure_transition(application, name, actor)
    getattr(application, name)(**kwargs)
    application.save()
    audit_entry(
        application_id=application.pk,
        transition=name,
        from_state=from_state,
        to_state=application.state,
        actor=actor,
        fields=audit,
    ).save()
    for hook in TRANSITION_HOOKS:
        hook(application=application, transition=name, from_state=from_state, actor=actor)
    return application


# Called inside the transaction of every per-row transition, after its audit row: apps above this one
# (the national platform link's outbox) register here in their AppConfig.ready, so that enrollment never
# imports them and their rows commit or roll back with the change.
TRANSITION_HOOKS: list[Any] = []


def lock_application(application_id: int) -> Application:
    try:
        return (
            Application.objects.select_for_update(of=("self",))
            .select_related("person", "disease", "region", "filing_institution", "treating_institution")
            .get(pk=application_id)
        )
    except Application.DoesNotExist:
        raise InvalidInput(_("Application #%(id)s does not exist.") % {"id": application_id}, code="not_found")
