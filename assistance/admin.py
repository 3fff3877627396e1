"""Admin: each region's assistance policy and its category table. Settlements, lines, alerts and the audit are
read here, never changed (services are their only writers)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin

from assistance.models import (
    AssistanceAuditEntry,
    AssistancePolicy,
    AssistanceRule,
    HighCostAlert,
    Settlement,
)


class AssistanceRuleInline(admin.TabularInline):
    model = AssistanceRule
    extra = 0


@admin.register(AssistancePolicy)
class AssistancePolicyAdmin(admin.ModelAdmin):
    list_display = ("region", "threshold_month", "rolling_12m_threshold", "two_diseases_ratio", "retroactive_months")
    search_fields = ("region__code", "region__name")
    inlines = [AssistanceRuleInline]


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: Any) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: Any, obj: Any = None) -> bool:
        return False


@admin.register(Settlement)
class SettlementAdmin(ReadOnlyAdmin):
    list_display = ("serial_number", "settled_on", "institution_code", "institution_level", "out_of_pocket")
    search_fields = ("serial_number",)
    list_filter = ("institution_level", "benefit")
    raw_id_fields = ("person",)


@admin.register(HighCostAlert)
class HighCostAlertAdmin(ReadOnlyAdmin):
    list_display = ("person", "period", "kind", "amount", "state")
    list_filter = ("state", "kind")


@admin.register(AssistanceAuditEntry)
class AssistanceAuditEntryAdmin(ReadOnlyAdmin):
    list_display = ("action", "actor", "at")
    list_filter = ("action",)
