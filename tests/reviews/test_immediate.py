"""Immediate mode (即时办结, issue 3 item 4): a center officer approves a diagnosed application at once."""

from __future__ import annotations

import pytest

from enrollment.models import Application, AuditEntry, State
from kernel import roles
from kernel.errors import NotPermitted, RuleViolation, TransitionRefused
from reviews import services as review_services
from reviews.models import StageDecision
from tests.factories import staff_user
from tests.reviews.helpers import FEBRUARY, add_role, assemble, diagnosed

pytestmark = pytest.mark.django_db


def test_officer_approves_an_immediate_mode_disease_without_a_batch(world):
    application = diagnosed(world, disease=world.dialysis)
    review_services.application_approve_immediately(
        application_id=application.pk, actor=world.officer, reason="dialysis started"
    )
    application.refresh_from_db()
    assert application.state == State.APPROVED
    assert application.valid_from == FEBRUARY.date()  # the default benefit start: the filing date
    assert application.valid_until is None  # dialysis is long-term
    entry = AuditEntry.objects.filter(application=application).order_by("-id").first()
    assert (entry.transition, entry.from_state, entry.to_state, entry.actor, entry.stage, entry.batch_id) == (
        "approve_immediately",
        "diagnosed",
        "approved",
        world.officer,
        "immediate",
        None,
    )
    decision = StageDecision.objects.get(application=application)
    assert (decision.stage, decision.decision, decision.decided_by, decision.batch_id) == (
        "immediate",
        "approve",
        world.officer,
        None,
    )
    # Nothing is left for the monthly batch.
    assert assemble(world).item_count == 0


def test_batch_mode_disease_is_refused(world):
    application = diagnosed(world, disease=world.renal)
    with pytest.raises(TransitionRefused) as refused:
        review_services.application_approve_immediately(application_id=application.pk, actor=world.officer)
    assert refused.value.code == "not_immediate"
    assert Application.objects.get(pk=application.pk).state == State.DIAGNOSED


def test_only_diagnosed_applications(world):
    application = diagnosed(world, disease=world.dialysis)
    assemble(world)  # now in review
    with pytest.raises(TransitionRefused):
        review_services.application_approve_immediately(application_id=application.pk, actor=world.officer)


def test_who_may_approve_on_the_spot(world):
    application = diagnosed(world, disease=world.dialysis)
    for actor in (world.clerk, world.reviewer, world.physician_user):
        with pytest.raises(NotPermitted):
            review_services.application_approve_immediately(application_id=application.pk, actor=actor)
    elsewhere = staff_user(roles.CENTER_OFFICER, institution=world.other_clinic)
    with pytest.raises(NotPermitted):
        review_services.application_approve_immediately(application_id=application.pk, actor=elsewhere)
    no_rights = staff_user(roles.CENTER_OFFICER, institution=world.no_diagnosis)
    with pytest.raises(NotPermitted):
        review_services.application_approve_immediately(application_id=application.pk, actor=no_rights)
    assert Application.objects.get(pk=application.pk).state == State.DIAGNOSED


def test_officer_who_filed_may_not_approve(world):
    add_role(world.clerk, roles.CENTER_OFFICER)
    application = diagnosed(world, disease=world.dialysis)
    with pytest.raises(RuleViolation) as refused:
        review_services.application_approve_immediately(application_id=application.pk, actor=world.clerk)
    assert refused.value.code == "separation_of_duties"
    assert not StageDecision.objects.exists()
