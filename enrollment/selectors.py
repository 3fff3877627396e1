"""Every non-trivial read, scoped to the viewer: the one place that decides who sees what.

docs/design.md: Access and privacy.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Exists, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from enrollment import reference_cache
from enrollment.coverage import CoverageAnswer, coverage_answer, coverage_read
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
    PersonStatusEvent,
    Policy,
    Region,
    Reminder,
    ReminderChannel,
    ReminderStatus,
    ReviewLevel,
    ReviewMode,
    State,
    province_code,
)
from kernel import roles
from kernel.input_guard import field_max_length

# ---------------------------------------------------------------------------
# Where a user works
# ---------------------------------------------------------------------------


def user_institution(user: roles.AnyUser) -> Institution | None:
    profile = getattr(user, "profile", None) if getattr(user, "is_authenticated", False) else None
    if profile is None or not profile.institution_id:
        return None
    if not type(profile).institution.is_cached(profile):
        # From the per-process reference copy, kept on the profile (so on the user) for the rest of the
        # request: the nav's workplace, the scope and the home panels read it without a query each.
        cached = reference_cache.institution(profile.institution_id)
        if cached is not None:
            profile.institution = cached
    return profile.institution


def _profile_region(profile: Any) -> Region | None:
    """The profile's own region, from the per-process reference copy, kept on the profile for the request."""
    if not type(profile).region.is_cached(profile):
        cached = reference_cache.region(profile.region_id)
        if cached is not None:
            profile.region = cached
    return profile.region


def user_region(user: roles.AnyUser) -> Region | None:
    """A reviewer's region; for institution staff, their institution's region."""
    profile = getattr(user, "profile", None) if getattr(user, "is_authenticated", False) else None
    if profile is None:
        return None
    if profile.region_id:
        return _profile_region(profile)
    institution = user_institution(user)
    if institution is None:
        return None
    if not type(institution).region.is_cached(institution):
        cached = reference_cache.region(institution.region_id)
        if cached is not None:
            institution.region = cached
    return institution.region


def user_region_id(user: roles.AnyUser) -> int | None:
    """The id of ``user_region(user)``, without loading the region."""
    profile = getattr(user, "profile", None) if getattr(user, "is_authenticated", False) else None
    if profile is None:
        return None
    if profile.region_id:
        return profile.region_id
    institution = user_institution(user)
    return institution.region_id if institution is not None else None


# Regions are a shallow tree (province → city → county). Walking it one level per query cost a
# round trip per level on every scoped request; these read it in one query, up to this depth.
REGION_TREE_DEPTH = 5


def _descendant_q(region_id: int) -> Q:
    scope = Q(pk=region_id)
    for depth in range(1, REGION_TREE_DEPTH + 1):
        scope |= Q(**{"parent__" * (depth - 1) + "parent_id": region_id})
    return scope


def region_and_descendant_ids(region_id: int) -> list[int]:
    """Ids of a region and everything under it, from the per-process region tree (reference_cache)."""
    return reference_cache.region_and_descendant_ids(region_id)


def region_and_descendant_codes(region: Region) -> list[str]:
    """Codes of a region and everything under it, in one query."""
    return list(Region.objects.filter(_descendant_q(region.pk)).order_by().values_list("code", flat=True))


def region_lineage_ids(region: Region) -> list[int]:
    """Ids of the region and its ancestors, nearest first (what ``Region.lineage`` walks), from the
    per-process region tree (reference_cache); a region it does not hold yet, in one query."""
    if region.pk in reference_cache.data().parent_of:
        return reference_cache.region_lineage_ids(region.pk)
    columns = ["pk", *("parent__" * (depth - 1) + "parent_id" for depth in range(1, REGION_TREE_DEPTH + 1))]
    row = Region.objects.filter(pk=region.pk).values_list(*columns).first() or (region.pk,)
    chain: list[int] = []
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
    """``policy_for_region`` when the caller already holds ``region_lineage_ids(region)`` (the policies
    come from the per-process copy, reference_cache; each call answers a new instance)."""
    return reference_cache.policy_for_lineage(region, lineage_ids)


def disease_available_in_region(disease: Disease, region: Region, lineage_ids: list[int] | None = None) -> bool:
    if not disease.active:
        return False
    allowed = reference_cache.disease_region_ids(disease.pk)
    if not allowed:
        return True
    if lineage_ids is None:
        lineage_ids = region_lineage_ids(region)
    return any(region_id in allowed for region_id in lineage_ids)


# ---------------------------------------------------------------------------
# Who reviews an application, and how (审核权限下放, 即时办结)
# ---------------------------------------------------------------------------


def review_region_for(insured_region: Region) -> Region:
    """The region whose batch and reviewers handle a filing of a person insured in ``insured_region``.

    A township (9-digit code) whose effective policy (its own, else its county's …) delegates review
    to the township health centre (``review_level = township``) reviews its own filings; any other
    township's filings go to its county. A province, city or county reviews its own.
    """
    if not insured_region.is_township:
        return insured_region
    if policy_for_region(insured_region).review_level == ReviewLevel.TOWNSHIP:
        return insured_region
    return insured_region.parent or insured_region


