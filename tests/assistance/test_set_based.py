"""The set-based computation (one INSERT … SELECT per chunk, assistance/sql.py) against the per-row reference
(assistance.rules.settlement_lines) on data chosen to catch the running sums out: a deductible straddling two
settlements and a year end, a cap reached in the middle of a month, a category changing within the year (same
terms, and terms that differ), two categories at once, 两病 at every level with rounding, a settlement arriving
late, and retroactive lines that must stay as they were. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from itertools import count

import pytest
import time_machine
from django.db import connection

from assistance import selectors, services, sql
from assistance.models import AssistanceLine, AssistancePolicy, AssistanceRule, LineKind, Settlement
from tests.assistance.helpers import category

pytestmark = pytest.mark.django_db
D = Decimal
_n = count(1)


@pytest.fixture(autouse=True)
def _clock():
    with time_machine.travel(dt.datetime(2026, 4, 10, 9, 0, tzinfo=dt.UTC), tick=False):
        yield


def settle(world, person, tag, day, oop, *, fund="0.00", total=None, benefit="", level="county"):
    return Settlement.objects.create(
        serial_number=f"{tag}-{next(_n):05d}",
        person=person,
        region=world.region,
        settled_on=day,
        period=day.replace(day=1),
        institution_code="H1",
        institution_level=level,
        benefit=benefit,
        disease_code="M03900" if benefit else "",
        total_cost=D(total) if total else D(oop) + D(fund),
        fund_paid=D(fund),
        out_of_pocket=D(oop),
        source="test",
        recorded_by=world.admin,
    )


def month_data(world, persons, tag, first_half: bool):
    """The same settlements for one twin of each pair; ``first_half`` the ones computed first."""
    p1, p2, p3, p4, p5 = persons
    rows = []
    if first_half:
        rows += [
            settle(world, p1, tag, dt.date(2025, 12, 20), "80.00"),  # deductible 80 of 100
            settle(world, p1, tag, dt.date(2025, 12, 31), "50.01"),  # 20 deductible, 30.01 eligible
            settle(world, p1, tag, dt.date(2026, 1, 1), "150.33"),  # a new year: the deductible again
            settle(world, p1, tag, dt.date(2026, 3, 5), "900.00"),
            settle(world, p1, tag, dt.date(2026, 3, 10), "500.00"),  # the cap is reached on this one
            settle(world, p1, tag, dt.date(2026, 3, 20), "10.00"),  # nothing left
            settle(world, p2, tag, dt.date(2026, 2, 10), "300.00"),  # monitored 70 %
            settle(world, p2, tag, dt.date(2026, 3, 10), "333.33"),  # minimum_living 75 %, same terms
            settle(world, p3, tag, dt.date(2026, 2, 10), "300.00"),  # monitored, deductible 100
            settle(world, p3, tag, dt.date(2026, 3, 10), "333.33"),  # extreme hardship: other terms
            settle(world, p5, tag, dt.date(2026, 3, 1), "77.77"),
        ]
        for level in ("village", "township", "county"):
            rows.append(
                settle(world, p4, tag, dt.date(2026, 3, 2), "30.00", fund="70.00", benefit="two_diseases", level=level)
            )
        rows += [
            settle(world, p4, tag, dt.date(2026, 3, 3), "33.33", benefit="two_diseases", level="village"),
            settle(world, p1, tag, dt.date(2026, 3, 6), "40.00", fund="60.00", benefit="two_diseases", level="village"),
            settle(world, p1, tag, dt.date(2026, 3, 7), "5.00", fund="95.00", benefit="two_diseases", level="township"),
        ]
    else:
        rows += [
            settle(world, p1, tag, dt.date(2026, 2, 1), "100.00"),  # arrives late: the cap is used up
            settle(world, p2, tag, dt.date(2026, 1, 5), "50.00"),  # late, before the year's first one
            settle(world, p3, tag, dt.date(2026, 3, 31), "10.00"),
            settle(world, p4, tag, dt.date(2026, 4, 1), "20.00", fund="5.00", benefit="two_diseases", level="village"),
        ]
    return rows


def snapshot(persons):
    return [
        (
            x.settlement.settled_on,
            x.kind,
            x.category,
            x.ratio,
            x.base,
            x.deductible_applied,
            x.amount,
        )
        for p in persons
        for x in AssistanceLine.objects.filter(person=p)
        .select_related("settlement")
        .order_by("settlement__settled_on", "settlement__serial_number", "kind")
    ]


def test_set_based_equals_the_reference_on_a_tricky_month(world):
    policy = AssistancePolicy.objects.create(region=world.province, two_diseases_ratio=D("0.875"))
    for name, ratio in (("minimum_living", "0.75"), ("monitored", "0.70")):
        AssistanceRule.objects.create(
            policy=policy, category=name, ratio=D(ratio), deductible=D("100.00"), annual_cap=D("1000.00")
        )
    twins = {tag: [world.person() for _ in range(5)] for tag in ("SQL", "REF")}
    for p1, p2, p3, _p4, p5 in twins.values():
        category(p1, "minimum_living", dt.date(2025, 1, 1))
        category(p2, "monitored", dt.date(2026, 1, 1), dt.date(2026, 2, 28))
        category(p2, "minimum_living", dt.date(2026, 3, 1))
        category(p3, "monitored", dt.date(2026, 1, 1), dt.date(2026, 2, 28))
        category(p3, "extreme_hardship", dt.date(2026, 3, 1))
        category(p5, "orphan", dt.date(2026, 1, 1))
        category(p5, "extreme_hardship", dt.date(2026, 1, 1))

    first = {tag: month_data(world, persons, tag, True) for tag, persons in twins.items()}
    # The person-year whose terms change (p3's 2026) is the one the statement leaves to the reference.
    book = selectors.PolicyBook()
    built = sql.irregular_ids(
        settlement_ids=[s.pk for s in first["SQL"]], terms_by_region={world.region.pk: book.terms(world.region.pk)}
    )
    with connection.cursor() as cursor:
        cursor.execute(*built)
        irregular = {row[0] for row in cursor.fetchall()}
    assert irregular == {s.pk for s in first["SQL"] if s.person_id == twins["SQL"][2].pk}

    system = services.system_user()
    assert services.compute_assistance(actor=system, settlement_ids=[s.pk for s in first["SQL"]]) == 17
    assert services.compute_assistance(actor=system, settlement_ids=[s.pk for s in first["REF"]], reference=True) == 17

    # Retroactive lines already listed stay as they are and do not count toward the year's cap.
    for persons in twins.values():
        settlement = Settlement.objects.filter(person=persons[3]).order_by("settled_on", "serial_number").first()
        AssistanceLine.objects.create(
            settlement=settlement,
            person=persons[3],
            region=world.region,
            period=settlement.period,
            kind=LineKind.RETROACTIVE,
            category="orphan",
            ratio=D("1.000"),
            base=D("30.00"),
            amount=D("12.34"),
            recognition=persons[3].categories.create(category="orphan", valid_from=dt.date(2026, 4, 2), source="t"),
        )
    retro_before = list(AssistanceLine.objects.filter(kind=LineKind.RETROACTIVE).values_list("pk", "amount"))

    second = {tag: month_data(world, persons, tag, False) for tag, persons in twins.items()}
    assert services.compute_assistance(actor=system, settlement_ids=[s.pk for s in second["SQL"]]) == 4
    assert services.compute_assistance(actor=system, settlement_ids=[s.pk for s in second["REF"]], reference=True) == 4
    assert services.compute_assistance(actor=system) == 0  # exactly once

    assert snapshot(twins["SQL"]) == snapshot(twins["REF"])
    assert list(AssistanceLine.objects.filter(kind=LineKind.RETROACTIVE).values_list("pk", "amount")) == retro_before

    # And the reference itself says what the rules say.
    p1, p2, p3, p4, p5 = twins["SQL"]

    def amounts(person, kind=LineKind.CATEGORY):
        return [
            (x.settlement.settled_on, x.deductible_applied, x.amount)
            for x in AssistanceLine.objects.filter(person=person, kind=kind).order_by(
                "settlement__settled_on", "settlement__serial_number"
            )
        ]

    got = amounts(p1)
    assert got[:3] == [
        (dt.date(2025, 12, 20), D("80.00"), D("0.00")),
        (dt.date(2025, 12, 31), D("20.00"), D("22.51")),  # 30.01 × 0.75 = 22.5075
        (dt.date(2026, 1, 1), D("100.00"), D("37.75")),  # 50.33 × 0.75 = 37.7475
    ]
    assert sum(a for day, _d, a in got if day.year == 2026) == D("1000.00")  # the cap, reached in March
    assert (dt.date(2026, 2, 1), D("0.00"), D("0.00")) in got  # the late one finds the cap used
    assert [a for _day, _d, a in amounts(p4, LineKind.TWO_DISEASES)] == [
        D("17.50"),  # 87.5 % of 100 less 70 fund, village
        D("17.50"),  # township
        D("29.16"),  # 33.33 × 0.875 = 29.16375
        D("16.88"),  # 25.00 × 0.875 = 21.875 → 21.88, less 5.00 fund
    ]
    assert [c for c in AssistanceLine.objects.filter(person=p5).values_list("category", flat=True)] == [
        "extreme_hardship"
    ]
    assert amounts(p3)[-2:] == [(dt.date(2026, 3, 10), D("0.00"), D("333.33")), (dt.date(2026, 3, 31), D("0"), D("10"))]
    assert AssistanceLine.objects.filter(person=p2, kind=LineKind.CATEGORY).count() == 3
