"""The coverage answer money follows (待遇享受资格查询): selectors, read-only.

"Was person P entitled to the benefit for disease D on date X, under which decision?" The answer is a
pure function of *facts*: the person's enrollments (periods, states, renewals), their dated status
events (suspended, resumed, ended, moved out, died, insurance type) and their dated support categories.
The facts come either from the current rows or, with ``as_of``, as they stood at that moment, rebuilt
from the append-only audit trail and the recording times of events and categories. The same function
decides both, so ``as_of`` reproduces any answer the service gave (docs/entitlement.md).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from enrollment.models import (
    ACTIVE_STATES,
    Application,
    ApplicationKind,
    AuditEntry,
    Disease,
    DiseaseType,
    InsuranceType,
    Person,
    PersonAuditEntry,
    PersonCategory,
    PersonStatusEvent,
    State,
    StatusEventKind,
)

ENDED_STATES: tuple[str, ...] = (State.EXPIRED, State.RENEWED, State.TERMINATED)
COVERING_STATES: tuple[str, ...] = (State.APPROVED, State.EXPIRING)
APPROVAL_TRANSITIONS: tuple[str, ...] = ("approve", "approve_immediately")
# States a decided-against renewal ends in: its decision date bounds the provisional days honoured.
CLOSED_STATES: tuple[str, ...] = (State.REJECTED, State.WITHDRAWN)
BENEFIT_OF_TYPE: dict[str, str] = {DiseaseType.CHRONIC: "outpatient_chronic", DiseaseType.SPECIAL: "outpatient_special"}


def two_diseases_codes() -> tuple[str, ...]:
    return tuple(settings.TWO_DISEASES_CODES)


# ---------------------------------------------------------------------------
# Facts
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class EnrollmentFacts:
    """One application as it stood at the moment asked about."""

    pk: int
    kind: str
    state: str
    disease_id: int
    disease_type: str
    renews_id: int | None
    filed_on: dt.date
    valid_from: dt.date | None
    valid_until: dt.date | None
    ended_on: dt.date | None
    closed_on: dt.date | None  # rejected / withdrawn: the day it was closed
    provisional_until: dt.date | None

    @property
    def is_two_diseases(self) -> bool:
        return self.kind == ApplicationKind.TWO_DISEASES

    def last_covered_day(self) -> dt.date | None:
        """Last day of the regular period: the earlier of ``valid_until`` and a recorded end (termination)."""
        if self.state == State.TERMINATED and self.ended_on is not None:
            return min(self.ended_on, self.valid_until) if self.valid_until else self.ended_on
        return self.valid_until


@dataclass
class StatusFacts:
    events: list[PersonStatusEvent] = field(default_factory=list)
    categories: list[tuple[str, dt.date, dt.date | None]] = field(default_factory=list)
    insurance_type: str = InsuranceType.RESIDENT


@dataclass(frozen=True)
class PersonStatusOn:
    """The person's insurance standing on one day."""

    status: str  # insured | insurance_suspended | not_insured | moved_out | person_deceased
    insurance_type: str
    event: PersonStatusEvent | None = None

    @property
    def insured(self) -> bool:
        return self.status == "insured"


def _local_date(value: dt.datetime) -> dt.date:
    return timezone.localtime(value).date() if timezone.is_aware(value) else value.date()


def _facts_now(applications: list[Application]) -> list[EnrollmentFacts]:
    return [
        EnrollmentFacts(
            pk=a.pk,
            kind=a.kind,
            state=a.state,
            disease_id=a.disease_id,
            disease_type=a.disease.disease_type,
            renews_id=a.renews_id,
            filed_on=_local_date(a.filed_at),
            valid_from=a.valid_from,
            valid_until=a.valid_until,
            ended_on=a.ended_on,
            closed_on=_local_date(a.decided_at) if a.state in CLOSED_STATES and a.decided_at else None,
            provisional_until=a.provisional_until,
        )
        for a in applications
    ]


def _iso(value: Any) -> dt.date | None:
    return dt.date.fromisoformat(value) if isinstance(value, str) and value else None