def _governing_policy_id() -> Coalesce:
    """For an application row: the id of the policy of its region, else of the nearest ancestor that has one."""
    levels = [
        Subquery(
            Policy.objects.filter(**{"region" + "__children" * depth + "__id": OuterRef("region_id")}).values("pk")[:1]
        )
        for depth in range(REGION_TREE_DEPTH + 1)
    ]
    return Coalesce(*levels)


def reviewed_on_the_spot(queryset: QuerySet[Application]) -> QuerySet[Application]:
    """The applications of ``queryset`` approved on the spot where they are reviewed: the queryset form of
    ``models.immediate_review`` (catalogue review mode immediate, or listed in the ``immediate_diseases``
    of the policy governing the application's region), in the same single query."""
    listed = Policy.immediate_diseases.through.objects.filter(
        policy_id=OuterRef("governing_policy_id"), disease_id=OuterRef("disease_id")
    )
    return queryset.annotate(governing_policy_id=_governing_policy_id()).filter(
        Q(disease__review_mode=ReviewMode.IMMEDIATE) | Exists(listed)
    )


def diseases_active() -> QuerySet[Disease]:
    return Disease.objects.filter(active=True).order_by("code")


# ---------------------------------------------------------------------------
# Finding a disease from what a clerk or a roster wrote (one rule for both)
# ---------------------------------------------------------------------------

_DISEASE_CODE = re.compile(r"^M\d{5}$")
_ICD10 = re.compile(r"^[A-Z]\d{2}(\.?\d{0,4}[A-Z0-9+*†]*)?$")
_NAME_SUFFIXES = ("病", "症")


def disease_name_key(text: str) -> str:
    """A name or alias as the loose comparison sees it: full-width forms folded to half-width (NFKC),
    no whitespace at all, upper case, and without one final 病 or 症 (高血压病 and 高血压 compare equal)."""
    key = "".join(unicodedata.normalize("NFKC", text or "").split()).upper()
    if len(key) > 1 and key.endswith(_NAME_SUFFIXES):
        key = key[:-1]
    return key


def _icd_key(code: str) -> str:
    return code.strip().upper().replace(".", "")


@dataclass(frozen=True)
class DiseaseMatch:
    """What a typed disease name resolves to: one disease, or why not (with the candidates)."""

    disease: Disease | None
    code: str = ""  # "" | "unknown_disease" | "ambiguous_disease"
    message: str = ""
    candidates: tuple[Disease, ...] = ()
    how: str = ""  # code | name | alias | loose | icd10


