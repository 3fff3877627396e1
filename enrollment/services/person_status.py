"""Writes of a person's dated status and support categories (参保状态、死亡、脱贫、帮扶类别).

Services in the house style: keyword-only, one transaction, the person's row locked, an append-only
``PersonAuditEntry`` for every change, effects on enrollments through the enrollment services (each with
its own audit row). The coverage answer reads what these write (enrollment/coverage.py).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from enrollment import selectors
from enrollment.models import (
    COVERING_STATES,
    ENDING_EVENTS,
    Application,
    ApplicationKind,
    InsuranceType,
    Person,
    PersonAuditEntry,
    PersonCategory,
    PersonStatusEvent,
    State,
    StatusEventKind,
    SupportCategory,
    TerminationReason,
)
from enrollment.periods import add_months
from kernel import roles
from kernel.errors import InvalidInput, NotPermitted, RuleViolation

# Categories held because the household is poor: after it leaves poverty (脱贫) they continue for the
# policy's continuation period (过渡期), then end.
POVERTY_RELATED: tuple[str, ...] = (
    SupportCategory.MONITORED,
    SupportCategory.MINIMUM_LIVING,
    SupportCategory.EXTREME_HARDSHIP,
)
TERMINATION_FOR_EVENT: dict[str, TerminationReason] = {
    StatusEventKind.DIED: TerminationReason.DEATH,
    StatusEventKind.INSURANCE_ENDED: TerminationReason.LOSS_OF_COVERAGE,
    StatusEventKind.MOVED_OUT: TerminationReason.MOVED_OUT,
}
# Pending applications an ending event closes (the close transition's sources).
PENDING_STATES: tuple[str, ...] = (State.SUBMITTED, State.DIAGNOSED, State.IN_REVIEW, State.RETURNED)
REFERENCE_MAX_LENGTH = 100
NOTE_MAX_LENGTH = 500
# Called inside the transaction that recognises support categories, as ``hook(person=…, periods=[PersonCategory,
# …], actor=…)`` with the periods it created. Other apps register from their AppConfig.ready() (assistance:
# retroactive assistance for the costs settled before the recognition).
CATEGORY_RECORDED_HOOKS: list[Callable[..., None]] = []


def person_audit(*, person: Person, action: str, actor: roles.Actor, details: dict[str, Any]) -> PersonAuditEntry:
    return PersonAuditEntry.objects.create(
        person=person, action=action, actor=actor, is_system=roles.is_system(actor), details=details
    )


def _ensure_may_record(actor: roles.Actor) -> None:
    if not (roles.is_system(actor) or roles.has_any_role(actor, roles.CENTER_OFFICER, roles.ADMIN)):
        raise NotPermitted(_("Only the insurance office (centre officers, administrators) records status events."))


def _clean_text(value: str, *, field_name: str, max_length: int, required: bool) -> str:
    value = (value or "").strip()
    if "\x00" in value:
        raise InvalidInput(
            _("The %(field)s contains a NUL character.") % {"field": field_name}, details={"field": field_name}
        )
    if required and not value:
        raise InvalidInput(_("Give the %(field)s.") % {"field": field_name}, details={"field": field_name})
    if len(value) > max_length:
        raise InvalidInput(
            _("The %(field)s is longer than %(max)d characters.") % {"field": field_name, "max": max_length},
            details={"field": field_name},
        )
    return value


def _clean_categories(categories: Iterable[str] | None) -> list[str]:
    values = sorted(dict.fromkeys(c.strip() for c in (categories or ()) if c and c.strip()))
    unknown = [c for c in values if c not in SupportCategory.values]
    if unknown:
        raise InvalidInput(
            _("Unknown support category: %(values)s (known: %(known)s).")
            % {"values": ", ".join(unknown), "known": ", ".join(SupportCategory.values)},
            code="invalid_category",
            details={"field": "categories"},
        )
    return values


# ---------------------------------------------------------------------------
# Status events
# ---------------------------------------------------------------------------


@dataclass
class EventResult:
    event: PersonStatusEvent
    created: bool
    terminated: list[int] = field(default_factory=list)
    closed: list[int] = field(default_factory=list)


def status_event_record(
    *,
    person: Person,
    kind: str,
    effective_date: dt.date,
    source: str,
    reference: str,
    actor: roles.Actor,
    insurance_type: str = "",
    categories: Sequence[str] | None = None,
    note: str = "",
) -> EventResult:
    """Record one dated event; carry out its effects now if its date has come (else the daily sweep will).

    Idempotent by ``(source, reference)``: the same event sent again changes nothing and answers with
    the stored one; a different event under a used reference is refused (``reference_conflict``).
    """
    _ensure_may_record(actor)
    if kind not in StatusEventKind.values:
        raise InvalidInput(
            _("Unknown event “%(kind)s”; choose one of %(choices)s.")
            % {"kind": kind, "choices": ", ".join(StatusEventKind.values)},
            code="invalid_event",
            details={"field": "kind"},
        )
    source = _clean_text(source, field_name="source", max_length=50, required=True)
    reference = _clean_text(reference, field_name="reference", max_length=REFERENCE_MAX_LENGTH, required=True)
    note = _clean_text(note, field_name="note", max_length=NOTE_MAX_LENGTH, required=False)
    if insurance_type and insurance_type not in InsuranceType.values:
        raise InvalidInput(_("Insurance type must be 310 or 390."), details={"field": "insurance_type"})
    wanted = _clean_categories(categories)
    if kind == StatusEventKind.CATEGORIES_SET and categories is None:
        raise InvalidInput(
            _("Give the categories the person holds from this date (may be empty)."), details={"field": "categories"}
        )
    if effective_date < person.birth_date:
        raise InvalidInput(_("The effective date is before the person's birth."), details={"field": "effective_date"})
    today = timezone.localdate()
    if kind == StatusEventKind.DIED and effective_date > today:
        raise InvalidInput(_("A date of death cannot be in the future."), details={"field": "effective_date"})

    with transaction.atomic():
        locked = Person.objects.select_for_update().get(pk=person.pk)
        existing = PersonStatusEvent.objects.filter(source=source, reference=reference).first()
        if existing is not None:
            return _replayed(existing, locked, kind, effective_date, insurance_type, wanted)
        if kind == StatusEventKind.DIED:
            earlier = locked.status_events.filter(kind=StatusEventKind.DIED).first()
            if earlier is not None:
                raise RuleViolation(
                    _("The death of this person was already recorded (%(date)s, reference %(ref)s).")
                    % {"date": earlier.effective_date.isoformat(), "ref": earlier.reference},
                    code="already_deceased",
                    details={"event": earlier.pk},
                )
        event = PersonStatusEvent(
            person=locked,
            kind=kind,
            effective_date=effective_date,
            source=source,
            reference=reference,
            insurance_type=insurance_type,
            categories=wanted,
            note=note,
            recorded_by=actor,
        )
        try:
            with transaction.atomic():
                event.save()
        except IntegrityError:  # the same reference raced in from another connection
            existing = PersonStatusEvent.objects.get(source=source, reference=reference)
            return _replayed(existing, locked, kind, effective_date, insurance_type, wanted)
        person_audit(
            person=locked,
            action="status_event_recorded",
            actor=actor,
            details={
                "event": event.pk,
                "kind": kind,
                "effective_date": effective_date.isoformat(),
                "source": source,
                "reference": reference,
            },
        )
        result = EventResult(event=event, created=True)
        if _due(event, today):
            _apply(event=event, person=locked, actor=actor, result=result)
    return result


def _replayed(
    existing: PersonStatusEvent,
    person: Person,
    kind: str,
    effective_date: dt.date,
    insurance_type: str,
    categories: list[str],
) -> EventResult:
    same = (
        existing.person_id == person.pk
        and existing.kind == kind
        and existing.effective_date == effective_date
        and existing.insurance_type == insurance_type
        and sorted(existing.categories or []) == categories
    )
    if not same:
        raise RuleViolation(
            _("Reference %(ref)s of %(source)s was already used for another event (#%(id)s).")
            % {"ref": existing.reference, "source": existing.source, "id": existing.pk},
            code="reference_conflict",
            details={"event": existing.pk},
        )
    return EventResult(event=existing, created=False)


def _due(event: PersonStatusEvent, today: dt.date) -> bool:
    return event.applied_at is None and event.effective_date <= today


def _coverage_end(event: PersonStatusEvent) -> dt.date:
    """Last covered day under an ending event: the day of death itself; the day before the others."""
    if event.kind == StatusEventKind.DIED:
        return event.effective_date
    return event.effective_date - dt.timedelta(days=1)


def _apply(*, event: PersonStatusEvent, person: Person, actor: roles.Actor, result: EventResult) -> None:
    """Carry out an event's effects. The caller holds the transaction and the person's lock."""
    from enrollment import services  # services import selectors; this module is imported by services' callers

    system = services.get_system_user()
    if event.insurance_type and event.insurance_type != person.insurance_type:
        person_audit(
            person=person,
            action="insurance_type_changed",
            actor=actor,
            details={"from": person.insurance_type, "to": event.insurance_type, "event": event.pk},
        )
        Person.objects.filter(pk=person.pk).update(insurance_type=event.insurance_type, updated_at=timezone.now())
        person.insurance_type = event.insurance_type
        if event.insurance_type != InsuranceType.RESIDENT:
            # 两病 medication coverage is a resident-insurance benefit: it ends with the change.
            _end_enrollments(
                person=person,
                event=event,
                queryset=Application.objects.filter(kind=ApplicationKind.TWO_DISEASES),
                ended_on=event.effective_date - dt.timedelta(days=1),
                reason=TerminationReason.LOSS_OF_COVERAGE,
                result=result,
                system=system,
            )
    if event.kind in ENDING_EVENTS:
        _end_enrollments(
            person=person,
            event=event,
            queryset=Application.objects.all(),
            ended_on=_coverage_end(event),
            reason=TERMINATION_FOR_EVENT[event.kind],
            result=result,
            system=system,
        )
        for application in (
            Application.objects.select_for_update(of=("self",))
            .filter(person=person, state__in=PENDING_STATES)
            .order_by("pk")
        ):
            services.application_close(
                application_id=application.pk,
                actor=system,
                reason_code=event.kind,
                reason=_("Closed: %(event)s on %(date)s (reference %(ref)s).")
                % {"event": event.get_kind_display(), "date": event.effective_date.isoformat(), "ref": event.reference},
                details={"status_event": event.pk},
            )
            result.closed.append(application.pk)
    if event.kind == StatusEventKind.POVERTY_EXITED:
        policy = selectors.policy_for_region(person.insured_region)
        last_day = add_months(event.effective_date, policy.poverty_continuation_months) - dt.timedelta(days=1)
        _end_categories(
            person=person,
            categories=POVERTY_RELATED,
            last_day=max(last_day, event.effective_date - dt.timedelta(days=1)),
            actor=actor,
            cause={"event": event.pk, "rule": "poverty_continuation", "months": policy.poverty_continuation_months},
        )
    if event.kind == StatusEventKind.CATEGORIES_SET:
        _replace_categories(
            person=person,
            categories=list(event.categories or []),
            as_of=event.effective_date,
            source=event.source,
            reference=event.reference,
            actor=actor,
        )
    PersonStatusEvent.objects.filter(pk=event.pk).update(applied_at=timezone.now())
    event.applied_at = timezone.now()
    person_audit(
        person=person,
        action="status_event_applied",
        actor=actor,
        details={"event": event.pk, "kind": event.kind, "terminated": result.terminated, "closed": result.closed},
    )
    _refresh_category_cache(person)


def _end_enrollments(
    *,
    person: Person,
    event: PersonStatusEvent,
    queryset: Any,
    ended_on: dt.date,
    reason: str,
    result: EventResult,
    system: roles.Actor,
) -> None:
    from enrollment import services

    for application in queryset.filter(person=person, state__in=COVERING_STATES).order_by("pk"):
        end = ended_on
        if application.valid_until is not None:
            end = min(end, application.valid_until)
        if application.valid_from is not None:
            end = max(end, application.valid_from)  # approved after the event: ends where it starts
        services.application_terminate(
            application_id=application.pk,
            actor=system,
            reason=reason,
            note=_("%(event)s on %(date)s (reference %(ref)s)")
            % {"event": event.get_kind_display(), "date": event.effective_date.isoformat(), "ref": event.reference},
            ended_on=end,
        )
        result.terminated.append(application.pk)


def status_events_apply_due(*, day: dt.date | None = None, actor: roles.Actor) -> list[int]:
    """The daily sweep's part: carry out events recorded ahead of their effective date once it has come."""
    if not roles.is_system(actor):
        raise NotPermitted(_("Only the system applies due status events."))
    day = day or timezone.localdate()
    applied: list[int] = []
    due = PersonStatusEvent.objects.filter(applied_at__isnull=True, effective_date__lte=day).order_by(
        "effective_date", "recorded_at", "pk"
    )
    for event_id, person_id in due.values_list("pk", "person_id"):
        with transaction.atomic():
            person = Person.objects.select_for_update().select_related("insured_region").get(pk=person_id)
            event = PersonStatusEvent.objects.select_for_update().get(pk=event_id)
            if event.applied_at is not None:
                continue  # a concurrent run got there first
            _apply(event=event, person=person, actor=actor, result=EventResult(event=event, created=False))
            applied.append(event_id)
    return applied


