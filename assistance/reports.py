"""Report tables of costs and assistance: monthly totals by region, by category and by disease, and alerts by
how they were handled. Built from ``selectors.monthly_totals`` (aggregated in SQL, scoped to the viewer); the
reports page section, its charts and the CSV exports show the same numbers."""

from __future__ import annotations

import json
from typing import Any

from django.utils.translation import gettext_lazy as _

from assistance import selectors
from assistance.models import AlertKind, AlertState, Benefit, LineKind
from assistance.rules import ZERO, yuan
from enrollment.models import SupportCategory
from enrollment.report_selectors import Table, report_window
from kernel import roles

TABLES = ("by_region", "by_category", "by_disease", "alerts")


def months_param(raw: str | None) -> int:
    return min(36, max(1, int(raw))) if raw and raw.isdigit() else 12


def _money(value: Any) -> str:
    return str(yuan(value if value is not None else ZERO))


def tables(user: roles.AnyUser, *, months: int = 12) -> dict[str, Table]:
    start, end = report_window(months)
    data = selectors.monthly_totals(user, period_from=start, period_to=end)
    categories = dict(SupportCategory.choices)
    kinds = dict(LineKind.choices)
    benefits = dict(Benefit.choices)
    result = {
        "by_region": Table(
            "by_region",
            _("Settlements by month and region"),
            [
                ("month", _("month")),
                ("region", _("region")),
                ("settlements", _("settlements")),
                ("persons", _("persons")),
                ("total_cost", _("total cost")),
                ("fund_paid", _("fund payment")),
                ("out_of_pocket", _("out-of-pocket")),
            ],
            [
                {
                    "month": f"{r['period']:%Y-%m}",
                    "region": f"{r['region__code']} {r['region__name']}",
                    "settlements": r["settlements"],
                    "persons": r["persons"],
                    "total_cost": _money(r["total_cost"]),
                    "fund_paid": _money(r["fund_paid"]),
                    "out_of_pocket": _money(r["out_of_pocket"]),
                }
                for r in data["by_region"]
            ],
        ),
        "by_category": Table(
            "by_category",
            _("Assistance by month and category"),
            [
                ("month", _("month")),
                ("kind", _("kind")),
                ("category", _("category")),
                ("persons", _("persons")),
                ("amount", _("assistance")),
            ],
            [
                {
                    "month": f"{r['period']:%Y-%m}",
                    "kind": str(kinds.get(r["kind"], r["kind"])),
                    "category": str(categories.get(r["category"], r["category"] or "—")),
                    "persons": r["persons"],
                    "amount": _money(r["amount"]),
                }
                for r in data["by_category"]
            ],
        ),
        "by_disease": Table(
            "by_disease",
            _("门慢/门特/两病 costs by month and disease"),
            [
                ("month", _("month")),
                ("benefit", _("benefit")),
                ("disease", _("disease code")),
                ("settlements", _("settlements")),
                ("total_cost", _("total cost")),
                ("out_of_pocket", _("out-of-pocket")),
            ],
            [
                {
                    "month": f"{r['period']:%Y-%m}",
                    "benefit": str(benefits.get(r["benefit"], r["benefit"])),
                    "disease": r["disease_code"],
                    "settlements": r["settlements"],
                    "total_cost": _money(r["total_cost"]),
                    "out_of_pocket": _money(r["out_of_pocket"]),
                }
                for r in data["by_disease"]
            ],
        ),
    }
    states = dict(AlertState.choices)
    alert_rows: dict[tuple[str, str], dict[str, Any]] = {}
    for r in data["alerts"]:
        key = (f"{r['period']:%Y-%m}", r["kind"])
        row = alert_rows.setdefault(
            key, {"month": key[0], "kind": str(dict(AlertKind.choices).get(r["kind"], r["kind"])), "total": 0}
        )
        row[r["state"]] = r["alerts"]
        row["total"] += r["alerts"]
    for row in alert_rows.values():
        for state in AlertState.values:
            row.setdefault(state, 0)
    result["alerts"] = Table(
        "alerts",
        _("High-cost alerts and how they were handled"),
        [("month", _("month")), ("kind", _("kind")), ("total", _("alerts"))]
        + [(state, states[state]) for state in AlertState.values],
        list(alert_rows.values()),
    )
    return result


def table(name: str, user: roles.AnyUser, *, months: int = 12) -> Table:
    return tables(user, months=months)[name]


def _by_month(table: Table, value_column: str) -> tuple[list[str], list[float]]:
    totals: dict[str, Any] = {}
    for row in table.rows:
        totals[row["month"]] = totals.get(row["month"], ZERO) + type(ZERO)(str(row[value_column]))
    months = sorted(totals)
    # Plotly draws numbers: the chart gets floats, the table and CSV keep the exact Decimal strings.
    return months, [float(totals[m]) for m in months]


def chart(table: Table) -> dict[str, Any]:
    """A plotly figure (plain data for Plotly.newPlot) of one table, validated by plotly itself."""
    import plotly.graph_objects as go

    if table.key == "alerts":
        data = [
            go.Bar(name=str(label), x=table.values("month"), y=table.values(key)) for key, label in table.columns[3:]
        ]
    elif table.key == "by_region":
        data = [
            go.Bar(name=str(label), x=_by_month(table, key)[0], y=_by_month(table, key)[1])
            for key, label in table.columns[4:]
        ]
    else:
        column = "amount" if table.key == "by_category" else "out_of_pocket"
        months, values = _by_month(table, column)
        data = [go.Bar(name=str(dict(table.columns)[column]), x=months, y=values)]
    figure = go.Figure(
        data=data,
        layout=go.Layout(
            barmode="stack" if table.key == "alerts" else "group",
            margin={"l": 60, "r": 10, "t": 10, "b": 60},
            height=300,
            legend={"orientation": "h"},
            xaxis={"type": "category"},
        ),
    )
    return json.loads(figure.to_json())


def report_panel(request: Any) -> dict[str, Any] | None:
    """enrollment.selectors.REPORT_PANELS: the costs-and-assistance section of the reports page."""
    if not selectors.may_work_assistance(request.user):
        return None
    months = months_param(request.GET.get("months"))
    built = tables(request.user, months=months)
    return {
        "template": "assistance/_report_panel.html",
        "months": months,
        "tables": [(t, chart(t), f"assistance-{t.key}") for t in built.values()],
    }
