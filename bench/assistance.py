"""Costs and assistance at a prefecture's scale: a month of settlements generated with COPY, then the product's
paths against hand-written set-based SQL in the same run:

1. the file import (dry run + commit through ``settlement_import_run``) of ``--import-rows`` rows, against
   COPY of the same CSV into a staging table + one INSERT … SELECT joined to the persons;
2. the assistance computation of the month (``compute_assistance``), against one INSERT … SELECT with the
   category ratio looked up per row into a temporary table (same rounding: numeric ``round`` = ROUND_HALF_UP
   for amounts ≥ 0), and against the same SQL writing what the product writes (the lines table, the
   settlements marked computed; rolled back);
3. the high-cost alert scan (``alerts_scan``), against one INSERT … SELECT … GROUP BY … HAVING … ON CONFLICT.

The product's and the baseline's totals are compared (the same amounts, the same alerts). Peak memory of the
product is sampled during each path.

    DATABASE_URL=postgres://…/bench .venv/bin/python -m bench.assistance --rows 2000000 --write-docs
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import random
import time
from decimal import Decimal
from typing import Any

from bench.common import RssSampler, machine_lines, ratio, setup_django, vacuum_analyze, write_section

PERIOD = dt.date(2026, 3, 1)
RATIOS_SQL = (
    "CASE c.category WHEN 'extreme_hardship' THEN 1.000 WHEN 'orphan' THEN 1.000 WHEN 'minimum_living' THEN 0.750 "
    "WHEN 'poverty_alleviated' THEN 0.750 WHEN 'monitored' THEN 0.700 END"
)


def _region() -> Any:
    from enrollment.models import Region

    province, _ = Region.objects.get_or_create(code="530000", defaults={"name": "云南省"})
    region, _ = Region.objects.get_or_create(code="532300", defaults={"name": "楚雄彝族自治州", "parent": province})
    return region


def _id_number(n: int) -> str:
    """A valid 居民身份证号, unique per n: a birth place stdnum knows for every year, birth date and sequence from n."""
    from stdnum.cn import ric

    body = f"110101{dt.date(1930, 1, 1) + dt.timedelta(days=n // 1000):%Y%m%d}{n % 1000:03d}"
    return body + ric.calc_check_digit(body + "0")


def generate(*, rows: int, seed: int = 2026, vacuum: bool = True) -> dict[str, int]:
    """COPY ``rows`` settlements of PERIOD for rows/10 new persons (a fifth holding a category)."""
    from django.db import connection
    from django.utils import timezone

    from assistance.services import system_user
    from bench.common import max_id

    rng = random.Random(seed)
    region = _region()
    system = system_user()
    base = max_id("enrollment_person") + 1
    persons = max(1, rows // 10)
    now = timezone.now()
    categories = ("extreme_hardship", "orphan", "minimum_living", "poverty_alleviated", "monitored")
    first_serial = max_id("assistance_settlement") + 1
    with connection.cursor() as cursor:
        with cursor.copy(
            "COPY enrollment_person (id, id_number, name, sex, birth_date, insurance_number, insurance_type, "
            "insured_region_id, phone, support_categories, created_at, updated_at) FROM STDIN"
        ) as copy:
            for i in range(persons):
                copy.write_row(
                    (
                        base + i,
                        _id_number(base + i),
                        f"参保人{i}",
                        "1",
                        dt.date(1960, 1, 1),
                        "",
                        "390",
                        region.pk,
                        "",
                        "[]",
                        now,
                        now,
                    )
                )
        with cursor.copy(
            "COPY enrollment_personcategory (person_id, category, valid_from, valid_until, source, reference, "
            "recorded_at) FROM STDIN"
        ) as copy:
            for i in range(0, persons, 5):
                copy.write_row((base + i, categories[i % 5], dt.date(2025, 1, 1), None, "bench", "", now))
        with cursor.copy(
            "COPY assistance_settlement (serial_number, person_id, region_id, settled_on, period, institution_code, "
            "institution_name, institution_level, benefit, disease_code, total_cost, fund_paid, out_of_pocket, "
            "source, recorded_by_id, recorded_at) FROM STDIN"
        ) as copy:
            levels = ("village", "township", "county", "city", "province")
            for n in range(rows):
                person = base + n % persons
                big = person % 50 == 0 and n < persons  # 2 % of persons: one large bill → alerts
                oop = Decimal(rng.randint(800_000, 900_000) if big else rng.randint(1_000, 60_000)) / 100
                fund = Decimal(rng.randint(0, 80_000)) / 100
                two = n % 7 == 0
                copy.write_row(
                    (
                        f"BENCH-{first_serial + n:012d}",
                        person,
                        region.pk,
                        PERIOD + dt.timedelta(days=n % 28),
                        PERIOD,
                        f"H{n % 400:05d}",
                        "",
                        levels[n % 5],
                        "two_diseases" if two else "",
                        "M03900" if two else "",
                        oop + fund,
                        fund,
                        oop,
                        "bench",
                        system.pk,
                        now,
                    )
                )
    if vacuum:  # not inside a test's transaction
        vacuum_analyze("assistance_settlement", "enrollment_person", "enrollment_personcategory")
    return {"rows": rows, "persons": persons}


def reset() -> None:
    """Remove what earlier runs left (the assistance tables are this benchmark's alone in its database, and the
    persons and categories the generator made): every run starts from the same empty month. Triggers are off
    for this one transaction (the assistance audit trail is append-only)."""
    from bench.common import run_sql_without_triggers

    run_sql_without_triggers(
        [
            ("DELETE FROM assistance_assistanceauditentry", []),
            ("DELETE FROM assistance_highcostalert", []),
            ("DELETE FROM assistance_assistanceline", []),
            ("DELETE FROM assistance_settlement", []),
            ("DELETE FROM assistance_settlementimportrow", []),
            ("DELETE FROM assistance_settlementimport", []),
            ("DELETE FROM enrollment_personcategory WHERE source = 'bench'", []),
            (
                "DELETE FROM enrollment_person p USING enrollment_region r WHERE r.id = p.insured_region_id "
                "AND r.code = '532300' AND p.name LIKE '参保人%%' AND NOT EXISTS "
                "(SELECT 1 FROM enrollment_personcategory c WHERE c.person_id = p.id)",
                [],
            ),
        ]
    )
    vacuum_analyze(
        "assistance_settlement", "assistance_assistanceline", "enrollment_person", "enrollment_personcategory"
    )


def _scalar(sql: str, params: list[Any] | None = None) -> Any:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(sql, params or [])
        return cursor.fetchone()[0]


def compute_baseline() -> tuple[float, Decimal]:
    from django.db import connection, transaction

    start = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS bench_lines")
        cursor.execute(
            f"""
            CREATE TEMP TABLE bench_lines AS
            WITH facts AS (
              SELECT s.id, s.out_of_pocket,
                CASE WHEN s.benefit = 'two_diseases' AND s.institution_level IN ('village', 'township')
                     THEN LEAST(GREATEST(round(s.total_cost * 0.900, 2) - s.fund_paid, 0), s.out_of_pocket)
                     ELSE 0 END AS top_up,
                (SELECT max({RATIOS_SQL}) FROM enrollment_personcategory c
                  WHERE c.person_id = s.person_id AND c.valid_from <= s.settled_on
                    AND (c.valid_until IS NULL OR c.valid_until >= s.settled_on)) AS ratio
              FROM assistance_settlement s WHERE s.period = %s AND s.computed_at IS NULL)
            SELECT id, top_up, round((out_of_pocket - top_up) * ratio, 2) AS amount FROM facts
            """,
            [PERIOD],
        )
        cursor.execute("SELECT coalesce(sum(top_up), 0) + coalesce(sum(amount), 0) FROM bench_lines")
        total = cursor.fetchone()[0]
    return time.perf_counter() - start, total


def compute_baseline_writes(*, vacuum: bool = True) -> float:
    """The same computation with the product's writes: the lines inserted into the lines table (its indexes,
    unique constraints and foreign keys) and the settlements marked computed, two statements for the whole
    month, then rolled back (and the table vacuumed) so that the product starts from the same state."""
    from django.db import connection, transaction

    start = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO assistance_assistanceline (settlement_id, person_id, region_id, period, kind, category,
              ratio, base, deductible_applied, amount, created_at)
            WITH facts AS (
              SELECT s.id, s.person_id, s.region_id, s.period, s.out_of_pocket, s.total_cost,
                s.benefit = 'two_diseases' AND s.institution_level IN ('village', 'township') AS two,
                CASE WHEN s.benefit = 'two_diseases' AND s.institution_level IN ('village', 'township')
                     THEN LEAST(GREATEST(round(s.total_cost * 0.900, 2) - s.fund_paid, 0), s.out_of_pocket)
                     ELSE 0 END AS top_up,
                (SELECT c.category FROM enrollment_personcategory c
                  WHERE c.person_id = s.person_id AND c.valid_from <= s.settled_on
                    AND (c.valid_until IS NULL OR c.valid_until >= s.settled_on)
                  ORDER BY {RATIOS_SQL} DESC, c.category LIMIT 1) AS category
              FROM assistance_settlement s WHERE s.period = %s AND s.computed_at IS NULL),
            ratios AS (SELECT f.*, {RATIOS_SQL.replace("c.category", "f.category")} AS ratio FROM facts f)
            SELECT id, person_id, region_id, period, 'two_diseases', '', 0.900, total_cost, 0, top_up, now()
              FROM ratios WHERE two
            UNION ALL
            SELECT id, person_id, region_id, period, 'category', category, ratio, out_of_pocket - top_up, 0,
                   round((out_of_pocket - top_up) * ratio, 2), now()
              FROM ratios WHERE category IS NOT NULL
            """,
            [PERIOD],
        )
        cursor.execute(
            "UPDATE assistance_settlement SET computed_at = now() WHERE period = %s AND computed_at IS NULL", [PERIOD]
        )
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # the foreign keys are checked, as at the product's commits
        elapsed = time.perf_counter() - start
        transaction.set_rollback(True)
    if vacuum:
        vacuum_analyze("assistance_settlement", "assistance_assistanceline")
    return elapsed


