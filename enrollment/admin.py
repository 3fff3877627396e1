from django.contrib import admin

from enrollment.models import (
    Application,
    AuditEntry,
    Disease,
    Document,
    Institution,
    Person,
    PersonalDataAccess,
    Physician,
    Policy,
    Region,
    StaffProfile,
)


@admin.register(Region)
class RegionAdmin(admin.ModelAdmin):
    list_display = ["code", "name", "parent"]
    search_fields = ["code", "name"]
    list_select_related = ["parent"]


@admin.register(Policy)
class PolicyAdmin(admin.ModelAdmin):
    list_display = [
        "region",
        "concurrent_chronic_limit",
        "batch_day",
        "renewal_window_days",
        "grace_days",
        "benefit_start",
    ]
    list_select_related = ["region"]


@admin.register(Disease)
class DiseaseAdmin(admin.ModelAdmin):
    list_display = [
        "code",
        "name",
        "disease_type",
        "validity_months",
        "counts_toward_limit",
        "review_mode",
        "min_institution_level",
        "min_physician_title",
        "active",
        "catalogue_version",
    ]
    list_filter = ["disease_type", "review_mode", "active"]
    search_fields = ["code", "name"]
    filter_horizontal = ["exclusive_with", "regions"]


@admin.register(Institution)
class InstitutionAdmin(admin.ModelAdmin):
    list_display = ["code", "name", "level", "region", "may_diagnose"]
    list_filter = ["level", "may_diagnose"]
    search_fields = ["code", "name"]
    list_select_related = ["region"]


@admin.register(Physician)
class PhysicianAdmin(admin.ModelAdmin):
    list_display = ["licence_number", "name", "institution", "title", "user"]
    list_filter = ["title"]
    search_fields = ["licence_number", "name"]
    list_select_related = ["institution", "user"]
    raw_id_fields = ["user"]


@admin.register(StaffProfile)
class StaffProfileAdmin(admin.ModelAdmin):
    list_display = ["user", "institution", "region"]
    list_select_related = ["user", "institution", "region"]
    raw_id_fields = ["user"]


@admin.register(Person)
class PersonAdmin(admin.ModelAdmin):
    list_display = ["masked_id_number", "name", "sex", "birth_date", "insurance_type", "insured_region"]
    search_fields = ["=id_number", "name"]
    list_select_related = ["insured_region"]
    readonly_fields = ["sex", "birth_date"]


class ReadOnlyAdmin(admin.ModelAdmin):
    """Applications and their audit trail change only through the services."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Application)
class ApplicationAdmin(ReadOnlyAdmin):
    list_display = ["id", "person", "disease", "kind", "state", "filing_institution", "filed_at", "valid_until"]
    list_filter = ["state", "kind", "disease__disease_type"]
    list_select_related = ["person", "disease", "filing_institution"]


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin):
    list_display = ["application", "transition", "from_state", "to_state", "actor", "is_system", "at"]
    list_filter = ["transition", "is_system"]
    list_select_related = ["application__disease", "application__person", "actor"]


@admin.register(Document)
class DocumentAdmin(ReadOnlyAdmin):
    list_display = ["application", "doc_type", "size", "uploaded_at"]
    list_select_related = ["application__disease", "application__person"]


@admin.register(PersonalDataAccess)
class PersonalDataAccessAdmin(ReadOnlyAdmin):
    """Who was shown whose full record, when and why (DESIGN §10); read-only."""

    list_display = ["at", "viewer", "person", "application", "purpose", "reason"]
    list_filter = ["purpose"]
    list_select_related = ["viewer", "person", "application__disease", "application__person"]
    search_fields = ["viewer__username"]
    date_hierarchy = "at"
