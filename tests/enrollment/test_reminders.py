"""Expiry reminders: due at the policy's offsets, sent at most once, late rather than never (issue 4)."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from celery.exceptions import Retry
from django.core import mail
from django.db import connections

from enrollment import notifications, services, tasks
from enrollment.models import Reminder, ReminderChannel, ReminderStatus
from enrollment.notifications import HttpGatewaySMSBackend, LocmemSMSBackend, SMSMessage
from tests.enrollment.validity_helpers import at, enrol, sweep
from tests.factories import PolicyFactory

D = dt.date
END = D(2029, 3, 14)  # valid_until of an enrollment approved on 2026-03-15


@pytest.fixture(autouse=True)
def _backends(settings):
    settings.SMS_BACKEND = "enrollment.notifications.LocmemSMSBackend"
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    LocmemSMSBackend.outbox.clear()
    yield
    LocmemSMSBackend.outbox.clear()


@pytest.fixture
def enrollment(world):
    world.clerk.email = "clinic@example.org"
    world.clerk.save(update_fields=["email"])
    return enrol(world, on=D(2026, 3, 15))


def deliver(result) -> list[Reminder]:
    return [services.reminder_deliver(reminder_id=pk) for pk in result.to_send]


def rows(application, **filters):
    return {(r.offset_days, r.channel): r.status for r in Reminder.objects.filter(application=application, **filters)}


def test_nothing_due_before_the_first_offset(enrollment):
    assert sweep(END - dt.timedelta(days=91)).reminders_due == 0
    assert not Reminder.objects.exists()


def test_due_reminder_goes_to_patient_clinic_and_in_app_list(enrollment, world):
    result = sweep(END - dt.timedelta(days=90))
    assert result.reminders_due == 1
    assert rows(enrollment) == {(90, "sms"): "pending", (90, "email"): "pending", (90, "in_app"): "sent"}
    with at(END - dt.timedelta(days=90), hour=2):
        delivered = deliver(result)
    assert {r.status for r in delivered} == {ReminderStatus.SENT}
    (sms,) = LocmemSMSBackend.outbox
    assert sms.to == "13812345678"
    assert "高血压病" in sms.text and "2029年3月14日" in sms.text and "还有90天到期" in sms.text
    assert "复审" in sms.text and "待遇将停止" in sms.text
    (email,) = mail.outbox
    assert email.to == ["clinic@example.org"]
    assert "高血压病" in email.subject and "2029年3月14日" in email.subject
    assert enrollment.person.id_number not in email.body  # masked
    assert enrollment.person.masked_id_number in email.body and "复审" in email.body


def test_each_offset_sent_once_when_the_sweep_runs_twice_and_tasks_repeat(enrollment):
    day = END - dt.timedelta(days=30)
    first = sweep(day)
    second = sweep(day)
    deliver(first)
    deliver(second)
    deliver(first)  # a redelivered task
    assert len(LocmemSMSBackend.outbox) == 1 and len(mail.outbox) == 1
    assert Reminder.objects.filter(application=enrollment, offset_days=30).count() == 3
    # 90 was never sent: the sweep first ran at the 30-day mark, so 90 is recorded as superseded.
    assert rows(enrollment, offset_days=90) == {(90, c): "skipped" for c in ("sms", "email", "in_app")}


def test_every_offset_over_a_whole_period(enrollment):
    day = END - dt.timedelta(days=100)
    while day <= END + dt.timedelta(days=3):
        deliver(sweep(day))
        day += dt.timedelta(days=1)
    sent = Counter((r.offset_days, r.channel) for r in Reminder.objects.filter(status="sent"))
    assert set(sent) == {(o, c) for o in (90, 30, 7, 0) for c in ("sms", "email", "in_app")}
    assert max(sent.values()) == 1
    assert len(LocmemSMSBackend.outbox) == 4
    assert "今天到期" in LocmemSMSBackend.outbox[-1].text


def test_missed_day_is_sent_late(enrollment):
    deliver(sweep(END - dt.timedelta(days=90)))
    # The sweep missed 30 days before the end; three days later it runs again.
    result = sweep(END - dt.timedelta(days=27))
    deliver(result)
    assert rows(enrollment, offset_days=30)[(30, "sms")] == "sent"
    assert "还有27天到期" in LocmemSMSBackend.outbox[-1].text
    reminder = Reminder.objects.get(application=enrollment, offset_days=30, channel="sms")
    assert reminder.due_on == END - dt.timedelta(days=30)


def test_policy_offsets_are_used(world):
    PolicyFactory(region=world.region, reminder_offsets=[60, 1])
    enrollment = enrol(world, on=D(2026, 3, 15))
    assert sweep(END - dt.timedelta(days=90)).reminders_due == 0
    assert sweep(END - dt.timedelta(days=60)).reminders_due == 1
    assert set(rows(enrollment)) == {(60, c) for c in ("sms", "email", "in_app")}


def test_filed_renewal_cancels_the_remaining_reminders(enrollment, world):
    created = sweep(END - dt.timedelta(days=30))  # rows created, not yet delivered
    with at(END - dt.timedelta(days=29)):
        services.application_renew(application_id=enrollment.pk, actor=world.clerk)
    assert rows(enrollment)[(30, "sms")] == "cancelled"
    assert deliver(created)[0].status == "cancelled"
    for days in (7, 0):
        assert sweep(END - dt.timedelta(days=days)).reminders_due == 0
    assert LocmemSMSBackend.outbox == [] and mail.outbox == []


def test_reminder_of_an_ended_enrollment_is_cancelled_at_delivery(enrollment, world):
    created = sweep(END - dt.timedelta(days=7))
    with at(END - dt.timedelta(days=7)):
        services.application_terminate(application_id=enrollment.pk, actor=world.reviewer, reason="death")
    assert {r.status for r in deliver(created)} == {"cancelled"}
    assert LocmemSMSBackend.outbox == []


def test_no_phone_number_is_recorded_as_skipped(world):
    enrollment = enrol(world, on=D(2026, 3, 15), person=world.person(phone=""))
    result = sweep(END - dt.timedelta(days=7))
    sms = Reminder.objects.get(application=enrollment, offset_days=7, channel="sms")
    assert (sms.status, sms.last_error) == ("skipped", "no mobile number on file")
    assert sms.pk not in result.to_send


@pytest.mark.parametrize("days_left", [90, 27, 1, 0, -2])
def test_texts_rendered_by_the_database_equal_the_python_templates(enrollment, world, days_left):
    """The sweep renders the texts in SQL from notifications' templates; they must be, character for
    character, what ``sms_text`` / ``clinic_subject`` / ``clinic_text`` give (dates, days, masking)."""
    PolicyFactory(region=world.region, grace_days=5)  # still covering two days after the end
    result = sweep(END - dt.timedelta(days=days_left))
    person = enrollment.person
    offset = min(o for o in (90, 30, 7, 0) if days_left <= o)
    stored = {r.channel: r for r in Reminder.objects.filter(application=enrollment, offset_days=offset)}
    disease, clinic_name = enrollment.disease.name, enrollment.filing_institution.name
    subject = notifications.clinic_subject(
        disease_name=disease, masked_id_number=person.masked_id_number, valid_until=END
    )
    body = notifications.clinic_text(
        application_id=enrollment.pk,
        person_name=person.name,
        masked_id_number=person.masked_id_number,
        disease_name=disease,
        valid_until=END,
        days_left=days_left,
    )
    sms = notifications.sms_text(disease_name=disease, valid_until=END, clinic_name=clinic_name, days_left=days_left)
    assert (stored["sms"].recipient, stored["sms"].subject, stored["sms"].message) == ("13812345678", "", sms)
    assert (stored["email"].recipient, stored["email"].subject, stored["email"].message) == (
        "clinic@example.org",
        subject,
        body,
    )
    assert (stored["in_app"].recipient, stored["in_app"].subject, stored["in_app"].message) == ("", subject, body)
    for reminder in stored.values():
        assert (reminder.due_on, reminder.valid_until, reminder.institution_id, reminder.attempts) == (
            END - dt.timedelta(days=offset),
            END,
            enrollment.filing_institution_id,
            0,
        )
        assert reminder.created_at == reminder.updated_at
    assert stored["in_app"].sent_at is not None and stored["sms"].sent_at is None
    assert sorted(result.to_send) == sorted([stored["sms"].pk, stored["email"].pk])


# ---------------------------------------------------------------------------
# The HTTP gateway backend and retries with back-off
# ---------------------------------------------------------------------------


class Gateway:
    """A local SMS gateway: answers the given statuses in turn, then 200."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = list(statuses)
        self.requests: list[dict] = []
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                gateway.requests.append(
                    {"body": json.loads(body), "auth": self.headers.get("Authorization"), "path": self.path}
                )
                status = gateway.statuses.pop(0) if gateway.statuses else 200
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/send"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def gateway(settings):
    server = Gateway([503, 502])
    settings.SMS_BACKEND = "enrollment.notifications.HttpGatewaySMSBackend"
    settings.SMS_GATEWAY_URL = server.url
    settings.SMS_GATEWAY_TOKEN = "test-token"
    yield server
    server.close()


