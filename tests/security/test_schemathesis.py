"""Fuzz the API from its own OpenAPI schema (schemathesis): no 5xx, every response matches the schema.

Every operation in /api/schema/ is exercised in-process through the WSGI application (the whole
middleware stack: CSP, axes, sessions, CSRF), with schema-valid and schema-violating data, as an
administrator with a real token. The number of examples is bounded (SCHEMATHESIS_MAX_EXAMPLES,
default 30 per operation) so the run stays within a couple of minutes on two cores.
"""

from __future__ import annotations

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from rest_framework.authtoken.models import Token
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from enrollment import services
from tests.conftest import pdf_upload

MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "30"))
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]
REQUESTS = {"count": 0}


@pytest.fixture(autouse=True)
def _keep_the_test_connection():
    """The real WSGI handler closes "obsolete" connections at each request's start and end; inside the test's
    transaction that would close it (PostgreSQL). Django's own test client disconnects the same receiver."""
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def fuzz_world(world):
    """Applications in several states, so that ids 1..n exist and transitions meet real rows."""
    submitted = services.application_submit(
        person=world.person(), disease=world.hypertension, treating_institution=world.county, actor=world.clerk
    )
    diagnosed = services.application_submit(
        person=world.person(), disease=world.diabetes, treating_institution=world.county, actor=world.clerk
    )
    services.application_diagnose(
        application_id=diagnosed.pk,
        actor=world.physician_user,
        icd10_code="E11.9",
        diagnosis_date=diagnosed.filed_at.date(),
        documents=[("diagnosis_certificate", pdf_upload())],
    )
    services.application_withdraw(application_id=submitted.pk, actor=world.clerk)
    services.application_submit(
        person=world.person(), disease=world.copd, treating_institution=world.county, actor=world.clerk
    )
    return world


def load_schema() -> schemathesis.schemas.BaseSchema:
    """The schema the running application serves, loaded through WSGI once at collection.

    Loaded eagerly: schemathesis's lazy fixture loader needs a pytest internal that pytest 9 removed.
    Serving /api/schema/ touches no database table.
    """
    from config.wsgi import application

    return schemathesis.openapi.from_wsgi("/api/schema/", application)


schema = load_schema()


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_api_never_fails_and_matches_its_schema(case, fuzz_world):
    # A fresh token per example: the fuzzed DELETE /auth/token/revoke/ legitimately kills the current one.
    token, _created = Token.objects.get_or_create(user=fuzz_world.admin)
    REQUESTS["count"] += 1
    case.call_and_validate(headers={"Authorization": f"Token {token.key}"}, checks=CHECKS)


def test_the_schema_lists_every_api_route(db):
    """Schemathesis only fuzzes what the schema declares: every /api/v1/ route must be in it."""
    from django.test import Client
    from django.urls import get_resolver

    paths = set(Client().get("/api/schema/", HTTP_ACCEPT="application/json").json()["paths"])
    assert "/api/v1/applications/{id}/diagnose/" in paths
    missing = []
    for pattern in _api_routes(get_resolver()):
        if pattern not in paths:
            missing.append(pattern)
    assert not missing, f"routes missing from the OpenAPI schema (not fuzzed): {missing}"


def _api_routes(resolver, prefix: str = "") -> list[str]:
    """/api/v1/ routes as OpenAPI paths ({id} style), without DRF's format-suffix and root views."""
    import re

    from django.urls import URLPattern, URLResolver

    routes = []
    for entry in resolver.url_patterns:
        pattern = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            routes += _api_routes(entry, pattern)
        elif isinstance(entry, URLPattern) and pattern.startswith("api/v1/"):
            if "format" in pattern or getattr(entry.callback, "cls", None).__name__ == "APIRootView":
                continue
            path = "/" + pattern.replace("^", "").replace("$", "")
            path = re.sub(r"\(\?P<(\w+)>[^)]*\)", r"{\1}", path)
            path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", path)
            path = path.replace("\\.", ".").replace("{pk}", "{id}")
            routes.append(path)
    return sorted(set(routes))
