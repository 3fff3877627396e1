"""Thin DRF serializers: shape input and output; the services decide."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from enrollment import reference_cache, selectors
from enrollment.models import (
    MANUAL_TERMINATION_CHOICES,
    Application,
    AuditEntry,
    Disease,
    Document,
    DocumentType,
    Institution,
    InsuranceType,
    Person,
    PersonStatusEvent,
    Region,
    Reminder,
    StatusEventKind,
    SupportCategory,
    mask_id_number,
)
from kernel.input_guard import username_max_length


class RegionField(serializers.SlugRelatedField):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(slug_field="code", queryset=Region.objects.all(), **kwargs)


class PersonSerializer(serializers.ModelSerializer):
    """One person looked up by their full ID number: the caller already knows the number."""

    insured_region: serializers.SlugRelatedField[Region] = serializers.SlugRelatedField(
        slug_field="code", read_only=True
    )

    class Meta:
        model = Person
        fields = [
            "id",
            "id_number",
            "name",
            "sex",
            "birth_date",
            "insurance_number",
            "insurance_type",
            "insured_region",
            "phone",
            "support_categories",
        ]


class PersonListSerializer(serializers.ModelSerializer):
    id_number = serializers.CharField(source="masked_id_number", read_only=True)
    insured_region: serializers.SlugRelatedField[Region] = serializers.SlugRelatedField(
        slug_field="code", read_only=True
    )

    class Meta:
        model = Person
        fields = ["id", "id_number", "name", "sex", "birth_date", "insurance_type", "insured_region"]


class PersonLookupSerializer(serializers.Serializer):
    """POST /api/v1/persons/lookup/: the ID number in the body, never in a URL (issue 18 item 10)."""

    id_number = serializers.CharField(max_length=30, help_text="18-character 身份证号")
    reason = serializers.CharField(
        required=False, allow_blank=True, help_text="Why the record is looked up; kept in the access log (≤ 500)."
    )


class PersonWriteSerializer(serializers.Serializer):
    id_number = serializers.CharField(max_length=30)
    name = serializers.CharField(max_length=50)
    insured_region = RegionField()
    # Left out = keep what is on record (new persons: resident insurance, no number, no phone).
    insurance_type = serializers.ChoiceField(choices=InsuranceType.choices, required=False)
    insurance_number = serializers.CharField(max_length=30, required=False, allow_blank=True)
    phone = serializers.RegexField(r"^\+?[0-9\- ]{0,20}$", required=False, allow_blank=True)
    support_categories = serializers.ListField(
        child=serializers.ChoiceField(choices=SupportCategory.choices), required=False
    )


class DiseaseSerializer(serializers.ModelSerializer):
    exclusive_with: serializers.SlugRelatedField[Disease] = serializers.SlugRelatedField(
        slug_field="code", many=True, read_only=True
    )

    class Meta:
        model = Disease
        fields = [
            "code",
            "name",
            "disease_type",
            "validity_months",
            "counts_toward_limit",
            "min_institution_level",
            "min_physician_title",
            "required_documents",
            "review_mode",
            "icd10_prefixes",
            "aliases",
            "cross_province_settlement",
            "exclusive_with",
            "active",
            "catalogue_version",
        ]


class InstitutionSerializer(serializers.ModelSerializer):
    region: serializers.SlugRelatedField[Region] = serializers.SlugRelatedField(slug_field="code", read_only=True)

    class Meta:
        model = Institution
        fields = ["code", "name", "level", "region", "may_diagnose"]


class ApplicationListSerializer(serializers.ModelSerializer):
    person_name = serializers.CharField(source="person.name", read_only=True)
    person_id_number = serializers.CharField(source="person.masked_id_number", read_only=True)
    disease = serializers.CharField(source="disease.code", read_only=True)
    disease_name = serializers.CharField(source="disease.name", read_only=True)
    filing_institution = serializers.CharField(source="filing_institution.code", read_only=True)
    treating_institution = serializers.CharField(source="treating_institution.code", read_only=True)
    region = serializers.CharField(source="region.code", read_only=True)

    class Meta:
        model = Application
        fields = [
            "id",
            "person_name",
            "person_id_number",
            "disease",
            "disease_name",
            "kind",
            "state",
            "filing_institution",
            "treating_institution",
            "region",
            "filed_at",
            "diagnosed_at",
            "decided_at",
            "valid_from",
            "valid_until",
            "renews",
        ]


class DocumentSerializer(serializers.ModelSerializer):
    class Meta:
        model = Document
        fields = ["id", "doc_type", "original_name", "content_type", "size", "sha256", "uploaded_at"]


class AuditEntrySerializer(serializers.ModelSerializer):
    actor = serializers.SerializerMethodField()
    batch = serializers.SerializerMethodField()

    class Meta:
        model = AuditEntry
        fields = [
            "id",
            "transition",
            "from_state",
            "to_state",
            "actor",
            "is_system",
            "at",
            "reason_code",
            "reason",
            "batch",
            "stage",
        ]

    @extend_schema_field(serializers.CharField())
    def get_actor(self, entry: AuditEntry) -> str:
        if entry.is_system or entry.actor is None:
            return "system"
        return entry.actor.get_username()

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_batch(self, entry: AuditEntry) -> str | None:
        if not hasattr(entry, "batch_label"):
            selectors.attach_batch_labels([entry])
        return entry.batch_label


class ApplicationDetailSerializer(ApplicationListSerializer):
    icd10_code = serializers.CharField(read_only=True)
    physician = serializers.CharField(source="physician.licence_number", read_only=True, default=None, allow_null=True)
    documents = DocumentSerializer(many=True, read_only=True)
    timeline = serializers.SerializerMethodField()
    platform = serializers.SerializerMethodField(
        help_text=_(
            "The national platform state (not_sent, queued, filed with its serial number, cancelled, held, "
            "failed with the platform's message and the next retry); null while the platform link is off "
            "(docs/platform.md)."
        )
    )

    class Meta(ApplicationListSerializer.Meta):
        fields = [
            *ApplicationListSerializer.Meta.fields,
            "icd10_code",
            "diagnosis_date",
            "physician",
            "decision_reason_code",
            "decision_reason",
            "termination_reason",
            "ended_on",
            "documents",
            "timeline",
            "platform",
        ]

    @extend_schema_field(AuditEntrySerializer(many=True))
    def get_timeline(self, instance: Any) -> Any:
        entries = selectors.attach_batch_labels(instance.audit_entries.all())
        return AuditEntrySerializer(entries, many=True, context=self.context).data

    @extend_schema_field({"type": "object", "nullable": True, "additionalProperties": True})
    def get_platform(self, instance: Any) -> Any:
        hook = dict(selectors.APPLICATION_EXTRAS).get("platform")
        return hook(instance) if hook is not None else None

    def to_representation(self, instance: Any) -> dict[str, Any]:
        data = super().to_representation(instance)
        for key, hook in selectors.APPLICATION_EXTRAS:  # apps above this one add keys (docs/platform.md)
            if key not in data:
                data[key] = hook(instance)
        return data


class ReferenceCodeField(serializers.SlugRelatedField):
    """A disease or institution by its code, from the per-process reference data (enrollment.reference_cache)
    instead of a query; the same field, errors and schema as ``SlugRelatedField(slug_field="code")``."""

    def __init__(self, lookup: Any, **kwargs: Any) -> None:
        self.lookup = lookup
        super().__init__(slug_field="code", **kwargs)

    def to_internal_value(self, data: Any) -> Any:
        found = self.lookup(data) if isinstance(data, str) else None
        return found if found is not None else super().to_internal_value(data)


class ApplicationCreateSerializer(serializers.Serializer):
    id_number = serializers.CharField(max_length=30, help_text=_("The person's 身份证号; register new persons first."))
    disease = ReferenceCodeField(reference_cache.disease_by_code, queryset=Disease.objects.all())
    treating_institution = ReferenceCodeField(reference_cache.institution_by_code, queryset=Institution.objects.all())


class DiagnoseSerializer(serializers.Serializer):
    icd10_code = serializers.RegexField(r"^[A-Za-z]\d{2}(\.?\w{0,4})?$", max_length=10)
    diagnosis_date = serializers.DateField()
    certificate = serializers.FileField(required=False, help_text=_("The diagnosis certificate (PDF/JPEG/PNG)."))


class ReasonSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")


class TerminateSerializer(serializers.Serializer):
    reason = serializers.ChoiceField(choices=MANUAL_TERMINATION_CHOICES)
    note = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")
    ended_on = serializers.DateField(required=False)


class DocumentUploadSerializer(serializers.Serializer):
    doc_type = serializers.ChoiceField(choices=DocumentType.choices)
    file = serializers.FileField(allow_empty_file=True)


class TokenRequestSerializer(serializers.Serializer):
    # No account has a longer name; refused before authenticate(), whose login throttling (django-axes) would
    # fail to store a longer one (issue 18 item 12: a 500 on PostgreSQL).
    username = serializers.CharField(max_length=username_max_length())
    password = serializers.CharField(style={"input_type": "password"})
    name = serializers.CharField(
        required=False, allow_blank=True, max_length=100, help_text="What the token is for (shown in the list)."
    )


class TokenResponseSerializer(serializers.Serializer):
    token = serializers.CharField(help_text="The key: shown only now, store it like a password.")
    id = serializers.IntegerField(help_text="The token's id in GET /api/v1/auth/tokens/.")
    expires_at = serializers.DateTimeField()


class ApiTokenSerializer(serializers.Serializer):
    """One of the caller's tokens: never the key, only its first characters."""

    id = serializers.IntegerField()
    name = serializers.CharField()
    key = serializers.CharField(source="masked_key", help_text="The key's first 8 characters, then “…”.")
    created_at = serializers.DateTimeField()
    last_used_at = serializers.DateTimeField(allow_null=True)
    expires_at = serializers.DateTimeField()
    current = serializers.SerializerMethodField(help_text="The token this request was made with.")

    @extend_schema_field(serializers.BooleanField())
    def get_current(self, token: Any) -> bool:
        return token.pk == self.context.get("current_token_id")


class ErrorSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    details = serializers.JSONField()


# ---------------------------------------------------------------------------
# Renewal, reminders and the coverage query (docs/design.md: Validity, renewal and reminders)
# ---------------------------------------------------------------------------


class RenewSerializer(serializers.Serializer):
    treating_institution = serializers.SlugRelatedField(
        slug_field="code",
        queryset=Institution.objects.all(),
        required=False,
        help_text=_("Default: the treating institution of the enrollment being renewed."),
    )


class ReminderSerializer(serializers.ModelSerializer):
    """A reminder row; the recipient (a phone number or addresses) is not exposed."""

    class Meta:
        model = Reminder
        fields = [
            "id",
            "application",
            "offset_days",
            "channel",
            "due_on",
            "valid_until",
            "status",
            "attempts",
            "last_error",
            "created_at",
            "sent_at",
            "read_at",
        ]


class InboxReminderSerializer(ReminderSerializer):
    subject = serializers.CharField(read_only=True)
    message = serializers.CharField(read_only=True)
    person_name = serializers.CharField(source="application.person.name", read_only=True)
    disease = serializers.CharField(source="application.disease.code", read_only=True)

    class Meta(ReminderSerializer.Meta):
        fields = [*ReminderSerializer.Meta.fields, "subject", "message", "person_name", "disease"]


