from typing import cast

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from interop import services
from interop.models import AssistedFiling, CatalogueImport, RosterImport, RosterRow
from kernel import roles
from kernel.errors import DomainError


@admin.register(RosterImport)
class RosterImportAdmin(admin.ModelAdmin):
    list_display = ["id", "original_name", "state", "progress", "lines_total", "uploaded_by", "created_at"]
    list_filter = ["state"]
    readonly_fields = [f.name for f in RosterImport._meta.fields if f.name != "content"] + ["progress"]
    exclude = ["content"]
    list_select_related = ["uploaded_by"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # uploads go through the API so that the dry run is queued


@admin.register(RosterRow)
class RosterRowAdmin(admin.ModelAdmin):
    list_display = ["roster_import", "line", "masked_id_number", "name", "declared", "status", "reason_code", "action"]
    list_filter = ["status", "action"]
    readonly_fields = [f.name for f in RosterRow._meta.fields if f.name != "id_number"] + ["masked_id_number"]
    exclude = ["id_number"]
    list_select_related = ["roster_import"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(AssistedFiling)
class AssistedFilingAdmin(admin.ModelAdmin):
    list_display = ["id", "person", "disease", "institution", "state", "created_at", "application"]
    list_filter = ["state"]
    raw_id_fields = ["person", "application", "roster_import"]
    list_select_related = ["person", "disease", "institution", "application"]
    readonly_fields = ["state", "application", "closed_by", "closed_at"]


@admin.register(CatalogueImport)
class CatalogueImportAdmin(admin.ModelAdmin):
    list_display = ["id", "version", "original_name", "created_at", "applied_at", "summary"]
    readonly_fields = ["uploaded_by", "original_name", "version", "diff", "created_at", "applied_at", "result"]
    exclude = ["data", "applied_by"]
    actions = ["apply", "apply_and_terminate"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # upload with the API or `manage.py catalogue_update`

    @admin.display(description=_("diff"))
    def summary(self, obj: CatalogueImport) -> str:
        diff = obj.diff or {}
        return f"+{len(diff.get('added', []))} ~{len(diff.get('changed', []))} -{len(diff.get('removed', []))}"

    def _apply(self, request: HttpRequest, queryset: QuerySet, terminate: bool) -> None:
        for record in queryset:
            try:
                result = services.catalogue_import_apply(
                    import_id=record.pk,
                    actor=cast(roles.Actor, request.user),  # the admin site lets only signed-in staff in
                    terminate_enrollments=terminate,
                )
            except DomainError as exc:
                self.message_user(request, f"{record}: {exc.message}", messages.ERROR)
                continue
            self.message_user(request, f"{record}: {result}", messages.SUCCESS)

    @admin.action(description=_("Apply (removed diseases are deactivated)"))
    def apply(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._apply(request, queryset, terminate=False)

    @admin.action(description=_("Apply and terminate the enrollments of removed diseases"))
    def apply_and_terminate(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._apply(request, queryset, terminate=True)
