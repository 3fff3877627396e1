"""Thin REST API for reviews under /api/v1/: batches, the reviewer's queue, decisions, immediate approval.

Every object is looked up through a scoped selector, so an id outside the caller's region is a 404.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from typing import Any

import django_filters
from django.db.models import QuerySet
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.generics import get_object_or_404  # malformed ids → 404, not a ValueError → 500
from rest_framework.request import Request
from rest_framework.response import Response

from enrollment import selectors as enrollment_selectors
from enrollment.serializers import ApplicationDetailSerializer, ErrorSerializer
from kernel.api_support import AuthenticatedRequest, IdempotentPostMixin
from kernel.errors import InvalidInput
from reviews import selectors, services
from reviews.models import BatchState, Decision, ReviewBatch, ReviewItem
from reviews.serializers import (
    ApproveSerializer,
    BulkDecisionSerializer,
    BulkResultSerializer,
    ClaimSerializer,
    ImmediateApprovalSerializer,
    QueuePageSerializer,
    RejectSerializer,
    ReleaseResultSerializer,
    ReleaseSerializer,
    ReturnSerializer,
    ReviewBatchDetailSerializer,
    ReviewBatchSerializer,
    ReviewItemDetailSerializer,
    ReviewItemSerializer,
)

ERRORS = {400: ErrorSerializer, 403: ErrorSerializer, 404: ErrorSerializer, 409: ErrorSerializer}


class BatchFilter(django_filters.FilterSet):
    period = django_filters.CharFilter()
    state = django_filters.ChoiceFilter(choices=BatchState.choices)
    region = django_filters.CharFilter(field_name="region__code")

    class Meta:
        model = ReviewBatch
        fields = ["period", "state", "region"]


class BatchViewSet(viewsets.ReadOnlyModelViewSet):
    """Monthly review batches of the caller's region; the detail carries the batch page's figures."""

    filterset_class = BatchFilter

    def get_queryset(self) -> QuerySet:
        return selectors.batches_visible_to(self.request.user).order_by("-period", "region__code", "id")

    def get_serializer_class(self) -> type:
        return ReviewBatchDetailSerializer if self.action == "retrieve" else ReviewBatchSerializer

    @extend_schema(responses={200: ReviewBatchDetailSerializer, **ERRORS})
    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        batch = self.get_object()
        context = {**self.get_serializer_context(), "stats": selectors.batch_counts(batch)}
        return Response(ReviewBatchDetailSerializer(batch, context=context).data)


def encode_cursor(item: ReviewItem) -> str:
    raw = f"{item.queued_at.isoformat()}|{item.pk}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[dt.datetime, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, pk = raw.rsplit("|", 1)
        queued_at, item_id = dt.datetime.fromisoformat(stamp), int(pk)
        if queued_at.tzinfo is None or not 0 <= item_id < 2**63:
            raise ValueError(cursor)
        return queued_at, item_id
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidInput(_("The cursor is not valid; start again from the first page."), details={"field": "cursor"})


class QueueViewSet(IdempotentPostMixin, viewsets.GenericViewSet):
    """The reviewer's queue: items of their region waiting at a stage they hold, oldest first."""

    serializer_class = ReviewItemSerializer
    pagination_class = None

    def get_queryset(self) -> QuerySet:
        return selectors.queue_for(self.request.user)

    @extend_schema(
        parameters=[
            OpenApiParameter("cursor", str, description="the `next` value of the previous page"),
            OpenApiParameter("limit", int, description="items per page, 1–200 (default 50)"),
            OpenApiParameter("mine", bool, description="only the items you have claimed"),
            OpenApiParameter("stage", str, description="only this stage"),
        ],
        responses={200: QueuePageSerializer, **ERRORS},
    )
    def list(self, request: Request) -> Response:
        params = request.query_params
        try:
            limit = int(params.get("limit", 50))
        except ValueError:
            raise InvalidInput(_("limit must be a whole number."), details={"field": "limit"})
        if not 1 <= limit <= 200:
            raise InvalidInput(_("limit must be between 1 and 200."), details={"field": "limit"})
        after = decode_cursor(params["cursor"]) if params.get("cursor") else None
        mine = params.get("mine", "").lower() in {"1", "true", "yes"}
        items = selectors.queue_page(
            request.user, after=after, limit=limit + 1, mine=mine, stage=params.get("stage") or None
        )
        more = len(items) > limit
        items = items[:limit]
        return Response(
            {
                "next": encode_cursor(items[-1]) if more else None,
                "results": ReviewItemSerializer(items, many=True).data,
            }
        )

    @extend_schema(request=ClaimSerializer, responses={200: ReviewItemSerializer(many=True), **ERRORS})
    @action(detail=False, methods=["post"])
    def claim(self, request: AuthenticatedRequest) -> Response:
        serializer = ClaimSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        items = services.queue_claim(
            actor=request.user,
            count=serializer.validated_data["count"],
            stage=serializer.validated_data.get("stage"),
        )
        rows = selectors.items_by_ids([item.pk for item in items])
        return Response(ReviewItemSerializer(rows, many=True).data)

    @extend_schema(request=ReleaseSerializer, responses={200: ReleaseResultSerializer, **ERRORS})
    @action(detail=False, methods=["post"])
    def release(self, request: AuthenticatedRequest) -> Response:
        serializer = ReleaseSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        released = services.queue_release(actor=request.user, item_ids=serializer.validated_data.get("items"))
        return Response({"released": released})


