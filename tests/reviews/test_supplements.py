"""补正 (issue 15 item 2): the coded checklist, the paused clock, the reminder and the withdrawal, each once."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine

from enrollment import services
from enrollment.models import Application, AuditEntry, State
from kernel.errors import InvalidInput, NotPermitted
from reviews import deadlines
from reviews import services as review_services
from reviews.models import Notification, SupplementPolicy, SupplementRequest, SupplementState
from tests.reviews.helpers import SHANGHAI, assemble, claim_and_decide, diagnosed, item_of

pytestmark = pytest.mark.django_db
D = dt.date
RETURN_DAY = dt.datetime(2026, 3, 10, 10, 0, tzinfo=SHANGHAI)  # a Tuesday


def at(day: dt.date, hour: int = 10) -> time_machine.travel:
    return time_machine.travel(dt.datetime(day.year, day.month, day.day, hour, 0, tzinfo=SHANGHAI), tick=False)


def returned(world, **kwargs):
    application = diagnosed(world)
    assemble(world)
    with time_machine.travel(RETURN_DAY, tick=False):
        claim_and_decide(
            item_of(application),
            world.reviewer,
            "return",
            supplement_codes=kwargs.get("codes", ["unclear_scan", "diagnosis_certificate"]),
            reason=kwargs.get("note", "请补充近三个月的化验单"),
        )
    return Application.objects.get(pk=application.pk)


def test_return_opens_a_request_the_clinic_reads_in_plain_words(world):
    application = returned(world)
    assert application.state == State.RETURNED
    request = SupplementRequest.objects.get(application=application)
    assert request.state == SupplementState.OPEN
    assert request.codes == ["diagnosis_certificate", "unclear_scan"]  # the checklist's order
    assert (request.answer_by, request.remind_on) == (D(2026, 4, 9), D(2026, 4, 2))
    # The clinic's text: labels and the note, never the internal codes.
    # (Chinese by default: the labels' zh_Hans translations.)
    assert application.decision_reason == "缺少诊断证明；扫描件不清晰。请补充近三个月的化验单"
    assert "diagnosis_certificate" not in application.decision_reason
    entry = AuditEntry.objects.get(application=application, transition="return_for_information")
    assert entry.details["supplement_codes"] == ["diagnosis_certificate", "unclear_scan"]
    note = Notification.objects.get(kind="supplement_requested")
    assert note.recipient == world.clerk and note.application_id == application.pk
    assert "unclear_scan" not in note.message and application.person.id_number not in note.message


def test_checklist_is_validated(world):
    application = diagnosed(world)
    assemble(world)
    with time_machine.travel(RETURN_DAY, tick=False), pytest.raises(InvalidInput) as refused:
        claim_and_decide(item_of(application), world.reviewer, "return", supplement_codes=["other"], reason="")
    assert refused.value.details == {"field": "reason"}
    with time_machine.travel(RETURN_DAY, tick=False), pytest.raises(InvalidInput):
        review_services.review_decide(
            item_id=item_of(application).pk, actor=world.reviewer, decision="return", supplement_codes=["made_up"]
        )
    assert not SupplementRequest.objects.exists()


def test_clock_pauses_while_the_clinic_holds_it_and_the_due_date_moves(world):
    application = returned(world)
    with at(D(2026, 3, 12)):
        paused = deadlines.application_deadline(application)
    assert paused.paused and paused.paused_since == D(2026, 3, 10) and paused.working_days_left is None
    with at(D(2026, 3, 13)):  # Friday: Wed, Thu, Fri held by the clinic
        services.application_resubmit(application_id=application.pk, actor=world.clerk, note="已补充")
        application.refresh_from_db()
        resumed = deadlines.application_deadline(application)
    request = SupplementRequest.objects.get(application=application)
    assert (request.state, request.paused_working_days) == (SupplementState.ANSWERED, 3)
    assert application.state == State.DIAGNOSED
    # 15 working days from 10 Feb was 9 March; three paused days move it to 12 March.
    assert (resumed.due_on, resumed.paused_working_days, resumed.paused) == (D(2026, 3, 12), 3, False)


def test_reminder_once_then_withdrawal_once(world):
    application = returned(world)
    system = services.get_system_user()
    with at(D(2026, 4, 1)):
        assert review_services.supplements_sweep(actor=system).reminded == []
    with at(D(2026, 4, 2)):
        assert len(review_services.supplements_sweep(actor=system).reminded) == 1
        assert review_services.supplements_sweep(actor=system).reminded == []
    with at(D(2026, 4, 3)):
        assert review_services.supplements_sweep(actor=system).reminded == []
    with at(D(2026, 4, 9)):  # the last day to answer
        assert review_services.supplements_sweep(actor=system).withdrawn == []
    with at(D(2026, 4, 10)):
        first = review_services.supplements_sweep(actor=system)
        second = review_services.supplements_sweep(actor=system)
    assert len(first.withdrawn) == 1 and second.withdrawn == []
    application.refresh_from_db()
    assert application.state == State.WITHDRAWN
    assert SupplementRequest.objects.get(application=application).state == SupplementState.WITHDRAWN
    entry = AuditEntry.objects.get(application=application, transition="withdraw")
    assert (entry.is_system, entry.reason_code) == (True, "supplement_unanswered")
    assert AuditEntry.objects.filter(application=application, transition="supplement_reminder").count() == 1
    kinds = sorted(Notification.objects.filter(recipient=world.clerk).values_list("kind", flat=True))
    assert kinds == ["supplement_reminder", "supplement_requested", "supplement_withdrawn"]


def test_an_answered_request_is_neither_reminded_nor_withdrawn(world):
    application = returned(world)
    with at(D(2026, 3, 20)):
        services.application_resubmit(application_id=application.pk, actor=world.clerk)
    system = services.get_system_user()
    with at(D(2026, 4, 20)):
        result = review_services.supplements_sweep(actor=system)
    assert (result.reminded, result.withdrawn) == ([], [])
    assert Application.objects.get(pk=application.pk).state == State.DIAGNOSED


def test_region_policy_sets_the_days(world):
    SupplementPolicy.objects.create(region=world.province, answer_days=15, reminder_days=0)
    application = returned(world)
    request = SupplementRequest.objects.get(application=application)
    assert (request.answer_by, request.remind_on) == (D(2026, 3, 25), None)


def test_sweep_is_the_systems(world):
    with pytest.raises(NotPermitted):
        review_services.supplements_sweep(actor=world.admin)


def test_clinic_home_shows_the_open_request(world, client):
    application = returned(world)
    client.force_login(world.clerk)
    page = client.get("/").content.decode()
    assert 'data-testid="supplement-requests"' in page
    assert f'href="/applications/{application.pk}/"' in page
    assert "扫描件不清晰" in page and "unclear_scan" not in page
