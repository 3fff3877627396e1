"""Status-event files from the insurance office (参保状态、死亡、脱贫名单): a dry run with a per-row report,
then a commit that records each valid row through ``person_status.status_event_record``.

The roster conventions hold: CSV (UTF-8 with or without BOM, or GBK) or XLSX, Chinese or English headers,
every row reported (valid, invalid with its reason, already recorded), nothing silently dropped, and a file
sent twice changes nothing (each row's reference is the event's idempotency key).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.utils.translation import gettext as _

from enrollment.idnumbers import parse_id_number
from enrollment.models import InsuranceType, Person, PersonStatusEvent, StatusEventKind, SupportCategory
from enrollment.services import person_status
from kernel import roles
from kernel.errors import DomainError, NotPermitted
from kernel.tabular import map_header, read_table

HEADER_ALIASES: dict[str, Sequence[str]] = {
    "id_number": ("id_number", "身份证号", "身份证号码", "证件号码", "certno"),
    "kind": ("event", "kind", "事件", "事件类型", "变更类型"),
    "effective_date": ("effective_date", "生效日期", "变更日期", "日期", "date"),
    "reference": ("reference", "业务编号", "流水号", "编号", "ref"),
    "insurance_type": ("insurance_type", "险种", "险种类型", "insutype"),
    "categories": ("categories", "support_categories", "人员类别", "帮扶类别", "类别"),
    "note": ("note", "备注", "说明"),
}
REQUIRED = ("id_number", "kind", "effective_date", "reference")
# The names offices write in the event column, beside the codes.
KIND_NAMES: dict[str, str] = {
    "暂停参保": StatusEventKind.INSURANCE_SUSPENDED,
    "中止参保": StatusEventKind.INSURANCE_SUSPENDED,
    "恢复参保": StatusEventKind.INSURANCE_RESUMED,
    "终止参保": StatusEventKind.INSURANCE_ENDED,
    "转出省外": StatusEventKind.MOVED_OUT,
    "省外转出": StatusEventKind.MOVED_OUT,
    "死亡": StatusEventKind.DIED,
    "脱贫": StatusEventKind.POVERTY_EXITED,
    "类别变更": StatusEventKind.CATEGORIES_SET,
}
CATEGORY_NAMES: dict[str, str] = {
    "脱贫人口": SupportCategory.POVERTY_ALLEVIATED,
    "监测对象": SupportCategory.MONITORED,
    "低保": SupportCategory.MINIMUM_LIVING,
    "低保对象": SupportCategory.MINIMUM_LIVING,
    "特困": SupportCategory.EXTREME_HARDSHIP,
    "特困人员": SupportCategory.EXTREME_HARDSHIP,
    "孤儿": SupportCategory.ORPHAN,
}
REPORT_HEADER = ("line", "id_number", "event", "effective_date", "reference", "status", "code", "message", "event_id")


@dataclass
class Row:
    line: int
    id_number: str
    kind: str
    effective_date: dt.date | None
    reference: str
    insurance_type: str = ""
    categories: list[str] | None = None
    note: str = ""
    person: Person | None = None
    status: str = "valid"  # valid | invalid | already_recorded | recorded
    code: str = ""
    message: str = ""
    event_id: int | None = None

    def refuse(self, code: str, message: str) -> None:
        self.status, self.code, self.message = "invalid", code, message

    def report(self, masked: bool = True) -> tuple[Any, ...]:
        from enrollment.models import mask_id_number

        return (
            self.line,
            mask_id_number(self.id_number) if masked else self.id_number,
            self.kind,
            self.effective_date.isoformat() if self.effective_date else "",
            self.reference,
            self.status,
            self.code,
            self.message,
            self.event_id or "",
        )


@dataclass
class ImportResult:
    rows: list[Row] = field(default_factory=list)
    committed: bool = False

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for row in self.rows:
            counts[row.status] = counts.get(row.status, 0) + 1
        return counts


def _kind(value: str) -> str:
    value = value.strip()
    return KIND_NAMES.get(value, value.lower())


def _categories(value: str) -> list[str] | None:
    if not value.strip():
        return None
    parts = [p.strip() for p in value.replace("；", ";").replace("，", ";").replace(",", ";").split(";")]
    return [CATEGORY_NAMES.get(p, p) for p in parts if p]


def _date(value: str) -> dt.date | None:
    value = value.strip().replace("/", "-").replace(".", "-")
    if " " in value:
        value = value.split(" ", 1)[0]
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        return None


def _check(row: Row, seen: dict[str, int], source: str) -> None:
    """Every rule the commit applies, so that a row valid here is recorded there."""
    if any("\x00" in value for value in (row.id_number, row.kind, row.reference, row.note)):
        row.refuse("invalid", _("The row contains a NUL character."))
        return
    try:
        row.id_number = parse_id_number(row.id_number).number
    except DomainError as exc:
        row.refuse(exc.code, str(exc.message))
        return
    if row.kind not in StatusEventKind.values:
        row.refuse("invalid_event", _("Unknown event “%(kind)s”.") % {"kind": row.kind})
        return
    if row.effective_date is None:
        row.refuse("invalid_date", _("Give the effective date as YYYY-MM-DD."))
        return
    if not row.reference or len(row.reference) > person_status.REFERENCE_MAX_LENGTH:
        row.refuse("invalid_reference", _("Give the event's reference (at most 100 characters)."))
        return
    if len(row.note) > person_status.NOTE_MAX_LENGTH:
        row.refuse("invalid", _("The note is longer than 500 characters."))
        return
    if row.insurance_type and row.insurance_type not in InsuranceType.values:
        row.refuse("invalid", _("Insurance type must be 310 or 390."))
        return
    unknown = [c for c in row.categories or [] if c not in SupportCategory.values]
    if unknown:
        row.refuse("invalid_category", _("Unknown support category: %(list)s.") % {"list": ", ".join(unknown)})
        return
    if row.kind == StatusEventKind.CATEGORIES_SET and row.categories is None:
        row.refuse("invalid_category", _("A categories_set row needs the categories column."))
        return
    if row.reference in seen:
        row.refuse("duplicate_reference", _("Reference also used on line %(line)d.") % {"line": seen[row.reference]})
        return
    seen[row.reference] = row.line
    row.person = Person.objects.filter(id_number=row.id_number).first()
    if row.person is None:
        row.refuse("person_not_registered", _("No person with this ID number is registered."))
        return
    if row.effective_date < row.person.birth_date:
        row.refuse("invalid_date", _("The effective date is before the person's birth."))
        return
    existing = PersonStatusEvent.objects.filter(source=source, reference=row.reference).first()
    if existing is not None:
        same = (existing.person_id, existing.kind, existing.effective_date) == (
            row.person.pk,
            row.kind,
            row.effective_date,
        )
        if same:
            row.status, row.code, row.event_id = "already_recorded", "already_recorded", existing.pk
            row.message = _("Recorded before (event #%(id)s); nothing changes.") % {"id": existing.pk}
        else:
            row.refuse(
                "reference_conflict", _("This reference was used for another event (#%(id)s).") % {"id": existing.pk}
            )


def status_events_import(*, content: bytes, name: str, source: str, actor: roles.Actor, commit: bool) -> ImportResult:
    """Dry run (``commit=False``) or commit of a status-event file; every row gets a status and a reason."""
    if not (roles.is_system(actor) or roles.has_any_role(actor, roles.CENTER_OFFICER, roles.ADMIN)):
        raise NotPermitted(_("Only the insurance office imports status events."))
    table = read_table(content, name)
    columns = map_header(table.header, HEADER_ALIASES, REQUIRED)

    def cell(cells: list[str], key: str) -> str:
        index = columns.get(key)
        return cells[index].strip() if index is not None and index < len(cells) else ""

    result = ImportResult(committed=commit)
    seen: dict[str, int] = {}
    for line, cells in table.rows:
        if not any(c.strip() for c in cells):
            continue
        row = Row(
            line=line,
            id_number=cell(cells, "id_number"),
            kind=_kind(cell(cells, "kind")),
            effective_date=_date(cell(cells, "effective_date")),
            reference=cell(cells, "reference"),
            insurance_type=cell(cells, "insurance_type"),
            categories=_categories(cell(cells, "categories")),
            note=cell(cells, "note"),
        )
        _check(row, seen, source)
        result.rows.append(row)
    if not commit:
        return result
    for row in result.rows:
        if row.status != "valid":
            continue
        assert row.person is not None and row.effective_date is not None  # _check refuses a row without either
        try:
            recorded = person_status.status_event_record(
                person=row.person,
                kind=row.kind,
                effective_date=row.effective_date,
                source=source,
                reference=row.reference,
                actor=actor,
                insurance_type=row.insurance_type,
                categories=row.categories,
                note=row.note,
            )
        except DomainError as exc:
            row.refuse(exc.code, str(exc.message))
            continue
        row.event_id = recorded.event.pk
        row.status = "recorded" if recorded.created else "already_recorded"
        row.message = _("%(t)d enrollments ended, %(c)d pending applications closed.") % {
            "t": len(recorded.terminated),
            "c": len(recorded.closed),
        }
    return result
