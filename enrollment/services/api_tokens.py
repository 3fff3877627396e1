"""Every write of API tokens: issue, revoke, record use, and revoke on a password change or deactivation.

Tokens (models.ApiToken) are bearer credentials for the REST API. Each has a lifetime
(settings.API_TOKEN_LIFETIME_HOURS), only its SHA-256 is stored, and it ends:

- at ``expires_at`` (enrollment.authentication refuses it with ``token_expired``);
- when its owner revokes it (``DELETE /api/v1/auth/tokens/{id}/``, ``DELETE /api/v1/auth/token/revoke/``);
- when the owner's password changes, by whatever path: the ``pre_save``/``post_save`` signals below
  delete the owner's tokens when the stored hash changed (web, admin, ``changepassword``,
  ``set_password(); save()``), and the password fingerprint each token carries makes authentication
  refuse it even when the hash was changed without a signal (a queryset update, raw SQL);
- when the account is deactivated (``is_active`` set to false: the signals delete them; authentication
  also refuses every token of an inactive user).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import secrets
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction
from django.db.models import Q
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_save
from django.utils import timezone
from django.utils.translation import gettext as _

from enrollment.models import ApiToken, Institution, StaffProfile
from kernel import reference_cache, roles
from kernel.errors import InvalidInput

logger = logging.getLogger(__name__)

# A token's last use is written at most this often (one UPDATE a minute per token, not one per request).
# The shared version key of the per-process token cache (enrollment.authentication); bumped on revocation.
TOKEN_CACHE_KEY = "api-tokens"
LAST_USED_RESOLUTION = dt.timedelta(seconds=60)
# Live tokens a user may hold; issuing one more revokes the oldest (a script that logs in for every call
# would otherwise pile up a day's worth of tokens).
MAX_LIVE_TOKENS_PER_USER = 50


@dataclass(frozen=True)
class IssuedToken:
    token: ApiToken
    key: str  # the only time the key is known in full


def hash_key(key: str) -> str:
    """Keys are 160 random bits: a plain SHA-256 cannot be reversed, and it is what the database is searched by."""
    return hashlib.sha256(key.encode()).hexdigest()


def password_fingerprint(user: roles.Actor) -> str:
    """Changes whenever the user's stored password hash changes (set, changed, made unusable)."""
    return hashlib.sha256(f"api-token:{user.password}".encode()).hexdigest()


def token_lifetime() -> dt.timedelta:
    return dt.timedelta(hours=int(getattr(settings, "API_TOKEN_LIFETIME_HOURS", 24)))


def api_token_issue(*, user: roles.Actor, name: str = "") -> IssuedToken:
    """A new token for ``user`` (who has just proved their password), valid for the configured lifetime.

    The user's expired tokens are deleted on the way, and beyond MAX_LIVE_TOKENS_PER_USER the oldest.
    """
    now = timezone.now()
    key = secrets.token_hex(20)
    with transaction.atomic():
        ApiToken.objects.filter(user=user, expires_at__lte=now).delete()
        token = ApiToken.objects.create(
            user=user,
            name=name[:100],
            key_hash=hash_key(key),
            prefix=key[:8],
            password_fingerprint=password_fingerprint(user),
            created_at=now,
            expires_at=now + token_lifetime(),
        )
        surplus = list(
            ApiToken.objects.filter(user=user)
            .order_by("-created_at", "-id")
            .values_list("pk", flat=True)[MAX_LIVE_TOKENS_PER_USER:]
        )
        if surplus:
            ApiToken.objects.filter(pk__in=surplus).delete()
    return IssuedToken(token=token, key=key)


def api_token_revoke(*, user: roles.Actor, token_id: int) -> None:
    """Revoke one of ``user``'s own tokens; another user's token id is "not found" (404), never 403."""
    deleted, _rows = ApiToken.objects.filter(pk=token_id, user=user).delete()
    if not deleted:
        raise InvalidInput(_("You hold no token with this id."), code="not_found")


def api_tokens_revoke_all(*, user: roles.Actor, reason: str) -> int:
    """Revoke every token of ``user``; returns how many there were."""
    deleted, _rows = ApiToken.objects.filter(user=user).delete()
    if deleted:
        logger.info("revoked %d API token(s) of user %s: %s", deleted, user.pk, reason)
    return deleted


def api_token_used(*, token: ApiToken, now: dt.datetime) -> None:
    """Record that ``token`` was used, at most once a LAST_USED_RESOLUTION (authentication calls this).

    ``token.last_used_at`` is what this process last recorded (authentication holds tokens per process);
    the UPDATE only writes when the stored value is as old, so several processes serving one client still
    write once a LAST_USED_RESOLUTION."""
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).filter(
            Q(last_used_at__isnull=True) | Q(last_used_at__lte=now - LAST_USED_RESOLUTION)
        ).update(last_used_at=now)
        token.last_used_at = now


# ---------------------------------------------------------------------------
# Password change and deactivation (connected in enrollment.apps)
# ---------------------------------------------------------------------------

_BEFORE = "_api_token_credentials_before"


def remember_credentials(sender: Any, instance: Any, raw: bool = False, update_fields: Any = None, **_: Any) -> None:
    """pre_save of the user model: remember the stored password hash and active flag being replaced."""
    if raw or instance.pk is None:
        return
    if update_fields is not None and not {"password", "is_active"} & set(update_fields):
        return  # e.g. the last_login update of every login: nothing that ends tokens
    before = sender._default_manager.filter(pk=instance.pk).values("password", "is_active").first()
    setattr(instance, _BEFORE, before)


def revoke_on_credential_change(sender: Any, instance: Any, created: bool = False, **_: Any) -> None:
    """post_save of the user model: a changed password or a deactivation revokes every token of the user."""
    before = instance.__dict__.pop(_BEFORE, None)
    if created or before is None:
        return
    if before["password"] != instance.password:
        api_tokens_revoke_all(user=instance, reason="password changed")
    elif before["is_active"] and not instance.is_active:
        api_tokens_revoke_all(user=instance, reason="account deactivated")


def drop_held_tokens(sender: Any, raw: bool = False, update_fields: Any = None, **_: Any) -> None:
    """Every process drops the tokens it holds (enrollment.authentication) at its next request: a token
    was deleted (revoked, replaced, ended by a password change or deactivation), or a user, staff profile,
    group membership, group or institution changed. A login's ``last_login`` update changes nothing held."""
    if raw or (update_fields is not None and set(update_fields) <= {"last_login"}):
        return

    reference_cache.bump(TOKEN_CACHE_KEY)


def connect_signals() -> None:
    user_model = get_user_model()
    pre_save.connect(remember_credentials, sender=user_model, dispatch_uid="api_token_remember_credentials")
    post_save.connect(revoke_on_credential_change, sender=user_model, dispatch_uid="api_token_revoke_on_change")
    for model in (ApiToken, user_model, StaffProfile, Group, Institution):
        uid = f"api_token_cache_{model._meta.label_lower}"
        post_save.connect(drop_held_tokens, sender=model, dispatch_uid=uid + "_save")
        post_delete.connect(drop_held_tokens, sender=model, dispatch_uid=uid + "_delete")
    m2m_changed.connect(drop_held_tokens, sender=user_model.groups.through, dispatch_uid="api_token_cache_groups")
