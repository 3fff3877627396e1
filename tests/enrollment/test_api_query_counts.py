"""Every list and detail endpoint of the API runs a fixed number of SQL queries, whatever the rows.

Steady state of a serving process: token authentication holds the token with its user, staff profile,
institution and roles after the client's first request (enrollment.authentication) and reads only the
token's row by primary key (still there? the owner's password and active flag, expiry); the catalogue,
regions, policies and institutions are held per process (enrollment.reference_cache) and cost no query
(the token's last use is written at most once a minute: the client below has used it already).
Each test compares one row against several and pins the count.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from enrollment import reference_cache, services
from enrollment.services import person_status
from enrollment.services.api_tokens import api_token_issue
from reviews import services as review_services
from tests.conftest import pdf_upload
from tests.enrollment.validity_helpers import enrol
from tests.reviews.helpers import MARCH_2, assemble, diagnosed, reviewer

pytestmark = pytest.mark.django_db

MORE = 8


def token_client(user: Any) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {api_token_issue(user=user).key}")
    assert client.get("/api/v1/").status_code == 200  # the first use records last_used_at, holds the token
    reference_cache.warm()  # a serving process holds the catalogue, regions, policies and institutions
    return client


def count(client: APIClient, path: str, data: dict[str, Any] | None = None, status: int = 200) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(path, data or {})
    assert response.status_code == status, (path, response.status_code, response.content[:300])
    return len(queries)


def file(world: Any, n: int = 1) -> list[Any]:
    return [
        services.application_submit(
            person=world.person(), disease=world.hypertension, treating_institution=world.county, actor=world.clerk
        )
        for _ in range(n)
    ]


@pytest.mark.parametrize(("role", "pinned"), [("clerk", 3), ("reviewer", 3), ("admin", 3)])
def test_application_list_query_count(world, role, pinned):
    client = token_client(getattr(world, role))
    file(world)
    one = count(client, "/api/v1/applications/")
    file(world, MORE)
    assert count(client, "/api/v1/applications/") == one == pinned


def test_application_detail_query_count(world):
    client = token_client(world.reviewer)  # sees the masked number: no access-log row
    application = file(world)[0]
    path = f"/api/v1/applications/{application.pk}/"
    one = count(client, path)
    for i in range(3):
        services.document_attach(
            application_id=application.pk, actor=world.clerk, doc_type="test_report", upload=pdf_upload(f"r{i}.pdf")
        )
    services.application_withdraw(application_id=application.pk, actor=world.clerk, reason="moved")
    assert count(client, path) == one == 4


def test_filing_query_count(world):
    """POST /api/v1/applications/: the token's row, the person found and locked in one query, status events,
    their active applications, the application and its audit row; the answer from the rows in hand."""
    client = token_client(world.clerk)
    persons = [world.person() for _ in range(2)]
    counts = []
    for person in persons:
        with CaptureQueriesContext(connection) as queries:
            response = client.post(
                "/api/v1/applications/",
                {"id_number": person.id_number, "disease": "M03900", "treating_institution": world.county.code},
                format="json",
            )
        assert response.status_code == 201, response.content
        assert [entry["transition"] for entry in response.json()["timeline"]] == ["submit"]
        counts.append(len([q for q in queries.captured_queries if "SAVEPOINT" not in q["sql"]]))
    assert counts == [6, 6]


def test_person_lookup_and_catalogue_query_counts(world):
    client = token_client(world.clerk)
    person = world.person()
    assert count(client, "/api/v1/persons/", {"id_number": person.id_number}) == 3  # + the access-log row
    assert count(client, "/api/v1/diseases/") == 3
    assert count(client, "/api/v1/diseases/M03900/") == 3
    assert count(client, "/api/v1/institutions/") == 3
    assert count(client, f"/api/v1/institutions/{world.county.code}/") == 2


def test_reminder_lists_query_count(world):
    client = token_client(world.clerk)
    application = file(world)[0]
    assert count(client, f"/api/v1/applications/{application.pk}/reminders/") == 3
    assert count(client, "/api/v1/reminders/") == 2


def test_coverage_query_count(world):
    client = token_client(world.clerk)
    person = world.person()
    asked = {"id_number": person.id_number, "disease": "M03900", "date": "2026-03-02"}
    # the token's row; one statement for the person (with whether they have any status events or categories),
    # their applications of the disease and each one's approval row with its actor (enrollment.sql
    # .coverage_reads); the access-log row. The user's profile and roles, the disease and the clerk's
    # institution's region are held per process; events and categories are not read when there are none.
    assert count(client, "/api/v1/coverage/", asked) == 3
    enrol(world, on=dt.date(2026, 2, 2), person=person, disease=world.hypertension)
    count(client, "/api/v1/coverage/", asked)  # the writes dropped the held token and reference copies
    reference_cache.warm()
    with CaptureQueriesContext(connection) as queries:
        answer = client.get("/api/v1/coverage/", asked).json()
    assert answer["covered"] is True and answer["decision"]["actor"] == world.reviewer.username
    assert len(queries) == 3  # an approved enrollment and its decision come in the same statement
    person_status.status_event_record(
        person=person,
        kind="categories_set",
        effective_date=dt.date(2026, 1, 1),
        source="test",
        reference="count-1",
        actor=world.officer,
        categories=["extreme_hardship"],
    )
    count(client, "/api/v1/coverage/", asked)
    reference_cache.warm()
    # ... and the events and categories are read (one statement each) once the person has them
    assert count(client, "/api/v1/coverage/", asked) == 5


def test_review_api_query_counts(world):
    decider = reviewer(world, ["initial_review"], username="counting-reviewer")
    client = token_client(decider)
    diagnosed(world)
    batch = assemble(world)
    with time_machine.travel(MARCH_2 + dt.timedelta(hours=1), tick=False):
        count(client, "/api/v1/queue/", {"limit": 50})  # the fixtures' writes dropped the held token: read again
        queue_one = count(client, "/api/v1/queue/", {"limit": 50})
        batches_one = count(client, "/api/v1/batches/")
        batch_one = count(client, f"/api/v1/batches/{batch.pk}/")
        item = review_services.queue_claim(actor=decider, count=1)[0]
        item_one = count(client, f"/api/v1/review-items/{item.pk}/")
    for _ in range(MORE):
        diagnosed(world)
    assemble(world, period="2026-04", at=MARCH_2 + dt.timedelta(days=31))
    with time_machine.travel(MARCH_2 + dt.timedelta(days=31, hours=1), tick=False):
        review_services.queue_claim(actor=decider, count=3)
        assert count(client, "/api/v1/queue/", {"limit": 50}) == queue_one == 2
        assert count(client, "/api/v1/batches/") == batches_one
        assert count(client, f"/api/v1/batches/{batch.pk}/") == batch_one
        assert count(client, f"/api/v1/review-items/{item.pk}/") == item_one == 3
