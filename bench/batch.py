"""Benchmark: the monthly batch assembly (每月集中审批) against hand-written set-based SQL.

    DATABASE_URL=postgres://…/bench .venv/bin/python -m bench.batch [--rounds 1] [--no-docs]

On the data of ``bench.generate``: every region's diagnosed applications are frozen into this
month's batch, once by ``reviews.services.batch_assemble`` (chunked, the product path) and once by
one SQL statement per region (UPDATE … RETURNING feeding the review-item and audit INSERTs). The
database is put back between the two from the run's own rows, then vacuumed and analysed, so both
start from the same state. Both must move the same applications.
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
from dataclasses import dataclass
from typing import Any

from bench import common

BASELINE_SQL = """
WITH candidates AS (
    SELECT a.id, d.disease_type, d.review_stages
    FROM enrollment_application a JOIN enrollment_disease d ON d.id = a.disease_id
    WHERE a.region_id = %(region)s AND a.state = 'diagnosed' AND a.diagnosed_at < %(cutoff)s
      AND a.icd10_code <> '' AND a.diagnosis_date IS NOT NULL AND a.physician_id IS NOT NULL
    FOR UPDATE OF a
), moved AS (
    UPDATE enrollment_application a SET state = 'in_review', updated_at = now()
    FROM candidates c WHERE a.id = c.id
    RETURNING a.id,
        CASE WHEN jsonb_array_length(c.review_stages) > 0 THEN c.review_stages
             WHEN c.disease_type = '12' THEN '["initial_review", "recheck", "approval"]'::jsonb
             ELSE '["initial_review"]'::jsonb END AS stages
), items AS (
    INSERT INTO reviews_reviewitem (batch_id, application_id, region_id, round, stages, stage, outcome, queued_at)
    SELECT %(batch)s, m.id, %(region)s,
        coalesce((SELECT max(r.round) FROM reviews_reviewitem r WHERE r.application_id = m.id), 0) + 1,
        m.stages, m.stages ->> 0, 'pending', now()
    FROM moved m
    RETURNING application_id, stage
)
INSERT INTO enrollment_auditentry
    (transition, from_state, to_state, is_system, at, reason_code, reason, stage, details, actor_id,
     application_id, batch_id)
SELECT 'enqueue', 'diagnosed', 'in_review', true, now(), '', '', i.stage,
    jsonb_build_object('period', %(period)s::text), %(actor)s, i.application_id, %(batch)s