def alerts_baseline() -> tuple[float, int]:
    from django.db import connection, transaction

    start = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS bench_alerts")
        cursor.execute(
            "CREATE TEMP TABLE bench_alerts (person_id bigint, period date, kind text, amount numeric, "
            "UNIQUE (person_id, period, kind))"
        )
        cursor.execute(
            "INSERT INTO bench_alerts SELECT person_id, period, 'month', sum(out_of_pocket) "
            "FROM assistance_settlement WHERE period = %s GROUP BY person_id, period "
            "HAVING sum(out_of_pocket) > 7000 ON CONFLICT DO NOTHING",
            [PERIOD],
        )
        count = cursor.rowcount
    return time.perf_counter() - start, count


def _import_csv(rows: int, seed: int) -> bytes:
    """A settlement file of ``rows`` lines for persons the generator made (the roster column names)."""
    from enrollment.models import Person

    rng = random.Random(seed)
    numbers = list(
        Person.objects.filter(insured_region=_region()).values_list("id_number", flat=True).order_by("-pk")[:5000]
    )
    out = io.StringIO()
    out.write("结算流水号,身份证号,结算日期,机构编码,机构级别,医疗费总额,基金支付,个人自付\n")
    stamp = int(time.time())
    for n in range(rows):
        oop = Decimal(rng.randint(1_000, 60_000)) / 100
        out.write(f"IMP-{stamp}-{n},{numbers[n % len(numbers)]},2026-03-{n % 28 + 1:02d},H1,county,{oop},0.00,{oop}\n")
    return out.getvalue().encode("utf-8")


