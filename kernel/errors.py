"""Domain errors: each carries a stable code, a message a clerk can act on, and details.

The API's exception handler maps them to HTTP statuses; web views show the message.
"""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext_lazy as _


class DomainError(Exception):
    status_code = 400
    default_code = "invalid"

    def __init__(self, message: Any, *, code: str | None = None, details: dict[str, Any] | None = None) -> None:
        super().__init__(str(message))
        self.message = message
        self.code = code or self.default_code
        self.details = details or {}


class InvalidInput(DomainError):
    """The request itself is wrong (400)."""


class RuleViolation(DomainError):
    """The request is well-formed but a business rule refuses it (409)."""

    status_code = 409
    default_code = "rule_violation"


class NotPermitted(DomainError):
    status_code = 403
    default_code = "permission_denied"

    def __init__(self, message: Any = None, **kwargs: Any) -> None:
        super().__init__(message or _("You are not permitted to do this."), **kwargs)


class TransitionRefused(DomainError):
    """The application's state does not allow this action (409)."""

    status_code = 409
    default_code = "transition_not_allowed"
