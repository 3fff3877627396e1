"""Benchmark: the dry run of a 100,000-row roster import (issue 8: under a minute on one machine).

    .venv/bin/python bench/roster_dryrun.py                     # 100,000 rows, fresh SQLite file
    .venv/bin/python bench/roster_dryrun.py --rows 20000 --no-docs
    DATABASE_URL=postgres://…/empty_db .venv/bin/python bench/roster_dryrun.py --use-database-url

It builds a fresh database (migrations, the bundled catalogue, one city with a county hospital,
``--existing`` persons who already hold approved enrollments), generates a roster mixing new
people, existing people and every kind of bad row, and times what an officer waits for: the
upload (parse + header check + store) and the dry run (parse, set-based checks, report rows
written). The figure and the machine facts go to docs/benchmarks.md between this script's markers.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import os
import platform
import random
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
START_MARK = "<!-- roster_dryrun:start -->"
END_MARK = "<!-- roster_dryrun:end -->"


def seed(existing: int) -> Any:
    """Reference data and ``existing`` persons with approved enrollments (bulk, synthetic)."""
    import json

    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.utils import timezone

    from enrollment import services
    from enrollment.idnumbers import make_id_number
    from enrollment.models import Application, Disease, Institution, Person, Region, State
    from kernel import roles

    province, _c = Region.objects.get_or_create(code="530000", defaults={"name": "云南省"})
    city, _c = Region.objects.get_or_create(code="530100", defaults={"name": "昆明市", "parent": province})
    hospital, _c = Institution.objects.get_or_create(
        code="BENCH-H1", defaults={"name": "县医院", "level": 2, "region": city, "may_diagnose": True}
    )
    Institution.objects.get_or_create(
        code="BENCH-H3", defaults={"name": "市医院", "level": 3, "region": province, "may_diagnose": True}
    )
    catalogue = json.loads((ROOT / "enrollment" / "data" / "catalogue.json").read_text(encoding="utf-8"))
    services.catalogue_load(data=catalogue, actor=services.get_system_user())
    admin, _c = get_user_model().objects.get_or_create(username="bench-admin")
    admin.groups.add(Group.objects.get_or_create(name=roles.ADMIN)[0])
    hypertension = Disease.objects.get(code="M03900")
    diabetes = Disease.objects.get(code="M01600")
    persons = [
        Person(
            id_number=make_id_number("530124", dt.date(1930, 1, 1) + dt.timedelta(days=i // 500), (i % 500) * 2 + 1),
            name=f"存量{i}",
            sex="1",
            birth_date=dt.date(1930, 1, 1) + dt.timedelta(days=i // 500),
            insured_region=city,
        )
        for i in range(existing)
    ]
    Person.objects.bulk_create(persons, batch_size=2000)
    ids = list(Person.objects.filter(name__startswith="存量").values_list("pk", flat=True))
    today = timezone.localdate()
    applications = []
    for n, pk in enumerate(ids):
        for disease in (hypertension, diabetes) if n % 3 == 0 else (hypertension,):
            applications.append(
                Application(
                    person_id=pk,
                    disease=disease,
                    state=State.APPROVED,
                    filing_institution=hospital,
                    treating_institution=hospital,
                    region=city,
                    filed_by=admin,
                    valid_from=today,
                    valid_until=today + dt.timedelta(days=1000),
                )
            )
    Application.objects.bulk_create(applications, batch_size=2000)
    return admin


def make_roster(rows: int, existing: int, seed_value: int = 8) -> bytes:
    """A UTF-8 CSV with Chinese headers: ~70% new people, ~20% existing, the rest bad in every way."""
    from enrollment.idnumbers import make_id_number

    rng = random.Random(seed_value)
    declared = ["M03900", "糖尿病", "I25.1", "M05300", "J45", "高血压病;E11.9", "M04600、M05400", ""]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["身份证号", "姓名", "医保区划", "联系电话", "帮扶类别", "申报病种"])
    previous: list[str] = []
    for i in range(rows):
        roll = rng.random()
        if roll < 0.2 and existing:
            k = rng.randrange(existing)
            number = make_id_number("530124", dt.date(1930, 1, 1) + dt.timedelta(days=k // 500), (k % 500) * 2 + 1)
        else:
            number = make_id_number("530124", dt.date(1950, 1, 1) + dt.timedelta(days=i // 500), (i % 500) * 2 + 1)
        region, conditions = "530100", rng.choice(declared)
        if 0.90 <= roll < 0.93:
            number = number[:-1] + ("0" if number[-1] != "0" else "1")  # bad checksum
        elif 0.93 <= roll < 0.95:
            conditions = "M99999"  # unknown disease
        elif 0.95 <= roll < 0.96:
            region = "999999"  # unknown region
        elif 0.96 <= roll < 0.98 and previous:
            number, conditions = rng.choice(previous), "M03900"  # likely duplicate
        previous.append(number)
        if len(previous) > 50:
            previous.pop(0)
        writer.writerow([number, f"测试{i}", region, f"138{i:08d}", rng.choice(["监测对象", "低保", ""]), conditions])
    return out.getvalue().encode("utf-8")


def measure(content: bytes, actor: Any) -> tuple[float, Any]:
    """Seconds from upload to finished dry run, and the import record."""
    from interop import services

    started = time.perf_counter()
    roster = services.roster_import_create(name="bench.csv", content=content, actor=actor, queue=False)
    roster = services.roster_import_run(import_id=roster.pk)
    return time.perf_counter() - started, roster


def machine_facts() -> list[str]:
    import sqlite3

    import django

    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        memory_kb = next(
            int(line.split()[1])
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        )
        memory = f"{memory_kb / 1048576:.0f} GiB RAM"
    except (OSError, StopIteration):
        memory = "RAM unknown"
    from django.db import connection

    database = connection.vendor
    if database == "sqlite":
        database += f" {sqlite3.sqlite_version}"
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    return [
        f"CPU: {model or platform.processor() or 'unknown'}, {os.cpu_count()} logical cores; {memory}; "
        f"load average at the end {load} (a shared machine: other work was running)",
        f"{platform.system()} {platform.release()}; Python {platform.python_version()}; Django {django.get_version()}",
        f"database: {database}",
    ]


def write_docs(text: str) -> None:
    path = ROOT / "docs" / "benchmarks.md"
    current = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    section = f"{START_MARK}\n{text.rstrip()}\n{END_MARK}\n"
    if START_MARK in current and END_MARK in current:
        head, rest = current.split(START_MARK, 1)
        tail = rest.split(END_MARK, 1)[1].lstrip("\n")
        current = head + section + tail
    else:
        current = current.rstrip("\n") + "\n\n" + section
    path.write_text(current, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--existing", type=int, default=20_000, help="persons already enrolled in the database")
    parser.add_argument("--use-database-url", action="store_true", help="use DATABASE_URL (an empty database)")
    parser.add_argument("--no-docs", action="store_true", help="do not update docs/benchmarks.md")
    parser.add_argument("--commit-rows", type=int, default=0, help="also time the commit of a roster this long")
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT))
    workdir = tempfile.TemporaryDirectory(prefix="roster-bench-")
    if not args.use_database_url:
        os.environ["DATABASE_URL"] = f"sqlite:///{workdir.name}/bench.sqlite3"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    actor = seed(args.existing)
    seeded = time.perf_counter() - started
    content = make_roster(args.rows, args.existing)
    seconds, roster = measure(content, actor)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    counts = roster.counts
    assert roster.state == "validated", roster.error
    assert counts["lines"] == args.rows, counts
    command = " ".join(
        ["$ .venv/bin/python bench/roster_dryrun.py", f"--rows {args.rows}", f"--existing {args.existing}"]
        + ([f"--commit-rows {args.commit_rows}"] if args.commit_rows else [])
    )
    commit_lines: list[str] = []
    if args.commit_rows:
        from interop import services

        small = make_roster(args.commit_rows, args.existing, seed_value=9)
        _seconds, small_roster = measure(small, actor)
        started = time.perf_counter()
        services.roster_import_request_commit(import_id=small_roster.pk, actor=actor, queue=False)
        committed = services.roster_import_run(import_id=small_roster.pk)
        commit_seconds = time.perf_counter() - started
        assert committed.state == "committed", committed.error
        commit_lines = [
            f"- commit (not part of the requirement; a background task): {args.commit_rows:,} rows in "
            f"{commit_seconds:.1f} s ({args.commit_rows / commit_seconds:,.0f} rows/s) — one person_register per "
            f"line, {committed.counts['by_action']['filing_created']:,} worklist items created",
        ]
    statuses = ", ".join(f"{k} {v}" for k, v in counts["by_status"].items() if v)
    text = "\n".join(
        [
            f"## Roster import: dry run of a {args.rows:,}-row roster",
            "",
            f"**{args.rows:,} rows in {seconds:.1f} s** ({args.rows / seconds:,.0f} rows/s), upload to finished "
            f"report; peak memory of the process {peak_mb:.0f} MB. Requirement: under 60 s.",
            "",
            "```",
            command,
            "```",
            "",
            f"- database: fresh, migrated, bundled catalogue, {args.existing:,} existing persons holding "
            f"approved enrollments (set-up {seeded:.1f} s, not counted)",
            f"- roster: UTF-8 CSV, {len(content) / 1048576:.1f} MB; {counts['entries']:,} report rows ({statuses})",
            *commit_lines,
            *[f"- {fact}" for fact in machine_facts()],
            f"- measured {dt.date.today().isoformat()}",
        ]
    )
    print(text)
    if not args.no_docs:
        write_docs(text)
    workdir.cleanup()


if __name__ == "__main__":
    main()
