"""Benchmark: the daily validity sweep (expiry, expiring, reminder rows) against hand-written SQL.

    DATABASE_URL=postgres://…/bench .venv/bin/python -m bench.sweep [--no-docs]

On the data of ``bench.generate`` (validity ends spread from two months ago to three years ahead),
the sweep for today runs once through ``enrollment.services.validity_sweep`` (chunked, the product
path, sends not enqueued) and once as set-based SQL per rule group: UPDATE … RETURNING feeding the
audit INSERT for the two transitions, then one INSERT … SELECT … ON CONFLICT DO NOTHING of three
channel rows per due enrollment and offset. It is a catch-up sweep (the first one over generated
data), so it moves far more rows than a steady-state day. The database is put back between runs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
from dataclasses import dataclass
from typing import Any

from bench import common

ACTIVE = "('submitted', 'diagnosed', 'in_review', 'returned', 'approved', 'expiring')"

TRANSITION_SQL = """
WITH candidates AS (
    SELECT a.id, a.state FROM enrollment_application a
    WHERE a.region_id = ANY(%(regions)s) AND a.state IN ({sources}) AND a.valid_until IS NOT NULL
      AND a.valid_until {op} %(limit)s {extra_where}
    FOR UPDATE OF a
), moved AS (
    UPDATE enrollment_application a SET state = %(target)s, updated_at = now() {extra_set}
    FROM candidates c WHERE a.id = c.id
    RETURNING a.id, c.state AS from_state
)
INSERT INTO enrollment_auditentry
    (transition, from_state, to_state, is_system, at, reason_code, reason, stage, details, actor_id,
     application_id, batch_id)
SELECT %(transition)s, m.from_state, %(target)s, true, now(), '', '', '',
    jsonb_build_object('sweep_date', %(day_text)s::text), %(actor)s, m.id, NULL
FROM moved m
"""

NO_RENEWAL_PENDING = (
    f"AND NOT EXISTS (SELECT 1 FROM enrollment_application r WHERE r.renews_id = a.id AND r.state IN {ACTIVE})"
)

REMINDER_SQL = f"""
INSERT INTO enrollment_reminder
    (application_id, offset_days, channel, due_on, valid_until, status, recipient, subject, message, attempts,
     last_error, created_at, updated_at, sent_at, institution_id)
SELECT a.id, %(offset)s, ch.channel, a.valid_until - %(offset)s, a.valid_until,
    CASE WHEN %(skipped)s THEN 'skipped' WHEN ch.channel = 'in_app' THEN 'sent'
         WHEN ch.recipient = '' THEN 'skipped' ELSE 'pending' END,
    ch.recipient, ch.subject, ch.message, 0,
    CASE WHEN %(skipped)s THEN %(skip_reason)s WHEN ch.channel = 'in_app' THEN ''
         WHEN ch.recipient = '' THEN ch.missing ELSE '' END,
    now(), now(), CASE WHEN NOT %(skipped)s AND ch.channel = 'in_app' THEN now() END, a.filing_institution_id
FROM enrollment_application a
JOIN enrollment_person p ON p.id = a.person_id
JOIN enrollment_disease d ON d.id = a.disease_id
JOIN enrollment_institution i ON i.id = a.filing_institution_id
LEFT JOIN LATERAL (
    SELECT string_agg(u.email, ',' ORDER BY u.email) AS emails
    FROM enrollment_staffprofile sp JOIN auth_user u ON u.id = sp.user_id
    JOIN auth_user_groups ug ON ug.user_id = u.id JOIN auth_group g ON g.id = ug.group_id
    WHERE sp.institution_id = a.filing_institution_id AND u.is_active AND u.email <> '' AND g.name = 'clinic_staff'
) e ON true
CROSS JOIN LATERAL (VALUES
    ('sms', btrim(p.phone), '',
     format('【医保】您的%%s门诊慢特病待遇将于%%s到期，还剩%%s天，请到%%s办理复审。', d.name, a.valid_until,
            a.valid_until - %(day)s::date, i.name), 'no mobile number on file'),
    ('email', coalesce(e.emails, ''), format('%%s %%s 到期 %%s', d.name, left(p.id_number, 3), a.valid_until),
     format('#%%s %%s %%s %%s 将于 %%s 到期（%%s 天）', a.id, p.name, left(p.id_number, 3), d.name, a.valid_until,
            a.valid_until - %(day)s::date), 'no clinic staff e-mail address'),
    ('in_app', '', format('%%s %%s 到期 %%s', d.name, left(p.id_number, 3), a.valid_until),
     format('#%%s %%s %%s %%s 将于 %%s 到期（%%s 天）', a.id, p.name, left(p.id_number, 3), d.name, a.valid_until,
            a.valid_until - %(day)s::date), '')
) AS ch(channel, recipient, subject, message, missing)
WHERE a.region_id = ANY(%(regions)s) AND a.state IN ('approved', 'expiring') AND a.valid_until IS NOT NULL
  {NO_RENEWAL_PENDING}
  AND NOT EXISTS (SELECT 1 FROM enrollment_reminder x WHERE x.application_id = a.id AND x.offset_days = %(offset)s)
  AND a.valid_until <= %(day)s::date + %(offset)s {{window}}