class CoverageQuerySerializer(serializers.Serializer):
    id_number = serializers.CharField(max_length=30)
    disease = serializers.CharField(max_length=6, help_text=_("National disease code, e.g. M03900."))
    date = serializers.DateField(required=False, help_text=_("YYYY-MM-DD; default today."))
    as_of = serializers.DateTimeField(
        required=False,
        help_text=_(
            "ISO date-time: the answer as the service gave it at that moment (from the audit trail and the "
            "status history). Default: now."
        ),
    )

    def validate_as_of(self, value: Any) -> Any:
        from django.utils import timezone

        if value > timezone.now():
            raise serializers.ValidationError(_("as_of cannot be in the future."))
        return value


class CoverageEnrollmentSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.CharField()
    state = serializers.CharField()
    valid_from = serializers.DateField()
    valid_until = serializers.DateField(allow_null=True)
    ended_on = serializers.DateField(allow_null=True)
    termination_reason = serializers.CharField(allow_blank=True)
    renews = serializers.IntegerField(source="renews_id", allow_null=True)


class CoverageDecisionSerializer(serializers.Serializer):
    audit_entry = serializers.IntegerField(source="id")
    transition = serializers.CharField()
    at = serializers.DateTimeField()
    actor = serializers.SerializerMethodField()
    batch = serializers.IntegerField(source="batch_id", allow_null=True)
    stage = serializers.CharField(allow_blank=True)

    @extend_schema_field(serializers.CharField())
    def get_actor(self, entry: AuditEntry) -> str:
        if entry.is_system or entry.actor is None:
            return "system"
        return entry.actor.get_username()


