"""Shared API machinery: the one exception handler, pagination and the Idempotency-Key replay."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, connections, router, transaction
from django.http import Http404, QueryDict
from django.http.request import RawPostDataException
from django.utils import timezone
from django.utils.translation import gettext as _
from django_fsm import ConcurrentTransition, TransitionNotAllowed
from rest_framework import exceptions, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from kernel.errors import DomainError
from kernel.models import IdempotencyRecord
from kernel.sql import column_name


class AuthenticatedRequest(Request):
    """The request of an API view behind ``IsAuthenticated`` (the default permission): its user is signed in.
    A type only, never instantiated."""

    user: User


class StandardPagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200

    def get_page_size(self, request: Request) -> int:
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        try:
            value = int(raw)
        except ValueError:
            raise exceptions.ValidationError({"page_size": _("page_size must be a whole number.")})
        if value < 1:
            raise exceptions.ValidationError({"page_size": _("page_size must be at least 1.")})
        return min(value, self.max_page_size)


def _error(code: str, message: Any, details: Any, status_code: int) -> Response:
    return Response({"code": code, "message": str(message), "details": details or {}}, status=status_code)


class IdempotencyConflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.domain_code = code


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Every error is JSON ``{"code", "message", "details"}`` a clerk can act on."""
    if isinstance(exc, IdempotencyConflict):
        return _error(exc.domain_code, exc.detail, {}, exc.status_code)
    if isinstance(exc, DomainError):
        # A service that cannot find the object in the caller's scope says so with code "not_found": 404, like
        # every other out-of-scope id (never a 400 that would read differently from "does not exist").
        status_code = status.HTTP_404_NOT_FOUND if exc.code == "not_found" else exc.status_code
        return _error(exc.code, exc.message, exc.details, status_code)
    if isinstance(exc, (TransitionNotAllowed, ConcurrentTransition)):
        return _error(
            "transition_not_allowed", _("This action is not possible in the application's current state."), {}, 409
        )
    if isinstance(exc, DjangoValidationError):
        return _error("invalid", "; ".join(exc.messages), {"errors": exc.messages}, 400)
    if isinstance(exc, IntegrityError):
        return _error("conflict", _("The change conflicts with existing data; reload and try again."), {}, 409)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        return _error("invalid", _first_message(exc.detail), exc.detail, 400)
    codes = {
        exceptions.NotAuthenticated: "not_authenticated",
        exceptions.AuthenticationFailed: "authentication_failed",
        exceptions.PermissionDenied: "permission_denied",
        exceptions.NotFound: "not_found",
        exceptions.MethodNotAllowed: "method_not_allowed",
        exceptions.UnsupportedMediaType: "unsupported_media_type",
        exceptions.ParseError: "parse_error",
        exceptions.Throttled: "throttled",
        exceptions.NotAcceptable: "not_acceptable",
    }
    # An exception may name its own code (enrollment.authentication.TokenExpired: "token_expired").
    code = getattr(exc, "api_code", None) or next((c for cls, c in codes.items() if isinstance(exc, cls)), "error")
    detail = getattr(exc, "detail", "")
    response.data = {"code": code, "message": str(detail), "details": {}}
    return response


