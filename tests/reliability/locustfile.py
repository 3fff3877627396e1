"""Locust scenario of the bounded load test (tests/reliability/test_load.py); never imported by pytest.

Run by the test as a subprocess (``locust -f … --headless``) so that gevent's monkeypatching stays out of
the pytest process. The test writes a plan (tokens, session cookies, ID numbers) to the JSON file named by
``LOAD_PLAN``; this file writes what it saw (responses per endpoint, status and error code, the
applications filed, the items decided, the persons of the concurrent bursts) to ``LOAD_OUTCOME``.

Clinic staff file applications (``POST /api/v1/applications/`` with an Idempotency-Key, some retried
with the same key) for a small pool of persons, many of whom already hold one or two enrollments, so that
filings for the same person meet at the limit; and in bursts of four concurrent filings of four different
chronic diseases for one new person (exactly two may succeed). Reviewers read the queue (API and web page),
claim items and approve them (one by one and in bulk) while the monthly batch is still filling the queue.

Every response is classified: the expected refusals (409 ``limit_reached``, ``duplicate_disease``) count as
successes; any 5xx, connection error, unexpected 4xx or replay mismatch is a locust failure.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import threading
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import gevent
from gevent.pool import Group
from locust import HttpUser, between, events, task

PLAN: dict[str, Any] = json.loads(Path(os.environ["LOAD_PLAN"]).read_text(encoding="utf-8"))
OUTCOME_PATH = os.environ["LOAD_OUTCOME"]
CHRONIC = PLAN["diseases"]

# Filing refusals a clinic may legitimately get under contention (docs/design.md: Filing rules; docs/api.md):
# 409 with these codes.
FILING_REFUSALS = {"limit_reached", "duplicate_disease"}

_lock = threading.Lock()
responses: Counter[str] = Counter()
filed: dict[int, str] = {}  # application id → "person:disease" of the 201 that created it
# Filings sent and not yet answered: locust stops at its time limit with some requests in flight (the server
# may still commit them); the test accepts a row it was not told about only if it is one of these.
in_flight: Counter[str] = Counter()
replays = {"ok": 0}
decided: list[int] = []
bursts: list[dict[str, Any]] = []
fresh = iter(PLAN["fresh_id_numbers"])
started = {"clinic": itertools.count(), "reviewer": itertools.count()}


def _json(response: Any) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _code(response: Any) -> str:
    body = _json(response)
    return str(body.get("code", "")) if isinstance(body, dict) else "non-json"


def _record(name: str, response: Any) -> str:
    code = _code(response) if response.status_code >= 400 else ""
    with _lock:
        responses[f"{name} | {response.status_code} {code}".strip()] += 1
    return code


def _account(kind: str, pool: list[Any]) -> int:
    """Users of one kind take the plan's accounts in turn."""
    with _lock:
        return next(started[kind]) % len(pool)


class ClinicStaff(HttpUser):
    weight = 5
    wait_time = between(0, 0.2)

    def on_start(self) -> None:
        self.token = PLAN["clinic_tokens"][_account("clinic", PLAN["clinic_tokens"])]

    def _file(self, id_number: str, disease: str, key: str, name: str) -> Any:
        body = {"id_number": id_number, "disease": disease, "treating_institution": PLAN["institution"]}
        headers = {"Authorization": f"Token {self.token}", "Idempotency-Key": key}
        with _lock:
            in_flight[f"{id_number}:{disease}"] += 1
        try:
            return self._send_filing(body, headers, id_number, disease, name)
        finally:
            with _lock:
                in_flight[f"{id_number}:{disease}"] -= 1

    def _send_filing(
        self, body: dict[str, Any], headers: dict[str, str], id_number: str, disease: str, name: str
    ) -> Any:
        with self.client.post(
            "/api/v1/applications/", json=body, headers=headers, name=name, catch_response=True
        ) as response:
            code = _record(name, response)
            if response.status_code == 201:
                if response.headers.get("Idempotent-Replayed") != "true":
                    with _lock:
                        filed[response.json()["id"]] = f"{id_number}:{disease}"
                response.success()
            elif response.status_code == 409 and code in FILING_REFUSALS:
                response.success()
            else:
                response.failure(f"{response.status_code} {code}: {response.text[:200]} {response.error!r}")
            return response

    @task(6)
    def file_for_a_contended_person(self) -> None:
        """Many users, few persons: filings for the same person meet at its row lock and at the limit."""
        key = str(uuid.uuid4())
        id_number, disease = random.choice(PLAN["contended_id_numbers"]), random.choice(CHRONIC)
        first = self._file(id_number, disease, key, "POST /api/v1/applications/ (contended)")
        if random.random() < 0.25:
            # The clinic's retry: the same key and body must replay the first answer, never file twice.
            again = self._file(id_number, disease, key, "POST /api/v1/applications/ (retry)")
            replayed = again.headers.get("Idempotent-Replayed") == "true"
            if replayed and again.status_code == first.status_code and _json(again) == _json(first):
                with _lock:
                    replays["ok"] += 1
            else:
                events.request.fire(
                    request_type="CHECK",
                    name="idempotent replay",
                    response_time=0,
                    response_length=0,
                    exception=AssertionError(
                        f"retry gave {again.status_code} (replayed: {replayed}) {again.text[:200]}, "
                        f"first {first.status_code} {first.text[:200]}"
                    ),
                )

    @task(2)
    def file_four_diseases_at_once(self) -> None:
        """Four concurrent filings of four chronic diseases for one new person: the limit lets two through."""
        with _lock:
            id_number = next(fresh, None)
        if id_number is None:
            return self.file_for_a_contended_person()
        group = Group()
        results: dict[str, int] = {}

        def one(disease: str) -> None:
            response = self._file(id_number, disease, str(uuid.uuid4()), "POST /api/v1/applications/ (burst)")
            results[disease] = response.status_code

        for disease in CHRONIC[:4]:
            group.spawn(one, disease)
        group.join()
        with _lock:
            bursts.append({"id_number": id_number, "statuses": sorted(results.values())})


