"""Stage decisions, separation of duties, the 两病 fallback, resubmission and batch closing (issue 3 items 2, 5–7)."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
import time_machine
from django.utils import timezone

from enrollment import selectors as enrollment_selectors
from enrollment import services
from enrollment.models import Application, ApplicationKind, AuditEntry, State
from kernel import roles
from kernel.errors import InvalidInput, NotPermitted, RuleViolation
from reviews import selectors
from reviews import services as review_services
from reviews.models import BatchState, Outcome, ReviewBatch, ReviewItem, StageDecision
from tests.reviews.helpers import FEBRUARY, add_role, assemble, claim_and_decide, diagnosed, item_of, reviewer

pytestmark = pytest.mark.django_db

SPECIAL_STAGES = ["initial_review", "recheck", "approval"]


def test_single_stage_approval_approves_the_application_and_closes_the_batch(world):
    application = diagnosed(world)
    batch = assemble(world)
    item = item_of(application)
    claim_and_decide(item, world.reviewer, "approve", reason="criteria met")

    application.refresh_from_db()
    assert application.state == State.APPROVED
    assert application.valid_from == FEBRUARY.date()  # the default benefit start: the filing date
    assert application.valid_until is not None
    entry = AuditEntry.objects.filter(application=application).order_by("-id").first()
    assert (entry.transition, entry.from_state, entry.to_state, entry.actor) == (
        "approve",
        "in_review",
        "approved",
        world.reviewer,
    )
    assert (entry.batch_id, entry.stage) == (batch.pk, "initial_review")
    decision = StageDecision.objects.get(application=application)
    assert (decision.stage, decision.decision, decision.decided_by, decision.round) == (
        "initial_review",
        "approve",
        world.reviewer,
        1,
    )
    item.refresh_from_db()
    assert item.outcome == Outcome.APPROVED and item.decided_at is not None
    batch.refresh_from_db()
    assert batch.state == BatchState.CLOSED and batch.closed_at is not None


def test_three_stages_by_three_reviewers(world):
    application = diagnosed(world, disease=world.renal)
    other = diagnosed(world)
    batch = assemble(world)
    first, second, third = (reviewer(world, [stage]) for stage in SPECIAL_STAGES)
    item = item_of(application)

    claim_and_decide(item, first)
    item.refresh_from_db()
    assert (item.stage, item.outcome, item.claimed_by) == ("recheck", "pending", None)
    assert Application.objects.get(pk=application.pk).state == State.IN_REVIEW
    stage_row = AuditEntry.objects.filter(application=application).order_by("-id").first()
    assert (stage_row.transition, stage_row.stage, stage_row.actor) == ("stage_approve", "initial_review", first)
    assert item.pk not in [i.pk for i in selectors.queue_for(first)]
    assert item.pk in [i.pk for i in selectors.queue_for(second)]

    claim_and_decide(item, second)
    item.refresh_from_db()
    assert item.stage == "approval"
    claim_and_decide(item_of(other), first)  # the batch still has the special item pending
    batch.refresh_from_db()
    assert batch.state == BatchState.REVIEWING
    claim_and_decide(item, third)

    assert Application.objects.get(pk=application.pk).state == State.APPROVED
    assert list(
        StageDecision.objects.filter(application=application).values_list("stage", "decided_by").order_by("id")
    ) == [("initial_review", first.pk), ("recheck", second.pk), ("approval", third.pk)]
    batch.refresh_from_db()
    assert batch.state == BatchState.CLOSED


@pytest.mark.parametrize("earlier,later", list(itertools.combinations(SPECIAL_STAGES, 2)))
def test_one_reviewer_may_not_decide_two_stages(world, earlier, later):
    application = diagnosed(world, disease=world.renal)
    assemble(world)
    item = item_of(application)
    everything = reviewer(world, SPECIAL_STAGES)
    helpers = {stage: reviewer(world, [stage]) for stage in SPECIAL_STAGES}
    for stage in SPECIAL_STAGES:
        if stage == later:
            break
        claim_and_decide(item, everything if stage == earlier else helpers[stage])
        item.refresh_from_db()
    assert item.stage == later
    # The queue does not offer it, and deciding it anyway is refused.
    assert review_services.queue_claim(actor=everything, count=10) == []
    with pytest.raises(RuleViolation) as refused:
        review_services.review_decide(item_id=item.pk, actor=everything, decision="approve")
    assert refused.value.code == "separation_of_duties"
    assert refused.value.details["decided_stage"] == earlier
    # Someone else may.
    claim_and_decide(item, helpers[later])


def test_filer_and_diagnosing_physician_may_not_review(world):
    application = diagnosed(world)
    assemble(world)
    item = item_of(application)
    for user in (world.clerk, world.physician_user):
        add_role(user, roles.REVIEWER)
        profile = user.profile
        profile.region = world.region
        profile.review_stages = ["initial_review"]
        profile.save()
        assert not selectors.queue_for(user).filter(pk=item.pk).exists()
        with pytest.raises(RuleViolation) as refused:
            review_services.review_decide(item_id=item.pk, actor=user, decision="approve")
        assert refused.value.code == "separation_of_duties"
    assert Application.objects.get(pk=application.pk).state == State.IN_REVIEW


def test_reject_needs_a_reason_code_and_text_and_ends_the_review_at_any_stage(world):
    application = diagnosed(world, disease=world.renal)
    assemble(world)
    item = item_of(application)
    claim_and_decide(item, reviewer(world, ["initial_review"]))
    checker = reviewer(world, ["recheck"])
    review_services.queue_claim(actor=checker, count=5)
    with pytest.raises(InvalidInput):
        review_services.review_decide(item_id=item.pk, actor=checker, decision="reject", reason="no code")
    with pytest.raises(InvalidInput):
        review_services.review_decide(
            item_id=item.pk, actor=checker, decision="reject", reason_code="criteria_not_met", reason="  "
        )
    review_services.review_decide(
        item_id=item.pk, actor=checker, decision="reject", reason_code="insufficient_evidence", reason="eGFR missing"
    )
    application.refresh_from_db()
    assert (application.state, application.decision_reason_code, application.decision_reason) == (
        State.REJECTED,
        "insufficient_evidence",
        "eGFR missing",
    )
    entry = AuditEntry.objects.filter(application=application, transition="reject").get()
    assert (entry.reason_code, entry.stage, entry.actor) == ("insufficient_evidence", "recheck", checker)
    item.refresh_from_db()
    assert item.outcome == Outcome.REJECTED
    assert not selectors.queue_for(reviewer(world, ["approval"])).exists()


def test_return_resubmit_and_the_next_months_batch(world):
    application = diagnosed(world)
    march = assemble(world)
    with pytest.raises(InvalidInput):
        claim_and_decide(item_of(application), world.reviewer, "return", reason="")
    review_services.review_decide(
        item_id=item_of(application).pk, actor=world.reviewer, decision="return", reason="HbA1c report"
    )
    application.refresh_from_db()
    assert (application.state, application.decision_reason) == (State.RETURNED, "HbA1c report")
    march.refresh_from_db()
    assert march.state == BatchState.CLOSED

    with time_machine.travel(dt.datetime(2026, 3, 10, 9, 0, tzinfo=dt.UTC), tick=False):
        services.application_resubmit(application_id=application.pk, actor=world.clerk, note="report attached")
    assert Application.objects.get(pk=application.pk).state == State.DIAGNOSED

    april = assemble(world, period="2026-04", at=dt.datetime(2026, 4, 1, 2, 0, tzinfo=dt.UTC))
    assert april.pk != march.pk and april.item_count == 1
    item = item_of(application)
    assert (item.batch_id, item.round, item.stage) == (april.pk, 2, "initial_review")
    # The same reviewer may take the same stage again in the new round.
    claim_and_decide(item, world.reviewer)
    assert Application.objects.get(pk=application.pk).state == State.APPROVED


def test_two_diseases_fallback_on_criteria_not_met(world):
    person = world.person()
    application = diagnosed(world, person=person, disease=world.hypertension)
    assemble(world)
    claim_and_decide(
        item_of(application),
        world.reviewer,
        "reject",
        reason_code="criteria_not_met",
        reason="BP controlled without complications",
        two_diseases=True,
    )
    assert Application.objects.get(pk=application.pk).state == State.REJECTED
    fallback = Application.objects.get(person=person, kind=ApplicationKind.TWO_DISEASES)
    assert (fallback.state, fallback.disease, fallback.icd10_code) == (State.APPROVED, world.hypertension, "I10")
    assert fallback.valid_from is not None
    assert list(fallback.audit_entries.values_list("transition", flat=True).order_by("id")) == [
        "submit",
        "diagnose",
        "enqueue",
        "approve",
    ]
    assert StageDecision.objects.get(application=application).two_diseases_application == fallback
    # It does not count toward the chronic limit: two chronic filings still pass.
    assert enrollment_selectors.chronic_holdings(person) == []
    for disease in (world.coronary, world.copd):
        services.application_submit(
            person=person, disease=disease, treating_institution=world.county, actor=world.clerk
        )


def test_two_diseases_only_for_hypertension_or_diabetes_and_criteria_not_met(world):
    copd = diagnosed(world, disease=world.copd)
    diabetes = diagnosed(world, disease=world.diabetes)
    assemble(world)
    review_services.queue_claim(actor=world.reviewer, count=10)
    with pytest.raises(RuleViolation) as refused:
        review_services.review_decide(
            item_id=item_of(copd).pk,
            actor=world.reviewer,
            decision="reject",
            reason_code="criteria_not_met",
            reason="x",
            two_diseases=True,
        )
    assert refused.value.code == "two_diseases_not_applicable"
    # The whole decision rolled back.
    assert Application.objects.get(pk=copd.pk).state == State.IN_REVIEW
    assert not StageDecision.objects.exists()
    with pytest.raises(InvalidInput):
        review_services.review_decide(
            item_id=item_of(diabetes).pk,
            actor=world.reviewer,
            decision="reject",
            reason_code="insufficient_evidence",
            reason="x",
            two_diseases=True,
        )


def test_decisions_need_a_live_claim_the_stage_and_the_region(world):
    application = diagnosed(world)
    assemble(world)
    item = item_of(application)
    with pytest.raises(RuleViolation) as refused:
        review_services.review_decide(item_id=item.pk, actor=world.reviewer, decision="approve")
    assert refused.value.code == "not_claimed"
    with pytest.raises(NotPermitted):
        review_services.review_decide(item_id=item.pk, actor=world.other_reviewer, decision="approve")
    with pytest.raises(NotPermitted):
        review_services.review_decide(item_id=item.pk, actor=reviewer(world, ["recheck"]), decision="approve")
    with pytest.raises(NotPermitted):
        review_services.review_decide(item_id=item.pk, actor=world.clerk, decision="approve")

    review_services.queue_claim(actor=world.reviewer, count=1)
    with time_machine.travel(timezone.now() + dt.timedelta(minutes=31)):
        with pytest.raises(RuleViolation) as expired:
            review_services.review_decide(item_id=item.pk, actor=world.reviewer, decision="approve")
        assert expired.value.code == "not_claimed"

    review_services.queue_claim(actor=world.reviewer, count=1)
    review_services.review_decide(item_id=item.pk, actor=world.reviewer, decision="approve")
    with pytest.raises(RuleViolation) as twice:
        review_services.review_decide(item_id=item.pk, actor=world.reviewer, decision="approve")
    assert twice.value.code == "already_decided"
    assert AuditEntry.objects.filter(application=application, transition="approve").count() == 1


def test_bulk_decision_gives_each_item_its_own_audit_row(world):
    applications = [diagnosed(world) for _ in range(4)]
    batch = assemble(world)
    items = [item_of(a) for a in applications]
    review_services.queue_claim(actor=world.reviewer, count=3)
    result = review_services.review_decide_bulk(
        item_ids=[i.pk for i in items], actor=world.reviewer, decision="return", reason="ID card copy"
    )
    assert result.decided == [i.pk for i in items[:3]]
    assert [(f["item"], f["code"]) for f in result.failed] == [(items[3].pk, "not_claimed")]
    for application in applications[:3]:
        entry = AuditEntry.objects.get(application=application, transition="return_for_information")
        assert (entry.reason, entry.batch_id, entry.actor) == ("ID card copy", batch.pk, world.reviewer)
    assert Application.objects.get(pk=applications[3].pk).state == State.IN_REVIEW
    with pytest.raises(InvalidInput):
        review_services.review_decide_bulk(item_ids=[items[3].pk], actor=world.reviewer, decision="maybe")


def test_batch_counts_for_the_batch_page(world):
    chronic = [diagnosed(world) for _ in range(3)]
    special = diagnosed(world, disease=world.renal)
    batch = assemble(world)
    claim_and_decide(item_of(chronic[0]), world.reviewer)
    review_services.review_decide(
        item_id=item_of(chronic[1]).pk, actor=world.reviewer, decision="reject", reason_code="other", reason="x"
    )
    review_services.review_decide(item_id=item_of(special).pk, actor=world.reviewer, decision="approve")
    with time_machine.travel(timezone.now() + dt.timedelta(days=10)):
        counts = selectors.batch_counts(ReviewBatch.objects.get(pk=batch.pk))
    assert counts["by_outcome"] == {"pending": 2, "approved": 1, "rejected": 1, "returned": 0, "withdrawn": 0}
    assert counts["pending_by_stage"] == {"initial_review": 1, "recheck": 1}
    by_disease = {row["code"]: row for row in counts["by_disease"]}
    assert by_disease["M03900"]["approved"] == 1 and by_disease["M03900"]["pending"] == 1
    assert by_disease["M07800"]["pending"] == 1
    assert sum(counts["ageing_days"].values()) == 2
    assert counts["ageing_days"]["8-14"] >= 1
    assert {(d["user"], d["stage"], d["decision"], d["count"]) for d in counts["decided_by"]} == {
        (world.reviewer.username, "initial_review", "approve", 2),
        (world.reviewer.username, "initial_review", "reject", 1),
    }
    assert special.pk in ReviewItem.objects.filter(stage="recheck").values_list("application_id", flat=True)
