"""The per-row checks of a roster import, done set-based.

Reference data (regions, catalogue, policies, hospitals) is loaded once per run; persons, their
active applications and their open worklist items are loaded in bulk, one chunk of lines at a
time. The checks mirror enrollment.selectors.eligibility_checks (the same rules application_submit
enforces), without a query per row. Nothing here writes.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypedDict

from django.utils import timezone
from django.utils.translation import gettext as _

from enrollment import selectors as enrollment_selectors
from enrollment.idnumbers import check_id_number
from enrollment.models import (
    ACTIVE_STATES,
    Application,
    ApplicationKind,
    Disease,
    DiseaseType,
    Institution,
    InstitutionLevel,
    Person,
    Policy,
    Region,
    SupportCategory,
    province_code,
)
from interop.models import AssistedFiling, FilingState, RowStatus

ROSTER_COLUMNS: dict[str, Sequence[str]] = {
    "id_number": ("身份证号", "身份证号码", "公民身份号码", "证件号码", "id_number", "id number", "idno", "certno"),
    "name": ("姓名", "name", "psn_name"),
    "region": ("医保区划", "参保区划", "区划代码", "区划", "参保地", "region", "region_code", "insu_admdvs"),
    "phone": ("联系电话", "电话", "手机号", "手机", "phone", "tel", "mobile"),
    "support_category": (
        "帮扶类别",
        "人员类别",
        "困难类别",
        "support category",
        "support_categories",
        "category",
    ),
    "conditions": (
        "申报病种",
        "病种",
        "疾病",
        "诊断",
        "慢特病",
        "declared conditions",
        "conditions",
        "diseases",
        "disease",
    ),
}
REQUIRED_COLUMNS = ("id_number", "name", "region", "conditions")

SUPPORT_CATEGORY_NAMES: dict[str, str] = {
    "脱贫人口": SupportCategory.POVERTY_ALLEVIATED,
    "脱贫户": SupportCategory.POVERTY_ALLEVIATED,
    "监测对象": SupportCategory.MONITORED,
    "防返贫监测对象": SupportCategory.MONITORED,
    "低保": SupportCategory.MINIMUM_LIVING,
    "低保对象": SupportCategory.MINIMUM_LIVING,
    "特困": SupportCategory.EXTREME_HARDSHIP,
    "特困人员": SupportCategory.EXTREME_HARDSHIP,
    "孤儿": SupportCategory.ORPHAN,
    **{value: value for value in SupportCategory.values},
}

_SPLIT = re.compile(r"[,;，；、|/\s]+")
_SPLIT_HARD = re.compile(r"[,;，；、|/]+")
_SPACE = re.compile(r"\s+")


def split_values(raw: str) -> list[str]:
    return [token for token in _SPLIT.split(raw.strip()) if token]


def split_conditions(raw: str, matcher: enrollment_selectors.DiseaseMatcher) -> list[str]:
    """The conditions of a cell. ``, ; ， ； 、 | /`` always separate; whitespace separates too, unless
    the piece as a whole is a disease's name or alias (the rule ignores whitespace in names: ``高血压 病``
    is one condition; ``M05300 J44`` stays two codes)."""
    tokens: list[str] = []
    for piece in _SPLIT_HARD.split(raw.strip()):
        piece = piece.strip()
        if not piece:
            continue
        if _SPACE.search(piece) and matcher.by_names(piece)[1]:
            tokens.append(piece)
        else:
            tokens.extend(token for token in _SPACE.split(piece) if token)
    return tokens


class PriorRow(NamedTuple):
    """A dry-run report row, as the commit needs it (see RosterChecker)."""

    status: str
    reason_code: str
    message: str
    declared: str
    disease_id: int | None
    occurrence: int  # the how-many-th row of its line with this ``declared``


class LineFields(TypedDict):
    """What every entry of a line repeats (``Entry(**fields, ...)``)."""

    line: int
    id_number: str
    name: str
    region_code: str
    phone: str
    support_categories: list[str]


@dataclass
class Entry:
    """One report row: a line and one declared condition (or the whole line, if it has none)."""

    line: int
    id_number: str
    name: str
    region_code: str
    phone: str
    support_categories: list[str]
    declared: str
    status: str
    reason_code: str = ""
    message: str = ""
    disease_id: int | None = None
    institution_id: int | None = None
    person_ok: bool = False  # the line's person data are valid: a commit registers the person
    action: str = ""  # what the commit did (RowAction)
    person_id: int | None = None


@dataclass
class PersonState:
    person_id: int | None = None
    details: Mapping[str, Any] = field(default_factory=dict)  # the person's stored insurance details and phone
    enrolled: set[int] = field(default_factory=set)  # diseases with an active new application
    active_diseases: set[int] = field(default_factory=set)  # any active application (mutual exclusion)
    held: int = 0  # active enrollments counting toward the chronic limit
    on_worklist: set[int] = field(default_factory=set)  # open assisted filings
    planned: set[int] = field(default_factory=set)  # eligible earlier in this file or on the worklist


class Reference:
    """Catalogue, regions, policies and hospitals, loaded once."""

    def __init__(self, scope_region: Region | None) -> None:
        self.regions: dict[str, Region] = {r.code: r for r in Region.objects.all()}
        self.code_of: dict[int, str] = {r.pk: r.code for r in self.regions.values()}
        self.parent: dict[int, int | None] = {r.pk: r.parent_id for r in self.regions.values()}
        self.children: dict[int, list[int]] = {}
        for pk, parent in self.parent.items():
            if parent is not None:
                self.children.setdefault(parent, []).append(pk)
        self.scope: set[int] | None = self.descendants(scope_region.pk) if scope_region else None
        diseases = list(Disease.objects.prefetch_related("regions", "exclusive_with"))
        self.diseases: dict[int, Disease] = {d.pk: d for d in diseases}
        # The filing form's rule (code, name, alias, loose name, ICD-10), built once for the whole file.
        self.matcher = enrollment_selectors.DiseaseMatcher(diseases)
        self.disease_regions = {d.pk: {r.pk for r in d.regions.all()} for d in diseases}
        self.exclusive = {d.pk: {x.pk for x in d.exclusive_with.all()} for d in diseases}
        self.limits_by_region = {p.region_id: p.concurrent_chronic_limit for p in Policy.objects.all()}
        self.hospitals: dict[int, list[Institution]] = {}
        for inst in Institution.objects.filter(level__gte=InstitutionLevel.SECONDARY, may_diagnose=True).order_by(
            "level", "code"
        ):
            self.hospitals.setdefault(inst.region_id, []).append(inst)
        self._limit_cache: dict[int, int] = {}
        self._hospital_cache: dict[tuple[int, int], int | None] = {}

    def lineage(self, region_id: int) -> list[int]:
        chain: list[int] = []
        node: int | None = region_id
        while node is not None and len(chain) < 10:
            chain.append(node)
            node = self.parent.get(node)
        return chain

    def descendants(self, region_id: int) -> set[int]:
        found, frontier = {region_id}, [region_id]
        while frontier:
            frontier = [child for pk in frontier for child in self.children.get(pk, [])]
            found.update(frontier)
        return found

    def limit(self, region_id: int) -> int:
        if region_id not in self._limit_cache:
            default = Policy._meta.get_field("concurrent_chronic_limit").default
            self._limit_cache[region_id] = next(
                (self.limits_by_region[pk] for pk in self.lineage(region_id) if pk in self.limits_by_region), default
            )
        return self._limit_cache[region_id]

    def available(self, disease: Disease, region_id: int) -> bool:
        allowed = self.disease_regions[disease.pk]
        return disease.active and (not allowed or any(pk in allowed for pk in self.lineage(region_id)))

    def hospital(self, region_id: int, disease: Disease) -> int | None:
        """A county hospital (level ≥ 2, may diagnose, qualified for the disease) of the person's
        region, else of the nearest enclosing region, else of a region inside it — never one outside
        the person's province (省内互认: application_submit would refuse it with ``outside_province``)."""
        key = (region_id, disease.min_institution_level)
        if key not in self._hospital_cache:
            level = max(InstitutionLevel.SECONDARY, disease.min_institution_level)
            home = province_code(self.code_of[region_id])
            candidates = [
                pk
                for pk in [*self.lineage(region_id), *sorted(self.descendants(region_id) - {region_id})]
                if province_code(self.code_of[pk]) == home
            ]
            self._hospital_cache[key] = next(
                (inst.pk for pk in candidates for inst in self.hospitals.get(pk, []) if inst.level >= level), None
            )
        return self._hospital_cache[key]

    def resolve(self, token: str) -> tuple[Disease | None, str, str]:
        """A disease as the filing form finds it (enrollment.selectors.DiseaseMatcher)."""
        found = self.matcher.match(token)
        return found.disease, found.code, found.message


