"""The hand-written SQL of the assistance app, as ``(sql, params)`` builders run by assistance/services.py.

The assistance computation of a chunk of settlements is one ``INSERT … SELECT``: the rule of the most generous
category held on the settlement date (a correlated look-up in the person's dated categories), the 两病 top-up at
village/township level, then the year's deductible and cap as running sums per person and calendar year
(window functions). The same statement runs on PostgreSQL and SQLite: every amount is carried as whole fen
(``BIGINT``) and every ratio as thousandths, so the arithmetic is exact integer arithmetic on both (SQLite
keeps decimals as floats), and ``(fen × ratio + 500) / 1000`` is ROUND_HALF_UP to the fen for amounts ≥ 0, as
``assistance.rules.yuan``. ``assistance.rules.settlement_lines`` stays the reference: tests compare the two.

The running-sum closed forms hold when the deductible and the cap are the same on every settlement of a
person's year that has a rule (``used_i = max(used_0, min(D, used_0 + Σ eligible))``, the same for the cap);
a person-year where the held category changes to one with another deductible or cap is flagged ``irregular``
and left to the reference (``irregular_ids``), which is rare and exact.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from django.db import connection

from assistance.models import PRIMARY_CARE_LEVELS, AssistanceLine, Benefit, LineKind, Settlement
from assistance.rules import Terms
from enrollment.models import PersonCategory

SQL = tuple[str, list[Any]]


def _table(model: Any) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def _pg() -> bool:
    return connection.vendor == "postgresql"


def _least(a: str, b: str) -> str:
    return f"{'LEAST' if _pg() else 'MIN'}({a}, {b})"


def _greatest(a: str, b: str) -> str:
    return f"{'GREATEST' if _pg() else 'MAX'}({a}, {b})"


def _fen(column: str) -> str:
    """A DecimalField(…, 2) as whole fen; exact on SQLite too (a stored 2-place amount is within 1e-6 of it)."""
    return f"CAST(ROUND({column} * 100) AS BIGINT)"


def _year(column: str) -> str:
    if _pg():
        return f"CAST(EXTRACT(YEAR FROM {column}) AS INTEGER)"
    return f"CAST(SUBSTR({column}, 1, 4) AS INTEGER)"


def id_list(ids: Sequence[int]) -> tuple[str, Any]:
    """``IN (…)`` with one parameter however many ids (an array on PostgreSQL, a JSON list on SQLite)."""
    if _pg():
        return "= ANY(%s)", [list(ids)]
    return "IN (SELECT value FROM json_each(%s))", json.dumps(list(ids))


def _milli(value: Decimal) -> int:
    return int((value * 1000).to_integral_value())


def _cents(value: Decimal | None) -> int | None:
    return None if value is None else int((value * 100).to_integral_value())


def rule_rows(terms_by_region: dict[int, Terms]) -> tuple[list[tuple[Any, ...]], list[tuple[int, int]]]:
    """Per region: (region, category, rank, ratio ‰, deductible fen, cap fen) with rank 1 the most generous
    (highest ratio, then lowest deductible, then highest cap, then the category's name, as ``best_rule``
    breaks ties); and (region, 两病 ratio ‰)."""
    rules: list[tuple[Any, ...]] = []
    two: list[tuple[int, int]] = []
    for region_id, terms in sorted(terms_by_region.items()):
        ordered = sorted(
            terms.rules.values(),
            key=lambda r: (
                -r.ratio,
                r.deductible,
                -(r.annual_cap if r.annual_cap is not None else Decimal("1e12")),
                r.category,
            ),
        )
        for rank, rule in enumerate(ordered, 1):
            rules.append(
                (
                    region_id,
                    str(rule.category),
                    rank,
                    _milli(rule.ratio),
                    _cents(rule.deductible),
                    _cents(rule.annual_cap),
                )
            )
        two.append((region_id, _milli(terms.two_diseases_ratio)))
    return rules, two


def _values(rows: Sequence[tuple[Any, ...]], casts: Sequence[str]) -> tuple[str, list[Any]]:
    row = "(" + ", ".join(f"CAST(%s AS {cast})" for cast in casts) + ")"
    params: list[Any] = []
    for values in rows:
        params.extend(values)
    return ", ".join([row] * len(rows)), params


def _ruled_cte(settlement_ids: Sequence[int], terms_by_region: dict[int, Terms]) -> SQL:
    """``WITH … ruled AS (…)``: one row per settlement of ``settlement_ids`` with its amounts in fen, the 两病
    top-up, its rule (or none), the person-year's totals so far and the running sums, and ``irregular``."""
    rules, two = rule_rows(terms_by_region)
    if not rules:  # no region: keep the VALUES well-formed, nothing joins to it
        rules, two = [(0, "", 0, 0, 0, None)], [(0, 0)]
    rules_values, rules_params = _values(rules, ("BIGINT", "VARCHAR(30)", "INTEGER", "BIGINT", "BIGINT", "BIGINT"))
    two_values, two_params = _values(two, ("BIGINT", "BIGINT"))
    ids_sql, ids_param = id_list(settlement_ids)
    settlement, line, category = _table(Settlement), _table(AssistanceLine), _table(PersonCategory)
    primary = ", ".join(f"'{level}'" for level in PRIMARY_CARE_LEVELS)
    sql = f"""
WITH rules (region_id, category, rank, ratio, deductible, cap) AS (VALUES {rules_values}),
two (region_id, ratio) AS (VALUES {two_values}),
base AS (
  SELECT s.id, s.person_id, s.region_id, s.period, s.settled_on, s.serial_number,
         {_year("s.settled_on")} AS yr,
         {_fen("s.total_cost")} AS total, {_fen("s.fund_paid")} AS fund, {_fen("s.out_of_pocket")} AS oop,
         CASE WHEN s.benefit = '{Benefit.TWO_DISEASES.value}' AND s.institution_level IN ({primary})
              THEN 1 ELSE 0 END AS is_two,
         (SELECT MIN(r.rank) FROM {category} c JOIN rules r ON r.category = c.category AND r.region_id = s.region_id
           WHERE c.person_id = s.person_id AND c.valid_from <= s.settled_on
             AND (c.valid_until IS NULL OR c.valid_until >= s.settled_on)) AS rank
  FROM {settlement} s WHERE s.id {ids_sql}
),
years AS (
  SELECT l.person_id, {_year("ls.settled_on")} AS yr,
         CAST(SUM({_fen("l.deductible_applied")}) AS BIGINT) AS used, CAST(SUM({_fen("l.amount")}) AS BIGINT) AS paid
  FROM {line} l JOIN {settlement} ls ON ls.id = l.settlement_id
  WHERE l.kind = '{LineKind.CATEGORY.value}' AND l.person_id IN (SELECT person_id FROM base)
  GROUP BY l.person_id, {_year("ls.settled_on")}
),
topped AS (
  SELECT b.*, t.ratio AS two_ratio,
         CASE WHEN b.is_two = 1
              THEN {_least(_greatest("(b.total * t.ratio + 500) / 1000 - b.fund", "0"), "b.oop")}
              ELSE 0 END AS top_up
  FROM base b JOIN two t ON t.region_id = b.region_id
),
ruled AS (
  SELECT tp.*, tp.oop - tp.top_up AS rem, r.category, r.ratio, r.deductible, r.cap,
         CASE WHEN r.rank IS NULL THEN 0 ELSE 1 END AS has_rule,
         COALESCE(y.used, 0) AS used0, COALESCE(y.paid, 0) AS paid0,
         CAST(SUM(tp.oop - tp.top_up) OVER wc AS BIGINT) AS cum_rem,
         CASE WHEN r.rank IS NOT NULL
                   AND (MIN(r.deductible) OVER wp <> MAX(r.deductible) OVER wp
                        OR MIN(COALESCE(r.cap, -1)) OVER wp <> MAX(COALESCE(r.cap, -1)) OVER wp)
              THEN 1 ELSE 0 END AS irregular
  FROM topped tp
  LEFT JOIN rules r ON r.region_id = tp.region_id AND r.rank = tp.rank
  LEFT JOIN years y ON y.person_id = tp.person_id AND y.yr = tp.yr
  WINDOW wp AS (PARTITION BY tp.person_id, tp.yr, CASE WHEN r.rank IS NULL THEN 0 ELSE 1 END),
         wc AS (wp ORDER BY tp.settled_on, tp.serial_number ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
)"""
    return sql, [*rules_params, *two_params, ids_param]


