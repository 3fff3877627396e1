"""公示: publishing a batch's approved list (masked), the public pages, objections that hold an entry and their
resolution, the notice period's edges, and the pages' permissions."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.test import Client
from django.utils import timezone

from enrollment.models import Application, AuditEntry, State
from kernel.errors import InvalidInput, NotPermitted, RuleViolation
from oversight import services
from oversight.models import NoticePolicy, ObjectionState, OversightAuditEntry, mask_name
from tests.factories import staff_user
from tests.oversight.helpers import batch_approvals
from tests.reviews.helpers import SHANGHAI

pytestmark = pytest.mark.django_db

APRIL_1 = dt.datetime(2026, 4, 1, 9, 0, tzinfo=SHANGHAI)


def named(world, name):
    return world.person(name=name)


@pytest.fixture
def published(world):
    from tests.reviews.helpers import FEBRUARY, diagnosed

    names = ["张三", "李小明", "欧阳娜娜"]
    apps = [diagnosed(world, person=named(world, name), at=FEBRUARY) for name in names]
    batch, _ = batch_approvals(world, 0)
    from tests.oversight.helpers import first_reviewer
    from tests.reviews.helpers import claim_and_decide, item_of

    first = first_reviewer(world)
    with time_machine.travel(dt.datetime(2026, 3, 10, 10, 0, tzinfo=SHANGHAI), tick=False):
        for application in apps:
            claim_and_decide(item_of(application), first)
    with time_machine.travel(APRIL_1, tick=False):
        notice = services.notice_publish(batch_id=batch.pk, actor=world.officer)
    return notice, [Application.objects.select_related("person").get(pk=a.pk) for a in apps]


def test_mask_name():
    assert [mask_name(n) for n in ("张三", "李小明", "欧阳娜娜", "王", "", " 李 小明 ")] == [
        "张*",
        "李*明",
        "欧**娜",
        "*",
        "",
        "李*明",
    ]


def test_publish_snapshots_the_masked_approved_list(world, published):
    notice, apps = published
    assert (notice.starts_on, notice.ends_on, notice.days) == (dt.date(2026, 4, 1), dt.date(2026, 4, 7), 7)
    entries = list(notice.entries.order_by("number"))
    assert [e.masked_name for e in entries] == ["张*", "李*明", "欧**娜"]
    for entry, application in zip(entries, apps, strict=True):
        assert entry.masked_id_number == application.person.masked_id_number
        assert entry.masked_id_number != application.person.id_number
        assert (entry.disease_name, entry.institution_name) == ("高血压病", "县医院")
    audit = OversightAuditEntry.objects.get(action="notice_published")
    assert (audit.actor, audit.notice_id, audit.details["entries"]) == (world.officer, notice.pk, 3)
    with pytest.raises(RuleViolation):
        services.notice_publish(batch_id=notice.batch_id, actor=world.officer)


def test_public_page_and_export_never_carry_a_full_name_or_id(world, published, client_for):
    notice, apps = published
    with time_machine.travel(dt.datetime(2026, 4, 3, 12, 0, tzinfo=SHANGHAI), tick=False):
        public = Client().get(f"/notices/{notice.token}/")
        listing = Client().get("/notices/")
        officer = client_for(world.officer)
        csv_bytes = b"".join(officer.get(f"/oversight/notices/{notice.pk}/entries.csv").streaming_content)
        xlsx = officer.get(f"/oversight/notices/{notice.pk}/entries.xlsx")
        xlsx_bytes = b"".join(xlsx.streaming_content)
    assert public.status_code == 200 and listing.status_code == 200
    assert notice.token.encode() in listing.content
    import io

    from openpyxl import load_workbook

    cells = " ".join(
        str(c) for row in load_workbook(io.BytesIO(xlsx_bytes)).active.iter_rows(values_only=True) for c in row
    )
    for application in apps:
        person = application.person
        for content in (public.content, csv_bytes, listing.content):
            assert person.id_number.encode() not in content
            assert person.name.encode() not in content
            assert person.id_number[6:14].encode() not in content  # not even the birth date
        assert person.id_number not in cells and person.name not in cells
        assert person.masked_id_number.encode() in public.content and person.masked_id_number.encode() in csv_bytes
        # No application id or person id on the public page either.
        assert f"/applications/{application.pk}/".encode() not in public.content
    assert "李*明".encode() in public.content and "李*明" in cells


def test_public_page_only_during_the_notice_period(world, published):
    notice, _apps = published
    for moment, status in (
        (dt.datetime(2026, 3, 31, 23, 59, tzinfo=SHANGHAI), 404),
        (dt.datetime(2026, 4, 1, 0, 0, tzinfo=SHANGHAI), 200),
        (dt.datetime(2026, 4, 7, 23, 59, tzinfo=SHANGHAI), 200),
        (dt.datetime(2026, 4, 8, 0, 0, tzinfo=SHANGHAI), 404),
    ):
        with time_machine.travel(moment, tick=False):
            assert Client().get(f"/notices/{notice.token}/").status_code == status, moment
    assert Client().get("/notices/not-a-token/").status_code == 404


@pytest.mark.parametrize(
    ("published_on", "days", "ends_on"),
    [
        (dt.date(2026, 1, 25), 7, dt.date(2026, 1, 31)),  # ends on a month end
        (dt.date(2026, 2, 25), 7, dt.date(2026, 3, 3)),  # over the end of February
        (dt.date(2028, 2, 25), 7, dt.date(2028, 3, 2)),  # leap year: 29 February counts
        (dt.date(2026, 9, 28), 7, dt.date(2026, 10, 4)),  # over the National Day holiday: calendar days
        (dt.date(2026, 12, 28), 7, dt.date(2027, 1, 3)),  # over the year end
        (dt.date(2026, 12, 31), 5, dt.date(2027, 1, 4)),
    ],
)
def test_notice_period_edges_in_calendar_days(world, published_on, days, ends_on):
    batch, _ = batch_approvals(world, 1)
    with time_machine.travel(dt.datetime.combine(published_on, dt.time(16, 0), tzinfo=SHANGHAI), tick=False):
        notice = services.notice_publish(batch_id=batch.pk, actor=world.officer, days=days)
    assert (notice.starts_on, notice.ends_on) == (published_on, ends_on)
    entry = notice.entries.get()
    with time_machine.travel(dt.datetime.combine(ends_on, dt.time(23, 59), tzinfo=SHANGHAI), tick=False):
        services.objection_record(entry_id=entry.pk, actor=world.officer, channel="phone", text="late but in time")
    with time_machine.travel(dt.datetime.combine(ends_on + dt.timedelta(days=1), dt.time(0, 0), tzinfo=SHANGHAI)):
        with pytest.raises(RuleViolation) as closed:
            services.objection_record(entry_id=entry.pk, actor=world.officer, channel="phone", text="too late")
    assert closed.value.code == "notice_closed"


def test_policy_days_and_bounds(world):
    NoticePolicy.objects.create(region=world.province, notice_days=5)
    batch, _ = batch_approvals(world, 1)
    with time_machine.travel(APRIL_1, tick=False):
        with pytest.raises(InvalidInput):
            services.notice_publish(batch_id=batch.pk, actor=world.officer, days=3)
        notice = services.notice_publish(batch_id=batch.pk, actor=world.officer)
    assert (notice.days, notice.ends_on) == (5, dt.date(2026, 4, 5))


def test_objection_holds_and_rejection_releases(world, published):
    notice, apps = published
    entry = notice.entries.get(number=2)
    with time_machine.travel(dt.datetime(2026, 4, 2, 10, 0, tzinfo=SHANGHAI), tick=False):
        first = services.objection_record(
            entry_id=entry.pk, actor=world.officer, channel="letter", text="他已迁出本省", contact="13900001111"
        )
        second = services.objection_record(entry_id=entry.pk, actor=world.officer, channel="phone", text="同上")
        entry.refresh_from_db()
        assert entry.held
        page = Client().get(f"/notices/{notice.token}/")
        assert b"13900001111" not in page.content and "他已迁出本省".encode() not in page.content
        assert b'data-number="2"' in page.content
        services.objection_resolve(objection_id=first.pk, actor=world.officer, upheld=False, resolution="核实：未迁出")
        entry.refresh_from_db()
        assert entry.held  # the second objection is still open
        services.objection_resolve(objection_id=second.pk, actor=world.officer, upheld=False, resolution="同上，未迁出")
    entry.refresh_from_db()
    assert entry.held is False and entry.withdrawn is False
    assert Application.objects.get(pk=apps[1].pk).state == State.APPROVED  # the approval stayed in force
    actions = list(OversightAuditEntry.objects.filter(objection__entry=entry).values_list("action", flat=True))
    assert actions == ["objection_recorded", "objection_recorded", "objection_rejected", "objection_rejected"]
    for row in OversightAuditEntry.objects.all():
        assert "13900001111" not in str(row.details) and "他已迁出本省" not in str(row.details)
    with pytest.raises(RuleViolation):
        services.objection_resolve(
            objection_id=first.pk, actor=world.officer, upheld=True, resolution="x", termination_reason="moved_out"
        )


def test_upheld_objection_terminates_through_the_service(world, published):
    notice, apps = published
    entry = notice.entries.get(number=1)
    with time_machine.travel(dt.datetime(2026, 4, 3, 10, 0, tzinfo=SHANGHAI), tick=False):
        objection = services.objection_record(entry_id=entry.pk, actor=world.officer, channel="phone", text="已去世")
        result = services.objection_resolve(
            objection_id=objection.pk,
            actor=world.officer,
            upheld=True,
            resolution="民政核实死亡",
            termination_reason="death",
        )
    assert result.terminated
    application = Application.objects.get(pk=apps[0].pk)
    assert (application.state, application.ended_on, application.termination_reason) == (
        State.TERMINATED,
        dt.date(2026, 4, 3),
        "death",
    )
    audit = AuditEntry.objects.filter(application=application, transition="terminate").get()
    assert audit.is_system and world.officer.username in audit.reason  # carried out on the officer's resolution
    entry.refresh_from_db()
    assert entry.withdrawn and not entry.held
    assert OversightAuditEntry.objects.get(action="objection_upheld").actor == world.officer
    objection.refresh_from_db()
    assert objection.state == ObjectionState.UPHELD


def test_upheld_objection_terminates_with_its_own_reason_from_the_page(world, published, client_for):
    """The officer picks no termination reason: an upheld objection ends the enrollment as ``objection_upheld``,
    the officer's resolution in the note."""
    notice, apps = published
    entry = notice.entries.get(number=2)
    with time_machine.travel(dt.datetime(2026, 4, 3, 10, 0, tzinfo=SHANGHAI), tick=False):
        objection = services.objection_record(entry_id=entry.pk, actor=world.officer, channel="phone", text="已迁出")
        page = client_for(world.officer).get(f"/oversight/notices/{notice.pk}/")
        assert b'name="termination_reason"' not in page.content
        response = client_for(world.officer).post(
            f"/oversight/objections/{objection.pk}/uphold/", {"resolution": "医保转出省外已核实"}
        )
    assert response.status_code == 302
    application = Application.objects.get(pk=apps[1].pk)
    assert (application.state, application.termination_reason) == (State.TERMINATED, "objection_upheld")
    audit = AuditEntry.objects.filter(application=application, transition="terminate").get()
    assert audit.reason_code == "objection_upheld" and "医保转出省外已核实" in audit.reason
    details = OversightAuditEntry.objects.get(action="objection_upheld").details
    assert (details["terminated"], details["termination_reason"]) == (True, "objection_upheld")


