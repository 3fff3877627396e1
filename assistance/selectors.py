"""Every non-trivial read of the assistance app, scoped to the viewer.

Who sees what: administrators everything; centre officers the persons insured in their region and the regions
under it (their institution's region); everyone else nothing. Settlements may be sent by those two roles and by
clinic staff for their own institution (a hospital's HIS), see ``may_send_settlements``.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db.models import Count, QuerySet, Sum

from assistance.models import (
    AlertState,
    AssistanceLine,
    AssistancePolicy,
    HighCostAlert,
    LineKind,
    Settlement,
    SettlementImport,
    SettlementImportRow,
)
from assistance.rules import ZERO, Rule, Terms
from enrollment import selectors as enrollment_selectors
from enrollment.models import Person, PersonCategory, Region
from kernel import roles

# ---------------------------------------------------------------------------
# Scope
# ---------------------------------------------------------------------------


def may_work_assistance(user: roles.AnyUser) -> bool:
    return roles.has_any_role(user, roles.CENTER_OFFICER, roles.ADMIN)


def may_send_settlements(user: roles.AnyUser) -> bool:
    return roles.is_system(user) or roles.has_any_role(user, roles.CLINIC_STAFF, roles.CENTER_OFFICER, roles.ADMIN)


def scope_region_ids(user: roles.AnyUser) -> list[int] | None:
    """Region ids the user works for; None = every region (administrators, the system); [] = none."""
    if roles.is_system(user) or roles.has_any_role(user, roles.ADMIN):
        return None
    if not roles.has_any_role(user, roles.CENTER_OFFICER):
        return []
    region_id = enrollment_selectors.user_region_id(user)
    return enrollment_selectors.region_and_descendant_ids(region_id) if region_id else []


def _scoped(queryset: QuerySet, user: roles.AnyUser, field_name: str = "region_id") -> QuerySet:
    ids = scope_region_ids(user)
    if ids is None:
        return queryset
    return queryset.filter(**{f"{field_name}__in": ids})


def alerts_visible_to(user: roles.AnyUser) -> QuerySet[HighCostAlert]:
    return _scoped(HighCostAlert.objects.select_related("person", "region", "handled_by"), user)


def alert_worklist(user: roles.AnyUser, *, state: str = "", period: dt.date | None = None) -> QuerySet[HighCostAlert]:
    """Open work first: persons holding a support category first, then the highest amounts."""
    queryset = alerts_visible_to(user)
    if state:
        queryset = queryset.filter(state=state)
    else:
        queryset = queryset.exclude(state=AlertState.CLOSED)
    if period is not None:
        queryset = queryset.filter(period=period)
    return queryset.order_by("-has_support_category", "-amount", "pk")


def alert_history(alert: HighCostAlert) -> QuerySet:
    return alert.audit.select_related("actor").order_by("at", "pk")


def settlement_imports_visible_to(user: roles.Actor) -> QuerySet[SettlementImport]:
    if not may_work_assistance(user):
        return SettlementImport.objects.none()
    queryset = SettlementImport.objects.select_related("uploaded_by", "scope_region").defer("content")
    if roles.has_any_role(user, roles.ADMIN):
        return queryset
    return queryset.filter(uploaded_by=user)


def settlement_import_rows(record: SettlementImport, status: str | None = None) -> QuerySet[SettlementImportRow]:
    rows = record.rows.all()
    return rows.filter(status=status) if status else rows


def persons_visible_to(user: roles.AnyUser) -> QuerySet[Person]:
    return _scoped(Person.objects.select_related("insured_region"), user, "insured_region_id")


# ---------------------------------------------------------------------------
# Policy
# ---------------------------------------------------------------------------


def _terms(policy: AssistancePolicy | None) -> Terms:
    if policy is None:
        return Terms()
    rules = dict(Terms().rules)
    for rule in policy.rules.all():
        rules[rule.category] = Rule(rule.category, rule.ratio, rule.annual_cap, rule.deductible)
    return Terms(
        threshold_month=policy.threshold_month,
        rolling_12m_threshold=policy.rolling_12m_threshold,
        two_diseases_ratio=policy.two_diseases_ratio,
        retroactive_months=policy.retroactive_months,
        rules=rules,
    )


class PolicyBook:
    """Every region's terms, loaded once: a region without a policy has its nearest ancestor's, else the
    defaults. A category a region's table leaves out keeps its default row."""

    def __init__(self) -> None:
        self.parent = dict(Region.objects.values_list("pk", "parent_id"))
        self.own = {p.region_id: _terms(p) for p in AssistancePolicy.objects.prefetch_related("rules")}
        self._cache: dict[int, Terms] = {}
        self.default = Terms()

    def terms(self, region_id: int) -> Terms:
        if region_id not in self._cache:
            node: int | None = region_id
            found = self.default
            for _depth in range(10):
                if node is None:
                    break
                if node in self.own:
                    found = self.own[node]
                    break
                node = self.parent.get(node)
            self._cache[region_id] = found
        return self._cache[region_id]


def terms_for_region(region: Region) -> Terms:
    return PolicyBook().terms(region.pk)


# ---------------------------------------------------------------------------
# Categories on a date
# ---------------------------------------------------------------------------