# ---------------------------------------------------------------------------
# Support categories
# ---------------------------------------------------------------------------


def _open_on(person: Person, day: dt.date) -> Any:
    return (
        PersonCategory.objects.select_for_update()
        .filter(person=person)
        .filter(Q(valid_until__isnull=True) | Q(valid_until__gte=day))
    )


def _end_categories(
    *, person: Person, categories: Iterable[str], last_day: dt.date, actor: roles.Actor, cause: dict[str, Any]
) -> list[int]:
    """Set the last day of the person's periods of ``categories`` still open after ``last_day``."""
    ended = []
    now = timezone.now()
    for row in _open_on(person, last_day + dt.timedelta(days=1)).filter(category__in=list(categories)):
        new_end = max(last_day, row.valid_from)
        PersonCategory.objects.filter(pk=row.pk).update(valid_until=new_end, ended_at=now)
        person_audit(
            person=person,
            action="category_end_set",
            actor=actor,
            details={
                "category": row.category,
                "period": row.pk,
                "valid_from": row.valid_from.isoformat(),
                "valid_until": new_end.isoformat(),
                "previous_valid_until": row.valid_until.isoformat() if row.valid_until else None,
                **cause,
            },
        )
        ended.append(row.pk)
    return ended


def _replace_categories(
    *, person: Person, categories: list[str], as_of: dt.date, source: str, reference: str, actor: roles.Actor
) -> dict[str, list[str]]:
    """From ``as_of`` the person holds exactly ``categories``: others end the day before, new ones start."""
    open_rows = list(_open_on(person, as_of))
    held = {row.category for row in open_rows if row.valid_from <= as_of}
    if held == set(categories) and all(row.valid_from <= as_of for row in open_rows):
        return {"added": [], "ended": []}  # the list already holds: nothing to record (a roster sent again)
    dropped = sorted(held - set(categories))
    _end_categories(
        person=person,
        categories=dropped,
        last_day=as_of - dt.timedelta(days=1),
        actor=actor,
        cause={"replaced_by": source, "reference": reference},
    )
    added = sorted(set(categories) - held)
    created = [
        PersonCategory.objects.create(
            person=person, category=category, valid_from=as_of, source=source, reference=reference
        )
        for category in added
    ]
    if created:
        for hook in CATEGORY_RECORDED_HOOKS:
            hook(person=person, periods=created, actor=actor)
    if added or dropped:
        person_audit(
            person=person,
            action="categories_replaced",
            actor=actor,
            details={
                "as_of": as_of.isoformat(),
                "added": added,
                "ended": dropped,
                "source": source,
                "reference": reference,
            },
        )
    return {"added": added, "ended": dropped}


