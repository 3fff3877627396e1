"""The audit trail and the access log cannot be changed or deleted through the application; on PostgreSQL
the database refuses it too, whoever asks (docs/design.md: Applications and the state machine, Access and privacy)."""

from __future__ import annotations

import pytest
from django.contrib.admin.sites import site
from django.db import connection, transaction
from django.db.utils import DatabaseError
from django.test import Client, RequestFactory

from enrollment import services
from enrollment.models import AppendOnlyError, AuditEntry, PersonalDataAccess


@pytest.fixture
def audited(world):
    application = services.application_submit(
        person=world.person(), disease=world.hypertension, treating_institution=world.county, actor=world.clerk
    )
    services.application_withdraw(application_id=application.pk, actor=world.clerk, reason="patient moved")
    return application


def test_orm_refuses_every_change_to_audit_rows(audited):
    entry = AuditEntry.objects.filter(application=audited).first()
    before = list(AuditEntry.objects.order_by("id").values_list("id", "transition", "to_state", "reason"))
    entry.reason = "rewritten"
    attempts = [
        entry.save,
        entry.delete,
        lambda: AuditEntry.objects.filter(pk=entry.pk).update(reason="x"),
        lambda: AuditEntry.objects.all().delete(),
        lambda: audited.audit_entries.all().update(to_state="approved"),
        lambda: AuditEntry.objects.bulk_update([entry], ["reason"]),
    ]
    for attempt in attempts:
        with pytest.raises(AppendOnlyError), transaction.atomic():
            attempt()
    assert list(AuditEntry.objects.order_by("id").values_list("id", "transition", "to_state", "reason")) == before


def test_admin_offers_no_change_or_delete(audited, world):
    request = RequestFactory().get("/admin/")
    request.user = world.admin
    world.admin.is_staff = world.admin.is_superuser = True
    world.admin.save()
    for model in (AuditEntry, PersonalDataAccess):
        model_admin = site._registry[model]
        assert not model_admin.has_change_permission(request)
        assert not model_admin.has_delete_permission(request)
        assert not model_admin.has_add_permission(request)
    client = Client()
    client.force_login(world.admin)
    entry = AuditEntry.objects.first()
    response = client.post(f"/admin/enrollment/auditentry/{entry.pk}/delete/", {"post": "yes"})
    assert response.status_code == 403
    assert AuditEntry.objects.filter(pk=entry.pk).exists()


@pytest.mark.postgres
def test_postgres_trigger_refuses_raw_update_and_delete(audited, world):
    """Raw SQL bypasses the ORM guards; the trigger installed by migration 0006 does not."""
    entry = AuditEntry.objects.filter(application=audited).first()
    access = services.personal_data_access_record(viewer=world.clerk, person=audited.person, purpose="person_lookup")
    statements = [
        ("UPDATE enrollment_auditentry SET reason = 'x' WHERE id = %s", entry.pk),
        ("DELETE FROM enrollment_auditentry WHERE id = %s", entry.pk),
        ("UPDATE enrollment_personaldataaccess SET reason = 'x' WHERE id = %s", access.pk),
        ("DELETE FROM enrollment_personaldataaccess WHERE id = %s", access.pk),
    ]
    for sql, pk in statements:
        with pytest.raises(DatabaseError, match="append-only"):
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(sql, [pk])
    entry.refresh_from_db()
    access.refresh_from_db()
    assert entry.reason != "x" and access.reason != "x"


@pytest.mark.postgres
def test_postgres_trigger_still_allows_inserts(audited):
    count = AuditEntry.objects.filter(application=audited).count()
    assert count == 2  # submit + withdraw, both inserted through the trigger-guarded table


def test_trigger_migration_is_a_no_op_off_postgres(db, settings):
    """On SQLite the ORM guards are the protection; the migration must not fail there."""
    if settings.IS_POSTGRES:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_trigger WHERE tgname IN "
                "('enrollment_auditentry_append_only', 'enrollment_personaldataaccess_append_only')"
            )
            assert cursor.fetchone()[0] == 2
    else:
        assert connection.vendor == "sqlite"


@pytest.mark.postgres
def test_every_append_only_table_has_its_trigger(db):
    """Each concrete model on the append-only base (kernel.models.AppendOnlyModel: enrollment's, assistance's and
    oversight's audit tables, the access log) has the trigger its app's migration installs."""
    from django.apps import apps

    from kernel.models import AppendOnlyModel

    tables = sorted(
        model._meta.db_table
        for model in apps.get_models()
        if issubclass(model, AppendOnlyModel) and not model._meta.abstract
    )
    assert {"assistance_assistanceauditentry", "oversight_oversightauditentry", "enrollment_auditentry"} <= set(tables)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid WHERE t.tgname = c.relname || %s",
            ["_append_only"],
        )
        guarded = {row[0] for row in cursor.fetchall()}
    assert [table for table in tables if table not in guarded] == []
