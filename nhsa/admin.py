"""Read-only admin views of the platform outbox (changes go through nhsa.services: the officer pages)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin

from nhsa.models import PlatformDifference, PlatformFiling, PlatformMessage, PlatformPerson, PlatformReconciliation


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: Any, obj: Any = None) -> bool:
        return False


@admin.register(PlatformMessage)
class PlatformMessageAdmin(ReadOnlyAdmin):
    list_display = ("id", "application_id", "kind", "state", "msgid", "attempts", "next_attempt_at", "sent_at")
    list_filter = ("kind", "state")
    search_fields = ("msgid", "=application__id")
    raw_id_fields = ("application", "depends_on", "handled_by")


@admin.register(PlatformFiling)
class PlatformFilingAdmin(ReadOnlyAdmin):
    list_display = ("application_id", "trt_dcla_detl_sn", "state", "filed_at", "cancelled_at")
    list_filter = ("state",)
    search_fields = ("trt_dcla_detl_sn",)
    raw_id_fields = ("application",)


@admin.register(PlatformPerson)
class PlatformPersonAdmin(ReadOnlyAdmin):
    list_display = ("person_id", "psn_no", "insutype", "insuplc_admdvs", "looked_up_at")
    search_fields = ("psn_no",)
    raw_id_fields = ("person",)


@admin.register(PlatformReconciliation)
class PlatformReconciliationAdmin(ReadOnlyAdmin):
    list_display = ("id", "region", "day", "persons", "finished_at", "error")


@admin.register(PlatformDifference)
class PlatformDifferenceAdmin(ReadOnlyAdmin):
    list_display = ("id", "reconciliation_id", "kind", "application_id", "resolution", "resolved_at")
    list_filter = ("kind", "resolution")
    raw_id_fields = ("reconciliation", "application", "person", "resolved_by", "message")
