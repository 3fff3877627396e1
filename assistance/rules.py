"""The assistance arithmetic, free of the database: policy terms, the category rule table and one settlement's
lines. docs/assistance.md gives the rules with their sources.

Money is ``Decimal`` yuan; every computed amount is rounded to the fen with ROUND_HALF_UP (``yuan``), the way
a settlement desk rounds (0.005 → 0.01), never with floats.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from enrollment.models import SupportCategory

CENT = Decimal("0.01")
ZERO = Decimal("0.00")


def yuan(value: Any) -> Decimal:
    """An amount in yuan with 2 places, ROUND_HALF_UP; floats are refused (they are not exact)."""
    if isinstance(value, float):
        raise TypeError("amounts are Decimal, never float")
    return Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class Rule:
    category: str
    ratio: Decimal
    annual_cap: Decimal | None = None
    deductible: Decimal = ZERO


# The defaults of a region without its own table. 特困人员 and 孤儿: 100 %; the other key assistance groups
# (低保对象, 脱贫人口): 75 %; the extended groups (防返贫监测对象): 70 % (a Jiangsu city's one-window
# medical assistance; docs/assistance.md). No cap and no deductible unless the region sets them.
DEFAULT_RULES: dict[str, Rule] = {
    SupportCategory.EXTREME_HARDSHIP: Rule(SupportCategory.EXTREME_HARDSHIP, Decimal("1.000")),
    SupportCategory.ORPHAN: Rule(SupportCategory.ORPHAN, Decimal("1.000")),
    SupportCategory.MINIMUM_LIVING: Rule(SupportCategory.MINIMUM_LIVING, Decimal("0.750")),
    SupportCategory.POVERTY_ALLEVIATED: Rule(SupportCategory.POVERTY_ALLEVIATED, Decimal("0.750")),
    SupportCategory.MONITORED: Rule(SupportCategory.MONITORED, Decimal("0.700")),
}
DEFAULT_THRESHOLD_MONTH = Decimal("7000.00")
DEFAULT_TWO_DISEASES_RATIO = Decimal("0.900")
DEFAULT_RETROACTIVE_MONTHS = 6


@dataclass(frozen=True)
class Terms:
    """A region's policy as the computation needs it."""

    threshold_month: Decimal = DEFAULT_THRESHOLD_MONTH
    rolling_12m_threshold: Decimal | None = None
    two_diseases_ratio: Decimal = DEFAULT_TWO_DISEASES_RATIO
    retroactive_months: int = DEFAULT_RETROACTIVE_MONTHS
    rules: dict[str, Rule] = field(default_factory=lambda: dict(DEFAULT_RULES))

    def best_rule(self, categories: Iterable[str]) -> Rule | None:
        """A person holding several categories on a day is assisted under the most generous one (highest
        ratio, then lowest deductible, then highest cap)."""
        candidates = [self.rules[c] for c in categories if c in self.rules]
        if not candidates:
            return None
        return max(
            candidates,
            key=lambda r: (r.ratio, -r.deductible, r.annual_cap if r.annual_cap is not None else Decimal("1e12")),
        )


@dataclass
class YearTotals:
    """What a person's calendar year has used so far: out-of-pocket counted toward the deductible, and
    category assistance counted toward the cap."""

    deductible_used: Decimal = ZERO
    assistance: Decimal = ZERO


@dataclass(frozen=True)
class Facts:
    settled_on: dt.date
    total_cost: Decimal
    fund_paid: Decimal
    out_of_pocket: Decimal
    benefit: str
    institution_level: str


@dataclass(frozen=True)
class Line:
    kind: str  # LineKind value
    category: str
    ratio: Decimal
    base: Decimal
    deductible_applied: Decimal
    amount: Decimal


def settlement_lines(facts: Facts, rule: Rule | None, terms: Terms, totals: YearTotals) -> list[Line]:
    """The regular lines of one settlement; ``totals`` (the person's year so far) is advanced.

    1. 两病 medication settled at village or township level is reimbursed at the policy ratio of its total cost:
       what the fund paid short of that is topped up (never more than the person paid).
    2. Category assistance on what the person still carries: the year's deductible first, then the ratio, then
       the year's cap.
    """
    from assistance.models import PRIMARY_CARE_LEVELS, Benefit, LineKind

    lines: list[Line] = []
    remaining = facts.out_of_pocket
    if facts.benefit == Benefit.TWO_DISEASES and facts.institution_level in PRIMARY_CARE_LEVELS:
        expected = yuan(facts.total_cost * terms.two_diseases_ratio)
        top_up = min(max(expected - facts.fund_paid, ZERO), remaining)
        lines.append(Line(LineKind.TWO_DISEASES, "", terms.two_diseases_ratio, facts.total_cost, ZERO, yuan(top_up)))
        remaining -= top_up
    if rule is not None:
        deductible = min(remaining, max(rule.deductible - totals.deductible_used, ZERO))
        totals.deductible_used += deductible
        eligible = remaining - deductible
        amount = yuan(eligible * rule.ratio)
        if rule.annual_cap is not None:
            amount = min(amount, max(rule.annual_cap - totals.assistance, ZERO))
        totals.assistance += amount
        lines.append(Line(LineKind.CATEGORY, rule.category, rule.ratio, yuan(remaining), yuan(deductible), amount))
    return lines