def person_categories_replace(
    *, person: Person, categories: Sequence[str], as_of: dt.date, source: str, reference: str, actor: roles.Actor
) -> dict[str, list[str]]:
    """Replace the person's support categories as of a date (a roster or an office's list), never merging."""
    wanted = _clean_categories(categories)
    with transaction.atomic():
        locked = Person.objects.select_for_update().get(pk=person.pk)
        changes = _replace_categories(
            person=locked, categories=wanted, as_of=as_of, source=source, reference=reference, actor=actor
        )
        _refresh_category_cache(locked)
    return changes


def _refresh_category_cache(person: Person) -> None:
    """``Person.support_categories`` lists the categories held today, for lists and filters."""
    from enrollment.coverage import categories_held

    current = categories_held(person=person)
    if sorted(person.support_categories or []) != current:
        Person.objects.filter(pk=person.pk).update(support_categories=current, updated_at=timezone.now())
        person.support_categories = current


def categories_lapse_sweep(*, day: dt.date | None = None, actor: roles.Actor) -> int:
    """Record, once, every category period whose last day has passed, and refresh the holders' lists."""
    if not roles.is_system(actor):
        raise NotPermitted(_("Only the system runs the category sweep."))
    day = day or timezone.localdate()
    lapsed = PersonCategory.objects.filter(lapse_recorded_at__isnull=True, valid_until__lt=day).order_by("pk")
    count = 0
    for period_id, person_id in lapsed.values_list("pk", "person_id"):
        with transaction.atomic():
            person = Person.objects.select_for_update().get(pk=person_id)
            claimed = PersonCategory.objects.filter(pk=period_id, lapse_recorded_at__isnull=True).update(
                lapse_recorded_at=timezone.now()
            )
            if not claimed:
                continue
            period = PersonCategory.objects.get(pk=period_id)
            person_audit(
                person=person,
                action="category_ended",
                actor=actor,
                details={
                    "category": period.category,
                    "period": period.pk,
                    "valid_until": period.valid_until.isoformat() if period.valid_until else None,
                    "sweep_date": day.isoformat(),
                },
            )
            _refresh_category_cache(person)
            count += 1
    return count
