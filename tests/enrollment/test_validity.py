"""Validity periods on approval, renewal (复审) and termination.

docs/design.md: Validity, renewal and reminders; issue 4.
"""

from __future__ import annotations

import datetime as dt

import pytest

from enrollment import services
from enrollment.models import ApplicationKind, AuditEntry, BenefitStart, State
from enrollment.periods import period_end
from kernel.errors import NotPermitted, RuleViolation, TransitionRefused
from tests.enrollment.validity_helpers import approve, at, audit_of, enrol, renew_and_approve, sweep
from tests.factories import PolicyFactory

D = dt.date

# ---------------------------------------------------------------------------
# Month arithmetic
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("valid_from", "months", "valid_until"),
    [
        (D(2026, 3, 15), 36, D(2029, 3, 14)),  # the ordinary case: + months − 1 day
        (D(2026, 3, 1), 36, D(2029, 2, 28)),  # first of month → last day of the previous month
        (D(2028, 3, 1), 1, D(2028, 3, 31)),
        (D(2027, 3, 1), 12, D(2028, 2, 29)),  # ends on a leap day
        (D(2024, 1, 31), 36, D(2027, 1, 30)),  # 31 Jan has its corresponding day three years on
        (D(2024, 1, 31), 1, D(2024, 2, 29)),  # 31 Jan + 1 month: no 31 Feb, the month's last day
        (D(2023, 1, 31), 1, D(2023, 2, 28)),
        (D(2024, 2, 29), 36, D(2027, 2, 28)),  # 29 Feb: no 29 Feb 2027, so 28 Feb, not 27 Feb
        (D(2024, 2, 29), 48, D(2028, 2, 28)),  # leap to leap: 29 Feb 2028 exists, the day before
        (D(2026, 12, 31), 12, D(2027, 12, 30)),
    ],
)
def test_period_end_calendar_edges(valid_from, months, valid_until):
    assert period_end(valid_from, months) == valid_until


def test_period_end_long_term_has_no_end():
    assert period_end(D(2024, 2, 29), 0) is None


def test_consecutive_periods_from_a_leap_day_leave_no_gap_and_no_overlap():
    first_end = period_end(D(2024, 2, 29), 36)
    second_start = first_end + dt.timedelta(days=1)
    assert second_start == D(2027, 3, 1)
    assert period_end(second_start, 36) == D(2030, 2, 28)


# ---------------------------------------------------------------------------
# Approval sets the period
# ---------------------------------------------------------------------------


def test_approval_on_decision_date_gives_36_months(world):
    enrollment = enrol(world, on=D(2026, 1, 31))
    assert (enrollment.valid_from, enrollment.valid_until) == (D(2026, 1, 31), D(2029, 1, 30))
    entry = audit_of(enrollment, "approve")[0]
    assert entry.details["valid_from"] == "2026-01-31" and entry.details["valid_until"] == "2029-01-30"


def test_approval_on_leap_day(world):
    enrollment = enrol(world, on=D(2028, 2, 29))
    assert (enrollment.valid_from, enrollment.valid_until) == (D(2028, 2, 29), D(2031, 2, 28))


def test_next_month_policy_starts_on_the_first(world):
    PolicyFactory(region=world.province, benefit_start=BenefitStart.NEXT_MONTH)
    enrollment = enrol(world, on=D(2026, 12, 31))
    assert (enrollment.valid_from, enrollment.valid_until) == (D(2027, 1, 1), D(2029, 12, 31))


def test_long_term_disease_has_no_end(world):
    with at(D(2026, 5, 6)):
        application = services.application_submit(
            person=world.person(), disease=world.dialysis, treating_institution=world.county, actor=world.clerk
        )
        from tests.enrollment.validity_helpers import diagnose

        diagnose(world, application, day=D(2026, 5, 6), icd="N18.5")
        approved = services.application_approve(application_id=application.pk, actor=world.officer, immediate=True)
    assert (approved.valid_from, approved.valid_until) == (D(2026, 5, 6), None)
    with at(D(2027, 5, 6)), pytest.raises(RuleViolation) as info:
        services.application_renew(application_id=approved.pk, actor=world.clerk)
    assert info.value.code == "renewal_not_needed"


# ---------------------------------------------------------------------------
# Renewal filing
# ---------------------------------------------------------------------------


def test_renewal_refused_before_the_window_opens(world):
    enrollment = enrol(world, on=D(2026, 3, 15))  # valid until 2029-03-14; window opens 2028-09-15
    with at(D(2028, 9, 14)), pytest.raises(RuleViolation) as info:
        services.application_renew(application_id=enrollment.pk, actor=world.clerk)
    assert info.value.code == "renewal_too_early"
    assert info.value.details["opens_on"] == "2028-09-15"
    with at(D(2028, 9, 15)):
        renewal = services.application_renew(application_id=enrollment.pk, actor=world.clerk)
    assert renewal.kind == ApplicationKind.RENEWAL and renewal.renews_id == enrollment.pk