def _first_message(detail: Any) -> str:
    """The first human message in a DRF error tree, prefixed by its field."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            inner = _first_message(value)
            return inner if key == "non_field_errors" else f"{key}: {inner}"
    if isinstance(detail, list) and detail:
        return _first_message(detail[0])
    return str(detail)


# ---------------------------------------------------------------------------
# Idempotency-Key
# ---------------------------------------------------------------------------

IDEMPOTENCY_HEADER = "HTTP_IDEMPOTENCY_KEY"
logger = logging.getLogger(__name__)


def _request_fingerprint(request: Request) -> str:
    digest = hashlib.sha256()
    assert request.method is not None  # a request the server received always has a method
    digest.update(request.method.encode())
    digest.update(request.path.encode())
    content_type = request.content_type or ""
    if content_type.startswith("multipart/"):
        data = request.data
        # The form's fields and files; only an empty body of another multipart type parses to {} (nothing to add).
        fields = data if isinstance(data, QueryDict) else QueryDict()
        for key in sorted(fields.keys()):
            values: list[Any] = fields.getlist(key)  # text, or the uploaded files
            for value in values:
                if hasattr(value, "chunks"):
                    for chunk in value.chunks():
                        digest.update(chunk)
                    value.seek(0)
                else:
                    digest.update(f"{key}={value}".encode())
    else:
        try:
            digest.update(request._request.body)
        except RawPostDataException:
            digest.update(json.dumps(request.data, sort_keys=True, default=str).encode())
    return digest.hexdigest()


class IdempotentPostMixin:
    """Replays the first response of a POST with the same Idempotency-Key and body.

    The key is reserved by inserting its row before the work is done; the unique constraint
    (user, key) is the guarantee, so a concurrent retry sees "in progress" rather than filing twice.
    The reservation of this request is kept on the view (DRF makes one view instance per request).
    """

    _idempotency_record: IdempotencyRecord | None = None

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)  # type: ignore[misc]
        self._idempotency_record = None
        key = request.META.get(IDEMPOTENCY_HEADER)
        if request.method != "POST" or not key or not request.user.is_authenticated:
            return
        if len(key) > 255:
            raise exceptions.ValidationError({"Idempotency-Key": _("The key is longer than 255 characters.")})
        fingerprint = _request_fingerprint(request)
        abandoned_before = timezone.now() - dt.timedelta(seconds=settings.IDEMPOTENCY_IN_PROGRESS_SECONDS)
        for _attempt in range(2):
            try:
                with transaction.atomic():
                    record = IdempotencyRecord.objects.create(
                        user=request.user, key=key, method=request.method, path=request.path, request_hash=fingerprint
                    )
            except IntegrityError:
                existing = IdempotencyRecord.objects.filter(user=request.user, key=key).first()
                if existing is None:
                    continue  # its first request released it meanwhile (a 5xx): reserve it again
                if existing.status_code is None and existing.created_at < abandoned_before:
                    # In progress for longer than any request runs: its process died before it could answer
                    # (or release the key); the key is free again.
                    IdempotencyRecord.objects.filter(pk=existing.pk, status_code__isnull=True).delete()
                    continue
                if existing.request_hash != fingerprint:
                    raise IdempotencyConflict(
                        _("This Idempotency-Key was already used for a different request; use a new key."),
                        "idempotency_key_reused",
                    )
                if existing.status_code is None:
                    break
                raise ReplayResponse(existing)
            else:
                self._idempotency_record = record
                return
        raise IdempotencyConflict(
            _("A request with this Idempotency-Key is still being processed; retry in a moment."),
            "idempotency_in_progress",
        )

    def finalize_response(self, request: Request, response: Response, *args: Any, **kwargs: Any) -> Response:
        response = super().finalize_response(request, response, *args, **kwargs)  # type: ignore[misc]
        record = self._idempotency_record
        if record is not None:
            self._idempotency_record = None
            if response.status_code >= 500:
                # A server fault is not an answer: let the retry do the work again.
                release_idempotency_key(record)
            else:
                try:
                    IdempotencyRecord.objects.filter(pk=record.pk).update(
                        status_code=response.status_code, response_body=getattr(response, "data", None)
                    )
                except BaseException:
                    release_idempotency_key(record)
                    raise
        return response

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, ReplayResponse):
            response = Response(exc.record.response_body, status=exc.record.status_code)
            response["Idempotent-Replayed"] = "true"
            return response
        try:
            return super().handle_exception(exc)  # type: ignore[misc]
        except BaseException:
            # Unhandled (DRF re-raises it and Django answers 500): finalize_response never runs, so the key is
            # released here, or the clinic could never retry this filing.
            record = self._idempotency_record
            if record is not None:
                self._idempotency_record = None
                release_idempotency_key(record)
            raise


def release_idempotency_key(record: IdempotencyRecord) -> None:
    """Delete a key's in-progress reservation, so that a retry does the work.

    Also when the request's connection or transaction is broken (the database connection was killed
    mid-request, a failed statement left the transaction unusable): then the row is deleted over a fresh
    connection of its own. If even that fails the key expires after IDEMPOTENCY_IN_PROGRESS_SECONDS.
    """
    try:
        with transaction.atomic(using=router.db_for_write(IdempotencyRecord)):
            IdempotencyRecord.objects.filter(pk=record.pk, status_code__isnull=True).delete()
        return
    except Exception:  # any failure here means the request's connection cannot be used
        pass
    fresh = connections.create_connection(router.db_for_write(IdempotencyRecord))
    try:
        meta = IdempotencyRecord._meta
        quote = fresh.ops.quote_name
        with fresh.cursor() as cursor:
            cursor.execute(
                f"DELETE FROM {quote(meta.db_table)} WHERE {quote(column_name(IdempotencyRecord, meta.pk.name))} = %s"
                f" AND {quote(column_name(IdempotencyRecord, 'status_code'))} IS NULL",
                [record.pk],
            )
    except Exception:
        logger.exception(
            "Could not release Idempotency-Key record %s; it expires after %s s",
            record.pk,
            settings.IDEMPOTENCY_IN_PROGRESS_SECONDS,
        )
    finally:
        fresh.close()


class ReplayResponse(Exception):
    def __init__(self, record: IdempotencyRecord) -> None:
        super().__init__("replay")
        self.record = record


# ---------------------------------------------------------------------------
# 404 / 500 outside the API views (no route matched, or a crash before DRF answered)
# ---------------------------------------------------------------------------


def not_found(request: Any, exception: Exception | None = None) -> Any:
    """``handler404``: under /api/ the same JSON error shape as every other API error; elsewhere Django's page."""
    from django.http import JsonResponse
    from django.views.defaults import page_not_found

    if request.path.startswith("/api/"):
        return JsonResponse(
            {"code": "not_found", "message": _("There is nothing at this address."), "details": {}}, status=404
        )
    return page_not_found(request, exception)


def server_error(request: Any) -> Any:
    """``handler500``: JSON under /api/ so that clients can always parse the answer; elsewhere Django's page."""
    from django.http import JsonResponse
    from django.views.defaults import server_error as default_server_error

    if request.path.startswith("/api/"):
        return JsonResponse(
            {"code": "server_error", "message": _("Something went wrong on our side; try again later."), "details": {}},
            status=500,
        )
    return default_server_error(request)