class DiseaseMatcher:
    """The one rule that turns what a clerk types or a roster declares into a catalogue disease.

    Tried in order, the first step that finds anything decides:

    1. the national code (``M03900``, also in full-width digits);
    2. the exact name (``高血压病``);
    3. an exact alias (``高血压`` when the catalogue lists it as another name of 高血压病);
    4. name or alias ignoring whitespace, full-width/half-width forms and one final 病/症
       (``高血压`` ↔ ``高血压病``, ``慢性 阻塞性肺疾病`` ↔ ``慢性阻塞性肺疾病``);
    5. an ICD-10 code, by the longest matching prefix of the diseases' ICD-10 prefixes (``E11.9``).

    A step that finds several diseases reports them as ambiguous, never picks one — except that an
    active disease wins over inactive ones of the same name (only active ones can be filed). Built
    once from the diseases (one query, or none if the caller has them), then every match is done
    in memory: a roster import builds one per run.
    """

    def __init__(self, diseases: Iterable[Disease] | None = None) -> None:
        if diseases is None:
            diseases = Disease.objects.all()
        self.diseases = list(diseases)
        self.by_code: dict[str, Disease] = {d.code: d for d in self.diseases}
        self.by_name: dict[str, list[Disease]] = {}
        self.by_alias: dict[str, list[Disease]] = {}
        self.by_key: dict[str, list[Disease]] = {}
        for disease in self.diseases:
            names = [disease.name.strip()]
            aliases = [str(alias).strip() for alias in (disease.aliases or []) if str(alias).strip()]
            self._add(self.by_name, names[0], disease)
            for alias in aliases:
                self._add(self.by_alias, alias, disease)
            for text in [*names, *aliases]:
                self._add(self.by_key, disease_name_key(text), disease)
        self.icd_prefixes = sorted(
            ((_icd_key(prefix), d) for d in self.diseases for prefix in d.icd10_prefixes if _icd_key(prefix)),
            key=lambda item: -len(item[0]),
        )

    @staticmethod
    def _add(index: dict[str, list[Disease]], key: str, disease: Disease) -> None:
        if key:
            found = index.setdefault(key, [])
            if disease not in found:
                found.append(disease)

    def match(self, text: str) -> DiseaseMatch:
        raw = (text or "").strip()
        # Codes are folded (full-width, case) but keep inner spaces: "M05300 J44" is two codes, not an
        # ICD-10 code starting with M05.
        folded = unicodedata.normalize("NFKC", raw).strip().upper()
        if _DISEASE_CODE.match(folded):
            disease = self.by_code.get(folded)
            if disease is None:
                return DiseaseMatch(
                    None, "unknown_disease", _("Disease code %(code)s is not in the catalogue.") % {"code": folded}
                )
            return DiseaseMatch(disease, how="code")
        how, found = self.by_names(raw)
        if found:
            return self._one_of(raw, found, how)
        if _ICD10.match(folded):
            code = _icd_key(folded)
            matches = [(prefix, d) for prefix, d in self.icd_prefixes if code.startswith(prefix)]
            if matches:
                best = len(matches[0][0])
                found = sorted({d for prefix, d in matches if len(prefix) == best}, key=lambda d: d.code)
                if len(found) == 1:
                    return DiseaseMatch(found[0], how="icd10")
                return DiseaseMatch(
                    None,
                    "ambiguous_disease",
                    _("ICD-10 code %(code)s fits several diseases (%(list)s): give the disease code instead.")
                    % {"code": folded, "list": ", ".join(d.code for d in found)},
                    tuple(found),
                )
        return DiseaseMatch(
            None,
            "unknown_disease",
            _("“%(value)s” is neither a disease code, a disease name nor an ICD-10 code of the catalogue.")
            % {"value": raw},
        )

    def by_names(self, text: str) -> tuple[str, list[Disease]]:
        """Steps 2–4 only (exact name, exact alias, loose name or alias): how, and what they find."""
        raw = (text or "").strip()
        for how, index, key in (
            ("name", self.by_name, raw),
            ("alias", self.by_alias, raw),
            ("loose", self.by_key, disease_name_key(raw)),
        ):
            found = index.get(key) if key else None
            if found:
                return how, found
        return "", []

    @staticmethod
    def _one_of(raw: str, found: list[Disease], how: str) -> DiseaseMatch:
        if len(found) > 1:
            active = [d for d in found if d.active]
            if len(active) == 1:
                return DiseaseMatch(active[0], how=how)
            found = sorted(found, key=lambda d: d.code)
            return DiseaseMatch(
                None,
                "ambiguous_disease",
                _("“%(value)s” fits several diseases (%(list)s): give the disease code instead.")
                % {"value": raw, "list": ", ".join(str(d) for d in found)},
                tuple(found),
            )
        return DiseaseMatch(found[0], how=how)

    @staticmethod
    def search_text(disease: Disease) -> str:
        """What the filing page's catalogue search looks in: the code and the loose keys of the name and
        aliases, ``|``-separated (static/js/filing.js folds what the clerk types the same way)."""
        names = [disease.name, *(str(alias) for alias in (disease.aliases or []))]
        keys = [disease.code, *dict.fromkeys(disease_name_key(name) for name in names if name.strip())]
        return "|".join(keys)


def disease_matches(text: str, diseases: Iterable[Disease] | None = None) -> DiseaseMatch:
    """The disease a clerk or a roster means by ``text`` (see DiseaseMatcher for the rule).

    For many texts build one ``DiseaseMatcher`` and call its ``match``.
    """
    return DiseaseMatcher(diseases).match(text)


# ---------------------------------------------------------------------------
# Applications
# ---------------------------------------------------------------------------


def applications_visible_to(user: roles.AnyUser) -> QuerySet[Application]:
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


# Apps above enrollment add to an application's page and API detail without enrollment importing them
# (the national platform link registers its state here in NhsaConfig.ready):
# APPLICATION_PANELS: hook(request, application) -> {"template": …, …} or None, a card on the page;
# APPLICATION_EXTRAS: (key, hook(application) -> JSON-able value), extra keys of the API detail.
APPLICATION_PANELS: list[Any] = []
APPLICATION_EXTRAS: list[tuple[str, Any]] = []
# REPORT_PANELS: hook(request) -> {"template": …, …} or None, a section at the end of the reports page.
REPORT_PANELS: list[Any] = []


def hold_as_prefetched(instance: Any, **related: list[Any]) -> None:
    """Give ``instance`` its related rows as ``prefetch_related`` would (``instance.documents.all()`` then
    answers them without a query): for rows a service has just written and knows to be all there are."""
    cache = instance.__dict__.setdefault("_prefetched_objects_cache", {})
    for name, rows in related.items():
        manager = getattr(instance, name)
        queryset = manager.get_queryset()
        queryset._result_cache = list(rows)
        queryset._prefetch_done = True
        cache[manager.field.remote_field.cache_name] = queryset  # what a reverse foreign key's manager reads


# BATCH_LABELS: callables an app above registers (the reviews app, in ready()) that take a set of batch ids
# and answer {id: label} for those they know, in one query. Audit rows carry the batch as a plain id.
BATCH_LABELS: list[Callable[[set[int]], dict[int, str]]] = []


