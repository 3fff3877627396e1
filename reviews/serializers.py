"""Thin DRF serializers for batches, queue items and decisions; the services decide."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypedDict

from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema_serializer
from rest_framework import serializers

from enrollment.models import Region
from reviews.models import Decision, RejectReason, ReviewBatch, ReviewItem, StageDecision, SupplementReason

if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations


class ReviewBatchSerializer(serializers.ModelSerializer):
    region: serializers.SlugRelatedField[Region] = serializers.SlugRelatedField(slug_field="code", read_only=True)
    region_name = serializers.CharField(source="region.name", read_only=True)

    class Meta:
        model = ReviewBatch
        fields = [
            "id",
            "region",
            "region_name",
            "period",
            "cutoff",
            "state",
            "item_count",
            "created_at",
            "assembled_at",
            "closed_at",
        ]


class DeciderSerializer(serializers.Serializer):
    user = serializers.CharField()
    stage = serializers.CharField()
    decision = serializers.CharField()
    count = serializers.IntegerField()


class BatchStatsSerializer(serializers.Serializer):
    items = serializers.IntegerField()
    by_outcome = serializers.DictField(child=serializers.IntegerField())
    pending_by_stage = serializers.DictField(child=serializers.IntegerField())
    by_disease = serializers.ListField(child=serializers.DictField())
    ageing_days = serializers.DictField(child=serializers.IntegerField())
    oldest_pending_since = serializers.DateTimeField(allow_null=True)
    decided_by = DeciderSerializer(many=True)


class ReviewBatchDetailSerializer(ReviewBatchSerializer):
    stats = serializers.SerializerMethodField()

    class Meta(ReviewBatchSerializer.Meta):
        fields = [*ReviewBatchSerializer.Meta.fields, "stats"]

    def get_stats(self, batch: ReviewBatch) -> dict[str, Any]:
        return BatchStatsSerializer(self.context["stats"]).data


class StageDecisionSerializer(serializers.ModelSerializer):
    decided_by = serializers.CharField(source="decided_by.username", read_only=True)

    class Meta:
        model = StageDecision
        fields = [
            "round",
            "stage",
            "decision",
            "reason_code",
            "reason",
            "decided_by",
            "decided_at",
            "batch",
            "two_diseases_application",
        ]


class QueueRowAnnotations(TypedDict):
    """What reviews.selectors.with_queue_row annotates an item with (besides the deadline flags)."""

    batch_period: str
    region_code: str
    claimed_by_username: str | None


class ReviewItemSerializer(serializers.ModelSerializer):
    """A queue row: the person's ID number is masked, as in every list."""

    application = serializers.IntegerField(source="application_id", read_only=True)
    person_name = serializers.CharField(source="application.person.name", read_only=True)
    person_id_number = serializers.CharField(source="application.person.masked_id_number", read_only=True)
    disease = serializers.CharField(source="application.disease.code", read_only=True)
    disease_name = serializers.CharField(source="application.disease.name", read_only=True)
    application_state = serializers.CharField(source="application.state", read_only=True)
    # Annotated by reviews.selectors.with_queue_row (correlated subqueries, not joins).
    batch_period = serializers.CharField(read_only=True)
    region = serializers.CharField(source="region_code", read_only=True)
    claimed_by = serializers.CharField(source="claimed_by_username", read_only=True, allow_null=True)
    # Issue 15: the stage's due date (a field), ``overdue`` and ``escalated`` (with_deadline_flags).
    overdue = serializers.BooleanField(read_only=True, default=False)
    escalated = serializers.BooleanField(read_only=True, default=False)

    class Meta:
        model = ReviewItem
        fields = [
            "id",
            "application",
            "application_state",
            "person_name",
            "person_id_number",
            "disease",
            "disease_name",
            "batch",
            "batch_period",
            "region",
            "round",
            "stages",
            "stage",
            "outcome",
            "queued_at",
            "claimed_by",
            "lease_expires_at",
            "decided_at",
            "due_on",
            "overdue",
            "escalated",
        ]

    def to_representation(self, item: WithAnnotations[ReviewItem, QueueRowAnnotations]) -> dict[str, Any]:
        """The declared fields, read directly: the queue page serialises 50 rows per request, and DRF's
        per-field attribute walk was a quarter of its CPU. Same keys, values and formats as the generic
        path (datetimes through DRF's own field); ``tests/reviews/test_api.py`` holds the two equal."""
        application = item.application
        person, disease = application.person, application.disease
        moment = self.fields["queued_at"].to_representation
        lease, decided = item.lease_expires_at, item.decided_at
        return {
            "id": item.pk,
            "application": item.application_id,
            "application_state": application.state,
            "person_name": person.name,
            "person_id_number": person.masked_id_number,
            "disease": disease.code,
            "disease_name": disease.name,
            "batch": item.batch_id,
            "batch_period": item.batch_period,
            "region": item.region_code,
            "round": item.round,
            "stages": item.stages,
            "stage": item.stage,
            "outcome": item.outcome,
            "queued_at": moment(item.queued_at),
            "claimed_by": item.claimed_by_username,
            "lease_expires_at": None if lease is None else moment(lease),
            "decided_at": None if decided is None else moment(decided),
            "due_on": None if item.due_on is None else item.due_on.isoformat(),
            "overdue": bool(getattr(item, "overdue", False)),
            "escalated": bool(getattr(item, "escalated", False)),
        }


