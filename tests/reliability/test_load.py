"""Bounded load test on loopback: filings and queue pages under locust while a monthly batch runs.

The test owns every process it starts (fixtures stop them, also on failure): gunicorn (2 workers × 4
threads, DEBUG off) and a Celery worker on the real Redis broker, both against the committed test
database, and locust in headless mode as a subprocess (``tests/reliability/locustfile.py``; gevent never
enters the pytest process). It sends the batch assembly task as the load starts, so that reviewers claim
and decide items while chunks are still being moved and clinics file for persons whose applications the
batch is moving.

Afterwards: no 5xx and no connection error (refusals are the documented 409 ``limit_reached`` /
``duplicate_disease``), PostgreSQL counted no deadlock in the test database, no person holds more than the
region's limit, each burst of four concurrent filings for one new person filed exactly two, every
application the clinics were told was filed exists with exactly one ``submit`` audit row, the batch holds
every eligible application exactly once with one ``enqueue`` audit row each, and no application has any
transition recorded twice. The figures go to ``test-artifacts/load.md`` (and .json).

    LOAD_USERS=8 LOAD_SPAWN_RATE=8 LOAD_SECONDS=20 LOAD_BATCH_APPLICATIONS=2000 LOAD_BATCH_CHUNK=20
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db.models import Count
from django.test import Client
from django.utils import timezone

from enrollment import selectors
from enrollment.models import (
    ACTIVE_STATES,
    Application,
    ApplicationKind,
    AuditEntry,
    DiseaseType,
    Person,
    State,
)
from enrollment.services.api_tokens import api_token_issue
from kernel import roles
from reviews.models import Outcome, ReviewBatch, ReviewItem, StageDecision
from tests.factories import staff_user, synthetic_id_number
from tests.reliability.processes import database_url, free_port, stop, tail

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
ARTIFACTS = ROOT / "test-artifacts"
USERS = int(os.environ.get("LOAD_USERS", "8"))
SPAWN_RATE = float(os.environ.get("LOAD_SPAWN_RATE", "8"))
SECONDS = int(os.environ.get("LOAD_SECONDS", "20"))
BATCH_APPLICATIONS = int(os.environ.get("LOAD_BATCH_APPLICATIONS", "2000"))
BATCH_CHUNK = int(os.environ.get("LOAD_BATCH_CHUNK", "20"))
CONTENDED_PERSONS = 30  # a third hold nothing, a third one enrollment, a third two
FRESH_PERSONS = 400  # one per burst of four concurrent filings


def deadlocks() -> int:
    import psycopg

    dsn = database_url().replace("postgres://", "postgresql://", 1)
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()").fetchone()[0]


def server_env() -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "DEBUG": "0",
        "LOG_LEVEL": "WARNING",
        "DB_CONN_MAX_AGE": "60",
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "REVIEW_BATCH_CHUNK_SIZE": str(BATCH_CHUNK),
    }


@pytest.fixture
def gunicorn(tmp_path: Path) -> Any:
    port = free_port()
    log = tmp_path / "gunicorn.log"
    args = [str(BIN / "gunicorn"), "config.wsgi:application", "--workers", "2", "--threads", "4"]
    args += ["--worker-class", "gthread", "--bind", f"127.0.0.1:{port}", "--log-level", "warning"]
    # Idle connections are kept longer than any client leaves one idle (the rule for a proxy in front of it).
    # With gunicorn's default of 2 s a request sent just as the server closes its idle connection is reset:
    # seen here as 1-2 ConnectionResetError per run on the bursts' reused connections, not an application fault.
    args += ["--keep-alive", "30"]
    with log.open("a") as out:
        process = subprocess.Popen(args, cwd=ROOT, env=server_env(), stdout=out, stderr=subprocess.STDOUT)
    try:
        import http.client

        deadline = time.monotonic() + 30
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                conn.request("GET", "/health/")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"gunicorn did not start:\n{tail(log)}")
            time.sleep(0.2)
        yield {"url": f"http://127.0.0.1:{port}", "log": log, "process": process}
    finally:
        stop(process)


@pytest.fixture
def batch_worker(tmp_path: Path) -> Any:
    log = tmp_path / "worker.log"
    args = [str(BIN / "celery"), "-A", "config", "worker", "-Q", "batch", "--pool", "solo", "--loglevel", "INFO"]
    args += ["--without-gossip", "--without-mingle", "--without-heartbeat", "--purge"]
    args += ["-n", f"load-{uuid.uuid4().hex[:8]}@%h"]
    with log.open("a") as out:
        process = subprocess.Popen(args, cwd=ROOT, env=server_env(), stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while "ready." not in tail(log, 100_000):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"worker did not start:\n{tail(log)}")
            time.sleep(0.2)
        yield {"log": log, "process": process}
    finally:
        stop(process)


def make_persons(world: Any, count: int, label: str) -> list[Person]:
    return Person.objects.bulk_create(
        [
            Person(
                id_number=(number := synthetic_id_number()),
                name=f"{label}{n}",
                sex="1" if int(number[16]) % 2 else "2",
                birth_date=dt.date(int(number[6:10]), int(number[10:12]), int(number[12:14])),
                insured_region=world.region,
            )
            for n in range(count)
        ]
    )


def application(world: Any, person: Person, disease: Any, state: str, when: dt.datetime) -> Application:
    fields: dict[str, Any] = {}
    if state != State.SUBMITTED:
        fields = {
            "icd10_code": disease.icd10_prefixes[0],
            "diagnosis_date": when.date(),
            "physician": world.physician,
            "diagnosed_by": world.physician_user,
            "diagnosed_at": when,
        }
    if state == State.APPROVED:
        fields |= {"valid_from": when.date(), "valid_until": when.date() + dt.timedelta(days=3 * 365)}
    return Application(
        person=person,
        disease=disease,
        filing_institution=world.county,
        treating_institution=world.county,
        region=world.region,
        filed_by=world.clerk,
        state=state,
        **fields,
    )


def build_world(world: Any) -> dict[str, Any]:
    """Committed data: accounts with tokens, contended persons holding 0/1/2 enrollments, the batch's work."""
    diagnosed_at = timezone.now() - dt.timedelta(days=60)
    approved_at = timezone.now() - dt.timedelta(days=400)
    contended = make_persons(world, CONTENDED_PERSONS, "负载争用")
    fillers = make_persons(world, BATCH_APPLICATIONS - 2 * CONTENDED_PERSONS // 3, "负载批次")
    fresh = make_persons(world, FRESH_PERSONS, "负载新人")
    third = CONTENDED_PERSONS // 3
    rows = [application(world, p, world.hypertension, State.DIAGNOSED, diagnosed_at) for p in contended[third:]]
    rows += [application(world, p, world.diabetes, State.APPROVED, approved_at) for p in contended[2 * third :]]
    rows += [application(world, p, world.hypertension, State.DIAGNOSED, diagnosed_at) for p in fillers]
    created = Application.objects.bulk_create(rows)
    eligible = [a.pk for a in created if a.state == State.DIAGNOSED]
    assert len(eligible) == BATCH_APPLICATIONS

    clerks = [world.clerk] + [staff_user(roles.CLINIC_STAFF, institution=world.county) for _ in range(4)]
    reviewers = [world.reviewer] + [
        staff_user(roles.REVIEWER, region=world.region, stages=["initial_review"]) for _ in range(2)
    ]
    sessions = []
    for reviewer in reviewers:
        client = Client()
        client.force_login(reviewer)
        sessions.append(client.cookies[settings.SESSION_COOKIE_NAME].value)
    return {
        "eligible": eligible,
        "contended": contended,
        "plan": {
            "clinic_tokens": [api_token_issue(user=u, name="load test").key for u in clerks],
            "reviewer_tokens": [api_token_issue(user=u, name="load test").key for u in reviewers],
            "reviewer_sessions": sessions,
            "contended_id_numbers": [p.id_number for p in contended],
            "fresh_id_numbers": [p.id_number for p in fresh],
            "diseases": [d.code for d in (world.hypertension, world.diabetes, world.coronary, world.copd)],
            "institution": world.county.code,
        },
    }


def read_stats(prefix: Path) -> list[dict[str, Any]]:
    with open(f"{prefix}_stats.csv", encoding="utf-8") as stats:
        rows = list(csv.DictReader(stats))
    return [
        {
            "name": row["Name"],
            "requests": int(row["Request Count"]),
            "failures": int(row["Failure Count"]),
            "rps": float(row["Requests/s"]),
            "p50": row["50%"],
            "p95": row["95%"],
            "p99": row["99%"],
            "max": round(float(row["Max Response Time"])),
        }
        for row in rows
    ]


def write_figures(stats: list[dict[str, Any]], facts: dict[str, Any]) -> str:
    lines = [
        f"Load: {USERS} users (spawn {SPAWN_RATE:g}/s) for {SECONDS} s against gunicorn 2 workers × 4 threads; "
        f"batch of {BATCH_APPLICATIONS} applications in chunks of {BATCH_CHUNK} running at the same time.",
        "",
        "| endpoint | requests | failures | req/s | p50 ms | p95 ms | p99 ms | max ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in stats:
        lines.append(
            f"| {row['name']} | {row['requests']:,} | {row['failures']} | {row['rps']:.1f} | {row['p50']} | "
            f"{row['p95']} | {row['p99']} | {row['max']} |"
        )
    lines += ["", *[f"- {key}: {value}" for key, value in facts.items()]]
    text = "\n".join(lines)
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "load.md").write_text(text + "\n", encoding="utf-8")
    (ARTIFACTS / "load.json").write_text(json.dumps({"stats": stats, **facts}, indent=1, default=str) + "\n")
    return text


def test_filings_and_queue_pages_under_load_while_a_batch_runs(world, gunicorn, batch_worker, tmp_path):
    from reviews import tasks

    data = build_world(world)
    plan_path, outcome_path, prefix = tmp_path / "plan.json", tmp_path / "outcome.json", tmp_path / "locust"
    plan_path.write_text(json.dumps(data["plan"]), encoding="utf-8")
    mark = Application.objects.order_by("-pk").values_list("pk", flat=True).first()
    period = f"{timezone.localdate():%Y-%m}"
    deadlocks_before = deadlocks()

    args = [str(BIN / "locust"), "-f", str(Path(__file__).with_name("locustfile.py")), "--headless"]
    args += ["-u", str(USERS), "-r", str(SPAWN_RATE), "-t", f"{SECONDS}s", "--host", gunicorn["url"]]
    args += ["--csv", str(prefix), "--only-summary", "--loglevel", "WARNING", "--stop-timeout", "10"]
    locust_log = tmp_path / "locust.log"
    env = {**os.environ, "LOAD_PLAN": str(plan_path), "LOAD_OUTCOME": str(outcome_path)}
    started = timezone.now()
    with locust_log.open("w") as out:
        load = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        time.sleep(min(2.0, SECONDS / 5))  # the users are filing and reading by now
        tasks.assemble_batch.delay(world.region.pk, period)
        load.wait(timeout=SECONDS + 60)
    finally:
        stop(load)
    finished = timezone.now()

    deadline = time.monotonic() + 90
    while not ReviewBatch.objects.filter(region=world.region, period=period, assembled_at__isnull=False).exists():
        if time.monotonic() > deadline:
            pytest.fail(f"the batch was not assembled:\n{tail(batch_worker['log'])}")
        time.sleep(0.2)
    batch = ReviewBatch.objects.get(region=world.region, period=period)

    assert outcome_path.exists(), f"locust wrote no outcome:\n{tail(locust_log)}"
    outcome = json.loads(outcome_path.read_text(encoding="utf-8"))
    stats = read_stats(prefix)
    total = next(row for row in stats if row["name"] == "Aggregated")
    failures_csv = Path(f"{prefix}_failures.csv").read_text(encoding="utf-8")

    # The servers are stopped before the deadlock count is read: a backend flushes its statistics on exit.
    gunicorn_log, worker_log = gunicorn["log"], batch_worker["log"]
    stop(gunicorn["process"])
    stop(batch_worker["process"])
    time.sleep(1.5)
    deadlocks_after = deadlocks()

    limit = selectors.policy_for_region(world.region).concurrent_chronic_limit
    holdings = (
        Application.objects.filter(
            person__insured_region=world.region,
            state__in=ACTIVE_STATES,
            disease__disease_type=DiseaseType.CHRONIC,
            disease__counts_toward_limit=True,
        )
        .exclude(kind=ApplicationKind.TWO_DISEASES)
        .exclude(kind=ApplicationKind.RENEWAL, renews__state__in=ACTIVE_STATES)
        .values("person_id")
        .annotate(n=Count("id"))
    )
    most_held = max((row["n"] for row in holdings), default=0)
    codes = outcome["responses"]
    limit_refusals = sum(n for key, n in codes.items() if key.endswith("| 409 limit_reached"))
    filed_ids = {int(pk) for pk in outcome["filed"]}
    new_ids = set(Application.objects.filter(pk__gt=mark).values_list("pk", flat=True))
    facts = {
        "window": f"{started:%H:%M:%S}–{finished:%H:%M:%S} UTC; batch {batch.created_at:%H:%M:%S}–"
        f"{batch.assembled_at:%H:%M:%S}",
        "responses": dict(sorted(codes.items())),
        "applications filed (201)": len(filed_ids),
        "409 limit_reached": limit_refusals,
        "idempotent retries replayed": outcome["replays_ok"],
        "bursts of 4 concurrent filings": len(outcome["bursts"]),
        "items decided": len(outcome["decided"]),
        "most chronic enrollments held by one person": f"{most_held} (limit {limit})",
        "deadlocks": deadlocks_after - deadlocks_before,
    }
    figures = write_figures(stats, facts)
    print("\n" + figures)

    # No server fault, no connection error, no unexpected refusal: locust counted each as a failure.
    assert total["requests"] > 0 and total["failures"] == 0, f"{failures_csv}\n{tail(gunicorn_log)}"
    assert not [key for key in codes if key.split(" | ")[1].startswith(("0", "5"))], codes
    assert "Traceback" not in tail(gunicorn_log, 1_000_000), tail(gunicorn_log)
    assert "deadlock" not in tail(worker_log, 1_000_000).lower(), tail(worker_log)
    assert deadlocks_after == deadlocks_before, f"PostgreSQL detected {deadlocks_after - deadlocks_before} deadlocks"
    # The batch ran while the load did: it started after the users and finished after the first requests.
    assert started < batch.created_at < finished, (started, batch.created_at, finished)

    # The limit held: nobody holds more than the region's limit, and the contention really reached it.
    assert most_held <= limit, [row for row in holdings if row["n"] > limit]
    assert limit_refusals > 0, codes
    per_disease = (
        Application.objects.filter(state__in=ACTIVE_STATES, renews__isnull=True, kind=ApplicationKind.NEW)
        .values("person_id", "disease_id")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
    )
    assert not per_disease.exists(), list(per_disease)
    # Four concurrent filings of four diseases for a new person: exactly two filed, two refused at the limit.
    assert outcome["bursts"], "no burst of concurrent filings ran"
    for burst in outcome["bursts"]:
        assert burst["statuses"] == [201, 201, 409, 409], burst
    burst_people = [b["id_number"] for b in outcome["bursts"]]
    held = Application.objects.filter(person__id_number__in=burst_people).values("person_id").annotate(n=Count("id"))
    assert {row["n"] for row in held} == {2} and len(held) == len(burst_people)

    # What the clinics were told was filed is exactly what exists, each with one submit audit row; the only
    # rows they were not told about are of filings still unanswered when locust stopped at its time limit.
    assert not filed_ids - new_ids, sorted(filed_ids - new_ids)[:10]
    unreported = Application.objects.filter(pk__in=new_ids - filed_ids).values_list(
        "person__id_number", "disease__code"
    )
    in_flight = set(outcome["in_flight"])
    assert all(f"{number}:{code}" in in_flight for number, code in unreported), (list(unreported), in_flight)
    submits = AuditEntry.objects.filter(application_id__in=new_ids, transition="submit")
    assert submits.count() == len(new_ids)
    assert not Application.objects.filter(pk__in=new_ids).exclude(state=State.SUBMITTED).exists()

    # The batch: every eligible application exactly once, nothing else, one enqueue audit row each.
    eligible = set(data["eligible"])
    items = ReviewItem.objects.filter(batch=batch)
    assert batch.item_count == len(eligible) == items.count()
    assert set(items.values_list("application_id", flat=True)) == eligible
    enqueues = AuditEntry.objects.filter(batch_id=batch.pk, transition="enqueue")
    assert enqueues.count() == len(eligible)
    assert set(enqueues.values_list("application_id", flat=True)) == eligible
    # Decisions: each approved item has one stage decision and one approve audit row; nothing twice anywhere.
    decided = set(outcome["decided"])
    assert len(decided) == len(outcome["decided"]), "an item was reported decided twice"
    assert set(items.filter(outcome=Outcome.APPROVED).values_list("pk", flat=True)) == decided
    assert StageDecision.objects.filter(item__batch=batch).count() == len(decided)
    approved = set(items.filter(pk__in=decided).values_list("application_id", flat=True))
    assert set(Application.objects.filter(pk__in=eligible, state=State.APPROVED).values_list("pk", flat=True)) == (
        approved
    )
    twice = (
        AuditEntry.objects.exclude(transition="stage_approve")
        .values("application_id", "transition")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
    )
    assert not twice.exists(), list(twice[:10])
