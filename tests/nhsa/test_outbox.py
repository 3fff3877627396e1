"""The platform outbox (docs/platform.md, "Outbox guarantees"): the real client against the simulator."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.db import transaction
from django.test import Client
from django.utils import timezone

from enrollment import services
from enrollment.models import ApplicationKind, Person, TerminationReason
from nhsa import selectors as nhsa_selectors
from nhsa import services as outbox
from nhsa.models import FilingState, MessageKind, MessageState, PlatformFiling, PlatformMessage, PlatformPerson
from tests.nhsa import outbox_helpers
from tests.nhsa.outbox_helpers import FIXMEDINS, approved, in_review, known, looked_up

platform = outbox_helpers.platform  # the simulator fixture

pytestmark = pytest.mark.django_db


def deliver(message: PlatformMessage) -> PlatformMessage:
    return outbox.platform_message_deliver(message_id=message.pk)


def only_message(application, kind: str = MessageKind.FILE) -> PlatformMessage:
    (message,) = PlatformMessage.objects.filter(application=application, kind=kind)
    return message


# ---------------------------------------------------------------------------
# Writing messages
# ---------------------------------------------------------------------------


def test_approval_writes_exactly_one_filing_message(world, platform):
    person = world.person(phone="13800000000")
    application = approved(world, person)
    message = only_message(application)
    assert message.state == MessageState.PENDING
    assert message.msgid.startswith(FIXMEDINS) and len(message.msgid) == 30
    assert message.payload["opsp_dise_code"] == "M03900"
    assert message.payload["insu_optins"] == application.region.code
    assert message.payload["ide_fixmedins_no"] == world.county.code
    assert message.payload["hosp_ide_date"] == "2026-01-05"
    assert message.payload["diag_dr_codg"] == world.physician.licence_number
    assert message.payload["begndate"] == application.valid_from.isoformat()
    assert message.payload["enddate"] == application.valid_until.isoformat()
    assert message.payload["tel"] == "13800000000"
    assert message.payload["psn_no"] == ""  # looked up (1101) before sending


def test_the_message_rolls_back_with_the_approval(world, platform):
    application = in_review(world)

    class Boom(Exception):
        pass

    with pytest.raises(Boom), transaction.atomic():
        services.application_approve(application_id=application.pk, actor=world.reviewer)
        assert PlatformMessage.objects.filter(application=application).count() == 1
        raise Boom
    assert not PlatformMessage.objects.filter(application=application).exists()


def test_two_diseases_coverage_is_not_filed(world, platform):
    application = approved(world, kind=ApplicationKind.TWO_DISEASES)
    assert application.kind == ApplicationKind.TWO_DISEASES
    assert not PlatformMessage.objects.exists()


def test_no_platform_url_queues_nothing(world, settings):
    settings.PLATFORM_URL = ""
    application = approved(world)
    services.application_terminate(application_id=application.pk, actor=world.admin, reason=TerminationReason.CURED)
    assert not PlatformMessage.objects.exists()


def test_long_term_enrollment_is_filed_with_the_open_end(world, platform):
    application = approved(world, disease=world.dialysis)
    assert application.valid_until is None
    assert only_message(application).payload["enddate"] == "2099-12-31"


# ---------------------------------------------------------------------------
# Delivery
# ---------------------------------------------------------------------------


def test_delivery_looks_the_person_up_and_stores_the_serial(world, platform):
    application = approved(world)
    record = known(platform, application.person)
    message = deliver(only_message(application))
    assert message.state == MessageState.SENT and message.sent_at is not None
    filing = PlatformFiling.objects.get(application=application)
    (held,) = platform.filings()
    assert filing.trt_dcla_detl_sn == held["trt_dcla_detl_sn"] and filing.state == FilingState.FILED
    assert held["msgid"] == message.msgid
    assert held["data"]["psn_no"] == record["psn_no"] == message.payload["psn_no"]
    assert PlatformPerson.objects.get(person=application.person).psn_no == record["psn_no"]
    state = nhsa_selectors.platform_state_for(application.pk)
    assert state.status == "filed" and state.serial == filing.trt_dcla_detl_sn
    # Delivering again does nothing: the row is no longer claimable.
    assert deliver(message).state == MessageState.SENT
    assert len(platform.received("2503")) == 1


def test_a_second_person_lookup_is_not_needed(world, platform):
    person = world.person()
    known(platform, person)
    deliver(only_message(approved(world, person)))
    deliver(only_message(approved(world, person, world.diabetes)))
    assert len(platform.received("1101")) == 1
    assert len(platform.filings()) == 2


def test_timeout_then_success_files_once(world, platform):
    application = approved(world)
    looked_up(platform, application.person)
    platform.control(timeout_next=1)  # the platform files it, but the answer comes too late
    message = deliver(only_message(application))
    assert message.state == MessageState.PENDING and message.transmitted
    assert "no answer" in message.last_error
    assert message.next_attempt_at > timezone.now()
    with time_machine.travel(message.next_attempt_at + dt.timedelta(seconds=1)):
        message = deliver(message)
    assert message.state == MessageState.SENT
    (held,) = platform.filings()
    assert PlatformFiling.objects.get(application=application).trt_dcla_detl_sn == held["trt_dcla_detl_sn"]
    assert {item["msgid"] for item in platform.received("2503")} == {message.msgid}


def test_5xx_storm_backs_off_then_recovers(world, platform, settings):
    settings.PLATFORM_MAX_ATTEMPTS = 20
    application = approved(world)
    known(platform, application.person)
    deliver_message = only_message(application)
    # Warm up the person lookup, then every send fails with HTTP 500 eight times.
    PlatformPerson.objects.create(
        person=application.person, psn_no=platform.persons()[0]["psn_no"], insutype="390", insuplc_admdvs="530100"
    )
    platform.control(fail_next=8)
    start = timezone.now()
    delays = []
    with time_machine.travel(start, tick=False) as clock:
        for _ in range(8):
            before = timezone.now()
            message = deliver(deliver_message)
            assert message.state == MessageState.PENDING and "HTTP 500" in message.last_error
            delays.append(round((message.next_attempt_at - before).total_seconds()))
            # Not due yet: nothing is sent.
            assert outbox.platform_message_deliver(message_id=message.pk).attempts == message.attempts
            clock.move_to(message.next_attempt_at)
        message = deliver(deliver_message)
    assert delays == [60, 120, 240, 480, 960, 1920, 3600, 3600]
    assert message.state == MessageState.SENT and message.attempts == 9
    assert len(platform.filings()) == 1


def test_too_many_failures_leave_it_failed_for_an_officer(world, platform, settings):
    settings.PLATFORM_MAX_ATTEMPTS = 2
    application = approved(world)
    known(platform, application.person)
    platform.control(fail_next=5)
    message = deliver(only_message(application))
    with time_machine.travel(message.next_attempt_at + dt.timedelta(seconds=1)):
        message = deliver(message)
    assert message.state == MessageState.FAILED and "HTTP 500" in message.last_error
    assert nhsa_selectors.platform_state_for(application.pk).status == "failed"
    platform.control(reset=True)
    message = outbox.platform_message_retry(message_id=message.pk, actor=world.officer)
    assert deliver(message).state == MessageState.SENT


def test_already_filed_counts_as_success(world, platform):
    application = approved(world)
    known(platform, application.person)
    first = deliver(only_message(application))
    serial = PlatformFiling.objects.get(application=application).trt_dcla_detl_sn
    PlatformFiling.objects.all().delete()
    with transaction.atomic():
        second = outbox.message_file(application=services.lock_application(application.pk))
    assert second.msgid != first.msgid
    second = deliver(second)
    assert second.state == MessageState.SENT and second.answer_message  # the platform's "already filed"
    assert PlatformFiling.objects.get(application=application).trt_dcla_detl_sn == serial
    assert len(platform.filings()) == 1


def test_business_refusal_is_failed_with_the_platforms_message(world, platform):
    application = approved(world)
    known(platform, application.person, insutype="310")
    PlatformPerson.objects.create(
        person=application.person, psn_no=platform.persons()[0]["psn_no"], insutype="390", insuplc_admdvs="530100"
    )
    message = deliver(only_message(application))
    assert message.state == MessageState.FAILED
    assert message.answer_code == "-1" and "险种" in message.answer_message
    assert message.next_attempt_at is None
    assert outbox.due_message_ids() == []  # not retried automatically
    state = nhsa_selectors.platform_state_for(application.pk)
    assert state.status == "failed" and "险种" in state.reason


# ---------------------------------------------------------------------------
# Termination
# ---------------------------------------------------------------------------


def test_termination_cancels_with_the_stored_serial(world, platform):
    application = approved(world)
    known(platform, application.person)
    deliver(only_message(application))
    serial = PlatformFiling.objects.get(application=application).trt_dcla_detl_sn
    services.application_terminate(application_id=application.pk, actor=world.admin, reason=TerminationReason.DEATH)
    cancel = only_message(application, MessageKind.CANCEL)
    assert cancel.payload["trt_dcla_detl_sn"] == serial and cancel.depends_on is None
    cancel = deliver(cancel)
    assert cancel.state == MessageState.SENT
    filing = PlatformFiling.objects.get(application=application)
    assert filing.state == FilingState.CANCELLED and filing.cancelled_at is not None
    assert platform.filings()[0]["vali_flag"] == "0"
    assert nhsa_selectors.platform_state_for(application.pk).status == "cancelled"


@pytest.mark.parametrize("reason", [TerminationReason.RECHECK_FAILED, TerminationReason.OBJECTION_UPHELD])
def test_oversight_terminations_cancel_with_their_own_reason_as_the_memo(world, platform, reason):
    """2504's memo is free text (no platform code list): oversight's two reasons go as they are, like the others."""
    application = approved(world)
    known(platform, application.person)
    deliver(only_message(application))
    services.application_terminate(application_id=application.pk, actor=world.admin, reason=reason)
    cancel = deliver(only_message(application, MessageKind.CANCEL))
    assert cancel.state == MessageState.SENT and cancel.payload["memo"] == reason
    assert platform.filings()[0]["cancel_memo"] == reason


def test_status_event_termination_cancels_too(world, platform):
    from enrollment.models import StatusEventKind
    from enrollment.services import person_status

    application = approved(world)
    known(platform, application.person)
    deliver(only_message(application))
    person_status.status_event_record(
        person=application.person,
        kind=StatusEventKind.DIED,
        effective_date=timezone.localdate(),
        source="test",
        reference="d-1",
        actor=world.admin,
    )
    assert deliver(only_message(application, MessageKind.CANCEL)).state == MessageState.SENT


def test_termination_before_sending_supersedes_and_sends_nothing(world, platform):
    application = approved(world)
    services.application_terminate(application_id=application.pk, actor=world.admin, reason=TerminationReason.CURED)
    message = only_message(application)
    assert message.state == MessageState.SUPERSEDED
    assert not PlatformMessage.objects.filter(kind=MessageKind.CANCEL).exists()
    assert platform.received() == []


def test_cancellation_waits_for_the_filing_in_flight(world, platform):
    application = approved(world)
    looked_up(platform, application.person)
    platform.control(timeout_next=1)
    filing_message = deliver(only_message(application))  # sent, answer lost: in flight
    assert filing_message.state == MessageState.PENDING and filing_message.transmitted
    services.application_terminate(application_id=application.pk, actor=world.admin, reason=TerminationReason.CURED)
    cancel = only_message(application, MessageKind.CANCEL)
    assert cancel.depends_on_id == filing_message.pk and cancel.payload["trt_dcla_detl_sn"] == ""
    cancel = deliver(cancel)
    assert cancel.state == MessageState.PENDING and cancel.attempts == 0 and cancel.last_error
    assert cancel.next_attempt_at > timezone.now()
    assert platform.received("2504") == []
    assert nhsa_selectors.platform_state_for(application.pk).status == "queued"
    with time_machine.travel(filing_message.next_attempt_at + dt.timedelta(seconds=1)):
        assert deliver(filing_message).state == MessageState.SENT
        cancel.refresh_from_db()
        assert cancel.next_attempt_at <= timezone.now()  # released at once
        cancel = deliver(cancel)
    assert cancel.state == MessageState.SENT
    serial = PlatformFiling.objects.get(application=application).trt_dcla_detl_sn
    assert cancel.payload["trt_dcla_detl_sn"] == serial
    assert [row["vali_flag"] for row in platform.filings()] == ["0"]


# ---------------------------------------------------------------------------
# Held: the platform's record differs from ours
# ---------------------------------------------------------------------------


def test_mismatch_holds_the_message_for_an_officer(world, platform):
    application = approved(world)
    person = application.person
    known(platform, person, psn_name="别的名字", insuplc_admdvs="110100")
    message = deliver(only_message(application))
    assert message.state == MessageState.HELD
    assert "别的名字" in message.held_reason and "110100" in message.held_reason
    assert platform.received("2503") == []
    state = nhsa_selectors.platform_state_for(application.pk)
    assert state.status == "held" and "别的名字" in state.reason
    # Province-level compare: a county code under the same province is no mismatch.
    known(platform, person, psn_name="别的名字", insuplc_admdvs="530102")
    Person.objects.filter(pk=person.pk).update(name="别的名字")
    message = outbox.platform_message_release(message_id=message.pk, actor=world.officer, note="name corrected")
    assert message.state == MessageState.PENDING and message.handled_by == world.officer
    assert deliver(message).state == MessageState.SENT
    assert platform.filings()[0]["data"]["psn_no"] == PlatformPerson.objects.get(person=person).psn_no


def test_unknown_person_is_held_and_can_be_cancelled(world, platform):
    application = approved(world)
    message = deliver(only_message(application))
    assert message.state == MessageState.HELD and "未查询到人员信息" in message.held_reason
    message = outbox.platform_message_cancel(message_id=message.pk, actor=world.officer)
    assert message.state == MessageState.CANCELLED
    assert outbox.due_message_ids() == []


def test_officer_page_lists_held_and_failed_messages_and_acts(world, platform):
    application = approved(world)
    message = deliver(only_message(application))
    assert message.state == MessageState.HELD
    web = Client()
    web.force_login(world.officer)
    page = web.get("/platform/messages/")
    assert page.status_code == 200 and f'id="message-{message.pk}"' in page.content.decode()
    detail = web.get(f"/applications/{application.pk}/").content.decode()
    assert 'data-status="held"' in detail
    known(platform, application.person)
    assert web.post(f"/platform/messages/{message.pk}/release/").status_code == 302
    message.refresh_from_db()
    assert message.state == MessageState.PENDING
    clerk = Client()
    clerk.force_login(world.clerk)
    assert clerk.get("/platform/messages/").status_code == 403
    assert clerk.post(f"/platform/messages/{message.pk}/cancel/").status_code == 403


def test_api_detail_shows_the_platform_state(world, platform):
    from rest_framework.test import APIClient

    application = approved(world)
    known(platform, application.person)
    deliver(only_message(application))
    api = APIClient()
    api.force_authenticate(world.reviewer)
    data = api.get(f"/api/v1/applications/{application.pk}/").json()
    assert data["platform"]["status"] == "filed"
    assert data["platform"]["serial"] == PlatformFiling.objects.get(application=application).trt_dcla_detl_sn


# ---------------------------------------------------------------------------
# A worker killed mid-send (without processes: the row is left "sending")
# ---------------------------------------------------------------------------


def test_stale_sending_row_is_sent_again_with_the_same_msgid(world, platform, settings):
    settings.PLATFORM_SENDING_STALE_SECONDS = 300
    application = approved(world)
    known(platform, application.person)
    message = only_message(application)
    # What a killed worker leaves: claimed, the 2503 reached the platform, no outcome written.
    PlatformMessage.objects.filter(pk=message.pk).update(
        state=MessageState.SENDING, attempts=1, transmitted=True, claimed_at=timezone.now()
    )
    outbox_payload = outbox.filing_payload(application)
    from nhsa.client import PlatformClient

    psn_no = PlatformClient().person_lookup(application.person.id_number).output["baseinfo"]["psn_no"]
    PlatformClient().file_enrollment({**outbox_payload, "psn_no": psn_no}, msgid=message.msgid)
    assert outbox.due_message_ids() == []  # still fresh: the worker may be alive
    with time_machine.travel(timezone.now() + dt.timedelta(seconds=301)):
        assert outbox.due_message_ids() == [message.pk]
        message = deliver(message)
    assert message.state == MessageState.SENT and message.attempts == 2
    assert len(platform.filings()) == 1
    assert (
        PlatformFiling.objects.get(application=application).trt_dcla_detl_sn
        == platform.filings()[0]["trt_dcla_detl_sn"]
    )


def test_due_rows_are_handed_over_and_the_task_delivers(world, platform):
    from nhsa import tasks

    application = approved(world)
    known(platform, application.person)
    message = only_message(application)
    assert outbox.due_message_ids() == [message.pk]
    assert tasks.deliver(message.pk) == MessageState.SENT  # the task body, run here (no broker)
    assert outbox.due_message_ids() == []
    assert tasks.deliver(message.pk) == MessageState.SENT  # safe to run twice
    assert len(platform.filings()) == 1


def test_application_page_and_reports_show_the_platform(world, platform):
    application = approved(world)
    known(platform, application.person)
    deliver(only_message(application))
    serial = PlatformFiling.objects.get(application=application).trt_dcla_detl_sn
    web = Client()
    web.force_login(world.admin)
    page = web.get(f"/applications/{application.pk}/").content.decode()
    assert 'data-status="filed"' in page and serial in page
    reports = web.get("/reports/").content.decode()
    assert 'id="report-platform"' in reports