def import_compare(rows: int, seed: int = 7) -> dict[str, Any]:
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction

    from assistance import services
    from assistance.models import SettlementImportState

    content = _import_csv(rows, seed)
    admin, _ = get_user_model().objects.get_or_create(username="bench-admin", defaults={"is_superuser": True})
    with RssSampler() as rss:
        start = time.perf_counter()
        record = services.settlement_import_create(name="bench.csv", content=content, actor=admin, queue=False)
        services.settlement_import_run(import_id=record.pk)
        services.settlement_import_request_commit(import_id=record.pk, actor=admin, queue=False)
        record = services.settlement_import_run(import_id=record.pk)
        product = time.perf_counter() - start
    assert record.state == SettlementImportState.COMMITTED, record.error
    start = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "CREATE TEMP TABLE bench_staging (serial text, id_number text, settled_on date, code text, level text, "
            "total numeric, fund numeric, oop numeric) ON COMMIT DROP"
        )
        with cursor.copy("COPY bench_staging FROM STDIN WITH (FORMAT csv, HEADER true)") as copy:
            copy.write(content.replace(b"IMP-", b"BASE-"))
        cursor.execute(
            "CREATE TEMP TABLE bench_imported ON COMMIT DROP AS SELECT b.serial, p.id, p.insured_region_id, "
            "b.settled_on, b.total, b.fund, b.oop FROM bench_staging b JOIN enrollment_person p "
            "ON p.id_number = b.id_number WHERE b.oop <= b.total AND b.fund <= b.total"
        )
        baseline_rows = cursor.rowcount
    baseline = time.perf_counter() - start
    return {
        "rows": rows,
        "product_s": product,
        "baseline_s": baseline,
        "created": record.counts["created"],
        "baseline_rows": baseline_rows,
        "peak_mb": rss.peak_mb - rss.start_mb,
    }


