"""The decision that decides an application keeps the application's promised date (承诺时限, 补正 pauses counted),
so that the on-time rates per region and institution are one aggregate query (reviews.selectors.on_time_rates).

Existing decisions are filled the way the report computed it until now: from the complete filing
(``diagnosed_at``), the whole-application time limit of the application's region (its own row, else the nearest
ancestor's, else the default) and the working days of every answered 补正 request.
"""

from django.db import migrations, models

DECIDED_STATES = ("approved", "rejected", "expiring", "expired", "renewed", "terminated")
CHUNK = 2000


def fill(apps, schema_editor):
    from django.utils import timezone

    from reviews.workdays import WorkCalendar

    Region = apps.get_model("enrollment", "Region")
    StageDecision = apps.get_model("reviews", "StageDecision")
    SupplementRequest = apps.get_model("reviews", "SupplementRequest")
    ReviewTimeLimit = apps.get_model("reviews", "ReviewTimeLimit")
    calendar = WorkCalendar(
        day_model=apps.get_model("reviews", "CalendarDay"), year_model=apps.get_model("reviews", "CalendarYear")
    )
    parent_of = dict(Region.objects.values_list("pk", "parent_id"))
    limits = {
        (region_id, disease_type): days
        for region_id, disease_type, days in ReviewTimeLimit.objects.filter(stage="").values_list(
            "region_id", "disease_type", "working_days"
        )
    }

    def limit_for(region_id, disease_type):
        node, depth = region_id, 0
        while node is not None and depth < 10:  # the lineage, nearest first (as reviews.deadlines.time_limits_for)
            if (node, disease_type) in limits:
                return limits[(node, disease_type)]
            node, depth = parent_of.get(node), depth + 1
        return limits.get((None, disease_type))

    # The last approve or reject of each decided application is the decision that decided it.
    deciding = {}
    for pk, application_id in (
        StageDecision.objects.filter(
            decision__in=("approve", "reject"),
            application__state__in=DECIDED_STATES,
            application__diagnosed_at__isnull=False,
            application__decided_at__isnull=False,
        )
        .exclude(application__kind="two_diseases")
        .order_by("application_id", "decided_at", "id")
        .values_list("pk", "application_id")
        .iterator(chunk_size=CHUNK)
    ):
        deciding[application_id] = pk
    application_ids = sorted(deciding)
    for start in range(0, len(application_ids), CHUNK):
        chunk = application_ids[start : start + CHUNK]
        paused = {}
        for application_id, days in SupplementRequest.objects.filter(
            application_id__in=chunk, state="answered"
        ).values_list("application_id", "paused_working_days"):
            paused[application_id] = paused.get(application_id, 0) + days
        updates = []
        for application_id, region_id, disease_type, diagnosed_at in (
            apps.get_model("enrollment", "Application")
            .objects.filter(pk__in=chunk)
            .values_list("pk", "region_id", "disease__disease_type", "diagnosed_at")
        ):
            days = limit_for(region_id, disease_type)
            if days is None:
                continue
            due_on = calendar.add_working_days(timezone.localdate(diagnosed_at), days + paused.get(application_id, 0))
            updates.append(StageDecision(pk=deciding[application_id], application_due_on=due_on))
        StageDecision.objects.bulk_update(updates, ["application_due_on"], batch_size=1000)


class Migration(migrations.Migration):
    # After 0008 (added first, from 0006): one line of migrations.
    dependencies = [("reviews", "0006_default_time_limits")]

    operations = [
        migrations.AddField(
            model_name="stagedecision",
            name="application_due_on",
            field=models.DateField(
                blank=True,
                help_text=(
                    "Set on the decision that decided the application: its promised date (承诺时限, 补正 pauses "
                    "counted), for the on-time rates per region and institution."
                ),
                null=True,
                verbose_name="application was due on",
            ),
        ),
        migrations.RunPython(fill, migrations.RunPython.noop),
    ]
