"""/health/worker/ answers from a short cache (issue 18 item 7).

Before: every anonymous caller held a web thread for the one-second broadcast ping (16 of them raised a
clerk's p50 from 78 ms to 995 ms). Now one ping at a time, its answer kept HEALTH_WORKER_CACHE_SECONDS
(15) and saying its age; the health token gets a fresh ping. The ping itself is mocked: the cache is
what is under test (the real ping is tested in test_health.py).
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import time_machine
from django.core.cache import cache
from django.test import Client

from config import health

T0 = dt.datetime(2026, 12, 1, 9, 0, 0, tzinfo=dt.UTC)
TOKEN = "health-token-for-tests-0123456789"


@pytest.fixture(autouse=True)
def pings(monkeypatch, settings):
    settings.HEALTH_WORKER_CACHE_SECONDS = 15
    settings.HEALTH_TOKEN = TOKEN
    cache.delete_many([health.WORKER_ANSWER_KEY, health.WORKER_PING_LOCK_KEY])
    calls: list[float] = []

    def fake_ping():
        calls.append(time.time())
        return {"ok": True, "workers": 2}

    monkeypatch.setattr(health, "_ping_workers", fake_ping)
    yield calls
    cache.delete_many([health.WORKER_ANSWER_KEY, health.WORKER_PING_LOCK_KEY])


def get(**headers):
    return Client().get("/health/worker/", **headers)


def test_two_requests_within_the_cache_time_ping_once_and_the_answer_says_its_age(pings):
    with time_machine.travel(T0, tick=False):
        first = get()
    with time_machine.travel(T0 + dt.timedelta(seconds=10), tick=False):
        second = get()
    assert len(pings) == 1
    assert first.status_code == second.status_code == 200
    assert first.json()["age_seconds"] == 0 and first["Age"] == "0"
    body = second.json()
    assert body["workers"] == 2 and body["age_seconds"] == 10.0 and second["Age"] == "10"
    assert body["checked_at"] == "2026-12-01T09:00:00+00:00"
    # Older than the cache time: the next caller pings again.
    with time_machine.travel(T0 + dt.timedelta(seconds=16), tick=False):
        third = get()
    assert len(pings) == 2 and third.json()["age_seconds"] == 0


def test_the_health_token_gets_a_fresh_ping_and_a_wrong_one_is_refused(pings):
    with time_machine.travel(T0, tick=False):
        get()
    with time_machine.travel(T0 + dt.timedelta(seconds=5), tick=False):
        fresh = get(HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
        wrong = get(HTTP_AUTHORIZATION="Bearer not-the-token")
        anonymous = get()
    assert len(pings) == 2
    assert fresh.status_code == 200 and fresh.json()["age_seconds"] == 0
    assert wrong.status_code == 401 and wrong.json()["status"] == "unauthorized"
    assert anonymous.json()["age_seconds"] == 0  # the fresh answer serves everyone else too


def test_without_a_configured_token_nobody_forces_a_ping(pings, settings):
    settings.HEALTH_TOKEN = ""
    get()
    assert get(HTTP_AUTHORIZATION="Bearer ").status_code == 401
    assert len(pings) == 1


def test_a_failed_ping_is_cached_as_a_503_with_its_age(pings, monkeypatch):
    monkeypatch.setattr(health, "_ping_workers", lambda: pings.append(0) or {"ok": False, "detail": "No worker."})
    with time_machine.travel(T0, tick=False):
        get()
    with time_machine.travel(T0 + dt.timedelta(seconds=3), tick=False):
        response = get()
    assert len(pings) == 1
    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "component": "worker",
        "detail": "No worker.",
        "checked_at": "2026-12-01T09:00:00+00:00",
        "age_seconds": 3.0,
    }


def test_while_one_request_pings_the_others_get_the_last_answer_at_once(pings):
    with time_machine.travel(T0, tick=False):
        get()
    with time_machine.travel(T0 + dt.timedelta(seconds=40), tick=False):
        assert cache.add(health.WORKER_PING_LOCK_KEY, True, timeout=30)  # another request is pinging
        response = get()
    assert len(pings) == 1
    assert response.status_code == 200 and response.json()["age_seconds"] == 40.0


def test_concurrent_callers_with_nothing_cached_share_one_ping(monkeypatch):
    calls = []
    started = threading.Event()

    def slow_ping():
        calls.append(1)
        started.set()
        time.sleep(0.5)
        return {"ok": True, "workers": 1}

    monkeypatch.setattr(health, "_ping_workers", slow_ping)
    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(lambda _n: get(), range(8)))
    assert len(calls) == 1
    assert [r.status_code for r in responses] == [200] * 8
