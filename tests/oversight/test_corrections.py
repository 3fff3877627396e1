"""A failed re-check returned to the clinic for correction (整改): the request, the clinic's home block and answer,
the decision again; no answer in time — one reminder, one termination, whatever the number of runs; who may act."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
import time_machine
from rest_framework.test import APIClient

from enrollment.models import Application, AuditEntry, State
from enrollment.services import get_system_user
from kernel.errors import InvalidInput, NotPermitted, RuleViolation
from oversight import selectors, services
from oversight.models import (
    CorrectionRequest,
    CorrectionState,
    OversightAuditEntry,
    RecheckRate,
    RecheckSample,
    RecheckState,
)
from oversight.tasks import sweep_corrections
from reviews.models import Notification
from tests.conftest import pdf_upload
from tests.oversight.helpers import PERIOD, immediate_approval
from tests.reviews.helpers import SHANGHAI

pytestmark = pytest.mark.django_db

APRIL_5 = dt.datetime(2026, 4, 5, 9, 0, tzinfo=SHANGHAI)


def at(day: int, hour: int = 9) -> dt.datetime:
    return dt.datetime(2026, 4, day, hour, 0, tzinfo=SHANGHAI)


def api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def sample(world) -> RecheckSample:
    """world.clerk's (county) dialysis application, approved on the spot by world.officer, drawn for a re-check."""
    spot = immediate_approval(world)
    RecheckRate.objects.create(region=world.region, percent=Decimal(100))
    services.recheck_draw(region_id=world.region.pk, period=PERIOD, actor=get_system_user())
    return RecheckSample.objects.get(application=spot)


def return_it(world, sample, *, when=APRIL_5, codes=("medical_records",), reason="缺少近三个月的透析记录"):
    with time_machine.travel(when, tick=False):
        return services.recheck_decide(
            sample_id=sample.pk,
            actor=world.reviewer,
            passed=False,
            reason=reason,
            correction="return",
            codes=list(codes),
        )


def test_return_answer_and_pass(world, sample, client_for):
    return_it(world, sample)
    sample.refresh_from_db()
    assert (sample.state, sample.correction, sample.returns) == (RecheckState.RETURNED, "returned", 1)
    request = CorrectionRequest.objects.get(sample=sample)
    assert (request.state, request.codes, request.institution, request.requested_by) == (
        CorrectionState.OPEN,
        ["medical_records"],
        world.county,
        world.reviewer,
    )
    # 15 calendar days to answer, reminded 3 days before.
    assert (request.answer_by, request.remind_on) == (dt.date(2026, 4, 20), dt.date(2026, 4, 17))
    # The enrollment keeps covering: nothing changed on the application.
    application = Application.objects.get(pk=sample.application_id)
    assert application.state == State.APPROVED and application.ended_on is None
    assert not AuditEntry.objects.filter(application=application, transition="terminate").exists()
    returned = OversightAuditEntry.objects.get(action="recheck_returned")
    assert (returned.actor, returned.correction_request, returned.details["codes"]) == (
        world.reviewer,
        request,
        ["medical_records"],
    )
    # The filing clinic's staff are told in the app, and see it on their home page; another clinic does not.
    notice = Notification.objects.get(recipient=world.clerk, kind="recheck_correction")
    assert "2026-04-20" in notice.message and application.person.name not in notice.subject
    assert not Notification.objects.filter(recipient=world.other_clerk).exists()
    correction_page = f"/oversight/rechecks/{sample.pk}/correction/"
    home = client_for(world.clerk).get("/").content.decode()
    assert 'data-testid="recheck-corrections"' in home and correction_page in home
    assert correction_page not in client_for(world.other_clerk).get("/").content.decode()
    detail = client_for(world.clerk).get(f"/applications/{application.pk}/").content.decode()
    assert 'data-testid="answer-correction"' in detail

    # The clinic answers with a note and a document, within the time.
    with time_machine.travel(at(10), tick=False):
        page = client_for(world.clerk).get(correction_page)
        assert page.status_code == 200 and b"correction-answer-form" in page.content
        response = client_for(world.clerk).post(
            correction_page,
            {
                "answer": "已补充2026年1-3月透析记录",
                "doc-TOTAL_FORMS": "1",
                "doc-INITIAL_FORMS": "0",
                "doc-0-doc_type": "test_report",
                "doc-0-file": pdf_upload("dialysis.pdf"),
            },
        )
    assert response.status_code == 302, response.content
    request.refresh_from_db()
    assert (request.state, request.answered_by, request.answer) == (
        CorrectionState.ANSWERED,
        world.clerk,
        "已补充2026年1-3月透析记录",
    )
    (document,) = request.documents.all()
    assert (document.application_id, document.doc_type, document.uploaded_by) == (
        application.pk,
        "test_report",
        world.clerk,
    )
    sample.refresh_from_db()
    assert sample.state == RecheckState.PENDING and sample.correction == "returned"
    answered = OversightAuditEntry.objects.get(action="correction_answered")
    assert (answered.actor, answered.details["documents"]) == (world.clerk, [document.pk])
    assert Notification.objects.filter(recipient=world.reviewer, kind="recheck_correction_answered").count() == 1
    assert correction_page not in client_for(world.clerk).get("/").content.decode()  # nothing open any more
    queue = client_for(world.reviewer).get("/oversight/rechecks/").content.decode()
    assert f"/oversight/rechecks/{sample.pk}/" in queue and 'data-testid="recheck-answered"' in queue
    reviewer_page = client_for(world.reviewer).get(f"/oversight/rechecks/{sample.pk}/").content.decode()
    assert "已补充2026年1-3月透析记录" in reviewer_page and 'data-testid="correction-request"' in reviewer_page

    # A reviewer decides again (the one who returned it may: the separation-of-duties rule is unchanged): pass.
    services.recheck_decide(sample_id=sample.pk, actor=world.reviewer, passed=True, reason="记录齐全")
    sample.refresh_from_db()
    assert (sample.state, sample.correction) == (RecheckState.PASSED, "corrected")
    assert Application.objects.get(pk=application.pk).state == State.APPROVED
    assert list(OversightAuditEntry.objects.filter(sample=sample).order_by("id").values_list("action", flat=True)) == [
        "recheck_returned",
        "correction_answered",
        "recheck_passed",
    ]
    # Quality: returned then fixed counts as failed (and corrected), and as returned.
    (row,) = selectors.quality_rates(world.admin)
    assert (row.sampled, row.rechecked, row.failed, row.returned, row.failure_percent) == (1, 1, 1, 1, Decimal("100.0"))


