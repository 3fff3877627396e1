"""API authentication: DRF's token scheme, reading what every scoped request needs in one query.

Its own module: DRF imports authentication classes while ``rest_framework.views`` is still loading,
so this must not import ``enrollment.api_support`` (which imports the views module).
"""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext as _
from rest_framework import authentication, exceptions


class TokenAuthentication(authentication.TokenAuthentication):
    """DRF's token authentication that reads the user's staff profile and institution in the same query.

    Every scoped request needs them (``selectors.user_institution``, ``user_region_id``); read lazily
    they were two more round trips per API call.
    """

    def authenticate_credentials(self, key: str) -> tuple[Any, Any]:
        model = self.get_model()
        try:
            token = model.objects.select_related("user", "user__profile", "user__profile__institution").get(key=key)
        except model.DoesNotExist:
            raise exceptions.AuthenticationFailed(_("Invalid token."))
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
        return (token.user, token)