def _facts_as_of(applications: list[Application], as_of: dt.datetime) -> list[EnrollmentFacts]:
    """Each application as it stood at ``as_of``, from its audit rows (every state change wrote one)."""
    entries: dict[int, list[AuditEntry]] = {}
    for entry in (
        AuditEntry.objects.filter(application_id__in=[a.pk for a in applications], at__lte=as_of)
        .order_by("at", "id")
        .only("application_id", "transition", "to_state", "at", "details")
    ):
        entries.setdefault(entry.application_id, []).append(entry)
    facts = []
    for a in applications:
        rows = entries.get(a.pk)
        if not rows:
            continue  # not filed yet at that moment
        state = rows[-1].to_state
        valid_from = valid_until = ended_on = closed_on = None
        for entry in rows:
            details = entry.details or {}
            if entry.transition in APPROVAL_TRANSITIONS:
                valid_from, valid_until = _iso(details.get("valid_from")), _iso(details.get("valid_until"))
            if "ended_on" in details:
                ended_on = _iso(details.get("ended_on"))
            if entry.to_state in CLOSED_STATES:
                closed_on = _local_date(entry.at)
        if state in (State.EXPIRED, State.RENEWED) and ended_on is None:
            ended_on = valid_until
        facts.append(
            EnrollmentFacts(
                pk=a.pk,
                kind=a.kind,
                state=state,
                disease_id=a.disease_id,
                disease_type=a.disease.disease_type,
                renews_id=a.renews_id,
                filed_on=_local_date(a.filed_at),
                valid_from=valid_from,
                valid_until=valid_until,
                ended_on=ended_on,
                closed_on=closed_on,
                provisional_until=a.provisional_until,
            )
        )
    return facts


@dataclass
class CoverageRead:
    """What one statement (``coverage_read``) found: the person, their applications of the disease, and
    each application's latest approval audit row (by application id)."""

    person: Person | None
    applications: list[Application]
    decisions: dict[int, AuditEntry]


def coverage_read(*, id_number: str, disease: Disease, as_of: dt.datetime | None = None) -> CoverageRead:
    """The person with this 身份证号, their applications of ``disease`` and their approval rows, in one
    statement (enrollment.sql.coverage_reads, written once per process) instead of four querysets."""
    from django.contrib.auth import get_user_model
    from django.db import connection

    from enrollment import sql

    statement, params = sql.coverage_reads(
        id_number=id_number, disease_id=disease.pk, approval_transitions=APPROVAL_TRANSITIONS, as_of=as_of
    )
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        rows = cursor.fetchall()
    if not rows:
        return CoverageRead(person=None, applications=[], decisions={})
    people, apps, entries = sql.COVERAGE_PERSON, sql.COVERAGE_APPLICATION, sql.COVERAGE_DECISION
    person = people.read(rows[0][: people.width])
    person.has_status_events = bool(rows[0][people.width])
    person.has_categories = bool(rows[0][people.width + 1])
    start = people.width + 2
    application_id = start + apps.attnames.index("id")
    entry_start = start + apps.width
    entry_id = entry_start + entries.attnames.index("id")
    users = get_user_model()
    applications: list[Application] = []
    decisions: dict[int, AuditEntry] = {}
    for row in rows:
        if row[application_id] is None:
            continue
        application = apps.read(row[start:entry_start])
        application.person = person
        application.disease = disease
        applications.append(application)
        if row[entry_id] is not None:
            entry = entries.read(row[entry_start : entry_start + entries.width])
            if entry.actor_id is not None:
                entry.actor = users.from_db("default", ["id", "username"], [entry.actor_id, row[-1]])
            decisions[application.pk] = entry
    return CoverageRead(person=person, applications=applications, decisions=decisions)


def enrollment_facts(
    *,
    person: Person,
    disease: Disease,
    as_of: dt.datetime | None = None,
    applications: list[Application] | None = None,
) -> tuple[list[EnrollmentFacts], dict[int, Application]]:
    """The facts of the person's applications for the disease (read here unless given), and the
    applications by id."""
    if applications is None:
        applications = list(Application.objects.filter(person=person, disease=disease).order_by("pk"))
    for application in applications:
        application.disease = disease
    facts = _facts_now(applications) if as_of is None else _facts_as_of(applications, as_of)
    return facts, {a.pk: a for a in applications}