class ReviewItemViewSet(IdempotentPostMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """One item with its stage decisions; POST approve / reject / return on a claimed item, or in bulk."""

    serializer_class = ReviewItemDetailSerializer

    def get_queryset(self) -> QuerySet:
        return selectors.items_visible_to(self.request.user)

    def _item(self, pk: Any) -> ReviewItem:
        return get_object_or_404(self.get_queryset(), pk=pk)

    def _detail(self, item_id: int) -> Response:
        return self._render(self._item(item_id))

    def _render(self, item: ReviewItem) -> Response:
        context = {"decisions": selectors.item_decisions(item)}
        return Response(ReviewItemDetailSerializer(item, context=context).data)

    @extend_schema(responses={200: ReviewItemDetailSerializer, **ERRORS})
    def retrieve(self, request: Request, pk: str | None = None) -> Response:
        return self._render(self._item(pk))

    @extend_schema(request=ApproveSerializer, responses={200: ReviewItemDetailSerializer, **ERRORS})
    @action(detail=True, methods=["post"])
    def approve(self, request: AuthenticatedRequest, pk: str | None = None) -> Response:
        item = self._item(pk)
        serializer = ApproveSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.review_decide(
            item_id=item.pk, actor=request.user, decision=Decision.APPROVE, reason=serializer.validated_data["reason"]
        )
        return self._detail(item.pk)

    @extend_schema(request=RejectSerializer, responses={200: ReviewItemDetailSerializer, **ERRORS})
    @action(detail=True, methods=["post"])
    def reject(self, request: AuthenticatedRequest, pk: str | None = None) -> Response:
        item = self._item(pk)
        serializer = RejectSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        services.review_decide(
            item_id=item.pk,
            actor=request.user,
            decision=Decision.REJECT,
            reason_code=data["reason_code"],
            reason=data["reason"],
            two_diseases=data["two_diseases"],
        )
        return self._detail(item.pk)

    @extend_schema(request=ReturnSerializer, responses={200: ReviewItemDetailSerializer, **ERRORS})
    @action(detail=True, methods=["post"], url_path="return")
    def return_for_information(self, request: AuthenticatedRequest, pk: str | None = None) -> Response:
        item = self._item(pk)
        serializer = ReturnSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.review_decide(
            item_id=item.pk,
            actor=request.user,
            decision=Decision.RETURN,
            reason=serializer.validated_data["missing"],
            supplement_codes=serializer.validated_data["supplement_codes"],
        )
        return self._detail(item.pk)

    @extend_schema(request=BulkDecisionSerializer, responses={200: BulkResultSerializer, **ERRORS})
    @action(detail=False, methods=["post"], url_path="bulk-decide")
    def bulk_decide(self, request: AuthenticatedRequest) -> Response:
        serializer = BulkDecisionSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        visible = set(self.get_queryset().filter(pk__in=data["items"]).values_list("pk", flat=True))
        missing = [pk for pk in data["items"] if pk not in visible]
        result = services.review_decide_bulk(
            item_ids=[pk for pk in data["items"] if pk in visible],
            actor=request.user,
            decision=data["decision"],
            reason_code=data["reason_code"],
            reason=data["reason"],
            two_diseases=data["two_diseases"],
        )
        failed = result.failed + [
            {"item": pk, "code": "not_found", "message": _("No such item in your region's review.")} for pk in missing
        ]
        return Response({"decided": result.decided, "failed": failed})


class ImmediateApprovalViewSet(IdempotentPostMixin, viewsets.GenericViewSet):
    """即时办结: a center officer approves a diagnosed application of an immediate-mode disease."""

    serializer_class = ImmediateApprovalSerializer

    def get_queryset(self) -> QuerySet:
        return enrollment_selectors.applications_visible_to(self.request.user)

    @extend_schema(request=ImmediateApprovalSerializer, responses={200: ApplicationDetailSerializer, **ERRORS})
    def create(self, request: AuthenticatedRequest) -> Response:
        serializer = ImmediateApprovalSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        application = get_object_or_404(self.get_queryset(), pk=serializer.validated_data["application"])
        services.application_approve_immediately(
            application_id=application.pk, actor=request.user, reason=serializer.validated_data["reason"]
        )
        fresh = self.get_queryset().prefetch_related("documents", "audit_entries").get(pk=application.pk)
        return Response(ApplicationDetailSerializer(fresh).data, status=status.HTTP_200_OK)