FROM items i
"""


@dataclass
class Side:
    rows: int
    seconds: float
    peak_mb: float
    start_mb: float
    checksum: int

    @property
    def rate(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0


def _regions() -> list[int]:
    from enrollment.models import Application

    return sorted(
        Application.objects.filter(state="diagnosed").order_by().values_list("region_id", flat=True).distinct()
    )


def _moved_checksum(audit_mark: int) -> tuple[int, int]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "select count(*), coalesce(sum(application_id), 0) from enrollment_auditentry "
            "where id > %s and transition = 'enqueue'",
            [audit_mark],
        )
        return cursor.fetchone()


def run_product(
    *, regions: list[int], period: str, cutoff: dt.datetime, actor: Any, chunk_size: int, workers: int = 1
) -> Side:
    """The product path; with ``workers`` > 1 the regions are shared out over that many threads, each with
    its own database connection, as ``assemble_due_batches`` shares them out over Celery worker processes
    (the work of a chunk is in the database, so threads stand in for processes here)."""
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connection

    from reviews.services import batch_assemble

    def assemble(share: list[int]) -> None:
        try:
            for region_id in share:
                batch_assemble(region_id=region_id, period=period, actor=actor, cutoff=cutoff, chunk_size=chunk_size)
        finally:
            if workers > 1:
                connection.close()

    audit_mark = common.max_id("enrollment_auditentry")
    with common.RssSampler() as rss:
        started = time.perf_counter()
        if workers > 1:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                list(pool.map(assemble, [regions[n::workers] for n in range(workers)]))
        else:
            assemble(regions)
        seconds = time.perf_counter() - started
    rows, checksum = _moved_checksum(audit_mark)
    return Side(rows, seconds, rss.peak_mb, rss.start_mb, checksum)


def run_baseline(*, regions: list[int], period: str, cutoff: dt.datetime, actor: Any) -> Side:
    from django.db import connection, transaction

    audit_mark = common.max_id("enrollment_auditentry")
    with common.RssSampler() as rss:
        started = time.perf_counter()
        for region_id in regions:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(
                    "INSERT INTO reviews_reviewbatch (region_id, period, cutoff, state, item_count, created_at) "
                    "VALUES (%s, %s, %s, 'open', 0, now()) RETURNING id",
                    [region_id, period, cutoff],
                )
                batch_id = cursor.fetchone()[0]
                params = {"region": region_id, "cutoff": cutoff, "batch": batch_id, "period": period, "actor": actor.pk}
                cursor.execute(BASELINE_SQL, params)
                cursor.execute(
                    "UPDATE reviews_reviewbatch SET item_count = %s, assembled_at = now(), state = 'reviewing' "
                    "WHERE id = %s",
                    [cursor.rowcount, batch_id],
                )
        seconds = time.perf_counter() - started
    rows, checksum = _moved_checksum(audit_mark)
    return Side(rows, seconds, rss.peak_mb, rss.start_mb, checksum)


def marks() -> dict[str, int]:
    return {
        table: common.max_id(table)
        for table in ("enrollment_auditentry", "reviews_reviewitem", "reviews_reviewbatch", "reviews_stagedecision")
    }


def reset(mark: dict[str, int], *, vacuum: bool = True) -> None:
    """Put the applications a run moved back to ``diagnosed`` and remove the run's rows."""
    common.run_sql_without_triggers(
        [
            (
                "UPDATE enrollment_application a SET state = 'diagnosed' FROM reviews_reviewitem i "
                "WHERE i.id > %s AND i.application_id = a.id AND a.state = 'in_review'",
                [mark["reviews_reviewitem"]],
            ),
            ("DELETE FROM reviews_reviewitem WHERE id > %s", [mark["reviews_reviewitem"]]),
            ("DELETE FROM enrollment_auditentry WHERE id > %s", [mark["enrollment_auditentry"]]),
            ("DELETE FROM reviews_reviewbatch WHERE id > %s", [mark["reviews_reviewbatch"]]),
        ]
    )
    if vacuum:
        common.vacuum_analyze("enrollment_application", "enrollment_auditentry", "reviews_reviewitem")


