"""Login throttling glue (django-axes): the backend and the lockout response."""

from __future__ import annotations

from typing import Any

from axes.attempts import get_cool_off_threshold
from axes.backends import AxesStandaloneBackend
from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_client_username, get_failure_limit
from axes.models import AccessAttempt
from django.conf import settings
from django.db.models import Sum
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template import TemplateDoesNotExist
from django.template.loader import render_to_string
from django.utils.translation import gettext as _


class LoginThrottleBackend(AxesStandaloneBackend):
    """Refuses locked-out logins; lets through calls that carry no HTTP request.

    Every HTTP login path passes its request (the web LoginView through AuthenticationForm, the API
    token view explicitly), and only HTTP logins can be brute-forced from outside. Shell sessions,
    management commands and the test client's ``login()`` call ``authenticate()`` without one; stock
    axes would raise for them instead of leaving them to the password check.
    """

    def authenticate(
        self, request: HttpRequest | None, username: str | None = None, password: str | None = None, **kwargs: Any
    ) -> None:
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)


class LoginThrottleHandler(AxesDatabaseHandler):
    """django-axes' database handler with a second, higher limit per user name across all addresses.

    Axes counts failures per user name + address (AXES_LOCKOUT_PARAMETERS) against one limit
    (AXES_FAILURE_LIMIT, 5): someone guessing from many addresses was never stopped. Listing ``username``
    as a second lockout parameter would apply the same 5 to the name alone, so anyone could lock any clerk
    out with five requests. Instead, this handler also sums the name's failures from every address within
    the lockout window (LOGIN_USERNAME_FAILURE_LIMIT, 20) and reports the name as locked once that is
    reached: from every address, for AXES_COOLOFF_TIME after the last failure, until
    ``manage.py axes_reset_username`` or the time runs out.
    """

    def get_failures(self, request: Any, credentials: dict | None = None) -> int:
        failures = super().get_failures(request, credentials)
        limit = getattr(settings, "LOGIN_USERNAME_FAILURE_LIMIT", 0)
        username = get_client_username(request, credentials)
        if not limit or not username:
            return failures
        attempts = AccessAttempt.objects.filter(username=username)
        if settings.AXES_COOLOFF_TIME is not None:
            attempts = attempts.filter(attempt_time__gte=get_cool_off_threshold(request))
        across_addresses = attempts.aggregate(n=Sum("failures_since_start"))["n"] or 0
        if across_addresses < limit:
            return failures
        request.login_locked_scope = "username"  # the lockout response says so
        return max(failures, get_failure_limit(request, credentials))


def _cooloff_minutes() -> int:
    cooloff = settings.AXES_COOLOFF_TIME
    return int(cooloff.total_seconds() // 60) if cooloff else 0


def lockout_response(request: HttpRequest, original_response: Any = None, credentials: Any = None) -> HttpResponse:
    """429 for a locked-out login: the API's JSON error shape under /api/, a short page for the web."""
    minutes = _cooloff_minutes()
    if getattr(request, "login_locked_scope", "") == "username":
        text = _("Too many failed logins for this user name; it is locked for %(minutes)d minutes from every address.")
    else:
        text = _("Too many failed logins for this user from this address; try again in %(minutes)d minutes.")
    message = text % {"minutes": minutes}
    retry_after = str(minutes * 60)
    if request.path.startswith("/api/"):
        response: HttpResponse = JsonResponse(
            {"code": "login_locked", "message": message, "details": {"retry_after_minutes": minutes}}, status=429
        )
    else:
        body: str
        try:
            body = render_to_string("registration/locked_out.html", {"message": message}, request=request)
        except TemplateDoesNotExist:
            body = message
        response = HttpResponse(body, status=429, content_type="text/html; charset=utf-8")
    response["Retry-After"] = retry_after
    return response


def swagger_ui_csp(view: Any) -> Any:
    """Swagger UI (/api/docs/) styles itself inline (and loads its bundle from SWAGGER_UI_DIST when that is
    an external URL rather than the bundled sidecar files): allow exactly that, for this one view; every
    other page keeps the strict policy."""
    from urllib.parse import urlsplit

    from csp.decorators import csp_update
    from drf_spectacular.settings import spectacular_settings

    parts = urlsplit(spectacular_settings.SWAGGER_UI_DIST)
    origins = [f"{parts.scheme}://{parts.netloc}"] if parts.netloc else []
    return csp_update({"script-src": origins, "style-src": [*origins, "'unsafe-inline'"], "img-src": origins})(view)
