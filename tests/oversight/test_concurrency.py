"""Two workers draw the same region and month at the same instant, each on its own PostgreSQL connection:
one draw, each application sampled once, one audit row."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest
from django.db import connection, connections

from enrollment.services import get_system_user
from oversight import services
from oversight.models import OversightAuditEntry, RecheckDraw, RecheckRate, RecheckSample
from tests.oversight.helpers import PERIOD, batch_approvals

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_two_workers_draw_once(world):
    assert connection.vendor == "postgresql"
    RecheckRate.objects.create(region=world.region, percent=Decimal(100))
    _batch, approvals = batch_approvals(world, 6)
    system = get_system_user()
    barrier = threading.Barrier(4)
    results: list[object] = []
    lock = threading.Lock()

    def run() -> None:
        try:
            barrier.wait(timeout=30)
            draw = services.recheck_draw(region_id=world.region.pk, period=PERIOD, actor=system)
            outcome: object = (draw.pk, draw.seed)
        except Exception as exc:  # noqa: BLE001 - reported, and fails the test
            outcome = f"error:{type(exc).__name__}:{exc}"
        finally:
            connections.close_all()
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(results) == 4 and len(set(results)) == 1, results
    assert RecheckDraw.objects.count() == 1
    assert sorted(RecheckSample.objects.values_list("application_id", flat=True)) == sorted(a.pk for a in approvals)
    assert OversightAuditEntry.objects.filter(action="draw").count() == 1
