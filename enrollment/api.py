"""Thin REST API under /api/v1/: validate, call one selector or service, serialise."""

from __future__ import annotations

from typing import Any, cast

import django_filters
from django.contrib.auth import authenticate
from django.db.models import Prefetch, Q, QuerySet
from django.http import Http404
from django.utils import timezone
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, permissions, status, viewsets
from rest_framework.decorators import action
from rest_framework.generics import get_object_or_404  # malformed ids → 404, not a ValueError → 500
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from enrollment import selectors, services
from enrollment.idnumbers import parse_id_number
from enrollment.models import (
    AccessPurpose,
    ApiToken,
    Application,
    AuditEntry,
    Disease,
    Institution,
    State,
)
from enrollment.serializers import (
    ApiTokenSerializer,
    ApplicationCreateSerializer,
    ApplicationDetailSerializer,
    ApplicationListSerializer,
    CoverageQuerySerializer,
    CoverageSerializer,
    DiagnoseSerializer,
    DiseaseSerializer,
    DocumentSerializer,
    DocumentUploadSerializer,
    ErrorSerializer,
    InboxReminderSerializer,
    InstitutionSerializer,
    PersonListSerializer,
    PersonLookupSerializer,
    PersonSerializer,
    PersonWriteSerializer,
    ReasonSerializer,
    ReminderSerializer,
    RenewSerializer,
    StatusEventInputSerializer,
    StatusEventResultSerializer,
    StatusEventSerializer,
    TerminateSerializer,
    TokenRequestSerializer,
    TokenResponseSerializer,
    coverage_body,
)
from enrollment.services import api_tokens, person_status
from kernel import roles
from kernel.api_support import AuthenticatedRequest, IdempotentPostMixin
from kernel.errors import InvalidInput, NotPermitted
from kernel.input_guard import DepthLimitedJSONParser  # a nesting limit: too deep is a 400

ERRORS = {400: ErrorSerializer, 403: ErrorSerializer, 404: ErrorSerializer, 409: ErrorSerializer}
ACCESS_REASON = OpenApiParameter(
    "reason", str, required=False, description="Why the full record is viewed; kept in the access log (≤ 500)."
)


class TokenView(APIView):
    """POST {"username", "password", "name"?} → a new token {"token", "id", "expires_at"}."""

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
        issued = api_tokens.api_token_issue(user=user, name=serializer.validated_data.get("name", ""))
        return Response({"token": issued.key, "id": issued.token.pk, "expires_at": issued.token.expires_at})


class TokenRevokeView(APIView):
    @extend_schema(request=None, responses={204: None})
    def delete(self, request: AuthenticatedRequest) -> Response:
        """The token this request carries stops working at once (with the web session: all the caller's)."""
        if isinstance(request.auth, ApiToken):
            api_tokens.api_token_revoke(user=request.user, token_id=request.auth.pk)
        else:
            api_tokens.api_tokens_revoke_all(user=request.user, reason="revoked by the user")
        return Response(status=status.HTTP_204_NO_CONTENT)


class ApiTokenViewSet(mixins.ListModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet):
    """The caller's own API tokens (never the keys) and revoking one; anyone else's id answers 404."""

    serializer_class = ApiTokenSerializer
    pagination_class = None
    filterset_class = None

    def get_queryset(self) -> QuerySet:
        return selectors.api_tokens_of(self.request.user)

    def get_serializer_context(self) -> dict[str, Any]:
        auth = self.request.auth
        return {**super().get_serializer_context(), "current_token_id": getattr(auth, "pk", None)}

    @extend_schema(responses={200: ApiTokenSerializer(many=True), **ERRORS})
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().list(request, *args, **kwargs)

    @extend_schema(responses={204: None, **ERRORS})
    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        token = self.get_object()
        # IsAuthenticated (the default permission): the user is signed in.
        api_tokens.api_token_revoke(user=cast(roles.Actor, request.user), token_id=token.pk)
        return Response(status=status.HTTP_204_NO_CONTENT)


