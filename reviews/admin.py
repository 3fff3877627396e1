from django.contrib import admin
from django.db.models import Model
from django.http import HttpRequest

from reviews.models import ReviewBatch, ReviewItem, StageDecision


@admin.register(ReviewBatch)
class ReviewBatchAdmin(admin.ModelAdmin):
    list_display = ["region", "period", "state", "item_count", "cutoff", "assembled_at", "closed_at"]
    list_filter = ["state"]
    list_select_related = ["region"]
    search_fields = ["period", "region__code", "region__name"]
    # Batches change through the services (assembly, decisions), never by hand.
    readonly_fields = ["region", "period", "cutoff", "state", "item_count", "assembled_at", "closed_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


@admin.register(ReviewItem)
class ReviewItemAdmin(admin.ModelAdmin):
    list_display = ["id", "application", "batch", "stage", "outcome", "round", "claimed_by", "lease_expires_at"]
    list_filter = ["outcome", "stage"]
    list_select_related = ["application__disease", "batch__region", "claimed_by"]
    raw_id_fields = ["application", "batch", "claimed_by", "region"]
    readonly_fields = [
        "batch",
        "application",
        "region",
        "round",
        "stages",
        "stage",
        "outcome",
        "queued_at",
        "decided_at",
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


@admin.register(StageDecision)
class StageDecisionAdmin(admin.ModelAdmin):
    list_display = ["application", "round", "stage", "decision", "reason_code", "decided_by", "decided_at"]
    list_filter = ["stage", "decision"]
    list_select_related = ["application__disease", "decided_by"]
    raw_id_fields = ["application", "item", "batch", "decided_by", "two_diseases_application"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False
