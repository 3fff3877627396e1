"""Oversight blocks on other apps' pages: the clinic home's open correction requests of failed re-checks."""

from __future__ import annotations

from typing import Any

from django import template

register = template.Library()


@register.inclusion_tag("oversight/_clinic_home.html", takes_context=True)
def recheck_corrections_block(context: Any) -> dict[str, Any]:
    """The clinic's open correction requests (one query; none for other roles). Rendered only when there is one."""
    from oversight import selectors

    user = context.get("user") or context["request"].user
    return {"corrections": list(selectors.open_corrections_for(user)[:50])}