def load_people(id_numbers: Sequence[str], reference: Reference) -> dict[str, PersonState]:
    """Persons, active applications and open worklist items of many ID numbers: three queries."""
    states: dict[str, PersonState] = {number: PersonState() for number in id_numbers}
    if not id_numbers:
        return states
    by_pk: dict[int, PersonState] = {}
    for row in Person.objects.filter(id_number__in=id_numbers).values(
        "pk", "id_number", "insurance_type", "insurance_number", "phone", "support_categories"
    ):
        state = states[row["id_number"]]
        state.person_id = row["pk"]
        state.details = row
        by_pk[row["pk"]] = state
    if not by_pk:
        return states
    applications = Application.objects.filter(person_id__in=list(by_pk), state__in=ACTIVE_STATES).values_list(
        "person_id", "disease_id", "kind", "renews_id", "renews__state"
    )
    for person_id, disease_id, kind, renews_id, renews_state in applications:
        state = by_pk[person_id]
        disease = reference.diseases[disease_id]
        state.active_diseases.add(disease_id)
        if kind == ApplicationKind.NEW and renews_id is None:
            state.enrolled.add(disease_id)
        if enrollment_selectors.counts_toward_limit(
            disease=disease, kind=kind, renews_active=renews_state in ACTIVE_STATES
        ):
            state.held += 1
    for person_id, disease_id in AssistedFiling.objects.filter(
        person_id__in=list(by_pk), state=FilingState.OPEN
    ).values_list("person_id", "disease_id"):
        by_pk[person_id].on_worklist.add(disease_id)
        by_pk[person_id].planned.add(disease_id)
    return states


