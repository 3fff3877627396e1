"""Thin REST API: roster imports, the assisted-filing worklist, exports, catalogue versions."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.http import HttpResponseBase
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import permissions, status, viewsets
from rest_framework.decorators import action
from rest_framework.generics import get_object_or_404  # malformed ids → 404, not a ValueError → 500
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from enrollment.serializers import ErrorSerializer
from interop import selectors, services
from interop.models import CatalogueImport, FilingState, RowStatus
from interop.serializers import (
    AssistedFilingSerializer,
    CatalogueApplySerializer,
    CatalogueImportSerializer,
    CatalogueUploadSerializer,
    DismissSerializer,
    ExportQuerySerializer,
    RosterImportSerializer,
    RosterRowSerializer,
    RosterUploadSerializer,
)
from kernel import roles
from kernel.api_support import AuthenticatedRequest, IdempotentPostMixin
from kernel.errors import InvalidInput
from kernel.input_guard import DepthLimitedJSONParser  # a nesting limit: too deep is a 400
from kernel.tabular import XLSX_TYPE, tabular_response

ERRORS = {400: ErrorSerializer, 403: ErrorSerializer, 404: ErrorSerializer, 409: ErrorSerializer}
FILE_RESPONSES = {(200, "text/csv"): OpenApiTypes.BINARY, (200, XLSX_TYPE): OpenApiTypes.BINARY}
FILE_FORMAT = OpenApiParameter("file_format", str, enum=["csv", "xlsx"], description="csv (default) or xlsx")


def _file_format(request: Request) -> str:
    value = request.query_params.get("file_format", "csv")
    if value not in ("csv", "xlsx"):
        raise InvalidInput(_("file_format must be csv or xlsx."), details={"field": "file_format"})
    return value


class RosterImportViewSet(IdempotentPostMixin, viewsets.ReadOnlyModelViewSet):
    """Upload a roster (dry run queued at once), follow its progress, read the report, commit it."""

    serializer_class = RosterImportSerializer
    parser_classes = [MultiPartParser, FormParser, DepthLimitedJSONParser]

    def get_queryset(self) -> QuerySet:
        return selectors.roster_imports_visible_to(self.request.user)

    @extend_schema(request=RosterUploadSerializer, responses={202: RosterImportSerializer, **ERRORS})
    def create(self, request: AuthenticatedRequest) -> Response:
        serializer = RosterUploadSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        upload = serializer.validated_data["file"]
        roster = services.roster_import_create(name=upload.name, content=upload.read(), actor=request.user)
        return Response(RosterImportSerializer(self.get_queryset().get(pk=roster.pk)).data, status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses={202: RosterImportSerializer, **ERRORS})
    @action(detail=True, methods=["post"])
    def commit(self, request: AuthenticatedRequest, pk: str | None = None) -> Response:
        roster = get_object_or_404(self.get_queryset(), pk=pk)
        services.roster_import_request_commit(import_id=roster.pk, actor=request.user)
        return Response(RosterImportSerializer(self.get_queryset().get(pk=roster.pk)).data, status.HTTP_202_ACCEPTED)

    @extend_schema(
        parameters=[OpenApiParameter("status", str, enum=RowStatus.values)],
        responses={200: RosterRowSerializer(many=True), **ERRORS},
    )
    @action(detail=True, methods=["get"])
    def rows(self, request: Request, pk: str | None = None) -> Response:
        roster = get_object_or_404(self.get_queryset(), pk=pk)
        rows = selectors.roster_rows(roster, request.query_params.get("status") or None)
        page = self.paginate_queryset(rows)
        return self.get_paginated_response(RosterRowSerializer(page, many=True).data)

    @extend_schema(parameters=[FILE_FORMAT], responses={**FILE_RESPONSES, **ERRORS})
    @action(detail=True, methods=["get"])
    def report(self, request: Request, pk: str | None = None) -> HttpResponseBase:
        roster = get_object_or_404(self.get_queryset(), pk=pk)
        return tabular_response(
            selectors.ROSTER_REPORT_HEADER,
            selectors.roster_report_rows(roster),
            file_format=_file_format(request),
            filename=f"roster-{roster.pk}-report",
        )


class AssistedFilingViewSet(IdempotentPostMixin, viewsets.ReadOnlyModelViewSet):
    """The hospital's worklist (合办帮办): file with one click, or dismiss with a reason."""

    serializer_class = AssistedFilingSerializer

    def get_queryset(self) -> QuerySet:
        queryset = selectors.assisted_filings_visible_to(self.request.user)
        state = self.request.query_params.get("state")
        if state:
            if state not in FilingState.values:
                raise InvalidInput(_("Unknown state “%(state)s”.") % {"state": state}, details={"field": "state"})
            queryset = queryset.filter(state=state)
        return queryset

    @extend_schema(
        parameters=[OpenApiParameter("state", str, enum=FilingState.values)],
        responses={200: AssistedFilingSerializer(many=True)},
    )
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().list(request, *args, **kwargs)

    @extend_schema(request=None, responses={200: AssistedFilingSerializer, **ERRORS})
    @action(detail=True, methods=["post"], url_path="file")
    def file(self, request: AuthenticatedRequest, pk: str | None = None) -> Response:
        filing = get_object_or_404(self.get_queryset(), pk=pk)
        filing = services.assisted_filing_file(filing_id=filing.pk, actor=request.user)
        return Response(AssistedFilingSerializer(filing).data)

    @extend_schema(request=DismissSerializer, responses={200: AssistedFilingSerializer, **ERRORS})
    @action(detail=True, methods=["post"])
    def dismiss(self, request: AuthenticatedRequest, pk: str | None = None) -> Response:
        filing = get_object_or_404(self.get_queryset(), pk=pk)
        serializer = DismissSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        filing = services.assisted_filing_dismiss(
            filing_id=filing.pk, actor=request.user, reason=serializer.validated_data["reason"]
        )
        return Response(AssistedFilingSerializer(filing).data)


