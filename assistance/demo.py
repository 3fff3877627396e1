"""Demo data for the costs-and-assistance pages: a few settlements of last month and one high-cost alert.

Called by the demo seed with persons it has already made (e.g. ``seed_assistance(persons=people[:4])``); safe
to call twice (serial numbers are fixed, alerts unique)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from assistance import services


def seed_assistance(*, persons: Sequence[Any]) -> services.ScanResult:
    system = services.system_user()
    month = services.previous_period()
    rows = []
    for index, person in enumerate(persons):
        # The first person passes the 7,000-yuan monthly threshold; the others stay below it.
        amounts = ("4200.00", "3100.50") if index == 0 else ("380.00",)
        for n, oop in enumerate(amounts):
            rows.append(
                {
                    "serial_number": f"DEMO-{month:%Y%m}-{person.pk}-{n}",
                    "id_number": person.id_number,
                    "settled_on": (month + dt.timedelta(days=3 + 7 * n)).isoformat(),
                    "institution_code": "DEMO-H1" if n else "DEMO-V1",
                    "institution_name": "县人民医院" if n else "村卫生室",
                    "institution_level": "county" if n else "village",
                    "benefit": "" if n or index else "two_diseases",
                    "disease_code": "" if n or index else "M03900",
                    "total_cost": str(Decimal(oop) * 2),
                    "fund_paid": oop,
                    "out_of_pocket": oop,
                }
            )
    services.settlements_record(rows=rows, actor=system, source="demo")
    return services.alerts_scan(period=month, actor=system)