def status_facts(*, person: Person, as_of: dt.datetime | None = None) -> StatusFacts:
    """The person's status events and category periods as recorded up to ``as_of`` (None: now).

    A person read by ``coverage_read`` says whether they have any events or categories at
    all (both are never deleted, so none now means none at any earlier moment); the empty ones are not asked.
    """
    periods = []
    if getattr(person, "has_categories", True) is not False:
        categories = PersonCategory.objects.filter(person=person)
        if as_of is not None:
            categories = categories.filter(recorded_at__lte=as_of)
        for row in categories.order_by("valid_from", "id"):
            until = row.valid_until
            # An end recorded after the moment asked about was not known then: the period was open.
            if as_of is not None and row.ended_at is not None and row.ended_at > as_of:
                until = None
            periods.append((row.category, row.valid_from, until))
    event_list: list[PersonStatusEvent] = []
    if getattr(person, "has_status_events", True) is not False:
        events = PersonStatusEvent.objects.filter(person=person)
        if as_of is not None:
            events = events.filter(recorded_at__lte=as_of)
        event_list = list(events.order_by("effective_date", "recorded_at", "id"))
    return StatusFacts(events=event_list, categories=periods, insurance_type=_base_insurance_type(person, event_list))


def _base_insurance_type(person: Person, events: Any) -> str:
    """The insurance type before the first event that names one.

    The stored ``Person.insurance_type`` follows the latest applied event; the type it replaced is in
    the person's audit row of that first change.
    """
    if not any(e.insurance_type for e in events):
        return person.insurance_type
    first_change = (
        PersonAuditEntry.objects.filter(person=person, action="insurance_type_changed").order_by("at", "id").first()
    )
    if first_change is not None and first_change.details.get("from"):
        return str(first_change.details["from"])
    return person.insurance_type


# ---------------------------------------------------------------------------
# Rules
# ---------------------------------------------------------------------------


def person_status_on(facts: StatusFacts, day: dt.date) -> PersonStatusOn:
    """Fold the dated events up to ``day``: each holds from its effective date; death from the day after
    (the day of death is still covered)."""
    status, insurance_type, cause = "insured", facts.insurance_type, None
    for event in facts.events:
        starts = (
            event.effective_date + dt.timedelta(days=1) if event.kind == StatusEventKind.DIED else event.effective_date
        )
        if starts > day:
            continue
        if event.insurance_type:
            insurance_type = event.insurance_type
        if status == "person_deceased":
            continue
        if event.kind == StatusEventKind.INSURANCE_SUSPENDED:
            status, cause = "insurance_suspended", event
        elif event.kind == StatusEventKind.INSURANCE_RESUMED:
            status, cause = "insured", event
        elif event.kind == StatusEventKind.INSURANCE_ENDED:
            status, cause = "not_insured", event
        elif event.kind == StatusEventKind.MOVED_OUT:
            status, cause = "moved_out", event
        elif event.kind == StatusEventKind.DIED:
            status, cause = "person_deceased", event
    return PersonStatusOn(status=status, insurance_type=insurance_type, event=cause)


def categories_on(facts: StatusFacts, day: dt.date) -> list[str]:
    held = {c for c, start, until in facts.categories if start <= day and (until is None or day <= until)}
    return sorted(held)


@dataclass
class BenefitAnswer:
    """The answer for one benefit (门慢门特, or 两病 medication coverage)."""

    covered: bool
    reason: str
    enrollment: EnrollmentFacts | None = None
    provisional: bool = False
    pending_renewal: EnrollmentFacts | None = None
    provisional_until: dt.date | None = None


def _renewals_of(enrollment: EnrollmentFacts, facts: list[EnrollmentFacts]) -> list[EnrollmentFacts]:
    return [f for f in facts if f.renews_id == enrollment.pk]


