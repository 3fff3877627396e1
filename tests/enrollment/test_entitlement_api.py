"""The entitlement rules through the API, the file import and the admin (docs/entitlement.md)."""

from __future__ import annotations

import datetime as dt
from io import StringIO

from django.core.management import call_command
from django.utils import timezone

from enrollment.models import Application, PersonStatusEvent, State
from tests.enrollment.validity_helpers import at, enrol
from tests.factories import synthetic_id_number

D = dt.date


def coverage(client, person, day, **extra):
    params = {"id_number": person.id_number, "disease": "M03900", "date": day.isoformat(), **extra}
    return client.get("/api/v1/coverage/", params)


def test_coverage_api_answers_per_benefit_with_status_categories_and_cross_province(world, client):
    enrollment = enrol(world, on=D(2026, 3, 15))
    world.hypertension.cross_province_settlement = True
    world.hypertension.save()
    client.force_login(world.clerk)
    body = coverage(client, enrollment.person, D(2026, 4, 1)).json()
    assert body["covered"] is True and body["benefit"] == "outpatient_chronic"
    assert body["insurance_status"] == "insured" and body["insurance_type"] == "390"
    assert body["cross_province_settlement"] is True
    assert body["two_diseases"] == {
        "covered": False,
        "reason": "not_enrolled",
        "valid_from": None,
        "valid_until": None,
        "enrollment": None,
    }
    assert body["support_categories"] == [] and body["as_of"] is None


def test_status_events_api_permissions_idempotency_and_effect(world, client):
    enrollment = enrol(world, on=D(2026, 3, 15))
    url = f"/api/v1/persons/{enrollment.person.pk}/status-events/"
    payload = {"kind": "moved_out", "effective_date": "2026-07-01", "source": "province-hub", "reference": "TR-1"}
    with at(D(2026, 7, 2)):
        client.force_login(world.clerk)
        assert client.post(url, payload, content_type="application/json").status_code == 403
        client.force_login(world.officer)
        first = client.post(url, payload, content_type="application/json")
        assert first.status_code == 201, first.content
        assert first.json()["terminated"] == [enrollment.pk]
        again = client.post(url, payload, content_type="application/json")
        assert again.status_code == 200 and again.json()["created"] is False
        assert again.json()["event"]["id"] == first.json()["event"]["id"]
        conflict = client.post(url, {**payload, "effective_date": "2026-07-05"}, content_type="application/json")
        assert conflict.status_code == 409 and conflict.json()["code"] == "reference_conflict"
        bad = client.post(url, {**payload, "kind": "abducted", "reference": "x"}, content_type="application/json")
        assert bad.status_code == 400
        listed = client.get(url)
        assert listed.status_code == 200 and [e["kind"] for e in listed.json()] == ["moved_out"]
        client.force_login(world.clerk)
        assert client.get(url).status_code == 403
    enrollment.refresh_from_db()
    assert (enrollment.state, enrollment.ended_on) == (State.TERMINATED, D(2026, 6, 30))
    client.force_login(world.clerk)
    answer = coverage(client, enrollment.person, D(2026, 7, 1)).json()
    assert (answer["covered"], answer["reason"]) == (False, "moved_out")
    assert answer["status_event"]["reference"] == "TR-1"


def test_coverage_api_as_of_reproduces_the_answer_before_a_correction(world, client):
    enrollment = enrol(world, on=D(2026, 3, 15))
    with at(D(2026, 6, 1)):
        moment = timezone.now()
    client.force_login(world.officer)
    with at(D(2026, 8, 1)):
        client.post(
            f"/api/v1/persons/{enrollment.person.pk}/status-events/",
            {"kind": "died", "effective_date": "2026-05-20", "reference": "D-9"},
            content_type="application/json",
        )
        now = coverage(client, enrollment.person, D(2026, 5, 25)).json()
        then = coverage(client, enrollment.person, D(2026, 5, 25), as_of=moment.isoformat()).json()
        future = coverage(client, enrollment.person, D(2026, 5, 25), as_of="2099-01-01T00:00:00+08:00")
    assert (now["covered"], now["reason"]) == (False, "person_deceased")
    assert (then["covered"], then["reason"]) == (True, "covered")
    assert then["as_of"] is not None
    assert future.status_code == 400


def test_status_event_file_import_dry_run_commit_and_idempotent(world, tmp_path):
    alive = enrol(world, on=D(2026, 3, 15))
    other = world.person()
    path = tmp_path / "events.csv"
    rows = [
        "身份证号,事件,生效日期,业务编号,备注",
        f"{alive.person.id_number},死亡,2026-05-20,D-100,民政推送",
        f"{other.id_number},暂停参保,2026/05/01,S-100,",
        f"{synthetic_id_number(dt.date(1970, 1, 1))},死亡,2026-05-20,D-101,",
        "110101199001011234,死亡,2026-05-20,D-102,",
        f"{other.id_number},abducted,2026-05-20,X-1,",
        f"{other.id_number},恢复参保,2026-05-40,R-1,",
        f"{other.id_number},恢复参保,2026-06-01,S-100,",
    ]
    path.write_bytes(("\n".join(rows) + "\n").encode("gbk"))
    report = tmp_path / "report.csv"
    out = StringIO()
    with at(D(2026, 6, 2)):
        call_command(
            "import_status_events", str(path), "--user", world.officer.username, "--report", str(report), stdout=out
        )
    assert "valid              2" in out.getvalue() and "invalid            5" in out.getvalue()
    assert PersonStatusEvent.objects.count() == 0  # a dry run writes nothing
    text = report.read_bytes().decode("utf-8-sig")
    for code in ("person_not_registered", "invalid_id_number", "invalid_event", "invalid_date", "duplicate_reference"):
        assert code in text
    assert alive.person.id_number not in text  # masked in the report
    with at(D(2026, 6, 2)):
        call_command("import_status_events", str(path), "--user", world.officer.username, "--commit", stdout=out)
        assert PersonStatusEvent.objects.count() == 2
        alive.refresh_from_db()
        assert alive.state == State.TERMINATED
        out = StringIO()
        call_command("import_status_events", str(path), "--user", world.officer.username, "--commit", stdout=out)
    assert "already_recorded   2" in out.getvalue()
    assert PersonStatusEvent.objects.count() == 2


def test_admin_records_a_status_event_through_the_service(world, client):
    enrollment = enrol(world, on=D(2026, 3, 15))
    world.admin.is_staff = True
    world.admin.is_superuser = True
    world.admin.save()
    client.force_login(world.admin)
    with at(D(2026, 9, 1)):
        response = client.post(
            "/admin/enrollment/personstatusevent/add/",
            {
                "person": enrollment.person.pk,
                "kind": "insurance_ended",
                "effective_date": "2026-09-01",
                "source": "admin",
                "reference": "ADM-1",
                "insurance_type": "",
                "categories": "[]",
                "note": "",
            },
        )
    assert response.status_code == 302, response.content[:2000]
    enrollment.refresh_from_db()
    assert (enrollment.state, enrollment.ended_on) == (State.TERMINATED, D(2026, 8, 31))
    assert Application.objects.filter(pk=enrollment.pk, termination_reason="loss_of_coverage").exists()
