"""Login throttling glue (django-axes): the backend and the lockout response."""

from __future__ import annotations

from typing import Any

from axes.backends import AxesStandaloneBackend
from django.conf import settings
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


def _cooloff_minutes() -> int:
    cooloff = settings.AXES_COOLOFF_TIME
    return int(cooloff.total_seconds() // 60) if cooloff else 0


def lockout_response(request: HttpRequest, original_response: Any = None, credentials: Any = None) -> HttpResponse:
    """429 for a locked-out login: the API's JSON error shape under /api/, a short page for the web."""
    minutes = _cooloff_minutes()
    message = _("Too many failed logins for this user from this address; try again in %(minutes)d minutes.") % {
        "minutes": minutes
    }
    retry_after = str(minutes * 60)
    if request.path.startswith("/api/"):
        response: HttpResponse = JsonResponse(
            {"code": "login_locked", "message": message, "details": {"retry_after_minutes": minutes}}, status=429
        )
    else:
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
