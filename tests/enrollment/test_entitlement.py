"""Entitlement you can pay on (docs/entitlement.md): each coverage rule by name, at its date edges.

The clock is always pinned (``at``), so no test depends on the day it runs.
"""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from enrollment import selectors, services
from enrollment.models import (
    Application,
    ApplicationKind,
    AuditEntry,
    PersonAuditEntry,
    PersonCategory,
    State,
    StatusEventKind,
)
from enrollment.services import person_status
from kernel.errors import RuleViolation
from reviews.models import Outcome, ReviewItem
from tests.enrollment.validity_helpers import SHANGHAI, at, diagnose, enrol, sweep
from tests.factories import PolicyFactory
from tests.reviews.helpers import assemble, claim_and_decide, diagnosed, item_of

D = dt.date


def answer(person, disease, on, as_of=None):
    return selectors.coverage_on(person=person, disease=disease, on=on, as_of=as_of)


def event(world, person, kind, on, ref, *, actor=None, **kwargs):
    return person_status.status_event_record(
        person=person,
        kind=kind,
        effective_date=on,
        source="test",
        reference=ref,
        actor=actor or world.officer,
        **kwargs,
    )


# ---------------------------------------------------------------------------
# 1. 两病 is its own benefit
# ---------------------------------------------------------------------------


def _two_diseases_fallback(world, person):
    application = diagnosed(world, person=person)
    assemble(world)
    claim_and_decide(
        item_of(application),
        world.reviewer,
        decision="reject",
        reason_code="criteria_not_met",
        reason="血压未达门慢标准",
        two_diseases=True,
    )
    return Application.objects.get(person=person, kind=ApplicationKind.TWO_DISEASES)


@pytest.mark.time_machine(dt.datetime(2026, 3, 2, 9, 0, tzinfo=SHANGHAI), tick=False)
def test_two_diseases_only_is_not_outpatient_chronic_coverage(world):
    person = world.person()
    fallback = _two_diseases_fallback(world, person)
    assert fallback.state == State.APPROVED and fallback.valid_until is None  # policy default: no fixed end
    result = answer(person, world.hypertension, D(2026, 3, 2))
    assert (result.covered, result.reason, result.benefit) == (False, "two_diseases_only", None)
    assert result.two_diseases["covered"] is True and result.two_diseases["valid_from"] == D(2026, 3, 2)
    # The benefit for a 门慢 enrollment is named.
    held = enrol(world, on=D(2026, 3, 2), disease=world.coronary, icd="I20")
    chronic = answer(held.person, world.coronary, D(2026, 3, 2))
    assert (chronic.covered, chronic.benefit, chronic.two_diseases) == (True, "outpatient_chronic", None)


@pytest.mark.time_machine(dt.datetime(2026, 3, 2, 9, 0, tzinfo=SHANGHAI), tick=False)
def test_two_diseases_refused_for_employee_insurance(world):
    person = world.person(insurance_type="310")
    application = diagnosed(world, person=person)
    assemble(world)
    with pytest.raises(RuleViolation) as refused:
        claim_and_decide(
            item_of(application),
            world.reviewer,
            decision="reject",
            reason_code="criteria_not_met",
            reason="未达标",
            two_diseases=True,
        )
    assert refused.value.code == "two_diseases_residents_only"
    application.refresh_from_db()
    assert application.state == State.IN_REVIEW  # the whole decision rolled back: nothing half-done


@pytest.mark.time_machine(dt.datetime(2026, 3, 2, 9, 0, tzinfo=SHANGHAI), tick=False)
def test_two_diseases_never_in_the_national_export_and_policy_validity(world):
    from interop import selectors as interop_selectors

    PolicyFactory(region=world.region, two_diseases_validity_months=12)
    person = world.person()
    fallback = _two_diseases_fallback(world, person)
    assert (fallback.valid_from, fallback.valid_until) == (D(2026, 3, 2), D(2027, 3, 1))
    request = interop_selectors.export_request(viewer=None, region_code=world.region.code, period="2026-03")
    national = interop_selectors.export_request(
        viewer=None, region_code=world.region.code, period="2026-03", shape="national"
    )
    header, rows = interop_selectors.export_rows(viewer=None, request=national)
    assert list(rows) == []
    header, rows = interop_selectors.export_rows(viewer=None, request=request)
    (row,) = list(rows)
    assert dict(zip(header, row, strict=True))["benefit"] == "two_diseases"


