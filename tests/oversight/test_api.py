"""Oversight API: the re-check queue and decisions, notices (公示) and their entries, objections and their
resolution — the pages' permissions, masked output, the kernel's error shape, idempotent POSTs."""

from __future__ import annotations

from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from enrollment.models import Application, State
from enrollment.services import get_system_user
from enrollment.services.api_tokens import api_token_issue
from oversight import services
from oversight.models import NoticeEntry, Objection, PublicNotice, RecheckRate, RecheckSample, RecheckState
from tests.factories import staff_user
from tests.oversight.helpers import PERIOD, batch_approvals, immediate_approval

pytestmark = pytest.mark.django_db


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert body["code"] == code and body["message"], body
    return body


@pytest.fixture
def sample(world):
    spot = immediate_approval(world)
    RecheckRate.objects.create(region=world.region, percent=Decimal(100))
    services.recheck_draw(region_id=world.region.pk, period=PERIOD, actor=get_system_user())
    return RecheckSample.objects.select_related("application__person").get(application=spot)


@pytest.fixture
def batch(world):
    batch, _approvals = batch_approvals(world, 2)
    return batch


@pytest.fixture
def notice(world, batch):
    return services.notice_publish(batch_id=batch.pk, actor=world.officer)


def other_officer(world):
    return staff_user("center_officer", institution=world.other_clinic)


# ---------------------------------------------------------------------------
# Re-checks
# ---------------------------------------------------------------------------


def test_recheck_queue_is_the_pages_scope(world, sample):
    mine = client_for(world.reviewer).get("/api/v1/rechecks/")
    assert mine.status_code == 200
    (row,) = mine.json()["results"]
    assert (row["id"], row["application"], row["state"], row["kind"], row["region"], row["period"]) == (
        sample.pk,
        sample.application_id,
        "pending",
        "immediate",
        world.region.code,
        PERIOD,
    )
    person = sample.application.person
    assert person.name not in mine.content.decode() and person.id_number not in mine.content.decode()
    assert client_for(world.admin).get("/api/v1/rechecks/").json()["count"] == 1
    assert client_for(world.other_reviewer).get("/api/v1/rechecks/").json()["results"] == []
    assert client_for(world.reviewer).get("/api/v1/rechecks/", {"state": "passed"}).json()["results"] == []
    assert client_for(world.reviewer).get("/api/v1/rechecks/", {"state": "all"}).json()["count"] == 1
    assert client_for(world.reviewer).get(f"/api/v1/rechecks/{sample.pk}/").json()["id"] == sample.pk
    assert_error(client_for(world.other_reviewer).get(f"/api/v1/rechecks/{sample.pk}/"), 404, "not_found")
    for user in (world.clerk, world.officer, world.physician_user):
        assert_error(client_for(user).get("/api/v1/rechecks/"), 403, "permission_denied")
    assert_error(APIClient().get("/api/v1/rechecks/"), 401, "not_authenticated")
    body = assert_error(client_for(world.reviewer).get("/api/v1/rechecks/", {"state": "maybe"}), 400, "invalid")
    assert body["details"] == {"field": "state"}


def test_recheck_fail_terminates_with_the_recheck_reason(world, sample):
    path = f"/api/v1/rechecks/{sample.pk}/decide/"
    response = client_for(world.reviewer).post(path, {"result": "fail", "reason": "诊断证明与病种不符"}, format="json")
    assert response.status_code == 200, response.content
    assert (response.json()["state"], response.json()["correction"]) == ("failed", "terminated")
    assert response.json()["checked_by"] == world.reviewer.username
    application = Application.objects.get(pk=sample.application_id)
    assert (application.state, application.termination_reason) == (State.TERMINATED, "recheck_failed")
    again = client_for(world.reviewer).post(path, {"result": "pass"}, format="json")
    assert_error(again, 409, "already_rechecked")