def test_no_answer_one_reminder_then_one_termination(world, sample):
    return_it(world, sample)
    request = CorrectionRequest.objects.get(sample=sample)
    reminders = Notification.objects.filter(recipient=world.clerk, kind="recheck_correction_reminder")
    with time_machine.travel(at(16, 2), tick=False):
        assert sweep_corrections() == {"reminded": [], "terminated": []}
    with time_machine.travel(at(17, 2), tick=False):
        assert sweep_corrections() == {"reminded": [request.pk], "terminated": []}
        assert sweep_corrections() == {"reminded": [], "terminated": []}  # beat twice, a retried task
    with time_machine.travel(at(18, 2), tick=False):
        assert sweep_corrections() == {"reminded": [], "terminated": []}
    assert reminders.count() == 1 and "2026-04-20" in reminders.get().message
    assert OversightAuditEntry.objects.filter(action="correction_reminded").count() == 1
    # The answer-by day itself is still the clinic's.
    with time_machine.travel(at(20, 2), tick=False):
        assert sweep_corrections() == {"reminded": [], "terminated": []}
    assert Application.objects.get(pk=sample.application_id).state == State.APPROVED
    # The day after: terminated today (never retroactively), by the system, once.
    with time_machine.travel(at(21, 2), tick=False):
        assert sweep_corrections() == {"reminded": [], "terminated": [request.pk]}
        assert sweep_corrections() == {"reminded": [], "terminated": []}
        assert (
            services.correction_lapse(request_id=request.pk, actor=get_system_user(), today=dt.date(2026, 4, 21))
            is False
        )
    application = Application.objects.get(pk=sample.application_id)
    assert (application.state, application.termination_reason, application.ended_on) == (
        State.TERMINATED,
        "recheck_failed",
        dt.date(2026, 4, 21),
    )
    (terminated,) = AuditEntry.objects.filter(application=application, transition="terminate")
    assert terminated.actor.username == get_system_user().username
    assert f"No answer to correction request #{request.pk}" in terminated.reason
    request.refresh_from_db()
    sample.refresh_from_db()
    assert request.state == CorrectionState.LAPSED and request.lapsed_at is not None
    assert (sample.state, sample.correction) == (RecheckState.FAILED, "unanswered")
    lapsed = OversightAuditEntry.objects.get(action="correction_lapsed")
    assert lapsed.details["termination_reason"] == "recheck_failed" and lapsed.correction_request == request
    assert Notification.objects.filter(recipient=world.clerk, kind="recheck_correction_lapsed").count() == 1
    # Too late to answer now.
    with time_machine.travel(at(22), tick=False), pytest.raises(RuleViolation) as refused:
        services.recheck_answer(sample_id=sample.pk, actor=world.clerk, answer="晚了")
    assert refused.value.code == "no_open_request"


