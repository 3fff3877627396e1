"""Loading the disease catalogue (病种目录) from a fixture or a file."""

from __future__ import annotations

from typing import Any, TypedDict

from django.db import transaction
from django.utils.translation import gettext as _

from enrollment import policies
from enrollment.models import Disease
from enrollment.services.audit import record_audit
from kernel import roles
from kernel.errors import InvalidInput

# ---------------------------------------------------------------------------
# Catalogue
# ---------------------------------------------------------------------------


class CatalogueLoaded(TypedDict):
    """What a catalogue load did: how many diseases it created and updated, and the catalogue's version."""

    created: int
    updated: int
    version: str


def catalogue_aliases(raw: Any, *, name: str = "") -> list[str]:
    """A catalogue entry's ``aliases``: a list of other names (default none), stripped, each once, without
    the disease's own name. Anything but a list of strings is a ValueError."""
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(isinstance(alias, str) for alias in raw):
        raise ValueError("aliases must be a list of names")
    return [alias for alias in dict.fromkeys(a.strip() for a in raw) if alias and alias != name.strip()]


def catalogue_entry_values(entry: dict[str, Any]) -> dict[str, Any]:
    """The Disease field values a catalogue entry sets, with the defaults of a field it leaves out (aliases
    apart: ``catalogue_aliases``). The loader writes them and interop's diff compares them: one definition."""
    kind = str(entry["type"])
    return {
        "name": entry["name"],
        "disease_type": kind,
        "validity_months": int(entry.get("validity_months", 36)),
        "counts_toward_limit": bool(entry.get("counts_toward_limit", kind == "11")),
        "min_institution_level": int(entry.get("min_institution_level", 1)),
        "min_physician_title": int(entry.get("min_physician_title", 2)),
        "required_documents": list(entry.get("required_documents", ["diagnosis_certificate"])),
        "review_mode": entry.get("review_mode", "batch"),
        "icd10_prefixes": list(entry.get("icd10_prefixes", [])),
        "active": bool(entry.get("active", True)),
        "cross_province_settlement": bool(entry.get("cross_province_settlement", False)),
    }


def catalogue_load(*, data: dict[str, Any], actor: roles.Actor) -> CatalogueLoaded:
    """Create or update diseases from a catalogue document (enrollment/data/catalogue.json shape).

    Administrators and the system (the load_catalogue command) load it; each load writes one
    RecordAuditEntry (subject "catalogue") with the codes it created and updated. Diseases missing from the document are
    left alone here; retiring them is a reviewed step.
    """
    from django.core.exceptions import ValidationError

    policies.ensure_may_maintain_catalogue(actor)
    version = str(data.get("version", "1"))
    entries = data.get("diseases") or []
    if not entries:
        raise InvalidInput(_("The catalogue file lists no diseases."), code="invalid_catalogue")
    created: list[str] = []
    updated: list[str] = []
    with transaction.atomic():
        by_code: dict[str, Disease] = {}
        for entry in entries:
            values = {**catalogue_entry_values(entry), "catalogue_version": version}
            try:
                values["aliases"] = catalogue_aliases(entry.get("aliases"), name=entry["name"])
            except ValueError:
                raise InvalidInput(
                    _("Catalogue entry %(code)s is invalid: %(errors)s")
                    % {"code": entry.get("code"), "errors": [_("aliases must be a list of names")]},
                    code="invalid_catalogue",
                )
            disease = Disease(code=entry["code"], **values)
            try:
                disease.full_clean(validate_unique=False, validate_constraints=False)
            except ValidationError as exc:
                raise InvalidInput(
                    _("Catalogue entry %(code)s is invalid: %(errors)s")
                    % {"code": entry.get("code"), "errors": exc.messages},
                    code="invalid_catalogue",
                )
            disease, was_created = Disease.objects.update_or_create(code=entry["code"], defaults=values)
            by_code[disease.code] = disease
            (created if was_created else updated).append(disease.code)
        pairs = data.get("exclusive_pairs", [])
        for left, right in pairs:
            first = by_code.get(left) or Disease.objects.get(code=left)
            first.exclusive_with.add(by_code.get(right) or Disease.objects.get(code=right))
        record_audit(
            subject="catalogue",
            subject_id=None,
            action="catalogue_loaded",
            actor=actor,
            details={
                "version": version,
                "created": created,
                "updated": updated,
                "exclusive_pairs": [list(pair) for pair in pairs],
            },
        )
    return {"created": len(created), "updated": len(updated), "version": version}