def test_recheck_decide_refusals(world, sample):
    path = f"/api/v1/rechecks/{sample.pk}/decide/"
    assert_error(client_for(world.other_reviewer).post(path, {"result": "pass"}, format="json"), 404, "not_found")
    assert_error(client_for(world.clerk).post(path, {"result": "pass"}, format="json"), 403, "permission_denied")
    # Administrators read the queue; the decision is a reviewer's (the service refuses it, as on the page).
    assert_error(client_for(world.admin).post(path, {"result": "pass"}, format="json"), 403, "permission_denied")
    missing = assert_error(client_for(world.reviewer).post(path, {}, format="json"), 400, "invalid")
    assert "result" in missing["details"]
    unknown = assert_error(client_for(world.reviewer).post(path, {"result": "maybe"}, format="json"), 400, "invalid")
    assert unknown["message"].startswith("result:")
    no_reason = assert_error(client_for(world.reviewer).post(path, {"result": "fail"}, format="json"), 400, "invalid")
    assert no_reason["details"] == {"field": "reason"}
    assert_error(client_for(world.reviewer).post("/api/v1/rechecks/abc/decide/", {"result": "pass"}), 404, "not_found")
    assert RecheckSample.objects.get(pk=sample.pk).state == RecheckState.PENDING


def test_recheck_decide_with_a_token_is_idempotent(world, sample):
    issued = api_token_issue(user=world.reviewer, name="oversight")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {issued.key}")
    path = f"/api/v1/rechecks/{sample.pk}/decide/"
    first = client.post(path, {"result": "pass", "reason": "ok"}, format="json", HTTP_IDEMPOTENCY_KEY="rc-1")
    again = client.post(path, {"result": "pass", "reason": "ok"}, format="json", HTTP_IDEMPOTENCY_KEY="rc-1")
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json() and again["Idempotent-Replayed"] == "true"
    other = client.post(path, {"result": "fail", "reason": "x"}, format="json", HTTP_IDEMPOTENCY_KEY="rc-1")
    assert_error(other, 409, "idempotency_key_reused")
    assert RecheckSample.objects.get(pk=sample.pk).state == RecheckState.PASSED


# ---------------------------------------------------------------------------
# Notices
# ---------------------------------------------------------------------------


