"""The coverage query: covered on a date, under which decision, at the boundaries of every period (issue 4)."""

from __future__ import annotations

import datetime as dt

import pytest

from enrollment import selectors, services
from enrollment.models import AuditEntry
from tests.enrollment.validity_helpers import at, enrol, renew_and_approve, sweep
from tests.factories import synthetic_id_number

D = dt.date
ONE = dt.timedelta(days=1)


def covered(enrollment, on):
    return selectors.coverage_on(person=enrollment.person, disease=enrollment.disease, on=on)


def approval_of(enrollment):
    return AuditEntry.objects.get(application=enrollment, transition="approve")


def test_boundaries_of_one_period(world):
    enrollment = enrol(world, on=D(2026, 3, 15))
    before = covered(enrollment, D(2026, 3, 14))
    assert (before.covered, before.reason) == (False, "not_started")
    for day in (D(2026, 3, 15), D(2027, 8, 1), D(2029, 3, 14)):
        answer = covered(enrollment, day)
        assert answer.covered and answer.reason == "covered" and not answer.provisional
        assert answer.enrollment == enrollment and answer.decision == approval_of(enrollment)
    after = covered(enrollment, D(2029, 3, 15))
    assert (after.covered, after.reason, after.enrollment) == (False, "ended", enrollment)
    sweep(D(2029, 3, 20))  # expired: the answers stay the same
    assert covered(enrollment, D(2029, 3, 14)).covered
    assert not covered(enrollment, D(2029, 3, 15)).covered


def test_across_a_renewal_each_day_rests_on_its_own_decision(world):
    old = enrol(world, on=D(2026, 3, 15))
    new = renew_and_approve(world, old, filed=D(2028, 12, 1), approved=D(2029, 1, 10))
    last_old = covered(old, D(2029, 3, 14))
    first_new = covered(old, D(2029, 3, 15))
    assert (last_old.enrollment, last_old.decision) == (old, approval_of(old))
    assert (first_new.enrollment, first_new.decision) == (new, approval_of(new))
    # Between the renewal's approval and the old end date, the old decision still answers.
    assert covered(old, D(2029, 2, 1)).enrollment == old
    assert covered(old, D(2032, 3, 14)).enrollment == new
    assert not covered(old, D(2032, 3, 15)).covered


def test_terminated_enrollment_covers_through_ended_on(world):
    enrollment = enrol(world, on=D(2026, 3, 15))
    with at(D(2027, 6, 30)):
        services.application_terminate(application_id=enrollment.pk, actor=world.reviewer, reason="moved_out")
    assert covered(enrollment, D(2027, 6, 30)).covered
    after = covered(enrollment, D(2027, 7, 1))
    assert (after.covered, after.reason, after.enrollment) == (False, "terminated", enrollment)


def test_pending_renewal_keeps_covering_provisionally_past_the_end(world):
    old = enrol(world, on=D(2026, 3, 15))
    with at(D(2029, 3, 1)):
        renewal = services.application_renew(application_id=old.pk, actor=world.clerk)
    sweep(D(2029, 3, 20))
    answer = covered(old, D(2029, 3, 20))
    assert (answer.covered, answer.provisional, answer.reason) == (True, True, "renewal_pending")
    assert answer.enrollment == old and answer.pending_renewal == renewal
    # Inside the period nothing is provisional.
    assert not covered(old, D(2029, 3, 14)).provisional
    # Rejected after the end: the provisional days already given stay covered (复审期间待遇照常), the
    # old enrollment ends on the decision date, and nothing after it is covered.
    from django.db import transaction

    from tests.enrollment.validity_helpers import diagnose

    with at(D(2029, 3, 22)):
        diagnose(world, renewal, day=D(2029, 3, 22))
        system = services.get_system_user()
        with transaction.atomic():
            services.run_transition(application=services.lock_application(renewal.pk), name="enqueue", actor=system)
        with transaction.atomic():
            services.run_transition(
                application=services.lock_application(renewal.pk),
                name="reject",
                actor=world.reviewer,
                reason_code="criteria_not_met",
                reason="",
            )
            services.renewal_closed(renewal=renewal, actor=world.reviewer)  # as the review service does
    honoured = covered(old, D(2029, 3, 20))
    assert (honoured.covered, honoured.provisional, honoured.reason) == (True, True, "provisional_honoured")
    assert covered(old, D(2029, 3, 22)).covered
    assert not covered(old, D(2029, 3, 23)).covered
    old.refresh_from_db()
    assert (old.state, old.ended_on) == ("expired", D(2029, 3, 22))
    sweep(D(2029, 3, 23))
    assert covered(old, D(2029, 3, 20)).covered


def test_other_disease_or_person_is_not_covered(world):
    enrollment = enrol(world, on=D(2026, 3, 15))
    answer = selectors.coverage_on(person=enrollment.person, disease=world.diabetes, on=D(2027, 1, 1))
    assert (answer.covered, answer.reason, answer.enrollment) == (False, "not_enrolled", None)


