"""Logged-in clients, as the web tests have them."""

from tests.web.conftest import client_for  # noqa: F401
