"""The chunked write of checked settlement rows: a serial number another sender stored between the check and
the write is reported per row (the same data: duplicate; other data: serial_conflict), the rest is stored and
computed once."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
import time_machine
from django.db import transaction

from assistance import services
from assistance.models import AssistanceLine, Settlement
from assistance.settlement_rows import SettlementChecker
from tests.assistance.helpers import category, record, row

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _clock():
    with time_machine.travel(dt.datetime(2026, 4, 10, 9, 0, tzinfo=dt.UTC), tick=False):
        yield


def test_rows_another_sender_stored_meanwhile_are_reported_per_row(world):
    person = world.person()
    category(person, "orphan", dt.date(2026, 1, 1))
    rows = [row(person, day=dt.date(2026, 3, 1 + n), oop="100.00", serial_number=f"RACE-{n}") for n in range(4)]
    checked = SettlementChecker(actor=world.officer, source="api").check(list(enumerate(rows, 1)))
    assert [r.status for r in checked] == ["new"] * 4
    # Another sender stores RACE-1 with the same data and RACE-2 with other data before this write.
    record(world.admin, rows[1], dict(rows[2], out_of_pocket="99.00"))
    with transaction.atomic():
        created = services._write(checked, actor=world.officer, settlement_import=None)
    assert [(r.status, r.reason_code) for r in checked] == [
        ("new", ""),
        ("duplicate", "already_recorded"),
        ("invalid", "serial_conflict"),
        ("new", ""),
    ]
    assert sorted(created) == sorted(
        Settlement.objects.filter(serial_number__in=["RACE-0", "RACE-3"]).values_list("pk", flat=True)
    )
    assert Settlement.objects.get(serial_number="RACE-2").out_of_pocket == Decimal("99.00")
    mine = AssistanceLine.objects.filter(settlement_id__in=created)
    assert sorted(mine.values_list("amount", flat=True)) == [Decimal("100.00"), Decimal("100.00")]
    assert Settlement.objects.filter(computed_at__isnull=True).count() == 0
