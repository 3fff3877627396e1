"""Long and odd user names at both logins (issue 18 item 12).

A user name over 255 characters was a 500 on ``POST /api/v1/auth/token/`` and on the web login (PostgreSQL):
django-axes stores every failed login's user name in a 255-character column and the INSERT failed; 255
characters gave the ordinary 400. No account can have a name longer than the user model allows (150), so both
logins now refuse a longer one before ``authenticate()`` — the API with 400 ``invalid`` naming ``username``,
the web page with a form error — and record no attempt. A NUL is refused by the input guard (400); emoji and
right-to-left marks are ordinary wrong names. On SQLite nothing failed, but the long name reached axes.
"""

from __future__ import annotations

import pytest
from axes.models import AccessAttempt
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

TOKEN_URL = "/api/v1/auth/token/"
MAX = 150  # django.contrib.auth's username

ODD_NAMES = {
    "emoji": "医生👩‍⚕️🩺",
    "rtl-marks": "\u202eclerk\u200f\u200e",
    "combining": "e\u0301" * 40,
    "zero-width": "cl\u200berk\ufeff",
    "surrogate-free-astral": "𠀀𪚥" * 10,
}

# Hostile user names for the fuzzing below: long ones around the limits, control and direction characters, emoji.
HOSTILE_NAMES = st.one_of(
    st.text(min_size=1, max_size=40),
    st.integers(min_value=MAX - 2, max_value=300).map(lambda n: "x" * n),
    st.sampled_from([10_000, 100_000]).map(lambda n: "名" * n),
    st.lists(st.sampled_from(["\u202e", "\u200f", "\u200e", "👩‍⚕️", "\x00", "\t", "a", "名"]), min_size=1).map("".join),
)


def token_login(username: str) -> object:
    return APIClient().post(TOKEN_URL, {"username": username, "password": "wrong-password"}, format="json")


@pytest.mark.parametrize("length", [MAX + 1, 255, 256, 10_000])
def test_a_too_long_user_name_is_400_at_the_api_and_never_reaches_the_throttle(world, length):
    response = token_login("u" * length)
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["code"] == "invalid" and "username" in body["details"], body
    assert not AccessAttempt.objects.exists()


def test_a_name_at_the_limit_is_an_ordinary_failed_login(world):
    response = token_login("u" * MAX)
    assert response.status_code == 400 and response.json()["code"] == "authentication_failed"
    assert AccessAttempt.objects.get().username == "u" * MAX


@pytest.mark.parametrize("length", [MAX + 1, 256, 10_000])
def test_a_too_long_user_name_is_a_form_error_on_the_web_login(world, length):
    response = Client().post("/login/", {"username": "u" * length, "password": "wrong-password"})
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert "username" in errors and str(MAX) in errors["username"][0]
    assert not AccessAttempt.objects.exists()


@pytest.mark.parametrize("name", list(ODD_NAMES.values()), ids=list(ODD_NAMES))
def test_odd_user_names_are_ordinary_failed_logins(world, name):
    api = token_login(name)
    assert api.status_code == 400 and api.json()["code"] == "authentication_failed"
    web = Client().post("/login/", {"username": name, "password": "wrong-password"})
    assert web.status_code == 200 and web.context["form"].non_field_errors()


def test_a_nul_in_the_user_name_is_400_at_both_logins(world):
    api = token_login("clerk\x00")
    assert api.status_code == 400 and api.json()["details"] == {"field": "username"}
    assert Client().post("/login/", {"username": "clerk\x00", "password": "x"}).status_code == 400
    assert not AccessAttempt.objects.exists()


def test_the_right_password_still_logs_in(world):
    ok = APIClient().post(TOKEN_URL, {"username": world.clerk.username, "password": "pw-for-tests-2026"}, format="json")
    assert ok.status_code == 200 and ok.json()["token"]
    web = Client().post("/login/", {"username": world.clerk.username, "password": "pw-for-tests-2026"})
    assert web.status_code == 302


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=HOSTILE_NAMES)
def test_fuzzed_user_names_never_give_a_server_error(world, name):
    """Both logins, each generated name: a 4xx (or the web form again), never a 5xx; a 429 once a name has failed
    five times from this address is a fine answer too."""
    api = APIClient(raise_request_exception=False).post(
        TOKEN_URL, {"username": name, "password": "wrong"}, format="json"
    )
    assert api.status_code in (400, 429), (name[:50], api.status_code, api.content[:200])
    assert {"code", "message", "details"} <= api.json().keys()
    web = Client(raise_request_exception=False).post("/login/", {"username": name, "password": "wrong"})
    assert web.status_code in (200, 400, 429), (name[:50], web.status_code)
