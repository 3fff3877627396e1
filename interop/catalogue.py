"""A disease catalogue document (the enrollment/data/catalogue.json shape, or a CSV of it) and its
difference to the catalogue in use. Nothing here writes."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import Count
from django.utils.translation import gettext as _

from enrollment.models import ACTIVE_STATES, COVERING_STATES, Application, Disease
from enrollment.services import catalogue_aliases, catalogue_entry_values
from kernel.errors import InvalidInput
from kernel.tabular import decode_text, map_header, read_table

# The fields a catalogue entry sets (enrollment.services.catalogue_entry_values, plus aliases).
COMPARED_FIELDS = (
    "name",
    "disease_type",
    "validity_months",
    "counts_toward_limit",
    "min_institution_level",
    "min_physician_title",
    "required_documents",
    "review_mode",
    "icd10_prefixes",
    "active",
    "cross_province_settlement",
    "aliases",
)

CSV_COLUMNS: dict[str, Sequence[str]] = {
    "code": ("code", "病种编码", "病种代码", "opsp_dise_code"),
    "name": ("name", "病种名称", "opsp_dise_name"),
    "type": ("type", "病种类型", "disease_type"),
    "validity_months": ("validity_months", "有效期月数", "有效期"),
    "counts_toward_limit": ("counts_toward_limit", "计入限额"),
    "min_institution_level": ("min_institution_level", "最低医院级别"),
    "min_physician_title": ("min_physician_title", "最低医师职称"),
    "required_documents": ("required_documents", "所需材料"),
    "review_mode": ("review_mode", "审核方式"),
    "icd10_prefixes": ("icd10_prefixes", "icd10", "ICD-10"),
    "active": ("active", "有效", "启用"),
    "cross_province_settlement": ("cross_province_settlement", "跨省直接结算", "跨省结算"),
    "aliases": ("aliases", "别名", "其他名称"),
    "exclusive_with": ("exclusive_with", "互斥病种"),
    "version": ("version", "catalogue_version", "目录版本"),
}
_TRUE = {"1", "true", "yes", "y", "是", "t"}
_FALSE = {"0", "false", "no", "n", "否", "f"}


def _list(value: str) -> list[str]:
    return [item.strip() for item in value.replace("；", ";").replace(",", ";").split(";") if item.strip()]


def _bool(value: str, default: bool) -> bool:
    lowered = value.strip().lower()
    if not lowered:
        return default
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise InvalidInput(_("“%(value)s” is not yes/no.") % {"value": value}, code="invalid_catalogue")


def parse_catalogue(content: bytes, name: str = "", version: str | None = None) -> dict[str, Any]:
    """A catalogue document from JSON (same shape as the bundled one) or CSV (one disease a row)."""
    if name.lower().endswith((".csv", ".xlsx")) or not content.lstrip().startswith((b"{", b"\xef\xbb\xbf{")):
        data = _parse_csv(content, name)
    else:
        text, _encoding = decode_text(content)
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:  # RecursionError: nested too deeply for the decoder
            raise InvalidInput(
                _("The catalogue is not valid JSON: %(error)s") % {"error": exc}, code="invalid_catalogue"
            )
        if not isinstance(data, dict) or not isinstance(data.get("diseases"), list):
            raise InvalidInput(_("The catalogue JSON needs a “diseases” list."), code="invalid_catalogue")
    if version:
        data["version"] = version
    data["version"] = str(data.get("version") or "")
    if not data["version"]:
        raise InvalidInput(_("Give the catalogue version."), code="invalid_catalogue", details={"field": "version"})
    validate_catalogue(data)
    return data


def _parse_csv(content: bytes, name: str) -> dict[str, Any]:
    table = read_table(content, name)
    columns = map_header(table.header, CSV_COLUMNS, ("code", "name", "type"))

    def value(cells: list[str], key: str) -> str:
        index = columns.get(key)
        return cells[index].strip() if index is not None and index < len(cells) else ""

    diseases: list[dict[str, Any]] = []
    pairs: list[list[str]] = []
    version = ""
    for _line, cells in table.rows:
        code = value(cells, "code").upper()
        kind = value(cells, "type")
        entry: dict[str, Any] = {"code": code, "name": value(cells, "name"), "type": kind}
        for key in ("validity_months", "min_institution_level", "min_physician_title"):
            if value(cells, key):
                try:
                    entry[key] = int(value(cells, key))
                except ValueError:
                    raise InvalidInput(
                        _("%(code)s: %(field)s must be a whole number.") % {"code": code, "field": key},
                        code="invalid_catalogue",
                    )
        entry["counts_toward_limit"] = _bool(value(cells, "counts_toward_limit"), kind == "11")
        entry["active"] = _bool(value(cells, "active"), True)
        entry["cross_province_settlement"] = _bool(value(cells, "cross_province_settlement"), False)
        for key in ("required_documents", "icd10_prefixes", "aliases"):
            if value(cells, key):
                entry[key] = _list(value(cells, key))
        if value(cells, "review_mode"):
            entry["review_mode"] = value(cells, "review_mode")
        for other in _list(value(cells, "exclusive_with")):
            pair = sorted([code, other.upper()])
            if pair not in pairs:
                pairs.append(pair)
        version = version or value(cells, "version")
        diseases.append(entry)
    return {"version": version, "diseases": diseases, "exclusive_pairs": pairs}


def normalised_entry(entry: dict[str, Any], version: str) -> dict[str, Any]:
    """The Disease field values an entry sets: enrollment's own definition (the loader writes the same)."""
    return {
        **catalogue_entry_values(entry),
        "aliases": catalogue_aliases(entry.get("aliases"), name=entry["name"]),
    }


