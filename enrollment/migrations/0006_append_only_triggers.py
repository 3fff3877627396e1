"""On PostgreSQL, the database itself refuses UPDATE and DELETE on the audit trail and the access log.

The ORM guards (AuditEntryQuerySet, AuditEntry.save/delete) stop application code; these triggers
also stop raw SQL, a manage.py shell and anything else that connects with the application's role.
TRUNCATE is left alone: the test runner's flush uses it, and only a table owner can truncate.
SQLite has no equivalent worth the complexity; there the ORM guards are the protection.
"""

from django.db import migrations

TABLES = ("enrollment_auditentry", "enrollment_personaldataaccess")

CREATE_FUNCTION = """
CREATE OR REPLACE FUNCTION enrollment_refuse_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
"""


def install(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(CREATE_FUNCTION, params=None)
    for table in TABLES:
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
        schema_editor.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION enrollment_refuse_change()"
        )


def uninstall(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table in TABLES:
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
    schema_editor.execute("DROP FUNCTION IF EXISTS enrollment_refuse_change()")


class Migration(migrations.Migration):
    dependencies = [("enrollment", "0005_personal_data_access")]

    operations = [migrations.RunPython(install, uninstall, elidable=False)]
