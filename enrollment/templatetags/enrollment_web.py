"""Template helpers for the web pages: who is logged in, where they work, and masked ID numbers."""

from __future__ import annotations

from typing import Any

from django import template
from django.utils.translation import gettext_lazy as _

from enrollment import selectors
from enrollment.models import mask_id_number
from kernel import roles

register = template.Library()

ROLE_LABELS = {
    roles.CLINIC_STAFF: _("clinic staff"),
    roles.PHYSICIAN: _("physician"),
    roles.REVIEWER: _("reviewer"),
    roles.CENTER_OFFICER: _("chronic-disease centre officer"),
    roles.ADMIN: _("administrator"),
}


@register.simple_tag
def role_label(user: Any) -> str:
    role = roles.primary_role(user)
    return str(ROLE_LABELS.get(role, _("no role"))) if role else str(_("no role"))


@register.simple_tag
def workplace(user: Any) -> str:
    institution = selectors.user_institution(user)
    if institution is not None:
        return institution.name
    region = selectors.user_region(user)
    return str(region) if region is not None else ""


@register.simple_tag
def has_role(user: Any, *names: str) -> bool:
    return roles.has_any_role(user, *names)


@register.filter
def masked(id_number: str) -> str:
    return mask_id_number(id_number or "")


@register.simple_tag
def plotly_src() -> str:
    from enrollment.views import plotly_js_url

    return plotly_js_url()


TRANSITION_LABELS = {
    "submit": _("filed"),
    "diagnose": _("diagnosis recorded"),
    "withdraw": _("withdrawn"),
    "enqueue": _("entered the review batch"),
    "approve": _("approved"),
    "approve_immediately": _("approved immediately (即时办结)"),
    "reject": _("rejected"),
    "return_for_information": _("returned for more information"),
    "resubmit": _("resubmitted"),
    "mark_expiring": _("entered the renewal window"),
    "expire": _("expired"),
    "supersede": _("renewed by a new enrollment"),
    "terminate": _("terminated"),
    "stage_approve": _("stage approved, on to the next stage"),
}
ACTION_LABELS = {
    "diagnose": _("Record diagnosis"),
    "withdraw": _("Withdraw"),
    "resubmit": _("Resubmit"),
    "terminate": _("Terminate enrollment"),
    "approve_immediately": _("Approve now (即时办结)"),
}


@register.filter
def transition_label(name: str) -> str:
    return str(TRANSITION_LABELS.get(name, name.replace("_", " ")))


@register.filter
def action_label(name: str) -> str:
    return str(ACTION_LABELS.get(name, name.replace("_", " ")))


@register.filter
def state_label(value: str) -> str:
    from enrollment.models import State

    return str(dict(State.choices).get(value, value)) if value else ""


@register.filter
def doc_type_label(value: str) -> str:
    from enrollment.models import DocumentType

    return str(dict(DocumentType.choices).get(value, value))


@register.simple_tag
def lookup(mapping: dict[str, Any], key: str) -> Any:
    return mapping.get(key, "")
