"""Thin DRF serializers for roster imports, the worklist, exports and catalogue versions."""

from __future__ import annotations

from rest_framework import serializers

from interop.models import AssistedFiling, CatalogueImport, RosterImport, RosterRow
from interop.selectors import BASES, DECIDED, OFFICE, SHAPES


class RosterImportSerializer(serializers.ModelSerializer):
    progress = serializers.IntegerField(read_only=True, help_text="percent of lines processed in the current phase")
    uploaded_by = serializers.CharField(source="uploaded_by.username", read_only=True)
    # null for an administrator's upload (the whole province); the schema says so (found by the hostile-input fuzz).
    scope_region = serializers.CharField(source="scope_region.code", read_only=True, default=None, allow_null=True)

    class Meta:
        model = RosterImport
        fields = [
            "id",
            "original_name",
            "file_format",
            "encoding",
            "state",
            "progress",
            "lines_total",
            "lines_done",
            "counts",
            "error",
            "uploaded_by",
            "scope_region",
            "created_at",
            "validated_at",
            "committed_at",
        ]
        read_only_fields = fields


class RosterUploadSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="CSV (UTF-8, UTF-8 with BOM, or GBK) or XLSX")


class RosterRowSerializer(serializers.ModelSerializer):
    id_number = serializers.CharField(source="masked_id_number", read_only=True)
    disease = serializers.CharField(source="disease.code", read_only=True, default=None)

    class Meta:
        model = RosterRow
        fields = [
            "line",
            "id_number",
            "name",
            "region_code",
            "declared",
            "disease",
            "status",
            "reason_code",
            "message",
            "action",
        ]
        read_only_fields = fields


class AssistedFilingSerializer(serializers.ModelSerializer):
    person_name = serializers.CharField(source="person.name", read_only=True)
    id_number = serializers.CharField(source="person.masked_id_number", read_only=True)
    disease = serializers.CharField(source="disease.code", read_only=True)
    disease_name = serializers.CharField(source="disease.name", read_only=True)
    institution = serializers.CharField(source="institution.code", read_only=True)

    class Meta:
        model = AssistedFiling
        fields = [
            "id",
            "person_name",
            "id_number",
            "disease",
            "disease_name",
            "institution",
            "state",
            "roster_import",
            "roster_line",
            "application",
            "created_at",
            "closed_at",
            "dismiss_reason",
        ]
        read_only_fields = fields


class DismissSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=500)


class ExportQuerySerializer(serializers.Serializer):
    region = serializers.CharField(max_length=9, help_text="Region code: 6 digits, or 9 for a township")
    period = serializers.CharField(max_length=7, help_text="YYYY-MM")
    shape = serializers.ChoiceField(choices=SHAPES, default=OFFICE)
    basis = serializers.ChoiceField(choices=BASES, default=DECIDED)
    file_format = serializers.ChoiceField(choices=["csv", "xlsx"], default="csv")


class CatalogueUploadSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="JSON in the shape of the bundled catalogue, or CSV")
    version = serializers.CharField(max_length=20, required=False, allow_blank=True)


class CatalogueImportSerializer(serializers.ModelSerializer):
    class Meta:
        model = CatalogueImport
        fields = ["id", "original_name", "version", "diff", "created_at", "applied_at", "result"]
        read_only_fields = fields


class CatalogueApplySerializer(serializers.Serializer):
    terminate_enrollments = serializers.BooleanField(
        default=False, help_text="end the approved/expiring enrollments of removed diseases (disease_removed)"
    )