def _provisional(enrollment: EnrollmentFacts, facts: list[EnrollmentFacts], on: dt.date) -> BenefitAnswer | None:
    """Past its end, an enrollment whose renewal was filed on or before ``on`` covers provisionally
    (复审期间待遇照常) up to the bound fixed when the renewal was filed; a renewal decided against later
    is honoured up to its decision date; a renewal still pending past the bound: ``renewal_overdue``."""
    if enrollment.valid_until is None or on <= enrollment.valid_until or enrollment.state == State.TERMINATED:
        return None
    for renewal in sorted(_renewals_of(enrollment, facts), key=lambda f: f.pk, reverse=True):
        if renewal.filed_on > on:
            continue
        bound = renewal.provisional_until or enrollment.valid_until
        pending = renewal.state in ACTIVE_STATES
        decided_later = renewal.state in CLOSED_STATES and renewal.closed_on is not None and on <= renewal.closed_on
        if not (pending or decided_later):
            continue
        if on > bound:
            if pending:
                return BenefitAnswer(
                    covered=False,
                    reason="renewal_overdue",
                    enrollment=enrollment,
                    pending_renewal=renewal,
                    provisional_until=bound,
                )
            continue
        return BenefitAnswer(
            covered=True,
            reason="renewal_pending" if pending else "provisional_honoured",
            enrollment=enrollment,
            provisional=True,
            pending_renewal=renewal if pending else None,
            provisional_until=bound,
        )
    return None


def benefit_on(facts: list[EnrollmentFacts], on: dt.date) -> BenefitAnswer:
    """The enrollment answer for one benefit, before the person's status is applied.

    Periods of one person and disease never overlap (a renewal starts the day after the old one ends),
    so at most one regular period contains ``on``.
    """
    periods = sorted(
        ((f.valid_from, f) for f in facts if f.valid_from is not None and f.state in (*COVERING_STATES, *ENDED_STATES)),
        key=lambda period: (period[0], period[1].pk),
        reverse=True,
    )
    for valid_from, enrollment in periods:
        last = enrollment.last_covered_day()
        if valid_from <= on and (last is None or on <= last):
            return BenefitAnswer(covered=True, reason="covered", enrollment=enrollment)
    for valid_from, enrollment in periods:
        if valid_from <= on:
            provisional = _provisional(enrollment, facts, on)
            if provisional is not None:
                return provisional
    earlier = [e for valid_from, e in periods if valid_from <= on]
    if earlier:
        previous = earlier[0]
        return BenefitAnswer(
            covered=False, reason="terminated" if previous.state == State.TERMINATED else "ended", enrollment=previous
        )
    pending = [f for f in facts if f.state in ACTIVE_STATES and f.valid_from is None and f.renews_id is None]
    if pending:
        return BenefitAnswer(covered=False, reason="application_pending", enrollment=pending[-1])
    if periods:
        return BenefitAnswer(covered=False, reason="not_started", enrollment=periods[-1][1])
    return BenefitAnswer(covered=False, reason="not_enrolled")


@dataclass
class CoverageAnswer:
    """Was the person covered for the disease on ``on`` (per benefit), and under which decision?"""

    on: dt.date
    covered: bool
    reason: str
    as_of: dt.datetime | None = None
    benefit: str | None = None
    enrollment: Application | None = None
    decision: AuditEntry | None = None
    provisional: bool = False
    provisional_until: dt.date | None = None
    pending_renewal: Application | None = None
    insurance_status: str = "insured"
    insurance_type: str = ""
    status_event: PersonStatusEvent | None = None
    support_categories: list[str] = field(default_factory=list)
    two_diseases: dict[str, Any] | None = None
    cross_province_settlement: bool = False


STATUS_REASONS = ("insurance_suspended", "not_insured", "moved_out", "person_deceased")


def _apply_status(answer: BenefitAnswer, status: PersonStatusOn) -> BenefitAnswer:
    """Nobody is covered on a day they are not insured here or no longer alive; the status is the reason
    (also for an enrollment that the event itself terminated)."""
    if not status.insured:
        return BenefitAnswer(covered=False, reason=status.status, enrollment=answer.enrollment)
    return answer


def approval_entry(application_id: int, as_of: dt.datetime | None = None) -> AuditEntry | None:
    entries = AuditEntry.objects.filter(application_id=application_id, transition__in=APPROVAL_TRANSITIONS)
    if as_of is not None:
        entries = entries.filter(at__lte=as_of)
    return entries.select_related("actor").order_by("-at", "-id").first()


