"""Sample re-checks (抽查复核): who is a candidate, rates by specificity, a reproducible draw made once, the
re-check decision with separation of duties, and its correction through the termination service."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
import time_machine
from django.core.management import call_command

from enrollment.models import Application, AuditEntry, State
from kernel.errors import NotPermitted, RuleViolation
from oversight import selectors, services
from oversight.models import OversightAuditEntry, RecheckDraw, RecheckRate, RecheckSample, RecheckState, SampleKind
from oversight.tasks import draw_rechecks, previous_period
from tests.oversight.helpers import (
    MARCH_10,
    PERIOD,
    approve_all_stages,
    batch_approvals,
    first_reviewer,
    immediate_approval,
)
from tests.reviews.helpers import FEBRUARY, SHANGHAI, diagnosed

pytestmark = pytest.mark.django_db


def system():
    from enrollment.services import get_system_user

    return get_system_user()


def rate(world, percent, **kwargs):
    return RecheckRate.objects.create(region=kwargs.pop("region", world.region), percent=Decimal(percent), **kwargs)


def test_candidates_are_immediate_and_single_stage_approvals_of_the_month(world):
    spot = immediate_approval(world)
    renal = diagnosed(world, disease=world.renal, at=FEBRUARY)  # batched with the next one
    first = first_reviewer(world)
    _batch, (single,) = batch_approvals(world, 1, by=first)
    multi = approve_all_stages(world, renal, first=first)
    april = immediate_approval(world, at=dt.datetime(2026, 4, 1, 0, 0, tzinfo=SHANGHAI))  # next period
    candidates = {
        c.application_id: c.kind for c in selectors.recheck_candidates(region_id=world.region.pk, period=PERIOD)
    }
    assert candidates == {spot.pk: SampleKind.IMMEDIATE, single.pk: SampleKind.SINGLE_STAGE}
    assert multi.pk not in candidates and april.pk not in candidates


def test_month_boundary_is_local_midnight():
    start, end = selectors.period_bounds("2026-12")
    assert (start.isoformat(), end.isoformat()) == ("2026-12-01T00:00:00+08:00", "2027-01-01T00:00:00+08:00")
    assert previous_period(dt.date(2027, 1, 1)) == "2026-12"
    assert previous_period(dt.date(2024, 3, 1)) == "2024-02"


def test_rates_most_specific_wins(world):
    lineage = [world.region.pk, world.province.pk]
    hyper, county = world.hypertension.pk, world.county.pk

    def choice(disease=hyper, institution=county):
        return selectors.recheck_rate(
            rates=selectors.rates_for_lineage(lineage),
            lineage_ids=lineage,
            disease_id=disease,
            institution_id=institution,
        )

    assert choice().percent == Decimal("10") and choice().source == "default"
    rate(world, "20", region=world.province)
    assert choice().percent == Decimal("20")
    rate(world, "25")  # the nearer region's default beats the province's
    assert choice().percent == Decimal("25")
    rate(world, "30", institution=world.county)
    assert choice().percent == Decimal("30")
    rate(world, "40", region=world.province, disease=world.hypertension)  # a disease rate beats an institution rate
    assert choice().percent == Decimal("40")
    rate(world, "50", disease=world.hypertension, institution=world.county)
    assert (choice().percent, choice().source) == (
        Decimal("50"),
        f"{world.region.code}/disease M03900/institution {world.county.code}",
    )
    # Other diseases and institutions fall back along the same order.
    assert choice(disease=world.diabetes.pk).percent == Decimal("30")
    assert choice(disease=world.diabetes.pk, institution=world.township.pk).percent == Decimal("25")


def test_draw_is_deterministic_from_its_seed_and_made_once(world):
    _batch, approvals = batch_approvals(world, 12)
    rate(world, "50")
    with time_machine.travel(dt.datetime(2026, 4, 1, 2, 45, tzinfo=SHANGHAI), tick=False):
        draw = services.recheck_draw(region_id=world.region.pk, period=PERIOD, actor=system())
    assert draw.candidates == 12
    expected = {a.pk for a in approvals if selectors.draw_score(draw.seed, a.pk) * 100 < Decimal("50")}
    sampled = set(RecheckSample.objects.filter(draw=draw).values_list("application_id", flat=True))
    assert sampled == expected and draw.sampled == len(expected)
    for sample in RecheckSample.objects.filter(draw=draw):
        assert sample.score == selectors.draw_score(draw.seed, sample.application_id)
        assert sample.percent == Decimal("50") and sample.rate_source == world.region.code
    # The same seed gives the same picks; the score is a stable function of seed and id.
    assert selectors.draw_score("abc", 7) == selectors.draw_score("abc", 7) != selectors.draw_score("abd", 7)
    # Run again (beat twice, a retried task, the command): nothing new.
    again = services.recheck_draw(region_id=world.region.pk, period=PERIOD, actor=system())
    assert again.pk == draw.pk and again.seed == draw.seed
    assert RecheckSample.objects.count() == len(expected)
    assert OversightAuditEntry.objects.filter(action="draw").count() == 1
    audit = OversightAuditEntry.objects.get(action="draw")
    assert audit.details["seed"] == draw.seed and audit.details["sampled"] == len(expected)


def test_rate_zero_switches_off_and_hundred_takes_all(world):
    spot = immediate_approval(world)
    _batch, (single,) = batch_approvals(world, 1)
    rate(world, "0")
    rate(world, "100", disease=world.dialysis)
    draw = services.recheck_draw(region_id=world.region.pk, period=PERIOD, actor=system())
    assert set(RecheckSample.objects.filter(draw=draw).values_list("application_id", flat=True)) == {spot.pk}
    assert single.pk not in set(RecheckSample.objects.values_list("application_id", flat=True))


def test_beat_task_and_command_draw_the_previous_month_once(world):
    spot = immediate_approval(world)
    rate(world, "100")
    assert draw_rechecks(day="2026-04-01") == [[world.region.pk, PERIOD, 1]]
    assert draw_rechecks(day="2026-04-02") == [[world.region.pk, PERIOD, 1]]  # next day: the same draw
    call_command("draw_rechecks", "--period", PERIOD)
    call_command("draw_rechecks", "--date", "2026-04-15")
    assert RecheckDraw.objects.count() == 1
    assert list(RecheckSample.objects.values_list("application_id", flat=True)) == [spot.pk]


def test_an_application_is_sampled_at_most_once(world):
    spot = immediate_approval(world)
    rate(world, "100")
    draw = services.recheck_draw(region_id=world.region.pk, period=PERIOD, actor=system())
    # A second draw row for the same month (as if created by hand) cannot queue it again.
    other = RecheckDraw.objects.create(
        region=world.region, period="2026-02", seed="x", drawn_at=draw.drawn_at, drawn_by=system()
    )
    RecheckSample.objects.bulk_create(
        [
            RecheckSample(
                draw=other,
                application=spot,
                region=world.region,
                institution=world.county,
                kind="immediate",
                approved_at=draw.drawn_at,
                percent=Decimal(100),
                rate_source="x",
                score=Decimal(0),
            )
        ],
        ignore_conflicts=True,
    )
    assert RecheckSample.objects.filter(application=spot).count() == 1


def _sample(world, **kwargs):
    spot = immediate_approval(world, **kwargs)
    rate(world, "100")
    services.recheck_draw(region_id=world.region.pk, period=PERIOD, actor=system())
    return RecheckSample.objects.get(application=spot)


def test_pass_is_recorded_with_audit(world):
    sample = _sample(world)
    services.recheck_decide(sample_id=sample.pk, actor=world.reviewer, passed=True, reason="documents complete")
    sample.refresh_from_db()
    assert (sample.state, sample.checked_by, sample.correction) == (RecheckState.PASSED, world.reviewer, "")
    assert Application.objects.get(pk=sample.application_id).state == State.APPROVED
    entry = OversightAuditEntry.objects.get(action="recheck_passed")
    assert (entry.actor, entry.sample_id, entry.application_id) == (world.reviewer, sample.pk, sample.application_id)
    with pytest.raises(RuleViolation):
        services.recheck_decide(sample_id=sample.pk, actor=world.reviewer, passed=False, reason="x")


def test_fail_terminates_the_enrollment_through_the_service(world):
    sample = _sample(world)
    with time_machine.travel(dt.datetime(2026, 4, 5, 9, 0, tzinfo=SHANGHAI), tick=False):
        services.recheck_decide(
            sample_id=sample.pk,
            actor=world.reviewer,
            passed=False,
            reason="the certificate predates the dialysis",
            termination_reason="cured",
        )
    application = Application.objects.get(pk=sample.application_id)
    assert application.state == State.TERMINATED and application.ended_on == dt.date(2026, 4, 5)
    audit = AuditEntry.objects.filter(application=application).order_by("-id").first()
    assert (audit.transition, audit.actor, audit.reason_code) == ("terminate", world.reviewer, "cured")
    assert f"#{sample.pk}" in audit.reason
    sample.refresh_from_db()
    assert (sample.state, sample.correction) == (RecheckState.FAILED, "terminated")
    assert OversightAuditEntry.objects.get(action="recheck_failed").details["correction"] == "terminated"


def test_fail_needs_a_reason_and_a_known_termination_reason(world):
    from kernel.errors import InvalidInput

    sample = _sample(world)
    with pytest.raises(InvalidInput):
        services.recheck_decide(sample_id=sample.pk, actor=world.reviewer, passed=False, reason="")
    with pytest.raises(InvalidInput) as refused:
        services.recheck_decide(
            sample_id=sample.pk, actor=world.reviewer, passed=False, reason="x", termination_reason="wrong code"
        )
    assert refused.value.code == "invalid_reason"
    assert RecheckSample.objects.get(pk=sample.pk).state == RecheckState.PENDING
    assert Application.objects.get(pk=sample.application_id).state == State.APPROVED


def test_fail_terminates_with_the_recheck_reason_without_a_choice(world):
    """The reviewer picks no termination reason: a failed re-check ends the enrollment as ``recheck_failed``,
    with the reviewer's reason in the note."""
    sample = _sample(world)
    with time_machine.travel(dt.datetime(2026, 4, 5, 9, 0, tzinfo=SHANGHAI), tick=False):
        services.recheck_decide(sample_id=sample.pk, actor=world.reviewer, passed=False, reason="诊断证明与病种不符")
    application = Application.objects.get(pk=sample.application_id)
    assert (application.state, application.termination_reason) == (State.TERMINATED, "recheck_failed")
    audit = AuditEntry.objects.filter(application=application).order_by("-id").first()
    assert (audit.transition, audit.reason_code) == ("terminate", "recheck_failed")
    assert "诊断证明与病种不符" in audit.reason and f"#{sample.pk}" in audit.reason
    details = OversightAuditEntry.objects.get(action="recheck_failed").details
    assert details == {"correction": "terminated", "termination_reason": "recheck_failed"}


