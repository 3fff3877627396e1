"""Benchmark: latency of the coverage query (was this person covered for this disease on this day?).

    DATABASE_URL=postgres://…/bench .venv/bin/python -m bench.coverage [--queries 3000] [--no-docs]

Three ways over the same random questions (70% about enrollments that exist, in every state and
on dates inside and outside their periods; 30% about a disease the person never held), one at a
time in one process:

- selector: person and disease lookups + ``enrollment.selectors.coverage_on`` (the service path);
- view: ``GET /api/v1/coverage/`` through Django's test client (middleware, DRF, serializer;
  everything but the socket), logged in as clinic staff;
- baseline: one hand-written SQL statement answering the same question (covering period, else the
  latest earlier one, with its approval audit row).
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import time
from typing import Any

from bench import common

BASELINE_SQL = """
SELECT a.id, a.state, a.valid_from, a.valid_until, a.ended_on, e.id, e.at
FROM enrollment_person p
JOIN enrollment_application a ON a.person_id = p.id
JOIN enrollment_disease d ON d.id = a.disease_id
LEFT JOIN LATERAL (
    SELECT x.id, x.at FROM enrollment_auditentry x
    WHERE x.application_id = a.id AND x.transition IN ('approve', 'approve_immediately')
    ORDER BY x.at DESC, x.id DESC LIMIT 1
) e ON true
WHERE p.id_number = %(id_number)s AND d.code = %(disease)s
  AND a.state IN ('approved', 'expiring', 'expired', 'renewed', 'terminated') AND a.valid_from IS NOT NULL
  AND a.valid_from <= %(on)s
ORDER BY (coalesce(CASE WHEN a.state IN ('expired', 'renewed', 'terminated') THEN a.ended_on ELSE a.valid_until END,
                   'infinity'::date) >= %(on)s) DESC, a.valid_from DESC, a.id DESC
LIMIT 1
"""


def questions(count: int, seed: int = 6) -> list[tuple[str, str, dt.date]]:
    from django.db import connection
    from django.utils import timezone

    rng = random.Random(seed)
    today = timezone.localdate()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT p.id_number, d.code FROM enrollment_application a TABLESAMPLE SYSTEM (5) "
            "JOIN enrollment_person p ON p.id = a.person_id JOIN enrollment_disease d ON d.id = a.disease_id "
            "LIMIT %s",
            [count],
        )
        pairs = cursor.fetchall()
        cursor.execute("SELECT code FROM enrollment_disease")
        codes = [row[0] for row in cursor.fetchall()]
    result = []
    for index in range(count):
        id_number, code = pairs[index % len(pairs)]
        if rng.random() < 0.3:
            code = rng.choice(codes)
        result.append((id_number, code, today + dt.timedelta(days=rng.randint(-900, 400))))
    return result


def time_each(calls: list[Any]) -> tuple[list[float], float]:
    samples = []
    started = time.perf_counter()
    for call in calls:
        t0 = time.perf_counter()
        call()
        samples.append((time.perf_counter() - t0) * 1000)
    return samples, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=3000)
    parser.add_argument("--no-docs", action="store_true")
    parser.add_argument("--label", default="")
    args = parser.parse_args()
    common.setup_django()
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client

    from enrollment import selectors
    from enrollment.models import Disease, Person

    counts = common.table_counts()
    asked = questions(args.queries)
    clinic_user = get_user_model().objects.get(username="bench-clinic")

    def selector_call(id_number: str, code: str, on: dt.date) -> Any:
        def call() -> Any:
            disease = Disease.objects.filter(code=code).first()
            person = Person.objects.filter(id_number=id_number).first()
            return selectors.coverage_on(person=person, disease=disease, on=on) if person else None

        return call

    def baseline_call(id_number: str, code: str, on: dt.date) -> Any:
        def call() -> Any:
            with connection.cursor() as cursor:
                cursor.execute(BASELINE_SQL, {"id_number": id_number, "disease": code, "on": on})
                return cursor.fetchone()

        return call

    client = Client(HTTP_HOST="localhost")
    client.force_login(clinic_user)

    def view_call(id_number: str, code: str, on: dt.date) -> Any:
        def call() -> Any:
            response = client.get("/api/v1/coverage/", {"id_number": id_number, "disease": code, "date": on})
            assert response.status_code == 200, response.content[:300]
            return response

        return call

    results = {}
    for name, factory in (("selector", selector_call), ("view", view_call), ("baseline", baseline_call)):
        time_each([factory(*q) for q in asked[:100]])  # warm-up: connection, caches
        with common.RssSampler() as rss:
            samples, seconds = time_each([factory(*q) for q in asked])
        results[name] = (common.percentiles(samples), args.queries / seconds, rss.peak_mb)
    size = counts["enrollment_application"]
    base_rate = results["baseline"][1]
    lines = [
        f"## Coverage query latency, {size:,} applications ({args.queries:,} questions, one at a time)",
        "",
        "| | p50 ms | p95 ms | p99 ms | queries/s | ratio to baseline | peak RSS (MB) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    labels = {
        "selector": "product: lookups + `coverage_on`",
        "view": "product: `GET /api/v1/coverage/` (test client, no socket)",
        "baseline": "baseline: one SQL statement",
    }
    for name, (pct, rate, peak) in results.items():
        lines.append(
            f"| {labels[name]} | {pct['p50']:.2f} | {pct['p95']:.2f} | {pct['p99']:.2f} | {rate:,.0f} | "
            f"{common.ratio(rate, base_rate):.2f}× | {peak:.0f} |"
        )
    lines += [
        "",
        "Target: p99 under 20 ms.",
        "",
        "```",
        f"$ DATABASE_URL=postgres://…/bench .venv/bin/python -m bench.coverage --queries {args.queries}",
        "```",
        "",
        f"- data: {counts['enrollment_person']:,} persons, {size:,} applications, "
        f"{counts['enrollment_auditentry']:,} audit rows (bench.generate)",
        *[f"- {fact}" for fact in common.machine_lines()],
        f"- measured {dt.date.today().isoformat()}",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_docs:
        common.write_section(f"bench_coverage_{args.label or f'{size // 1000}k'}", text)


if __name__ == "__main__":
    main()
