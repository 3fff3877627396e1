"""Settlements in, assistance computed by category, 两病 at primary level, retroactive assistance, alerts."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
import time_machine

from assistance import services
from assistance.models import (
    AlertKind,
    AlertState,
    AssistanceAuditEntry,
    AssistanceLine,
    AssistancePolicy,
    AssistanceRule,
    HighCostAlert,
    LineKind,
    Settlement,
)
from assistance.rules import yuan
from enrollment.models import AppendOnlyError
from enrollment.services import person_status
from kernel.errors import InvalidInput, NotPermitted, RuleViolation
from tests.assistance.helpers import category, record, row

pytestmark = pytest.mark.django_db
D = Decimal


@pytest.fixture(autouse=True)
def _clock():
    with time_machine.travel(dt.datetime(2026, 4, 10, 9, 0, tzinfo=dt.UTC), tick=False):
        yield


def lines(person, kind=None):
    queryset = AssistanceLine.objects.filter(person=person).order_by("settlement__settled_on", "pk")
    return list(queryset.filter(kind=kind) if kind else queryset)


def test_yuan_rounds_half_up_and_refuses_floats():
    assert yuan(D("0.005")) == D("0.01") and yuan(D("2.675")) == D("2.68") and yuan(D("-0.005")) == D("-0.01")
    with pytest.raises(TypeError):
        yuan(0.1)


def test_settlements_recorded_once_by_serial_and_conflicts_refused(world):
    person = world.person()
    first = row(person, day=dt.date(2026, 3, 5), oop="120.50", fund="300.00", serial_number="SER-1")
    result = record(world.officer, first)
    assert result.created == 1 and result.counts == {"new": 1}
    stored = Settlement.objects.get(serial_number="SER-1")
    assert stored.out_of_pocket == D("120.50") and stored.total_cost == D("420.50")
    assert stored.period == dt.date(2026, 3, 1) and stored.region == world.region
    again = record(world.officer, first)
    assert again.created == 0 and again.rows[0].status == "duplicate"
    changed = dict(first, out_of_pocket="99.00")
    refused = record(world.officer, changed)
    assert refused.rows[0].status == "invalid" and refused.rows[0].reason_code == "serial_conflict"
    assert Settlement.objects.count() == 1
    assert AssistanceAuditEntry.objects.filter(action="settlements_recorded").count() == 1


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"out_of_pocket": "1.001"}, "invalid_amount"),
        ({"out_of_pocket": "-1"}, "invalid_amount"),
        ({"out_of_pocket": "abc"}, "invalid_amount"),
        ({"total_cost": "10.00", "out_of_pocket": "20.00"}, "invalid_amount"),
        ({"settled_on": "2026-04-11"}, "invalid_date"),  # tomorrow
        ({"settled_on": "2026-02-30"}, "invalid_date"),
        ({"institution_level": "hospital"}, "invalid_level"),
        ({"benefit": "两病"}, "invalid_disease_code"),
        ({"disease_code": "M03900"}, "invalid_benefit"),
        ({"id_number": "110101199003070000"}, "invalid_id_number"),
        ({"serial_number": "=cmd|x"}, "invalid_serial_number"),
    ],
)
def test_invalid_rows_are_reported_not_stored(world, change, code):
    person = world.person()
    result = record(world.officer, row(person, day=dt.date(2026, 3, 5), oop="10.00", **change))
    assert result.rows[0].status == "invalid" and result.rows[0].reason_code == code
    assert not Settlement.objects.exists()


def test_scope_clinic_sends_its_own_institution_only_officer_its_region(world):
    person = world.person()
    other = world.person(insured_region=world.other_region)
    own = row(person, day=dt.date(2026, 3, 5), oop="10.00", institution_code=world.county.code)
    foreign = row(person, day=dt.date(2026, 3, 5), oop="10.00", institution_code=world.other_clinic.code)
    result = record(world.clerk, own, foreign)
    assert [r.status for r in result.rows] == ["new", "invalid"] and result.rows[1].reason_code == "out_of_scope"
    officer = record(world.officer, row(other, day=dt.date(2026, 3, 5), oop="10.00"))
    assert officer.rows[0].reason_code == "out_of_scope"
    with pytest.raises(NotPermitted):
        record(world.reviewer, own)


def test_category_assistance_ratio_deductible_and_cap_over_the_year(world):
    person = world.person()
    policy = AssistancePolicy.objects.create(region=world.province)
    AssistanceRule.objects.create(
        policy=policy, category="minimum_living", ratio=D("0.75"), deductible=D("100.00"), annual_cap=D("1000.00")
    )
    category(person, "minimum_living", dt.date(2026, 1, 1))
    record(
        world.officer,
        row(person, day=dt.date(2026, 1, 10), oop="60.00"),  # all deductible
        row(person, day=dt.date(2026, 2, 10), oop="200.00"),  # 40 deductible left, then 75 % of 160 = 120
        row(person, day=dt.date(2026, 3, 10), oop="2000.00"),  # 1500 capped at 1000 - 120 = 880
        row(person, day=dt.date(2026, 3, 11), oop="100.00"),  # cap reached: 0
    )
    got = [(x.deductible_applied, x.amount) for x in lines(person, LineKind.CATEGORY)]
    assert got == [(D("60.00"), D("0.00")), (D("40.00"), D("120.00")), (D("0.00"), D("880.00")), (D("0"), D("0"))]
    assert all(x.ratio == D("0.750") for x in lines(person))


def test_categories_by_date_and_defaults(world):
    person = world.person()
    category(person, "monitored", dt.date(2026, 1, 1), dt.date(2026, 2, 28))
    category(person, "extreme_hardship", dt.date(2026, 3, 1))
    record(
        world.officer,
        row(person, day=dt.date(2025, 12, 31), oop="100.00"),  # no category yet: no line
        row(person, day=dt.date(2026, 2, 28), oop="100.00"),  # monitored 70 %
        row(person, day=dt.date(2026, 3, 1), oop="100.01"),  # 特困 100 %
    )
    got = [(x.category, x.amount) for x in lines(person)]
    assert got == [("monitored", D("70.00")), ("extreme_hardship", D("100.01"))]


def test_two_diseases_at_village_and_township_topped_up_to_the_policy_ratio(world):
    person = world.person()
    common = {"benefit": "两病", "disease_code": "M03900"}
    record(
        world.officer,
        row(
            person, day=dt.date(2026, 3, 2), total="100.00", fund="70.00", oop="30.00", institution_level="村", **common
        ),
        row(
            person,
            day=dt.date(2026, 3, 3),
            total="100.00",
            fund="70.00",
            oop="30.00",
            institution_level="乡镇",
            **common,
        ),
        row(
            person,
            day=dt.date(2026, 3, 4),
            total="100.00",
            fund="70.00",
            oop="30.00",
            institution_level="county",
            **common,
        ),
        row(
            person,
            day=dt.date(2026, 3, 5),
            total="33.33",
            fund="0.00",
            oop="33.33",
            institution_level="village",
            **common,
        ),
    )
    got = [x.amount for x in lines(person, LineKind.TWO_DISEASES)]
    assert got == [D("20.00"), D("20.00"), D("30.00")]  # 90 % of total less the fund; county: none; 29.997→30.00


def test_retroactive_assistance_in_the_window_listed_once(world):
    person = world.person()
    AssistancePolicy.objects.create(region=world.region, retroactive_months=6)
    record(
        world.officer,
        row(person, day=dt.date(2025, 9, 30), oop="500.00"),  # before the 6-month window
        row(person, day=dt.date(2025, 10, 1), oop="200.00"),  # first day of the window
        row(person, day=dt.date(2026, 3, 31), oop="100.00"),  # last day before recognition
    )
    assert not AssistanceLine.objects.exists()
    person_status.person_categories_replace(
        person=person,
        categories=["orphan"],
        as_of=dt.date(2026, 4, 1),
        source="office",
        reference="r1",
        actor=world.officer,
    )
    retro = lines(person, LineKind.RETROACTIVE)
    assert [(x.settlement.settled_on, x.amount) for x in retro] == [
        (dt.date(2025, 10, 1), D("200.00")),
        (dt.date(2026, 3, 31), D("100.00")),
    ]
    audit = AssistanceAuditEntry.objects.get(action="retroactive_assistance_listed")
    assert audit.person == person and audit.details["amount"] == "300.00" and audit.is_system
    # Recomputing the same recognition lists nothing more.
    assert services.retroactive_assistance(recognition_ids=[retro[0].recognition_id], actor=world.officer) == 0
    assert AssistanceLine.objects.filter(kind=LineKind.RETROACTIVE).count() == 2


def test_retroactive_pays_only_the_difference_to_a_lower_category(world):
    person = world.person()
    category(person, "monitored", dt.date(2026, 1, 1))
    record(world.officer, row(person, day=dt.date(2026, 2, 10), oop="1000.00"))
    assert lines(person)[0].amount == D("700.00")
    person_status.person_categories_replace(
        person=person,
        categories=["monitored", "minimum_living"],
        as_of=dt.date(2026, 3, 1),
        source="office",
        reference="r2",
        actor=world.officer,
    )
    assert [x.amount for x in lines(person, LineKind.RETROACTIVE)] == [D("50.00")]


@pytest.mark.parametrize("months", [6, 12])
def test_retroactive_window_edges_follow_the_policy(world, months):
    person = world.person()
    AssistancePolicy.objects.create(region=world.region, retroactive_months=months)
    start = dt.date(2026, 2, 29) if False else dt.date(2026, 3, 1)
    inside = dt.date(2025, 9, 1) if months == 6 else dt.date(2025, 3, 1)
    outside = inside - dt.timedelta(days=1)
    record(world.officer, row(person, day=outside, oop="10.00"), row(person, day=inside, oop="10.00"))
    person_status.person_categories_replace(
        person=person, categories=["orphan"], as_of=start, source="office", reference="r3", actor=world.officer
    )
    assert [x.settlement.settled_on for x in lines(person, LineKind.RETROACTIVE)] == [inside]


def _month_of(world, person, amounts, month=dt.date(2026, 3, 1)):
    record(world.officer, *[row(person, day=month + dt.timedelta(days=i), oop=a) for i, a in enumerate(amounts)])


def test_alerts_over_the_threshold_once_flagged_first(world):
    poor, rich, below = world.person(), world.person(), world.person()
    category(poor, "minimum_living", dt.date(2025, 1, 1))
    _month_of(world, poor, ["4000.00", "3000.01"])
    _month_of(world, rich, ["9000.00"])
    _month_of(world, below, ["3000.00", "4000.00"])  # exactly 7,000: not past it
    _month_of(world, below, ["9000.00"], month=dt.date(2026, 2, 1))  # another month
    result = services.alerts_scan(period=dt.date(2026, 3, 15), actor=world.officer)
    assert result.created == {"month": 2}
    again = services.alerts_scan(period=dt.date(2026, 3, 1), actor=world.officer)
    assert again.created == {"month": 0} and HighCostAlert.objects.count() == 2
    from assistance import selectors

    worklist = list(selectors.alert_worklist(world.officer))
    assert [a.person for a in worklist] == [poor, rich]
    assert worklist[0].has_support_category and worklist[0].amount == D("7000.01")
    assert AssistanceAuditEntry.objects.filter(action="alert_created").count() == 2
    assert list(selectors.alert_worklist(world.other_clerk)) == []


def test_rolling_twelve_month_alert_when_the_policy_sets_it(world):
    person = world.person()
    AssistancePolicy.objects.create(region=world.region, rolling_12m_threshold=D("10000.00"))
    for month in (dt.date(2025, 4, 1), dt.date(2025, 10, 1), dt.date(2026, 3, 1)):
        _month_of(world, person, ["4000.00"], month=month)
    result = services.alerts_scan(period=dt.date(2026, 3, 1), actor=world.officer)
    assert result.created == {"month": 0, "rolling_12m": 1}
    # One month later the April 2025 settlement has left the 12 months: 8,000.
    assert services.alerts_scan(period=dt.date(2026, 4, 1), actor=world.officer).candidates["rolling_12m"] == 0
    alert = HighCostAlert.objects.get()
    assert alert.kind == AlertKind.ROLLING_12M and alert.amount == D("12000.00")


def test_alert_actions_audited_and_guarded(world):
    person = world.person()
    _month_of(world, person, ["8000.00"])
    services.alerts_scan(period=dt.date(2026, 3, 1), actor=world.officer)
    alert = HighCostAlert.objects.get()
    services.alert_act(alert_id=alert.pk, action="acknowledge", actor=world.officer)
    services.alert_act(alert_id=alert.pk, action="refer", actor=world.officer, note="to the civil-affairs office")
    with pytest.raises(RuleViolation):
        services.alert_act(alert_id=alert.pk, action="acknowledge", actor=world.officer)
    with pytest.raises(InvalidInput):
        services.alert_act(alert_id=alert.pk, action="close", actor=world.officer)
    with pytest.raises(InvalidInput):  # another region's officer does not see it
        from tests.factories import staff_user

        services.alert_act(
            alert_id=alert.pk,
            action="close",
            actor=staff_user("center_officer", institution=world.other_clinic),
            note="x",
        )
    services.alert_act(alert_id=alert.pk, action="close", actor=world.admin, note="assistance paid")
    alert.refresh_from_db()
    assert alert.state == AlertState.CLOSED and alert.handled_by == world.admin
    actions = list(AssistanceAuditEntry.objects.filter(alert=alert).values_list("action", flat=True))
    assert actions == ["alert_created", "alert_acknowledge", "alert_refer", "alert_close"]
    entry = AssistanceAuditEntry.objects.filter(alert=alert).last()
    with pytest.raises(AppendOnlyError):
        entry.delete()


@pytest.mark.parametrize(
    ("today", "expected"),
    [
        (dt.datetime(2026, 3, 2, 4, 0), dt.date(2026, 2, 1)),
        (dt.datetime(2026, 1, 2, 4, 0), dt.date(2025, 12, 1)),
        (dt.datetime(2024, 3, 1, 0, 5), dt.date(2024, 2, 1)),  # leap year: February had 29 days
    ],
)
def test_monthly_run_scans_last_month(world, today, expected):
    person = world.person()
    with time_machine.travel(today.replace(tzinfo=dt.timezone(dt.timedelta(hours=8))), tick=False):
        day = expected + dt.timedelta(days=27)
        _month_of(world, person, ["7500.00"], month=day)
        result = services.monthly_run(actor=services.system_user())
    assert result.period == expected and result.created["month"] == 1


def test_demo_seed_makes_settlements_and_one_alert(world):
    from assistance.demo import seed_assistance

    persons = [world.person() for _ in range(3)]
    result = seed_assistance(persons=persons)
    again = seed_assistance(persons=persons)
    assert result.created == {"month": 1} and again.created == {"month": 0}
    assert Settlement.objects.count() == 4 and HighCostAlert.objects.get().person == persons[0]