def validate_catalogue(data: dict[str, Any]) -> None:
    """Every error of the document at once, before anything is compared or applied."""
    errors: list[str] = []
    codes: set[str] = set()
    for position, entry in enumerate(data.get("diseases") or [], start=1):
        if not isinstance(entry, dict) or not entry.get("code") or not entry.get("name") or not entry.get("type"):
            errors.append(_("Entry %(n)d needs a code, a name and a type.") % {"n": position})
            continue
        code = entry["code"]
        if code in codes:
            errors.append(_("%(code)s is listed twice.") % {"code": code})
        codes.add(code)
        try:
            Disease(code=code, **normalised_entry(entry, data["version"])).full_clean(
                validate_unique=False, validate_constraints=False
            )
        except (ValidationError, ValueError, TypeError) as exc:
            messages = exc.messages if isinstance(exc, ValidationError) else [str(exc)]
            errors.append(f"{code}: {'; '.join(messages)}")
    if not codes and not errors:
        errors.append(_("The catalogue file lists no diseases."))
    pairs = data.get("exclusive_pairs") or []
    if not isinstance(pairs, list) or not all(isinstance(pair, list) for pair in pairs):
        raise InvalidInput(_("“exclusive_pairs” must be a list of [code, code] pairs."), code="invalid_catalogue")
    pair_codes = [str(code) for pair in pairs for code in pair]
    known = codes | set(Disease.objects.filter(code__in=pair_codes).values_list("code", flat=True))
    for pair in pairs:
        if len(pair) != 2 or any(code not in known for code in pair):
            errors.append(_("Exclusive pair %(pair)s names an unknown disease.") % {"pair": pair})
    if errors:
        raise InvalidInput(
            _("The catalogue has %(n)d error(s): %(first)s") % {"n": len(errors), "first": errors[0]},
            code="invalid_catalogue",
            details={"errors": errors},
        )


def catalogue_diff(data: dict[str, Any]) -> dict[str, Any]:
    """Added, changed (field by field, old → new) and removed diseases against the catalogue in use.

    "Removed" means active now and absent from the new version, or present in it with active false.
    """
    version = data["version"]
    new = {entry["code"]: normalised_entry(entry, version) for entry in data["diseases"]}
    current = {d.code: d for d in Disease.objects.all()}
    added: list[dict[str, Any]] = []
    changed: list[dict[str, Any]] = []
    removed: list[dict[str, Any]] = []
    unchanged = 0
    for code, values in sorted(new.items()):
        disease = current.get(code)
        if disease is None:
            added.append({"code": code, "name": values["name"], "type": values["disease_type"]})
            continue
        fields = {
            name: [getattr(disease, name), values[name]]
            for name in COMPARED_FIELDS
            if getattr(disease, name) != values[name]
        }
        if disease.active and not values["active"]:
            removed.append({"code": code, "name": disease.name})
            fields.pop("active", None)
        if fields:
            changed.append({"code": code, "name": disease.name, "fields": fields})
        elif not (disease.active and not values["active"]):
            unchanged += 1
    removed.extend(
        {"code": code, "name": d.name} for code, d in sorted(current.items()) if d.active and code not in new
    )
    removed_codes = [item["code"] for item in removed]
    enrolled = dict.fromkeys(removed_codes, 0)
    pending = dict.fromkeys(removed_codes, 0)
    counts = (
        Application.objects.filter(disease__code__in=removed_codes, state__in=ACTIVE_STATES)
        .order_by()
        .values_list("disease__code", "state")
        .annotate(n=Count("id"))
    )
    for code, state, n in counts:
        (enrolled if state in COVERING_STATES else pending)[code] += n
    for item in removed:
        item["enrollments"] = enrolled[item["code"]]
        item["pending_applications"] = pending[item["code"]]
    return {
        "version": version,
        "added": added,
        "changed": changed,
        "removed": removed,
        "unchanged": unchanged,
    }