def test_http_gateway_backend_posts_json_with_token(gateway):
    gateway.statuses = []
    HttpGatewaySMSBackend().send(SMSMessage(to="13800000000", text="您好", reference="reminder-1"))
    (request,) = gateway.requests
    assert request["body"] == {"to": "13800000000", "text": "您好", "reference": "reminder-1"}
    assert request["auth"] == "Bearer test-token" and request["path"] == "/send"


def test_failed_send_is_retried_until_delivered(enrollment, gateway):
    result = sweep(END - dt.timedelta(days=7))
    sms_id = Reminder.objects.get(application=enrollment, offset_days=7, channel="sms").pk
    assert sms_id in result.to_send
    tasks.send_reminder.apply(args=[sms_id])  # eager: the retries run at once
    reminder = Reminder.objects.get(pk=sms_id)
    assert (reminder.status, reminder.attempts, reminder.last_error) == ("sent", 3, "")
    assert len(gateway.requests) == 3
    assert {r["body"]["reference"] for r in gateway.requests} == {f"reminder-{sms_id}"}
    # Delivered: running the task again sends nothing.
    tasks.send_reminder.apply(args=[sms_id])
    assert len(gateway.requests) == 3


def test_failed_send_records_the_error_and_backs_off(enrollment, gateway):
    sweep(END - dt.timedelta(days=7))
    sms_id = Reminder.objects.get(application=enrollment, offset_days=7, channel="sms").pk
    tasks.send_reminder.push_request(retries=2, is_eager=True, id="test-task", called_directly=False)
    try:
        with pytest.raises(Retry) as info:
            tasks.send_reminder.run(sms_id)
    finally:
        tasks.send_reminder.pop_request()
    assert info.value.when == tasks.RETRY_BACKOFF[2]
    reminder = Reminder.objects.get(pk=sms_id)
    assert (reminder.status, reminder.attempts, reminder.last_error) == ("failed", 1, "SMS gateway answered HTTP 503")


