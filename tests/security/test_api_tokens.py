"""API tokens (issue 18 item 8): a lifetime, revocation on password change and deactivation, and the
owner's list with revocation by id. Before the fix a DRF token lived for ever and survived both."""

from __future__ import annotations

import datetime as dt
import importlib
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.contrib.auth.hashers import make_password
from django.test import Client
from rest_framework.test import APIClient

from enrollment.models import ApiToken
from enrollment.services.api_tokens import api_token_issue, hash_key

PASSWORD = "pw-for-tests-2026"
NEW_PASSWORD = "a-completely-new-pass-2026"
ISSUED = dt.datetime(2026, 12, 1, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai"))


def login(user: Any, password: str = PASSWORD, **extra: Any) -> dict[str, Any]:
    response = APIClient().post(
        "/api/v1/auth/token/", {"username": user.username, "password": password, **extra}, format="json"
    )
    assert response.status_code == 200, response.content
    return response.json()


def client_with(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def works(key: str) -> bool:
    status = client_with(key).get("/api/v1/diseases/").status_code
    assert status in (200, 401), status
    return status == 200


# ---------------------------------------------------------------------------
# Lifetime
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("hours", [24, 168])
def test_a_token_works_until_its_lifetime_ends_and_not_a_second_longer(world, settings, hours):
    settings.API_TOKEN_LIFETIME_HOURS = hours
    with time_machine.travel(ISSUED, tick=False):
        answer = login(world.clerk)
    key = answer["token"]
    assert dt.datetime.fromisoformat(answer["expires_at"]) == ISSUED + dt.timedelta(hours=hours)
    with time_machine.travel(ISSUED + dt.timedelta(hours=hours, seconds=-1), tick=False):
        assert works(key)
    with time_machine.travel(ISSUED + dt.timedelta(hours=hours, seconds=1), tick=False):
        refused = client_with(key).get("/api/v1/diseases/", HTTP_ACCEPT_LANGUAGE="en")
    assert refused.status_code == 401
    body = refused.json()
    assert body["code"] == "token_expired"
    expired_at = (ISSUED + dt.timedelta(hours=hours)).isoformat()
    assert body["message"] == f"This token expired at {expired_at}; ask for a new one (POST /api/v1/auth/token/)."
    assert refused["WWW-Authenticate"] == "Token"
    # A new login gives a new token that works.
    with time_machine.travel(ISSUED + dt.timedelta(hours=hours, seconds=2), tick=False):
        assert works(login(world.clerk)["token"])


def test_the_key_is_stored_only_as_a_hash(world):
    key = login(world.clerk)["token"]
    token = ApiToken.objects.get(user=world.clerk)
    stored = " ".join(str(value) for value in ApiToken.objects.filter(pk=token.pk).values().get().values())
    assert key not in stored
    assert token.key_hash == hash_key(key) and token.prefix == key[:8]


def test_each_login_issues_another_token_and_expired_ones_are_cleared(world, settings):
    settings.API_TOKEN_LIFETIME_HOURS = 24
    with time_machine.travel(ISSUED, tick=False):
        first = login(world.clerk)["token"]
    with time_machine.travel(ISSUED + dt.timedelta(hours=1), tick=False):
        second = login(world.clerk)["token"]
        assert works(first) and works(second) and first != second
    with time_machine.travel(ISSUED + dt.timedelta(hours=30), tick=False):
        login(world.clerk)
    assert not ApiToken.objects.filter(key_hash__in=[hash_key(first), hash_key(second)]).exists()


# ---------------------------------------------------------------------------
# Password change and deactivation
# ---------------------------------------------------------------------------


def change_with_set_password(user: Any, admin: Any) -> None:
    user.set_password(NEW_PASSWORD)
    user.save()


def change_in_the_admin(user: Any, admin: Any) -> None:
    admin.is_staff = admin.is_superuser = True
    admin.save()
    client = Client()
    client.force_login(admin)
    response = client.post(
        f"/admin/auth/user/{user.pk}/password/",
        {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD, "usable_password": "true"},
    )
    assert response.status_code == 302, response.content[:2000]


def change_without_a_signal(user: Any, admin: Any) -> None:
    """A queryset update sends no save signal: the token's password fingerprint still refuses it."""
    type(user).objects.filter(pk=user.pk).update(password=make_password(NEW_PASSWORD))


def make_unusable(user: Any, admin: Any) -> None:
    user.set_unusable_password()
    user.save(update_fields=["password"])


@pytest.mark.parametrize(
    "change", [change_with_set_password, change_in_the_admin, change_without_a_signal, make_unusable]
)
def test_a_password_change_revokes_the_users_tokens(world, change):
    keys = [login(world.clerk)["token"], api_token_issue(user=world.clerk).key]
    other = login(world.reviewer)["token"]
    assert all(works(key) for key in keys)

    change(world.clerk, world.admin)

    assert not any(works(key) for key in keys)
    assert works(other)
    if change is not change_without_a_signal:
        assert not ApiToken.objects.filter(user=world.clerk).exists()  # revoked, not only refused
    if change is not make_unusable:
        assert works(login(world.clerk, NEW_PASSWORD)["token"])


def test_saving_the_user_without_a_password_change_keeps_the_tokens(world):
    key = login(world.clerk)["token"]
    world.clerk.refresh_from_db()
    world.clerk.first_name = "新名字"
    world.clerk.save()
    Client().login(username=world.clerk.username, password=PASSWORD)  # last_login update
    assert works(key)


def test_deactivation_revokes_the_tokens_for_good(world):
    key = login(world.clerk)["token"]
    world.clerk.is_active = False
    world.clerk.save()
    assert not works(key)
    assert not ApiToken.objects.filter(user=world.clerk).exists()
    # Reactivated, the account needs a new login: the old token does not come back.
    world.clerk.is_active = True
    world.clerk.save()
    assert not works(key)
    assert works(login(world.clerk)["token"])


# ---------------------------------------------------------------------------
# The owner's list and revocation by id
# ---------------------------------------------------------------------------


def test_the_list_shows_only_ones_own_tokens_masked(world):
    with time_machine.travel(ISSUED, tick=False):
        script = login(world.clerk, name="nightly export")
        laptop = login(world.clerk)
        reviewer = login(world.reviewer)
        client = client_with(laptop["token"])
        response = client.get("/api/v1/auth/tokens/")
    assert response.status_code == 200
    rows = response.json()
    assert {row["id"] for row in rows} == {script["id"], laptop["id"]}
    text = response.content.decode()
    for answer in (script, laptop, reviewer):
        assert answer["token"] not in text  # never a key in full
    by_id = {row["id"]: row for row in rows}
    assert by_id[script["id"]]["name"] == "nightly export"
    assert by_id[script["id"]]["key"] == script["token"][:8] + "…"
    assert by_id[laptop["id"]]["current"] is True and by_id[script["id"]]["current"] is False
    assert by_id[laptop["id"]]["last_used_at"] is not None and by_id[script["id"]]["last_used_at"] is None
    assert dt.datetime.fromisoformat(by_id[script["id"]]["created_at"]) == ISSUED
    assert dt.datetime.fromisoformat(by_id[script["id"]]["expires_at"]) == ISSUED + dt.timedelta(hours=24)
    # Another user's token id is not found, and that token keeps working.
    assert client.delete(f"/api/v1/auth/tokens/{reviewer['id']}/").status_code == 404
    assert works(reviewer["token"])


def test_deleting_a_token_by_id_revokes_it_at_once(world):
    script = login(world.clerk, name="script")
    laptop = login(world.clerk)
    client = client_with(laptop["token"])
    assert works(script["token"])
    assert client.delete(f"/api/v1/auth/tokens/{script['id']}/").status_code == 204
    assert not works(script["token"])
    assert [row["id"] for row in client.get("/api/v1/auth/tokens/").json()] == [laptop["id"]]
    assert client.delete(f"/api/v1/auth/tokens/{script['id']}/").status_code == 404
    # The old endpoint still ends the token of the request.
    assert client.delete("/api/v1/auth/token/revoke/").status_code == 204
    assert not works(laptop["token"])


def test_the_web_session_lists_tokens_and_revoke_without_a_token_ends_them_all(world):
    keys = [login(world.clerk)["token"] for _ in range(2)]
    client = APIClient()
    client.force_login(world.clerk)
    assert len(client.get("/api/v1/auth/tokens/").json()) == 2
    assert client.delete("/api/v1/auth/token/revoke/").status_code == 204
    assert not any(works(key) for key in keys)


def test_tokens_issued_before_the_upgrade_are_moved_hashed_and_expire(world, settings):
    """Migration 0010 turns DRF's clear-text keys into hashed ApiToken rows that expire one lifetime later."""
    from django.apps import apps
    from rest_framework.authtoken.models import Token

    migration = importlib.import_module("enrollment.migrations.0010_api_tokens")
    legacy = Token.objects.create(user=world.clerk)
    settings.API_TOKEN_LIFETIME_HOURS = 24
    with time_machine.travel(ISSUED, tick=False):
        migration.move_legacy_tokens(apps, None)
        migration.move_legacy_tokens(apps, None)  # idempotent
        assert works(legacy.key)
    assert not Token.objects.exists()
    moved = ApiToken.objects.get(user=world.clerk)
    assert moved.expires_at == ISSUED + dt.timedelta(hours=24)
    with time_machine.travel(ISSUED + dt.timedelta(hours=24, seconds=1), tick=False):
        assert not works(legacy.key)


def test_administrators_revoke_tokens_in_the_admin_and_never_see_a_key(world):
    world.admin.is_staff = world.admin.is_superuser = True
    world.admin.save()
    issued = api_token_issue(user=world.clerk, name="script")
    client = Client()
    client.force_login(world.admin)
    listing = client.get("/admin/enrollment/apitoken/").content.decode()
    assert issued.key[:8] in listing and issued.key not in listing
    assert issued.key not in client.get(f"/admin/enrollment/apitoken/{issued.token.pk}/change/").content.decode()
    assert client.get("/admin/authtoken/tokenproxy/").status_code == 404  # DRF's table no longer offered
    deleted = client.post(f"/admin/enrollment/apitoken/{issued.token.pk}/delete/", {"post": "yes"})
    assert deleted.status_code == 302
    assert not works(issued.key)