class EnrollmentExportView(APIView):
    """Approved and expiring enrollments of a region and period, streamed as CSV or XLSX."""

    @extend_schema(
        parameters=[ExportQuerySerializer],
        responses={**FILE_RESPONSES, **ERRORS},
    )
    def get(self, request: AuthenticatedRequest) -> HttpResponseBase:
        serializer = ExportQuerySerializer(data=request.query_params)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        export = selectors.export_request(
            viewer=request.user,
            region_code=data["region"],
            period=data["period"],
            shape=data["shape"],
            basis=data["basis"],
        )
        # Through the service: an export with full ID numbers writes the access log as its rows go out.
        header, rows = services.export_enrollments(viewer=request.user, request=export)
        return tabular_response(
            header,
            rows,
            file_format=data["file_format"],
            filename=f"enrollments-{export.region.code}-{export.period}-{export.shape}",
        )


class AdministratorsOnly(permissions.BasePermission):
    message = _("Only administrators maintain the disease catalogue.")

    def has_permission(self, request: Request, view: Any) -> bool:
        return roles.has_any_role(request.user, roles.ADMIN)


class CatalogueImportViewSet(IdempotentPostMixin, viewsets.ReadOnlyModelViewSet):
    """Upload a new catalogue version, read its diff, apply it (administrators)."""

    serializer_class = CatalogueImportSerializer
    parser_classes = [MultiPartParser, FormParser, DepthLimitedJSONParser]

    permission_classes = [permissions.IsAuthenticated, AdministratorsOnly]
    queryset = CatalogueImport.objects.all()

    @extend_schema(request=CatalogueUploadSerializer, responses={201: CatalogueImportSerializer, **ERRORS})
    def create(self, request: AuthenticatedRequest) -> Response:
        serializer = CatalogueUploadSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        upload = serializer.validated_data["file"]
        record = services.catalogue_import_create(
            name=upload.name,
            content=upload.read(),
            actor=request.user,
            version=serializer.validated_data.get("version") or None,
        )
        return Response(CatalogueImportSerializer(record).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=CatalogueApplySerializer, responses={200: CatalogueImportSerializer, **ERRORS})
    @action(detail=True, methods=["post"])
    def apply(self, request: AuthenticatedRequest, pk: str | None = None) -> Response:
        record = get_object_or_404(self.get_queryset(), pk=pk)
        serializer = CatalogueApplySerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.catalogue_import_apply(
            import_id=record.pk,
            actor=request.user,
            terminate_enrollments=serializer.validated_data["terminate_enrollments"],
        )
        record.refresh_from_db()
        return Response(CatalogueImportSerializer(record).data)
