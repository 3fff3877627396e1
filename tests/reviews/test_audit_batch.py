"""Audit rows name their review batch by id (enrollment sits below reviews); pages and the API show the
batch's label through the reviews app's labeller, and PostgreSQL keeps the foreign-key constraint."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.migrations.loader import MigrationLoader
from django.test import Client
from rest_framework.test import APIClient

from enrollment import selectors
from enrollment.models import AuditEntry
from tests.reviews.helpers import PERIOD, assemble, diagnosed

pytestmark = pytest.mark.django_db


def test_enrollment_migrations_do_not_depend_on_the_reviews_app():
    graph = MigrationLoader(None, ignore_no_migrations=True).graph
    enrollment = [key for key in graph.nodes if key[0] == "enrollment"]
    assert len(enrollment) >= 14
    upward = {(key, parent.key) for key in enrollment for parent in graph.node_map[key].parents}
    below = ("enrollment", "kernel", "auth", "authtoken", "contenttypes")  # itself, the kernel, Django's own
    assert {edge for edge in upward if edge[1][0] not in below} == set()


def test_timeline_and_api_show_the_batch_label(world):
    application = diagnosed(world)
    batch = assemble(world)
    entry = AuditEntry.objects.get(application=application, transition="enqueue")
    assert entry.batch_id == batch.pk
    label = f"{world.region.code} {PERIOD}"
    assert [e.batch_label for e in selectors.attach_batch_labels([entry])] == [label]

    api = APIClient()
    api.force_authenticate(world.admin)
    timeline = api.get(f"/api/v1/applications/{application.pk}/").json()["timeline"]
    assert [(t["transition"], t["batch"]) for t in timeline if t["batch"]] == [("enqueue", label)]
    assert {t["batch"] for t in timeline if t["transition"] != "enqueue"} == {None}

    web = Client()
    web.force_login(world.admin)
    page = web.get(f"/applications/{application.pk}/").content.decode()
    assert label in page


def test_a_batch_unknown_to_every_labeller_shows_its_number():
    entry = AuditEntry(batch_id=987654)
    assert selectors.attach_batch_labels([entry])[0].batch_label == "#987654"
    assert selectors.attach_batch_labels([AuditEntry()])[0].batch_label is None


@pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite cannot add a constraint to a table")
def test_postgresql_refuses_an_audit_row_naming_a_batch_that_does_not_exist(world):
    application = diagnosed(world)
    with pytest.raises(IntegrityError), transaction.atomic():
        AuditEntry.objects.create(application=application, transition="enqueue", batch_id=987654)
        connection.check_constraints()