def test_scope_of_the_services(world, published):
    notice, _apps = published
    entry = notice.entries.first()
    other_officer = staff_user("center_officer", institution=world.other_clinic)
    with time_machine.travel(APRIL_1, tick=False):
        for actor in (other_officer, world.reviewer, world.clerk):
            with pytest.raises(NotPermitted):
                services.objection_record(entry_id=entry.pk, actor=actor, channel="phone", text="x")
        with pytest.raises(NotPermitted):
            services.notice_publish(batch_id=notice.batch_id, actor=other_officer)


PAGES = ("/oversight/notices/", "/oversight/notices/{pk}/", "/oversight/notices/{pk}/entries.csv")


def test_pages_refuse_clinic_staff_and_hide_other_regions(world, published, client_for):
    notice, _apps = published
    other_officer = staff_user("center_officer", institution=world.other_clinic)
    with time_machine.travel(APRIL_1, tick=False):
        for path in PAGES:
            path = path.format(pk=notice.pk)
            assert client_for(world.clerk).get(path).status_code == 403, path
            assert client_for(world.physician_user).get(path).status_code == 403, path
            assert client_for(world.officer).get(path).status_code == 200, path
        assert client_for(other_officer).get(f"/oversight/notices/{notice.pk}/").status_code == 404
        entry = notice.entries.first()
        response = client_for(other_officer).post(
            f"/oversight/notice-entries/{entry.pk}/objections/", {"channel": "phone", "text": "x"}
        )
        assert response.status_code == 404
        assert (
            client_for(world.clerk)
            .post(f"/oversight/notice-entries/{entry.pk}/objections/", {"channel": "phone", "text": "x"})
            .status_code
            == 403
        )
    entry.refresh_from_db()
    assert not entry.held


