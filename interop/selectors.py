"""Every read of the interop app, scoped to the viewer (docs/design.md: Access and privacy)."""

from __future__ import annotations

import datetime as dt
import itertools
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from enrollment import selectors as enrollment_selectors
from enrollment.coverage import categories_for_persons
from enrollment.models import COVERING_STATES, Application, ApplicationKind, Region, mask_id_number
from enrollment.periods import PLATFORM_OPEN_END, first_of_next_month
from interop.models import AssistedFiling, RosterImport, RosterRow
from kernel import roles
from kernel.errors import InvalidInput, NotPermitted

logger = logging.getLogger(__name__)

# ---------------------------------------------------------------------------
# Rosters and the worklist
# ---------------------------------------------------------------------------


def may_import(user: roles.AnyUser) -> bool:
    """Administrators and chronic-disease-centre officers of county hospitals import rosters."""
    return roles.has_any_role(user, roles.ADMIN, roles.CENTER_OFFICER)


def ensure_may_import(user: roles.AnyUser) -> None:
    if not may_import(user):
        raise NotPermitted(_("Only administrators and chronic-disease-centre officers import rosters."))


def roster_imports_visible_to(user: roles.AnyUser) -> QuerySet[RosterImport]:
    """Administrators: all; officers: the imports of their own institution."""
    base = RosterImport.objects.select_related("uploaded_by", "institution", "scope_region").defer("content")
    if roles.has_any_role(user, roles.ADMIN):
        return base
    if not roles.has_any_role(user, roles.CENTER_OFFICER):
        return base.none()
    institution = enrollment_selectors.user_institution(user)
    if institution is None:
        return base.filter(uploaded_by=user)
    return base.filter(institution=institution)


def roster_rows(roster: RosterImport, status: str | None = None) -> QuerySet[RosterRow]:
    rows = roster.rows.select_related("disease").order_by("line", "id")
    return rows.filter(status=status) if status else rows


ROSTER_REPORT_HEADER = (
    "line",
    "id_number",
    "name",
    "region",
    "declared",
    "disease_code",
    "status",
    "reason_code",
    "message",
    "action",
)


def roster_report_rows(roster: RosterImport) -> Iterator[tuple[Any, ...]]:
    """The report as rows for CSV/XLSX; ID numbers masked (the line number finds the row in the file)."""
    values = roster.rows.order_by("line", "id").values_list(
        "line",
        "id_number",
        "name",
        "region_code",
        "declared",
        "disease__code",
        "status",
        "reason_code",
        "message",
        "action",
    )
    for row in values.iterator(chunk_size=2000):
        yield (row[0], mask_id_number(row[1]), *row[2:5], row[5] or "", *row[6:])


def assisted_filings_visible_to(user: roles.AnyUser) -> QuerySet[AssistedFiling]:
    """Administrators: all; clinic staff and centre officers: their own hospital's worklist."""
    base = AssistedFiling.objects.select_related("person", "disease", "institution", "application")
    if roles.has_any_role(user, roles.ADMIN):
        return base
    institution = enrollment_selectors.user_institution(user)
    if institution is None or not roles.has_any_role(user, roles.CLINIC_STAFF, roles.CENTER_OFFICER):
        return base.none()
    return base.filter(institution=institution)


# ---------------------------------------------------------------------------
# Exports (docs/design.md: Rosters and exports): the office's list and the national platform's filing shape
# ---------------------------------------------------------------------------

OFFICE = "office"
NATIONAL = "national"
SHAPES = (OFFICE, NATIONAL)
DECIDED = "decided"
COVERING = "covering"
BASES = (DECIDED, COVERING)

