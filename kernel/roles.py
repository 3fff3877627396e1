"""Roles are Django groups; these helpers are the one place that knows their names.

Also the types of the user every app passes around: ``Actor`` (what services and policies take),
``AnyUser`` (what pages and templates may hold) and ``AuthenticatedHttpRequest`` (a page's request behind
``login_required``)."""

from __future__ import annotations

from typing import TypeAlias, TypeGuard

from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.http import HttpRequest

CLINIC_STAFF = "clinic_staff"
PHYSICIAN = "physician"
REVIEWER = "reviewer"
CENTER_OFFICER = "center_officer"
ADMIN = "admin"
ALL_ROLES: tuple[str, ...] = (CLINIC_STAFF, PHYSICIAN, REVIEWER, CENTER_OFFICER, ADMIN)

# The user model (Django's default); AnonymousUser never reaches a service.
Actor: TypeAlias = User
# What a page or template may hold: the signed-in user or the anonymous one.
AnyUser: TypeAlias = User | AnonymousUser


class AuthenticatedHttpRequest(HttpRequest):
    """The request of a page behind ``login_required``: its user is signed in. A type only, never instantiated."""

    user: User


def role_names(user: AnyUser | None) -> frozenset[str]:
    """The user's role names, read once per user object."""
    if user is None or not getattr(user, "is_authenticated", False):
        return frozenset()
    cached = getattr(user, "_role_names", None)
    if cached is None:
        cached = frozenset(user.groups.values_list("name", flat=True))
        if user.is_superuser:
            cached = cached | {ADMIN}
        setattr(user, "_role_names", cached)  # noqa: B010 - a cache the user model does not declare
    return cached


def has_any_role(user: AnyUser | None, *names: str) -> TypeGuard[User]:
    """Whether the user holds one of the roles; only a signed-in user holds any (hence the narrowing)."""
    return bool(role_names(user) & set(names))


def is_system(user: AnyUser | None) -> bool:
    return getattr(user, "username", None) == settings.SYSTEM_USERNAME


def primary_role(user: AnyUser | None) -> str | None:
    names = role_names(user)
    for name in (ADMIN, REVIEWER, CENTER_OFFICER, PHYSICIAN, CLINIC_STAFF):
        if name in names:
            return name
    return None