def irregular_ids(*, settlement_ids: Sequence[int], terms_by_region: dict[int, Terms]) -> SQL:
    """The settlements (of ``settlement_ids``) whose person-year mixes deductibles or caps: for the reference."""
    cte, params = _ruled_cte(settlement_ids, terms_by_region)
    return f"{cte}\nSELECT id FROM ruled WHERE irregular = 1", params


def insert_lines(*, settlement_ids: Sequence[int], terms_by_region: dict[int, Terms], now: dt.datetime) -> SQL:
    """One INSERT … SELECT of the regular lines (两病 top-up, category assistance) of ``settlement_ids``, the
    irregular person-years left out; a line already there (unique per settlement and kind) is kept."""
    cte, params = _ruled_cte(settlement_ids, terms_by_region)
    used = f"{_greatest('used0', _least('deductible', 'used0 + cum_rem'))}"
    used_before = f"{_greatest('used0', _least('deductible', 'used0 + cum_rem - rem'))}"
    paid = f"{_greatest('paid0', _least('cap', 'paid0 + cum_raw'))}"
    paid_before = f"{_greatest('paid0', _least('cap', 'paid0 + cum_raw - raw'))}"
    line = _table(AssistanceLine)
    created = connection.ops.adapt_datetimefield_value(now)
    sql = f"""{cte},
deducted AS (
  SELECT ruled.*, {used} - {used_before} AS ded FROM ruled WHERE has_rule = 1 AND irregular = 0
),
raw AS (SELECT deducted.*, CAST(((rem - ded) * ratio + 500) / 1000 AS BIGINT) AS raw FROM deducted),
capped AS (
  SELECT raw.*, CAST(SUM(raw) OVER (PARTITION BY person_id, yr ORDER BY settled_on, serial_number
                                    ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS BIGINT) AS cum_raw
  FROM raw
),
new_lines AS (
  SELECT id, person_id, region_id, period, '{LineKind.TWO_DISEASES.value}' AS kind, '' AS category,
         two_ratio AS ratio, total AS base, 0 AS ded, top_up AS amount
  FROM ruled WHERE is_two = 1 AND irregular = 0
  UNION ALL
  SELECT id, person_id, region_id, period, '{LineKind.CATEGORY.value}', category, ratio, rem, ded,
         CASE WHEN cap IS NULL THEN raw ELSE {paid} - {paid_before} END
  FROM capped
)
INSERT INTO {line} (settlement_id, person_id, region_id, period, kind, category, ratio, base,
                    deductible_applied, amount, recognition_id, created_at)
SELECT id, person_id, region_id, period, kind, category, ratio / 1000.0, base / 100.0, ded / 100.0,
       amount / 100.0, NULL, %s
FROM new_lines WHERE 1 = 1
ON CONFLICT DO NOTHING"""
    return sql, [*params, created]


