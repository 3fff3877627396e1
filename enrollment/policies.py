"""Who may do what to an application: the one place the rules are written.

Services call the ``ensure_*`` functions, which raise ``NotPermitted`` (who) or ``RuleViolation`` /
``TransitionRefused`` (when); pages and the API list the actions a viewer may take with the same functions
(``application_actions_for``), so a page never offers what the service would refuse. Apps above enrollment
add their actions' rules to ``ACTION_CHECKS`` in their AppConfig.ready (the reviews app's 即时办结 decisions).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from django.utils import timezone
from django.utils.translation import gettext as _
from django_fsm import can_proceed, has_transition_perm

from enrollment import selectors
from enrollment.models import ACTIVE_STATES, Application, Institution, Physician, State
from kernel import roles
from kernel.errors import DomainError, NotPermitted, RuleViolation, TransitionRefused

# A rule for one action: raises a DomainError when ``actor`` may not take it on ``application`` now.
ActionCheck = Callable[[Any, Application], None]

# Actions another app offers on the application page, by name, with their rule (the service's own check):
# name -> check(user, application) raising a DomainError. Their services are in
# services.APPLICATION_ACTION_SERVICES, their forms in forms.ACTION_FORMS; the order of registration is the
# order the page lists them in.
ACTION_CHECKS: dict[str, ActionCheck] = {}


def permits(check: ActionCheck, user: roles.Actor, application: Application) -> bool:
    """Whether ``check`` lets ``user`` act on ``application`` (the page's question)."""
    return refusal(check, user, application) is None


def refusal(check: ActionCheck, user: roles.Actor, application: Application) -> str | None:
    """Why ``check`` refuses ``user`` on ``application``, in the words the service would answer; None if it allows."""
    try:
        check(user, application)
    except DomainError as error:
        return str(error.message)
    return None


# ---------------------------------------------------------------------------
# Transitions: the state machine's source states and role permissions
# ---------------------------------------------------------------------------


def ensure_transition(application: Application, name: str, actor: roles.Actor) -> None:
    """The FSM's own rule: the transition starts from the application's state and the actor's role holds its
    permission (the system user acts for beat jobs). run_transition calls it for every per-row change."""
    method = getattr(application, name)
    if not can_proceed(method):
        raise TransitionRefused(
            _("This application is %(state)s; “%(action)s” is not possible now.")
            % {"state": application.get_state_display(), "action": name.replace("_", " ")},
            details={"state": application.state, "transition": name},
        )
    if not roles.is_system(actor) and not has_transition_perm(method, actor):
        raise NotPermitted(
            _("Your role may not %(action)s an application.") % {"action": name.replace("_", " ")},
            details={"transition": name},
        )


# ---------------------------------------------------------------------------
# Filing side: who acts for the applicant
# ---------------------------------------------------------------------------


def ensure_may_file(actor: roles.Actor, treating_institution: Institution) -> Institution:
    """Clinic staff file applications at their institution; an administrator (or the system, for roster imports)
    without one files at the treating institution. Returns the filing institution."""
    institution = selectors.user_institution(actor)
    if not roles.has_any_role(actor, roles.CLINIC_STAFF, roles.ADMIN) and not roles.is_system(actor):
        raise NotPermitted(_("Only clinic staff file applications."))
    if institution is None:
        if not roles.has_any_role(actor, roles.ADMIN):
            raise NotPermitted(_("Your account is not attached to an institution."))
        institution = treating_institution
    return institution


def ensure_filing_side(application: Application, actor: roles.Actor) -> None:
    """Staff of the filing or the treating institution (or an administrator): adding documents."""
    if not selectors.on_filing_side(actor, application):
        raise NotPermitted(_("Only staff of the filing institution may do this."))


def ensure_filing_institution(application: Application, actor: roles.Actor) -> None:
    """Withdrawing and resubmitting are the applicant's requests, held by the institution that filed them:
    its staff (and administrators) act on them; a treating hospital that did not file adds documents and
    diagnoses, but does not withdraw or resubmit another institution's filing (issue 18 item 11)."""
    if not selectors.on_filing_institution(actor, application):
        raise NotPermitted(
            _("Only staff of the institution that filed this application (or an administrator) may do this.")
        )


def ensure_may_withdraw(actor: roles.Actor, application: Application) -> None:
    ensure_filing_institution(application, actor)
    ensure_transition(application, "withdraw", actor)


def ensure_may_resubmit(actor: roles.Actor, application: Application) -> None:
    ensure_filing_institution(application, actor)
    ensure_transition(application, "resubmit", actor)


def ensure_may_terminate(actor: roles.Actor, application: Application) -> None:
    """Terminating an enrollment early is the FSM's rule alone (the officers' and administrators' role)."""
    ensure_transition(application, "terminate", actor)


# ---------------------------------------------------------------------------
# Diagnosis: a qualified physician of the treating or filing institution
# ---------------------------------------------------------------------------


def diagnosing_physician(actor: roles.Actor, physician: Physician | None = None) -> Physician:
    """The physician a diagnosis is recorded for: the one named, else the actor's own registration."""
    physician = physician or getattr(actor, "physician", None)
    if physician is None:
        raise NotPermitted(_("Only a registered physician records a diagnosis."), code="physician_not_qualified")
    return physician


def ensure_physician_may_diagnose(application: Application, actor: roles.Actor, physician: Physician) -> None:
    """A physician records their own diagnoses (an administrator may name one), works at the treating or the
    filing institution, and both the institution (diagnosing rights, level) and the physician's title meet
    the disease's minimum."""
    disease = application.disease
    institution = physician.institution
    if physician.user_id and physician.user_id != actor.pk and not roles.has_any_role(actor, roles.ADMIN):
        raise NotPermitted(_("A physician records only their own diagnoses."))
    if institution.pk not in (application.treating_institution_id, application.filing_institution_id):
        raise NotPermitted(_("The physician does not work at the treating institution of this application."))
    if not institution.may_diagnose or institution.level < disease.min_institution_level:
        raise RuleViolation(
            _(
                "%(inst)s (level %(level)s) may not diagnose %(disease)s: "
                "level %(min)s or above with diagnosing rights is required."
            )
            % {
                "inst": institution.name,
                "level": institution.level,
                "disease": disease,
                "min": disease.min_institution_level,
            },
            code="institution_not_qualified",
        )
    if physician.title < disease.min_physician_title:
        raise RuleViolation(
            _("%(disease)s must be diagnosed by a %(title)s or above; %(name)s is a %(has)s.")
            % {
                "disease": disease,
                "title": disease.get_min_physician_title_display(),
                "name": physician.name,
                "has": physician.get_title_display(),
            },
            code="physician_not_qualified",
        )


def ensure_may_diagnose(actor: roles.Actor, application: Application) -> None:
    """The page's rule for the diagnosis form: the actor's own physician registration, qualified, and the
    transition open to their role."""
    ensure_transition(application, "diagnose", actor)
    ensure_physician_may_diagnose(application, actor, diagnosing_physician(actor))


# ---------------------------------------------------------------------------
# Renewal (复审)
# ---------------------------------------------------------------------------


def ensure_renewal_open(actor: roles.Actor, application: Application, *, today: dt.date | None = None) -> None:
    """Whether ``actor`` may file the renewal of this enrollment today: an approved, expiring or expired
    enrollment with an end date, from ``valid_until − renewal window`` on, with no renewal pending, filed by
    clinic staff of the filing or treating institution (or an administrator; the system for imports)."""
    today = today or timezone.localdate()
    if application.state not in (State.APPROVED, State.EXPIRING, State.EXPIRED):
        raise TransitionRefused(
            _("Application #%(id)s is %(state)s; only an approved or expired enrollment can be renewed.")
            % {"id": application.pk, "state": application.get_state_display()},
            code="renewal_not_possible",
            details={"state": application.state},
        )
    if application.valid_until is None:
        raise RuleViolation(
            _("%(disease)s is approved long-term; it needs no renewal.") % {"disease": application.disease},
            code="renewal_not_needed",
        )
    if not roles.is_system(actor) and not (
        roles.has_any_role(actor, roles.CLINIC_STAFF, roles.ADMIN) and selectors.on_filing_side(actor, application)
    ):
        raise NotPermitted(_("Only clinic staff of the filing or treating institution file a renewal."))
    window = selectors.policy_for_region(application.region).renewal_window_days
    opens_on = application.valid_until - dt.timedelta(days=window)
    if today < opens_on:
        raise RuleViolation(
            _("Renewal of application #%(id)s opens on %(date)s (%(days)d days before it ends on %(end)s).")
            % {
                "id": application.pk,
                "date": opens_on.isoformat(),
                "days": window,
                "end": application.valid_until.isoformat(),
            },
            code="renewal_too_early",
            details={"opens_on": opens_on.isoformat(), "valid_until": application.valid_until.isoformat()},
        )
    pending = application.renewals.filter(state__in=ACTIVE_STATES).first()
    if pending is not None:
        raise RuleViolation(
            _("Renewal #%(renewal)s of application #%(id)s is already %(state)s.")
            % {"renewal": pending.pk, "id": application.pk, "state": pending.get_state_display()},
            code="renewal_pending",
            details={"application": pending.pk},
        )


def renewal_open_for(user: roles.Actor, application: Application) -> bool:
    """Whether the viewer may file the renewal (复审) of this enrollment today (what application_renew checks)."""
    if application.state not in (State.APPROVED, State.EXPIRING, State.EXPIRED) or application.valid_until is None:
        return False  # without a query: most pages show an application that cannot be renewed
    return not roles.is_system(user) and permits(ensure_renewal_open, user, application)


# ---------------------------------------------------------------------------
# Persons and the catalogue
# ---------------------------------------------------------------------------


def ensure_may_register_person(actor: roles.Actor) -> None:
    """Registering or correcting a person: staff of an institution (clinic staff, physicians, centre officers),
    administrators and the system (roster imports). Which fields each may set is
    selectors.person_fields_refused."""
    if selectors.is_person_office(actor):  # the insurance office: centre officers, administrators, the system
        return
    if selectors.user_institution(actor) is None:
        raise NotPermitted(_("Only staff of an institution register persons."))


def ensure_may_maintain_catalogue(actor: roles.Actor) -> None:
    """The disease catalogue is loaded and versioned by administrators and the system (load_catalogue)."""
    if not (roles.is_system(actor) or roles.has_any_role(actor, roles.ADMIN)):
        raise NotPermitted(_("Only administrators maintain the disease catalogue."))


# ---------------------------------------------------------------------------
# The page's list
# ---------------------------------------------------------------------------

# The core actions, in the order the page lists them; each rule is the one its service applies.
CORE_ACTION_CHECKS: dict[str, ActionCheck] = {
    "diagnose": ensure_may_diagnose,
    "withdraw": ensure_may_withdraw,
    "resubmit": ensure_may_resubmit,
    "terminate": ensure_may_terminate,
}


def application_actions_for(user: roles.Actor, application: Application) -> list[str]:
    """The transitions ``user`` may start on ``application`` now, by the rules the services apply.

    Batch review decisions (approve / reject / return) are taken from the reviewer queue, not from here.
    """
    actions = [name for name, check in CORE_ACTION_CHECKS.items() if permits(check, user, application)]
    for name, check in ACTION_CHECKS.items():  # e.g. the reviews app's 即时办结 approve / reject / return
        if name not in actions and permits(check, user, application):
            actions.append(name)
    if renewal_open_for(user, application):
        actions.append("renew")
    return actions
