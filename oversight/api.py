"""Thin REST API for oversight under /api/v1/: the re-check queue and decisions, notices (公示) and objections.

The same rules as the pages: re-checks are the region's reviewers' (administrators read them), notices and
objections the region's centre officers' and administrators'; any other role is 403, an object outside the
caller's scope 404. Every list and object comes from oversight.selectors, every write is one oversight service;
POSTs replay with an Idempotency-Key, errors are the kernel handler's.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.generics import get_object_or_404  # malformed ids → 404, not a ValueError → 500
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from enrollment.serializers import ErrorSerializer
from kernel.api_support import AuthenticatedRequest, IdempotentPostMixin
from kernel.errors import InvalidInput, NotPermitted
from oversight import selectors, services
from oversight.models import NoticeEntry, Objection, PublicNotice, RecheckSample, RecheckState
from oversight.serializers import (
    CorrectionAnswerSerializer,
    CorrectionRequestSerializer,
    NoticeEntrySerializer,
    ObjectionInSerializer,
    ObjectionSerializer,
    PublicNoticeSerializer,
    PublishSerializer,
    RecheckDecisionSerializer,
    RecheckSampleDetailSerializer,
    RecheckSampleSerializer,
    ResolutionSerializer,
    ResolveSerializer,
)

ERRORS = {400: ErrorSerializer, 403: ErrorSerializer, 404: ErrorSerializer, 409: ErrorSerializer}
READ_ERRORS = {400: ErrorSerializer, 403: ErrorSerializer, 404: ErrorSerializer}


def _schema_only(view: Any) -> bool:
    return getattr(view, "swagger_fake_view", False)


class RecheckViewSet(IdempotentPostMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Sample re-checks (抽查复核) of the caller's region: the queue, one sample, and its decision; the filing
    clinic's answer to a re-check returned for correction."""

    serializer_class = RecheckSampleSerializer
    queryset = RecheckSample.objects.none()  # the schema's model; get_queryset scopes every request

    def get_queryset(self) -> QuerySet:
        if _schema_only(self):
            return RecheckSample.objects.none()
        user = self.request.user
        if self.action == "answer":
            if not selectors.may_answer_corrections(user):
                raise NotPermitted(
                    _("Correction requests are answered by the staff of the clinic that filed the application.")
                )
            return selectors.samples_for_clinic(user)
        if not selectors.may_recheck(user):
            raise NotPermitted(_("Sample re-checks are recorded by reviewers."))
        if self.action != "list":
            return selectors.samples_visible_to(user)
        state = self.request.query_params.get("state", RecheckState.PENDING)
        if state not in (*RecheckState.values, "all"):
            raise InvalidInput(
                _("state is one of: %(choices)s.") % {"choices": ", ".join((*RecheckState.values, "all"))},
                details={"field": "state"},
            )
        return selectors.recheck_queue(user, state="" if state == "all" else state)

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "state", str, enum=[*RecheckState.values, "all"], description="default: pending (the queue)"
            )
        ],
        responses={200: RecheckSampleSerializer(many=True), **READ_ERRORS},
    )
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().list(request, *args, **kwargs)

    @extend_schema(responses={200: RecheckSampleDetailSerializer, **READ_ERRORS})
    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """One sample, with its correction requests."""
        return Response(RecheckSampleDetailSerializer(self.get_object()).data)

    @extend_schema(request=RecheckDecisionSerializer, responses={200: RecheckSampleDetailSerializer, **ERRORS})
    @action(detail=True, methods=["post"])
    def decide(self, request: AuthenticatedRequest, pk: str | None = None) -> Response:
        """Pass or fail. A failure of an enrollment that still covers terminates it today (reason
        ``recheck_failed``, the reason given here as its note), or with ``"correction": "return"`` returns it to
        the filing clinic for the checked ``codes`` (the enrollment keeps covering until the answer is decided)."""
        sample = get_object_or_404(self.get_queryset(), pk=pk)
        serializer = RecheckDecisionSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        services.recheck_decide(
            sample_id=sample.pk,
            actor=request.user,
            passed=data["result"] == "pass",
            reason=data["reason"],
            correction=data["correction"],
            codes=data["codes"],
        )
        return Response(RecheckSampleDetailSerializer(self.get_queryset().get(pk=sample.pk)).data)

    @extend_schema(request=CorrectionAnswerSerializer, responses={200: CorrectionRequestSerializer, **ERRORS})
    @action(detail=True, methods=["post"], parser_classes=[JSONParser, MultiPartParser, FormParser])
    def answer(self, request: AuthenticatedRequest, pk: str | None = None) -> Response:
        """The filing clinic's staff answer the open correction request of a returned re-check: a note, and
        optionally one document (multipart ``doc_type`` + ``file``) attached to the application. The sample goes
        back to the re-check queue."""
        sample = get_object_or_404(self.get_queryset(), pk=pk)
        serializer = CorrectionAnswerSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        upload = data.get("file")
        correction = services.recheck_answer(
            sample_id=sample.pk,
            actor=request.user,
            answer=data["answer"],
            documents=[(data["doc_type"], upload)] if upload is not None else [],
        )
        return Response(CorrectionRequestSerializer(correction).data)