def test_publish_a_notice_and_read_its_masked_entries(world, batch):
    response = client_for(world.officer).post("/api/v1/notices/", {"batch": batch.pk}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    notice = PublicNotice.objects.get(batch=batch)
    assert (body["id"], body["batch"], body["region"], body["days"], body["entries"]) == (
        notice.pk,
        batch.pk,
        world.region.code,
        7,
        2,
    )
    assert body["public_url"] == f"/notices/{notice.token}/"
    listing = client_for(world.officer).get("/api/v1/notices/")
    assert [n["id"] for n in listing.json()["results"]] == [notice.pk]
    assert client_for(world.admin).get(f"/api/v1/notices/{notice.pk}/").json()["period"] == batch.period
    entries = client_for(world.officer).get(f"/api/v1/notices/{notice.pk}/entries/")
    assert entries.status_code == 200
    rows = entries.json()["results"]
    assert [row["number"] for row in rows] == [1, 2]
    content = entries.content.decode()
    for entry in NoticeEntry.objects.filter(notice=notice).select_related("application__person"):
        person = entry.application.person
        assert person.name not in content and person.id_number not in content
        assert entry.masked_id_number in content and entry.masked_name in content
    assert {row["masked_id_number"] for row in rows} == {
        e.application.person.masked_id_number for e in NoticeEntry.objects.filter(notice=notice)
    }
    assert_error(
        client_for(world.officer).post("/api/v1/notices/", {"batch": batch.pk}, format="json"),
        409,
        "already_published",
    )


def test_notice_refusals(world, batch):
    officer = client_for(world.officer)
    days = assert_error(officer.post("/api/v1/notices/", {"batch": batch.pk, "days": 3}, format="json"), 400, "invalid")
    assert "days" in days["details"]
    assert_error(officer.post("/api/v1/notices/", {}, format="json"), 400, "invalid")
    assert_error(officer.post("/api/v1/notices/", {"batch": 999999}, format="json"), 404, "not_found")
    assert_error(
        client_for(other_officer(world)).post("/api/v1/notices/", {"batch": batch.pk}, format="json"), 404, "not_found"
    )
    for user in (world.clerk, world.reviewer):
        assert_error(
            client_for(user).post("/api/v1/notices/", {"batch": batch.pk}, format="json"), 403, "permission_denied"
        )
        assert_error(client_for(user).get("/api/v1/notices/"), 403, "permission_denied")
    assert not PublicNotice.objects.exists()
    notice = services.notice_publish(batch_id=batch.pk, actor=world.officer)
    stranger = client_for(other_officer(world))
    assert stranger.get("/api/v1/notices/").json()["results"] == []
    assert_error(stranger.get(f"/api/v1/notices/{notice.pk}/"), 404, "not_found")
    assert_error(stranger.get(f"/api/v1/notices/{notice.pk}/entries/"), 404, "not_found")
    assert_error(client_for(world.reviewer).get(f"/api/v1/notices/{notice.pk}/entries/"), 403, "permission_denied")


# ---------------------------------------------------------------------------
# Objections
# ---------------------------------------------------------------------------


def test_objection_recorded_then_dismissed_then_another_upheld(world, notice):
    entry = notice.entries.get(number=1)
    officer = client_for(world.officer)
    path = f"/api/v1/notice-entries/{entry.pk}/objections/"
    first = officer.post(path, {"channel": "phone", "text": "他已迁出本省", "contact": "13900001111"}, format="json")
    assert first.status_code == 201, first.content
    assert (first.json()["entry"], first.json()["state"], first.json()["recorded_by"]) == (
        entry.pk,
        "open",
        world.officer.username,
    )
    entry.refresh_from_db()
    assert entry.held
    rows = officer.get(f"/api/v1/notices/{notice.pk}/entries/").json()["results"]
    assert rows[0]["held"] and [o["id"] for o in rows[0]["objections"]] == [first.json()["id"]]

    dismissed = officer.post(
        f"/api/v1/objections/{first.json()['id']}/resolve/",
        {"upheld": False, "resolution": "核实：未迁出"},
        format="json",
    )
    assert dismissed.status_code == 200, dismissed.content
    assert (dismissed.json()["objection"]["state"], dismissed.json()["terminated"]) == ("rejected", False)
    entry.refresh_from_db()
    assert not entry.held and Application.objects.get(pk=entry.application_id).state == State.APPROVED

    second = officer.post(path, {"channel": "letter", "text": "确已迁出"}, format="json").json()
    upheld = officer.post(
        f"/api/v1/objections/{second['id']}/resolve/",
        {"upheld": True, "resolution": "医保转出省外已核实"},
        format="json",
    )
    assert upheld.status_code == 200, upheld.content
    assert (upheld.json()["objection"]["state"], upheld.json()["terminated"]) == ("upheld", True)
    application = Application.objects.get(pk=entry.application_id)
    assert (application.state, application.termination_reason) == (State.TERMINATED, "objection_upheld")
    assert_error(
        officer.post(
            f"/api/v1/objections/{second['id']}/resolve/", {"upheld": False, "resolution": "x"}, format="json"
        ),
        409,
        "already_resolved",
    )
    assert_error(officer.post(path, {"channel": "phone", "text": "again"}, format="json"), 409, "entry_withdrawn")


def test_objection_refusals(world, notice):
    entry = notice.entries.get(number=2)
    path = f"/api/v1/notice-entries/{entry.pk}/objections/"
    officer = client_for(world.officer)
    channel = assert_error(officer.post(path, {"channel": "fax", "text": "x"}, format="json"), 400, "invalid")
    assert "channel" in channel["details"]
    assert_error(officer.post(path, {"channel": "phone", "text": ""}, format="json"), 400, "invalid")
    assert_error(officer.post(path, {"channel": "phone", "text": " "}, format="json"), 400, "invalid")
    assert_error(
        client_for(other_officer(world)).post(path, {"channel": "phone", "text": "x"}, format="json"), 404, "not_found"
    )
    for user in (world.clerk, world.reviewer):
        assert_error(
            client_for(user).post(path, {"channel": "phone", "text": "x"}, format="json"), 403, "permission_denied"
        )
    assert_error(
        officer.post("/api/v1/notice-entries/x/objections/", {"channel": "phone", "text": "x"}), 404, "not_found"
    )
    assert not Objection.objects.exists()

    objection = services.objection_record(entry_id=entry.pk, actor=world.officer, channel="phone", text="x")
    resolve = f"/api/v1/objections/{objection.pk}/resolve/"
    missing = assert_error(officer.post(resolve, {"resolution": "x"}, format="json"), 400, "invalid")
    assert "upheld" in missing["details"]
    assert_error(officer.post(resolve, {"upheld": True, "resolution": ""}, format="json"), 400, "invalid")
    assert_error(
        client_for(other_officer(world)).post(resolve, {"upheld": True, "resolution": "x"}, format="json"),
        404,
        "not_found",
    )
    assert_error(
        client_for(world.clerk).post(resolve, {"upheld": True, "resolution": "x"}, format="json"),
        403,
        "permission_denied",
    )
    objection.refresh_from_db()
    assert objection.state == "open"
    assert Application.objects.get(pk=entry.application_id).state == State.APPROVED