class ReviewItemDetailSerializer(ReviewItemSerializer):
    decisions = serializers.SerializerMethodField()

    class Meta(ReviewItemSerializer.Meta):
        fields = [*ReviewItemSerializer.Meta.fields, "decisions"]

    def to_representation(self, item: WithAnnotations[ReviewItem, QueueRowAnnotations]) -> dict[str, Any]:
        return {**super().to_representation(item), "decisions": self.get_decisions(item)}

    def get_decisions(self, item: ReviewItem) -> list[dict[str, Any]]:
        # many=True makes a ListSerializer whose data is a list; the stubs type it as the dict of one.
        return StageDecisionSerializer(self.context["decisions"], many=True).data  # type: ignore[return-value]


@extend_schema_serializer(many=False)  # a page object, not a list, although served by a list action
class QueuePageSerializer(serializers.Serializer):
    next = serializers.CharField(allow_null=True, help_text=_("Cursor of the next page; null on the last page."))
    results = ReviewItemSerializer(many=True)


class _IdBounds(TypedDict):
    min_value: int
    max_value: int


ID: _IdBounds = {"min_value": 1, "max_value": 2**63 - 1}


class ClaimSerializer(serializers.Serializer):
    count = serializers.IntegerField(min_value=1, max_value=200, default=20)
    stage = serializers.CharField(required=False, allow_blank=False)


class ReleaseSerializer(serializers.Serializer):
    items = serializers.ListField(
        child=serializers.IntegerField(**ID), required=False, help_text=_("Omit to release every item you hold.")
    )


class ReleaseResultSerializer(serializers.Serializer):
    released = serializers.IntegerField()


class RejectSerializer(serializers.Serializer):
    reason_code = serializers.ChoiceField(choices=RejectReason.choices)
    reason = serializers.CharField(max_length=2000)
    two_diseases = serializers.BooleanField(
        default=False, help_text=_("With criteria_not_met for M03900/M01600: enrol in 两病 medication coverage.")
    )


class ApproveSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")


class ReturnSerializer(serializers.Serializer):
    missing = serializers.CharField(
        max_length=2000, required=False, allow_blank=True, default="", help_text=_("What the clinic must add.")
    )
    supplement_codes = serializers.ListField(
        child=serializers.ChoiceField(choices=SupplementReason.choices),
        required=False,
        default=list,
        max_length=10,
        help_text=_("The 补正 checklist; at least one code or the note."),
    )


class BulkDecisionSerializer(serializers.Serializer):
    items = serializers.ListField(child=serializers.IntegerField(**ID), min_length=1, max_length=200)
    decision = serializers.ChoiceField(choices=Decision.choices)
    reason_code = serializers.CharField(max_length=40, required=False, allow_blank=True, default="")
    reason = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")
    two_diseases = serializers.BooleanField(
        default=False,
        help_text=_(
            "With reject + criteria_not_met: enrol each M03900/M01600 item's person in 两病 medication coverage "
            "(as the single reject does; an item it cannot apply to fails with its reason)."
        ),
    )


class BulkFailureSerializer(serializers.Serializer):
    item = serializers.IntegerField()
    code = serializers.CharField()
    message = serializers.CharField()


class BulkResultSerializer(serializers.Serializer):
    decided = serializers.ListField(child=serializers.IntegerField())
    failed = BulkFailureSerializer(many=True)


class ImmediateApprovalSerializer(serializers.Serializer):
    application = serializers.IntegerField(**ID)
    reason = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")