def test_renewal_carries_the_diagnosis_forward_for_re_attestation(world):
    enrollment = enrol(world, on=D(2026, 3, 15), icd="I11.9")
    with at(D(2029, 1, 10)):
        renewal = services.application_renew(application_id=enrollment.pk, actor=world.clerk)
    assert renewal.state == State.SUBMITTED
    assert (renewal.icd10_code, renewal.diagnosis_date, renewal.physician_id) == (
        "I11.9",
        D(2026, 3, 15),
        enrollment.physician_id,
    )
    assert renewal.diagnosed_at is None  # not yet re-attested
    entry = audit_of(renewal, "submit")[0]
    assert entry.details == {"kind": "renewal", "renews": enrollment.pk}
    # The physician re-attests (here: updates the code); the renewal then goes to review as usual.
    with at(D(2029, 1, 12)):
        from tests.enrollment.validity_helpers import diagnose

        diagnosed = diagnose(world, renewal, day=D(2029, 1, 12), icd="I10")
    assert diagnosed.state == State.DIAGNOSED and diagnosed.icd10_code == "I10"


def test_renewal_does_not_count_twice_toward_the_limit(world):
    person = world.person(phone="13800000001")
    first = enrol(world, on=D(2026, 3, 15), person=person)
    enrol(world, on=D(2026, 3, 15), person=person, disease=world.diabetes, icd="E11")
    with at(D(2029, 1, 10)):
        # The person holds 2 of 2: a third disease is refused, the renewal of a held one is not.
        with pytest.raises(RuleViolation) as info:
            services.application_submit(
                person=person, disease=world.copd, treating_institution=world.county, actor=world.clerk
            )
        assert info.value.code == "limit_reached"
        renewal = services.application_renew(application_id=first.pk, actor=world.clerk)
    assert renewal.state == State.SUBMITTED


def test_second_renewal_of_the_same_enrollment_is_refused(world):
    enrollment = enrol(world, on=D(2026, 3, 15))
    with at(D(2029, 1, 10)):
        renewal = services.application_renew(application_id=enrollment.pk, actor=world.clerk)
        with pytest.raises(RuleViolation) as info:
            services.application_renew(application_id=enrollment.pk, actor=world.clerk)
    assert info.value.code == "renewal_pending" and info.value.details["application"] == renewal.pk


def test_renewal_refused_for_physician_role_and_for_unapproved_applications(world):
    enrollment = enrol(world, on=D(2026, 3, 15))
    with at(D(2029, 1, 10)):
        with pytest.raises(NotPermitted):
            services.application_renew(application_id=enrollment.pk, actor=world.physician_user)
        pending = services.application_submit(
            person=world.person(), disease=world.hypertension, treating_institution=world.county, actor=world.clerk
        )
        with pytest.raises(TransitionRefused) as info:
            services.application_renew(application_id=pending.pk, actor=world.clerk)
    assert info.value.code == "renewal_not_possible"


# ---------------------------------------------------------------------------
# Renewal approval: the new period starts the day after the old one ends
# ---------------------------------------------------------------------------


def _assert_continues(old, new):
    old.refresh_from_db()
    assert old.state == State.RENEWED
    assert old.ended_on == old.valid_until
    assert new.state == State.APPROVED
    assert new.valid_from == old.valid_until + dt.timedelta(days=1)
    assert new.valid_until == period_end(new.valid_from, 36)
    supersede = audit_of(old, "supersede")
    assert len(supersede) == 1 and supersede[0].details == {"renewed_by": new.pk}


def test_renewal_approved_early(world):
    old = enrol(world, on=D(2026, 3, 15))  # until 2029-03-14
    new = renew_and_approve(world, old, filed=D(2028, 10, 1), approved=D(2028, 11, 2))
    _assert_continues(old, new)
    assert (new.valid_from, new.valid_until) == (D(2029, 3, 15), D(2032, 3, 14))


def test_renewal_approved_on_the_last_day(world):
    old = enrol(world, on=D(2026, 3, 15))
    new = renew_and_approve(world, old, filed=D(2029, 3, 1), approved=D(2029, 3, 14))
    _assert_continues(old, new)
    assert new.valid_from == D(2029, 3, 15)


def test_renewal_approved_after_expiry_within_grace(world):
    PolicyFactory(region=world.region, grace_days=30)
    old = enrol(world, on=D(2026, 3, 15))
    with at(D(2029, 3, 1)):
        renewal = services.application_renew(application_id=old.pk, actor=world.clerk)
    sweep(D(2029, 3, 20))  # past valid_until, inside grace
    old.refresh_from_db()
    assert old.state == State.EXPIRING
    with at(D(2029, 3, 25)):
        new = approve(world, renewal)
    _assert_continues(old, new)


