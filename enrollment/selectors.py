"""Every non-trivial read, scoped to the viewer (DESIGN §10): the one place that decides who sees what."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Q, QuerySet
from django.utils.translation import gettext as _

from enrollment import roles
from enrollment.models import (
    ACTIVE_STATES,
    COVERING_STATES,
    Application,
    ApplicationKind,
    AuditEntry,
    Disease,
    DiseaseType,
    Institution,
    Person,
    Policy,
    Region,
    Reminder,
    ReminderChannel,
    ReminderStatus,
    State,
)

# ---------------------------------------------------------------------------
# Where a user works
# ---------------------------------------------------------------------------


def user_institution(user: Any) -> Institution | None:
    profile = getattr(user, "profile", None) if getattr(user, "is_authenticated", False) else None
    return profile.institution if profile else None


def user_region(user: Any) -> Region | None:
    """A reviewer's region; for institution staff, their institution's region."""
    profile = getattr(user, "profile", None) if getattr(user, "is_authenticated", False) else None
    if profile is None:
        return None
    if profile.region_id:
        return profile.region
    return profile.institution.region if profile.institution_id else None


def user_region_id(user: Any) -> int | None:
    """The id of ``user_region(user)``, without loading the region."""
    profile = getattr(user, "profile", None) if getattr(user, "is_authenticated", False) else None
    if profile is None:
        return None
    if profile.region_id:
        return profile.region_id
    return profile.institution.region_id if profile.institution_id else None


# Regions are a shallow tree (province → city → county). Walking it one level per query cost a
# round trip per level on every scoped request; these read it in one query, up to this depth.
REGION_TREE_DEPTH = 5


def _descendant_q(region_id: int) -> Q:
    scope = Q(pk=region_id)
    for depth in range(1, REGION_TREE_DEPTH + 1):
        scope |= Q(**{"parent__" * (depth - 1) + "parent_id": region_id})
    return scope


def region_and_descendant_ids(region_id: int) -> list[int]:
    """Ids of a region and everything under it, in one query."""
    return list(Region.objects.filter(_descendant_q(region_id)).order_by().values_list("pk", flat=True))


def region_and_descendant_codes(region: Region) -> list[str]:
    """Codes of a region and everything under it, in one query."""
    return list(Region.objects.filter(_descendant_q(region.pk)).order_by().values_list("code", flat=True))


def region_lineage_ids(region: Region) -> list[int]:
    """Ids of the region and its ancestors, nearest first (what ``Region.lineage`` walks), in one query."""
    columns = ["pk", *("parent__" * (depth - 1) + "parent_id" for depth in range(1, REGION_TREE_DEPTH + 1))]
    row = Region.objects.filter(pk=region.pk).values_list(*columns).first() or (region.pk,)
    chain = []
    for region_id in row:
        if region_id is None:
            return chain
        chain.append(region_id)
    # Deeper than REGION_TREE_DEPTH: walk on from the last ancestor found (lineage() stops at 10).
    return (chain + [node.pk for node in Region.objects.get(pk=chain[-1]).lineage()[1:]])[:10]


# ---------------------------------------------------------------------------
# Policies and diseases
# ---------------------------------------------------------------------------


def policy_for_region(region: Region) -> Policy:
    """The region's own policy, else its nearest ancestor's, else the defaults (unsaved)."""
    return policy_for_lineage(region, region_lineage_ids(region))


def policy_for_lineage(region: Region, lineage_ids: list[int]) -> Policy:
    """``policy_for_region`` when the caller already holds ``region_lineage_ids(region)``."""
    policies = {p.region_id: p for p in Policy.objects.filter(region_id__in=lineage_ids)}
    for region_id in lineage_ids:
        if region_id in policies:
            return policies[region_id]
    return Policy(region=region)


def disease_available_in_region(disease: Disease, region: Region, lineage_ids: list[int] | None = None) -> bool:
    if not disease.active:
        return False
    allowed = {r.pk for r in disease.regions.all()}
    if not allowed:
        return True
    if lineage_ids is None:
        lineage_ids = region_lineage_ids(region)
    return any(region_id in allowed for region_id in lineage_ids)


def diseases_active() -> QuerySet[Disease]:
    return Disease.objects.filter(active=True).order_by("code")


# ---------------------------------------------------------------------------
# Applications
# ---------------------------------------------------------------------------


def applications_visible_to(user: Any) -> QuerySet[Application]:
    """Clinic staff, physicians and center officers: their institution's; reviewers: their region's; admin: all."""
    base = Application.objects.select_related(
        "person", "disease", "filing_institution", "treating_institution", "region", "physician"
    )
    names = roles.role_names(user)
    if not names:
        return base.none()
    if roles.ADMIN in names:
        return base
    scope = Q(pk__in=[])
    institution = user_institution(user)
    if institution is not None and names & {roles.CLINIC_STAFF, roles.PHYSICIAN, roles.CENTER_OFFICER}:
        scope |= Q(filing_institution=institution) | Q(treating_institution=institution)
    if roles.REVIEWER in names:
        region_id = user_region_id(user)
        if region_id is not None:
            scope |= Q(region_id__in=region_and_descendant_ids(region_id))
    return base.filter(scope)


def application_timeline(application: Application) -> QuerySet[AuditEntry]:
    return application.audit_entries.select_related("actor", "batch").order_by("at", "id")


def persons_visible_to(user: Any) -> QuerySet[Person]:
    """Persons are looked up by ID number by anyone who files or reviews; listing is for admins."""
    if not roles.role_names(user):
        return Person.objects.none()
    return Person.objects.select_related("insured_region")


def person_by_id_number(user: Any, id_number: str) -> Person | None:
    return persons_visible_to(user).filter(id_number=id_number).first()


# ---------------------------------------------------------------------------
# Eligibility (the checks application_submit enforces, as a checklist for the form)
# ---------------------------------------------------------------------------


def counts_toward_limit(*, disease: Disease, kind: str, renews_active: bool) -> bool:
    """The concurrent chronic limit rule for one active application (DESIGN §4).

    A pending renewal does not count twice: while the enrollment it renews is active, it is the
    one that counts. 两病 medication coverage never counts.
    """
    return (
        disease.disease_type == DiseaseType.CHRONIC
        and disease.counts_toward_limit
        and kind != ApplicationKind.TWO_DISEASES
        and not (kind == ApplicationKind.RENEWAL and renews_active)
    )


def held_toward_limit(active: list[Application]) -> list[Application]:
    """The person's holdings toward the limit, from all their active applications (disease loaded).

    A renewal's predecessor is the same person's, so "the enrollment it renews is active" is
    "its id is among these".
    """
    active_ids = {a.pk for a in active}
    held = [
        a
        for a in active
        if counts_toward_limit(disease=a.disease, kind=a.kind, renews_active=a.renews_id in active_ids)
    ]
    return sorted(held, key=lambda a: (a.filed_at, a.pk))


def chronic_holdings(person: Person) -> list[Application]:
    """Active enrollments of the person that count toward the concurrent chronic limit."""
    return held_toward_limit(
        list(Application.objects.filter(person=person, state__in=ACTIVE_STATES).select_related("disease"))
    )


@dataclass
class EligibilityCheck:
    code: str
    label: str
    passed: bool
    message: str = ""
    details: dict[str, Any] = field(default_factory=dict)


def eligibility_checks(
    *, person: Person, disease: Disease, kind: str = ApplicationKind.NEW, renews: Application | None = None
) -> list[EligibilityCheck]:
    """Each filing rule with its outcome, in the order a clerk reads them."""
    checks: list[EligibilityCheck] = [EligibilityCheck("valid_id_number", _("Valid ID number"), True)]

    lineage_ids = region_lineage_ids(person.insured_region)
    available = disease_available_in_region(disease, person.insured_region, lineage_ids)
    checks.append(
        EligibilityCheck(
            "disease_not_available",
            _("Disease available in the person's region"),
            available,
            ""
            if available
            else _("%(disease)s is not in the catalogue of %(region)s (or is no longer active).")
            % {"disease": disease, "region": person.insured_region},
        )
    )

    # One read of the person's active applications serves the duplicate, exclusion and limit rules.
    every_active = list(Application.objects.filter(person=person, state__in=ACTIVE_STATES).select_related("disease"))
    active_list = [a for a in every_active if renews is None or a.pk != renews.pk]

    duplicate = next(
        (a for a in active_list if a.disease_id == disease.pk and a.kind == kind and a.renews_id is None), None
    )
    checks.append(
        EligibilityCheck(
            "duplicate_disease",
            _("No other active application for this disease"),
            duplicate is None,
            ""
            if duplicate is None
            else _("The person already has application #%(id)s for %(disease)s (%(state)s).")
            % {"id": duplicate.pk, "disease": disease, "state": duplicate.get_state_display()},
            {"application": duplicate.pk} if duplicate else {},
        )
    )

    exclusive_ids = set(disease.exclusive_with.values_list("pk", flat=True))
    clash = next((a for a in active_list if a.disease_id in exclusive_ids), None)
    checks.append(
        EligibilityCheck(
            "mutually_exclusive",
            _("No mutually exclusive disease held"),
            clash is None,
            ""
            if clash is None
            else _("%(held)s (application #%(id)s) excludes %(disease)s.")
            % {"held": clash.disease, "id": clash.pk, "disease": disease},
            {"application": clash.pk} if clash else {},
        )
    )

    counts = disease.disease_type == DiseaseType.CHRONIC and disease.counts_toward_limit and kind == ApplicationKind.NEW
    limit = policy_for_lineage(person.insured_region, lineage_ids).concurrent_chronic_limit
    held = held_toward_limit(every_active)
    if renews is not None:
        held = [a for a in held if a.pk != renews.pk]
    within = (not counts) or len(held) < limit
    held_text = "; ".join(f"#{a.pk} {a.disease}" for a in held)
    checks.append(
        EligibilityCheck(
            "limit_reached",
            _("Holds %(held)d of %(limit)d chronic enrollments") % {"held": len(held), "limit": limit},
            within,
            ""
            if within
            else _("The person already holds %(held)d of %(limit)d chronic enrollments: %(list)s.")
            % {"held": len(held), "limit": limit, "list": held_text},
            {"held": [a.pk for a in held], "limit": limit},
        )
    )
    return checks


def states_summary(queryset: QuerySet[Application]) -> dict[str, int]:
    from django.db.models import Count

    counts = dict(queryset.order_by().values_list("state").annotate(n=Count("id")))
    return {state: counts.get(state, 0) for state in State.values}


# ---------------------------------------------------------------------------
# Web pages: what the viewer may see and do on one application (issue 5)
# ---------------------------------------------------------------------------


def on_filing_side(user: Any, application: Application) -> bool:
    """Staff of the filing or treating institution (or an administrator): who may act for the applicant."""
    if roles.has_any_role(user, roles.ADMIN):
        return True
    institution = user_institution(user)
    return institution is not None and institution.pk in (
        application.filing_institution_id,
        application.treating_institution_id,
    )


def may_see_full_id_number(user: Any, application: Application) -> bool:
    """The full 身份证号 is shown to the clerks who identify the applicant; everyone else sees it masked (§10)."""
    return roles.has_any_role(user, roles.ADMIN) or (
        roles.has_any_role(user, roles.CLINIC_STAFF) and on_filing_side(user, application)
    )


def application_actions_for(user: Any, application: Application) -> list[str]:
    """The core transitions ``user`` may start on ``application`` now, mirroring the services' own checks.

    Review decisions (approve / reject / return) are taken from the reviewer queue, not from here.
    """
    from django_fsm import can_proceed, has_transition_perm

    actions: list[str] = []
    if can_proceed(application.diagnose) and has_transition_perm(application.diagnose, user):
        physician = getattr(user, "physician", None)
        if physician is not None and physician.institution_id in (
            application.treating_institution_id,
            application.filing_institution_id,
        ):
            actions.append("diagnose")
    for name in ("withdraw", "resubmit"):
        method = getattr(application, name)
        if can_proceed(method) and has_transition_perm(method, user) and on_filing_side(user, application):
            actions.append(name)
    if can_proceed(application.terminate) and has_transition_perm(application.terminate, user):
        actions.append("terminate")
    if can_proceed(application.approve_immediately) and has_transition_perm(application.approve_immediately, user):
        actions.append("approve_immediately")
    if renewal_open_for(user, application):
        actions.append("renew")
    return actions


def renewal_open_for(user: Any, application: Application) -> bool:
    """Whether the viewer may file the renewal (复审) of this enrollment today (what application_renew checks)."""
    import datetime as dt

    from django.utils import timezone

    if application.state not in (State.APPROVED, State.EXPIRING, State.EXPIRED) or application.valid_until is None:
        return False
    if not roles.has_any_role(user, roles.CLINIC_STAFF, roles.ADMIN) or not on_filing_side(user, application):
        return False
    window = policy_for_region(application.region).renewal_window_days
    if timezone.localdate() < application.valid_until - dt.timedelta(days=window):
        return False
    return not application.renewals.filter(state__in=ACTIVE_STATES).exists()


def applications_search(queryset: QuerySet[Application], *, state: str = "", text: str = "") -> QuerySet[Application]:
    """Narrow a scoped list by state and by a whole ID number or part of a name."""
    if state:
        queryset = queryset.filter(state=state)
    text = text.strip()
    if text:
        queryset = queryset.filter(Q(person__id_number=text.upper()) | Q(person__name__contains=text))
    return queryset


def renewal_worklist_for(user: Any, *, within_days: int = 180) -> QuerySet[Application]:
    """Covering enrollments the viewer can see whose validity ends within ``within_days``, soonest first,
    each with ``pending_renewal`` (a renewal is already filed) and ``reminders_sent``."""
    import datetime as dt

    from django.db.models import Count, Exists, OuterRef
    from django.utils import timezone

    from enrollment.models import COVERING_STATES

    horizon = timezone.localdate() + dt.timedelta(days=within_days)
    pending = Application.objects.filter(renews=OuterRef("pk"), state__in=ACTIVE_STATES)
    return (
        applications_visible_to(user)
        .filter(state__in=COVERING_STATES, valid_until__isnull=False, valid_until__lte=horizon)
        .annotate(
            pending_renewal=Exists(pending),
            reminders_sent=Count("reminders", filter=Q(reminders__status="sent")),
        )
        .order_by("valid_until", "id")
    )


def filing_checklist(
    *,
    user: Any,
    id_number: str,
    disease: Disease,
    insured_region: Region | None = None,
    kind: str = ApplicationKind.NEW,
    renews: Application | None = None,
    document_types: tuple[str, ...] | list[str] = (),
) -> list[EligibilityCheck]:
    """The checklist the filing form shows before submitting: the rules application_submit enforces,
    plus the documents the diagnosis will need (advisory: they may also be added later)."""
    from enrollment.errors import DomainError
    from enrollment.idnumbers import parse_id_number
    from enrollment.models import DocumentType

    try:
        number = parse_id_number(id_number).number
    except DomainError as error:
        return [EligibilityCheck("invalid_id_number", _("Valid ID number"), False, str(error.message))]
    person = person_by_id_number(user, number)
    if person is not None:
        checks = eligibility_checks(person=person, disease=disease, kind=kind, renews=renews)
    else:
        # A person not registered yet holds nothing; only the region rule can fail.
        region = insured_region
        available = region is not None and disease_available_in_region(disease, region)
        limit = policy_for_region(region).concurrent_chronic_limit if region is not None else 2
        checks = [
            EligibilityCheck("valid_id_number", _("Valid ID number"), True),
            EligibilityCheck(
                "disease_not_available",
                _("Disease available in the person's region"),
                available,
                ""
                if available
                else (
                    _("%(disease)s is not in the catalogue of %(region)s (or is no longer active).")
                    % {"disease": disease, "region": region}
                    if region is not None
                    else _("Choose the person's insured region.")
                ),
            ),
            EligibilityCheck("duplicate_disease", _("No other active application for this disease"), True),
            EligibilityCheck("mutually_exclusive", _("No mutually exclusive disease held"), True),
            EligibilityCheck(
                "limit_reached",
                _("Holds %(held)d of %(limit)d chronic enrollments") % {"held": 0, "limit": limit},
                True,
            ),
        ]
    present = set(document_types)
    if renews is not None:
        present |= set(renews.documents.values_list("doc_type", flat=True))
    missing = [d for d in disease.required_documents if d not in present]
    labels = ", ".join(str(DocumentType(d).label) if d in DocumentType.values else d for d in missing)
    checks.append(
        EligibilityCheck(
            "documents_missing",
            _("Required documents attached"),
            not missing,
            ""
            if not missing
            else _("Not attached yet: %(missing)s. They are needed before the diagnosis is recorded.")
            % {"missing": labels},
            {"missing": missing, "advisory": True},
        )
    )
    return checks


# ---------------------------------------------------------------------------
# Reminders and the coverage query (§6, issue 4)
# ---------------------------------------------------------------------------


def reminders_of(application: Application) -> QuerySet[Reminder]:
    """Every reminder row of one enrollment, newest offset first (the caller has checked visibility)."""
    return Reminder.objects.filter(application=application).order_by("-due_on", "-offset_days", "channel", "id")


def reminder_inbox(user: Any) -> QuerySet[Reminder]:
    """The in-app reminder list of the user's institution (its filed enrollments); admins see all."""
    base = Reminder.objects.filter(channel=ReminderChannel.IN_APP, status=ReminderStatus.SENT).select_related(
        "application", "application__person", "application__disease"
    )
    if roles.has_any_role(user, roles.ADMIN):
        return base.order_by("-created_at", "-id")
    institution = user_institution(user)
    if institution is None or not roles.has_any_role(user, roles.CLINIC_STAFF, roles.PHYSICIAN, roles.CENTER_OFFICER):
        return base.none()
    return base.filter(institution=institution).order_by("-created_at", "-id")


