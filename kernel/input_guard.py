"""Hostile input that must be refused before it reaches a view (issue 18, item 5).

Two guards, each in one place for every view (and the user-name limit of the two login forms):

- ``RejectNulInputMiddleware``: a NUL character (U+0000) in any text the client sends — the path, a
  query parameter, a header, a cookie, a form field (urlencoded or multipart, also an upload's file name)
  or a string anywhere in a JSON body (keys too) — answers **400** naming the field. PostgreSQL cannot
  store NUL in text (psycopg raises ``DataError``: a 500), and no legitimate input carries one. Under
  ``/api/`` the answer is the API's JSON error ``{"code": "invalid", "message", "details": {"field"}}``;
  elsewhere a short page.
- ``DepthLimitedJSONParser`` (``DEFAULT_PARSER_CLASSES``): a JSON body nested deeper than
  ``MAX_JSON_DEPTH`` answers 400 ``parse_error``; Python's decoder would otherwise hit the recursion limit
  (``RecursionError``: a 500) on a few thousand ``[``, and stay slow and deep below it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from typing import Any

from django.db.models import Model
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.utils.html import escape
from django.utils.translation import gettext as _
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from kernel.sql import model_field

# No request body of this API comes anywhere near it (the deepest is a list of objects: 3).
MAX_JSON_DEPTH = 32
NUL = "\x00"
_JSON_NUL_ESCAPE = re.compile(rb"\\u0000", re.IGNORECASE)
FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")  # what Django parses into request.POST


def username_max_length() -> int:
    """The longest user name an account can have (150 for Django's user).

    The API token endpoint and the web login refuse a longer one before ``authenticate()``: django-axes
    records every failed login with its user name in a 255-character column, and a longer one made the
    login a 500 on PostgreSQL (issue 18, item 12).
    """
    from django.contrib.auth import get_user_model

    model = get_user_model()
    return model_field(model, model.USERNAME_FIELD).max_length or 150


def field_max_length(model: type[Model], name: str) -> int:
    """The ``max_length`` of the model's field ``name`` (a field without one here is a programming error)."""
    limit = model_field(model, name).max_length
    assert limit is not None, f"{model.__name__}.{name} has no max_length"
    return limit


def json_depth(value: Any) -> int:
    """How deeply containers nest in ``value`` (a scalar is 0, ``[]`` is 1); iterative, never recursive."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Iterable[Any] = item.values()
        elif isinstance(item, list):
            children = item
        else:
            deepest = max(deepest, depth)
            continue
        deepest = max(deepest, depth + 1)
        stack.extend((child, depth + 1) for child in children)
    return deepest


def find_nul(value: Any, path: str = "") -> str | None:
    """The path (``items[2].name``) of the first string in ``value`` — key or value — holding a NUL, or None."""
    stack: list[tuple[Any, str]] = [(value, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, str):
            if NUL in item:
                return where or "body"
        elif isinstance(item, dict):
            for key, child in item.items():
                name = f"{where}.{key}" if where else str(key)
                if isinstance(key, str) and NUL in key:
                    return name
                stack.append((child, name))
        elif isinstance(item, (list, tuple)):
            stack.extend((child, f"{where}[{index}]") for index, child in enumerate(item))
    return None


class DepthLimitedJSONParser(JSONParser):
    """DRF's JSON parser with a nesting limit: too deep is the client's error (400), not a RecursionError."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            data = None
            too_deep = True
        else:
            too_deep = json_depth(data) > MAX_JSON_DEPTH
        if too_deep:
            raise ParseError(_("The JSON body is nested more than %(max)d levels deep.") % {"max": MAX_JSON_DEPTH})
        return data


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


class RejectNulInputMiddleware:
    """400 for a NUL character in any text input; see the module docstring.

    Placed before the session, CSRF and authentication middleware, so that nothing reads the input first.
    Reading ``request.POST`` here is what the CSRF middleware does next anyway; DRF then takes the parsed
    form from the request. A form body that cannot be parsed is left for the view to refuse (under /api/ it
    is answered here as DRF would: 400 ``parse_error``).
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            field = self.offending_field(request)
        except _UnparseableForm as exc:
            if request.path_info.startswith("/api/"):
                return _api_error("parse_error", _("The form data could not be read: %(error)s") % {"error": exc}, {})
            field = None
        if field is not None:
            return self.refuse(request, field.replace(NUL, "\\0"))  # a NUL in a field's name is shown as \0
        return self.get_response(request)

    def offending_field(self, request: HttpRequest) -> str | None:
        if NUL in request.path_info:
            return "path"
        for key, values in request.GET.lists():
            if NUL in key or any(NUL in value for value in values):
                return key
        for key, value in request.META.items():
            if key.startswith("HTTP_") and isinstance(value, str) and NUL in value:
                return key[5:].replace("_", "-").title()
        for key, value in request.COOKIES.items():
            if NUL in key or NUL in value:
                return "Cookie"
        if request.method == "POST" and request.content_type in FORM_TYPES:
            try:
                form, files = request.POST, request.FILES
            except Exception as exc:  # whatever the parser raised, the body is unreadable
                raise _UnparseableForm(exc) from exc
            for key, values in form.lists():
                if NUL in key or any(NUL in value for value in values):
                    return key
            for key, uploads in files.lists():
                if NUL in key or any(NUL in (upload.name or "") for upload in uploads):
                    return key
        elif _is_json(request.content_type or ""):
            return self._json_field(request)
        return None

    @staticmethod
    def _json_field(request: HttpRequest) -> str | None:
        try:
            body = request.body
        except Exception:  # too large or unreadable: the parser answers that
            return None
        # A NUL in JSON text is spelt \u0000 (a raw NUL byte is not valid JSON: the parser refuses it).
        if not _JSON_NUL_ESCAPE.search(body):
            return None
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):
            return None  # malformed or too deep: the parser answers that
        return find_nul(data)

    @staticmethod
    def refuse(request: HttpRequest, field: str) -> HttpResponse:
        message = _("%(field)s: text may not contain NUL characters (U+0000).") % {"field": field}
        if request.path_info.startswith("/api/"):
            return _api_error("invalid", message, {"field": field})
        return HttpResponseBadRequest(
            f"<!doctype html><title>400</title><h1>400</h1><p>{escape(message)}</p>",
            content_type="text/html; charset=utf-8",
        )


class _UnparseableForm(Exception):
    pass


def _api_error(code: str, message: str, details: dict[str, Any]) -> HttpResponse:
    return JsonResponse({"code": code, "message": message, "details": details}, status=400)