class PersonViewSet(IdempotentPostMixin, mixins.ListModelMixin, viewsets.GenericViewSet):
    """Look a person up by 身份证号 (``?id_number=``), register or update one."""

    serializer_class = PersonListSerializer

    def get_queryset(self) -> QuerySet:
        return selectors.persons_visible_to(self.request.user).order_by("id")

    @extend_schema(
        parameters=[
            OpenApiParameter("id_number", str, required=True, description="18-character 身份证号"),
            ACCESS_REASON,
        ],
        responses={200: PersonSerializer, **ERRORS},
        deprecated=True,
        description=(
            "Deprecated: the ID number travels in the URL, which web servers and proxies write to their access "
            "logs. Use POST /api/v1/persons/lookup/ (same answers)."
        ),
    )
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        raw = request.query_params.get("id_number")
        if not raw:
            raise InvalidInput(_("Give ?id_number= to look a person up."), details={"field": "id_number"})
        # IsAuthenticated (the default permission): the user is signed in.
        return self._lookup(cast(AuthenticatedRequest, request), raw, request.query_params.get("reason", ""))

    @extend_schema(
        request=PersonLookupSerializer,
        responses={200: PersonSerializer, **ERRORS},
        description=(
            "One person by 身份证号, the number in the body so that it stays out of URLs and access logs. 404 with "
            "the birth date and sex read from the number when not registered. Each lookup that finds a person is "
            "written to the access log with the optional reason."
        ),
    )
    @action(detail=False, methods=["post"])
    def lookup(self, request: AuthenticatedRequest) -> Response:
        serializer = PersonLookupSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        return self._lookup(request, data["id_number"], data.get("reason", ""))

    def _lookup(self, request: AuthenticatedRequest, raw: str, reason: str) -> Response:
        """The one path of both look-ups (GET ?id_number= and POST lookup/)."""
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
        services.personal_data_access_record(viewer=request.user, person=person, purpose="person_lookup", reason=reason)
        return Response(PersonSerializer(person).data)

    @extend_schema(request=PersonWriteSerializer, responses={201: PersonSerializer, **ERRORS})
    def create(self, request: AuthenticatedRequest) -> Response:
        serializer = PersonWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        person = services.person_register(actor=request.user, **serializer.validated_data)
        return Response(PersonSerializer(person).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        methods=["POST"],
        request=StatusEventInputSerializer,
        responses={201: StatusEventResultSerializer, 200: StatusEventResultSerializer, **ERRORS},
        description=(
            "Record a dated status event of the person (insurance suspended/resumed/ended, moved out of the "
            "province, died, left poverty, categories set). Centre officers and administrators. Idempotent by "
            "(source, reference): the same event again answers 200 with the stored one and changes nothing."
        ),
    )
    @extend_schema(methods=["GET"], responses={200: StatusEventSerializer(many=True), **ERRORS})
    @action(detail=True, methods=["get", "post"], url_path="status-events")
    def status_events(self, request: AuthenticatedRequest, pk: str | None = None) -> Response:
        person = get_object_or_404(self.get_queryset(), pk=pk)
        if request.method == "GET":
            if not roles.has_any_role(request.user, roles.CENTER_OFFICER, roles.REVIEWER, roles.ADMIN):
                raise NotPermitted(_("Only the insurance office and reviewers read a person's status history."))
            return Response(StatusEventSerializer(selectors.status_events_of(person), many=True).data)
        serializer = StatusEventInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        result = person_status.status_event_record(person=person, actor=request.user, **serializer.validated_data)
        body = StatusEventResultSerializer(result).data
        return Response(body, status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK)


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


APPLICATION_DETAIL_PREFETCH = (
    "documents",
    Prefetch("audit_entries", queryset=AuditEntry.objects.select_related("actor")),
)


