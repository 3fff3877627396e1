"""On PostgreSQL the database refuses UPDATE and DELETE on the oversight audit trail, as enrollment 0006 does for
the application audit trail (its function enrollment_refuse_change is reused). SQLite: the ORM guards only."""

from django.db import migrations

TABLE = "oversight_oversightauditentry"


def install(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(f"DROP TRIGGER IF EXISTS {TABLE}_append_only ON {TABLE}")
    schema_editor.execute(
        f"CREATE TRIGGER {TABLE}_append_only BEFORE UPDATE OR DELETE ON {TABLE} "
        "FOR EACH ROW EXECUTE FUNCTION enrollment_refuse_change()"
    )


def uninstall(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(f"DROP TRIGGER IF EXISTS {TABLE}_append_only ON {TABLE}")


class Migration(migrations.Migration):
    dependencies = [("oversight", "0001_initial"), ("enrollment", "0006_append_only_triggers")]

    operations = [migrations.RunPython(install, uninstall, elidable=False)]
