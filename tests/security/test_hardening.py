"""Production hardening: deploy check, cookies, CSP, login throttling, tokens, passwords.

docs/design.md: Access and privacy.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from axes.models import AccessAttempt
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.test import Client
from rest_framework.test import APIClient

from enrollment.models import ApiToken
from enrollment.services.api_tokens import api_token_issue, hash_key

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "pw-for-tests-2026"


def production_env(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "DJANGO_ENV", "DEBUG", "ALLOWED_HOSTS"}}
    return {
        **base,
        "DJANGO_ENV": "production",
        "SECRET_KEY": secrets.token_urlsafe(64),
        "ALLOWED_HOSTS": "enrollment.example.org",
        **extra,
    }


def run_manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180
    )


# ---------------------------------------------------------------------------
# check --deploy and the production settings
# ---------------------------------------------------------------------------


def test_check_deploy_is_clean_under_production_settings():
    result = run_manage("check", "--deploy", "--fail-level", "WARNING", env=production_env())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_check_deploy_fails_when_a_protection_is_switched_off():
    """The CI step really fails on a warning: turning off the HTTPS redirect is reported."""
    result = run_manage("check", "--deploy", "--fail-level", "WARNING", env=production_env(SECURE_SSL_REDIRECT="false"))
    assert result.returncode != 0
    assert "security.W008" in result.stdout + result.stderr


def test_production_settings_values():
    code = (
        "from django.conf import settings as s;"
        "print(s.DEBUG, s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SECURE_SSL_REDIRECT,"
        " s.SECURE_HSTS_SECONDS >= 31536000, s.SECURE_HSTS_INCLUDE_SUBDOMAINS, s.SESSION_COOKIE_HTTPONLY)"
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=ROOT,
        env=production_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "False True True True True True True"


# ---------------------------------------------------------------------------
# Content-Security-Policy
# ---------------------------------------------------------------------------


def csp_directives(response) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    directives = {}
    for part in header.split(";"):
        words = part.split()
        if words:
            directives[words[0]] = words[1:]
    return directives


@pytest.mark.parametrize("path", ["/login/", "/api/v1/diseases/", "/health/"])
def test_every_response_carries_a_strict_csp(db, path):
    response = Client().get(path)
    policy = csp_directives(response)
    assert policy["script-src"] == ["'self'"]
    assert policy["style-src"] == ["'self'"]
    assert policy["object-src"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"


def test_login_page_has_no_inline_script_or_style(db):
    """script-src 'self' blocks inline code: the page must not depend on any."""
    html = Client().get("/login/").content.decode()
    assert "<script>" not in html and '<script type="text/javascript">' not in html
    assert " onclick=" not in html and " onload=" not in html and " onsubmit=" not in html
    assert "<style" not in html


def test_swagger_ui_is_served_by_the_app_without_a_cdn(db, world):
    client = Client()
    client.force_login(world.admin)
    response = client.get("/api/docs/")
    assert response.status_code == 200
    policy = csp_directives(response)
    assert policy["script-src"] == ["'self'"]
    html = response.content.decode()
    assert "cdn." not in html and "https://" not in html.split("</head>")[0]
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in html
    # The page's start-up script is a separate same-origin request, not inline code.
    assert "?script" in response.content.decode() or "&script" in response.content.decode()
    assert client.get("/api/docs/?script=").status_code == 200


# ---------------------------------------------------------------------------
# Login throttling (django-axes)
# ---------------------------------------------------------------------------


@pytest.fixture
def throttle(settings):
    settings.AXES_FAILURE_LIMIT = 3
    return settings


def test_web_login_locks_after_repeated_failures(world, throttle):
    client = Client()
    for _attempt in range(3):
        response = client.post("/login/", {"username": world.clerk.username, "password": "wrong"})
        assert response.status_code in (200, 429)
    locked = client.post("/login/", {"username": world.clerk.username, "password": PASSWORD})
    assert locked.status_code == 429
    assert locked["Retry-After"] == str(15 * 60)
    assert "_auth_user_id" not in client.session
    assert AccessAttempt.objects.filter(username=world.clerk.username).exists()


def test_web_login_succeeds_below_the_limit_and_resets(world, throttle):
    client = Client()
    client.post("/login/", {"username": world.clerk.username, "password": "wrong"})
    response = client.post("/login/", {"username": world.clerk.username, "password": PASSWORD})
    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(world.clerk.pk)


def test_api_token_endpoint_locks_with_a_json_error(world, throttle):
    client = APIClient()
    url = "/api/v1/auth/token/"
    for _attempt in range(3):
        client.post(url, {"username": world.clerk.username, "password": "wrong"}, format="json")
    locked = client.post(url, {"username": world.clerk.username, "password": PASSWORD}, format="json")
    assert locked.status_code == 429
    body = locked.json()
    assert body["code"] == "login_locked" and body["message"]
    assert not ApiToken.objects.filter(user=world.clerk).exists()
    # Another user from the same address is not affected (lockout is per name + address).
    other = client.post(url, {"username": world.reviewer.username, "password": PASSWORD}, format="json")
    assert other.status_code == 200


def test_lockout_is_not_bypassed_by_a_forged_forwarded_header(world, throttle):
    client = APIClient()
    url = "/api/v1/auth/token/"
    for n in range(3):
        client.post(
            url,
            {"username": world.clerk.username, "password": "wrong"},
            format="json",
            HTTP_X_FORWARDED_FOR=f"10.0.0.{n}",
        )
    locked = client.post(
        url, {"username": world.clerk.username, "password": PASSWORD}, format="json", HTTP_X_FORWARDED_FOR="10.9.9.9"
    )
    assert locked.status_code == 429


def test_authenticate_without_a_request_still_checks_the_password(world):
    """Shell and test-client logins carry no request; the password check still applies."""
    assert Client().login(username=world.clerk.username, password=PASSWORD)
    assert not Client().login(username=world.clerk.username, password="wrong")


# ---------------------------------------------------------------------------
# Tokens and passwords
# ---------------------------------------------------------------------------


def test_revoked_token_stops_working_and_a_new_login_gives_a_new_one(world):
    client = APIClient()
    first = client.post("/api/v1/auth/token/", {"username": world.clerk.username, "password": PASSWORD}, format="json")
    token = first.json()["token"]
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert client.get("/api/v1/diseases/").status_code == 200
    assert client.delete("/api/v1/auth/token/revoke/").status_code == 204
    assert not ApiToken.objects.filter(key_hash=hash_key(token)).exists()
    refused = client.get("/api/v1/diseases/")
    assert refused.status_code == 401 and refused.json()["code"] == "authentication_failed"
    # Revoking again with the dead token is refused too, not a server error.
    assert client.delete("/api/v1/auth/token/revoke/").status_code == 401
    client.credentials()
    again = client.post("/api/v1/auth/token/", {"username": world.clerk.username, "password": PASSWORD}, format="json")
    assert again.status_code == 200 and again.json()["token"] != token


def test_revoking_one_users_token_leaves_others(world):
    clerk_token = api_token_issue(user=world.clerk)
    reviewer_token = api_token_issue(user=world.reviewer)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {clerk_token.key}")
    assert client.delete("/api/v1/auth/token/revoke/").status_code == 204
    assert ApiToken.objects.filter(pk=reviewer_token.token.pk).exists()


def test_anonymous_cannot_revoke(db):
    assert APIClient().delete("/api/v1/auth/token/revoke/").status_code == 401


def test_inactive_user_gets_no_token(world):
    world.clerk.is_active = False
    world.clerk.save()
    response = APIClient().post(
        "/api/v1/auth/token/", {"username": world.clerk.username, "password": PASSWORD}, format="json"
    )
    assert response.status_code == 400


@pytest.mark.parametrize("weak", ["short1", "12345678901", "password123", "qwertyuiop"])
def test_password_validators_refuse_weak_passwords(world, weak):
    with pytest.raises(ValidationError):
        validate_password(weak, user=world.clerk)


def test_password_validators_refuse_one_like_the_user_name(world):
    with pytest.raises(ValidationError):
        validate_password(world.clerk.username + "x", user=world.clerk)


def test_password_validators_accept_a_strong_password(world):
    validate_password("correct-horse-battery-staple-2026", user=world.clerk)


def test_static_assets_are_served_by_the_application(db):
    """Closed networks: the pages' own CSS/JS and Swagger UI's bundle come from this server (whitenoise)."""
    client = Client()
    for path in ("/static/css/app.css", "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert b"".join(response.streaming_content) if response.streaming else response.content