class ApplicationViewSet(IdempotentPostMixin, viewsets.ReadOnlyModelViewSet):
    """Applications the caller may see; one POST action per transition."""

    filterset_class = ApplicationFilter
    parser_classes = [DepthLimitedJSONParser, MultiPartParser, FormParser]

    def get_queryset(self) -> QuerySet:
        queryset = selectors.applications_visible_to(self.request.user)
        if self.action != "list":
            queryset = queryset.prefetch_related(*APPLICATION_DETAIL_PREFETCH)
        return queryset

    def get_serializer_class(self) -> type:
        return ApplicationDetailSerializer if self.action != "list" else ApplicationListSerializer

    @extend_schema(parameters=[ACCESS_REASON], responses={200: ApplicationDetailSerializer, **ERRORS})
    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Roles that see the full 身份证号 get it here, and the viewing is written to the access log."""
        application = self.get_object()
        data = ApplicationDetailSerializer(application).data
        if selectors.may_see_full_id_number(request.user, application):
            services.personal_data_access_record(
                viewer=cast(roles.Actor, request.user),  # IsAuthenticated (the default permission)
                person=application.person,
                application=application,
                purpose="application_detail",
                reason=request.query_params.get("reason", ""),
            )
            data["person_id_number"] = application.person.id_number
        return Response(data)

    def _visible(self, pk: Any) -> Application:
        return get_object_or_404(selectors.applications_visible_to(self.request.user), pk=pk)

    def _detail(self, application_id: int, status_code: int = status.HTTP_200_OK) -> Response:
        application = self.get_queryset().get(pk=application_id)
        return Response(ApplicationDetailSerializer(application).data, status=status_code)

    @extend_schema(request=ApplicationCreateSerializer, responses={201: ApplicationDetailSerializer, **ERRORS})
    def create(self, request: AuthenticatedRequest) -> Response:
        serializer = ApplicationCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        parsed = parse_id_number(data["id_number"])
        # The person is looked up in the caller's scope and locked in one query; the answer is built from
        # the rows the filing wrote (no read-back).
        application = services.application_submit_by_id_number(
            id_number=parsed.number,
            disease=data["disease"],
            treating_institution=data["treating_institution"],
            actor=request.user,
        )
        return Response(ApplicationDetailSerializer(application).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=DiagnoseSerializer, responses={200: ApplicationDetailSerializer, **ERRORS})
    @action(detail=True, methods=["post"])
    def diagnose(self, request: AuthenticatedRequest, pk: str | None = None) -> Response:
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
    def withdraw(self, request: AuthenticatedRequest, pk: str | None = None) -> Response:
        application = self._visible(pk)
        serializer = ReasonSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.application_withdraw(
            application_id=application.pk, actor=request.user, reason=serializer.validated_data["reason"]
        )
        return self._detail(application.pk)

    @extend_schema(request=ReasonSerializer, responses={200: ApplicationDetailSerializer, **ERRORS})
    @action(detail=True, methods=["post"])
    def resubmit(self, request: AuthenticatedRequest, pk: str | None = None) -> Response:
        application = self._visible(pk)
        serializer = ReasonSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.application_resubmit(
            application_id=application.pk, actor=request.user, note=serializer.validated_data["reason"]
        )
        return self._detail(application.pk)

    @extend_schema(request=TerminateSerializer, responses={200: ApplicationDetailSerializer, **ERRORS})
    @action(detail=True, methods=["post"])
    def terminate(self, request: AuthenticatedRequest, pk: str | None = None) -> Response:
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
    def documents(self, request: AuthenticatedRequest, pk: str | None = None) -> Response:
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

    @extend_schema(request=RenewSerializer, responses={201: ApplicationDetailSerializer, **ERRORS})
    @action(detail=True, methods=["post"])
    def renew(self, request: AuthenticatedRequest, pk: str | None = None) -> Response:
        """File the renewal (复审) of this enrollment; after it lapsed, a new application."""
        application = self._visible(pk)
        serializer = RenewSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        renewal = services.application_renew(
            application_id=application.pk,
            actor=request.user,
            treating_institution=serializer.validated_data.get("treating_institution"),
        )
        return self._detail(renewal.pk, status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={200: ReminderSerializer(many=True), **ERRORS})
    @action(detail=True, methods=["get"], pagination_class=None, filterset_class=None)
    def reminders(self, request: Request, pk: str | None = None) -> Response:
        """The expiry reminders of this enrollment, every channel, with their delivery status."""
        application = self._visible(pk)
        return Response(ReminderSerializer(selectors.reminders_of(application), many=True).data)


class ReminderInboxViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """The clinic's in-app list of expiry reminders (``?unread=1`` for the unread ones)."""

    serializer_class = InboxReminderSerializer

    def get_queryset(self) -> QuerySet:
        queryset = selectors.reminder_inbox(self.request.user)
        if self.request.query_params.get("unread") in {"1", "true", "yes"}:
            queryset = queryset.filter(read_at__isnull=True)
        return queryset

    @extend_schema(request=None, responses={200: InboxReminderSerializer, **ERRORS})
    @action(detail=True, methods=["post"])
    def read(self, request: AuthenticatedRequest, pk: str | None = None) -> Response:
        if pk is None or not pk.isdigit():
            raise Http404
        reminder = services.reminder_mark_read(reminder_id=int(pk), actor=request.user)
        return Response(InboxReminderSerializer(reminder).data)


class CoverageView(APIView):
    """Was the person covered for the disease on the date, and under which decision?
    (docs/design.md: Validity, renewal and reminders)"""

    @extend_schema(
        parameters=[
            OpenApiParameter("id_number", str, required=True, description="18-character 身份证号"),
            OpenApiParameter("disease", str, required=True, description="national disease code, e.g. M03900"),
            OpenApiParameter("date", str, required=False, description="YYYY-MM-DD; default today"),
            OpenApiParameter(
                "as_of", str, required=False, description="ISO date-time: the answer as given at that moment"
            ),
        ],
        responses={200: CoverageSerializer, **ERRORS},
        deprecated=True,
        description=(
            "Deprecated: the ID number travels in the URL, which web servers and proxies write to their access "
            "logs. Use POST /api/v1/coverage/ with the same fields in the body (same answers)."
        ),
    )
    def get(self, request: AuthenticatedRequest) -> Response:
        return self._answer(request, request.query_params)

    @extend_schema(request=CoverageQuerySerializer, responses={200: CoverageSerializer, **ERRORS})
    def post(self, request: AuthenticatedRequest) -> Response:
        """The same question with the ID number in the body, out of URLs and access logs (issue 18 item 10)."""
        return self._answer(request, request.data)

    def _answer(self, request: AuthenticatedRequest, params: Any) -> Response:
        """The one path of every coverage look-up: checked input, the viewer's scope, the access log."""
        query = CoverageQuerySerializer(data=params)
        query.is_valid(raise_exception=True)
        data = query.validated_data
        result = selectors.coverage_for_viewer(
            viewer=request.user,
            id_number=data["id_number"],
            disease_code=data["disease"],
            on=data.get("date") or timezone.localdate(),
            as_of=data.get("as_of"),
        )
        if result.person is not None:
            services.personal_data_access_record(
                viewer=request.user,
                person=result.person,
                purpose=AccessPurpose.COVERAGE_QUERY,
                reason=f"{result.disease.code} {result.answer.on.isoformat()}",
            )
        return Response(coverage_body(result))