class NoticeViewSet(IdempotentPostMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Public notices (公示) of the caller's region, as the officers' page lists them; POST publishes a batch's
    approved list."""

    serializer_class = PublicNoticeSerializer
    queryset = PublicNotice.objects.none()

    def get_queryset(self) -> QuerySet:
        if _schema_only(self):
            return PublicNotice.objects.none()
        if not selectors.may_handle_notices(self.request.user):
            raise NotPermitted(_("Notices are published by centre officers and administrators."))
        return selectors.notices_visible_to(self.request.user)

    @extend_schema(responses={200: PublicNoticeSerializer(many=True), **READ_ERRORS})
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().list(request, *args, **kwargs)

    @extend_schema(responses={200: PublicNoticeSerializer, **READ_ERRORS})
    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().retrieve(request, *args, **kwargs)

    @extend_schema(request=PublishSerializer, responses={201: PublicNoticeSerializer, **ERRORS})
    def create(self, request: AuthenticatedRequest) -> Response:
        """Publish a reviewing or closed batch's approved list from today (masked names and ID numbers)."""
        notices = self.get_queryset()
        serializer = PublishSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        batch = selectors.batch_for_notice(request.user, serializer.validated_data["batch"])
        if batch is None:
            raise NotFound(_("No such batch in your region."))
        notice = services.notice_publish(batch_id=batch.pk, actor=request.user, days=serializer.validated_data["days"])
        return Response(PublicNoticeSerializer(notices.get(pk=notice.pk)).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses={200: NoticeEntrySerializer(many=True), **READ_ERRORS})
    @action(detail=True, methods=["get"], serializer_class=NoticeEntrySerializer)
    def entries(self, request: Request, pk: str | None = None) -> Response:
        """The notice's lines as published (masked), each with its objections, in order."""
        notice = get_object_or_404(self.get_queryset(), pk=pk)
        entries = selectors.entries_with_objections(notice)
        page = self.paginate_queryset(entries)
        rows = NoticeEntrySerializer(page if page is not None else entries, many=True).data
        return self.get_paginated_response(rows) if page is not None else Response(rows)


class NoticeEntryViewSet(IdempotentPostMixin, viewsets.GenericViewSet):
    """A notice entry: record an objection (异议) received during the notice period; it holds the entry."""

    serializer_class = ObjectionInSerializer
    queryset = NoticeEntry.objects.none()

    @extend_schema(request=ObjectionInSerializer, responses={201: ObjectionSerializer, **ERRORS})
    @action(detail=True, methods=["post"])
    def objections(self, request: AuthenticatedRequest, pk: str | None = None) -> Response:
        if not selectors.may_handle_notices(request.user):
            raise NotPermitted(_("Objections are recorded by centre officers and administrators."))
        entry = selectors.entry_for_officer(request.user, _id(pk))
        if entry is None:
            raise NotFound()
        serializer = ObjectionInSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        objection = services.objection_record(entry_id=entry.pk, actor=request.user, **serializer.validated_data)
        return Response(ObjectionSerializer(objection).data, status=status.HTTP_201_CREATED)


class ObjectionViewSet(IdempotentPostMixin, viewsets.GenericViewSet):
    """An objection: resolve it after verification, upheld (the enrollment is terminated, reason
    ``objection_upheld``) or not (dismissed, state ``rejected``: the hold is released)."""

    serializer_class = ResolveSerializer
    queryset = Objection.objects.none()

    @extend_schema(request=ResolveSerializer, responses={200: ResolutionSerializer, **ERRORS})
    @action(detail=True, methods=["post"])
    def resolve(self, request: AuthenticatedRequest, pk: str | None = None) -> Response:
        if not selectors.may_handle_notices(request.user):
            raise NotPermitted(_("Objections are resolved by centre officers and administrators."))
        objection = selectors.objection_for_officer(request.user, _id(pk))
        if objection is None:
            raise NotFound()
        serializer = ResolveSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        result = services.objection_resolve(
            objection_id=objection.pk,
            actor=request.user,
            upheld=serializer.validated_data["upheld"],
            resolution=serializer.validated_data["resolution"],
        )
        return Response({"objection": ObjectionSerializer(result.objection).data, "terminated": result.terminated})


def _id(pk: str | None) -> int:
    """A path id as the selectors take it; anything but a whole number is a 404 like an unknown id."""
    try:
        return int(pk or "")
    except ValueError:
        raise NotFound()