def compare(*, rows: int, import_rows: int, vacuum: bool = True) -> dict[str, Any]:
    from django.db.models import Sum

    from assistance import services
    from assistance.models import AssistanceLine, HighCostAlert

    generated = generate(rows=rows, vacuum=vacuum)
    baseline_compute, baseline_total = compute_baseline()
    baseline_writes = compute_baseline_writes(vacuum=vacuum)
    system = services.system_user()
    with RssSampler() as compute_rss:
        start = time.perf_counter()
        computed = services.compute_assistance(actor=system, period=PERIOD)
        product_compute = time.perf_counter() - start
    product_total = AssistanceLine.objects.filter(period=PERIOD).aggregate(t=Sum("amount"))["t"] or Decimal(0)
    baseline_alerts, baseline_count = alerts_baseline()
    with RssSampler() as alert_rss:
        start = time.perf_counter()
        scan = services.alerts_scan(period=PERIOD, actor=system)
        product_alerts = time.perf_counter() - start
    return {
        **generated,
        "computed": computed,
        "compute": (product_compute, baseline_compute, product_total, baseline_total, compute_rss),
        "compute_writes": baseline_writes,
        "alerts": (product_alerts, baseline_alerts, scan.candidates["month"], baseline_count, alert_rss),
        "alerts_in_db": HighCostAlert.objects.filter(period=PERIOD).count(),
        "import": import_compare(import_rows) if import_rows else None,
    }


def report(result: dict[str, Any], command: str) -> str:
    pc, bc, pt, bt, crss = result["compute"]
    pa, ba, pn, bn, arss = result["alerts"]
    lines = [
        "## Costs and assistance (bench/assistance.py)",
        "",
        f"`{command}`",
        "",
        f"{result['rows']:,} settlement rows of one month for {result['persons']:,} persons (COPY), a fifth of them "
        "holding a support category; product paths against set-based SQL in the same run.",
        "",
        "| path | product | SQL baseline | ratio | product peak memory (above start) | same result |",
        "|---|---|---|---|---|---|",
        f"| assistance computed ({result['computed']:,} settlements) | {pc:.1f} s | {bc:.1f} s | {ratio(pc, bc):.1f}× "
        f"| {crss.peak_mb - crss.start_mb:.0f} MB | {'yes' if pt == bt else 'NO'} (total {pt} / {bt}) |",
        f"| the same, the baseline writing what the product writes (lines table, settlements marked) "
        f"| {pc:.1f} s | {result['compute_writes']:.1f} s | {ratio(pc, result['compute_writes']):.1f}× | | |",
        f"| high-cost alert scan | {pa:.1f} s | {ba:.1f} s | {ratio(pa, ba):.1f}× "
        f"| {arss.peak_mb - arss.start_mb:.0f} MB | {'yes' if pn == bn else 'NO'} ({pn} / {bn} alerts) |",
    ]
    imported = result.get("import")
    if imported:
        lines.append(
            f"| file import, dry run + commit ({imported['rows']:,} rows) | {imported['product_s']:.1f} s "
            f"| {imported['baseline_s']:.1f} s | {ratio(imported['product_s'], imported['baseline_s']):.1f}× "
            f"| {imported['peak_mb']:.0f} MB | {'yes' if imported['created'] == imported['baseline_rows'] else 'NO'} "
            f"({imported['created']} / {imported['baseline_rows']} rows) |"
        )
    lines += ["", *[f"- {fact}" for fact in machine_lines()]]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--import-rows", type=int, default=20_000)
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    setup_django()
    reset()
    result = compare(rows=args.rows, import_rows=args.import_rows)
    command = (
        "DATABASE_URL=postgres://…/bench .venv/bin/python -m bench.assistance "
        f"--rows {args.rows} --import-rows {args.import_rows}"
    )
    text = report(result, command)
    print(text)
    if args.write_docs:
        write_section("assistance", text)


if __name__ == "__main__":
    main()