def coverage_answer(
    *,
    person: Person | None,
    disease: Disease,
    on: dt.date,
    as_of: dt.datetime | None = None,
    read: CoverageRead | None = None,
) -> CoverageAnswer:
    """The full answer: the 门慢门特 benefit of ``disease``, the 两病 benefit beside it, the person's
    standing and categories on ``on`` — as known now, or as known at ``as_of``. ``read`` (from
    ``coverage_read`` with the same ``as_of``) supplies the applications and approval rows already read."""
    if person is None:
        return CoverageAnswer(
            on=on, covered=False, reason="not_enrolled", as_of=as_of,
            cross_province_settlement=disease.cross_province_settlement,
        )  # fmt: skip
    facts, objects = enrollment_facts(
        person=person, disease=disease, as_of=as_of, applications=read.applications if read else None
    )
    status_data = status_facts(person=person, as_of=as_of)
    status = person_status_on(status_data, on)
    main = _apply_status(benefit_on([f for f in facts if not f.is_two_diseases], on), status)

    two: dict[str, Any] | None = None
    two_facts = [f for f in facts if f.is_two_diseases]
    if two_facts or disease.code in two_diseases_codes():
        held = benefit_on(two_facts, on)
        if held.covered and status.insurance_type != InsuranceType.RESIDENT:
            held = BenefitAnswer(covered=False, reason="two_diseases_residents_only", enrollment=held.enrollment)
        held = _apply_status(held, status)
        two = {
            "covered": held.covered,
            "reason": held.reason,
            "valid_from": held.enrollment.valid_from if held.enrollment else None,
            "valid_until": held.enrollment.valid_until if held.enrollment else None,
            "enrollment": held.enrollment.pk if held.enrollment else None,
        }
        if not main.covered and held.covered and main.reason in ("not_enrolled", "ended", "not_started"):
            main = BenefitAnswer(covered=False, reason="two_diseases_only")

    enrollment = objects.get(main.enrollment.pk) if main.enrollment else None
    decision = None
    if enrollment is not None and main.enrollment is not None and main.enrollment.valid_from is not None:
        decision = read.decisions.get(enrollment.pk) if read else approval_entry(enrollment.pk, as_of)
    return CoverageAnswer(
        on=on,
        covered=main.covered,
        reason=main.reason,
        as_of=as_of,
        benefit=BENEFIT_OF_TYPE.get(disease.disease_type) if main.covered else None,
        enrollment=enrollment,
        decision=decision,
        provisional=main.provisional,
        provisional_until=main.provisional_until,
        pending_renewal=objects.get(main.pending_renewal.pk) if main.pending_renewal else None,
        insurance_status=status.status,
        insurance_type=status.insurance_type,
        status_event=status.event,
        support_categories=categories_on(status_data, on),
        two_diseases=two,
        cross_province_settlement=disease.cross_province_settlement,
    )


def person_standing(*, person: Person, on: dt.date | None = None) -> PersonStatusOn:
    """The person's insurance standing on ``on`` (default today), from the events recorded now: one query
    (two when an event changed the insurance type), on every filing."""
    events = list(PersonStatusEvent.objects.filter(person=person).order_by("effective_date", "recorded_at", "id"))
    facts = StatusFacts(events=events, insurance_type=_base_insurance_type(person, events))
    return person_status_on(facts, on or timezone.localdate())


def categories_held(*, person: Person, on: dt.date | None = None) -> list[str]:
    """The support categories the person holds on ``on`` (default today), in one query."""
    return categories_for_persons([person.pk], on or timezone.localdate()).get(person.pk, [])


def categories_for_persons(person_ids: list[int], on: dt.date) -> dict[int, list[str]]:
    """The support categories each person holds on ``on``, in one query (exports)."""
    held: dict[int, set[str]] = {}
    for person_id, category in (
        PersonCategory.objects.filter(person_id__in=person_ids, valid_from__lte=on)
        .filter(Q(valid_until__isnull=True) | Q(valid_until__gte=on))
        .values_list("person_id", "category")
    ):
        held.setdefault(person_id, set()).add(category)
    return {pk: sorted(values) for pk, values in held.items()}
