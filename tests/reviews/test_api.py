"""Reviews API: batches, queue, decisions, immediate approval; scoping, error format, idempotency."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from enrollment.models import Application, AuditEntry, State
from reviews import services as review_services
from reviews.models import ReviewItem
from tests.reviews.helpers import PERIOD, assemble, diagnosed, item_of, reviewer

pytestmark = pytest.mark.django_db


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def batch(world):
    for _ in range(3):
        diagnosed(world)
    diagnosed(world, disease=world.renal)
    return assemble(world)


def test_anonymous_is_refused(world):
    for path in ("/api/v1/batches/", "/api/v1/queue/"):
        response = APIClient().get(path)
        assert response.status_code == 401 and response.json()["code"] == "not_authenticated"


def test_batches_list_and_detail_are_scoped_to_the_region(world, batch):
    mine = client_for(world.reviewer).get("/api/v1/batches/")
    assert mine.status_code == 200
    assert [(b["id"], b["region"], b["period"], b["state"], b["item_count"]) for b in mine.json()["results"]] == [
        (batch.pk, world.region.code, PERIOD, "reviewing", 4)
    ]
    assert client_for(world.other_reviewer).get("/api/v1/batches/").json()["results"] == []
    assert client_for(world.clerk).get("/api/v1/batches/").json()["results"] == []
    assert client_for(world.other_reviewer).get(f"/api/v1/batches/{batch.pk}/").status_code == 404
    assert len(client_for(world.admin).get("/api/v1/batches/", {"period": PERIOD}).json()["results"]) == 1

    detail = client_for(world.reviewer).get(f"/api/v1/batches/{batch.pk}/")
    assert detail.status_code == 200
    stats = detail.json()["stats"]
    assert stats["by_outcome"]["pending"] == 4
    assert stats["pending_by_stage"] == {"initial_review": 4}
    assert {row["code"] for row in stats["by_disease"]} == {"M03900", "M07800"}


def test_queue_list_claim_decide_and_release(world, batch):
    client = client_for(world.reviewer)
    page = client.get("/api/v1/queue/", {"limit": 3})
    assert page.status_code == 200
    body = page.json()
    assert len(body["results"]) == 3 and body["next"]
    assert body["results"][0]["person_id_number"].count("*") == 11  # masked
    rest = client.get("/api/v1/queue/", {"limit": 3, "cursor": body["next"]}).json()
    assert len(rest["results"]) == 1 and rest["next"] is None
    assert client.get("/api/v1/queue/", {"cursor": "nonsense"}).json()["code"] == "invalid"

    claimed = client.post("/api/v1/queue/claim/", {"count": 2}, format="json")
    assert claimed.status_code == 200
    ids = [row["id"] for row in claimed.json()]
    assert len(ids) == 2 and all(row["claimed_by"] == world.reviewer.username for row in claimed.json())
    assert [row["id"] for row in client.get("/api/v1/queue/", {"mine": "1"}).json()["results"]] == ids

    approved = client.post(f"/api/v1/review-items/{ids[0]}/approve/", {}, format="json")
    assert approved.status_code == 200
    assert approved.json()["outcome"] == "approved"
    assert approved.json()["decisions"][0]["decided_by"] == world.reviewer.username
    returned = client.post(f"/api/v1/review-items/{ids[1]}/return/", {"missing": "ECG report"}, format="json")
    assert returned.json()["application_state"] == "returned"

    client.post("/api/v1/queue/claim/", {"count": 1}, format="json")
    assert client.post("/api/v1/queue/release/", {}, format="json").json() == {"released": 1}


def test_reject_with_two_diseases_through_the_api(world, batch):
    client = client_for(world.reviewer)
    item = ReviewItem.objects.filter(application__disease=world.hypertension).first()
    client.post("/api/v1/queue/claim/", {"count": 10}, format="json")
    bad = client.post(f"/api/v1/review-items/{item.pk}/reject/", {"reason": "x"}, format="json")
    assert bad.status_code == 400 and bad.json()["code"] == "invalid"
    response = client.post(
        f"/api/v1/review-items/{item.pk}/reject/",
        {"reason_code": "criteria_not_met", "reason": "controlled", "two_diseases": True},
        format="json",
    )
    assert response.status_code == 200
    fallback = response.json()["decisions"][0]["two_diseases_application"]
    assert Application.objects.get(pk=fallback).state == State.APPROVED


def test_bulk_reject_with_two_diseases_through_the_api(world, batch):
    """The bulk path applies the 两病 choice exactly like the single one (issue: it used to drop it)."""
    client = client_for(world.reviewer)
    client.post("/api/v1/queue/claim/", {"count": 10}, format="json")
    hypertension = list(ReviewItem.objects.filter(application__disease=world.hypertension).values_list("pk", flat=True))
    renal = ReviewItem.objects.get(application__disease=world.renal).pk
    response = client.post(
        "/api/v1/review-items/bulk-decide/",
        {
            "items": [*hypertension, renal],
            "decision": "reject",
            "reason_code": "criteria_not_met",
            "reason": "未达门慢标准",
            "two_diseases": True,
        },
        format="json",
    )
    assert response.status_code == 200
    body = response.json()
    assert body["decided"] == hypertension
    assert [(f["item"], f["code"]) for f in body["failed"]] == [(renal, "two_diseases_not_applicable")]
    persons = ReviewItem.objects.filter(pk__in=hypertension).values_list("application__person", flat=True)
    fallbacks = Application.objects.filter(person__in=list(persons), kind="two_diseases", state=State.APPROVED)
    assert fallbacks.count() == len(hypertension) == 3


def test_errors_use_the_core_format_and_statuses(world, batch):
    item = ReviewItem.objects.filter(application__disease=world.renal).get()
    client = client_for(world.reviewer)
    not_claimed = client.post(f"/api/v1/review-items/{item.pk}/approve/", {}, format="json")
    assert not_claimed.status_code == 409 and not_claimed.json()["code"] == "not_claimed"
    client.post("/api/v1/queue/claim/", {"count": 10}, format="json")
    assert client.post(f"/api/v1/review-items/{item.pk}/approve/", {}, format="json").status_code == 200
    # world.reviewer holds every stage, but may not decide the re-check after the initial review.
    refused = client.post(f"/api/v1/review-items/{item.pk}/approve/", {}, format="json")
    assert refused.status_code == 409 and refused.json()["code"] == "separation_of_duties"
    assert refused.json()["message"]
    not_held = client_for(reviewer(world, ["approval"])).post(f"/api/v1/review-items/{item.pk}/approve/")
    assert not_held.status_code == 403 and not_held.json()["code"] == "permission_denied"
    assert client_for(world.other_reviewer).get(f"/api/v1/review-items/{item.pk}/").status_code == 404
    assert client_for(world.other_reviewer).post(f"/api/v1/review-items/{item.pk}/approve/").status_code == 404
    bad_count = client.post("/api/v1/queue/claim/", {"count": 0}, format="json")
    assert bad_count.status_code == 400


def test_bulk_decide_reports_each_item(world, batch):
    client = client_for(world.reviewer)
    claimed = [row["id"] for row in client.post("/api/v1/queue/claim/", {"count": 2}, format="json").json()]
    unclaimed = ReviewItem.objects.exclude(pk__in=claimed).first().pk
    foreign = world.person(insured_region=world.other_region)
    other = diagnosed(world, person=foreign)
    from enrollment.services import get_system_user

    review_services.batch_assemble(region_id=world.other_region.pk, period=PERIOD, actor=get_system_user())
    response = client.post(
        "/api/v1/review-items/bulk-decide/",
        {"items": [*claimed, unclaimed, item_of(other).pk], "decision": "approve"},
        format="json",
    )
    assert response.status_code == 200
    body = response.json()
    assert body["decided"] == claimed
    assert {(f["item"], f["code"]) for f in body["failed"]} == {
        (unclaimed, "not_claimed"),
        (item_of(other).pk, "not_found"),
    }
    assert AuditEntry.objects.filter(transition="approve", batch_id=batch.pk).count() == 2


def test_claim_with_idempotency_key_is_replayed(world, batch):
    client = client_for(world.reviewer)
    first = client.post("/api/v1/queue/claim/", {"count": 2}, format="json", HTTP_IDEMPOTENCY_KEY="claim-1")
    again = client.post("/api/v1/queue/claim/", {"count": 2}, format="json", HTTP_IDEMPOTENCY_KEY="claim-1")
    assert again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert ReviewItem.objects.filter(claimed_by=world.reviewer).count() == 2


def test_queue_page_query_count_does_not_grow_with_the_page(world, batch):
    client = client_for(world.reviewer)
    client.get("/api/v1/queue/", {"limit": 1})  # the user's roles are read once and cached on the user
    with CaptureQueriesContext(connection) as small:
        client.get("/api/v1/queue/", {"limit": 1})
    with CaptureQueriesContext(connection) as large:
        client.get("/api/v1/queue/", {"limit": 50})
    assert len(large) == len(small) <= 4


def test_immediate_approval_endpoint(world):
    application = diagnosed(world, disease=world.dialysis)
    refused = client_for(world.officer).post(
        "/api/v1/immediate-approvals/", {"application": diagnosed(world).pk}, format="json"
    )
    assert refused.status_code == 409 and refused.json()["code"] == "not_immediate"
    hidden = client_for(world.officer).post("/api/v1/immediate-approvals/", {"application": 999999}, format="json")
    assert hidden.status_code == 404
    assert (
        client_for(world.other_clerk)
        .post("/api/v1/immediate-approvals/", {"application": application.pk}, format="json")
        .status_code
        == 404
    )
    response = client_for(world.officer).post(
        "/api/v1/immediate-approvals/", {"application": application.pk, "reason": "on the spot"}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["state"] == "approved"
    assert Application.objects.get(pk=application.pk).state == State.APPROVED


def test_the_queue_row_serializer_writes_what_the_generic_drf_path_writes(world, batch):
    """ReviewItemSerializer reads its fields directly (the queue page's hot path); the answer must be the
    generic ModelSerializer's, key for key, for waiting, claimed and decided items."""
    from rest_framework import serializers as drf

    from reviews import selectors
    from reviews.serializers import ReviewItemSerializer

    items = list(ReviewItem.objects.filter(batch=batch).values_list("pk", flat=True))
    review_services.queue_claim(actor=world.reviewer, count=2)
    claimed = ReviewItem.objects.filter(claimed_by=world.reviewer).order_by("pk").first()
    review_services.review_decide(item_id=claimed.pk, actor=world.reviewer, decision="approve")
    rows = selectors.items_by_ids(items)
    assert {row.outcome for row in rows} >= {"pending"} and any(row.claimed_by_username for row in rows)
    serializer = ReviewItemSerializer()
    for row in rows:
        fast = ReviewItemSerializer(row).data
        generic = drf.ModelSerializer.to_representation(serializer, row)
        assert dict(fast) == dict(generic) and list(fast) == list(generic)
    assert any(dict(ReviewItemSerializer(row).data)["decided_at"] for row in rows)
    assert any(dict(ReviewItemSerializer(row).data)["lease_expires_at"] for row in rows)