class TwoDiseasesCoverageSerializer(serializers.Serializer):
    covered = serializers.BooleanField()
    reason = serializers.CharField()
    valid_from = serializers.DateField(allow_null=True)
    valid_until = serializers.DateField(allow_null=True)
    enrollment = serializers.IntegerField(allow_null=True)


class CoverageStatusEventSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.CharField()
    effective_date = serializers.DateField()
    reference = serializers.CharField()


class CoverageSerializer(serializers.Serializer):
    covered = serializers.BooleanField(help_text="The 门慢门特 benefit of this disease on the date.")
    date = serializers.DateField(source="on")
    as_of = serializers.DateTimeField(allow_null=True)
    benefit = serializers.CharField(
        allow_null=True, help_text="outpatient_chronic | outpatient_special when covered, else null"
    )
    reason = serializers.CharField(
        help_text=(
            "covered | renewal_pending (provisional) | provisional_honoured | renewal_overdue | ended | terminated "
            "| not_started | application_pending | not_enrolled | two_diseases_only | insurance_suspended "
            "| not_insured | moved_out | person_deceased"
        )
    )
    provisional = serializers.BooleanField()
    provisional_until = serializers.DateField(allow_null=True)
    enrollment = CoverageEnrollmentSerializer(allow_null=True)
    decision = CoverageDecisionSerializer(allow_null=True)
    pending_renewal = serializers.IntegerField(source="pending_renewal.pk", allow_null=True, default=None)
    insurance_status = serializers.CharField()
    insurance_type = serializers.CharField(allow_blank=True)
    status_event = CoverageStatusEventSerializer(allow_null=True)
    support_categories = serializers.ListField(child=serializers.CharField())
    two_diseases = TwoDiseasesCoverageSerializer(allow_null=True)
    cross_province_settlement = serializers.BooleanField()


_MOMENT = serializers.DateTimeField()  # DRF's own datetime format (local time zone, ISO 8601)


def _day(value: dt.date | None) -> str | None:
    return None if value is None else value.isoformat()


