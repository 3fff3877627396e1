"""Thin DRF serializers of the oversight API: re-checks, notices, notice entries and objections.

A notice entry leaves only as its published snapshot (masked name, masked ID number, disease and institution
names), never a person's row; a re-check names the application, not the person. An objection's text and
contact go to the region's officers only, as on the notice page.
"""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from enrollment.models import DocumentType
from oversight.models import (
    CorrectionRequest,
    NoticeEntry,
    Objection,
    ObjectionChannel,
    PublicNotice,
    RecheckSample,
)
from reviews.models import SupplementReason


def _username(user: Any) -> str | None:
    return user.get_username() if user is not None else None


class RecheckSampleSerializer(serializers.ModelSerializer):
    application = serializers.IntegerField(source="application_id", read_only=True)
    region = serializers.CharField(source="region.code", read_only=True)
    period = serializers.CharField(source="draw.period", read_only=True, help_text="month of the approvals drawn")
    disease = serializers.CharField(source="application.disease.code", read_only=True)
    disease_name = serializers.CharField(source="application.disease.name", read_only=True)
    institution = serializers.CharField(source="institution.code", read_only=True)
    institution_name = serializers.CharField(source="institution.name", read_only=True)
    checked_by = serializers.SerializerMethodField()

    class Meta:
        model = RecheckSample
        fields = [
            "id",
            "application",
            "region",
            "period",
            "disease",
            "disease_name",
            "institution",
            "institution_name",
            "kind",
            "approved_at",
            "percent",
            "rate_source",
            "score",
            "state",
            "checked_by",
            "checked_at",
            "reason",
            "correction",
            "returns",
        ]
        read_only_fields = fields

    def get_checked_by(self, sample: RecheckSample) -> str | None:
        return _username(sample.checked_by)


class DocumentRefSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    doc_type = serializers.CharField(read_only=True)
    original_name = serializers.CharField(read_only=True)


class CorrectionRequestSerializer(serializers.ModelSerializer):
    """A return of a failed re-check to the filing clinic: what is asked (codes and note), by when, the answer."""

    sample = serializers.IntegerField(source="sample_id", read_only=True)
    application = serializers.IntegerField(source="application_id", read_only=True)
    institution = serializers.IntegerField(source="institution_id", read_only=True, help_text="the filing institution")
    codes = serializers.ListField(child=serializers.CharField(), read_only=True, help_text="reviews' 补正 checklist")
    requested_by = serializers.SerializerMethodField()
    answered_by = serializers.SerializerMethodField()
    documents = DocumentRefSerializer(many=True, read_only=True)

    class Meta:
        model = CorrectionRequest
        fields = [
            "id",
            "sample",
            "application",
            "institution",
            "state",
            "codes",
            "note",
            "requested_by",
            "requested_at",
            "answer_by",
            "reminded_at",
            "answered_by",
            "answered_at",
            "answer",
            "documents",
            "lapsed_at",
        ]
        read_only_fields = fields

    def get_requested_by(self, request: CorrectionRequest) -> str | None:
        return _username(request.requested_by)

    def get_answered_by(self, request: CorrectionRequest) -> str | None:
        return _username(request.answered_by)


class RecheckSampleDetailSerializer(RecheckSampleSerializer):
    """One sample with its correction requests (a returned re-check), oldest first."""

    corrections = serializers.SerializerMethodField()

    class Meta(RecheckSampleSerializer.Meta):
        fields = [*RecheckSampleSerializer.Meta.fields, "corrections"]
        read_only_fields = fields

    @extend_schema_field(CorrectionRequestSerializer(many=True))
    def get_corrections(self, sample: RecheckSample) -> Any:
        from oversight import selectors

        return CorrectionRequestSerializer(selectors.corrections_of(sample), many=True).data


class RecheckDecisionSerializer(serializers.Serializer):
    result = serializers.ChoiceField(choices=[("pass", "pass"), ("fail", "fail")])
    reason = serializers.CharField(
        max_length=2000,
        required=False,
        allow_blank=True,
        default="",
        help_text="required for a failure; the note of the termination (reason recheck_failed), or of the return",
    )
    correction = serializers.ChoiceField(
        choices=[("terminate", "terminate"), ("return", "return")],
        required=False,
        default="terminate",
        help_text="of a failure: terminate the enrollment today (default), or return it to the filing clinic for "
        "correction (the enrollment keeps covering)",
    )
    codes = serializers.ListField(
        child=serializers.ChoiceField(choices=SupplementReason.choices),
        required=False,
        default=list,
        max_length=10,
        help_text="with a return: what the clinic should add or correct (reviews' 补正 checklist)",
    )