# The national platform's filing fields (its interface 2503), in its order; docs/interop.md maps each.
NATIONAL_FIELDS = (
    "psn_no",
    "certno",
    "psn_name",
    "gend",
    "brdy",
    "tel",
    "insutype",
    "insu_admdvs",
    "opsp_dise_code",
    "opsp_dise_name",
    "ide_fixmedins_no",
    "hosp_ide_date",
    "diag_dr_codg",
    "begndate",
    "enddate",
)
_NATIONAL_VALUES = (
    "person__insurance_number",
    "person__id_number",
    "person__name",
    "person__sex",
    "person__birth_date",
    "person__phone",
    "person__insurance_type",
    "region__code",
    "disease__code",
    "disease__name",
    "physician__institution__code",
    "treating_institution__code",
    "diagnosis_date",
    "physician__licence_number",
    "valid_from",
    "valid_until",
    "person_id",  # not exported: whose record the row carries (the access log of full-ID exports)
)
OFFICE_FIELDS: tuple[str, ...] = (
    "application",
    "id_number",
    "name",
    "sex",
    "birth_date",
    "phone",
    "region",
    "disease_code",
    "disease_name",
    "disease_type",
    "state",
    "treating_institution",
    "treating_institution_name",
    "decided_on",
    "valid_from",
    "valid_until",
)
_OFFICE_VALUES = (
    "pk",
    "person__id_number",
    "person__name",
    "person__sex",
    "person__birth_date",
    "person__phone",
    "region__code",
    "disease__code",
    "disease__name",
    "disease__disease_type",
    "state",
    "treating_institution__code",
    "treating_institution__name",
    "decided_at",
    "valid_from",
    "valid_until",
    "kind",
    "person_id",
)
OFFICE_FIELDS = (*OFFICE_FIELDS, "benefit", "support_categories")
BENEFIT_OF_ROW = {"11": "outpatient_chronic", "12": "outpatient_special"}


@dataclass(frozen=True)
class ExportRequest:
    region: Region
    period: str
    shape: str
    basis: str
    full_id_numbers: bool


def period_bounds(period: str) -> tuple[dt.date, dt.date]:
    """``YYYY-MM`` → (first day, first day of the next month)."""
    try:
        start = dt.datetime.strptime(period, "%Y-%m").date()
    except (TypeError, ValueError):
        raise InvalidInput(_("Give the period as YYYY-MM, e.g. 2026-11."), details={"field": "period"})
    try:
        return start, first_of_next_month(start)
    except (ValueError, OverflowError):  # 9999-12: its next month is in year 10000, past any date
        raise InvalidInput(
            _("The period %(period)s is out of range.") % {"period": period}, details={"field": "period"}
        )


def export_request(
    *, viewer: roles.AnyUser | None, region_code: str, period: str, shape: str = OFFICE, basis: str = DECIDED
) -> ExportRequest:
    """Check who may export what. ``viewer=None`` is an operator at the command line.

    - the office list: administrators and reviewers, a reviewer only for their own region;
      ID numbers masked except for administrators (and operators);
    - the national platform's shape carries certno in full: administrators (and operators) only.
    """
    if shape not in SHAPES:
        raise InvalidInput(
            _("Shape must be one of %(list)s.") % {"list": ", ".join(SHAPES)}, details={"field": "shape"}
        )
    if basis not in BASES:
        raise InvalidInput(_("Basis must be one of %(list)s.") % {"list": ", ".join(BASES)}, details={"field": "basis"})
    period_bounds(period)
    region = Region.objects.filter(code=(region_code or "").strip()).first()
    if region is None:
        raise InvalidInput(
            _("Region code “%(code)s” does not exist.") % {"code": region_code}, details={"field": "region"}
        )
    admin = viewer is None or roles.has_any_role(viewer, roles.ADMIN)
    if not admin:
        if shape == NATIONAL:
            raise NotPermitted(_("The national-platform export carries full ID numbers: administrators only."))
        if not roles.has_any_role(viewer, roles.REVIEWER):
            raise NotPermitted(_("Only administrators and reviewers export enrollments."))
        own = enrollment_selectors.user_region(viewer)
        if own is None or region.code not in enrollment_selectors.region_and_descendant_codes(own):
            raise NotPermitted(_("You may export only your own region's enrollments."))
    return ExportRequest(region=region, period=period, shape=shape, basis=basis, full_id_numbers=admin)


def enrollments_for_export(*, viewer: roles.AnyUser | None, request: ExportRequest) -> QuerySet[Application]:
    """Approved and expiring enrollments of the region (and the regions inside it) for the period.

    basis "decided": approved during the period; basis "covering": valid on any day of it.
    """
    base = Application.objects.all() if viewer is None else enrollment_selectors.applications_visible_to(viewer)
    codes = enrollment_selectors.region_and_descendant_codes(request.region)
    start, end = period_bounds(request.period)
    queryset = base.filter(region__code__in=codes, state__in=COVERING_STATES)
    if request.basis == DECIDED:
        tz = timezone.get_default_timezone()
        queryset = queryset.filter(
            decided_at__gte=dt.datetime.combine(start, dt.time.min, tzinfo=tz),
            decided_at__lt=dt.datetime.combine(end, dt.time.min, tzinfo=tz),
        )
    else:
        queryset = queryset.filter(valid_from__lt=end).exclude(valid_until__lt=start)
    return queryset.order_by("pk")


