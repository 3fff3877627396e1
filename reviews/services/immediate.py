"""Immediate mode (即时办结): a center officer approves right after the diagnosis, without waiting for the batch."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from enrollment import selectors as enrollment_selectors
from enrollment.models import Application, State
from enrollment.services import (
    AuditFields,
    application_approve,
    lock_application,
)
from kernel import roles
from kernel.errors import NotPermitted, TransitionRefused
from reviews import selectors
from reviews.models import (
    Decision,
    Stage,
    StageDecision,
)
from reviews.services.decisions import ensure_separation_of_duties

# ---------------------------------------------------------------------------
# Immediate mode (即时办结)
# ---------------------------------------------------------------------------


def application_approve_immediately(*, application_id: int, actor: Any, reason: str = "") -> Application:
    """A center officer of a may-diagnose institution approves a diagnosed application on the spot."""
    if not roles.has_any_role(actor, roles.CENTER_OFFICER):
        raise NotPermitted(_("Only a chronic-disease-centre officer approves on the spot."))
    institution = enrollment_selectors.user_institution(actor)
    if institution is None or not institution.may_diagnose:
        raise NotPermitted(_("Immediate approval is done at an institution with diagnosing rights."))
    with transaction.atomic():
        application = lock_application(application_id)
        if institution.pk not in (application.filing_institution_id, application.treating_institution_id):
            raise NotPermitted(_("The application was not filed at or treated by your institution."))
        # The catalogue's review mode, or the immediate list of the policy governing the application's region.
        if not application.review_is_immediate():
            raise TransitionRefused(
                _("%(disease)s is reviewed in the monthly batch in %(region)s, not on the spot.")
                % {"disease": application.disease, "region": application.region},
                code="not_immediate",
                details={"region": application.region.code},
            )
        if application.state != State.DIAGNOSED:
            raise TransitionRefused(
                _("This application is %(state)s; only a diagnosed application is approved on the spot.")
                % {"state": application.get_state_display()},
                details={"state": application.state},
            )
        ensure_separation_of_duties(application=application, actor=actor, stage=Stage.IMMEDIATE)
        round_ = selectors.next_round(application.pk)
        StageDecision.objects.create(
            application=application,
            round=round_,
            stage=Stage.IMMEDIATE,
            decision=Decision.APPROVE,
            reason=reason.strip(),
            decided_by=actor,
            decided_at=timezone.now(),
        )
        return application_approve(
            application_id=application.pk,
            actor=actor,
            immediate=True,
            audit=AuditFields(reason=reason.strip(), stage=Stage.IMMEDIATE, details={"round": round_}),
        )