def test_recheck_page_asks_no_termination_reason(world, client_for):
    sample = _sample(world)
    page = client_for(world.reviewer).get(f"/oversight/rechecks/{sample.pk}/")
    assert b'name="termination_reason"' not in page.content
    response = client_for(world.reviewer).post(
        f"/oversight/rechecks/{sample.pk}/decide/", {"outcome": "fail", "reason": "no lab report"}
    )
    assert response.status_code == 302
    assert Application.objects.get(pk=sample.application_id).termination_reason == "recheck_failed"


def test_separation_of_duties(world):
    from tests.reviews.helpers import add_role

    _batch, (single,) = batch_approvals(world, 1, by=world.reviewer)  # world.reviewer decided it
    rate(world, "100")
    services.recheck_draw(region_id=world.region.pk, period=PERIOD, actor=system())
    sample = RecheckSample.objects.get(application=single)
    with pytest.raises(RuleViolation) as refused:
        services.recheck_decide(sample_id=sample.pk, actor=world.reviewer, passed=True)
    assert refused.value.code == "separation_of_duties"
    # The officer who approved on the spot, even with a reviewer role, may not re-check it either.
    spot = immediate_approval(world)
    add_role(world.officer, "reviewer")
    assert selectors.recheck_region_ids(world.officer)  # reviewer scope through the institution's region
    spot_sample = RecheckSample.objects.create(
        draw=sample.draw,
        application=spot,
        region=world.region,
        institution=world.county,
        kind="immediate",
        approved_at=MARCH_10,
        percent=Decimal(100),
        rate_source="test",
        score=Decimal(0),
    )
    with pytest.raises(RuleViolation):
        services.recheck_decide(sample_id=spot_sample.pk, actor=world.officer, passed=True)