class Reviewer(HttpUser):
    weight = 3
    wait_time = between(0, 0.3)

    def on_start(self) -> None:
        index = _account("reviewer", PLAN["reviewer_tokens"])
        self.headers = {"Authorization": f"Token {PLAN['reviewer_tokens'][index]}"}
        self.client.cookies.set("sessionid", PLAN["reviewer_sessions"][index])

    def _expect(self, name: str, response: Any, status: int = 200) -> None:
        code = _record(name, response)
        if response.status_code == status:
            response.success()
        else:
            response.failure(f"{response.status_code} {code}: {response.text[:200]} {response.error!r}")

    @task(4)
    def queue_api(self) -> None:
        name = "GET /api/v1/queue/"
        with self.client.get("/api/v1/queue/?limit=50", headers=self.headers, name=name, catch_response=True) as r:
            self._expect(name, r)

    @task(2)
    def queue_page(self) -> None:
        name = "GET /reviews/queue/ (web)"
        with self.client.get("/reviews/queue/", name=name, catch_response=True, allow_redirects=False) as r:
            self._expect(name, r)
            if r.status_code == 200 and "<form" not in r.text:
                r.failure("the queue page has no form (not the page?)")

    @task(3)
    def claim_and_decide(self) -> None:
        name = "POST /api/v1/queue/claim/"
        with self.client.post(
            "/api/v1/queue/claim/", json={"count": 4}, headers=self.headers, name=name, catch_response=True
        ) as r:
            self._expect(name, r)
            items = [item["id"] for item in r.json()] if r.status_code == 200 else []
        if not items:
            return
        if random.random() < 0.5:
            name = "POST /api/v1/review-items/{id}/approve/"
            for item in items:
                headers = {**self.headers, "Idempotency-Key": str(uuid.uuid4())}
                with self.client.post(
                    f"/api/v1/review-items/{item}/approve/", json={}, headers=headers, name=name, catch_response=True
                ) as r:
                    self._expect(name, r)
                    if r.status_code == 200:
                        with _lock:
                            decided.append(item)
        else:
            name = "POST /api/v1/review-items/bulk-decide/"
            body = {"items": items, "decision": "approve"}
            with self.client.post(
                "/api/v1/review-items/bulk-decide/", json=body, headers=self.headers, name=name, catch_response=True
            ) as r:
                self._expect(name, r)
                if r.status_code == 200:
                    result = r.json()
                    if result["failed"]:
                        r.failure(f"bulk decision of claimed items failed: {result['failed']}")
                    with _lock:
                        decided.extend(result["decided"])


@events.quitting.add_listener
def _write_outcome(environment: Any, **_kwargs: Any) -> None:
    gevent.sleep(0)
    with _lock:
        outcome = {
            "responses": dict(responses),
            "filed": {str(k): v for k, v in filed.items()},
            "in_flight": sorted(pair for pair, n in in_flight.items() if n > 0),
            "replays_ok": replays["ok"],
            "decided": decided,
            "bursts": bursts,
        }
    Path(OUTCOME_PATH).write_text(json.dumps(outcome), encoding="utf-8")
