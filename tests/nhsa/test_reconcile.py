"""Reconciliation with the platform's 5301 (docs/platform.md, "Reconciliation"): the real client, the simulator."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from django.core.management import call_command
from django.db import transaction
from django.test import Client

from enrollment import services
from enrollment.models import Application, TerminationReason
from nhsa import reconcile_services
from nhsa import services as outbox
from nhsa.client import PlatformClient
from nhsa.models import (
    DifferenceKind,
    MessageKind,
    MessageState,
    PlatformDifference,
    PlatformFiling,
    PlatformMessage,
    Resolution,
)
from tests.nhsa import outbox_helpers
from tests.nhsa.outbox_helpers import approved, known

platform = outbox_helpers.platform  # the simulator fixture

pytestmark = pytest.mark.django_db


def filed(world, simulator, person=None, disease=None) -> Application:
    application = approved(world, person, disease)
    if person is None:
        known(simulator, application.person)
    message = PlatformMessage.objects.get(application=application, kind=MessageKind.FILE)
    assert outbox.platform_message_deliver(message_id=message.pk).state == MessageState.SENT
    return application


def differences(run) -> dict[int | None, str]:
    return {d.application_id: d.kind for d in run.differences.all()}


@pytest.fixture
def scene(world, platform):
    """One enrollment of each kind of difference, and one on which both sides agree."""
    agreeing = filed(world, platform)
    # Approved here, the platform lost it (cancelled there by someone else).
    missing = filed(world, platform)
    serial = PlatformFiling.objects.get(application=missing).trt_dcla_detl_sn
    psn_no = outbox.PlatformPerson.objects.get(person=missing.person).psn_no
    assert PlatformClient().cancel_enrollment(serial, psn_no, "lost", msgid=PlatformClient().new_msgid()).ok
    # Ended here, still on the platform: the officer cancelled the 2504.
    ended = filed(world, platform)
    services.application_terminate(application_id=ended.pk, actor=world.admin, reason=TerminationReason.MOVED_OUT)
    cancel = PlatformMessage.objects.get(application=ended, kind=MessageKind.CANCEL)
    outbox.platform_message_cancel(message_id=cancel.pk, actor=world.officer)
    # Dates differ: the end date here changed after filing.
    dates = filed(world, platform)
    Application.objects.filter(pk=dates.pk).update(valid_until=dates.valid_until - dt.timedelta(days=31))
    # Disease differs: our filing's serial holds another disease on the platform.
    disease = filed(world, platform)
    psn_no = outbox.PlatformPerson.objects.get(person=disease.person).psn_no
    other = PlatformClient().file_enrollment(
        {**outbox.filing_payload(disease, psn_no), "opsp_dise_code": "M01600", "opsp_dise_name": "糖尿病"},
        msgid=PlatformClient().new_msgid(),
    )
    assert other.ok
    old_serial = PlatformFiling.objects.get(application=disease).trt_dcla_detl_sn
    assert PlatformClient().cancel_enrollment(old_serial, psn_no, "x", msgid=PlatformClient().new_msgid()).ok
    PlatformFiling.objects.filter(application=disease).update(trt_dcla_detl_sn=other.trt_dcla_detl_sn)
    return {"agreeing": agreeing, "missing": missing, "ended": ended, "dates": dates, "disease": disease}


def test_reconciliation_finds_each_kind_of_difference(world, scene):
    run = reconcile_services.reconcile_region(region=world.province, actor=world.admin)
    assert run.error == "" and run.persons == 5 and run.finished_at is not None
    assert differences(run) == {
        scene["missing"].pk: DifferenceKind.MISSING_ON_PLATFORM,
        scene["ended"].pk: DifferenceKind.ENDED_HERE,
        scene["dates"].pk: DifferenceKind.DATES_DIFFER,
        scene["disease"].pk: DifferenceKind.DISEASE_DIFFERS,
    }


def test_each_action_resolves_its_difference(world, scene, platform):
    run = reconcile_services.reconcile_region(region=world.province, actor=world.admin)
    by_app = {d.application_id: d for d in run.differences.all()}
    resent = reconcile_services.difference_resolve(
        difference_id=by_app[scene["missing"].pk].pk, actor=world.officer, action="resend"
    )
    assert resent.resolution == Resolution.RESENT and resent.message.kind == MessageKind.FILE
    cancelled = reconcile_services.difference_resolve(
        difference_id=by_app[scene["ended"].pk].pk, actor=world.officer, action="cancel"
    )
    assert cancelled.message.kind == MessageKind.CANCEL
    assert cancelled.message.payload["trt_dcla_detl_sn"] == by_app[scene["ended"].pk].trt_dcla_detl_sn
    for key in ("dates", "disease"):
        accepted = reconcile_services.difference_resolve(
            difference_id=by_app[scene[key].pk].pk, actor=world.officer, action="accept"
        )
        assert accepted.resolution == Resolution.ACCEPTED and accepted.resolved_by == world.officer
        assert accepted.resolved_at is not None
    with pytest.raises(Exception, match="already resolved"):
        reconcile_services.difference_resolve(difference_id=resent.pk, actor=world.officer, action="accept")
    # The messages go out; the next run no longer finds the re-sent or the cancelled one.
    PlatformFiling.objects.filter(application=scene["missing"]).delete()
    for message in (resent.message, cancelled.message):
        assert outbox.platform_message_deliver(message_id=message.pk).state == MessageState.SENT
    again = reconcile_services.reconcile_region(region=world.province, actor=world.admin)
    assert set(differences(again)) == {scene["dates"].pk, scene["disease"].pk}


def test_only_officers_resolve(world, scene):
    run = reconcile_services.reconcile_region(region=world.province, actor=world.admin)
    difference = run.differences.first()
    with pytest.raises(Exception, match="officers"):
        reconcile_services.difference_resolve(difference_id=difference.pk, actor=world.clerk, action="accept")


def test_in_flight_messages_are_no_difference(world, platform):
    application = approved(world)
    known(platform, application.person)
    run = reconcile_services.reconcile_region(region=world.province, actor=world.admin)
    assert run.differences.count() == 0  # its filing is still queued


def test_command_page_and_exports(world, scene):
    out = io.StringIO()
    call_command("platform_reconcile", "--region", world.province.code, "--date", "2026-12-01", stdout=out)
    assert "4 differences" in out.getvalue()
    run = reconcile_services.PlatformReconciliation.objects.get()
    assert run.day == dt.date(2026, 12, 1)
    web = Client()
    web.force_login(world.officer)
    assert web.get("/platform/reconciliations/").status_code == 200
    page = web.get(f"/platform/reconciliations/{run.pk}/").content.decode()
    assert page.count('id="difference-') == 4
    csv = b"".join(web.get(f"/platform/reconciliations/{run.pk}/differences.csv").streaming_content).decode("utf-8")
    assert len(csv.strip().splitlines()) == 5
    xlsx = web.get(f"/platform/reconciliations/{run.pk}/differences.xlsx")
    assert xlsx.status_code == 200 and b"".join(xlsx.streaming_content)[:2] == b"PK"
    difference = PlatformDifference.objects.filter(kind=DifferenceKind.DATES_DIFFER).get()
    assert web.post(f"/platform/differences/{difference.pk}/accept/").status_code == 302
    difference.refresh_from_db()
    assert difference.resolution == Resolution.ACCEPTED
    clerk = Client()
    clerk.force_login(world.clerk)
    assert clerk.get(f"/platform/reconciliations/{run.pk}/").status_code == 403


def test_nightly_job_runs_one_reconciliation_per_province(world, scene):
    from nhsa import tasks

    assert tasks.reconcile_all() == 1
    with transaction.atomic():
        assert reconcile_services.PlatformReconciliation.objects.get().region == world.province
