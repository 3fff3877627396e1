"""A NUL character in every parameter of every route (issue 18 item 5): always a 400 naming it, never a 5xx.

Routes are discovered from the URL resolver as in test_permission_matrix.py (a new endpoint is walked without
anyone listing it); for the API, each operation's query parameters and string body fields come from the
OpenAPI schema the app serves, and the rest of the request is the permission matrix's valid one, so that the
NUL is the only thing wrong. On PostgreSQL a NUL that reached the database was a 500 (psycopg's DataError:
"PostgreSQL text fields cannot contain NUL (0x00) bytes"); on SQLite it was stored.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.db import transaction
from django.test import Client

from tests.security.test_permission_matrix import MULTIPART, _make_world_objects, bodies, concrete, discover

HOSTILE = "x\x00y"


def api_schema() -> dict[str, Any]:
    return Client().get("/api/schema/", HTTP_ACCEPT="application/json").json()


def resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """Follow ``$ref`` and single-entry ``allOf``/``oneOf`` (how drf-spectacular writes enums) to the definition."""
    while True:
        if "$ref" in node:
            node = schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]]
        elif len(node.get("allOf", node.get("oneOf", []))) >= 1 and "type" not in node:
            node = (node.get("allOf") or node.get("oneOf"))[0]
        else:
            return node


def string_fields(schema: dict[str, Any], operation: dict[str, Any]) -> list[tuple[str, str, Any]]:
    """(where, name, hostile value) for each query parameter and each string (or list of strings) body field."""
    fields: list[tuple[str, str, Any]] = [
        ("query", parameter["name"], HOSTILE)
        for parameter in operation.get("parameters", [])
        if parameter["in"] == "query"
    ]
    content = operation.get("requestBody", {}).get("content", {})
    for media in ("application/json", "multipart/form-data"):
        if media not in content:
            continue
        body = resolve(schema, content[media]["schema"])
        for name, prop in body.get("properties", {}).items():
            prop = resolve(schema, prop)
            if prop.get("type") == "string" and prop.get("format") != "binary":
                fields.append(("body", name, HOSTILE))
            elif prop.get("type") == "array" and resolve(schema, prop.get("items", {})).get("type") == "string":
                fields.append(("body", name, [HOSTILE]))
        break
    return fields


def send(client: Client, method: str, route: str, path: str, query: dict[str, Any], body: Any) -> Any:
    if method == "GET":
        return client.get(path, {**(body or {}), **query})
    if query:
        path += "?" + "&".join(f"{key}={value}" for key, value in query.items()).replace("\x00", "%00")
    if route in MULTIPART or not path.startswith("/api/"):
        return client.post(path, body or {})
    return client.post(path, data=json.dumps(body or {}), content_type="application/json")


def assert_refused(response: Any, path: str, field: str) -> None:
    assert response.status_code < 500, f"{path} {field}: server error {response.status_code}"
    assert response.status_code == 400, f"{path} {field}: {response.status_code} {response.content[:300]!r}"
    if path.startswith("/api/"):
        error = response.json()
        assert error["code"] == "invalid" and error["details"]["field"] == field, (path, error)


def test_a_nul_in_any_parameter_of_any_route_is_400(world):
    objects = _make_world_objects(world)
    valid = bodies(world, objects["same"])
    schema = api_schema()
    client = Client()
    client.force_login(world.admin)  # may call every route: the NUL, not the permission, must refuse
    sent = 0
    for route in discover():
        path, _kind = concrete(route.path, objects["same"])
        path = path.replace("__INSTITUTION__", world.county.code)
        for method in route.methods or ("GET", "POST"):
            if method not in ("GET", "POST"):
                continue
            operation = schema["paths"].get(route.path.replace("{pk}", "{id}"), {}).get(method.lower())
            fields = string_fields(schema, operation) if operation else []
            # Any route, in the schema or not (web pages, health, the schema itself): an unknown query parameter.
            fields.append(("query", "hostile", HOSTILE))
            for where, name, value in fields:
                body = valid.get((method, route.path))
                body = body() if callable(body) else dict(body or {})
                query = {name: value} if where == "query" else {}
                if where == "body":
                    body[name] = value
                with transaction.atomic():
                    response = send(client, method, route.path, path, query, body)
                    transaction.set_rollback(True)
                assert_refused(response, path, name + ("[0]" if isinstance(value, list) else ""))
                sent += 1
            if "{pk}" in route.path or "{code}" in route.path:  # and in the path itself, where an id or a code goes
                nul_path, _kind = concrete(
                    route.path.replace("{pk}", "1%00").replace("{code}", "M03%00"), objects["same"]
                )
                with transaction.atomic():
                    response = send(client, method, route.path, nul_path, {}, None)
                    transaction.set_rollback(True)
                assert_refused(response, nul_path, "path")
                sent += 1
    print(f"hostile input: {sent} requests with a NUL")
    assert sent > 200


@pytest.mark.parametrize("where", ["query", "json", "form"])
def test_the_refusal_names_the_field_for_a_clerk(world, where):
    client = Client()
    client.force_login(world.clerk)
    if where == "query":
        response = client.get("/api/v1/applications/", {"disease": "M03\x00"})
    elif where == "json":
        body = json.dumps({"reason": "moved\x00away"})
        response = client.post("/api/v1/applications/1/withdraw/", data=body, content_type="application/json")
    else:
        response = client.post("/api/v1/applications/1/withdraw/", {"reason": "moved\x00away"})
    field = "disease" if where == "query" else "reason"
    assert response.status_code == 400
    assert response.json() == {
        "code": "invalid",
        "message": response.json()["message"],
        "details": {"field": field},
    }
    assert field in response.json()["message"] and "NUL" in response.json()["message"]
