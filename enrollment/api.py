"""Thin REST API under /api/v1/: validate, call one selector or service, serialise."""

from __future__ import annotations

from typing import Any

import django_filters
from django.contrib.auth import authenticate
from django.db.models import Prefetch, Q, QuerySet
from django.shortcuts import get_object_or_404
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, permissions, status, viewsets
from rest_framework.authtoken.models import Token
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from enrollment import selectors, services
from enrollment.api_support import IdempotentPostMixin
from enrollment.errors import InvalidInput, NotPermitted
from enrollment.idnumbers import parse_id_number
from enrollment.models import Application, AuditEntry, Disease, Institution, State
from enrollment.serializers import (
    ApplicationCreateSerializer,
    ApplicationDetailSerializer,
    ApplicationListSerializer,
    DiagnoseSerializer,
    DiseaseSerializer,
    DocumentSerializer,
    DocumentUploadSerializer,
    ErrorSerializer,
    InstitutionSerializer,
    PersonListSerializer,
    PersonSerializer,
    PersonWriteSerializer,
    ReasonSerializer,
    TerminateSerializer,
    TokenRequestSerializer,
    TokenResponseSerializer,
)

ERRORS = {400: ErrorSerializer, 403: ErrorSerializer, 404: ErrorSerializer, 409: ErrorSerializer}


class TokenView(APIView):
    """POST {"username", "password"} → {"token"}; DELETE revokes the caller's token."""

    permission_classes = [permissions.AllowAny]
    authentication_classes: list[Any] = []

    @extend_schema(request=TokenRequestSerializer, responses={200: TokenResponseSerializer, **ERRORS})
    def post(self, request: Request) -> Response:
        serializer = TokenRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = authenticate(
            request._request,
            username=serializer.validated_data["username"],
            password=serializer.validated_data["password"],
        )
        if user is None or not user.is_active:
            raise InvalidInput(_("Wrong user name or password."), code="authentication_failed")
        token, _created = Token.objects.get_or_create(user=user)
        return Response({"token": token.key})


class TokenRevokeView(APIView):
    @extend_schema(request=None, responses={204: None})
    def delete(self, request: Request) -> Response:
        Token.objects.filter(user=request.user).delete()
        return Response(status=status.HTTP_204_NO_CONTENT)


class PersonViewSet(IdempotentPostMixin, mixins.ListModelMixin, viewsets.GenericViewSet):
    """Look a person up by 身份证号 (``?id_number=``), register or update one."""

    serializer_class = PersonListSerializer

    def get_queryset(self) -> QuerySet:
        return selectors.persons_visible_to(self.request.user).order_by("id")

    @extend_schema(
        parameters=[OpenApiParameter("id_number", str, required=True, description="18-character 身份证号")],
        responses={200: PersonSerializer, **ERRORS},
    )
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        raw = request.query_params.get("id_number")
        if not raw:
            raise InvalidInput(_("Give ?id_number= to look a person up."), details={"field": "id_number"})
        parsed = parse_id_number(raw)
        person = selectors.person_by_id_number(request.user, parsed.number)
        if person is None:
            return Response(
                {
                    "code": "not_found",
                    "message": _("No person with this ID number is registered yet."),
                    "details": {"birth_date": parsed.birth_date.isoformat(), "sex": parsed.sex},
                },
                status=status.HTTP_404_NOT_FOUND,
            )
        return Response(PersonSerializer(person).data)

    @extend_schema(request=PersonWriteSerializer, responses={201: PersonSerializer, **ERRORS})
    def create(self, request: Request) -> Response:
        serializer = PersonWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        if not selectors.user_institution(request.user) and not request.user.is_superuser:
            raise NotPermitted(_("Only staff of an institution register persons."))
        person = services.person_register(actor=request.user, **serializer.validated_data)
        return Response(PersonSerializer(person).data, status=status.HTTP_201_CREATED)


class DiseaseViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = DiseaseSerializer
    lookup_field = "code"
    pagination_class = None

    def get_queryset(self) -> QuerySet:
        return Disease.objects.prefetch_related("exclusive_with").order_by("code")


class InstitutionViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = InstitutionSerializer
    lookup_field = "code"

    def get_queryset(self) -> QuerySet:
        return Institution.objects.select_related("region").order_by("code")


