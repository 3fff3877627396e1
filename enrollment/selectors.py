"""Every non-trivial read, scoped to the viewer (DESIGN §10): the one place that decides who sees what."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db.models import Q, QuerySet
from django.utils.translation import gettext as _

from enrollment import roles
from enrollment.models import (
    ACTIVE_STATES,
    Application,
    ApplicationKind,
    AuditEntry,
    Disease,
    DiseaseType,
    Institution,
    Person,
    Policy,
    Region,
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


def region_and_descendant_codes(region: Region) -> list[str]:
    """Codes of a region and everything under it (regions are a shallow tree: province → city → county)."""
    codes = [region.code]
    frontier = [region.pk]
    for _depth in range(5):
        children = list(Region.objects.filter(parent_id__in=frontier).values_list("pk", "code"))
        if not children:
            break
        frontier = [pk for pk, _code in children]
        codes.extend(code for _pk, code in children)
    return codes


# ---------------------------------------------------------------------------
# Policies and diseases
# ---------------------------------------------------------------------------


def policy_for_region(region: Region) -> Policy:
    """The region's own policy, else its nearest ancestor's, else the defaults (unsaved)."""
    lineage = region.lineage()
    policies = {p.region_id: p for p in Policy.objects.filter(region__in=lineage)}
    for node in lineage:
        if node.pk in policies:
            return policies[node.pk]
    return Policy(region=region)


def disease_available_in_region(disease: Disease, region: Region) -> bool:
    if not disease.active:
        return False
    allowed = {r.pk for r in disease.regions.all()}
    if not allowed:
        return True
    return any(node.pk in allowed for node in region.lineage())


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
        region = user_region(user)
        if region is not None:
            scope |= Q(region__code__in=region_and_descendant_codes(region))
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


def chronic_holdings(person: Person) -> QuerySet[Application]:
    """Active enrollments that count toward the concurrent chronic limit.

    A pending renewal does not count twice: while the enrollment it renews is active, it is the
    one that counts. 两病 medication coverage never counts.
    """
    return (
        Application.objects.filter(
            person=person,
            state__in=ACTIVE_STATES,
            disease__disease_type=DiseaseType.CHRONIC,
            disease__counts_toward_limit=True,
        )
        .exclude(kind=ApplicationKind.TWO_DISEASES)
        .exclude(kind=ApplicationKind.RENEWAL, renews__state__in=ACTIVE_STATES)
        .select_related("disease")
        .order_by("filed_at", "id")
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

    available = disease_available_in_region(disease, person.insured_region)
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

    active = Application.objects.filter(person=person, state__in=ACTIVE_STATES).select_related("disease")
    if renews is not None:
        active = active.exclude(pk=renews.pk)
    active_list = list(active)

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
    limit = policy_for_region(person.insured_region).concurrent_chronic_limit
    held = list(chronic_holdings(person))
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
