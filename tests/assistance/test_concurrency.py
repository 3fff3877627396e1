"""Exactly once under two workers: two alert scans of the same month at the same instant, each on its own
PostgreSQL connection, create one alert per person; the same settlement batch sent twice at once stores it once."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection

from assistance import services
from assistance.models import AssistanceAuditEntry, AssistanceLine, HighCostAlert, Settlement
from tests.assistance.helpers import category, record, row
from tests.enrollment.test_concurrency import fire_concurrently

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_two_concurrent_scans_create_each_alert_once(world):
    assert connection.vendor == "postgresql"
    persons = [world.person() for _ in range(30)]
    day = dt.date(2026, 1, 15)
    record(world.officer, *[row(p, day=day, oop="7500.00") for p in persons])
    system = services.system_user()
    outcomes = fire_concurrently([lambda: services.alerts_scan(period=day, actor=system) for _ in range(2)])
    assert outcomes == {"ok": 2}
    assert HighCostAlert.objects.count() == 30
    assert AssistanceAuditEntry.objects.filter(action="alert_created").count() == 30  # audited by the creating run


def test_concurrent_batches_and_computations_store_and_assist_once(world):
    person = world.person()
    category(person, "orphan", dt.date(2025, 1, 1))
    rows = [row(person, day=dt.date(2026, 1, d), oop="100.00") for d in range(1, 11)]
    outcomes = fire_concurrently([lambda: services.settlements_record(rows=rows, actor=world.officer)] * 3)
    assert outcomes == {"ok": 3}
    assert Settlement.objects.count() == 10
    assert AssistanceLine.objects.count() == 10
    system = services.system_user()
    fire_concurrently([lambda: services.compute_assistance(actor=system)] * 2)
    assert AssistanceLine.objects.count() == 10
