"""Shared helpers of the assistance tests: settlement rows and recorded settlements."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from itertools import count
from typing import Any

from assistance import services
from assistance.models import PersonCategory, Settlement

_serials = count(1)


def row(person: Any, *, day: dt.date, oop: str, total: str | None = None, fund: str = "0.00", **extra: Any) -> dict:
    values = {
        "serial_number": extra.pop("serial_number", f"S{next(_serials):08d}"),
        "id_number": person.id_number,
        "settled_on": day.isoformat(),
        "institution_code": extra.pop("institution_code", "H0001"),
        "institution_name": "县人民医院",
        "institution_level": extra.pop("institution_level", "county"),
        "benefit": extra.pop("benefit", ""),
        "disease_code": extra.pop("disease_code", ""),
        "total_cost": total or str(Decimal(oop) + Decimal(fund)),
        "fund_paid": fund,
        "out_of_pocket": oop,
    }
    values.update(extra)
    return values


def record(actor: Any, *rows: dict) -> services.RecordResult:
    return services.settlements_record(rows=list(rows), actor=actor)


def category(person: Any, name: str, start: dt.date, end: dt.date | None = None) -> PersonCategory:
    """A category period as test data (the hook is not under test where this is used)."""
    return PersonCategory.objects.create(person=person, category=name, valid_from=start, valid_until=end, source="test")


def settlement(serial: str) -> Settlement:
    return Settlement.objects.get(serial_number=serial)