def test_two_diseases_reminders_own_text_or_none(world):
    PolicyFactory(region=world.region, two_diseases_validity_months=12)
    with at(D(2026, 3, 2)):
        fallback = _two_diseases_fallback(world, world.person(phone="13800001111"))
    sweep(D(2027, 2, 28))  # 1 day before its end: no reminder while the policy does not ask for them
    assert not fallback.reminders.exists()
    from enrollment.models import Policy

    Policy.objects.filter(region=world.region).update(two_diseases_reminders=True)
    sweep(D(2027, 3, 1))
    sms = fallback.reminders.get(channel="sms", offset_days=0)
    assert "两病" in sms.message and "门诊慢特病" not in sms.message and "复审" not in sms.message


@pytest.mark.time_machine(dt.datetime(2026, 3, 2, 9, 0, tzinfo=SHANGHAI), tick=False)
def test_bulk_decision_applies_the_two_diseases_choice(world):
    from reviews import services as review_services

    people = [world.person() for _ in range(2)]
    applications = [diagnosed(world, person=p) for p in people]
    copd = diagnosed(world, disease=world.copd)
    assemble(world)
    review_services.queue_claim(actor=world.reviewer, count=10)
    items = [item_of(a).pk for a in (*applications, copd)]
    result = review_services.review_decide_bulk(
        item_ids=items,
        actor=world.reviewer,
        decision="reject",
        reason_code="criteria_not_met",
        reason="未达标",
        two_diseases=True,
    )
    assert result.decided == items[:2]
    assert [f["code"] for f in result.failed] == ["two_diseases_not_applicable"]
    for person in people:
        assert Application.objects.filter(person=person, kind=ApplicationKind.TWO_DISEASES, state="approved").exists()
    assert item_of(copd).outcome == Outcome.PENDING  # the refused item is left undecided, not half-done


# ---------------------------------------------------------------------------
# 2. Insurance status and life events
# ---------------------------------------------------------------------------


def test_death_ends_enrollments_closes_pending_and_refuses_filing(world):
    enrollment = enrol(world, on=D(2026, 3, 15))
    person = enrollment.person
    with at(D(2026, 2, 10)):
        pass
    pending = diagnosed(world, person=person, disease=world.copd, at=dt.datetime(2026, 5, 10, 10, tzinfo=SHANGHAI))
    with at(D(2026, 6, 2)):
        assemble(world, period="2026-06", at=dt.datetime(2026, 6, 2, 9, tzinfo=SHANGHAI))
        assert Application.objects.get(pk=pending.pk).state == State.IN_REVIEW
        result = event(world, person, StatusEventKind.DIED, D(2026, 5, 31), "death-1")
    assert result.created and result.terminated == [enrollment.pk] and result.closed == [pending.pk]
    enrollment.refresh_from_db()
    assert (enrollment.state, enrollment.ended_on, enrollment.termination_reason) == (
        "terminated",
        D(2026, 5, 31),
        "death",
    )
    assert Application.objects.get(pk=pending.pk).state == State.WITHDRAWN
    assert ReviewItem.objects.get(application=pending).outcome == Outcome.WITHDRAWN
    assert answer(person, world.hypertension, D(2026, 5, 31)).covered  # the day of death is covered
    after = answer(person, world.hypertension, D(2026, 6, 1))
    assert (after.covered, after.insurance_status) == (False, "person_deceased")
    with at(D(2026, 6, 3)), pytest.raises(RuleViolation) as refused:
        services.application_submit(
            person=person, disease=world.diabetes, treating_institution=world.county, actor=world.clerk
        )
    assert refused.value.code == "person_deceased"
    # Every change wrote its audit row.
    assert AuditEntry.objects.filter(application=enrollment, transition="terminate").count() == 1
    assert AuditEntry.objects.filter(application=pending, transition="close").count() == 1
    assert PersonAuditEntry.objects.filter(person=person, action="status_event_applied").count() == 1


def test_resending_an_event_changes_nothing_and_a_conflict_is_refused(world):
    enrollment = enrol(world, on=D(2026, 3, 15))
    with at(D(2026, 7, 1)):
        first = event(world, enrollment.person, StatusEventKind.MOVED_OUT, D(2026, 7, 1), "move-7")
        audit_rows = AuditEntry.objects.count()
        again = event(world, enrollment.person, StatusEventKind.MOVED_OUT, D(2026, 7, 1), "move-7")
        assert (again.created, again.event.pk, AuditEntry.objects.count()) == (False, first.event.pk, audit_rows)
        with pytest.raises(RuleViolation) as conflict:
            event(world, enrollment.person, StatusEventKind.MOVED_OUT, D(2026, 7, 2), "move-7")
    assert conflict.value.code == "reference_conflict"
    enrollment.refresh_from_db()
    assert (enrollment.ended_on, enrollment.termination_reason) == (D(2026, 6, 30), "moved_out")
    assert not answer(enrollment.person, world.hypertension, D(2026, 7, 1)).covered
    assert answer(enrollment.person, world.hypertension, D(2026, 6, 30)).covered