class ApplicationFilter(django_filters.FilterSet):
    state = django_filters.MultipleChoiceFilter(choices=State.choices)
    disease = django_filters.CharFilter(field_name="disease__code")
    institution = django_filters.CharFilter(method="filter_institution", label="institution code")
    filed_after = django_filters.DateFilter(field_name="filed_at", lookup_expr="date__gte")
    filed_before = django_filters.DateFilter(field_name="filed_at", lookup_expr="date__lte")
    kind = django_filters.CharFilter()

    class Meta:
        model = Application
        fields = ["state", "disease", "institution", "filed_after", "filed_before", "kind"]

    def filter_institution(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return queryset.filter(Q(filing_institution__code=value) | Q(treating_institution__code=value))


class ApplicationViewSet(IdempotentPostMixin, viewsets.ReadOnlyModelViewSet):
    """Applications the caller may see; one POST action per transition."""

    filterset_class = ApplicationFilter
    parser_classes = [JSONParser, MultiPartParser, FormParser]

    def get_queryset(self) -> QuerySet:
        queryset = selectors.applications_visible_to(self.request.user)
        if self.action != "list":
            queryset = queryset.prefetch_related(
                "documents",
                Prefetch("audit_entries", queryset=AuditEntry.objects.select_related("actor", "batch")),
            )
        return queryset

    def get_serializer_class(self) -> type:
        return ApplicationDetailSerializer if self.action != "list" else ApplicationListSerializer

    def _visible(self, pk: Any) -> Application:
        return get_object_or_404(selectors.applications_visible_to(self.request.user), pk=pk)

    def _detail(self, application_id: int, status_code: int = status.HTTP_200_OK) -> Response:
        application = self.get_queryset().get(pk=application_id)
        return Response(ApplicationDetailSerializer(application).data, status=status_code)

    @extend_schema(request=ApplicationCreateSerializer, responses={201: ApplicationDetailSerializer, **ERRORS})
    def create(self, request: Request) -> Response:
        serializer = ApplicationCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        parsed = parse_id_number(data["id_number"])
        person = selectors.person_by_id_number(request.user, parsed.number)
        if person is None:
            raise InvalidInput(
                _("No person with this ID number is registered; register the person first (POST /api/v1/persons/)."),
                code="person_not_found",
                details={"field": "id_number"},
            )
        application = services.application_submit(
            person=person,
            disease=data["disease"],
            treating_institution=data["treating_institution"],
            actor=request.user,
        )
        return self._detail(application.pk, status.HTTP_201_CREATED)

    @extend_schema(request=DiagnoseSerializer, responses={200: ApplicationDetailSerializer, **ERRORS})
    @action(detail=True, methods=["post"])
    def diagnose(self, request: Request, pk: str | None = None) -> Response:
        application = self._visible(pk)
        serializer = DiagnoseSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        documents = [("diagnosis_certificate", data["certificate"])] if data.get("certificate") else []
        services.application_diagnose(
            application_id=application.pk,
            actor=request.user,
            icd10_code=data["icd10_code"],
            diagnosis_date=data["diagnosis_date"],
            documents=documents,
        )
        return self._detail(application.pk)

    @extend_schema(request=ReasonSerializer, responses={200: ApplicationDetailSerializer, **ERRORS})
    @action(detail=True, methods=["post"])
    def withdraw(self, request: Request, pk: str | None = None) -> Response:
        application = self._visible(pk)
        serializer = ReasonSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.application_withdraw(
            application_id=application.pk, actor=request.user, reason=serializer.validated_data["reason"]
        )
        return self._detail(application.pk)

    @extend_schema(request=ReasonSerializer, responses={200: ApplicationDetailSerializer, **ERRORS})
    @action(detail=True, methods=["post"])
    def resubmit(self, request: Request, pk: str | None = None) -> Response:
        application = self._visible(pk)
        serializer = ReasonSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.application_resubmit(
            application_id=application.pk, actor=request.user, note=serializer.validated_data["reason"]
        )
        return self._detail(application.pk)

    @extend_schema(request=TerminateSerializer, responses={200: ApplicationDetailSerializer, **ERRORS})
    @action(detail=True, methods=["post"])
    def terminate(self, request: Request, pk: str | None = None) -> Response:
        application = self._visible(pk)
        serializer = TerminateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        services.application_terminate(
            application_id=application.pk,
            actor=request.user,
            reason=data["reason"],
            note=data["note"],
            ended_on=data.get("ended_on"),
        )
        return self._detail(application.pk)

    @extend_schema(request=DocumentUploadSerializer, responses={201: DocumentSerializer, **ERRORS})
    @action(detail=True, methods=["post"], parser_classes=[MultiPartParser, FormParser])
    def documents(self, request: Request, pk: str | None = None) -> Response:
        application = self._visible(pk)
        serializer = DocumentUploadSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        document = services.document_attach(
            application_id=application.pk,
            actor=request.user,
            doc_type=serializer.validated_data["doc_type"],
            upload=serializer.validated_data["file"],
        )
        return Response(DocumentSerializer(document).data, status=status.HTTP_201_CREATED)