def _clear_rate_limit_counts():
    from django.core.cache import caches

    from oversight.views import RATE_LIMIT_CACHE

    caches[RATE_LIMIT_CACHE].delete_many(
        [
            f"public-notice:127.0.0.1:{int(dt.datetime(2026, 4, 2, 10, m, tzinfo=SHANGHAI).timestamp() // 60)}"
            for m in (0, 1)
        ]
    )


def test_public_pages_are_rate_limited(world, published, settings):
    notice, _apps = published
    settings.PUBLIC_NOTICE_REQUESTS_PER_MINUTE = 3
    _clear_rate_limit_counts()
    with time_machine.travel(dt.datetime(2026, 4, 2, 10, 0, 5, tzinfo=SHANGHAI), tick=False):
        statuses = [Client().get(f"/notices/{notice.token}/").status_code for _ in range(5)]
    assert statuses == [200, 200, 200, 429, 429]
    with time_machine.travel(dt.datetime(2026, 4, 2, 10, 1, 5, tzinfo=SHANGHAI), tick=False):
        assert Client().get(f"/notices/{notice.token}/").status_code == 200  # the next minute
    _clear_rate_limit_counts()


def test_rate_limit_is_counted_in_the_shared_cache_across_processes(world, published, settings, monkeypatch):
    """Each web process holds its own cache clients, and its own per-process "default" cache: the count lives in
    the "shared" cache (Redis in production), so one process's requests add to another's. Two cache handlers
    stand for the two processes here: each opens its own client of the configured backend."""
    from django.core.cache import CacheHandler

    from oversight import views

    assert views.RATE_LIMIT_CACHE == "shared"
    notice, _apps = published
    settings.PUBLIC_NOTICE_REQUESTS_PER_MINUTE = 3
    _clear_rate_limit_counts()
    first, second = CacheHandler(), CacheHandler()
    assert first["shared"] is not second["shared"]
    statuses = []
    try:
        with time_machine.travel(dt.datetime(2026, 4, 2, 10, 0, 5, tzinfo=SHANGHAI), tick=False):
            for process in (first, second, first, second, first):
                monkeypatch.setattr(views, "caches", process)  # the handler the view takes its cache from
                statuses.append(Client().get(f"/notices/{notice.token}/").status_code)
            key = f"public-notice:127.0.0.1:{int(timezone.now().timestamp() // 60)}"
            assert first["shared"].get(key) == second["shared"].get(key) == 5
            assert first["default"].get(key) is None and second["default"].get(key) is None
    finally:
        for process in (first, second):
            process.close_all()
        _clear_rate_limit_counts()
    assert statuses == [200, 200, 200, 429, 429]


def test_application_page_shows_the_hold_without_the_objection(world, published, client_for):
    notice, apps = published
    entry = notice.entries.get(number=3)
    with time_machine.travel(APRIL_1, tick=False):
        services.objection_record(entry_id=entry.pk, actor=world.officer, channel="visit", text="机密异议内容")
    page = client_for(world.clerk).get(f"/applications/{apps[2].pk}/")
    assert page.status_code == 200
    assert b"oversight-panel" in page.content and b"under verification" in page.content
    assert "机密异议内容".encode() not in page.content
