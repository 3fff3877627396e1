"""The daily validity sweep: approved → expiring → expired, and the expiry reminders that fall due, set-based and
chunked, with one audit row per change and each (enrollment, offset) reminder created at most once.
"""

from __future__ import annotations

import datetime as dt
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from enrollment import notifications, sql
from enrollment.models import (
    ACTIVE_STATES,
    COVERING_STATES,
    Application,
    ApplicationKind,
    Policy,
    Region,
    Reminder,
    ReminderChannel,
    ReminderStatus,
    StaffProfile,
    State,
)
from enrollment.services.audit import AuditFields, audit_rows_insert
from enrollment.services.lifecycle import application_close
from kernel import roles
from kernel.errors import NotPermitted
from kernel.sql import chunks, compiled, db_value
from kernel.task_queue import enqueue


@dataclass
class SweepResult:
    day: dt.date
    expiring: int = 0
    expired: int = 0
    reminders_due: int = 0
    reminders_skipped: int = 0
    status_events_applied: int = 0
    categories_ended: int = 0
    renewals_warned: int = 0
    renewals_withdrawn: int = 0
    to_send: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class _SweepRules:
    renewal_window_days: int
    grace_days: int
    reminder_offsets: tuple[int, ...]  # descending
    two_diseases_reminders: bool = False
    renewal_diagnosis_limit_days: int = 90
    renewal_diagnosis_warning_days: int = 14


def _sweep_rule_groups() -> dict[_SweepRules, list[int]]:
    """Region ids grouped by the validity rules of their effective policy (own or nearest ancestor's).

    Regions and policies are few; walking the tree in memory keeps the sweep to a handful of queries.
    """
    parents = dict(Region.objects.values_list("pk", "parent_id"))
    policies = {p.region_id: p for p in Policy.objects.all()}
    default = Policy()
    groups: dict[_SweepRules, list[int]] = {}
    for region_id in parents:
        node: int | None = region_id
        policy = default
        for _depth in range(10):
            if node is None:
                break
            if node in policies:
                policy = policies[node]
                break
            node = parents.get(node)
        offsets = tuple(sorted({int(x) for x in (policy.reminder_offsets or [])}, reverse=True))
        rules = _SweepRules(
            policy.renewal_window_days,
            policy.grace_days,
            offsets,
            policy.two_diseases_reminders,
            policy.renewal_diagnosis_limit_days,
            policy.renewal_diagnosis_warning_days,
        )
        groups.setdefault(rules, []).append(region_id)
    return groups


def _with_renewal_pending() -> Exists:
    return Exists(Application.objects.filter(renews=OuterRef("pk"), state__in=ACTIVE_STATES))


def _candidate_ids(queryset: Any) -> array[int]:
    """The candidates' ids, read once in id order (8 bytes each): the chunks are cut from this list
    instead of re-reading and re-sorting the remaining candidates for every page."""
    return array("q", queryset.order_by("pk").values_list("pk", flat=True).iterator(chunk_size=10_000))


def _sweep_transition(
    *,
    candidates: Any,
    sources: Sequence[str],
    transition: str,
    to_state: str,
    actor: roles.Actor,
    day: dt.date,
    chunk_size: int,
) -> int:
    """Move every candidate to ``to_state`` in chunks: one transaction per chunk, in which one
    ``UPDATE … RETURNING id`` per source state moves the rows that still qualify (the candidate
    conditions and the source state are re-checked on the locked rows, so a row changed meanwhile —
    a renewal approved, a termination — is left alone) and one ``INSERT … SELECT`` writes their audit
    rows. A crash loses at most the chunk in progress, which the next run picks up."""
    fields = AuditFields(details={"sweep_date": day.isoformat()})
    changed_total = 0
    for chunk in chunks(_candidate_ids(candidates), chunk_size):
        with transaction.atomic():
            updated_at = db_value(Application, "updated_at", timezone.now())
            for source in sources:
                statement = sql.sweep_transition_update(
                    transition=transition,
                    source_state=source,
                    to_state=to_state,
                    updated_at=updated_at,
                    candidates=compiled(candidates.filter(pk__in=chunk, state=source)),
                )
                with connection.cursor() as cursor:
                    cursor.execute(*statement)
                    moved = [row[0] for row in cursor.fetchall()]
                if not moved:
                    continue
                rows, params = sql.applications_by_id(moved)
                audit_rows_insert(
                    source=rows,
                    params=params,
                    transition=transition,
                    from_state=source,
                    to_state=to_state,
                    actor=actor,
                    fields=fields,
                    per_row={"application_id": "a.id"},
                )
                changed_total += len(moved)
    return changed_total