# ---------------------------------------------------------------------------
# GET /api/v1/coverage/
# ---------------------------------------------------------------------------


@pytest.fixture
def renewed(world):
    old = enrol(world, on=D(2026, 3, 15))
    new = renew_and_approve(world, old, filed=D(2028, 12, 1), approved=D(2029, 1, 10))
    return old, new


def test_api_answers_with_enrollment_period_and_decision(renewed, world, client):
    old, new = renewed
    client.force_login(world.other_clerk)  # any staff (a pharmacy, another clinic) may ask
    url = f"/api/v1/coverage/?id_number={old.person.id_number}&disease=M03900&date=2029-03-15"
    body = client.get(url).json()
    assert body["covered"] is True and body["provisional"] is False and body["date"] == "2029-03-15"
    assert body["enrollment"] == {
        "id": new.pk,
        "kind": "renewal",
        "state": "approved",
        "valid_from": "2029-03-15",
        "valid_until": "2032-03-14",
        "ended_on": None,
        "termination_reason": "",
        "renews": old.pk,
    }
    decision = AuditEntry.objects.get(application=new, transition="approve")
    assert body["decision"]["audit_entry"] == decision.pk
    assert body["decision"]["actor"] == world.reviewer.username
    assert body["person"] == {"id_number": old.person.masked_id_number, "registered": True}
    assert body["disease"] == {"code": "M03900", "name": "高血压病"}
    day_before = client.get(url.replace("2029-03-15", "2029-03-14")).json()
    assert day_before["enrollment"]["id"] == old.pk and day_before["enrollment"]["state"] == "renewed"
    assert day_before["enrollment"]["ended_on"] == "2029-03-14"


def test_api_not_covered_and_input_errors(world, client):
    client.force_login(world.clerk)
    unknown_person = client.get(f"/api/v1/coverage/?id_number={synthetic_id_number()}&disease=M03900&date=2027-01-01")
    assert unknown_person.status_code == 200
    assert unknown_person.json()["covered"] is False and unknown_person.json()["reason"] == "not_enrolled"
    person = world.person()
    bad_date = client.get(f"/api/v1/coverage/?id_number={person.id_number}&disease=M03900&date=2027-13-01")
    assert bad_date.status_code == 400 and bad_date.json()["code"] == "invalid"
    bad_disease = client.get(f"/api/v1/coverage/?id_number={person.id_number}&disease=M99999")
    assert bad_disease.status_code == 400 and bad_disease.json()["code"] == "unknown_disease"
    bad_id = client.get("/api/v1/coverage/?id_number=110101199001011234&disease=M03900")
    assert bad_id.status_code == 400 and bad_id.json()["code"] == "invalid_id_number"
    client.logout()
    assert client.get(f"/api/v1/coverage/?id_number={person.id_number}&disease=M03900").status_code in (401, 403)


def test_api_renew_and_terminate_actions(world, client):
    enrollment = enrol(world, on=D(2026, 3, 15))
    url = f"/api/v1/applications/{enrollment.pk}"

    def post(user, day, action, data=None):
        with at(day):  # log in on the day itself: sessions expire after a working day
            client.force_login(user)
            return client.post(f"{url}/{action}/", data or {}, content_type="application/json")

    early = post(world.clerk, D(2028, 1, 1), "renew")
    assert early.status_code == 409 and early.json()["code"] == "renewal_too_early"
    response = post(world.clerk, D(2029, 1, 5), "renew", {"treating_institution": world.county.code})
    assert response.status_code == 201
    body = response.json()
    assert (body["kind"], body["renews"], body["state"], body["icd10_code"]) == (
        "renewal",
        enrollment.pk,
        "submitted",
        "I10",
    )
    assert post(world.other_clerk, D(2029, 1, 5), "renew").status_code == 404
    assert post(world.clerk, D(2029, 1, 6), "terminate", {"reason": "death"}).status_code == 403
    ended = post(world.reviewer, D(2029, 1, 6), "terminate", {"reason": "death", "note": "reported by family"})
    assert ended.status_code == 200 and ended.json()["state"] == "terminated"
    assert ended.json()["ended_on"] == "2029-01-06"


def test_long_term_enrollment_covers_from_its_start_without_end(world):
    from tests.enrollment.validity_helpers import diagnose

    with at(D(2026, 5, 6)):
        application = services.application_submit(
            person=world.person(), disease=world.dialysis, treating_institution=world.county, actor=world.clerk
        )
        diagnose(world, application, day=D(2026, 5, 6), icd="N18.5")
        enrollment = services.application_approve(application_id=application.pk, actor=world.officer, immediate=True)
    assert not covered(enrollment, D(2026, 5, 5)).covered
    answer = covered(enrollment, D(2060, 1, 1))
    assert answer.covered and answer.decision.transition == "approve_immediately"
    sweep(D(2060, 1, 1))
    enrollment.refresh_from_db()
    assert enrollment.state == "approved"