def test_suspension_window_is_not_covered_and_resumption_covers_again(world):
    enrollment = enrol(world, on=D(2026, 3, 15))
    person = enrollment.person
    with at(D(2026, 9, 1)):
        event(world, person, StatusEventKind.INSURANCE_SUSPENDED, D(2026, 8, 1), "s-1")
        event(world, person, StatusEventKind.INSURANCE_RESUMED, D(2026, 8, 20), "r-1")
    assert answer(person, world.hypertension, D(2026, 7, 31)).covered
    for day in (D(2026, 8, 1), D(2026, 8, 19)):
        result = answer(person, world.hypertension, day)
        assert (result.covered, result.reason, result.enrollment) == (False, "insurance_suspended", enrollment)
    assert answer(person, world.hypertension, D(2026, 8, 20)).covered
    enrollment.refresh_from_db()
    assert enrollment.state == State.APPROVED  # a suspension ends nothing


def test_filing_refused_while_suspended(world):
    person = world.person()
    with at(D(2026, 9, 1)):
        event(world, person, StatusEventKind.INSURANCE_SUSPENDED, D(2026, 8, 1), "s-2")
        with pytest.raises(RuleViolation) as refused:
            services.application_submit(
                person=person, disease=world.hypertension, treating_institution=world.county, actor=world.clerk
            )
    assert refused.value.code == "not_insured"


def test_future_event_is_applied_by_the_sweep_on_its_date(world):
    enrollment = enrol(world, on=D(2026, 3, 15))
    with at(D(2026, 10, 1)):
        result = event(world, enrollment.person, StatusEventKind.INSURANCE_ENDED, D(2026, 11, 1), "end-11")
    assert result.terminated == [] and result.event.applied_at is None
    sweep(D(2026, 10, 31))
    enrollment.refresh_from_db()
    assert enrollment.state == State.APPROVED
    assert sweep(D(2026, 11, 1)).status_events_applied == 1
    enrollment.refresh_from_db()
    assert (enrollment.state, enrollment.ended_on) == (State.TERMINATED, D(2026, 10, 31))
    assert sweep(D(2026, 11, 2)).status_events_applied == 0


def test_moving_to_employee_insurance_ends_two_diseases_coverage(world):
    with at(D(2026, 3, 2)):
        person = world.person()
        fallback = _two_diseases_fallback(world, person)
    with at(D(2026, 9, 1)):
        event(world, person, StatusEventKind.INSURANCE_RESUMED, D(2026, 9, 1), "t-310", insurance_type="310")
    before = answer(person, world.hypertension, D(2026, 8, 31))
    after = answer(person, world.hypertension, D(2026, 9, 1))
    assert before.two_diseases["covered"] and not after.two_diseases["covered"]
    fallback.refresh_from_db()
    assert (fallback.state, fallback.ended_on) == (State.TERMINATED, D(2026, 8, 31))


# ---------------------------------------------------------------------------
# 3. Bounded provisional coverage; undiagnosed renewals
# ---------------------------------------------------------------------------


def test_provisional_coverage_ends_at_grace_then_renewal_overdue(world):
    PolicyFactory(region=world.region, grace_days=60)
    old = enrol(world, on=D(2026, 3, 15))  # until 2029-03-14
    with at(D(2029, 3, 1)):
        renewal = services.application_renew(application_id=old.pk, actor=world.clerk)
    assert renewal.provisional_until == D(2029, 5, 13)
    with at(D(2029, 3, 2)):
        diagnose(world, renewal, day=D(2029, 3, 2))
    last = answer(old.person, world.hypertension, D(2029, 5, 13))
    assert (last.covered, last.provisional, last.reason) == (True, True, "renewal_pending")
    overdue = answer(old.person, world.hypertension, D(2029, 5, 14))
    assert (overdue.covered, overdue.reason, overdue.pending_renewal) == (False, "renewal_overdue", renewal)
    # 22 months past expiry it still does not cover.
    assert answer(old.person, world.hypertension, D(2031, 1, 14)).reason == "renewal_overdue"