def _date(value: dt.date | None) -> str:
    return value.isoformat() if value else ""


# A chunk of export rows: (person id, row) each, so that whoever hands the rows out can log whose they are.
ExportChunk = list[tuple[int, tuple[Any, ...]]]


def export_rows(
    *, viewer: roles.AnyUser | None, request: ExportRequest, chunk_size: int = 2000
) -> tuple[tuple[str, ...], Iterator[tuple[Any, ...]]]:
    """The header and a lazy row iterator, for reading. What is handed to a person or a file goes through
    ``interop.services.export_enrollments``, which writes the access log of full-ID exports."""
    header, chunks = export_chunks(viewer=viewer, request=request, chunk_size=chunk_size)
    return header, (row for chunk in chunks for _person_id, row in chunk)


def export_chunks(
    *, viewer: roles.AnyUser | None, request: ExportRequest, chunk_size: int = 2000
) -> tuple[tuple[str, ...], Iterator[ExportChunk]]:
    """The header and the rows, lazily in chunks of ``chunk_size`` with each row's person id: values_list +
    iterator(), so memory stays flat."""
    queryset = enrollments_for_export(viewer=viewer, request=request)
    logger.info(
        "enrollment export: user=%s region=%s period=%s shape=%s full_id_numbers=%s",
        getattr(viewer, "pk", "operator"),
        request.region.code,
        request.period,
        request.shape,
        request.full_id_numbers,
    )
    if request.shape == NATIONAL:
        # 两病 medication coverage is not a 门慢特病 filing: it never goes to the platform's 2503 shape.
        return NATIONAL_FIELDS, _national_chunks(queryset.exclude(kind=ApplicationKind.TWO_DISEASES), chunk_size)
    start, end = period_bounds(request.period)
    on = min(end - dt.timedelta(days=1), timezone.localdate())
    return OFFICE_FIELDS, _office_chunks(queryset, chunk_size, request.full_id_numbers, max(on, start))


def _national_chunks(queryset: QuerySet[Application], chunk_size: int) -> Iterator[ExportChunk]:
    rows = queryset.values_list(*_NATIONAL_VALUES).iterator(chunk_size=chunk_size)
    while chunk := list(itertools.islice(rows, chunk_size)):
        yield [(row[-1], _national_row(*row[:-1])) for row in chunk]


def _national_row(
    psn_no: Any,
    certno: str,
    name: str,
    sex: str,
    birth: dt.date | None,
    tel: Any,
    insutype: str,
    admdvs: str,
    code: str,
    disease_name: str,
    diagnosing_institution: Any,
    treating_institution: Any,
    diagnosis_date: dt.date | None,
    doctor: Any,
    valid_from: dt.date | None,
    valid_until: dt.date | None,
) -> tuple[Any, ...]:
    return (
        psn_no or "",
        certno,
        name,
        sex,
        _date(birth),
        tel or "",
        insutype,
        admdvs[:6],  # the platform's 6-digit division: a township's county
        code,
        disease_name,
        diagnosing_institution or treating_institution,
        _date(diagnosis_date),
        doctor or "",
        _date(valid_from),
        _date(valid_until or PLATFORM_OPEN_END),  # long-term: the platform's open end
    )


def _office_chunks(
    queryset: QuerySet[Application], chunk_size: int, full_ids: bool, categories_on: dt.date
) -> Iterator[ExportChunk]:
    """The office list; the support categories are those valid on ``categories_on`` (the period's last day,
    or today for the current month), looked up per chunk."""
    rows = queryset.values_list(*_OFFICE_VALUES).iterator(chunk_size=chunk_size)
    while chunk := list(itertools.islice(rows, chunk_size)):
        categories = categories_for_persons(sorted({row[17] for row in chunk}), categories_on)
        yield [(row[17], _office_row(row, full_ids, categories)) for row in chunk]


def _office_row(row: tuple[Any, ...], full_ids: bool, categories: dict[int, list[str]]) -> tuple[Any, ...]:
    decided_at = row[13]
    return (
        row[0],
        row[1] if full_ids else mask_id_number(row[1]),
        *row[2:4],
        _date(row[4]),
        row[5] or "",
        *row[6:13],
        _date(timezone.localtime(decided_at).date()) if decided_at else "",
        _date(row[14]),
        _date(row[15]),
        "two_diseases" if row[16] == ApplicationKind.TWO_DISEASES else BENEFIT_OF_ROW.get(row[9], ""),
        ";".join(categories.get(row[17], [])),
    )
