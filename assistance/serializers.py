"""Thin DRF serializers: settlement batches in, alerts out."""

from __future__ import annotations

from rest_framework import serializers

from assistance.models import Benefit, CareLevel, HighCostAlert


class SettlementInSerializer(serializers.Serializer):
    """One settlement as a HIS or the platform sends it; amounts are strings or numbers in yuan (2 places)."""

    serial_number = serializers.CharField(max_length=60)
    id_number = serializers.CharField(max_length=40)
    settled_on = serializers.CharField(max_length=19, help_text="YYYY-MM-DD")
    institution_code = serializers.CharField(max_length=30)
    institution_name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    institution_level = serializers.ChoiceField(choices=CareLevel.choices)
    benefit = serializers.ChoiceField(choices=Benefit.choices, required=False, allow_blank=True)
    disease_code = serializers.CharField(max_length=10, required=False, allow_blank=True)
    total_cost = serializers.DecimalField(max_digits=12, decimal_places=2, min_value=0, coerce_to_string=True)
    fund_paid = serializers.DecimalField(max_digits=12, decimal_places=2, min_value=0, coerce_to_string=True)
    out_of_pocket = serializers.DecimalField(max_digits=12, decimal_places=2, min_value=0, coerce_to_string=True)


class SettlementBatchSerializer(serializers.Serializer):
    # DRF hands max_length to the ListSerializer of many=True; the stubs leave it out of BaseSerializer.__init__.
    rows = SettlementInSerializer(many=True, allow_empty=False, max_length=1000)  # type: ignore[call-arg]


class RowResultSerializer(serializers.Serializer):
    line = serializers.IntegerField(help_text="position of the row in the batch, from 1")
    serial_number = serializers.CharField()
    status = serializers.ChoiceField(choices=["new", "duplicate", "invalid"])
    reason_code = serializers.CharField()
    message = serializers.CharField()


class SettlementBatchResultSerializer(serializers.Serializer):
    created = serializers.IntegerField()
    counts = serializers.DictField(child=serializers.IntegerField())
    rows = RowResultSerializer(many=True)


class AlertSerializer(serializers.ModelSerializer):
    person = serializers.IntegerField(source="person_id", read_only=True)
    person_name = serializers.CharField(source="person.name", read_only=True)
    masked_id_number = serializers.CharField(source="person.masked_id_number", read_only=True)
    region = serializers.CharField(source="region.code", read_only=True)
    period = serializers.SerializerMethodField()

    class Meta:
        model = HighCostAlert
        fields = [
            "id",
            "person",
            "person_name",
            "masked_id_number",
            "region",
            "period",
            "kind",
            "amount",
            "threshold",
            "has_support_category",
            "categories",
            "state",
            "created_at",
            "handled_at",
            "note",
        ]
        read_only_fields = fields

    def get_period(self, alert: HighCostAlert) -> str:
        return f"{alert.period:%Y-%m}"


class AlertActionSerializer(serializers.Serializer):
    note = serializers.CharField(max_length=1000, required=False, allow_blank=True, default="")