def test_renewal_filed_in_time_but_approved_after_grace_still_continues(world):
    """Benefits continue while a renewal is pending: the sweep leaves the old enrollment alone."""
    PolicyFactory(region=world.region, grace_days=10)
    old = enrol(world, on=D(2026, 3, 15))
    with at(D(2029, 3, 1)):
        renewal = services.application_renew(application_id=old.pk, actor=world.clerk)
    sweep(D(2029, 4, 20))
    old.refresh_from_db()
    assert old.state == State.EXPIRING
    with at(D(2029, 4, 25)):
        new = approve(world, renewal)
    _assert_continues(old, new)


def test_renewal_filed_after_grace_is_a_new_application_starting_on_filing(world):
    PolicyFactory(region=world.region, grace_days=10)
    old = enrol(world, on=D(2026, 3, 15))  # until 2029-03-14, grace to 2029-03-24
    sweep(D(2029, 3, 25))
    old.refresh_from_db()
    assert (old.state, old.ended_on) == (State.EXPIRED, D(2029, 3, 14))
    with at(D(2029, 4, 2)):
        filed = services.application_renew(application_id=old.pk, actor=world.clerk)
    assert (filed.kind, filed.renews_id) == (ApplicationKind.NEW, None)
    assert filed.icd10_code == "I10"  # diagnosis still carried forward
    with at(D(2029, 4, 20)):
        new = approve(world, filed)
    # A new application: the default benefit start is its filing date, not the decision.
    assert (new.valid_from, new.valid_until) == (D(2029, 4, 2), D(2032, 4, 1))
    old.refresh_from_db()
    assert old.state == State.EXPIRED


def test_renewal_past_grace_before_the_sweep_ran_is_also_new(world):
    PolicyFactory(region=world.region, grace_days=0)
    old = enrol(world, on=D(2026, 3, 15))  # grace 0: lapsed from 2029-03-15
    with at(D(2029, 3, 20)):
        filed = services.application_renew(application_id=old.pk, actor=world.clerk)
    assert filed.kind == ApplicationKind.NEW
    previous = type(old).objects.get(pk=old.pk)
    assert (previous.state, previous.ended_on) == (State.EXPIRED, D(2029, 3, 14))
    expire = audit_of(old, "expire")
    assert len(expire) == 1 and expire[0].is_system


# ---------------------------------------------------------------------------
# Termination
# ---------------------------------------------------------------------------


def test_termination_by_admin_with_reason_and_audit(world):
    enrollment = enrol(world, on=D(2026, 3, 15))
    with at(D(2027, 6, 1)):
        ended = services.application_terminate(
            application_id=enrollment.pk, actor=world.admin, reason="death", note="death certificate 2027-05-30"
        )
    assert (ended.state, ended.termination_reason, ended.ended_on) == (State.TERMINATED, "death", D(2027, 6, 1))
    entry = AuditEntry.objects.filter(application=enrollment).latest("id")
    assert (entry.transition, entry.actor, entry.reason_code) == ("terminate", world.admin, "death")
    assert entry.details == {"ended_on": "2027-06-01"}


def test_terminating_an_enrollment_withdraws_its_pending_renewal(world):
    enrollment = enrol(world, on=D(2026, 3, 15))
    with at(D(2029, 1, 10)):
        renewal = services.application_renew(application_id=enrollment.pk, actor=world.clerk)
    with at(D(2029, 1, 20)):
        services.application_terminate(application_id=enrollment.pk, actor=world.reviewer, reason="death")
    renewal.refresh_from_db()
    assert renewal.state == State.WITHDRAWN
    (entry,) = audit_of(renewal, "withdraw")
    assert entry.is_system and entry.reason_code == "enrollment_terminated"
    assert entry.details == {"terminated": enrollment.pk, "by": world.reviewer.pk}


def test_a_renewal_in_review_cannot_be_approved_once_its_enrollment_is_terminated(world):
    from tests.enrollment.validity_helpers import diagnose

    enrollment = enrol(world, on=D(2026, 3, 15))
    with at(D(2029, 1, 10)):
        renewal = services.application_renew(application_id=enrollment.pk, actor=world.clerk)
    with at(D(2029, 1, 11)):
        diagnose(world, renewal, day=D(2029, 1, 11))
    with at(D(2029, 1, 12)):
        services.run_transition(
            application=services.lock_application(renewal.pk), name="enqueue", actor=services.get_system_user()
        )
        services.application_terminate(application_id=enrollment.pk, actor=world.reviewer, reason="moved_out")
        with pytest.raises(RuleViolation) as refused:
            services.application_approve(application_id=renewal.pk, actor=world.reviewer)
    assert refused.value.code == "renewed_enrollment_terminated"
    renewal.refresh_from_db()
    assert renewal.state == State.IN_REVIEW


def test_terminated_enrollment_cannot_be_renewed(world):
    enrollment = enrol(world, on=D(2026, 3, 15))
    with at(D(2027, 6, 1)):
        services.application_terminate(application_id=enrollment.pk, actor=world.reviewer, reason="moved_out")
    with at(D(2029, 1, 1)), pytest.raises(TransitionRefused):
        services.application_renew(application_id=enrollment.pk, actor=world.clerk)
