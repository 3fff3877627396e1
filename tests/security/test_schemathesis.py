"""Fuzz the API from its own OpenAPI schema (schemathesis): no 5xx, every response matches the schema.

Every operation in /api/schema/ is exercised in-process through the WSGI application (the whole
middleware stack: CSP, axes, sessions, CSRF), with schema-valid and schema-violating data, as each role
with a real token: administrator (SCHEMATHESIS_MAX_EXAMPLES, default 30 per operation), clinic staff,
physician, reviewer and centre officer (SCHEMATHESIS_ROLE_EXAMPLES, default 10). A 403 / 404 for a role
without the permission is a fine answer; it must still be the API's JSON error, as is every 4xx.

The stateful run follows the schema's OpenAPI links (config/schema.py, plus those schemathesis infers):
a person registered is looked up and filed for, an application filed is read, diagnosed, withdrawn …,
each step sent with the token of the role that takes it in real life.
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ensure_resource_availability,
    response_schema_conformance,
    use_after_free,
)

from enrollment import services
from enrollment.services.api_tokens import api_token_issue
from tests.conftest import pdf_upload

MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "30"))
ROLE_EXAMPLES = int(os.environ.get("SCHEMATHESIS_ROLE_EXAMPLES", "10"))
STATEFUL_EXAMPLES = int(os.environ.get("SCHEMATHESIS_STATEFUL_EXAMPLES", "100"))
REQUESTS: Counter[str] = Counter()


def api_errors_are_json(ctx: Any, response: Any, case: Any) -> None:
    """Every 4xx is the API's error shape ``{"code", "message", "details"}``, documented status or not."""
    if 400 <= response.status_code < 500:
        try:
            body = response.json()
        except ValueError:
            body = None
        assert isinstance(body, dict) and {"code", "message"} <= body.keys(), (
            f"{case.method} {case.formatted_path} answered {response.status_code} without the JSON error shape: "
            f"{response.text[:300]!r}"
        )


CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance, api_errors_are_json]


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
# The other roles share the administrator's coverage of boundary values (that phase alone sends ~40 requests per
# operation whatever max_examples says): they get the generated examples only, which keeps CI within minutes.
role_schema = load_schema()
role_schema.config.phases.coverage.enabled = False


SETTINGS = {
    "deadline": None,
    "derandomize": True,
    "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
}
# Which World user plays each role.
ROLE_USERS = {
    "administrator": "admin",
    "clinic_staff": "clerk",
    "physician": "physician_user",
    "reviewer": "reviewer",
    "center_officer": "officer",
}


def fuzz_as(role: str, max_examples: int) -> Any:
    @(schema if role == "administrator" else role_schema).parametrize()
    @settings(max_examples=max_examples, **SETTINGS)
    def test(case, fuzz_world):
        # A fresh token per example: the fuzzed DELETE /auth/token/revoke/ (and /auth/tokens/{id}/) legitimately
        # kill the current one.
        token = api_token_issue(user=getattr(fuzz_world, ROLE_USERS[role]))
        REQUESTS[role] += 1
        case.call_and_validate(headers={"Authorization": f"Token {token.key}"}, checks=CHECKS)

    test.__doc__ = f"Every operation as {role.replace('_', ' ')}: no 5xx, schema-conformant, JSON errors."
    return test


test_api_as_administrator = fuzz_as("administrator", MAX_EXAMPLES)
test_api_as_clinic_staff = fuzz_as("clinic_staff", ROLE_EXAMPLES)
test_api_as_physician = fuzz_as("physician", ROLE_EXAMPLES)
test_api_as_reviewer = fuzz_as("reviewer", ROLE_EXAMPLES)
test_api_as_center_officer = fuzz_as("center_officer", ROLE_EXAMPLES)

# The role that takes each linked step in real life; the clinic for everything else.
STEP_ROLES = {
    "POST /api/v1/applications/{id}/diagnose/": "physician",
    "POST /api/v1/immediate-approvals/": "center_officer",
    "GET /api/v1/queue/": "reviewer",
    "POST /api/v1/queue/claim/": "reviewer",
    "POST /api/v1/review-items/{id}/approve/": "reviewer",
    "POST /api/v1/review-items/{id}/reject/": "reviewer",
    "POST /api/v1/review-items/{id}/return/": "reviewer",
}