def test_only_reviewers_of_the_region(world):
    sample = _sample(world)
    with pytest.raises(NotPermitted):
        services.recheck_decide(sample_id=sample.pk, actor=world.other_reviewer, passed=True)
    with pytest.raises(NotPermitted):
        services.recheck_decide(sample_id=sample.pk, actor=world.clerk, passed=True)
    with pytest.raises(NotPermitted):
        services.recheck_draw(region_id=world.region.pk, period=PERIOD, actor=world.reviewer)
    assert RecheckSample.objects.get(pk=sample.pk).state == RecheckState.PENDING


def test_quality_rates_per_institution(world):
    rate(world, "100")
    _batch, approvals = batch_approvals(world, 3)
    services.recheck_draw(region_id=world.region.pk, period=PERIOD, actor=system())
    samples = list(RecheckSample.objects.order_by("id"))
    services.recheck_decide(sample_id=samples[0].pk, actor=world.reviewer, passed=True)
    services.recheck_decide(
        sample_id=samples[1].pk, actor=world.reviewer, passed=False, reason="x", termination_reason="cured"
    )
    (row,) = selectors.quality_rates(world.admin)
    assert (row.sampled, row.rechecked, row.failed, row.failure_percent) == (3, 2, 1, Decimal("50.0"))
    assert selectors.quality_rates(world.other_reviewer) == []
    assert selectors.quality_rates(world.clerk) == []