def category_periods(person_ids: list[int]) -> dict[int, list[tuple[str, dt.date, dt.date | None]]]:
    periods: dict[int, list[tuple[str, dt.date, dt.date | None]]] = defaultdict(list)
    for person_id, category, start, end in (
        PersonCategory.objects.filter(person_id__in=person_ids)
        .order_by()
        .values_list("person_id", "category", "valid_from", "valid_until")
    ):
        periods[person_id].append((category, start, end))
    return periods


def held_on(periods: list[tuple[str, dt.date, dt.date | None]], day: dt.date) -> list[str]:
    return sorted({c for c, start, end in periods if start <= day and (end is None or day <= end)})


# ---------------------------------------------------------------------------
# The person-month statement (一站式结算单)
# ---------------------------------------------------------------------------


@dataclass
class StatementRow:
    settlement: Settlement
    lines: list[AssistanceLine]
    regular: Decimal
    retroactive: Decimal


@dataclass
class Statement:
    person: Person
    period: dt.date
    rows: list[StatementRow] = field(default_factory=list)
    total_cost: Decimal = ZERO
    fund_paid: Decimal = ZERO
    out_of_pocket: Decimal = ZERO
    two_diseases: Decimal = ZERO
    category: Decimal = ZERO
    retroactive: Decimal = ZERO
    categories: list[str] = field(default_factory=list)

    @property
    def regular(self) -> Decimal:
        return self.two_diseases + self.category

    @property
    def assistance(self) -> Decimal:
        return self.two_diseases + self.category + self.retroactive

    @property
    def person_pays(self) -> Decimal:
        return self.out_of_pocket - self.two_diseases - self.category


def statement(person: Person, period: dt.date) -> Statement:
    """The settlements of a person's month with their assistance (two queries)."""
    result = Statement(person=person, period=period)
    settlements = list(Settlement.objects.filter(person=person, period=period).order_by("settled_on", "serial_number"))
    lines: dict[int, list[AssistanceLine]] = defaultdict(list)
    for line in AssistanceLine.objects.filter(settlement__in=settlements).select_related("recognition"):
        lines[line.settlement_id].append(line)
    for settlement in settlements:
        own = sorted(lines.get(settlement.pk, []), key=lambda line: (line.kind, line.pk))
        regular = sum((x.amount for x in own if x.kind != LineKind.RETROACTIVE), ZERO)
        retro = sum((x.amount for x in own if x.kind == LineKind.RETROACTIVE), ZERO)
        result.rows.append(StatementRow(settlement, own, regular, retro))
        result.total_cost += settlement.total_cost
        result.fund_paid += settlement.fund_paid
        result.out_of_pocket += settlement.out_of_pocket
        for line in own:
            if line.kind == LineKind.TWO_DISEASES:
                result.two_diseases += line.amount
            elif line.kind == LineKind.CATEGORY:
                result.category += line.amount
            else:
                result.retroactive += line.amount
    result.categories = sorted({x.category for row in result.rows for x in row.lines if x.category})
    return result


def person_months(person: Person) -> list[dt.date]:
    return list(
        Settlement.objects.filter(person=person).order_by("-period").values_list("period", flat=True).distinct()
    )


def retroactive_payable(user: roles.AnyUser) -> QuerySet[AssistanceLine]:
    """Retroactive assistance listed for payment and not yet paid, in the viewer's scope."""
    return _scoped(
        AssistanceLine.objects.filter(kind=LineKind.RETROACTIVE, paid_at__isnull=True).select_related(
            "person", "settlement"
        ),
        user,
    ).order_by("person_id", "settlement__settled_on")


# ---------------------------------------------------------------------------
# Reports
# ---------------------------------------------------------------------------


def monthly_totals(user: roles.AnyUser, *, period_from: dt.date, period_to: dt.date) -> dict[str, list[dict[str, Any]]]:
    """Monthly totals by region, by category and by disease, and alerts by state (all aggregated in SQL)."""
    settlements = _scoped(Settlement.objects.filter(period__gte=period_from, period__lte=period_to), user)
    lines = _scoped(AssistanceLine.objects.filter(period__gte=period_from, period__lte=period_to), user)
    alerts = _scoped(HighCostAlert.objects.filter(period__gte=period_from, period__lte=period_to), user)
    by_region = list(
        settlements.values("period", "region__code", "region__name")
        .annotate(
            settlements=Count("pk"),
            persons=Count("person", distinct=True),
            total_cost=Sum("total_cost"),
            fund_paid=Sum("fund_paid"),
            out_of_pocket=Sum("out_of_pocket"),
        )
        .order_by("period", "region__code")
    )
    by_category = list(
        lines.values("period", "kind", "category")
        .annotate(lines=Count("pk"), persons=Count("person", distinct=True), amount=Sum("amount"))
        .order_by("period", "kind", "category")
    )
    by_disease = list(
        settlements.exclude(disease_code="")
        .values("period", "benefit", "disease_code")
        .annotate(settlements=Count("pk"), total_cost=Sum("total_cost"), out_of_pocket=Sum("out_of_pocket"))
        .order_by("period", "benefit", "disease_code")
    )
    by_alert = list(
        alerts.values("period", "kind", "state").annotate(alerts=Count("pk")).order_by("period", "kind", "state")
    )
    return {"by_region": by_region, "by_category": by_category, "by_disease": by_disease, "alerts": by_alert}


def alert_counts(user: roles.AnyUser) -> dict[str, int]:
    counts = dict(alerts_visible_to(user).order_by().values_list("state").annotate(n=Count("pk")))
    return {state: counts.get(state, 0) for state in AlertState.values}
