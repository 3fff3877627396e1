"""The audit trail's batch column keeps its foreign key to the review batches on PostgreSQL.

``enrollment.AuditEntry.batch_id`` was a Django foreign key to ``reviews.ReviewBatch``, which made the
enrollment app (the layer below) depend on this one. It is now a plain id in enrollment's models, and this
app, which owns the batches, adds the database constraint where it is missing: on a database migrated
before the change the constraint is already there and nothing happens. SQLite (development, tests) cannot
add a constraint to an existing table; the services are the only writers there.
"""

from django.db import migrations


def add_constraint(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        return
    audit = apps.get_model("enrollment", "AuditEntry")._meta.db_table
    batches = apps.get_model("reviews", "ReviewBatch")._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT 1 FROM pg_constraint c JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY(c.conkey) "
            "WHERE c.contype = 'f' AND c.conrelid = %s::regclass AND c.confrelid = %s::regclass "
            "AND a.attname = 'batch_id'",
            [audit, batches],
        )
        if cursor.fetchone():
            return
        name = schema_editor.quote_name(f"{audit}_batch_id_fk_{batches}"[:63])
        cursor.execute(
            f"ALTER TABLE {schema_editor.quote_name(audit)} ADD CONSTRAINT {name} FOREIGN KEY (batch_id) "
            f"REFERENCES {schema_editor.quote_name(batches)} (id) DEFERRABLE INITIALLY DEFERRED"
        )


class Migration(migrations.Migration):
    dependencies = [
        ("enrollment", "0013_record_audit"),
        ("reviews", "0007_decision_application_due_on"),
    ]

    operations = [migrations.RunPython(add_constraint, migrations.RunPython.noop)]