def attach_batch_labels(entries: Iterable[AuditEntry]) -> list[AuditEntry]:
    """Give each audit row ``batch_label`` (None without a batch), one query per registered labeller."""
    rows = list(entries)
    ids = {e.batch_id for e in rows if e.batch_id is not None}
    labels: dict[int, str] = {}
    for labeller in BATCH_LABELS if ids else ():
        labels.update(labeller(ids))
    for entry in rows:
        entry.batch_label = None if entry.batch_id is None else labels.get(entry.batch_id, f"#{entry.batch_id}")
    return rows


def application_timeline(application: Application) -> list[AuditEntry]:
    return attach_batch_labels(application.audit_entries.select_related("actor").order_by("at", "id"))


def persons_visible_to(user: roles.AnyUser) -> QuerySet[Person]:
    """Persons are looked up by ID number by anyone who files or reviews; listing is for admins."""
    if not roles.role_names(user):
        return Person.objects.none()
    return Person.objects.select_related("insured_region")


# Who may set which of a person's fields (security review, issue 18). The insurance office (centre
# officers, administrators, the system) keeps the insured region, insurance and categories — through
# status events and corrections; a clinic registers new persons and keeps contact details up to date.
OFFICE_PERSON_FIELDS = frozenset({"name", "insured_region", "insurance_type", "insurance_number"})
CONTACT_PERSON_FIELDS = frozenset({"phone"})


def is_person_office(user: roles.AnyUser) -> bool:
    return roles.is_system(user) or roles.has_any_role(user, roles.CENTER_OFFICER, roles.ADMIN)


def holds_application_of(user: roles.AnyUser, person: Person) -> bool:
    """The user's institution filed or treats an application of the person (any state)."""
    institution_id = getattr(getattr(user, "profile", None), "institution_id", None)
    if institution_id is None:
        return False
    return (
        Application.objects.filter(person=person)
        .filter(Q(filing_institution_id=institution_id) | Q(treating_institution_id=institution_id))
        .exists()
    )


def person_fields_refused(
    user: roles.AnyUser, person: Person | None, fields: set[str], *, categories: bool
) -> set[str]:
    """The fields (of ``fields``, plus "support_categories") that ``user`` may not set on ``person``
    (None: registering a new person). Empty: permitted."""
    if is_person_office(user):
        return set()
    refused = {"support_categories"} if categories else set()
    if person is None:
        return refused  # institution staff register new persons with all their details
    if fields & CONTACT_PERSON_FIELDS and not holds_application_of(user, person):
        refused |= fields & CONTACT_PERSON_FIELDS
    return refused | (fields & OFFICE_PERSON_FIELDS) | (fields - OFFICE_PERSON_FIELDS - CONTACT_PERSON_FIELDS)


def status_events_of(person: Person) -> QuerySet[PersonStatusEvent]:
    return PersonStatusEvent.objects.filter(person=person).order_by("effective_date", "recorded_at", "id")


def person_by_id_number(user: roles.AnyUser, id_number: str) -> Person | None:
    return persons_visible_to(user).filter(id_number=id_number).first()


PERSON_NAME_MAX_LENGTH = field_max_length(Person, "name")
PERSON_PHONE_MAX_LENGTH = field_max_length(Person, "phone")


def _unreadable(text: str) -> bool:
    """Control characters (NUL included: PostgreSQL cannot store it), lone surrogates or U+FFFD (a
    character lost in some earlier conversion). Private-use characters stay allowed: GB18030 maps
    rare characters of names (生僻字) there."""
    if "\ufffd" in text:
        return True
    return not text.isprintable() and any(unicodedata.category(ch) in ("Cc", "Cs") for ch in text)


def person_details_problem(*, name: str, phone: str = "") -> tuple[str, str, str] | None:
    """Why a person's name or phone cannot be stored, as (code, field, message), or None.

    The one rule person_register enforces and the roster dry run reports (so that a line the dry run
    passes is never refused by the commit): a name of 1–50 characters, a phone of at most 20, neither
    with control or unreadable characters. ``name`` and ``phone`` are taken as already stripped.
    """
    if not name:
        return "missing_name", "name", _("The name is missing.")
    if len(name) > PERSON_NAME_MAX_LENGTH:
        return (
            "invalid_name",
            "name",
            _("The name has %(length)d characters; at most %(max)d are allowed.")
            % {"length": len(name), "max": PERSON_NAME_MAX_LENGTH},
        )
    if _unreadable(name):
        return "invalid_name", "name", _("The name contains control or unreadable characters.")
    if len(phone) > PERSON_PHONE_MAX_LENGTH:
        return (
            "invalid_phone",
            "phone",
            _("The phone number has %(length)d characters; at most %(max)d are allowed.")
            % {"length": len(phone), "max": PERSON_PHONE_MAX_LENGTH},
        )
    if phone and _unreadable(phone):
        return "invalid_phone", "phone", _("The phone number contains control or unreadable characters.")
    return None


# ---------------------------------------------------------------------------
# Eligibility (the checks application_submit enforces, as a checklist for the form)
# ---------------------------------------------------------------------------