def validity_sweep(
    *, day: dt.date | None = None, actor: roles.Actor, chunk_size: int | None = None, enqueue: bool = True
) -> SweepResult:
    """The daily sweep (docs/design.md: Validity, renewal and reminders), for ``day`` (default today, Asia/Shanghai).

    1. approved/expiring → expired once ``valid_until + grace`` has passed, unless a renewal is
       pending (benefits continue while it is);
    2. approved → expiring once ``day`` is inside the renewal window;
    3. reminder rows for every offset now due (see ``_create_due_reminders``).

    Everything is decided from the dates, never from "what happened yesterday": running it twice
    changes nothing the second time, and after missed days one run catches up.
    With ``enqueue`` the SMS and e-mail rows are handed to ``send_reminder`` tasks after commit;
    otherwise their ids are returned in ``to_send`` for the caller to deliver.
    """
    if not roles.is_system(actor):
        raise NotPermitted(_("Only the system runs the validity sweep."))
    from enrollment.services import person_status  # it calls back into these services

    day = day or timezone.localdate()
    chunk_size = chunk_size or settings.VALIDITY_SWEEP_CHUNK_SIZE
    result = SweepResult(day=day)
    # Status first: an enrollment a death ends is not reminded about.
    result.status_events_applied = len(person_status.status_events_apply_due(day=day, actor=actor))
    result.categories_ended = person_status.categories_lapse_sweep(day=day, actor=actor)
    for rules, region_ids in _sweep_rule_groups().items():
        _undiagnosed_renewals(region_ids=region_ids, rules=rules, day=day, actor=actor, result=result, enqueue=enqueue)
        covering = Application.objects.filter(
            region_id__in=region_ids, state__in=COVERING_STATES, valid_until__isnull=False
        )
        result.expired += _sweep_transition(
            candidates=covering.filter(valid_until__lt=day - dt.timedelta(days=rules.grace_days)).filter(
                ~_with_renewal_pending()
            ),
            sources=COVERING_STATES,
            transition="expire",
            to_state=State.EXPIRED,
            actor=actor,
            day=day,
            chunk_size=chunk_size,
        )
        result.expiring += _sweep_transition(
            candidates=covering.filter(
                state=State.APPROVED, valid_until__lte=day + dt.timedelta(days=rules.renewal_window_days)
            ),
            sources=(State.APPROVED,),
            transition="mark_expiring",
            to_state=State.EXPIRING,
            actor=actor,
            day=day,
            chunk_size=chunk_size,
        )
        _create_due_reminders(
            covering=covering, rules=rules, day=day, chunk_size=chunk_size, result=result, enqueue=enqueue
        )
    # Rows whose send was never handed over (a crash between commit and enqueue) or whose retries
    # were lost: claimed atomically by the sender, so handing them over again cannot send twice.
    stale = timezone.now() - dt.timedelta(minutes=15)
    leftovers = list(
        Reminder.objects.filter(channel__in=(ReminderChannel.SMS, ReminderChannel.EMAIL))
        .filter(
            Q(status=ReminderStatus.PENDING, created_at__lt=stale)
            | Q(status=ReminderStatus.FAILED, attempts__lt=settings.REMINDER_MAX_ATTEMPTS, updated_at__lt=stale)
        )
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    _hand_over(leftovers, result, enqueue)
    return result


def _hand_over(reminder_ids: list[int], result: SweepResult, enqueue: bool) -> None:
    known = set(result.to_send)
    fresh = [pk for pk in reminder_ids if pk not in known]
    result.to_send.extend(fresh)
    if enqueue and fresh:
        transaction.on_commit(lambda: _enqueue_sends(fresh))


def _enqueue_sends(reminder_ids: list[int]) -> None:
    for reminder_id in reminder_ids:
        enqueue("enrollment.tasks.send_reminder", reminder_id)  # by name: the tasks module imports this one


def _undiagnosed_renewals(
    *, region_ids: list[int], rules: _SweepRules, day: dt.date, actor: roles.Actor, result: SweepResult, enqueue: bool
) -> None:
    """A renewal nobody re-attested within the policy's limit is withdrawn (its provisional coverage
    is honoured up to that day); the filing clinic is told ``renewal_diagnosis_warning_days`` before.

    Renewals waiting for a diagnosis are few (a county's month of renewals at most), so this goes row
    by row through the same service as a clerk's withdrawal.
    """
    waiting = Application.objects.filter(region_id__in=region_ids, kind=ApplicationKind.RENEWAL, state=State.SUBMITTED)
    limit = dt.timedelta(days=rules.renewal_diagnosis_limit_days)
    # filed_at is a moment; the limit counts business days in Asia/Shanghai, so compare local dates.
    warn_before = _start_of_day(day - limit + dt.timedelta(days=rules.renewal_diagnosis_warning_days + 1))
    for renewal in waiting.filter(filed_at__lt=warn_before).select_related("person", "disease", "filing_institution"):
        filed_on = timezone.localtime(renewal.filed_at).date()
        withdraw_on = filed_on + limit
        if day >= withdraw_on:
            application_close(
                application_id=renewal.pk,
                actor=actor,
                reason_code="renewal_not_diagnosed",
                reason=_("No diagnosis was recorded within %(days)d days of filing the renewal.")
                % {"days": rules.renewal_diagnosis_limit_days},
                details={"sweep_date": day.isoformat(), "filed_on": filed_on.isoformat()},
            )
            result.renewals_withdrawn += 1
        elif rules.renewal_diagnosis_warning_days:
            warned, to_send = _renewal_warning_rows(renewal=renewal, withdraw_on=withdraw_on, rules=rules, day=day)
            result.renewals_warned += warned
            _hand_over(to_send, result, enqueue)


def _start_of_day(day: dt.date) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, dt.time.min))


