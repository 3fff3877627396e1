"""API authentication: ``Authorization: Token <key>`` against the hashed, expiring tokens (models.ApiToken).

Its own module: DRF imports authentication classes while ``rest_framework.views`` is still loading,
so this must not import ``kernel.api_support`` (which imports the views module), and it reads the
models only when a request comes.
"""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from django.utils.translation import gettext as _
from rest_framework import authentication, exceptions


class TokenExpired(exceptions.AuthenticationFailed):
    """401 ``token_expired``: the token was real but its lifetime is over; ask for a new one."""

    default_code = "token_expired"
    api_code = "token_expired"


class TokenAuthentication(authentication.TokenAuthentication):
    """DRF's ``Token`` header scheme over ApiToken rows, reading the user's staff profile and institution in
    the same query (every scoped request needs them: ``selectors.user_institution``, ``user_region_id``).

    Refuses (401) an unknown or revoked key, an expired token (``token_expired``), a token of an inactive
    user, and a token issued under a password the user no longer has. Records the last use at most once a
    minute (api_tokens.api_token_used).
    """

    def authenticate_credentials(self, key: str) -> tuple[Any, Any]:
        from enrollment.models import ApiToken
        from enrollment.services import api_tokens

        token = (
            ApiToken.objects.select_related("user", "user__profile", "user__profile__institution")
            .filter(key_hash=api_tokens.hash_key(key))
            .first()
        )
        if token is None:
            raise exceptions.AuthenticationFailed(_("Invalid token."))
        user = token.user
        if not user.is_active:
            raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
        if token.password_fingerprint != api_tokens.password_fingerprint(user):
            raise exceptions.AuthenticationFailed(
                _("This token was revoked because the password changed; ask for a new one.")
            )
        now = timezone.now()
        if now >= token.expires_at:
            raise TokenExpired(
                _("This token expired at %(at)s; ask for a new one (POST /api/v1/auth/token/).")
                % {"at": timezone.localtime(token.expires_at).isoformat(timespec="seconds")}
            )
        api_tokens.api_token_used(token=token, now=now)
        return (user, token)
