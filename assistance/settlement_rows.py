"""The per-row checks of settlement data, from a file (CSV/XLSX) or the API, done set-based: persons,
institutions and serial numbers already recorded are loaded in bulk for a chunk of rows. Nothing here writes.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from django.utils import timezone
from django.utils.translation import gettext as _

from assistance.models import Benefit, CareLevel, Settlement, SettlementRowStatus
from enrollment import selectors as enrollment_selectors
from enrollment.idnumbers import check_id_number
from enrollment.models import Institution, Person
from kernel import roles
from kernel.tabular import normalise_header

SETTLEMENT_COLUMNS: dict[str, Sequence[str]] = {
    "serial_number": ("结算流水号", "结算编号", "结算ID", "流水号", "serial_number", "serial number", "setl_id"),
    "id_number": ("身份证号", "身份证号码", "证件号码", "公民身份号码", "id_number", "id number", "certno"),
    "settled_on": ("结算日期", "结算时间", "settled_on", "settlement date", "setl_time", "date"),
    "institution_code": ("机构编码", "定点机构编码", "医疗机构编码", "institution_code", "fixmedins_code"),
    "institution_name": ("机构名称", "定点机构名称", "医疗机构名称", "institution_name", "fixmedins_name"),
    "institution_level": ("机构级别", "机构层级", "就诊层级", "institution_level", "level"),
    "benefit": ("待遇类型", "待遇", "benefit", "benefit_type"),
    "disease_code": ("病种编码", "病种代码", "disease_code", "opsp_dise_code"),
    "total_cost": ("医疗费总额", "总费用", "费用总额", "total_cost", "medfee_sumamt"),
    "fund_paid": ("基金支付", "基金支付总额", "统筹支付", "fund_paid", "fund_pay_sumamt"),
    "out_of_pocket": ("个人自付", "个人负担", "个人支付", "自付金额", "out_of_pocket", "psn_pay"),
}
REQUIRED_COLUMNS = (
    "serial_number",
    "id_number",
    "settled_on",
    "institution_code",
    "institution_level",
    "total_cost",
    "fund_paid",
    "out_of_pocket",
)
LEVEL_NAMES: dict[str, str] = {
    **{normalise_header(v): v for v in CareLevel.values},
    **{
        normalise_header(k): v
        for k, v in {
            "村": CareLevel.VILLAGE,
            "村级": CareLevel.VILLAGE,
            "村卫生室": CareLevel.VILLAGE,
            "乡": CareLevel.TOWNSHIP,
            "乡级": CareLevel.TOWNSHIP,
            "乡镇": CareLevel.TOWNSHIP,
            "乡镇卫生院": CareLevel.TOWNSHIP,
            "社区": CareLevel.TOWNSHIP,
            "县": CareLevel.COUNTY,
            "县级": CareLevel.COUNTY,
            "市": CareLevel.CITY,
            "市级": CareLevel.CITY,
            "省": CareLevel.PROVINCE,
            "省级": CareLevel.PROVINCE,
        }.items()
    },
}
BENEFIT_NAMES: dict[str, str] = {
    "": Benefit.NONE,
    "none": Benefit.NONE,
    "普通": Benefit.NONE,
    "chronic": Benefit.CHRONIC,
    "门慢": Benefit.CHRONIC,
    "门诊慢性病": Benefit.CHRONIC,
    "special": Benefit.SPECIAL,
    "门特": Benefit.SPECIAL,
    "门诊特殊病": Benefit.SPECIAL,
    "twodiseases": Benefit.TWO_DISEASES,
    "两病": Benefit.TWO_DISEASES,
}
MAX_AMOUNT = Decimal("9999999999.99")
_DISEASE_CODE = re.compile(r"^[A-Z][0-9A-Z.]{2,9}$")
_SERIAL = re.compile(r"^[0-9A-Za-z_\-./:]{1,60}$")
AMOUNT_FIELDS = ("total_cost", "fund_paid", "out_of_pocket")


@dataclass
class RowResult:
    line: int
    serial_number: str
    status: str
    reason_code: str = ""
    message: str = ""
    settlement: dict[str, Any] | None = None  # the new row's Settlement fields (written by the commit)


def parse_amount(raw: str) -> Decimal | None:
    """Yuan with at most 2 decimal places (a thousands separator is allowed), else None."""
    text = (raw or "").strip().replace(",", "").replace("，", "").replace("¥", "").replace("￥", "")
    if not text:
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    if not value.is_finite() or value.as_tuple().exponent < -2 or value < 0 or value > MAX_AMOUNT:  # type: ignore[operator]
        return None
    return value.quantize(Decimal("0.01"))


def parse_date(raw: str) -> dt.date | None:
    text = (raw or "").strip()[:19]
    if len(text) == 10 and text[4] == "-" and text[7] == "-" and text.replace("-", "").isdigit():
        try:  # the common YYYY-MM-DD, at C speed
            return dt.date.fromisoformat(text)
        except ValueError:
            return None
    for pattern in ("%Y-%m-%d", "%Y/%m/%d", "%Y%m%d", "%Y-%m-%d %H:%M:%S", "%Y/%m/%d %H:%M:%S"):
        try:
            return dt.datetime.strptime(text, pattern).date()
        except ValueError:
            continue
    return None


@dataclass(frozen=True, slots=True)
class PersonRef:
    """What the checks need of a registered person (a tuple from the chunk's one query, not a model)."""

    pk: int
    birth_date: dt.date
    insured_region_id: int


class SettlementChecker:
    """Checks rows chunk by chunk for one sender; remembers the serial numbers earlier rows used."""

    def __init__(self, *, actor: roles.Actor, source: str) -> None:
        self.actor = actor
        self.source = source
        self.today = timezone.localdate()
        self.seen: set[str] = set()
        self.id_checks: dict[str, tuple[str, str]] = {}
        self.admin = roles.is_system(actor) or roles.has_any_role(actor, roles.ADMIN)
        self.officer = roles.has_any_role(actor, roles.CENTER_OFFICER)
        self.clinic = roles.has_any_role(actor, roles.CLINIC_STAFF)
        self.own_institution = enrollment_selectors.user_institution(actor)
        region_id = enrollment_selectors.user_region_id(actor)
        self.scope: set[int] | None = None
        if not self.admin:
            self.scope = set(enrollment_selectors.region_and_descendant_ids(region_id)) if region_id else set()

    def check(self, rows: Sequence[tuple[int, dict[str, str]]]) -> list[RowResult]:
        numbers: dict[int, tuple[str, str]] = {}
        for line, values in rows:
            raw = values.get("id_number", "")
            if raw not in self.id_checks:  # a person's several settlements: one check of the number
                self.id_checks[raw] = check_id_number(raw, self.today) if raw else ("", "")
            numbers[line] = self.id_checks[raw]
        persons = {
            number: PersonRef(pk, birth_date, region_id)
            for number, pk, birth_date, region_id in Person.objects.filter(
                id_number__in={n for n, e in numbers.values() if n and not e}
            ).values_list("id_number", "pk", "birth_date", "insured_region_id")
        }
        codes = {values.get("institution_code", "") for _line, values in rows}
        institutions = {i.code: i for i in Institution.objects.filter(code__in=codes).only("pk", "code", "region_id")}
        serials = {values.get("serial_number", "").strip() for _line, values in rows}
        existing = {
            values["serial_number"]: values
            for values in Settlement.objects.filter(serial_number__in=serials).values("serial_number", *SAME_FIELDS)
        }
        return [self._check_row(line, values, numbers[line], persons, institutions, existing) for line, values in rows]

    def _check_row(
        self,
        line: int,
        values: dict[str, str],
        number: tuple[str, str],
        persons: dict[str, PersonRef],
        institutions: dict[str, Institution],
        existing: dict[str, dict[str, Any]],
    ) -> RowResult:
        values = {key: (value or "").strip() for key, value in values.items()}
        serial = values.get("serial_number", "")

        def invalid(code: str, message: str) -> RowResult:
            return RowResult(line, serial[:60], SettlementRowStatus.INVALID, code, message)

        if any("\x00" in value for value in values.values()):
            return invalid("invalid_value", _("The row contains a NUL character."))
        if not _SERIAL.match(serial):
            return invalid(
                "invalid_serial_number",
                _("The serial number is missing or not 1–60 letters, digits and - _ . / :."),
            )
        if serial in self.seen:
            return invalid(
                "duplicate_row", _("Serial number %(serial)s appears on an earlier row.") % {"serial": serial}
            )
        self.seen.add(serial)
        id_number, id_error = number
        if not id_number:
            return invalid("invalid_id_number", _("The ID number is missing."))
        if id_error:
            return invalid("invalid_id_number", id_error)
        person = persons.get(id_number)
        if person is None:
            return invalid("unknown_person", _("No insured person with this ID number is registered."))
        settled_on = parse_date(values.get("settled_on", ""))
        if settled_on is None:
            return invalid("invalid_date", _("The settlement date is not a date (YYYY-MM-DD)."))
        if settled_on > self.today:
            return invalid("invalid_date", _("The settlement date is in the future."))
        if settled_on < person.birth_date:
            return invalid("invalid_date", _("The settlement date is before the person's birth."))
        code = values.get("institution_code", "")
        if not code or len(code) > 30:
            return invalid("invalid_institution", _("The institution code is missing or longer than 30 characters."))
        level = LEVEL_NAMES.get(normalise_header(values.get("institution_level", "")))
        if level is None:
            return invalid(
                "invalid_level",
                _("The institution level must be one of village, township, county, city, province (村/乡/县/市/省)."),
            )
        benefit = BENEFIT_NAMES.get(normalise_header(values.get("benefit", "")))
        if benefit is None:
            return invalid("invalid_benefit", _("The benefit must be empty, 门慢, 门特 or 两病."))
        disease_code = values.get("disease_code", "").upper()
        if benefit and not _DISEASE_CODE.match(disease_code):
            return invalid("invalid_disease_code", _("A 门慢/门特/两病 visit needs its disease code (e.g. M03900)."))
        if not benefit and disease_code:
            return invalid("invalid_benefit", _("A disease code needs its benefit (门慢, 门特 or 两病)."))
        amounts: dict[str, Decimal] = {}
        for name in AMOUNT_FIELDS:
            amount = parse_amount(values.get(name, ""))
            if amount is None:
                return invalid(
                    "invalid_amount",
                    _("%(field)s must be an amount in yuan, at least 0, with at most 2 decimal places.")
                    % {"field": name},
                )
            amounts[name] = amount
        if amounts["fund_paid"] > amounts["total_cost"] or amounts["out_of_pocket"] > amounts["total_cost"]:
            return invalid(
                "invalid_amount", _("The fund payment and the out-of-pocket amount cannot exceed the total.")
            )
        institution = institutions.get(code)
        problem = self._scope_problem(person, institution)
        if problem:
            return invalid("out_of_scope", problem)
        settlement: dict[str, Any] = {
            "serial_number": serial,
            "person_id": person.pk,
            "region_id": person.insured_region_id,
            "settled_on": settled_on,
            "period": settled_on.replace(day=1),
            "institution_code": code,
            "institution_name": values.get("institution_name", "")[:200],
            "institution_level": level,
            "institution_id": institution.pk if institution else None,
            "benefit": benefit,
            "disease_code": disease_code,
            "source": self.source,
            **amounts,
        }
        earlier = existing.get(serial)
        if earlier is not None:
            if same_settlement(earlier, settlement):
                return RowResult(
                    line, serial, SettlementRowStatus.DUPLICATE, "already_recorded", _("Already recorded.")
                )
            return invalid(
                "serial_conflict",
                _("Serial number %(serial)s was already recorded with other data.") % {"serial": serial},
            )
        return RowResult(line, serial, SettlementRowStatus.NEW, settlement=settlement)

    def _scope_problem(self, person: PersonRef, institution: Institution | None) -> str:
        if self.admin:
            return ""
        if self.officer and self.scope is not None and person.insured_region_id in self.scope:
            return ""
        if self.clinic and (
            institution is not None and self.own_institution is not None and institution.pk == self.own_institution.pk
        ):
            return ""
        return _("You may send settlements of persons insured in your region (officers) or of your own institution.")


SAME_FIELDS = (
    "person_id",
    "settled_on",
    "institution_code",
    "institution_level",
    "benefit",
    "disease_code",
    "total_cost",
    "fund_paid",
    "out_of_pocket",
)


def same_settlement(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """The same settlement sent again: the fields a sender decides are equal (the names of SAME_FIELDS)."""
    return all(a[name] == b[name] for name in SAME_FIELDS)


def row_values(cells: Sequence[str], columns: dict[str, int]) -> dict[str, str]:
    return {name: (cells[index] if index < len(cells) else "") for name, index in columns.items()}