def _renewal_warning_rows(
    *, renewal: Application, withdraw_on: dt.date, rules: _SweepRules, day: dt.date
) -> tuple[bool, list[int]]:
    """The in-app notice and e-mail to the filing clinic, once per renewal (the reminder table's unique
    constraint, with the warning's lead time as the offset); whether this run wrote them, and the new
    e-mail row to send."""
    emails: dict[int, str] = {}
    _clinic_emails([renewal.filing_institution_id], emails)
    recipient = emails[renewal.filing_institution_id]
    values = {
        "application": renewal.pk,
        "person": renewal.person.name,
        "masked_id": renewal.person.masked_id_number,
        "disease": renewal.disease.name,
        "filed_on": notifications.chinese_date(timezone.localtime(renewal.filed_at).date()),
        "withdraw_on": notifications.chinese_date(withdraw_on),
        "provisional_until": notifications.chinese_date(renewal.provisional_until or withdraw_on),
    }
    subject = notifications.RENEWAL_DIAGNOSIS_SUBJECT.format(**values)[:200]
    message = notifications.RENEWAL_DIAGNOSIS_TEXT.format(**values)
    now = timezone.now()
    created: list[int] = []
    wrote = False
    for channel in (ReminderChannel.IN_APP, ReminderChannel.EMAIL):
        in_app = channel == ReminderChannel.IN_APP
        status = ReminderStatus.SENT if in_app else (ReminderStatus.PENDING if recipient else ReminderStatus.SKIPPED)
        reminder, was_created = Reminder.objects.get_or_create(
            application=renewal,
            offset_days=rules.renewal_diagnosis_warning_days,
            channel=channel,
            defaults={
                "due_on": day,
                "valid_until": withdraw_on,
                "status": status,
                "institution_id": renewal.filing_institution_id,
                "recipient": "" if in_app else recipient,
                "subject": subject,
                "message": message,
                "last_error": "" if in_app or recipient else "no clinic staff e-mail address",
                "sent_at": now if in_app else None,
            },
        )
        wrote = wrote or was_created
        if was_created and reminder.status == ReminderStatus.PENDING:
            created.append(reminder.pk)
    return wrote, created


def _create_due_reminders(
    *, covering: Any, rules: _SweepRules, day: dt.date, chunk_size: int, result: SweepResult, enqueue: bool
) -> None:
    """Expiry reminders: 门慢门特 enrollments with their text; 两病 medication coverage with its own text,
    only where the policy asks for them."""
    _create_due_reminders_for(
        covering=covering.exclude(kind=ApplicationKind.TWO_DISEASES),
        templates=notifications.REMINDER_TEMPLATES["outpatient"],
        rules=rules,
        day=day,
        chunk_size=chunk_size,
        result=result,
        enqueue=enqueue,
    )
    if rules.two_diseases_reminders:
        _create_due_reminders_for(
            covering=covering.filter(kind=ApplicationKind.TWO_DISEASES),
            templates=notifications.REMINDER_TEMPLATES["two_diseases"],
            rules=rules,
            day=day,
            chunk_size=chunk_size,
            result=result,
            enqueue=enqueue,
        )