ENDED_STATES: tuple[str, ...] = (State.EXPIRED, State.RENEWED, State.TERMINATED)
APPROVAL_TRANSITIONS: tuple[str, ...] = ("approve", "approve_immediately")


@dataclass
class CoverageAnswer:
    """Was the person covered for the disease on ``on``, and under which decision?"""

    on: dt.date
    covered: bool
    reason: str
    enrollment: Application | None = None
    decision: AuditEntry | None = None
    provisional: bool = False
    pending_renewal: Application | None = None


def last_covered_day(application: Application) -> dt.date | None:
    """The enrollment's last covered day: ``ended_on`` once it has ended, else ``valid_until`` (None: open)."""
    if application.state in ENDED_STATES:
        return application.ended_on
    return application.valid_until


def approval_entry(application: Application) -> AuditEntry | None:
    return (
        AuditEntry.objects.filter(application=application, transition__in=APPROVAL_TRANSITIONS)
        .select_related("actor", "batch")
        .order_by("-at", "-id")
        .first()
    )


def coverage_on(*, person: Person, disease: Disease, on: dt.date) -> CoverageAnswer:
    """Answered from the enrollment periods and the audit log (DESIGN §6).

    Periods of one person and disease never overlap (a renewal starts the day after the old one
    ends), so at most one contains ``on``. A terminated enrollment covers through ``ended_on``. Past
    ``valid_until`` an enrollment with a renewal pending still covers, provisionally: if the renewal
    is approved its period starts the day after, with no gap; if not, the sweep expires it.
    """
    enrollments = list(
        Application.objects.filter(
            person=person,
            disease=disease,
            state__in=(*COVERING_STATES, *ENDED_STATES),
            valid_from__isnull=False,
        )
        .select_related("disease")
        .order_by("-valid_from", "-id")
    )
    for enrollment in enrollments:
        last = last_covered_day(enrollment)
        if enrollment.valid_from <= on and (last is None or on <= last):
            return CoverageAnswer(
                on=on, covered=True, reason="covered", enrollment=enrollment, decision=approval_entry(enrollment)
            )
    for enrollment in enrollments:
        if enrollment.state in COVERING_STATES and enrollment.valid_from <= on:
            pending = enrollment.renewals.filter(state__in=ACTIVE_STATES).order_by("-id").first()
            if pending is not None:
                return CoverageAnswer(
                    on=on,
                    covered=True,
                    reason="renewal_pending",
                    enrollment=enrollment,
                    decision=approval_entry(enrollment),
                    provisional=True,
                    pending_renewal=pending,
                )
    earlier = [e for e in enrollments if e.valid_from <= on]
    if earlier:
        previous = earlier[0]
        return CoverageAnswer(
            on=on,
            covered=False,
            reason="terminated" if previous.state == State.TERMINATED else "ended",
            enrollment=previous,
            decision=approval_entry(previous),
        )
    if enrollments:
        first = enrollments[-1]
        return CoverageAnswer(on=on, covered=False, reason="not_started", enrollment=first, decision=None)
    return CoverageAnswer(on=on, covered=False, reason="not_enrolled")