def test_undiagnosed_renewal_is_warned_then_withdrawn(world):
    PolicyFactory(
        region=world.region, grace_days=60, renewal_diagnosis_limit_days=90, renewal_diagnosis_warning_days=14
    )
    old = enrol(world, on=D(2026, 3, 15))  # until 2029-03-14
    with at(D(2029, 1, 1)):
        renewal = services.application_renew(application_id=old.pk, actor=world.clerk)
    result = sweep(D(2029, 3, 17))  # 75 days after filing: one day before the warning
    assert result.renewals_warned == 0
    result = sweep(D(2029, 3, 18))  # 90 − 14 days after filing: the clinic is told
    assert result.renewals_warned == 1
    notice = renewal.reminders.get(channel="in_app")
    assert notice.status == "sent" and "自动撤回" in notice.message and notice.valid_until == D(2029, 4, 1)
    assert sweep(D(2029, 3, 19)).renewals_warned == 0  # once
    result = sweep(D(2029, 4, 1))  # 90 days after filing
    assert result.renewals_withdrawn == 1
    renewal.refresh_from_db()
    assert renewal.state == State.WITHDRAWN
    assert AuditEntry.objects.get(application=renewal, transition="close").reason_code == "renewal_not_diagnosed"
    old.refresh_from_db()
    # Withdrawn after the end: the provisional days given are honoured up to the withdrawal.
    assert (old.state, old.ended_on) == (State.EXPIRED, D(2029, 4, 1))
    assert answer(old.person, world.hypertension, D(2029, 4, 1)).covered
    assert not answer(old.person, world.hypertension, D(2029, 4, 2)).covered


# ---------------------------------------------------------------------------
# 4. No rewritten history: as_of reproduces every earlier answer
# ---------------------------------------------------------------------------


def test_answers_over_a_renewals_life_are_reproduced_with_as_of(world):
    from reviews import services as review_services

    PolicyFactory(region=world.region, grace_days=60)
    old = enrol(world, on=D(2026, 3, 15))  # until 2029-03-14
    person = old.person
    days = [D(2029, 3, 10), D(2029, 3, 14), D(2029, 3, 15), D(2029, 3, 25), D(2029, 4, 5), D(2029, 4, 20)]
    recorded: list[tuple[dt.datetime, dt.date, tuple]] = []

    def record(moment: dt.date) -> None:
        with at(moment, hour=12):
            now = timezone.now()
            for day in days:
                if day <= moment:
                    result = answer(person, world.hypertension, day)
                    recorded.append((now, day, (result.covered, result.reason, result.provisional)))

    record(D(2029, 3, 14))
    with at(D(2029, 3, 20)):
        renewal = services.application_renew(application_id=old.pk, actor=world.clerk)
    record(D(2029, 3, 25))
    with at(D(2029, 3, 26)):
        diagnose(world, renewal, day=D(2029, 3, 26))
    sweep(D(2029, 3, 27))
    record(D(2029, 4, 5))
    # The May batch reviews it; rejected on 2029-04-10 (a batch assembled early by hand).
    with at(D(2029, 4, 10)):
        batch = review_services.batch_assemble(
            region_id=world.region.pk, period="2029-04", actor=services.get_system_user()
        )
        assert batch.item_count == 1
        claim_and_decide(
            item_of(renewal), world.reviewer, decision="reject", reason_code="criteria_not_met", reason="x"
        )
    record(D(2029, 4, 20))
    old.refresh_from_db()
    assert (old.state, old.ended_on) == (State.EXPIRED, D(2029, 4, 10))
    # The answers before the renewal was filed: 3-15 and later were "ended"; filed on 3-20, the days from
    # then are provisional; after the rejection the provisional days up to it stay covered.
    assert answer(person, world.hypertension, D(2029, 3, 25)).covered
    assert answer(person, world.hypertension, D(2029, 4, 5)).reason == "provisional_honoured"
    assert not answer(person, world.hypertension, D(2029, 4, 11)).covered
    assert not answer(person, world.hypertension, D(2029, 3, 15)).covered  # before the filing: never covered
    # Every answer given is reproduced as of the moment it was given.
    for moment, day, given in recorded:
        again = answer(person, world.hypertension, day, as_of=moment)
        assert (again.covered, again.reason, again.provisional) == given, (moment, day)
    # And a covered answer for a past day never became "not covered".
    for _moment, day, given in recorded:
        if given[0] and day <= D(2029, 4, 10):
            assert answer(person, world.hypertension, day).covered, day