def test_stateful_workflows_follow_the_links(fuzz_world):
    """Chains of requests along the schema's links; ids flow from one response into the next request."""
    assert schema.raw_schema["paths"]["/api/v1/applications/"]["post"]["responses"]["201"]["links"], "no links"
    tokens = {role: api_token_issue(user=getattr(fuzz_world, user)).key for role, user in ROLE_USERS.items()}
    seen: Counter[str] = Counter()
    created: set[str] = set()

    from stdnum.cn import ric

    from tests.factories import synthetic_id_number

    diseases = [fuzz_world.hypertension.code, fuzz_world.diabetes.code, fuzz_world.copd.code]

    class Workflow(schema.as_state_machine()):
        def before_call(self, case):
            """Random text is never a valid 身份证号 (checksum): the roots of the filing chains get real ones,
            so that the links have objects to carry. Every other field stays generated."""
            if case.method.upper() != "POST" or not isinstance(case.body, dict):
                return
            if case.path == "/api/v1/persons/":
                case.body = {**case.body, "id_number": synthetic_id_number(), "name": "状态测试"}
            elif case.path == "/api/v1/applications/" and not ric.is_valid(str(case.body.get("id_number", ""))):
                person = fuzz_world.person()
                disease = diseases[len(created) % len(diseases)]
                case.body = {"id_number": person.id_number, "disease": disease, "treating_institution": "-"}
                case.body["treating_institution"] = fuzz_world.county.code

        def get_call_kwargs(self, case):
            # The revoke operation may have deleted the role's token in an earlier step: give it a live one.
            role = STEP_ROLES.get(f"{case.method.upper()} {case.path}", "clinic_staff")
            token = api_token_issue(user=getattr(fuzz_world, ROLE_USERS[role]))
            tokens[role] = token.key
            return {"headers": {"Authorization": f"Token {token.key}"}}

        def after_call(self, response, case):
            super().after_call(response, case)
            REQUESTS["stateful"] += 1
            seen[f"{case.method.upper()} {case.path} {response.status_code}"] += 1
            if case.path == "/api/v1/applications/" and case.method.upper() == "POST" and response.status_code == 201:
                created.add(str(response.json()["id"]))
            elif case.path.startswith("/api/v1/applications/{id}") and str((case.path_parameters or {}).get("id")) in (
                created
            ):
                seen["used an application filed in the same scenario"] += 1

        def validate_response(self, response, case, additional_checks=None, **kwargs):
            case.validate_response(
                response, checks=[*CHECKS, ensure_resource_availability, use_after_free], recorder=self.recorder
            )

    Workflow.run(settings=settings(max_examples=STATEFUL_EXAMPLES, stateful_step_count=6, **SETTINGS))
    print("STATEFUL", dict(seen.most_common()), sorted(created))
    # The links carried real ids: an application filed in a scenario was then acted on by its id.
    assert created, f"no scenario filed an application: {dict(seen)}"
    assert seen["used an application filed in the same scenario"], dict(seen)


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


# ---------------------------------------------------------------------------
# Hostile input (issue 18 items 5 and 12): what random schema-driven data rarely produces. Every operation gets
# positive examples with one field (a query parameter, a body field or a path parameter) replaced by hostile text —
# a NUL, 10,000 characters, right-to-left marks, emoji, combining marks — or a JSON value nested past the
# parser's limit; the token endpoint gets hostile user names. Same checks: no 5xx, the JSON error on every 4xx.
# ---------------------------------------------------------------------------

HOSTILE_EXAMPLES = int(os.environ.get("SCHEMATHESIS_HOSTILE_EXAMPLES", "6"))
HOSTILE_TEXT = st.one_of(
    st.text(max_size=12).map(lambda text: text + "\x00"),
    st.text(max_size=12).map(lambda text: "\x00" + text),
    st.sampled_from(["x" * 10_000, "名" * 10_000, "9" * 10_000]),
    st.sampled_from(["\u202eadmin\u200f", "\u200e\u200f\u202a\u202b\u202c", "👩‍⚕️🩺", "e\u0301\u0301\u0301", "\ufeff"]),
    st.lists(st.sampled_from(["\x00", "\u202e", "\u200f", "🩺", "名", "a", "\t", "\\u0000"]), min_size=1).map("".join),
)


def _nested(depth: int) -> Any:
    value: Any = "x"
    for _level in range(depth):
        value = [value]
    return value


NESTED_JSON = st.integers(min_value=33, max_value=400).map(_nested)
HOSTILE_USER_NAMES = st.one_of(
    HOSTILE_TEXT,
    st.integers(min_value=140, max_value=300).map(lambda n: "u" * n),
    st.sampled_from([10_000, 50_000]).map(lambda n: "名" * n),
)


def _inject_hostile(case: Any, data: Any) -> str:
    """Replace one field of a positive example by hostile input; returns where, for the report."""
    fields = [("query", name) for name in case.query or {}]
    fields += [("path", name) for name in case.path_parameters or {}]
    if isinstance(case.body, dict):
        fields += [("body", name) for name in case.body]
    where, name = data.draw(st.sampled_from(fields or [("query", "hostile")]))
    json_body = where == "body" and "json" in (case.media_type or "")
    value = data.draw(st.one_of(HOSTILE_TEXT, NESTED_JSON) if json_body else HOSTILE_TEXT)
    if where == "query":
        case.query = {**(case.query or {}), name: value}
    elif where == "path":
        case.path_parameters = {**case.path_parameters, name: value}
    else:
        case.body = {**case.body, name: value}
    return f"{where}:{name}"


HOSTILE_OPERATIONS = [result.ok() for result in schema.get_all_operations()]


@pytest.mark.parametrize("operation", HOSTILE_OPERATIONS, ids=[op.label for op in HOSTILE_OPERATIONS])
def test_hostile_input_in_every_operation(operation, fuzz_world):
    """One hostile field per example, as administrator (who may call every operation)."""

    @settings(max_examples=HOSTILE_EXAMPLES, **SETTINGS)
    @given(case=operation.as_strategy(), data=st.data())
    def run(case: Any, data: Any) -> None:
        _inject_hostile(case, data)
        token = api_token_issue(user=fuzz_world.admin)
        REQUESTS["hostile"] += 1
        case.call_and_validate(headers={"Authorization": f"Token {token.key}"}, checks=CHECKS)

    run()


def test_hostile_user_names_at_the_token_endpoint(fuzz_world):
    """Long, NUL, emoji and right-to-left user names: 400 (or 429 once a name failed five times), never a 5xx."""
    operation = schema["/api/v1/auth/token/"]["POST"]

    @settings(max_examples=HOSTILE_EXAMPLES * 5, **SETTINGS)
    @given(username=HOSTILE_USER_NAMES, password=st.one_of(st.just("wrong"), HOSTILE_TEXT))
    def run(username: str, password: str) -> None:
        case = operation.Case(body={"username": username, "password": password}, media_type="application/json")
        REQUESTS["hostile"] += 1
        response = case.call_and_validate(checks=CHECKS)
        assert response.status_code in (400, 429), (username[:40], response.status_code, response.text[:200])

    run()