ON CONFLICT DO NOTHING
"""


@dataclass
class Side:
    expired: int
    expiring: int
    reminders: int
    seconds: float
    peak_mb: float
    start_mb: float
    checksum: int

    @property
    def rows(self) -> int:
        return self.expired + self.expiring + self.reminders

    @property
    def rate(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0


def _outcome(mark: dict[str, int]) -> tuple[int, int, int, int]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "select count(*) filter (where transition = 'expire'), count(*) filter (where transition = "
            "'mark_expiring'), coalesce(sum(application_id), 0) from enrollment_auditentry where id > %s",
            [mark["enrollment_auditentry"]],
        )
        expired, expiring, checksum = cursor.fetchone()
        cursor.execute("select count(*) from enrollment_reminder where id > %s", [mark["enrollment_reminder"]])
        return expired, expiring, cursor.fetchone()[0], checksum


def run_product(*, day: dt.date, actor: Any, chunk_size: int) -> Side:
    from enrollment.services import validity_sweep

    mark = marks()
    with common.RssSampler() as rss:
        started = time.perf_counter()
        validity_sweep(day=day, actor=actor, chunk_size=chunk_size, enqueue=False)
        seconds = time.perf_counter() - started
    expired, expiring, reminders, checksum = _outcome(mark)
    return Side(expired, expiring, reminders, seconds, rss.peak_mb, rss.start_mb, checksum)


def run_baseline(*, day: dt.date, actor: Any) -> Side:
    from django.db import connection, transaction

    from enrollment.services.sweep import _sweep_rule_groups

    mark = marks()
    with common.RssSampler() as rss:
        started = time.perf_counter()
        for rules, region_ids in _sweep_rule_groups().items():
            base = {"regions": region_ids, "actor": actor.pk, "day_text": day.isoformat()}
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(
                    TRANSITION_SQL.format(
                        sources="'approved', 'expiring'",
                        op="<",
                        extra_where=NO_RENEWAL_PENDING,
                        extra_set=", ended_on = a.valid_until",
                    ),
                    {
                        **base,
                        "limit": day - dt.timedelta(days=rules.grace_days),
                        "target": "expired",
                        "transition": "expire",
                    },
                )
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(
                    TRANSITION_SQL.format(sources="'approved'", op="<=", extra_where="", extra_set=""),
                    {
                        **base,
                        "limit": day + dt.timedelta(days=rules.renewal_window_days),
                        "target": "expiring",
                        "transition": "mark_expiring",
                    },
                )
            offsets = rules.reminder_offsets
            for index, offset in enumerate(offsets):
                later = offsets[index + 1] if index + 1 < len(offsets) else None
                params = {"regions": region_ids, "day": day, "offset": offset, "later": later}
                with transaction.atomic(), connection.cursor() as cursor:
                    if later is not None:
                        cursor.execute(
                            REMINDER_SQL.format(window="AND a.valid_until <= %(day)s::date + %(later)s"),
                            {**params, "skipped": True, "skip_reason": f"superseded by the {later}-day reminder"},
                        )
                    cursor.execute(
                        REMINDER_SQL.format(
                            window="AND a.valid_until > %(day)s::date + %(later)s" if later is not None else ""
                        ),
                        {**params, "skipped": False, "skip_reason": ""},
                    )
        seconds = time.perf_counter() - started
    expired, expiring, reminders, checksum = _outcome(mark)
    return Side(expired, expiring, reminders, seconds, rss.peak_mb, rss.start_mb, checksum)


def marks() -> dict[str, int]:
    return {table: common.max_id(table) for table in ("enrollment_auditentry", "enrollment_reminder")}


def reset(mark: dict[str, int], *, vacuum: bool = True) -> None:
    """Put every application the run moved back in its state before the run; remove the run's rows."""
    common.run_sql_without_triggers(
        [
            (
                "UPDATE enrollment_application a SET state = e.from_state, ended_on = NULL FROM ("
                " SELECT DISTINCT ON (application_id) application_id, from_state FROM enrollment_auditentry"
                " WHERE id > %s AND transition IN ('expire', 'mark_expiring') ORDER BY application_id, id"
                ") e WHERE a.id = e.application_id",
                [mark["enrollment_auditentry"]],
            ),
            ("DELETE FROM enrollment_reminder WHERE id > %s", [mark["enrollment_reminder"]]),
            ("DELETE FROM enrollment_auditentry WHERE id > %s", [mark["enrollment_auditentry"]]),
        ]
    )
    if vacuum:
        common.vacuum_analyze("enrollment_application", "enrollment_auditentry", "enrollment_reminder")