def mark_computed(*, settlement_ids: Sequence[int], now: dt.datetime) -> SQL:
    ids_sql, ids_param = id_list(settlement_ids)
    return (
        f"UPDATE {_table(Settlement)} SET computed_at = %s WHERE id {ids_sql} AND computed_at IS NULL",
        [connection.ops.adapt_datetimefield_value(now), ids_param],
    )


SETTLEMENT_COLUMNS = (
    "serial_number",
    "person_id",
    "region_id",
    "settled_on",
    "period",
    "institution_code",
    "institution_name",
    "institution_level",
    "institution_id",
    "benefit",
    "disease_code",
    "total_cost",
    "fund_paid",
    "out_of_pocket",
    "source",
)
# Rows per INSERT: within SQLite's 32,766 and PostgreSQL's 65,535 parameters per statement.
INSERT_ROWS = 1000


def insert_settlements(
    *, rows: Sequence[dict[str, Any]], import_id: int | None, recorded_by_id: int, recorded_at: dt.datetime
) -> SQL:
    """One multi-row INSERT of new settlements (≤ INSERT_ROWS); a serial number already stored (another sender
    meanwhile) is skipped by its unique index, and the rows this statement stored come back (``RETURNING``)."""
    ops = connection.ops
    stamp = ops.adapt_datetimefield_value(recorded_at)
    columns = (*SETTLEMENT_COLUMNS, "settlement_import_id", "recorded_by_id", "recorded_at")
    params: list[Any] = []
    for row in rows:
        for name in SETTLEMENT_COLUMNS:
            value = row[name]
            if name in ("settled_on", "period"):
                value = ops.adapt_datefield_value(value)
            elif name in ("total_cost", "fund_paid", "out_of_pocket"):
                value = ops.adapt_decimalfield_value(value, 12, 2)
            params.append(value)
        params.extend((import_id, recorded_by_id, stamp))
    placeholder = "(" + ", ".join(["%s"] * len(columns)) + ")"
    sql = (
        f"INSERT INTO {_table(Settlement)} ({', '.join(columns)}) VALUES {', '.join([placeholder] * len(rows))} "
        "ON CONFLICT (serial_number) DO NOTHING RETURNING id, serial_number"
    )
    return sql, params