def compare(*, chunk_size: int = 1000, vacuum: bool = True, workers: int = 1) -> tuple[Side, Side, Side | None]:
    """Product, reset, baseline, reset (and the product on ``workers`` workers, reset): every side from
    the same data; the database ends as it began."""
    from django.utils import timezone

    from enrollment.periods import period_key
    from enrollment.services import get_system_user

    actor = get_system_user()
    regions = _regions()
    cutoff = timezone.now()
    period = period_key(timezone.localdate())
    mark = marks()
    product = run_product(regions=regions, period=period, cutoff=cutoff, actor=actor, chunk_size=chunk_size)
    reset(mark, vacuum=vacuum)
    baseline = run_baseline(regions=regions, period=period, cutoff=cutoff, actor=actor)
    reset(mark, vacuum=vacuum)
    parallel = None
    if workers > 1:
        parallel = run_product(
            regions=regions, period=period, cutoff=cutoff, actor=actor, chunk_size=chunk_size, workers=workers
        )
        reset(mark, vacuum=vacuum)
    return product, baseline, parallel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunk-size", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3, help="rounds of product + baseline (shared machine: noisy)")
    parser.add_argument("--no-docs", action="store_true")
    parser.add_argument("--label", default="", help="suffix of the docs section (one section per data size)")
    parser.add_argument(
        "--workers", type=int, default=1, help="also run the product with the regions shared out over N workers"
    )
    args = parser.parse_args()
    common.setup_django()
    counts = common.table_counts()
    runs = [compare(chunk_size=args.chunk_size, workers=args.workers) for _round in range(args.repeat)]
    rounds = [(p, b) for p, b, _parallel in runs]
    ratios = sorted(common.ratio(p.rate, b.rate) for p, b in rounds)
    median_ratio = ratios[len(ratios) // 2]
    product, baseline = rounds[0]
    for p, b, parallel in runs:
        assert (p.rows, p.checksum) == (b.rows, b.checksum) == (product.rows, product.checksum), (p, b)
        assert parallel is None or (parallel.rows, parallel.checksum) == (p.rows, p.checksum), (p, parallel)
    speedups = sorted(common.ratio(par.rate, p.rate) for p, _b, par in runs if par is not None)
    assert product.rows == baseline.rows and product.checksum == baseline.checksum, (product, baseline)
    size = counts["enrollment_application"]
    label = args.label or f"{size // 1000}k"
    command = (
        f"$ DATABASE_URL=postgres://…/bench .venv/bin/python -m bench.batch "
        f"--chunk-size {args.chunk_size} --repeat {args.repeat}" + (f" --workers {args.workers}" if speedups else "")
    )
    text = "\n".join(
        [
            f"## Monthly batch assembly, {size:,} applications ({product.rows:,} diagnosed moved)",
            "",
            "| | rows | seconds | rows/s | peak RSS (MB) |",
            "|---|---:|---:|---:|---:|",
            *[
                line
                for n, (p, b, par) in enumerate(runs, 1)
                for line in (
                    f"| round {n}: product `batch_assemble` (chunk {args.chunk_size}) | {p.rows:,} | "
                    f"{p.seconds:.1f} | {p.rate:,.0f} | {p.peak_mb:.0f} (start {p.start_mb:.0f}) |",
                    f"| round {n}: baseline SQL (one statement per region) | {b.rows:,} | {b.seconds:.1f} | "
                    f"{b.rate:,.0f} | {b.peak_mb:.0f} (start {b.start_mb:.0f}) |",
                    *(
                        [
                            f"| round {n}: product, regions over {args.workers} workers | {par.rows:,} | "
                            f"{par.seconds:.1f} | {par.rate:,.0f} | {par.peak_mb:.0f} (start {par.start_mb:.0f}) |"
                        ]
                        if par is not None
                        else []
                    ),
                )
            ],
            "",
            f"**Ratio product/baseline (median of {len(rounds)} rounds): {median_ratio:.2f}×** "
            f"(rounds: {', '.join(f'{r:.2f}' for r in ratios)}) "
            "(target ≥ 0.5×, aim 0.8×; worker memory under 300 MB).",
            *(
                [
                    "",
                    f"Regions shared out over {args.workers} workers (threads with their own database connections, "
                    "as `assemble_due_batches` shares them over Celery worker processes): "
                    f"{speedups[len(speedups) // 2]:.2f}× the one-worker rate (median; rounds "
                    f"{', '.join(f'{r:.2f}' for r in speedups)}), PostgreSQL on the same 2 cores.",
                ]
                if speedups
                else []
            ),
            "",
            "```",
            command,
            "```",
            "",
            f"- data: {counts['enrollment_person']:,} persons, {size:,} applications, "
            f"{counts['enrollment_auditentry']:,} audit rows (bench.generate); every moved application gets a "
            "review item and an audit row on both sides, checked equal (count and id checksum)",
            *[f"- {fact}" for fact in common.machine_lines()],
            f"- measured {dt.date.today().isoformat()}",
        ]
    )
    print(text)
    if not args.no_docs:
        common.write_section(f"bench_batch_{label}", text)


if __name__ == "__main__":
    main()
