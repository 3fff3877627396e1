"""Every hand-written SQL statement of the reviews app, as ``(sql, params)`` builders (kernel.sql).

Batch assembly writes a chunk's review items and their ``enqueue`` audit rows set-based, from the chunk's
application ids; tests/reviews/test_assembly.py holds the rows equal to what the per-row path writes.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import connection

from enrollment.models import Application, Person
from kernel.sql import Fragment, RowReader, column, compose, db_value, sql_in, table
from reviews.models import Escalation, Outcome, ReviewBatch, ReviewItem, StageDecision


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


# ---------------------------------------------------------------------------
# The reviewer's queue page
# ---------------------------------------------------------------------------

# What a queue row reads (reviews.serializers.ReviewItemSerializer), in the order of the SELECT list, then
# the batch's period, the claimant's username and the two deadline flags.
QUEUE_ITEM = RowReader(
    ReviewItem,
    (
        "id",
        "application",
        "batch",
        "region",
        "round",
        "stages",
        "stage",
        "outcome",
        "queued_at",
        "due_on",
        "claimed_by",
        "lease_expires_at",
        "decided_at",
    ),
)
QUEUE_APPLICATION = RowReader(Application, ("id", "state", "person", "disease"))
QUEUE_PERSON = RowReader(Person, ("id", "name", "id_number"))


def _person_columns() -> Fragment:
    """The person's columns of a queue row as correlated subqueries over ``a.person_id``, not a join: every
    relation joined costs PostgreSQL planning time on each page (a join of person and disease doubled the
    statement's CPU at 1M applications); the disease comes from the per-process reference data."""
    person_id = f"a.{column(Application, 'person')}"
    parts = []
    for field in QUEUE_PERSON.fields:
        if field.primary_key:
            parts.append(person_id)
        else:
            parts.append(f"(SELECT p.{column(Person, field.name)} FROM {table(Person)} p WHERE p.id = {person_id})")
    return Fragment(", ".join(parts))


def _in(column_sql: str, values: list[Any]) -> Fragment:
    where, params = sql_in(column_sql, values)
    return Fragment(where, tuple(params))


def _queue_filter(
    *, user_id: int, now: dt.datetime, mine: bool, after: tuple[dt.datetime, int] | None, item: str, app: str
) -> Fragment:
    """What keeps an item of a region and stage on the reviewer's page, over the item alias ``item`` and its
    application ``app``: pending; not filed, diagnosed or decided at another stage by the reviewer (separation
    of duties); claimed by them under a live lease, or (unless ``mine``) free; after the cursor."""
    claimed_by = Fragment(column(ReviewItem, "claimed_by"))
    lease = Fragment(column(ReviewItem, "lease_expires_at"))
    moment = db_value(ReviewItem, "lease_expires_at", now)
    held = compose(
        f"({item}.{{claimed_by}} = {{user}} AND {item}.{{lease}} > {{now}})",
        claimed_by=claimed_by,
        user=user_id,
        lease=lease,
        now=moment,
    )
    if not mine:
        held = compose(
            f"({{held}} OR {item}.{{claimed_by}} IS NULL OR {item}.{{lease}} <= {{now}})",
            held=held,
            claimed_by=claimed_by,
            lease=lease,
            now=moment,
        )
    cursor = Fragment("")
    if after is not None:
        queued_at = db_value(ReviewItem, "queued_at", after[0])
        cursor = compose(
            f"AND ({item}.{{at}} > {{queued_at}} OR ({item}.{{at}} = {{same}} AND {item}.id > {{item_id}}))",
            at=Fragment(column(ReviewItem, "queued_at")),
            queued_at=queued_at,
            same=queued_at,
            item_id=after[1],
        )
    return compose(
        f"{item}.{{outcome}} = {{pending}} "
        f"AND ({app}.{{filed_by}} IS NULL OR {app}.{{filed_by}} <> {{user}}) "
        f"AND ({app}.{{diagnosed_by}} IS NULL OR {app}.{{diagnosed_by}} <> {{user_again}}) "
        f"AND NOT EXISTS (SELECT 1 FROM {{decisions}} s WHERE s.{{decision_application}} = {item}.{{application}} "
        f"AND s.{{decided_by}} = {{decider}} AND s.{{decision_stage}} <> {item}.{{stage}}) "
        "AND {held} {cursor}",
        outcome=Fragment(column(ReviewItem, "outcome")),
        pending=Outcome.PENDING.value,
        filed_by=Fragment(column(Application, "filed_by")),
        user=user_id,
        diagnosed_by=Fragment(column(Application, "diagnosed_by")),
        user_again=user_id,
        decisions=Fragment(table(StageDecision)),
        decision_application=Fragment(column(StageDecision, "application")),
        application=Fragment(column(ReviewItem, "application")),
        decided_by=Fragment(column(StageDecision, "decided_by")),
        decider=user_id,
        decision_stage=Fragment(column(StageDecision, "stage")),
        stage=Fragment(column(ReviewItem, "stage")),
        held=held,
        cursor=cursor,
    )


def _queue_page_ids(
    *,
    user_id: int,
    region_ids: list[int],
    stages: list[str],
    now: dt.datetime,
    mine: bool,
    after: tuple[dt.datetime, int] | None,
    limit: int,
) -> Fragment:
    """``SELECT id`` of the page's items. On PostgreSQL one index range per (region, stage) pair — the
    partial index ``review_queue`` (region, stage, queued_at, id) read through a LATERAL subquery and merged —
    instead of walking the whole queue in (queued_at, id) order past every other region's items: at 1M
    applications a city assembled last had its reviewers' pages read ~200,000 index entries each. Elsewhere
    (SQLite) the plain filter."""
    item_table, app_table = Fragment(table(ReviewItem)), Fragment(table(Application))
    at = Fragment(column(ReviewItem, "queued_at"))
    if connection.vendor == "postgresql":
        pairs = [(region, stage) for region in region_ids for stage in stages]
        return compose(
            "SELECT q.id FROM unnest({regions}::integer[], {stages}::text[]) AS k(region_id, stage) "
            "CROSS JOIN LATERAL (SELECT i.id, i.{at} FROM {items} i JOIN {applications} a ON a.id = i.{application} "
            "WHERE i.{region} = k.region_id AND i.{stage} = k.stage AND {keep} "
            "ORDER BY i.{at}, i.id LIMIT {inner_limit}) q ORDER BY q.{at}, q.id LIMIT {limit}",
            regions=[region for region, _ in pairs],
            stages=[stage for _, stage in pairs],
            at=at,
            items=item_table,
            applications=app_table,
            application=Fragment(column(ReviewItem, "application")),
            region=Fragment(column(ReviewItem, "region")),
            stage=Fragment(column(ReviewItem, "stage")),
            keep=_queue_filter(user_id=user_id, now=now, mine=mine, after=after, item="i", app="a"),
            inner_limit=limit,
            limit=limit,
        )
    return compose(
        "SELECT i.id FROM {items} i JOIN {applications} a ON a.id = i.{application} "
        "WHERE {regions} AND {stages} AND {keep} ORDER BY i.{at}, i.id LIMIT {limit}",
        items=item_table,
        applications=app_table,
        application=Fragment(column(ReviewItem, "application")),
        regions=_in(f"i.{column(ReviewItem, 'region')}", region_ids),
        stages=_in(f"i.{column(ReviewItem, 'stage')}", stages),
        keep=_queue_filter(user_id=user_id, now=now, mine=mine, after=after, item="i", app="a"),
        at=at,
        limit=limit,
    )


def queue_page(
    *,
    user_id: int,
    region_ids: list[int],
    stages: list[str],
    now: dt.datetime,
    today: dt.date,
    mine: bool,
    after: tuple[dt.datetime, int] | None,
    limit: int,
) -> Fragment:
    """One keyset page of the reviewer's queue (reviews.selectors.queue_page): pending items of their regions
    at the stages they hold, without the ones they filed, diagnosed or decided at another stage (separation
    of duties), either claimed by them under a live lease (``mine``) or also the free ones, after the
    ``(queued_at, id)`` cursor, oldest first. The same rows as the queryset ``queue_for`` + ``lease_free``
    (tests/reviews/test_queue_sql.py holds them equal), written here so that a page costs no query
    compilation. The page's ids come first (``_queue_page_ids``); only the application is joined to them; the
    person, the batch's period and the claimant come as correlated subqueries, the disease from the reference
    data: joining them made PostgreSQL spend most of the statement planning it (docs/benchmarks.md)."""
    from django.contrib.auth import get_user_model

    users = get_user_model()
    return compose(
        "SELECT {item_columns}, {application_columns}, {person_columns}, "
        "(SELECT b.{period} FROM {batches} b WHERE b.id = i.{batch}), "
        "(SELECT u.{username} FROM {users} u WHERE u.id = i.{claimed_by}), "
        "CASE WHEN i.{outcome} = {pending} AND i.{due_on} < {today} THEN 1 ELSE 0 END, "
        "EXISTS (SELECT 1 FROM {escalations} x WHERE x.{escalated_item} = i.id AND x.{escalated_stage} = i.{stage}) "
        "FROM ({page}) page JOIN {items} i ON i.id = page.id "
        "JOIN {applications} a ON a.id = i.{application} "
        "ORDER BY i.{at}, i.id",
        item_columns=Fragment(QUEUE_ITEM.columns("i")),
        application_columns=Fragment(QUEUE_APPLICATION.columns("a")),
        person_columns=_person_columns(),
        period=Fragment(column(ReviewBatch, "period")),
        batches=Fragment(table(ReviewBatch)),
        batch=Fragment(column(ReviewItem, "batch")),
        username=Fragment(column(users, "username")),
        users=Fragment(table(users)),
        claimed_by=Fragment(column(ReviewItem, "claimed_by")),
        outcome=Fragment(column(ReviewItem, "outcome")),
        pending=Outcome.PENDING.value,
        due_on=Fragment(column(ReviewItem, "due_on")),
        today=db_value(ReviewItem, "due_on", today),
        escalations=Fragment(table(Escalation)),
        escalated_item=Fragment(column(Escalation, "item")),
        escalated_stage=Fragment(column(Escalation, "stage")),
        stage=Fragment(column(ReviewItem, "stage")),
        page=_queue_page_ids(
            user_id=user_id, region_ids=region_ids, stages=stages, now=now, mine=mine, after=after, limit=limit
        ),
        items=Fragment(table(ReviewItem)),
        applications=Fragment(table(Application)),
        application=Fragment(column(ReviewItem, "application")),
        at=Fragment(column(ReviewItem, "queued_at")),
    )