class RosterChecker:
    """Checks a file chunk by chunk; remembers what earlier lines declared (duplicates, the limit)."""

    def __init__(
        self,
        *,
        columns: dict[str, int],
        scope_region: Region | None,
        dry_run: dict[int, list[PriorRow]] | None = None,
    ) -> None:
        """``dry_run``: for the commit, the dry run's report rows (in order) of each line that had an
        invalid one. A line all of whose rows were invalid is reported again as it was, unchecked;
        an invalid row of a line with valid ones stays invalid. So a line or condition the officer
        saw refused is never written, whatever changed since (the rest is checked afresh)."""
        self.columns = columns
        self.reference = Reference(scope_region)
        self.people: dict[str, PersonState] = {}
        self.seen: set[tuple[str, int]] = set()
        self.today = timezone.localdate()
        self.dry_run = dry_run or {}

    def _value(self, cells: Sequence[str], name: str) -> str:
        index = self.columns.get(name)
        return cells[index].strip() if index is not None and index < len(cells) else ""

    def check(self, lines: Sequence[tuple[int, Sequence[str]]]) -> list[Entry]:
        parsed: list[tuple[int, Sequence[str], str, str]] = []
        for line, cells in lines:
            if any("\x00" in cell for cell in cells):
                # NUL cannot be stored (PostgreSQL refuses it in text): shown as U+FFFD, which the
                # name, phone and ID-number checks refuse, so only this line is invalid.
                cells = [cell.replace("\x00", "\ufffd") for cell in cells]
            raw = self._value(cells, "id_number")
            number, error = check_id_number(raw, self.today) if raw else (raw, "")
            parsed.append((line, cells, number, error))
        fresh = sorted({number for _l, _c, number, error in parsed if not error and number not in self.people})
        self.people.update(load_people(fresh, self.reference))
        entries: list[Entry] = []
        for line, cells, number, id_error in parsed:
            entries.extend(self._check_line(line, cells, number, id_error))
        return entries

    def _check_line(self, line: int, cells: Sequence[str], number: str, id_error: str) -> list[Entry]:
        ref = self.reference
        name = self._value(cells, "name")
        region_code = self._value(cells, "region")
        phone = self._value(cells, "phone")
        raw_categories = split_values(self._value(cells, "support_category"))
        categories = [SUPPORT_CATEGORY_NAMES.get(value, value) for value in raw_categories]
        declared_raw = self._value(cells, "conditions")
        base: LineFields = {
            "line": line,
            "id_number": number[:40],
            "name": name[:100],
            "region_code": region_code[:20],
            "phone": phone[:40],
            "support_categories": categories,
        }

        def invalid(code: str, message: str) -> list[Entry]:
            return [
                Entry(**base, declared=declared_raw[:100], status=RowStatus.INVALID, reason_code=code, message=message)
            ]

        prior = self.dry_run.get(line)
        if prior and all(row.status == RowStatus.INVALID for row in prior):
            # Refused by the dry run: reported the same way again, never written.
            return [
                Entry(
                    **base,
                    declared=row.declared,
                    status=RowStatus.INVALID,
                    reason_code=row.reason_code,
                    message=row.message,
                    disease_id=row.disease_id,
                )
                for row in prior
            ]
        if not number:
            return invalid("invalid_id_number", _("The ID number is missing."))
        if id_error:
            return invalid("invalid_id_number", id_error)
        # The name and phone a Person row can hold (enrollment.services.person_register's own rule).
        problem = enrollment_selectors.person_details_problem(name=name, phone=phone)
        if problem is not None:
            return invalid(problem[0], problem[2])
        region = ref.regions.get(region_code)
        if region is None:
            return invalid(
                "unknown_region", _("Region code “%(code)s” is not a known 医保区划.") % {"code": region_code}
            )
        if ref.scope is not None and region.pk not in ref.scope:
            return invalid(
                "region_out_of_scope",
                _("Region %(region)s is outside the area you may import for.") % {"region": region},
            )
        pairs = zip(raw_categories, categories, strict=True)
        unknown = [raw for raw, value in pairs if value not in SupportCategory.values]
        if unknown:
            return invalid(
                "unknown_support_category",
                _("Unknown support category: %(values)s.") % {"values": ", ".join(unknown)},
            )
        person = self.people.setdefault(number, PersonState())
        tokens = split_conditions(declared_raw, ref.matcher)
        if not tokens:
            return [
                Entry(
                    **base,
                    declared="",
                    status=RowStatus.VALID,
                    reason_code="no_condition",
                    message=_("No condition declared: the person is registered, nothing is filed."),
                    person_ok=True,
                )
            ]
        if not prior:
            return [self._check_condition(base, person, region, token) for token in tokens]
        refused = {(row.declared, row.occurrence): row for row in prior if row.status == RowStatus.INVALID}
        occurrences: Counter[str] = Counter()
        entries: list[Entry] = []
        for token in tokens:
            declared = token[:100]
            occurrences[declared] += 1
            row = refused.get((declared, occurrences[declared]))
            if row is not None:
                entries.append(
                    Entry(
                        **base,
                        declared=declared,
                        status=RowStatus.INVALID,
                        reason_code=row.reason_code,
                        message=row.message,
                        disease_id=row.disease_id,
                        person_ok=True,
                    )
                )
            else:
                entries.append(self._check_condition(base, person, region, token))
        return entries

    def _check_condition(self, base: LineFields, person: PersonState, region: Region, token: str) -> Entry:
        ref = self.reference
        entry = Entry(**base, declared=token[:100], status=RowStatus.INVALID, person_ok=True)
        disease, code, message = ref.resolve(token)
        if disease is None:
            entry.reason_code, entry.message = code, message
            return entry
        entry.disease_id = disease.pk
        key = (entry.id_number, disease.pk)
        if key in self.seen:
            entry.reason_code = "duplicate_row"
            entry.message = _("Duplicate: this person and %(disease)s appear on an earlier line.") % {
                "disease": disease
            }
            return entry
        self.seen.add(key)
        if not ref.available(disease, region.pk):
            entry.status, entry.reason_code = RowStatus.NOT_ELIGIBLE, "disease_not_available"
            entry.message = _("%(disease)s is not in the catalogue of %(region)s (or is no longer active).") % {
                "disease": disease,
                "region": region,
            }
            return entry
        if disease.pk in person.enrolled:
            entry.status, entry.reason_code = RowStatus.ALREADY_ENROLLED, "duplicate_disease"
            entry.message = _("Already has an active application or enrollment for %(disease)s.") % {"disease": disease}
            return entry
        if disease.pk in person.on_worklist:
            entry.status, entry.reason_code = RowStatus.ELIGIBLE, "on_worklist"
            entry.message = _("Eligible; already on the assisted-filing worklist.")
            return entry
        clash = ref.exclusive[disease.pk] & (person.active_diseases | person.planned)
        if clash:
            entry.status, entry.reason_code = RowStatus.NOT_ELIGIBLE, "mutually_exclusive"
            entry.message = _("%(disease)s excludes %(held)s, which the person holds or is being filed for.") % {
                "disease": disease,
                "held": ", ".join(sorted(ref.diseases[pk].code for pk in clash)),
            }
            return entry
        counts = disease.disease_type == DiseaseType.CHRONIC and disease.counts_toward_limit
        limit = ref.limit(region.pk)
        planned_counting = sum(
            1
            for pk in person.planned
            if ref.diseases[pk].disease_type == DiseaseType.CHRONIC and ref.diseases[pk].counts_toward_limit
        )
        if counts and person.held + planned_counting >= limit:
            entry.status, entry.reason_code = RowStatus.LIMIT_EXCEEDED, "limit_reached"
            entry.message = _(
                "Would exceed the limit: holds %(held)d and is being filed for %(planned)d of %(limit)d chronic "
                "enrollments."
            ) % {"held": person.held, "planned": planned_counting, "limit": limit}
            return entry
        hospital = ref.hospital(region.pk, disease)
        if hospital is None:
            entry.status, entry.reason_code = RowStatus.NOT_ELIGIBLE, "no_hospital"
            entry.message = _("No county hospital of %(region)s may diagnose %(disease)s.") % {
                "region": region,
                "disease": disease,
            }
            return entry
        person.planned.add(disease.pk)
        entry.status, entry.institution_id = RowStatus.ELIGIBLE, hospital
        entry.message = _("Eligible: goes on the worklist of the county hospital.")
        return entry
