"""Read-only queries behind the administrators' reports (issue 5), scoped to the viewer like every selector.

Each function returns a ``Table``: column keys with labels and rows of plain values, so that the page,
its chart and its CSV export show the same numbers. Aggregation happens in the database (one grouped
query per table), so the reports stay cheap at a city's scale.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, cast

from django.db.models import Count, F, Q, QuerySet
from django.db.models.functions import TruncMonth
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from enrollment import selectors
from enrollment.models import COVERING_STATES, AuditEntry
from enrollment.periods import add_months
from kernel import roles

DECISION_TRANSITIONS = ("approve", "approve_immediately", "reject", "return_for_information")
FINAL_DECISIONS = ("approve", "approve_immediately", "reject")
# Time from filing to decision, in days: (key, label, lower bound, upper bound or None).
DECISION_BUCKETS: tuple[tuple[str, Any, int, int | None], ...] = (
    ("within_7", _("within 7 days"), 0, 7),
    ("within_30", _("8–30 days"), 7, 30),
    ("within_60", _("31–60 days"), 30, 60),
    ("over_60", _("over 60 days"), 60, None),
)


@dataclass
class Table:
    key: str
    title: Any
    columns: list[tuple[str, Any]]
    rows: list[dict[str, Any]] = field(default_factory=list)

    def values(self, column: str) -> list[Any]:
        return [row[column] for row in self.rows]


def report_window(months: int, *, today: dt.date | None = None) -> tuple[dt.date, dt.date]:
    """The first day of the month ``months - 1`` months ago, and today."""
    today = today or timezone.localdate()
    return add_months(today.replace(day=1), -(months - 1)), today


def _month(value: Any) -> str:
    if isinstance(value, dt.datetime):
        value = timezone.localtime(value) if timezone.is_aware(value) else value
    return f"{value:%Y-%m}" if value else ""


def _start_of(day: dt.date) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, dt.time.min))


def filings_per_month(user: roles.AnyUser, *, months: int = 12) -> Table:
    start, _today = report_window(months)
    rows = (
        selectors.applications_visible_to(user)
        .filter(filed_at__gte=_start_of(start))
        .annotate(month=TruncMonth("filed_at"))
        .order_by()
        .values("month")
        # Not annotated as "renewals": that is the name of Application's reverse relation to its renewals.
        .annotate(filed=Count("id"), renewal_count=Count("id", filter=Q(kind="renewal")))
        .order_by("month")
    )
    return Table(
        "filings",
        _("Filings per month"),
        [("month", _("month")), ("filed", _("filed")), ("renewals", _("of which renewals"))],
        [{"month": _month(r["month"]), "filed": r["filed"], "renewals": r["renewal_count"]} for r in rows],
    )


def _decisions(user: roles.AnyUser, months: int) -> QuerySet[AuditEntry]:
    start, _today = report_window(months)
    return AuditEntry.objects.filter(
        application__in=selectors.applications_visible_to(user).order_by().values("pk"),
        transition__in=DECISION_TRANSITIONS,
        at__gte=_start_of(start),
    ).order_by()


def _decision_counts() -> dict[str, Any]:
    return {
        "approved": Count("id", filter=Q(transition__in=("approve", "approve_immediately"))),
        "rejected": Count("id", filter=Q(transition="reject")),
        "returned": Count("id", filter=Q(transition="return_for_information")),
    }


DECISION_COLUMNS = [("approved", _("approved")), ("rejected", _("rejected")), ("returned", _("returned"))]


# The decision tables by one foreign key of the application: (key, title, relation, code column label,
# (name column key, label)).
_DECISIONS_BY = {
    "by_disease": (_("Approvals and rejections by disease"), "disease", _("code"), ("disease", _("disease"))),
    "by_institution": (
        _("Approvals and rejections by filing institution"),
        "filing_institution",
        _("institution code"),
        ("institution", _("institution")),
    ),
}


def _decisions_by(user: roles.AnyUser, months: int, key: str) -> Table:
    """Approvals, rejections and returns counted per one foreign key of the application (``_DECISIONS_BY``)."""
    title, relation, code_label, (name_key, name_label) = _DECISIONS_BY[key]
    code, name = f"application__{relation}__code", f"application__{relation}__name"
    rows = _decisions(user, months).values(code, name).annotate(**_decision_counts()).order_by(code)
    return Table(
        key,
        title,
        [("code", code_label), (name_key, name_label), *DECISION_COLUMNS],
        [
            {
                "code": r[code],
                name_key: r[name],
                "approved": r["approved"],
                "rejected": r["rejected"],
                "returned": r["returned"],
            }
            for r in rows
        ],
    )


def decisions_by_disease(user: roles.AnyUser, *, months: int = 12) -> Table:
    return _decisions_by(user, months, "by_disease")


def decisions_by_institution(user: roles.AnyUser, *, months: int = 12) -> Table:
    return _decisions_by(user, months, "by_institution")


def time_to_decision(user: roles.AnyUser, *, months: int = 12) -> Table:
    """Final decisions (approval or rejection) per month, by days from filing to decision."""
    filed = F("application__filed_at")
    buckets: dict[str, Any] = {}
    for key, _label, low, high in DECISION_BUCKETS:
        condition = Q(at__gte=filed + dt.timedelta(days=low)) if low else Q()
        if high is not None:
            condition &= Q(at__lt=filed + dt.timedelta(days=high))
        buckets[key] = Count("id", filter=condition)
    # The buckets are annotated by names known at run time, which the plugin's row type cannot list.
    rows = cast(
        "QuerySet[AuditEntry, dict[str, Any]]",
        _decisions(user, months)
        .filter(transition__in=FINAL_DECISIONS)
        .annotate(month=TruncMonth("at"))
        .values("month")
        .annotate(decided=Count("id"), **buckets)
        .order_by("month"),
    )
    return Table(
        "time_to_decision",
        _("Time from filing to decision"),
        [("month", _("month")), ("decided", _("decided")), *[(key, label) for key, label, _l, _h in DECISION_BUCKETS]],
        [{"month": _month(r["month"]), **{k: r[k] for k in ("decided", *buckets)}} for r in rows],
    )


def expiring_per_month(user: roles.AnyUser, *, months: int = 12) -> Table:
    """Covering enrollments by the month their validity ends, from this month on."""
    today = timezone.localdate()
    start = today.replace(day=1)
    end = add_months(start, months)
    rows = (
        selectors.applications_visible_to(user)
        .filter(state__in=COVERING_STATES, valid_until__gte=start, valid_until__lt=end)
        .annotate(month=TruncMonth("valid_until"))
        .order_by()
        .values("month")
        .annotate(
            expiring=Count("id", distinct=True),
            renewal_filed=Count("id", filter=Q(renewals__state__in=selectors.ACTIVE_STATES), distinct=True),
        )
        .order_by("month")
    )
    return Table(
        "expiring",
        _("Enrollments expiring per month"),
        [("month", _("month")), ("expiring", _("expiring")), ("renewal_filed", _("renewal filed"))],
        [{"month": _month(r["month"]), "expiring": r["expiring"], "renewal_filed": r["renewal_filed"]} for r in rows],
    )


REPORTS = {
    "filings": filings_per_month,
    "by_disease": decisions_by_disease,
    "by_institution": decisions_by_institution,
    "time_to_decision": time_to_decision,
    "expiring": expiring_per_month,
}


def report(name: str, user: roles.AnyUser, *, months: int = 12) -> Table:
    return REPORTS[name](user, months=months)