def _create_due_reminders_for(
    *,
    covering: Any,
    templates: tuple[Any, Any, Any],
    rules: _SweepRules,
    day: dt.date,
    chunk_size: int,
    result: SweepResult,
    enqueue: bool,
) -> None:
    """Create the reminder rows now due, three channels per (enrollment, offset).

    The reminder at offset ``o`` is due from ``valid_until − o`` until the next, smaller offset falls
    due: a day the sweep missed is made up late, but a patient who missed both the 30- and the 7-day
    reminder gets the 7-day one, and the 30-day rows are recorded as skipped. Enrollments with a
    renewal pending get none. ``ON CONFLICT DO NOTHING`` against the unique constraint is what keeps
    a second or concurrent run from creating anything twice.
    """
    eligible = covering.filter(~_with_renewal_pending())
    offsets = rules.reminder_offsets
    emails: dict[int, str] = {}  # filing institution → its clinic staff's addresses, for this sweep
    for index, offset in enumerate(offsets):
        later = offsets[index + 1] if index + 1 < len(offsets) else None
        missing = ~Exists(Reminder.objects.filter(application=OuterRef("pk"), offset_days=offset))
        due = eligible.filter(missing, valid_until__lte=day + dt.timedelta(days=offset))
        if later is not None:
            superseded = due.filter(valid_until__lte=day + dt.timedelta(days=later))
            skipped = _reminder_rows(
                candidates=superseded,
                offset=offset,
                day=day,
                chunk_size=chunk_size,
                emails=emails,
                skipped_for=later,
                templates=templates,
            )[0]
            result.reminders_skipped += skipped
            _refresh_reminder_statistics(inserted=3 * skipped)
            due = due.filter(valid_until__gt=day + dt.timedelta(days=later))
        created, chunks_to_send = _reminder_rows(
            candidates=due, offset=offset, day=day, chunk_size=chunk_size, emails=emails, templates=templates
        )
        result.reminders_due += created
        _refresh_reminder_statistics(inserted=3 * created)
        for ids in chunks_to_send:
            _hand_over(ids, result, enqueue)


def _refresh_reminder_statistics(*, inserted: int) -> None:
    """Let PostgreSQL's planner see the reminder rows this sweep has just written.

    The next candidate query anti-joins the reminder table. When the table's statistics still say "almost
    empty" (a first or catch-up sweep, or a day after a purge), the planner loops over a sequential scan of
    it for every candidate: 7 s instead of 40 ms at 300,000 applications. ``ANALYZE`` samples a bounded
    number of rows (a fraction of a second); a role that does not own the table gets a warning, not an error.
    """
    if connection.vendor == "postgresql" and inserted >= settings.REMINDER_ANALYZE_AFTER_ROWS:
        with connection.cursor() as cursor:
            cursor.execute(*sql.analyze_reminders())


def _clinic_emails(institution_ids: Iterable[int], known: dict[int, str]) -> None:
    """Fill ``known`` with the active clinic staff addresses of the institutions not in it yet."""
    wanted = {pk for pk in institution_ids if pk not in known}
    if not wanted:
        return
    found: dict[int, list[str]] = {}
    for institution_id, email in (
        StaffProfile.objects.filter(
            institution_id__in=wanted, user__is_active=True, user__groups__name=roles.CLINIC_STAFF
        )
        .exclude(user__email="")
        .order_by("user__email")
        .values_list("institution_id", "user__email")
    ):
        found.setdefault(institution_id, []).append(email)
    for pk in wanted:
        known[pk] = ",".join(found.get(pk, []))


def _reminder_rows(
    *,
    candidates: Any,
    offset: int,
    day: dt.date,
    chunk_size: int,
    emails: dict[int, str],
    templates: tuple[Any, Any, Any],
    skipped_for: int | None = None,
) -> tuple[int, list[list[int]]]:
    """Per chunk of candidates, one transaction and one ``INSERT … SELECT … ON CONFLICT DO NOTHING
    RETURNING``: an SMS, an e-mail and an in-app row per enrollment, the texts rendered by the database
    from the templates of ``notifications``. Returns how many enrollments got rows, and per chunk the
    new SMS and e-mail rows to send (only what this run inserted: a concurrent run hands over its own)."""
    count = 0
    to_send: list[list[int]] = []
    sms, email = ReminderChannel.SMS, ReminderChannel.EMAIL
    for chunk in chunks(_candidate_ids(candidates), chunk_size):
        institution_of = dict(Application.objects.filter(pk__in=chunk).values_list("pk", "filing_institution_id"))
        _clinic_emails(institution_of.values(), emails)
        statement = sql.reminder_rows(
            candidates=compiled(candidates.filter(pk__in=chunk)),
            offset=offset,
            day=day,
            now=db_value(Reminder, "created_at", timezone.now()),
            emails={pk: emails[pk] for pk in set(institution_of.values())},
            templates=templates,
            skipped_for=skipped_for,
        )
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(*statement)
            inserted = cursor.fetchall()
        count += len({application_id for _pk, application_id, _channel, _status in inserted})
        if skipped_for is None:
            to_send.append(
                sorted(
                    pk
                    for pk, _application_id, channel, status in inserted
                    if status == ReminderStatus.PENDING and channel in (sms, email)
                )
            )
    return count, to_send