def test_an_enrollment_that_ended_meanwhile_is_not_terminated_again(world, sample):
    from enrollment import services as enrollment_services

    return_it(world, sample)
    with time_machine.travel(at(8), tick=False):
        enrollment_services.application_terminate(
            application_id=sample.application_id, actor=world.admin, reason="death"
        )
    with time_machine.travel(at(21, 2), tick=False):
        sweep_corrections()
    sample.refresh_from_db()
    assert (sample.state, sample.correction) == (RecheckState.FAILED, "already_ended")
    application = Application.objects.get(pk=sample.application_id)
    assert application.termination_reason == "death"
    assert AuditEntry.objects.filter(application=application, transition="terminate").count() == 1


def test_answer_after_the_day_is_refused_and_an_ended_enrollment_cannot_be_returned(world, sample):
    return_it(world, sample)
    with time_machine.travel(at(21, 1), tick=False), pytest.raises(RuleViolation) as late:
        services.recheck_answer(sample_id=sample.pk, actor=world.clerk, answer="补充材料")
    assert late.value.code == "answer_overdue"
    other = _second_sample(world)
    from enrollment import services as enrollment_services

    enrollment_services.application_terminate(application_id=other.application_id, actor=world.admin, reason="death")
    with pytest.raises(RuleViolation) as ended:
        return_it(world, other)
    assert ended.value.code == "not_covering"
    assert RecheckSample.objects.get(pk=other.pk).state == RecheckState.PENDING


def _second_sample(world) -> RecheckSample:
    spot = immediate_approval(world)
    draw = RecheckSample.objects.first().draw
    return RecheckSample.objects.create(
        draw=draw,
        application=spot,
        region=world.region,
        institution=world.county,
        kind="immediate",
        approved_at=spot.decided_at or APRIL_5,
        percent=Decimal(100),
        rate_source="test",
        score=Decimal(0),
    )


def test_input_is_validated(world, sample):
    with pytest.raises(InvalidInput) as unknown:
        return_it(world, sample, codes=["no_such_item"])
    assert unknown.value.details == {"field": "codes"}
    with pytest.raises(InvalidInput) as contradictory:
        services.recheck_decide(sample_id=sample.pk, actor=world.reviewer, passed=True, correction="return")
    assert contradictory.value.details == {"field": "correction"}
    with pytest.raises(InvalidInput):
        services.recheck_decide(sample_id=sample.pk, actor=world.reviewer, passed=False, reason="x", correction="maybe")
    with pytest.raises(InvalidInput):
        return_it(world, sample, reason="")
    return_it(world, sample)
    with time_machine.travel(at(10), tick=False), pytest.raises(InvalidInput) as empty:
        services.recheck_answer(sample_id=sample.pk, actor=world.clerk, answer="  ")
    assert empty.value.details == {"field": "answer"}
    assert CorrectionRequest.objects.get(sample=sample).state == CorrectionState.OPEN


def test_wrong_actors_are_refused(world, sample, client_for):
    with pytest.raises(NotPermitted):
        return_it_as(world.other_reviewer, sample)  # another region's reviewer
    for actor in (world.clerk, world.officer, world.admin):
        with pytest.raises(NotPermitted):
            return_it_as(actor, sample)
    return_it(world, sample)
    with time_machine.travel(at(10), tick=False):
        for actor in (world.other_clerk, world.reviewer, world.physician_user, world.officer, world.admin):
            with pytest.raises(NotPermitted):
                services.recheck_answer(sample_id=sample.pk, actor=actor, answer="x")
    with pytest.raises(NotPermitted):
        services.corrections_sweep(actor=world.admin)
    with pytest.raises(NotPermitted):
        services.correction_lapse(request_id=1, actor=world.reviewer, today=dt.date(2026, 4, 21))
    page = f"/oversight/rechecks/{sample.pk}/correction/"
    assert client_for(world.other_clerk).get(page).status_code == 404
    assert client_for(world.other_clerk).post(page, {"answer": "x"}).status_code == 404
    for user in (world.reviewer, world.officer, world.physician_user, world.admin):
        assert client_for(user).get(page).status_code == 403
    path = f"/api/v1/rechecks/{sample.pk}/answer/"
    assert api(world.other_clerk).post(path, {"answer": "x"}, format="json").status_code == 404
    for user in (world.reviewer, world.admin, world.officer):
        assert api(user).post(path, {"answer": "x"}, format="json").status_code == 403
    assert CorrectionRequest.objects.get(sample=sample).state == CorrectionState.OPEN
    assert RecheckSample.objects.get(pk=sample.pk).state == RecheckState.RETURNED