def compare(*, chunk_size: int = 1000, day: dt.date | None = None, vacuum: bool = True) -> tuple[Side, Side]:
    from django.utils import timezone

    from enrollment.services import get_system_user

    actor = get_system_user()
    day = day or timezone.localdate()
    mark = marks()
    product = run_product(day=day, actor=actor, chunk_size=chunk_size)
    reset(mark, vacuum=vacuum)
    baseline = run_baseline(day=day, actor=actor)
    reset(mark, vacuum=vacuum)
    return product, baseline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunk-size", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3, help="rounds of product + baseline (shared machine: noisy)")
    parser.add_argument("--no-docs", action="store_true")
    parser.add_argument("--label", default="")
    args = parser.parse_args()
    common.setup_django()
    counts = common.table_counts()
    rounds = [compare(chunk_size=args.chunk_size) for _round in range(args.repeat)]
    ratios = sorted(common.ratio(p.rate, b.rate) for p, b in rounds)
    median_ratio = ratios[len(ratios) // 2]
    product, baseline = rounds[0]
    for p, b in rounds:
        assert (p.rows, p.checksum) == (b.rows, b.checksum) == (product.rows, product.checksum), (p, b)
    same = (product.expired, product.expiring, product.reminders, product.checksum) == (
        baseline.expired,
        baseline.expiring,
        baseline.reminders,
        baseline.checksum,
    )
    assert same, (product, baseline)
    size = counts["enrollment_application"]
    label = args.label or f"{size // 1000}k"

    def row(name: str, side: Side) -> str:
        return (
            f"| {name} | {side.expired:,} | {side.expiring:,} | {side.reminders:,} | {side.seconds:.1f} | "
            f"{side.rate:,.0f} | {side.peak_mb:.0f} (start {side.start_mb:.0f}) |"
        )

    text = "\n".join(
        [
            f"## Validity sweep (catch-up day), {size:,} applications",
            "",
            "| | expired | expiring | reminder rows | seconds | rows/s | peak RSS (MB) |",
            "|---|---:|---:|---:|---:|---:|---:|",
            *[
                line
                for n, (p, b) in enumerate(rounds, 1)
                for line in (
                    row(f"round {n}: product `validity_sweep` (chunk {args.chunk_size})", p),
                    row(f"round {n}: baseline SQL (set-based per rule group)", b),
                )
            ],
            "",
            f"**Ratio product/baseline (median of {len(rounds)} rounds): {median_ratio:.2f}×** "
            f"(rounds: {', '.join(f'{r:.2f}' for r in ratios)}; target ≥ 0.5×).",
            "",
            "```",
            f"$ DATABASE_URL=postgres://…/bench .venv/bin/python -m bench.sweep "
            f"--chunk-size {args.chunk_size} --repeat {args.repeat}",
            "```",
            "",
            f"- data: {counts['enrollment_person']:,} persons, {size:,} applications, "
            f"{counts['enrollment_auditentry']:,} audit rows (bench.generate); rows = transitions (each with its "
            "audit row) + reminder rows; both sides checked equal (counts and id checksum)",
            *[f"- {fact}" for fact in common.machine_lines()],
            f"- measured {dt.date.today().isoformat()}",
        ]
    )
    print(text)
    if not args.no_docs:
        common.write_section(f"bench_sweep_{label}", text)


if __name__ == "__main__":
    main()
