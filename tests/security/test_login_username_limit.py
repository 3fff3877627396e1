"""Login throttling per user name across addresses (issue 18 item 11): the lockout per name + address
(LOGIN_FAILURE_LIMIT, 5) let someone with many addresses guess freely; LOGIN_USERNAME_FAILURE_LIMIT (20)
failures of one name from anywhere within the lockout window now lock that name everywhere."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.test import Client
from rest_framework.test import APIClient

PASSWORD = "pw-for-tests-2026"
TOKEN_URL = "/api/v1/auth/token/"


def fail_from_many_addresses(username: str, count: int) -> None:
    for n in range(count):
        response = APIClient().post(
            TOKEN_URL, {"username": username, "password": f"guess-{n}"}, format="json", REMOTE_ADDR=f"10.1.{n}.7"
        )
        # Each address stays far below its own limit; the failure that reaches the name's limit answers 429.
        expected = {400, 429} if n == count - 1 else {400}
        assert response.status_code in expected, (n, response.status_code)


def token_login(username: str, address: str):
    return APIClient().post(
        TOKEN_URL,
        {"username": username, "password": PASSWORD},
        format="json",
        REMOTE_ADDR=address,
        HTTP_ACCEPT_LANGUAGE="en",
    )


def test_twenty_failures_from_twenty_addresses_lock_the_user_name(world, settings):
    assert settings.LOGIN_USERNAME_FAILURE_LIMIT == 20 and settings.AXES_FAILURE_LIMIT == 5
    fail_from_many_addresses(world.clerk.username, 20)

    # The right password from yet another address: locked, on the API …
    locked = token_login(world.clerk.username, "192.0.2.50")
    assert locked.status_code == 429
    body = locked.json()
    assert body["code"] == "login_locked" and "user name" in body["message"]
    assert locked["Retry-After"] == str(15 * 60)
    # … and on the web login page.
    web = Client(REMOTE_ADDR="192.0.2.51")
    page = web.post("/login/", {"username": world.clerk.username, "password": PASSWORD})
    assert page.status_code == 429
    assert "_auth_user_id" not in web.session
    # Another user, from the same addresses, is not affected.
    assert token_login(world.reviewer.username, "10.1.3.7").status_code == 200
    assert Client(REMOTE_ADDR="10.1.4.7").post(
        "/login/", {"username": world.reviewer.username, "password": PASSWORD}
    ).status_code in (200, 302)
    assert Client().login(username=world.reviewer.username, password=PASSWORD)


def test_nineteen_failures_across_addresses_do_not_lock(world):
    fail_from_many_addresses(world.clerk.username, 19)
    assert token_login(world.clerk.username, "192.0.2.50").status_code == 200


def test_the_name_lock_ends_with_the_lockout_window(world, settings):
    start = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)
    with time_machine.travel(start, tick=False):
        fail_from_many_addresses(world.clerk.username, 20)
        assert token_login(world.clerk.username, "192.0.2.50").status_code == 429
    with time_machine.travel(start + settings.AXES_COOLOFF_TIME + dt.timedelta(seconds=1), tick=False):
        assert token_login(world.clerk.username, "192.0.2.50").status_code == 200


@pytest.mark.parametrize("limit", [0])
def test_the_name_limit_can_be_switched_off(world, settings, limit):
    settings.LOGIN_USERNAME_FAILURE_LIMIT = limit
    fail_from_many_addresses(world.clerk.username, 25)
    assert token_login(world.clerk.username, "192.0.2.50").status_code == 200