def test_period_is_validated(world):
    from kernel.errors import InvalidInput

    with pytest.raises(InvalidInput):
        services.recheck_draw(region_id=world.region.pk, period="2026-13", actor=system())


def test_recheck_pages_permissions_and_quality_csv(world, client_for):
    sample = _sample(world)
    detail = f"/oversight/rechecks/{sample.pk}/"
    assert client_for(world.clerk).get("/oversight/rechecks/").status_code == 403
    assert client_for(world.clerk).get(detail).status_code == 403
    assert client_for(world.officer).get(detail).status_code == 403
    assert client_for(world.other_reviewer).get(detail).status_code == 404
    response = client_for(world.other_reviewer).post(f"{detail}decide/", {"outcome": "pass"})
    assert response.status_code == 404
    assert client_for(world.reviewer).get(detail).status_code == 200
    queue = client_for(world.reviewer).get("/oversight/rechecks/")
    assert f"/oversight/rechecks/{sample.pk}/".encode() in queue.content
    assert (
        f"/oversight/rechecks/{sample.pk}/".encode()
        not in client_for(world.other_reviewer).get("/oversight/rechecks/").content
    )
    client_for(world.reviewer).post(f"{detail}decide/", {"outcome": "pass", "reason": "ok"})
    assert RecheckSample.objects.get(pk=sample.pk).state == RecheckState.PASSED
    # A formula typed into an institution name reaches the CSV neutralised.
    world.county.name = '=HYPERLINK("http://x")'
    world.county.save()
    body = b"".join(client_for(world.admin).get("/oversight/rechecks/quality.csv").streaming_content).decode(
        "utf-8-sig"
    )
    assert "'=HYPERLINK" in body and "\n=HYPERLINK" not in body and ",=HYPERLINK" not in body
    assert ",1,1,0,0.0" in body
    reports = client_for(world.admin).get("/reports/")
    assert b"report-recheck-quality" in reports.content
