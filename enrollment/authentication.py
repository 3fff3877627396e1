"""API authentication: ``Authorization: Token <key>`` against the hashed, expiring tokens (models.ApiToken).

Its own module: DRF imports authentication classes while ``rest_framework.views`` is still loading,
so this must not import ``kernel.api_support`` (which imports the views module), and it reads the
models only when a request comes.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from typing import Any

from django.utils import timezone
from django.utils.translation import gettext as _
from rest_framework import authentication, exceptions

# The shared version key of the token cache below is owned by the service that bumps it.
from enrollment.services.api_tokens import TOKEN_CACHE_KEY  # noqa: E402
from kernel.reference_cache import KeyedProcessCache


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

    A token read is held per process (``_tokens`` below) with its user, profile, institution and role names,
    so a steady client costs one primary-key query to authenticate (the token still there, the owner's
    password hash and active flag, expiry, last use) instead of the join and the group names.
    """

    def authenticate_credentials(self, key: str) -> tuple[Any, Any]:
        from enrollment.services import api_tokens

        key_hash = api_tokens.hash_key(key)
        token, held = _token_for(key_hash)
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
        if now >= token.expires_at:  # checked on every request, cached or not
            _tokens.discard(key_hash)
            raise TokenExpired(
                _("This token expired at %(at)s; ask for a new one (POST /api/v1/auth/token/).")
                % {"at": timezone.localtime(token.expires_at).isoformat(timespec="seconds")}
            )
        api_tokens.api_token_used(token=token, now=now)
        held.last_used_at = token.last_used_at
        return (user, token)


# ---------------------------------------------------------------------------
# The per-process token cache
# ---------------------------------------------------------------------------


@dataclass
class _HeldToken:
    """A token as read (with its user, staff profile, institution and role names), pickled so that every
    request gets objects of its own; ``last_used_at`` as this process last recorded it."""

    pk: int
    blob: bytes
    last_used_at: Any


def _ttl() -> float:
    from django.conf import settings

    return float(getattr(settings, "API_TOKEN_CACHE_SECONDS", 60))


# Token hash -> _HeldToken, for API_TOKEN_CACHE_SECONDS at most. Dropped in every process (the shared key
# TOKEN_CACHE_KEY, bumped by the signals of api_tokens.connect_signals) when a token is deleted — revoked,
# replaced, or ended by a password change or a deactivation — and when a user, a staff profile, a group
# membership or an institution changes. Existence, password, active flag and expiry are read on every request.
_tokens: KeyedProcessCache[_HeldToken] = KeyedProcessCache(TOKEN_CACHE_KEY, _ttl)


def _token_for(key_hash: str) -> tuple[Any, _HeldToken]:
    """The token of ``key_hash`` (None: no such token) with its user, profile, institution and role names
    — from this process's copy when it holds one, else in one query (+ one for the role names)."""
    from enrollment.models import ApiToken
    from kernel import roles

    held = _tokens.get(key_hash)
    if held is not None:
        # What may change behind the signals' back is read on every request, by primary key: that the token
        # still exists, its owner's password hash and active flag (a queryset update or raw SQL), its expiry
        # and last use. The held part is the user, profile, institution and roles.
        row = (
            ApiToken.objects.filter(pk=held.pk)
            .values_list("user__password", "user__is_active", "expires_at", "last_used_at")
            .first()
        )
        if row is None:
            _tokens.discard(key_hash)
            return None, held
        token = pickle.loads(held.blob)  # noqa: S301 - bytes this process pickled itself
        token.user.password, token.user.is_active, token.expires_at, token.last_used_at = row
        return token, held
    version = _tokens.version()
    token = (
        ApiToken.objects.select_related("user", "user__profile", "user__profile__institution")
        .filter(key_hash=key_hash)
        .first()
    )
    if token is None:
        return None, _HeldToken(0, b"", None)
    roles.role_names(token.user)  # read once, held with the user
    held = _HeldToken(token.pk, pickle.dumps(token), token.last_used_at)
    _tokens.put(key_hash, held, version)
    return token, held