def test_as_of_before_a_late_death_report_gives_the_earlier_answer(world):
    enrollment = enrol(world, on=D(2026, 3, 15))
    with at(D(2026, 6, 1)):
        before_report = timezone.now()
    with at(D(2026, 8, 1)):
        event(world, enrollment.person, StatusEventKind.DIED, D(2026, 5, 20), "late-death")
    now = answer(enrollment.person, world.hypertension, D(2026, 5, 25))
    then = answer(enrollment.person, world.hypertension, D(2026, 5, 25), as_of=before_report)
    assert (now.covered, now.reason) == (False, "person_deceased")  # corrected, by a recorded event
    assert (then.covered, then.reason) == (True, "covered")


# ---------------------------------------------------------------------------
# 5. Dated support categories
# ---------------------------------------------------------------------------


def test_poverty_exit_keeps_categories_for_the_continuation_then_the_sweep_ends_them(world):
    PolicyFactory(region=world.region, poverty_continuation_months=12)
    person = world.person()
    with at(D(2026, 1, 5)):
        person_status.person_categories_replace(
            person=person,
            categories=["minimum_living", "orphan"],
            as_of=D(2026, 1, 1),
            source="office",
            reference="l1",
            actor=world.officer,
        )
        event(world, person, StatusEventKind.POVERTY_EXITED, D(2026, 1, 1), "px-1")
    periods = {p.category: p for p in PersonCategory.objects.filter(person=person)}
    assert periods["minimum_living"].valid_until == D(2026, 12, 31)
    assert periods["orphan"].valid_until is None  # not poverty-related
    assert selectors.coverage_on(person=person, disease=world.hypertension, on=D(2026, 12, 31)).support_categories == [
        "minimum_living",
        "orphan",
    ]
    assert answer(person, world.hypertension, D(2027, 1, 1)).support_categories == ["orphan"]
    assert sweep(D(2026, 12, 31)).categories_ended == 0
    assert sweep(D(2027, 1, 1)).categories_ended == 1
    assert sweep(D(2027, 1, 2)).categories_ended == 0
    person.refresh_from_db()
    assert person.support_categories == ["orphan"]
    assert PersonAuditEntry.objects.filter(person=person, action="category_ended").count() == 1


def test_a_new_list_replaces_categories_as_of_its_date(world):
    person = world.person()
    with at(D(2026, 2, 1)):
        for ref, categories, day in (
            ("a", ["monitored", "minimum_living"], D(2026, 1, 1)),
            ("b", ["orphan"], D(2026, 3, 1)),
        ):
            event(world, person, StatusEventKind.CATEGORIES_SET, day, ref, categories=categories)
    assert answer(person, world.hypertension, D(2026, 2, 28)).support_categories == ["minimum_living", "monitored"]
    assert sweep(D(2026, 3, 1)).status_events_applied == 1
    assert answer(person, world.hypertension, D(2026, 3, 1)).support_categories == ["orphan"]
    person.refresh_from_db()
    assert person.support_categories == ["orphan"]


# ---------------------------------------------------------------------------
# 8. Benefit start per policy
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "valid_from"),
    [
        ("filing_date", D(2026, 1, 31)),
        ("diagnosis_date", D(2026, 2, 3)),
        ("decision_date", D(2026, 3, 2)),
        ("next_month", D(2026, 4, 1)),
    ],
)
def test_benefit_start_rules(world, rule, valid_from):
    PolicyFactory(region=world.region, benefit_start=rule)
    with at(D(2026, 1, 31)):
        application = services.application_submit(
            person=world.person(), disease=world.hypertension, treating_institution=world.county, actor=world.clerk
        )
    with at(D(2026, 2, 3)):
        diagnose(world, application, day=D(2026, 2, 3))
    assemble(world, period="2026-03", at=dt.datetime(2026, 3, 2, 9, tzinfo=SHANGHAI))
    with at(D(2026, 3, 2)):
        claim_and_decide(item_of(application), world.reviewer)
    application.refresh_from_db()
    assert application.valid_from == valid_from
    # 36 months, month-end aware: from 31 Jan the period ends on the last day of the 36th month.
    from enrollment.periods import period_end

    assert application.valid_until == period_end(valid_from, 36)


def test_default_benefit_start_is_the_filing_date(world):
    from enrollment.models import BenefitStart, Policy

    assert Policy().benefit_start == BenefitStart.FILING_DATE and Policy().grace_days == 60
