from typing import Any, cast

from django import forms
from django.contrib import admin
from django.http import HttpRequest
from rest_framework.authtoken.models import TokenProxy

from enrollment.models import (
    ApiToken,
    Application,
    AuditEntry,
    Disease,
    Document,
    Institution,
    Person,
    PersonalDataAccess,
    PersonAuditEntry,
    PersonCategory,
    PersonStatusEvent,
    Physician,
    Policy,
    Region,
    StaffProfile,
)
from enrollment.services import api_tokens


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
        "review_level",
    ]
    list_filter = ["review_level"]
    list_select_related = ["region"]
    filter_horizontal = ["immediate_diseases"]


@admin.register(Disease)
class DiseaseAdmin(admin.ModelAdmin):
    list_display = [
        "code",
        "name",
        "disease_type",
        "validity_months",
        "counts_toward_limit",
        "review_mode",
        "cross_province_settlement",
        "min_institution_level",
        "min_physician_title",
        "active",
        "catalogue_version",
    ]
    list_filter = ["disease_type", "review_mode", "cross_province_settlement", "active"]
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

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
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
    """Who was shown whose full record, when and why (docs/design.md: Access and privacy); read-only."""

    list_display = ["at", "viewer", "person", "application", "purpose", "reason"]
    list_filter = ["purpose"]
    list_select_related = ["viewer", "person", "application__disease", "application__person"]
    search_fields = ["viewer__username"]
    date_hierarchy = "at"


@admin.register(PersonStatusEvent)
class PersonStatusEventAdmin(admin.ModelAdmin):
    """Status events are recorded here through the same service as the API and the file import (its checks,
    its effects, its audit rows); a recorded event is never edited or deleted: record a correcting event."""

    list_display = ["effective_date", "kind", "person", "source", "reference", "recorded_at", "applied_at"]
    list_filter = ["kind", "source"]
    list_select_related = ["person"]
    search_fields = ["=person__id_number", "reference"]
    raw_id_fields = ["person"]
    fields = ["person", "kind", "effective_date", "source", "reference", "insurance_type", "categories", "note"]
    date_hierarchy = "effective_date"

    def has_change_permission(self, request: HttpRequest, obj: PersonStatusEvent | None = None) -> bool:
        return obj is None

    def has_delete_permission(self, request: HttpRequest, obj: PersonStatusEvent | None = None) -> bool:
        return False

    def get_readonly_fields(self, request: HttpRequest, obj: PersonStatusEvent | None = None) -> list[str]:
        # A recorded event: every field (``fields`` lists plain names, no groups).
        return cast(list[str], self.fields) if obj is not None else []

    def save_model(self, request: HttpRequest, obj: PersonStatusEvent, form: forms.ModelForm, change: bool) -> None:
        from django.core.exceptions import ValidationError

        from enrollment.services import person_status
        from kernel import roles
        from kernel.errors import DomainError

        try:
            result = person_status.status_event_record(
                person=obj.person,
                kind=obj.kind,
                effective_date=obj.effective_date,
                source=obj.source or "admin",
                reference=obj.reference,
                actor=cast(roles.Actor, request.user),  # the admin site lets only signed-in staff in
                insurance_type=obj.insurance_type,
                categories=obj.categories if obj.kind == "categories_set" else None,
                note=obj.note,
            )
        except DomainError as exc:
            raise ValidationError(str(exc.message))
        obj.pk = result.event.pk


@admin.register(PersonCategory)
class PersonCategoryAdmin(ReadOnlyAdmin):
    """Dated support categories; they change through status events (categories_set, poverty_exited) and imports."""

    list_display = ["person", "category", "valid_from", "valid_until", "source", "reference", "recorded_at"]
    list_filter = ["category", "source"]
    list_select_related = ["person"]
    search_fields = ["=person__id_number"]


@admin.register(PersonAuditEntry)
class PersonAuditEntryAdmin(ReadOnlyAdmin):
    list_display = ["at", "person", "action", "actor", "is_system"]
    list_filter = ["action", "is_system"]
    list_select_related = ["person", "actor"]
    search_fields = ["=person__id_number"]


# DRF's authtoken tables are kept only for migration 0010 (which moved their keys into ApiToken): its admin
# would offer tokens that no longer authenticate.
if admin.site.is_registered(TokenProxy):
    admin.site.unregister(TokenProxy)


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Everyone's API tokens, never a key; an administrator revokes one by deleting it. Tokens are issued only
    by POST /api/v1/auth/token/ (the key is shown once, to its owner)."""

    list_display = ["masked_key", "user", "name", "created_at", "last_used_at", "expires_at"]
    list_select_related = ["user"]
    search_fields = ["user__username"]
    fields = ["user", "name", "masked_key", "created_at", "last_used_at", "expires_at"]
    readonly_fields = cast(list[str], fields)  # plain names, no groups

    def has_add_permission(self, request: Any) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def delete_model(self, request: Any, obj: ApiToken) -> None:
        api_tokens.api_token_revoke(user=obj.user, token_id=obj.pk)

    def delete_queryset(self, request: Any, queryset: Any) -> None:
        for token in queryset.select_related("user"):
            api_tokens.api_token_revoke(user=token.user, token_id=token.pk)
