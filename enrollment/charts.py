"""Report charts: one plotly figure per report table, coloured by what each series means.

The same meaning has the same colour on every chart (approved green, rejected red, waiting amber …), the
legend sits above the plot in one horizontal row so it never covers the axis labels, and long category
names (diseases, institutions) are drawn as horizontal bars with their names on the left. Apps above
enrollment use ``MEANING_COLOURS`` and ``series_colour`` for their own report panels.
"""

from __future__ import annotations

import json
from typing import Any

# Colour by meaning, shared by every chart.
OK, BAD, WAIT, INFO, NEUTRAL, EXTRA = "#1a7f37", "#c62828", "#e0a100", "#0b5cad", "#8a94a6", "#6f42c1"
MEANING_COLOURS: dict[str, str] = {
    "approved": OK,
    "on_time": OK,
    "passed": OK,
    "renewal_filed": OK,
    "within_7": OK,
    "rejected": BAD,
    "overdue": BAD,
    "failed": BAD,
    "over_60": BAD,
    "terminated": BAD,
    "returned": WAIT,
    "pending": WAIT,
    "in_review": WAIT,
    "expiring": WAIT,
    "within_60": WAIT,
    "within_30": "#7cb342",
    "filed": INFO,
    "decided": INFO,
    "renewals": EXTRA,
    "withdrawn": NEUTRAL,
    "expired": NEUTRAL,
}
_FALLBACK = (INFO, EXTRA, "#00838f", NEUTRAL, "#5d4037")
HORIZONTAL = ("by_disease", "by_institution")
STACKED = ("by_disease", "by_institution", "time_to_decision")


def series_colour(key: str, index: int = 0) -> str:
    return MEANING_COLOURS.get(key, _FALLBACK[index % len(_FALLBACK)])


def has_data(table: Any) -> bool:
    """Whether a report table has anything to draw (rows with a number above zero)."""
    numeric = [key for key, _label in table.columns]
    return any(isinstance(row.get(key), int | float) and row.get(key) for row in table.rows for key in numeric)


def report_figure(table: Any) -> dict[str, Any]:
    """A plotly figure of one report table (plain data for Plotly.newPlot), validated by plotly itself."""
    import plotly.graph_objects as go

    label_column = table.columns[0][0] if table.key not in HORIZONTAL else None
    labels = table.values(label_column) if label_column else table.values(table.columns[1][0])
    series = table.columns[1:] if label_column else table.columns[2:]
    if table.key == "time_to_decision":
        series = [c for c in series if c[0] != "decided"]
    horizontal = table.key in HORIZONTAL
    bars = []
    for index, (key, label) in enumerate(series):
        values = table.values(key)
        bars.append(
            go.Bar(
                name=str(label),
                x=values if horizontal else labels,
                y=labels if horizontal else values,
                orientation="h" if horizontal else "v",
                marker={"color": series_colour(key, index)},
            )
        )
    height = max(320, 90 + 28 * len(labels)) if horizontal else 320
    category_axis = {"type": "category", "automargin": True}
    value_axis = {"automargin": True, "rangemode": "tozero"}
    figure = go.Figure(
        data=bars,
        layout=go.Layout(
            barmode="stack" if table.key in STACKED else "group",
            margin={"l": 10, "r": 10, "t": 40, "b": 10},
            height=height,
            # One row above the plot: never over the bars or the axis labels.
            legend={"orientation": "h", "x": 0, "xanchor": "left", "y": 1.02, "yanchor": "bottom"},
            xaxis=value_axis if horizontal else category_axis,
            yaxis={**category_axis, "autorange": "reversed"} if horizontal else value_axis,
        ),
    )
    return json.loads(figure.to_json())
