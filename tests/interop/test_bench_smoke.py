"""A small run of bench/roster_dryrun.py: the dry run is set-based (queries do not grow with rows)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from django.db import connection
from django.test.utils import CaptureQueriesContext

from enrollment.models import Application, Person
from interop.models import RowStatus

BENCH = Path(__file__).resolve().parents[2] / "bench" / "roster_dryrun.py"


def load_bench():
    spec = importlib.util.spec_from_file_location("roster_dryrun", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_roster_benchmark_smoke(db):
    bench = load_bench()
    actor = bench.seed(existing=300)
    persons, applications = Person.objects.count(), Application.objects.count()
    content = bench.make_roster(3000, existing=300)
    with CaptureQueriesContext(connection) as queries:
        seconds, roster = bench.measure(content, actor)
    assert roster.state == "validated", roster.error
    assert roster.counts["lines"] == 3000
    assert set(roster.rows.values_list("line", flat=True)) == set(range(2, 3002))
    by_status = roster.counts["by_status"]
    assert by_status[RowStatus.ELIGIBLE] > 0 and by_status[RowStatus.INVALID] > 0
    assert by_status[RowStatus.ALREADY_ENROLLED] > 0
    # A query per row would be thousands; the set-based checks need a few dozen.
    assert len(queries) < 80, len(queries)
    assert (Person.objects.count(), Application.objects.count()) == (persons, applications)
    assert seconds < 60
