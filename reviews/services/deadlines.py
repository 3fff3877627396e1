"""Stage due dates on review items, and the daily escalation of items past them (docs/reviews.md, "Deadlines")."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone
from django.utils.translation import gettext as _

from enrollment.models import Application
from enrollment.services import AuditFields, audit_entry
from kernel import roles
from kernel.errors import NotPermitted
from reviews import deadlines
from reviews.models import Escalation, Outcome, ReviewItem, Stage
from reviews.services.notify import notify, supervisor_recipients
from reviews.workdays import WorkCalendar


def item_stage_due_on(*, application: Application, stage: str, entered: dt.datetime) -> dt.date | None:
    """The stage's due date for an item entering ``stage`` at ``entered`` (None: no limit set)."""
    return deadlines.stage_due_on(
        WorkCalendar(),
        limits=deadlines.time_limits_for(application.region),
        disease_type=application.disease.disease_type,
        stage=stage,
        entered=entered,
    )


def application_due_on(application: Application) -> dt.date | None:
    """The application's promised date as of now (补正 pauses counted), kept on the decision that decides it for
    the on-time rates per region and institution (None: no limit, or a 两病 enrollment)."""
    deadline = deadlines.application_deadline(application)
    return deadline.due_on if deadline else None


@dataclass
class EscalationResult:
    escalated: list[int] = field(default_factory=list)  # item ids
    notified: int = 0


def escalate_overdue(*, actor: roles.Actor, today: dt.date | None = None) -> EscalationResult:
    """Beat, daily: every pending item past its stage's due date is escalated once per stage — an
    ``Escalation`` row (unique per item and stage: a second run, or two at once, adds nothing), an audit row,
    and an in-app notification and e-mail to the stage's supervisors (the region's centre officers and
    administrators)."""
    if not roles.is_system(actor):
        raise NotPermitted(_("Only the system escalates overdue review items."))
    today = today or timezone.localdate()
    result = EscalationResult()
    candidates = (
        ReviewItem.objects.filter(outcome=Outcome.PENDING, due_on__lt=today)
        .exclude(Exists(Escalation.objects.filter(item_id=OuterRef("pk"), stage=OuterRef("stage"))))
        .order_by("due_on", "id")
        .values_list("pk", flat=True)
    )
    for item_id in list(candidates):
        notified = _escalate_one(item_id=item_id, actor=actor, today=today)
        if notified is not None:
            result.escalated.append(item_id)
            result.notified += notified
    return result


def _escalate_one(*, item_id: int, actor: roles.Actor, today: dt.date) -> int | None:
    with transaction.atomic():
        item = (
            ReviewItem.objects.select_for_update(of=("self",))
            .select_related("application__region", "application__person", "region")
            .filter(pk=item_id, outcome=Outcome.PENDING, due_on__lt=today)
            .first()
        )
        if item is None or item.due_on is None:
            return None
        try:
            with transaction.atomic():
                Escalation.objects.create(item=item, stage=item.stage, due_on=item.due_on, escalated_at=timezone.now())
        except IntegrityError:
            return None  # escalated already (a second run, or a concurrent one that committed first)
        application = item.application
        audit_entry(
            application_id=application.pk,
            transition="escalate",
            from_state=application.state,
            to_state=application.state,
            actor=actor,
            fields=AuditFields(
                reason_code="stage_overdue",
                batch_id=item.batch_id,
                stage=item.stage,
                details={"due_on": item.due_on.isoformat(), "item": item.pk},
            ),
        ).save()
        stage_label = Stage(item.stage).label if item.stage in Stage.values else item.stage
        count = notify(
            recipients=supervisor_recipients(item.region),
            kind="stage_overdue",
            application=application,
            subject=_("Overdue review: application #%(id)s, %(stage)s was due on %(due)s")
            % {"id": application.pk, "stage": stage_label, "due": item.due_on.isoformat()},
            message=_(
                "Application #%(id)s has waited at the %(stage)s stage since %(since)s; the promised date was "
                "%(due)s. Please see that it is decided."
            )
            % {
                "id": application.pk,
                "stage": stage_label,
                "since": timezone.localdate(item.queued_at).isoformat(),
                "due": item.due_on.isoformat(),
            },
        )
        Escalation.objects.filter(item=item, stage=item.stage).update(notified=count)
        return count
