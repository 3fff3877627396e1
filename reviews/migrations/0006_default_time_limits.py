"""Default promised working days (承诺时限), editable in the admin: 15 for a chronic application and 20 for a
special one from a complete filing; 5 for each review stage from entering it."""

from django.db import migrations

DEFAULTS = [
    ("11", "", 15),
    ("11", "initial_review", 5),
    ("12", "", 20),
    ("12", "initial_review", 5),
    ("12", "recheck", 5),
    ("12", "approval", 5),
]


def seed(apps, schema_editor):
    ReviewTimeLimit = apps.get_model("reviews", "ReviewTimeLimit")
    for disease_type, stage, days in DEFAULTS:
        ReviewTimeLimit.objects.get_or_create(
            region=None, disease_type=disease_type, stage=stage, defaults={"working_days": days}
        )


def unseed(apps, schema_editor):
    ReviewTimeLimit = apps.get_model("reviews", "ReviewTimeLimit")
    for disease_type, stage, _days in DEFAULTS:
        ReviewTimeLimit.objects.filter(region=None, disease_type=disease_type, stage=stage).delete()


class Migration(migrations.Migration):
    dependencies = [("reviews", "0005_deadlines_supplements")]

    operations = [migrations.RunPython(seed, unseed)]
