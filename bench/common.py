"""Shared helpers of the scale benchmarks: Django set-up, timing, memory, percentiles, docs sections."""

from __future__ import annotations

import os
import resource
import statistics
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def setup_django() -> None:
    """Configure Django from DATABASE_URL (the benchmarks refuse to run on SQLite)."""
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    # As in production: with DEBUG on, Django formats and keeps every SQL statement it runs,
    # which costs the ORM side (bulk inserts especially) time and memory the SQL side never pays.
    os.environ.setdefault("DEBUG", "0")
    import django

    django.setup()
    from django.conf import settings

    if not settings.IS_POSTGRES:
        raise SystemExit("Point DATABASE_URL at a dedicated PostgreSQL database (COPY and the SQL baselines need it).")


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def percentiles(samples_ms: list[float]) -> dict[str, float]:
    if len(samples_ms) < 2:
        value = samples_ms[0] if samples_ms else 0.0
        return {"p50": value, "p95": value, "p99": value}
    cuts = statistics.quantiles(samples_ms, n=100, method="inclusive")
    return {"p50": cuts[49], "p95": cuts[94], "p99": cuts[98]}


def server_facts() -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("show server_version")
        version = cursor.fetchone()[0]
        settings_text = []
        for name in ("shared_buffers", "work_mem", "effective_cache_size", "max_wal_size"):
            cursor.execute(f"show {name}")
            settings_text.append(f"{name} {cursor.fetchone()[0]}")
    return f"PostgreSQL {version} (default settings: {', '.join(settings_text)}), same machine"


def machine_lines() -> list[str]:
    from bench.roster_dryrun import machine_facts

    facts = [fact for fact in machine_facts() if not fact.startswith("database:")]
    return facts + [server_facts()]


def table_counts() -> dict[str, int]:
    from django.db import connection

    counts = {}
    with connection.cursor() as cursor:
        for table in ("enrollment_person", "enrollment_application", "enrollment_auditentry"):
            cursor.execute(f"select count(*) from {table}")
            counts[table] = cursor.fetchone()[0]
    return counts


def write_section(name: str, text: str) -> None:
    """Replace (or append) this benchmark's section of docs/benchmarks.md, between its markers."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    path = ROOT / "docs" / "benchmarks.md"
    current = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    section = f"{start}\n{text.rstrip()}\n{end}\n"
    if start in current and end in current:
        head, rest = current.split(start, 1)
        tail = rest.split(end, 1)[1].lstrip("\n")
        current = head + section + tail
    else:
        current = current.rstrip("\n") + "\n\n" + section
    path.write_text(current, encoding="utf-8")


def vacuum_analyze(*tables: str) -> None:
    """Both sides of a comparison start from the same table statistics and visibility map."""
    from django.db import connection

    with connection.cursor() as cursor:
        for table in tables:
            cursor.execute(f"VACUUM ANALYZE {table}")


def ratio(product: float, baseline: float) -> float:
    return product / baseline if baseline else 0.0


class RssSampler:
    """Peak resident memory of this process during a ``with`` block (sampled every 20 ms).

    ru_maxrss only ever grows, so it cannot tell the product's peak from the baseline's in one run.
    """

    def __init__(self) -> None:
        import threading

        self.peak_mb = 0.0
        self.start_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_mb = max(self.peak_mb, current_rss_mb())
            self._stop.wait(0.02)

    def __enter__(self) -> RssSampler:
        self.start_mb = current_rss_mb()
        self.peak_mb = self.start_mb
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self.peak_mb, current_rss_mb())


def max_id(table: str) -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"select coalesce(max(id), 0) from {table}")
        return cursor.fetchone()[0]


def run_sql_without_triggers(statements: list[tuple[str, list[Any]]]) -> None:
    """Undo a benchmark run. Only for the dedicated benchmark database: the audit trail is
    append-only by trigger, and ``session_replication_role = replica`` (superuser) switches
    triggers off for this one transaction so the run's own audit rows can be removed."""
    from django.db import connection, transaction

    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL session_replication_role = replica")
        for sql, params in statements:
            cursor.execute(sql, params)