class CorrectionAnswerSerializer(serializers.Serializer):
    answer = serializers.CharField(max_length=2000, help_text="what was corrected or added")
    doc_type = serializers.ChoiceField(
        choices=DocumentType.choices, required=False, help_text="with file: the kind of document"
    )
    file = serializers.FileField(required=False, help_text="a document to attach to the application (multipart)")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs.get("file") is not None and not attrs.get("doc_type"):
            raise serializers.ValidationError({"doc_type": "Say what kind of document the file is."})
        return attrs


class PublicNoticeSerializer(serializers.ModelSerializer):
    batch = serializers.IntegerField(source="batch_id", read_only=True)
    period = serializers.CharField(source="batch.period", read_only=True)
    region = serializers.CharField(source="region.code", read_only=True)
    published_by = serializers.SerializerMethodField()
    entries = serializers.IntegerField(source="entry_count", read_only=True)
    under_verification = serializers.IntegerField(source="held_count", read_only=True)
    public_url = serializers.SerializerMethodField(help_text="the public page (no login), during the notice period")

    class Meta:
        model = PublicNotice
        fields = [
            "id",
            "batch",
            "period",
            "region",
            "starts_on",
            "ends_on",
            "days",
            "published_by",
            "published_at",
            "entries",
            "under_verification",
            "public_url",
        ]
        read_only_fields = fields

    def get_published_by(self, notice: PublicNotice) -> str | None:
        return _username(notice.published_by)

    def get_public_url(self, notice: PublicNotice) -> str:
        return reverse("public-notice", args=[notice.token])


class PublishSerializer(serializers.Serializer):
    batch = serializers.IntegerField(min_value=1, help_text="a reviewing or closed batch of your region")
    days = serializers.IntegerField(
        min_value=5, max_value=30, required=False, allow_null=True, default=None, help_text="default: the policy's"
    )


class ObjectionSerializer(serializers.ModelSerializer):
    entry = serializers.IntegerField(source="entry_id", read_only=True)
    recorded_by = serializers.SerializerMethodField()
    resolved_by = serializers.SerializerMethodField()

    class Meta:
        model = Objection
        fields = [
            "id",
            "entry",
            "channel",
            "text",
            "contact",
            "state",
            "recorded_by",
            "recorded_at",
            "resolved_by",
            "resolved_at",
            "resolution",
        ]
        read_only_fields = fields

    def get_recorded_by(self, objection: Objection) -> str | None:
        return _username(objection.recorded_by)

    def get_resolved_by(self, objection: Objection) -> str | None:
        return _username(objection.resolved_by)


class NoticeEntrySerializer(serializers.ModelSerializer):
    """The published snapshot of one line, with its objections (officers only)."""

    application = serializers.IntegerField(source="application_id", read_only=True)
    objections = ObjectionSerializer(many=True, read_only=True)

    class Meta:
        model = NoticeEntry
        fields = [
            "id",
            "number",
            "masked_name",
            "masked_id_number",
            "disease_name",
            "institution_name",
            "held",
            "withdrawn",
            "application",
            "objections",
        ]
        read_only_fields = fields


class ObjectionInSerializer(serializers.Serializer):
    channel = serializers.ChoiceField(choices=ObjectionChannel.choices)
    text = serializers.CharField(max_length=2000)
    contact = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")


class ResolveSerializer(serializers.Serializer):
    upheld = serializers.BooleanField(
        help_text="true: upheld, the enrollment is terminated (reason objection_upheld); false: dismissed "
        "(state rejected), the hold is released once no other objection to the entry is open",
    )
    resolution = serializers.CharField(max_length=2000)


class ResolutionSerializer(serializers.Serializer):
    objection = ObjectionSerializer()
    terminated = serializers.BooleanField(help_text="an enrollment that still covered was terminated")