def return_it_as(actor, sample):
    return services.recheck_decide(
        sample_id=sample.pk, actor=actor, passed=False, reason="x", correction="return", codes=["id_copy"]
    )


def test_api_return_answer_return_again_then_terminate(world, sample):
    decide = f"/api/v1/rechecks/{sample.pk}/decide/"
    answer = f"/api/v1/rechecks/{sample.pk}/answer/"
    bad = api(world.reviewer).post(decide, {"result": "pass", "correction": "return"}, format="json")
    assert bad.status_code == 400 and bad.json()["details"] == {"field": "correction"}
    unknown = api(world.reviewer).post(
        decide, {"result": "fail", "reason": "x", "correction": "return", "codes": ["nope"]}, format="json"
    )
    assert unknown.status_code == 400
    with time_machine.travel(APRIL_5, tick=False):
        response = api(world.reviewer).post(
            decide,
            {"result": "fail", "reason": "身份证复印件缺失", "correction": "return", "codes": ["id_copy"]},
            format="json",
        )
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["state"], body["correction"], body["returns"]) == ("returned", "returned", 1)
    (open_request,) = body["corrections"]
    assert (open_request["state"], open_request["codes"], open_request["answer_by"]) == (
        "open",
        ["id_copy"],
        "2026-04-20",
    )
    assert api(world.reviewer).get("/api/v1/rechecks/", {"state": "returned"}).json()["count"] == 1
    with time_machine.travel(at(9), tick=False):
        answered = api(world.clerk).post(answer, {"answer": "已补交身份证复印件"}, format="json")
        assert answered.status_code == 200, answered.content
        assert (answered.json()["state"], answered.json()["answered_by"]) == ("answered", world.clerk.username)
        again = api(world.clerk).post(answer, {"answer": "again"}, format="json")
        assert again.status_code == 409 and again.json()["code"] == "no_open_request"
        # A second return is allowed; this time the clinic answers with a document (multipart).
        second = api(world.reviewer).post(
            decide,
            {"result": "fail", "reason": "复印件不清晰", "correction": "return", "codes": ["unclear_scan"]},
            format="json",
        )
        assert second.status_code == 200 and second.json()["returns"] == 2
        no_type = api(world.clerk).post(answer, {"answer": "x", "file": pdf_upload()}, format="multipart")
        assert no_type.status_code == 400
        with_document = api(world.clerk).post(
            answer,
            {"answer": "重新扫描", "doc_type": "id_card", "file": pdf_upload("id.pdf")},
            format="multipart",
        )
        assert with_document.status_code == 200, with_document.content
        assert [d["original_name"] for d in with_document.json()["documents"]] == ["id.pdf"]
        final = api(world.reviewer).post(decide, {"result": "fail", "reason": "仍不符合"}, format="json")
    assert final.status_code == 200
    assert (final.json()["state"], final.json()["correction"]) == ("failed", "terminated")
    assert [c["state"] for c in final.json()["corrections"]] == ["answered", "answered"]
    application = Application.objects.get(pk=sample.application_id)
    assert (application.state, application.termination_reason) == (State.TERMINATED, "recheck_failed")
    (row,) = selectors.quality_rates(world.admin)
    assert (row.failed, row.returned) == (1, 1)


def test_formulas_typed_by_staff_stay_text_in_csv_exports(world, sample, client_for):
    """The reviewer's note and the clinic's answer reach no CSV export; what the exports do carry (institution
    names in the quality CSV, person names in the application list) is neutralised."""
    formula = "=cmd|' /C calc'!A0"
    return_it(world, sample, reason=formula)
    with time_machine.travel(at(10), tick=False):
        services.recheck_answer(sample_id=sample.pk, actor=world.clerk, answer=formula)
    world.county.name = formula
    world.county.save()
    quality = b"".join(client_for(world.reviewer).get("/oversight/rechecks/quality.csv").streaming_content)
    listing = client_for(world.clerk).get("/applications/export.csv")
    assert listing.status_code == 200
    listing_body = b"".join(listing.streaming_content) if listing.streaming else listing.content
    for body in (quality.decode("utf-8-sig"), listing_body.decode("utf-8-sig")):
        for line in body.splitlines():
            cells = line.split(",")
            assert not any(cell.startswith(("=", '"=')) for cell in cells), line
    assert "'=cmd" in quality.decode("utf-8-sig")
    assert quality.decode("utf-8-sig").splitlines()[0].endswith(",returned")