def coverage_answer_data(answer: Any) -> dict[str, Any]:
    """``CoverageSerializer(answer).data``, read directly: the coverage answer is the hottest path a
    province runs (every dispensing), and building the nested DRF serializers was a large share of its CPU.
    Same keys, values and formats as the declared serializer (which stays the schema);
    ``tests/enrollment/test_coverage_body.py`` holds the two equal for every shape of answer."""
    enrollment, decision, event = answer.enrollment, answer.decision, answer.status_event
    two = answer.two_diseases
    return {
        "covered": bool(answer.covered),
        "date": _day(answer.on),
        "as_of": None if answer.as_of is None else _MOMENT.to_representation(answer.as_of),
        "benefit": None if answer.benefit is None else str(answer.benefit),
        "reason": str(answer.reason),
        "provisional": bool(answer.provisional),
        "provisional_until": _day(answer.provisional_until),
        "enrollment": None
        if enrollment is None
        else {
            "id": enrollment.id,
            "kind": str(enrollment.kind),
            "state": str(enrollment.state),
            "valid_from": _day(enrollment.valid_from),
            "valid_until": _day(enrollment.valid_until),
            "ended_on": _day(enrollment.ended_on),
            "termination_reason": str(enrollment.termination_reason),
            "renews": enrollment.renews_id,
        },
        "decision": None
        if decision is None
        else {
            "audit_entry": decision.id,
            "transition": str(decision.transition),
            "at": _MOMENT.to_representation(decision.at),
            "actor": "system" if decision.is_system or decision.actor is None else decision.actor.get_username(),
            "batch": decision.batch_id,
            "stage": str(decision.stage),
        },
        "pending_renewal": None if answer.pending_renewal is None else answer.pending_renewal.pk,
        "insurance_status": str(answer.insurance_status),
        "insurance_type": str(answer.insurance_type),
        "status_event": None
        if event is None
        else {
            "id": event.id,
            "kind": str(event.kind),
            "effective_date": _day(event.effective_date),
            "reference": str(event.reference),
        },
        "support_categories": [str(c) for c in answer.support_categories],
        "two_diseases": None
        if two is None
        else {
            "covered": bool(two["covered"]),
            "reason": str(two["reason"]),
            "valid_from": _day(two["valid_from"]),
            "valid_until": _day(two["valid_until"]),
            "enrollment": two["enrollment"],
        },
        "cross_province_settlement": bool(answer.cross_province_settlement),
    }


def coverage_body(result: selectors.CoverageLookup) -> dict[str, Any]:
    """The coverage answer as the API gives it: the answer, the person (masked number, whether registered —
    an unregistered number answers not_enrolled) and the disease."""
    body = coverage_answer_data(result.answer)
    body["person"] = {"id_number": mask_id_number(result.id_number), "registered": result.person is not None}
    body["disease"] = {"code": result.disease.code, "name": result.disease.name}
    return body


# ---------------------------------------------------------------------------
# Status events (dated insurance status, death, leaving poverty, categories)
# ---------------------------------------------------------------------------


class StatusEventInputSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=StatusEventKind.choices)
    effective_date = serializers.DateField(
        help_text=_("First day the status holds; for died, the day of death (still covered).")
    )
    # A declared field: DRF's serializer metaclass moves it out of the class, so it never shadows Field.source.
    source = serializers.CharField(  # type: ignore[assignment]
        max_length=50, default="api", help_text=_("Who reports it (system name).")
    )
    reference = serializers.CharField(max_length=100, help_text=_("The sender's own id: re-sending changes nothing."))
    insurance_type = serializers.ChoiceField(
        choices=InsuranceType.choices, required=False, default="", allow_blank=True
    )
    categories = serializers.ListField(
        child=serializers.ChoiceField(choices=SupportCategory.choices),
        required=False,
        allow_empty=True,
        default=None,
        help_text=_("For categories_set: exactly the categories held from the effective date."),
    )
    note = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")


class StatusEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = PersonStatusEvent
        fields = [
            "id",
            "kind",
            "effective_date",
            "source",
            "reference",
            "insurance_type",
            "categories",
            "note",
            "recorded_at",
            "applied_at",
        ]


class StatusEventResultSerializer(serializers.Serializer):
    event = StatusEventSerializer()
    created = serializers.BooleanField()
    terminated = serializers.ListField(child=serializers.IntegerField(), help_text=_("Enrollments ended."))
    closed = serializers.ListField(child=serializers.IntegerField(), help_text=_("Pending applications closed."))
