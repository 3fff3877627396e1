"""Immediate mode's reject and return (issue 15 item 7): services, separation of duties, the page's actions."""

from __future__ import annotations

import pytest
from django.test import Client

from enrollment import policies as enrollment_policies
from enrollment import services
from enrollment.models import Application, AuditEntry, State
from kernel import roles
from kernel.errors import InvalidInput, RuleViolation, TransitionRefused
from reviews import services as review_services
from reviews.models import StageDecision, SupplementRequest, SupplementState
from tests.factories import staff_user
from tests.reviews.helpers import add_role, diagnosed

pytestmark = pytest.mark.django_db


def test_officer_rejects_on_the_spot(world):
    application = diagnosed(world, disease=world.dialysis)
    assert {"reject_immediately", "return_immediately", "approve_immediately"} <= set(
        enrollment_policies.application_actions_for(world.officer, application)
    )
    with pytest.raises(InvalidInput):
        review_services.application_reject_immediately(
            application_id=application.pk, actor=world.officer, reason_code="nonsense", reason="x"
        )
    review_services.application_reject_immediately(
        application_id=application.pk, actor=world.officer, reason_code="criteria_not_met", reason="未达标准"
    )
    application.refresh_from_db()
    assert (application.state, application.decision_reason_code) == (State.REJECTED, "criteria_not_met")
    decision = StageDecision.objects.get(application=application)
    assert (decision.stage, decision.decision, decision.reason_code) == ("immediate", "reject", "criteria_not_met")
    entry = AuditEntry.objects.filter(application=application).latest("id")
    assert (entry.transition, entry.actor, entry.stage) == ("reject_immediately", world.officer, "immediate")


def test_officer_returns_for_supplements_and_decides_again_after_resubmission(world):
    application = diagnosed(world, disease=world.dialysis)
    review_services.application_return_immediately(
        application_id=application.pk, actor=world.officer, supplement_codes=["id_copy"], reason=""
    )
    application.refresh_from_db()
    assert application.state == State.RETURNED and "缺少身份证复印件" in application.decision_reason
    assert SupplementRequest.objects.get(application=application).state == SupplementState.OPEN
    services.application_resubmit(application_id=application.pk, actor=world.clerk, note="补了身份证复印件")
    assert SupplementRequest.objects.get(application=application).state == SupplementState.ANSWERED
    review_services.application_approve_immediately(application_id=application.pk, actor=world.officer)
    assert Application.objects.get(pk=application.pk).state == State.APPROVED
    assert list(StageDecision.objects.filter(application=application).values_list("round", "decision")) == [
        (1, "return"),
        (2, "approve"),
    ]


def test_refusals_match_what_the_page_offers(world):
    batch_mode = diagnosed(world, disease=world.renal)
    assert "reject_immediately" not in enrollment_policies.application_actions_for(world.officer, batch_mode)
    with pytest.raises(TransitionRefused):
        review_services.application_reject_immediately(
            application_id=batch_mode.pk, actor=world.officer, reason_code="other", reason="x"
        )
    immediate = diagnosed(world, disease=world.dialysis)
    assert "return_immediately" not in enrollment_policies.application_actions_for(world.clerk, immediate)
    # An officer who filed it may not decide it (separation of duties), and is not offered it.
    filer = add_role(world.clerk, roles.CENTER_OFFICER)
    assert "reject_immediately" not in enrollment_policies.application_actions_for(filer, immediate)
    with pytest.raises(RuleViolation) as refused:
        review_services.application_return_immediately(
            application_id=immediate.pk, actor=filer, supplement_codes=["id_copy"]
        )
    assert refused.value.code == "separation_of_duties"
    other_officer = staff_user(roles.CENTER_OFFICER, institution=world.other_clinic)
    assert "reject_immediately" not in enrollment_policies.application_actions_for(other_officer, immediate)


def test_the_application_page_runs_the_actions(world):
    application = diagnosed(world, disease=world.dialysis)
    client = Client()
    client.force_login(world.officer)
    page = client.get(f"/applications/{application.pk}/").content.decode()
    assert "/reject_immediately/" in page and "/return_immediately/" in page
    answer = client.post(
        f"/applications/{application.pk}/return_immediately/",
        {"return_immediately-confirm": "on", "return_immediately-supplement_codes": ["unclear_scan"]},
    )
    assert answer.status_code == 302
    assert Application.objects.get(pk=application.pk).state == State.RETURNED
    other = diagnosed(world, disease=world.dialysis, person=world.person())
    answer = client.post(
        f"/applications/{other.pk}/reject_immediately/",
        {
            "reject_immediately-confirm": "on",
            "reject_immediately-reason_code": "other",
            "reject_immediately-reason": "",
        },
    )
    assert answer.status_code == 400 and Application.objects.get(pk=other.pk).state == State.DIAGNOSED
