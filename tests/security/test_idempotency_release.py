"""An Idempotency-Key is never stuck "in progress" (issue 18 item 4).

Before the fix, any unhandled exception (a 500) left the key's reservation row behind: DRF re-raises the
exception before ``finalize_response``, which was the only place that released it, and nothing ever expired
such a row, so every retry of that filing answered 409 ``idempotency_in_progress`` for ever. Now a 5xx
releases the key — over a fresh connection when the request's own one is broken — and a reservation older
than IDEMPOTENCY_IN_PROGRESS_SECONDS is taken as abandoned.

The killed-connection cases run on PostgreSQL (``pg_terminate_backend`` from a second connection, the way
tests/reliability/test_faults.py kills a filing); on SQLite the same path is driven by an OperationalError.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

import pytest
from django.db import OperationalError, close_old_connections, connection
from django.test import Client
from django.utils import timezone

from enrollment import services
from enrollment.models import Application, Person
from kernel.api_support import release_idempotency_key
from kernel.models import IdempotencyRecord

URL = "/api/v1/applications/"


def clerk_client(world: Any) -> Client:
    client = Client(raise_request_exception=False)  # a 500 is answered, as a real server would
    client.force_login(world.clerk)
    return client


def file(client: Client, body: dict[str, str], key: str) -> Any:
    return client.post(URL, json.dumps(body), content_type="application/json", HTTP_IDEMPOTENCY_KEY=key)


def fingerprint(body: dict[str, str]) -> str:
    """What IdempotentPostMixin stores for this request (method, path, body bytes)."""
    return hashlib.sha256(b"POST" + URL.encode() + json.dumps(body).encode()).hexdigest()


def filing_body(world: Any) -> dict[str, str]:
    person = world.person()
    return {"id_number": person.id_number, "disease": "M03900", "treating_institution": world.county.code}


def fail_once(monkeypatch: Any, fault: Any) -> None:
    """The next filing runs ``fault`` instead of the service (which must raise); later ones file normally.
    The API's create files through ``application_submit_by_id_number``, so that is the service replaced."""
    original = services.application_submit_by_id_number
    calls = {"n": 0}

    def submit(**kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            fault()
            raise AssertionError("the fault should have raised")
        return original(**kwargs)

    monkeypatch.setattr(services, "application_submit_by_id_number", submit)


def assert_retry_files_once(client: Client, body: dict[str, str], key: str) -> None:
    retry = file(client, body, key)
    assert retry.status_code == 201, retry.content
    assert retry.get("Idempotent-Replayed") is None  # the work was done now, not replayed
    again = file(client, body, key)
    assert again.status_code == 201 and again["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == retry.json()["id"]
    assert Application.objects.filter(pk=retry.json()["id"]).count() == 1


def test_an_unhandled_error_releases_the_key_so_the_retry_files(world, monkeypatch):
    """The database went away in the middle of the filing (simulated: OperationalError from the service)."""

    def database_gone() -> None:
        raise OperationalError("server closed the connection unexpectedly")

    fail_once(monkeypatch, database_gone)
    client, body = clerk_client(world), filing_body(world)
    failed = file(client, body, "retry-after-500")
    assert failed.status_code == 500 and failed.json()["code"] == "server_error"
    assert not IdempotencyRecord.objects.filter(key="retry-after-500").exists()  # released, not "in progress"
    assert_retry_files_once(client, body, "retry-after-500")


def test_an_error_answered_as_5xx_by_the_handler_releases_the_key_too(world, monkeypatch):
    from rest_framework.exceptions import APIException

    def unavailable() -> None:
        raise APIException("the registry is down")  # DRF answers it: 500 through finalize_response

    fail_once(monkeypatch, unavailable)
    client, body = clerk_client(world), filing_body(world)
    assert file(client, body, "k-5xx").status_code == 500
    assert not IdempotencyRecord.objects.filter(key="k-5xx").exists()
    assert_retry_files_once(client, body, "k-5xx")


def test_a_stale_in_progress_key_expires(world, settings):
    settings.IDEMPOTENCY_IN_PROGRESS_SECONDS = 120
    client, body = clerk_client(world), filing_body(world)
    # A reservation its process never answered (killed with the request, or its release failed too).
    record = IdempotencyRecord.objects.create(
        user=world.clerk, key="orphan", method="POST", path=URL, request_hash=fingerprint(body)
    )
    busy = file(client, body, "orphan")
    assert busy.status_code == 409 and busy.json()["code"] == "idempotency_in_progress"  # may still be running
    IdempotencyRecord.objects.filter(pk=record.pk).update(created_at=timezone.now() - dt.timedelta(seconds=121))
    assert_retry_files_once(client, body, "orphan")


def test_a_stored_answer_never_expires(world, settings):
    """Only reservations expire: an answered key keeps replaying its answer, however old."""
    settings.IDEMPOTENCY_IN_PROGRESS_SECONDS = 1
    client, body = clerk_client(world), filing_body(world)
    first = file(client, body, "answered")
    assert first.status_code == 201
    IdempotencyRecord.objects.filter(key="answered").update(created_at=timezone.now() - dt.timedelta(days=30))
    again = file(client, body, "answered")
    assert again.status_code == 201 and again["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]


def test_release_leaves_an_answered_key_alone(world):
    record = IdempotencyRecord.objects.create(
        user=world.clerk, key="done", method="POST", path=URL, request_hash="0" * 64, status_code=201
    )
    release_idempotency_key(record)
    assert IdempotencyRecord.objects.filter(pk=record.pk).exists()


# ---------------------------------------------------------------------------
# PostgreSQL: the request's database connection really killed
# ---------------------------------------------------------------------------


def terminate_own_backend() -> None:
    """Kill this connection's PostgreSQL backend from a second connection, as an administrator (or a failover)
    would, and wait until it is gone."""
    import psycopg

    from tests.reliability.processes import database_url

    pid = connection.connection.info.backend_pid
    dsn = database_url().replace("postgres://", "postgresql://", 1)
    with psycopg.connect(dsn, autocommit=True) as killer:
        assert killer.execute("SELECT pg_terminate_backend(%s, 5000)", [pid]).fetchone()[0]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("where", ["inside the service's transaction", "between two queries"])
def test_a_killed_database_connection_releases_the_key(world, monkeypatch, where):
    """Killed inside the filing's transaction or between two queries in autocommit: either way the request's
    connection is dead until the request ends, so the release goes over a fresh connection of its own, and the
    retry with the same key files normally."""
    original = services.application_submit

    def killed_in_transaction() -> None:
        terminate_own_backend()
        original(**pending)  # its first statement inside transaction.atomic() fails

    def killed_between_queries() -> None:
        terminate_own_backend()
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")  # outside any transaction: Django keeps the dead connection open

    client, body = clerk_client(world), filing_body(world)
    person = Person.objects.get(id_number=body["id_number"])
    pending = {"person": person, "disease": world.hypertension, "treating_institution": world.county}
    pending["actor"] = world.clerk
    fail_once(monkeypatch, killed_in_transaction if where.startswith("inside") else killed_between_queries)
    failed = file(client, body, f"killed-{where}")
    assert failed.status_code == 500 and failed.json()["code"] == "server_error"
    # What the real WSGI handler does at the end of every request (the test client leaves it out): a connection
    # that failed is closed, so that the next request (and this test) gets a fresh one.
    close_old_connections()
    assert not Application.objects.filter(person=person).exists()
    assert not IdempotencyRecord.objects.filter(key=f"killed-{where}").exists()
    assert_retry_files_once(client, body, f"killed-{where}")
