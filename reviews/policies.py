"""Who may decide what in the review: separation of duties and immediate mode (即时办结).

The services call the ``ensure_*`` functions under the row lock; the application page lists the 即时办结 actions
with ``may_decide_immediately`` (registered in enrollment.policies.ACTION_CHECKS by ReviewsConfig.ready), so the
page offers exactly what the services accept.
"""

from __future__ import annotations

from django.utils.translation import gettext as _

from enrollment import policies as enrollment_policies
from enrollment import selectors as enrollment_selectors
from enrollment.models import Application, State
from kernel import roles
from kernel.errors import NotPermitted, RuleViolation, TransitionRefused
from reviews.models import Stage, StageDecision


def ensure_separation_of_duties(*, application: Application, actor: roles.Actor, stage: str) -> None:
    """The same person may not decide two stages of one application, nor one they filed or diagnosed."""
    if application.filed_by_id == actor.pk:
        raise RuleViolation(
            _("You filed this application, so you may not review it."),
            code="separation_of_duties",
            details={"rule": "filed_by"},
        )
    physician = application.physician  # no query when there is none
    physician_user = physician.user_id if physician is not None else None
    if actor.pk in (application.diagnosed_by_id, physician_user):
        raise RuleViolation(
            _("You recorded the diagnosis of this application, so you may not review it."),
            code="separation_of_duties",
            details={"rule": "diagnosed_by"},
        )
    other = (
        StageDecision.objects.filter(application=application, decided_by=actor)
        .exclude(stage=stage)
        .values_list("stage", flat=True)
        .first()
    )
    if other:
        raise RuleViolation(
            _("You already decided the %(other)s stage of this application; another reviewer decides %(stage)s.")
            % {"other": Stage(other).label if other in Stage.values else other, "stage": stage},
            code="separation_of_duties",
            details={"rule": "two_stages", "decided_stage": other},
        )


def ensure_immediate_decision(*, application: Application, actor: roles.Actor) -> None:
    """Who may decide a diagnosed application on the spot, and when: a centre officer of a may-diagnose
    institution that filed or treats it, for an immediate-mode disease, while ``diagnosed``, and not one they
    filed or diagnosed. The services call it under the row lock; the application page lists the actions with it
    (``may_decide_immediately``), so the page offers exactly what the services accept."""
    if not roles.has_any_role(actor, roles.CENTER_OFFICER):
        raise NotPermitted(_("Only a chronic-disease-centre officer approves on the spot."))
    institution = enrollment_selectors.user_institution(actor)
    if institution is None or not institution.may_diagnose:
        raise NotPermitted(_("Immediate approval is done at an institution with diagnosing rights."))
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


def may_decide_immediately(user: roles.Actor, application: Application) -> bool:
    """Whether ``user`` may decide ``application`` on the spot now (any of approve / reject / return)."""
    return enrollment_policies.permits(immediate_decision_check, user, application)


def immediate_decision_check(user: roles.Actor, application: Application) -> None:
    """enrollment.policies.ACTION_CHECKS' form of ``ensure_immediate_decision``."""
    ensure_immediate_decision(application=application, actor=user)


def immediate_action_check(transition: str) -> enrollment_policies.ActionCheck:
    """The page's rule for one 即时办结 action: the decision rule, then the transition's own (its state and the
    role's permission), which the service's run_transition applies after it."""

    def check(user: roles.Actor, application: Application) -> None:
        ensure_immediate_decision(application=application, actor=user)
        enrollment_policies.ensure_transition(application, transition, user)

    check.__name__ = f"ensure_may_{transition}"
    return check