def test_gives_up_after_the_maximum_attempts(enrollment, gateway, settings):
    settings.REMINDER_MAX_ATTEMPTS = 2
    gateway.statuses = [500] * 10
    sweep(END - dt.timedelta(days=7))
    sms_id = Reminder.objects.get(application=enrollment, offset_days=7, channel="sms").pk
    tasks.send_reminder.apply(args=[sms_id])
    reminder = Reminder.objects.get(pk=sms_id)
    assert (reminder.status, reminder.attempts) == ("failed", 2)
    assert len(gateway.requests) == 2


# ---------------------------------------------------------------------------
# API: reminders of an enrollment, the clinic's in-app list
# ---------------------------------------------------------------------------


def test_api_reminders_of_an_enrollment_scoped(enrollment, world, client):
    sweep(END - dt.timedelta(days=7))
    client.force_login(world.clerk)
    response = client.get(f"/api/v1/applications/{enrollment.pk}/reminders/")
    assert response.status_code == 200
    assert {(r["offset_days"], r["channel"], r["status"]) for r in response.json()} >= {
        (7, "sms", "pending"),
        (7, "in_app", "sent"),
    }
    assert "recipient" not in response.json()[0]
    client.force_login(world.other_clerk)
    assert client.get(f"/api/v1/applications/{enrollment.pk}/reminders/").status_code == 404
    client.logout()
    assert client.get(f"/api/v1/applications/{enrollment.pk}/reminders/").status_code in (401, 403)


def test_api_in_app_list_and_mark_read(enrollment, world, client):
    sweep(END - dt.timedelta(days=30))
    client.force_login(world.other_clerk)
    assert client.get("/api/v1/reminders/").json()["count"] == 0
    client.force_login(world.clerk)
    listing = client.get("/api/v1/reminders/?unread=1").json()
    assert listing["count"] == 1
    item = listing["results"][0]
    assert item["application"] == enrollment.pk and item["disease"] == "M03900" and "到期" in item["subject"]
    client.force_login(world.other_clerk)
    assert client.post(f"/api/v1/reminders/{item['id']}/read/").status_code in (400, 404)
    client.force_login(world.clerk)
    assert client.post(f"/api/v1/reminders/{item['id']}/read/").json()["read_at"] is not None
    assert client.get("/api/v1/reminders/?unread=1").json()["count"] == 0


# ---------------------------------------------------------------------------
# Two workers at the same time (real PostgreSQL connections)
# ---------------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_concurrent_workers_send_each_reminder_once(world):
    world.clerk.email = "clinic@example.org"
    world.clerk.save(update_fields=["email"])
    enrollments = [enrol(world, on=D(2026, 3, 15)) for _ in range(8)]
    day = END - dt.timedelta(days=30)
    barrier = threading.Barrier(2)
    errors: list[str] = []

    def worker() -> None:
        try:
            barrier.wait(timeout=30)
            with at(day, hour=1):
                result = services.validity_sweep(day=day, actor=services.get_system_user(), enqueue=False)
                for pk in result.to_send:
                    services.reminder_deliver(reminder_id=pk)
                for pk in reversed(result.to_send):  # both workers also race on every single id
                    services.reminder_deliver(reminder_id=pk)
        except Exception as exc:  # noqa: BLE001 - reported below and fails the test
            errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    references = Counter(message.reference for message in LocmemSMSBackend.outbox)
    assert len(references) == len(enrollments) and set(references.values()) == {1}
    assert len(mail.outbox) == len(enrollments)
    assert Reminder.objects.filter(status="sent").count() == 3 * len(enrollments)
    assert Reminder.objects.filter(status="skipped", offset_days=90).count() == 3 * len(enrollments)
    assert Reminder.objects.filter(channel=ReminderChannel.SMS, offset_days=30).count() == len(enrollments)
    # One audit row per state change, although both workers swept.
    from enrollment.models import AuditEntry

    assert AuditEntry.objects.filter(transition="mark_expiring").count() == len(enrollments)
