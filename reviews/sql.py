"""Every hand-written SQL statement of the reviews app, as ``(sql, params)`` builders (kernel.sql).

Batch assembly writes a chunk's review items and their ``enqueue`` audit rows set-based, from the chunk's
application ids; tests/reviews/test_assembly.py holds the rows equal to what the per-row path writes.
"""

from __future__ import annotations

from typing import Any

from django.db import connection

from enrollment.models import Application
from kernel.sql import Fragment, compose, sql_in, table
from reviews.models import ReviewItem


def _case_by_disease(values: dict[int, Any]) -> Fragment:
    """``CASE a.disease_id WHEN <id> THEN <value> … END`` with every id and value a parameter."""
    whens = [compose("WHEN {disease} THEN {value}", disease=pk, value=value) for pk, value in values.items()]
    return Fragment(
        f"CASE a.disease_id {' '.join(w.sql for w in whens)} END", tuple(p for w in whens for p in w.params)
    )


def review_items_insert(
    *,
    batch_id: int,
    region_id: int,
    ids: list[int],
    stages_by_disease: dict[int, Any],
    first_stage_by_disease: dict[int, str],
    due_on_by_disease: dict[int, Any],
    outcome: str,
    queued_at: Any,
) -> Fragment:
    """One ``INSERT … SELECT`` of the chunk's review items: round = the application's last round + 1; stages,
    first stage and its due date by the application's disease (values prepared for the database)."""
    where, where_params = sql_in("a.id", ids)
    due_on = _case_by_disease(due_on_by_disease)
    if connection.vendor == "postgresql":  # PostgreSQL types a CASE of text parameters as text
        due_on = Fragment(f"{due_on.sql}::date", due_on.params)
    items = table(ReviewItem)
    return compose(
        "INSERT INTO {items} "
        "(batch_id, application_id, region_id, round, stages, stage, outcome, queued_at, due_on) "
        "SELECT {batch}, a.id, {region}, "
        "COALESCE((SELECT MAX(r.round) FROM {items} r WHERE r.application_id = a.id), 0) + 1, "
        "{stages}, {stage}, {outcome}, {queued_at}, {due_on} "
        "FROM {applications} a WHERE {where}",
        items=Fragment(items),
        applications=Fragment(table(Application)),
        batch=batch_id,
        region=region_id,
        stages=_case_by_disease(stages_by_disease),
        stage=_case_by_disease(first_stage_by_disease),
        outcome=outcome,
        queued_at=queued_at,
        due_on=due_on,
        where=Fragment(where, tuple(where_params)),
    )


def batch_items_of(*, batch_id: int, ids: list[int]) -> Fragment:
    """``FROM <review items> i WHERE …``: the chunk's new items, the source of their ``enqueue`` audit rows."""
    where, params = sql_in("i.application_id", ids)
    return compose(
        "FROM {items} i WHERE i.batch_id = {batch} AND {where}",
        items=Fragment(table(ReviewItem)),
        batch=batch_id,
        where=Fragment(where, tuple(params)),
    )
