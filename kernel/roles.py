"""Roles are Django groups; these helpers are the one place that knows their names."""

from __future__ import annotations

from typing import Any

from django.conf import settings

CLINIC_STAFF = "clinic_staff"
PHYSICIAN = "physician"
REVIEWER = "reviewer"
CENTER_OFFICER = "center_officer"
ADMIN = "admin"
ALL_ROLES: tuple[str, ...] = (CLINIC_STAFF, PHYSICIAN, REVIEWER, CENTER_OFFICER, ADMIN)


def role_names(user: Any) -> frozenset[str]:
    """The user's role names, read once per user object."""
    if user is None or not getattr(user, "is_authenticated", False):
        return frozenset()
    cached = getattr(user, "_role_names", None)
    if cached is None:
        cached = frozenset(user.groups.values_list("name", flat=True))
        if user.is_superuser:
            cached = cached | {ADMIN}
        user._role_names = cached
    return cached


def has_any_role(user: Any, *names: str) -> bool:
    return bool(role_names(user) & set(names))


def is_system(user: Any) -> bool:
    return getattr(user, "username", None) == settings.SYSTEM_USERNAME


def primary_role(user: Any) -> str | None:
    names = role_names(user)
    for name in (ADMIN, REVIEWER, CENTER_OFFICER, PHYSICIAN, CLINIC_STAFF):
        if name in names:
            return name
    return None