def counts_toward_limit(*, disease: Disease, kind: str, renews_active: bool) -> bool:
    """The concurrent chronic limit rule for one active application (docs/design.md: Filing rules).

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


STANDING_MESSAGES = {
    "person_deceased": gettext_lazy("The person's death was recorded (%(date)s); no application can be filed."),
    "insurance_suspended": gettext_lazy(
        "The person's insurance is suspended since %(date)s; file again once the insurance office records "
        "its resumption."
    ),
    "not_insured": gettext_lazy("The person's insurance here ended on %(date)s; no application can be filed."),
    "moved_out": gettext_lazy(
        "The person's insurance was transferred outside the province on %(date)s; they file in their new province."
    ),
}


def standing_check(person: Person) -> EligibilityCheck:
    """Filing needs a living person insured here today (the status events of the insurance office)."""
    from enrollment.coverage import person_standing

    standing = person_standing(person=person)
    if standing.insured:
        return EligibilityCheck("not_insured", _("Insured here and alive"), True)
    code = "person_deceased" if standing.status == "person_deceased" else "not_insured"
    date = standing.event.effective_date.isoformat() if standing.event else "?"
    return EligibilityCheck(
        code,
        _("Insured here and alive"),
        False,
        STANDING_MESSAGES[standing.status] % {"date": date},
        {"status": standing.status, "since": date},
    )


def province_check(
    *, insured_region: Region, lineage_ids: list[int], institutions: Iterable[Institution | None]
) -> EligibilityCheck:
    """省内互认: recognition holds across the insured person's province, not beyond it. The filing and
    the treating institution must both lie in that province (any designated institution of it will do)."""
    given = [inst for inst in dict.fromkeys(institutions) if inst is not None]
    # An institution of the person's own region or of one of its ancestors is in the province without
    # reading anything; only the others need their region's code.
    others = {inst.region_id for inst in given if inst.region_id not in lineage_ids}
    regions = reference_cache.data().regions
    code_at = regions.names.index("code")
    codes = {pk: regions.by_pk[pk][code_at] for pk in others if pk in regions.by_pk}
    if others - codes.keys():  # a region this process does not hold yet
        codes = dict(Region.objects.filter(pk__in=others).values_list("pk", "code"))
    home = insured_region.province_code
    outside = next(
        (inst for inst in given if inst.region_id in codes and province_code(codes[inst.region_id]) != home), None
    )
    label = _("Filing and treating institutions in the person's province")
    if outside is None:
        return EligibilityCheck("outside_province", label, True)
    there = province_code(codes[outside.region_id])
    names = dict(Region.objects.filter(code__in=[home, there]).values_list("code", "name"))
    return EligibilityCheck(
        "outside_province",
        label,
        False,
        _(
            "省内互认: %(institution)s is in another province (%(there)s); recognition is valid within the "
            "insured province only: file at a designated institution of %(home)s."
        )
        % {"institution": outside.name, "there": names.get(there, there), "home": names.get(home, home)},
        {"institution": outside.code, "institution_province": there, "insured_province": home},
    )


def may_see_other_application(viewer: roles.AnyUser | None, application: Application) -> bool:
    """Whether a filing refusal may name ``application`` to ``viewer``: administrators, the system, and
    staff of the institution that filed or treats it (what ``applications_visible_to`` shows them)."""
    return viewer is not None and (roles.is_system(viewer) or on_filing_side(viewer, application))


def eligibility_checks(
    *,
    person: Person,
    disease: Disease,
    kind: str = ApplicationKind.NEW,
    renews: Application | None = None,
    treating_institution: Institution | None = None,
    filing_institution: Institution | None = None,
    viewer: roles.AnyUser | None = None,
) -> list[EligibilityCheck]:
    """Each filing rule with its outcome, in the order a clerk reads them.

    A refusal names another application (its number, disease, state) only to a ``viewer`` who may see
    it: a clinic must not learn from an error that the person has, say, an HIV application at another
    hospital (security review, issue 18). Others get a count and where to ask.
    """

    def visible(application: Application) -> bool:
        return may_see_other_application(viewer, application)

    checks: list[EligibilityCheck] = [EligibilityCheck("valid_id_number", _("Valid ID number"), True)]
    checks.append(standing_check(person))

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
    checks.append(
        province_check(
            insured_region=person.insured_region,
            lineage_ids=lineage_ids,
            institutions=(treating_institution, filing_institution),
        )
    )

    # One read of the person's active applications serves the duplicate, exclusion and limit rules.
    every_active = list(Application.objects.filter(person=person, state__in=ACTIVE_STATES).select_related("disease"))
    active_list = [a for a in every_active if renews is None or a.pk != renews.pk]

    duplicate = next(
        (a for a in active_list if a.disease_id == disease.pk and a.kind == kind and a.renews_id is None), None
    )
    if duplicate is None:
        duplicate_message, duplicate_details = "", {}
    elif visible(duplicate):
        duplicate_message = _("The person already has application #%(id)s for %(disease)s (%(state)s).") % {
            "id": duplicate.pk,
            "disease": disease,
            "state": duplicate.get_state_display(),
        }
        duplicate_details = {"application": duplicate.pk}
    else:
        duplicate_message = _(
            "The person already has an active application for %(disease)s at another institution; it must be "
            "withdrawn or decided before another is filed. The insurance office can tell you where."
        ) % {"disease": disease}
        duplicate_details = {"elsewhere": True}
    checks.append(
        EligibilityCheck(
            "duplicate_disease",
            _("No other active application for this disease"),
            duplicate is None,
            duplicate_message,
            duplicate_details,
        )
    )

    exclusive_ids = reference_cache.disease_exclusive_ids(disease.pk)
    clash = next((a for a in active_list if a.disease_id in exclusive_ids), None)
    if clash is None:
        clash_message, clash_details = "", {}
    elif visible(clash):
        clash_message = _("%(held)s (application #%(id)s) excludes %(disease)s.") % {
            "held": clash.disease,
            "id": clash.pk,
            "disease": disease,
        }
        clash_details = {"application": clash.pk}
    else:
        clash_message = _(
            "The person holds an application at another institution for a disease that excludes %(disease)s "
            "(互斥病种). The insurance office can tell you more."
        ) % {"disease": disease}
        clash_details = {"elsewhere": True}
    checks.append(
        EligibilityCheck(
            "mutually_exclusive",
            _("No mutually exclusive disease held"),
            clash is None,
            clash_message,
            clash_details,
        )
    )

    counts = disease.disease_type == DiseaseType.CHRONIC and disease.counts_toward_limit and kind == ApplicationKind.NEW
    limit = policy_for_lineage(person.insured_region, lineage_ids).concurrent_chronic_limit
    held = held_toward_limit(every_active)
    if renews is not None:
        held = [a for a in held if a.pk != renews.pk]
    within = (not counts) or len(held) < limit
    shown = [a for a in held if visible(a)]
    held_text = "; ".join(f"#{a.pk} {a.disease}" for a in shown)
    elsewhere = len(held) - len(shown)
    if within:
        limit_message = ""
    elif not elsewhere:
        limit_message = _("The person already holds %(held)d of %(limit)d chronic enrollments: %(list)s.") % {
            "held": len(held),
            "limit": limit,
            "list": held_text,
        }
    else:
        limit_message = _(
            "The person already holds %(held)d of %(limit)d chronic enrollments (%(elsewhere)d at other "
            "institutions%(yours)s). One must end or be withdrawn first; the insurance office can tell you more."
        ) % {
            "held": len(held),
            "limit": limit,
            "elsewhere": elsewhere,
            "yours": ("; " + _("yours: %(list)s") % {"list": held_text}) if shown else "",
        }
    checks.append(
        EligibilityCheck(
            "limit_reached",
            _("Holds %(held)d of %(limit)d chronic enrollments") % {"held": len(held), "limit": limit},
            within,
            limit_message,
            {"held": [a.pk for a in shown], "held_count": len(held), "limit": limit},
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


def on_filing_side(user: roles.AnyUser, application: Application) -> bool:
    """Staff of the filing or treating institution (or an administrator): who may act for the applicant."""
    if roles.has_any_role(user, roles.ADMIN):
        return True
    institution = user_institution(user)
    return institution is not None and institution.pk in (
        application.filing_institution_id,
        application.treating_institution_id,
    )


def on_filing_institution(user: roles.AnyUser, application: Application) -> bool:
    """Staff of the institution that filed the application (or an administrator): who withdraws and
    resubmits it. The treating institution, when another, adds documents and diagnoses but does not."""
    if roles.has_any_role(user, roles.ADMIN):
        return True
    institution = user_institution(user)
    return institution is not None and institution.pk == application.filing_institution_id


def may_see_full_id_number(user: roles.AnyUser, application: Application) -> bool:
    """The full 身份证号 is shown to the clerks who identify the applicant; everyone else sees it masked
    (docs/design.md: Access and privacy)."""
    return roles.has_any_role(user, roles.ADMIN) or (
        roles.has_any_role(user, roles.CLINIC_STAFF) and on_filing_side(user, application)
    )


def applications_search(queryset: QuerySet[Application], *, state: str = "", text: str = "") -> QuerySet[Application]:
    """Narrow a scoped list by state and by a whole ID number or part of a name."""
    if state:
        queryset = queryset.filter(state=state)
    text = text.strip()
    if text:
        queryset = queryset.filter(Q(person__id_number=text.upper()) | Q(person__name__contains=text))
    return queryset


def renewal_candidates(user: roles.AnyUser, *, within_days: int = 180) -> QuerySet[Application]:
    """Covering enrollments the viewer can see whose validity ends within ``within_days`` (no order, no flags:
    the renewal worklist's scope, which its filters narrow)."""
    import datetime as dt

    from django.utils import timezone

    horizon = timezone.localdate() + dt.timedelta(days=within_days)
    return applications_visible_to(user).filter(
        state__in=COVERING_STATES, valid_until__isnull=False, valid_until__lte=horizon
    )


def with_renewal_flags(queryset: QuerySet[Application]) -> QuerySet[Application]:
    """Each row with ``pending_renewal`` (a renewal is already filed) and ``reminders_sent``."""
    from django.db.models import Count, Exists, OuterRef

    pending = Application.objects.filter(renews=OuterRef("pk"), state__in=ACTIVE_STATES)
    return queryset.annotate(
        pending_renewal=Exists(pending),
        reminders_sent=Count("reminders", filter=Q(reminders__status="sent")),
    )


def renewal_worklist_for(user: roles.AnyUser, *, within_days: int = 180) -> QuerySet[Application]:
    """Covering enrollments the viewer can see whose validity ends within ``within_days``, soonest first,
    each with ``pending_renewal`` (a renewal is already filed) and ``reminders_sent``."""
    return with_renewal_flags(renewal_candidates(user, within_days=within_days)).order_by("valid_until", "id")


def filing_checklist(
    *,
    user: roles.AnyUser,
    id_number: str,
    disease: Disease,
    insured_region: Region | None = None,
    kind: str = ApplicationKind.NEW,
    renews: Application | None = None,
    document_types: tuple[str, ...] | list[str] = (),
    treating_institution: Institution | None = None,
) -> list[EligibilityCheck]:
    """The checklist the filing form shows before submitting: the rules application_submit enforces,
    plus the documents the diagnosis will need (advisory: they may also be added later)."""
    from enrollment.idnumbers import parse_id_number
    from enrollment.models import DocumentType
    from kernel.errors import DomainError

    try:
        number = parse_id_number(id_number).number
    except DomainError as error:
        return [EligibilityCheck("invalid_id_number", _("Valid ID number"), False, str(error.message))]
    person = person_by_id_number(user, number)
    # The filing institution is the clerk's own (an administrator without one files as the treating one).
    filing_institution = user_institution(user) or treating_institution
    if person is not None:
        checks = eligibility_checks(
            person=person,
            disease=disease,
            kind=kind,
            renews=renews,
            treating_institution=treating_institution,
            filing_institution=filing_institution,
            viewer=user,
        )
    else:
        # A person not registered yet holds nothing; only the region and province rules can fail.
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
        ]
        if region is not None:
            checks.append(
                province_check(
                    insured_region=region,
                    lineage_ids=region_lineage_ids(region),
                    institutions=(treating_institution, filing_institution),
                )
            )
        checks += [
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
# Reminders and the coverage query (docs/design.md: Validity, renewal and reminders; issue 4)
# ---------------------------------------------------------------------------


def home_worklists(
    user: roles.Actor, role: str | None, applications: QuerySet[Application], *, renewal_horizon_days: int
) -> dict[str, Any]:
    """The worklists of a user's home page, by role, from the applications they may see (lazy querysets)."""
    if role == roles.CLINIC_STAFF:
        return {
            "returned": applications.filter(state=State.RETURNED).order_by("filed_at")[:50],
            "recent": applications.exclude(state=State.RETURNED)[:20],
            "renewals": renewal_worklist_for(user, within_days=renewal_horizon_days)[:50],
            "inbox": reminder_inbox(user).filter(read_at__isnull=True)[:20],
        }
    if role == roles.PHYSICIAN:
        return {
            "waiting": applications.filter(state=State.SUBMITTED).order_by("filed_at")[:50],
            "recent": applications.filter(diagnosed_by=user).order_by("-diagnosed_at")[:20],
        }
    if role == roles.CENTER_OFFICER:
        # What the officer decides on the spot: diagnosed and reviewed immediately (the catalogue or the policy).
        return {
            "waiting": reviewed_on_the_spot(applications.filter(state=State.DIAGNOSED)).order_by("diagnosed_at")[:50],
            "recent": applications[:20],
        }
    if role == roles.REVIEWER:
        return {"in_review": applications.filter(state=State.IN_REVIEW).order_by("diagnosed_at")[:20]}
    if role == roles.ADMIN:
        return {"recent": applications[:20]}
    return {}


@dataclass
class FilingCheckAnswer:
    """The filing page's live check as plain data (``result``), and the registered person it showed, whose
    look-up the caller writes to the access log."""

    result: dict[str, Any]
    person: Person | None


def _digits_pk(value: str) -> int | None:
    return int(value) if value.isdigit() else None


def filing_check_answer(
    user: roles.AnyUser,
    *,
    id_number: str,
    disease_id: str,
    insured_region_id: str,
    treating_institution_id: str,
    document_types: list[str],
) -> FilingCheckAnswer:
    """The number checked as it is typed, the person prefilled, and the checklist (JSON-able)."""
    from enrollment.idnumbers import parse_id_number
    from kernel.errors import DomainError

    result: dict[str, Any] = {
        "id_number": {"valid": False, "message": "", "known": False},
        "person": None,
        "checks": [],
    }
    person = None
    try:
        number: str | None = parse_id_number(id_number).number
    except DomainError as error:
        result["id_number"]["message"] = str(error.message)
        number = None
    if number:
        person = person_by_id_number(user, number)
        result["id_number"].update(valid=True, normalised=number, known=person is not None)
        if person is not None:
            result["person"] = {
                "name": person.name,
                "sex": person.get_sex_display(),
                "birth_date": person.birth_date.isoformat(),
                "insured_region": person.insured_region_id,
                "insured_region_name": str(person.insured_region),
                "insurance_type": person.insurance_type,
                "insurance_number": person.insurance_number,
                "phone": person.phone,
            }
    disease_pk = _digits_pk(disease_id)
    disease = diseases_active().filter(pk=disease_pk).first() if disease_pk is not None else None
    region_pk = _digits_pk(insured_region_id)
    region = Region.objects.filter(pk=region_pk).first() if region_pk is not None else None
    treating_pk = _digits_pk(treating_institution_id)
    treating = Institution.objects.filter(pk=treating_pk).first() if treating_pk is not None else None
    if disease is not None and id_number:
        checks = filing_checklist(
            user=user,
            id_number=id_number,
            disease=disease,
            insured_region=region,
            document_types=document_types,
            treating_institution=treating,
        )
        result["checks"] = [
            {"code": c.code, "label": str(c.label), "passed": c.passed, "message": str(c.message)} for c in checks
        ]
    return FilingCheckAnswer(result=result, person=person)


def reminders_of(application: Application) -> QuerySet[Reminder]:
    """Every reminder row of one enrollment, newest offset first (the caller has checked visibility)."""
    return Reminder.objects.filter(application=application).order_by("-due_on", "-offset_days", "channel", "id")


def reminder_inbox(user: roles.AnyUser) -> QuerySet[Reminder]:
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


def api_tokens_of(user: roles.AnyUser) -> QuerySet:
    """The user's own API tokens that still work (not expired), newest first; nobody lists anyone else's."""
    from django.utils import timezone

    from enrollment.models import ApiToken

    if not user.is_authenticated:
        return ApiToken.objects.none()
    return ApiToken.objects.filter(user=user, expires_at__gt=timezone.now()).order_by("-created_at", "-id")


@dataclass
class CoverageLookup:
    id_number: str
    disease: Disease
    person: Person | None
    answer: CoverageAnswer


def coverage_scope_refusal(user: roles.AnyUser, person: Person) -> str | None:
    """Why ``user`` may not see ``person``'s coverage, or None. Staff of a designated institution ask about
    persons insured in their province (recognition is province-wide); reviewers about their region;
    administrators and the system about anyone."""
    if roles.is_system(user) or roles.has_any_role(user, roles.ADMIN):
        return None
    names = roles.role_names(user)
    if not names:
        return _("Your account has no role that may query coverage.")
    institution = user_institution(user)
    if institution is not None and names & {roles.CLINIC_STAFF, roles.PHYSICIAN, roles.CENTER_OFFICER}:
        region_code = reference_cache.region_code(institution.region_id) or institution.region.code
        insured_code = reference_cache.region_code(person.insured_region_id) or person.insured_region.code
        if province_code(region_code) == province_code(insured_code):
            return None
    if roles.REVIEWER in names:
        region_id = user_region_id(user)
        if region_id is not None and person.insured_region_id in region_and_descendant_ids(region_id):
            return None
    return _(
        "This person is insured outside your scope (another province, or another region's review); the "
        "insurance office of their region answers for them."
    )


def coverage_for_viewer(
    *, viewer: roles.AnyUser, id_number: str, disease_code: str, on: dt.date, as_of: dt.datetime | None = None
) -> CoverageLookup:
    """The coverage answer for a look-up by 身份证号 and disease code, within the viewer's scope."""
    from enrollment.idnumbers import parse_id_number
    from kernel.errors import InvalidInput, NotPermitted

    if not roles.role_names(viewer) and not roles.is_system(viewer):
        raise NotPermitted(_("Your account has no role that may query coverage."))
    number = parse_id_number(id_number).number
    code = (disease_code or "").strip().upper()
    disease = reference_cache.disease_by_code(code) or Disease.objects.filter(code=code).first()
    if disease is None:
        raise InvalidInput(
            _("Unknown disease code %(code)s.") % {"code": disease_code},
            code="unknown_disease",
            details={"field": "disease"},
        )
    # Every role may look a person up (persons_visible_to); the scope is checked on the person found.
    read = coverage_read(id_number=number, disease=disease, as_of=as_of)
    person = read.person
    if person is not None:
        refusal = coverage_scope_refusal(viewer, person)
        if refusal is not None:
            raise NotPermitted(refusal, code="outside_scope")
    answer = coverage_answer(person=person, disease=disease, on=on, as_of=as_of, read=read)
    return CoverageLookup(id_number=number, disease=disease, person=person, answer=answer)


def coverage_on(
    *, person: Person | None, disease: Disease, on: dt.date, as_of: dt.datetime | None = None
) -> CoverageAnswer:
    """The coverage answer (enrollment/coverage.py holds the rules): per benefit, with the person's
    standing and categories on ``on``, as known now or at ``as_of``."""
    return coverage_answer(person=person, disease=disease, on=on, as_of=as_of)
