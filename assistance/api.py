"""Thin REST API: settlement batches (a HIS or the platform side) and the high-cost alert worklist."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.generics import get_object_or_404
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from assistance import selectors, services
from assistance.models import AlertState, HighCostAlert
from assistance.serializers import (
    AlertActionSerializer,
    AlertSerializer,
    SettlementBatchResultSerializer,
    SettlementBatchSerializer,
)
from enrollment.serializers import ErrorSerializer
from kernel.api_support import AuthenticatedRequest, IdempotentPostMixin
from kernel.errors import NotPermitted

ERRORS = {400: ErrorSerializer, 403: ErrorSerializer, 404: ErrorSerializer, 409: ErrorSerializer}


class SettlementBatchView(IdempotentPostMixin, APIView):
    """POST a batch of settlements (at most 1000 rows). Each row is answered: ``new`` (stored, assistance
    computed), ``duplicate`` (that serial number is already recorded with the same data) or ``invalid`` (with a
    reason code). Clinic staff send their own institution's settlements; centre officers those of persons insured
    in their region; administrators any."""

    @extend_schema(request=SettlementBatchSerializer, responses={200: SettlementBatchResultSerializer, **ERRORS})
    def post(self, request: AuthenticatedRequest) -> Response:
        if not selectors.may_send_settlements(request.user):
            raise NotPermitted()
        serializer = SettlementBatchSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        result = services.settlements_record(rows=serializer.validated_data["rows"], actor=request.user)
        return Response(
            {
                "created": result.created,
                "counts": result.counts,
                "rows": [
                    {
                        "line": r.line,
                        "serial_number": r.serial_number,
                        "status": r.status,
                        "reason_code": r.reason_code,
                        "message": str(r.message),
                    }
                    for r in result.rows
                ],
            }
        )


class AlertViewSet(IdempotentPostMixin, viewsets.ReadOnlyModelViewSet):
    """High-cost alerts of the viewer's region (centre officers) or all (administrators): open work first."""

    serializer_class = AlertSerializer
    queryset = HighCostAlert.objects.none()  # the schema's model; get_queryset scopes every request

    def get_queryset(self) -> QuerySet:
        user = self.request.user
        if getattr(self, "swagger_fake_view", False):
            return HighCostAlert.objects.none()
        if not selectors.may_work_assistance(user):
            raise NotPermitted()
        if self.action != "list":
            return selectors.alerts_visible_to(user)
        state = self.request.query_params.get("state", "")
        return selectors.alert_worklist(user, state=state if state in AlertState.values else "")

    @extend_schema(
        parameters=[OpenApiParameter("state", str, enum=AlertState.values, description="default: all but closed")]
    )
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().list(request, *args, **kwargs)

    def _act(self, request: AuthenticatedRequest, pk: str, name: str) -> Response:
        alert = get_object_or_404(self.get_queryset(), pk=pk)
        serializer = AlertActionSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        alert = services.alert_act(
            alert_id=alert.pk, action=name, actor=request.user, note=serializer.validated_data["note"]
        )
        return Response(AlertSerializer(alert).data)

    @extend_schema(request=AlertActionSerializer, responses={200: AlertSerializer, **ERRORS})
    @action(detail=True, methods=["post"])
    def acknowledge(self, request: AuthenticatedRequest, pk: str) -> Response:
        return self._act(request, pk, "acknowledge")

    @extend_schema(request=AlertActionSerializer, responses={200: AlertSerializer, **ERRORS})
    @action(detail=True, methods=["post"])
    def refer(self, request: AuthenticatedRequest, pk: str) -> Response:
        return self._act(request, pk, "refer")

    @extend_schema(request=AlertActionSerializer, responses={200: AlertSerializer, **ERRORS})
    @action(detail=True, methods=["post"])
    def close(self, request: AuthenticatedRequest, pk: str) -> Response:
        return self._act(request, pk, "close")
