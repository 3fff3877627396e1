"""Template labels of the review vocabulary: stages and decisions."""

from __future__ import annotations

from typing import Any

from django import template

from reviews.models import Decision, Stage

register = template.Library()


@register.filter
def stage_label(value: str) -> str:
    return str(dict(Stage.choices).get(value, value))


@register.filter
def decision_label(value: str) -> str:
    return str(dict(Decision.choices).get(value, value))


@register.inclusion_tag("reviews/_batch_outlook.html", takes_context=True)
def batch_outlook(context: Any) -> dict[str, Any]:
    """ "N diagnosed, will be batched on DATE" for the viewer's applications (home pages, queue)."""
    from reviews import selectors

    user = context.get("user") or context["request"].user
    return {"outlook": selectors.batch_outlook(user)}


@register.inclusion_tag("reviews/_clinic_home.html", takes_context=True)
def review_home_block(context: Any) -> dict[str, Any]:
    """The clinic's (and officer's) home block: open 补正 requests, unread notifications, the batch outlook."""
    from reviews import selectors

    user = context.get("user") or context["request"].user
    return {
        "supplements": list(selectors.open_supplements_for(user)[:50]),
        "unread": selectors.notifications_for(user, unread_only=True).count(),
        "outlook": selectors.batch_outlook(user),
        "csrf_token": context.get("csrf_token"),
    }


@register.filter
def supplement_labels(codes: list[str]) -> list[str]:
    from reviews.models import SupplementReason

    labels = dict(SupplementReason.choices)
    return [str(labels[code]) for code in codes or [] if code in labels]
