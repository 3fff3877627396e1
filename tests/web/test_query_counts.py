"""Every list and detail page runs a fixed number of SQL queries, whatever the number of rows (no N+1).

Each test renders the page with one row, adds more, renders again and compares; the counts are also
pinned, so that a new per-request query shows up here first.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from enrollment import services
from reviews import services as review_services
from tests.conftest import pdf_upload
from tests.reviews.helpers import MARCH_2, assemble, diagnosed, reviewer

pytestmark = pytest.mark.django_db

MORE = 8


def count(client: Any, path: str) -> int:
    client.get(path)  # first request of the session: language, session and content-type caches
    with CaptureQueriesContext(connection) as queries:
        response = client.get(path)
    assert response.status_code == 200, (path, response.status_code)
    return len(queries)


def file(world: Any, n: int = 1, **kwargs: Any) -> list[Any]:
    return [
        services.application_submit(
            person=world.person(), disease=world.hypertension, treating_institution=world.county, actor=world.clerk
        )
        for _ in range(n)
    ]


@pytest.mark.parametrize(
    ("role", "pinned"),
    # The clinic home's 补正 block adds two queries no cache can remove: its open supplement requests and its
    # unread-notification count (clerk 10 -> 12). The workplace in the nav and the scope read the institution
    # and region from the per-process reference copy (physician and reviewer 8 -> 7). Oversight's block of the
    # open re-check correction requests adds one more for the clinic (12 -> 13).
    [("clerk", 13), ("physician_user", 7), ("officer", 8), ("reviewer", 7), ("admin", 7)],
)
def test_home_page_query_count_is_fixed(world, client_for, role, pinned):
    user = getattr(world, role)
    client = client_for(user)
    file(world)
    one = count(client, "/")
    file(world, MORE)
    assert count(client, "/") == one == pinned


@pytest.mark.parametrize("path", ["/applications/", "/applications/?state=submitted"])
def test_application_list_page_query_count_is_fixed(world, client_for, path):
    client = client_for(world.clerk)
    file(world)
    one = count(client, path)
    file(world, MORE)
    # 6 (the clerk's institution comes from the per-process reference copy), plus the filter choices offered
    # from the scope (diseases, institutions, regions) and the saved views.
    assert count(client, path) == one == 10


def test_application_detail_page_query_count_is_fixed(world, client_for):
    client = client_for(world.clerk)
    application = services.application_submit(
        person=world.person(),
        disease=world.hypertension,
        treating_institution=world.county,
        documents=[("diagnosis_certificate", pdf_upload())],
        actor=world.clerk,
    )
    path = f"/applications/{application.pk}/"
    one = count(client, path)
    for i in range(3):
        services.document_attach(
            application_id=application.pk, actor=world.clerk, doc_type="test_report", upload=pdf_upload(f"r{i}.pdf")
        )
    services.application_withdraw(application_id=application.pk, actor=world.clerk, reason="moved")
    assert count(client, path) == one


def test_review_queue_page_query_count_is_fixed(world, client_for):
    decider = reviewer(world, ["initial_review"], username="counting-reviewer")
    client = client_for(decider)
    for _ in range(MORE + 1):
        diagnosed(world)
    assemble(world)
    with time_machine.travel(MARCH_2 + dt.timedelta(hours=1), tick=False):
        review_services.queue_claim(actor=decider, count=1)
        one = count(client, "/reviews/queue/")
        review_services.queue_claim(actor=decider, count=MORE)
        assert count(client, "/reviews/queue/") == one


def test_batch_pages_query_count_is_fixed(world, client_for):
    client = client_for(world.reviewer)
    diagnosed(world)
    batch = assemble(world)
    one_list = count(client, "/reviews/batches/")
    one_detail = count(client, f"/reviews/batches/{batch.pk}/")
    for _ in range(3):
        diagnosed(world, disease=world.diabetes)
    assemble(world, period="2026-04", at=MARCH_2 + dt.timedelta(days=31))
    assert count(client, "/reviews/batches/") == one_list
    assert count(client, f"/reviews/batches/{batch.pk}/") == one_detail
