"""Costs and medical assistance (医疗救助): monthly settlement data, high-cost alerts, assistance by category.

Models hold fields, constraints and the alert's FSM transitions; services (assistance/services.py) are the
only writers. Amounts are yuan as ``Decimal`` with 2 places (``DecimalField(max_digits=12, decimal_places=2)``),
never floats; every computed amount is quantized with ROUND_HALF_UP (``assistance.money.yuan``).
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django_fsm import FSMField, FSMModelMixin, transition

from enrollment.models import Institution, Person, PersonCategory, Region, SupportCategory
from kernel.models import AppendOnlyModel, ImportReportRow, ImportState, UploadedImport

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise


def money(verbose_name: StrOrPromise, **kwargs: Any) -> models.DecimalField:
    return models.DecimalField(verbose_name, max_digits=12, decimal_places=2, **kwargs)


# ---------------------------------------------------------------------------
# Policy per region
# ---------------------------------------------------------------------------


class AssistancePolicy(models.Model):
    """A region's assistance policy; a region without one uses its nearest ancestor's, else these defaults."""

    region = models.OneToOneField(
        Region, on_delete=models.CASCADE, related_name="assistance_policy", verbose_name=_("region")
    )
    threshold_month = money(
        _("monthly high-cost threshold (yuan)"),
        default=Decimal("7000.00"),
        validators=[MinValueValidator(Decimal("0.01"))],
        help_text=_("An alert when a person's out-of-pocket cost in a month passes this amount."),
    )
    rolling_12m_threshold = money(
        _("rolling 12-month threshold (yuan)"),
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal("0.01"))],
        help_text=_("Empty: no rolling 12-month alert."),
    )
    two_diseases_ratio = models.DecimalField(
        _("两病 medication ratio at village and township level"),
        max_digits=4,
        decimal_places=3,
        default=Decimal("0.900"),
        validators=[MinValueValidator(Decimal("0")), MaxValueValidator(Decimal("1"))],
    )
    retroactive_months = models.PositiveSmallIntegerField(
        _("retroactive window (months)"),
        default=6,
        validators=[MinValueValidator(6), MaxValueValidator(12)],
        help_text=_("Costs settled this many months before a category is recognised are recomputed (6–12)."),
    )
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        ordering = ["region__code"]
        verbose_name = _("assistance policy")
        verbose_name_plural = _("assistance policies")
        constraints = [
            models.CheckConstraint(
                condition=Q(retroactive_months__gte=6, retroactive_months__lte=12), name="assistance_retro_6_to_12"
            ),
            models.CheckConstraint(
                condition=Q(two_diseases_ratio__gte=0, two_diseases_ratio__lte=1), name="assistance_two_ratio_0_1"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.region}"


class AssistanceRule(models.Model):
    """One row of a policy's table: support category → ratio, annual cap, annual deductible (起付线)."""

    policy = models.ForeignKey(AssistancePolicy, on_delete=models.CASCADE, related_name="rules")
    category = models.CharField(_("category"), max_length=30, choices=SupportCategory.choices)
    ratio = models.DecimalField(
        _("assistance ratio"),
        max_digits=4,
        decimal_places=3,
        validators=[MinValueValidator(Decimal("0")), MaxValueValidator(Decimal("1"))],
    )
    annual_cap = money(_("annual cap (yuan)"), null=True, blank=True, help_text=_("Empty: no cap."))
    deductible = money(_("annual deductible (yuan)"), default=Decimal("0.00"), validators=[MinValueValidator(0)])

    class Meta:
        ordering = ["policy", "category"]
        verbose_name = _("assistance rule")
        verbose_name_plural = _("assistance rules")
        constraints = [
            models.UniqueConstraint(fields=["policy", "category"], name="assistance_rule_per_category"),
            models.CheckConstraint(condition=Q(ratio__gte=0, ratio__lte=1), name="assistance_rule_ratio_0_1"),
        ]

    def __str__(self) -> str:
        return f"{self.category} {self.ratio}"


# ---------------------------------------------------------------------------
# Settlements
# ---------------------------------------------------------------------------


class CareLevel(models.TextChoices):
    """The level of the settling institution on the primary-care axis (村/乡/县/市/省), not the hospital grade
    (enrollment.InstitutionLevel 1–3): it decides where 两病 medication is reimbursed at the policy ratio."""

    VILLAGE = "village", _("village (村卫生室)")
    TOWNSHIP = "township", _("township (乡镇卫生院)")
    COUNTY = "county", _("county")
    CITY = "city", _("city")
    PROVINCE = "province", _("province")


PRIMARY_CARE_LEVELS: tuple[str, ...] = (CareLevel.VILLAGE, CareLevel.TOWNSHIP)


class Benefit(models.TextChoices):
    NONE = "", _("ordinary outpatient / inpatient")
    CHRONIC = "chronic", _("门慢 (chronic outpatient)")
    SPECIAL = "special", _("门特 (special outpatient)")
    TWO_DISEASES = "two_diseases", _("两病 medication")


# The states of every uploaded import (kernel.models.ImportState), under the name this app's callers use.
SettlementImportState = ImportState


class SettlementImport(UploadedImport):
    """One uploaded file of monthly settlement data (结算数据) and what became of it (the file, its state and
    counts: kernel.models.UploadedImport)."""

    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    scope_region = models.ForeignKey(
        Region,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("rows limited to region"),
        help_text=_("Empty: any region (administrators)."),
    )
    committed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta(UploadedImport.Meta):
        verbose_name = _("settlement import")
        verbose_name_plural = _("settlement imports")


class SettlementRowStatus(models.TextChoices):
    NEW = "new", _("new settlement")
    DUPLICATE = "duplicate", _("already recorded (same serial number, same data)")
    INVALID = "invalid", _("invalid")


class SettlementImportRow(ImportReportRow):
    """One line of an import's per-row report (its line, reason code and message: kernel.models.ImportReportRow)."""

    settlement_import = models.ForeignKey(SettlementImport, on_delete=models.CASCADE, related_name="rows")
    serial_number = models.CharField(_("serial number"), max_length=60, blank=True)
    status = models.CharField(_("status"), max_length=12, choices=SettlementRowStatus.choices)
    written = models.BooleanField(_("written by the commit"), default=False)

    class Meta:
        ordering = ["settlement_import", "line", "id"]
        verbose_name = _("settlement report row")
        verbose_name_plural = _("settlement report rows")
        indexes = [models.Index(fields=["settlement_import", "status"], name="settlement_row_status")]

    def __str__(self) -> str:
        return f"{self.settlement_import_id}:{self.line} {self.status}"


class Settlement(models.Model):
    """One settlement (结算) of a person's visit: what it cost, what the fund paid, what the person paid.

    Idempotent by the sender's own serial number (结算流水号): the same settlement sent again is a duplicate,
    a different one under a used number is refused. ``period`` is the first day of the settlement's month and
    ``region`` the person's insured region when it was recorded, so that monthly totals are one index scan.
    """

    serial_number = models.CharField(_("serial number"), max_length=60, unique=True)
    person = models.ForeignKey(Person, on_delete=models.PROTECT, related_name="settlements", verbose_name=_("person"))
    region = models.ForeignKey(Region, on_delete=models.PROTECT, related_name="+", verbose_name=_("insured region"))
    settled_on = models.DateField(_("settlement date"))
    period = models.DateField(_("month"))
    institution_code = models.CharField(_("institution code"), max_length=30)
    institution_name = models.CharField(_("institution name"), max_length=200, blank=True)
    institution_level = models.CharField(_("institution level"), max_length=10, choices=CareLevel.choices)
    institution = models.ForeignKey(
        Institution, null=True, blank=True, on_delete=models.PROTECT, related_name="+", verbose_name=_("institution")
    )
    benefit = models.CharField(_("benefit"), max_length=15, choices=Benefit.choices, blank=True, default="")
    disease_code = models.CharField(_("disease code"), max_length=10, blank=True)
    total_cost = money(_("total cost"))
    fund_paid = money(_("fund payment"))
    out_of_pocket = money(_("out-of-pocket"))
    source = models.CharField(_("source"), max_length=20)
    settlement_import = models.ForeignKey(
        SettlementImport, null=True, blank=True, on_delete=models.SET_NULL, related_name="settlements"
    )
    recorded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    recorded_at = models.DateTimeField(_("recorded at"), default=timezone.now)
    computed_at = models.DateTimeField(_("assistance computed at"), null=True, blank=True)

    class Meta:
        ordering = ["settled_on", "serial_number"]
        verbose_name = _("settlement")
        verbose_name_plural = _("settlements")
        indexes = [
            models.Index(fields=["person", "settled_on"], name="settlement_person_date"),
            models.Index(fields=["period", "region"], name="settlement_period_region"),
            models.Index(fields=["period", "person"], name="settlement_period_person"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(total_cost__gte=0, fund_paid__gte=0, out_of_pocket__gte=0), name="settlement_amounts_ge_0"
            ),
            models.CheckConstraint(
                condition=Q(fund_paid__lte=models.F("total_cost")) & Q(out_of_pocket__lte=models.F("total_cost")),
                name="settlement_parts_le_total",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.serial_number} {self.settled_on}"


class LineKind(models.TextChoices):
    TWO_DISEASES = "two_diseases", _("两病 medication at the policy ratio")
    CATEGORY = "category", _("assistance by category")
    RETROACTIVE = "retroactive", _("retroactive assistance")


class AssistanceLine(models.Model):
    """An amount of assistance for one settlement. The regular lines (两病 top-up, category assistance) exist
    at most once per settlement and kind; a retroactive line at most once per settlement and recognition of a
    category (the ``PersonCategory`` period that caused it), so a recognition recomputed twice pays once."""

    settlement = models.ForeignKey(Settlement, on_delete=models.PROTECT, related_name="lines")
    person = models.ForeignKey(Person, on_delete=models.PROTECT, related_name="+")
    region = models.ForeignKey(Region, on_delete=models.PROTECT, related_name="+")
    period = models.DateField(_("month"))
    kind = models.CharField(_("kind"), max_length=15, choices=LineKind.choices)
    category = models.CharField(_("category"), max_length=30, choices=SupportCategory.choices, blank=True)
    ratio = models.DecimalField(_("ratio"), max_digits=4, decimal_places=3)
    base = money(_("eligible amount"))
    deductible_applied = money(_("deductible applied"), default=Decimal("0.00"))
    amount = money(_("assistance"))
    recognition = models.ForeignKey(
        PersonCategory, null=True, blank=True, on_delete=models.PROTECT, related_name="+", verbose_name=_("recognition")
    )
    created_at = models.DateTimeField(_("computed at"), default=timezone.now)
    paid_at = models.DateTimeField(_("paid at"), null=True, blank=True)

    class Meta:
        ordering = ["settlement", "kind", "id"]
        verbose_name = _("assistance line")
        verbose_name_plural = _("assistance lines")
        indexes = [
            models.Index(fields=["person", "period"], name="assist_line_person_period"),
            models.Index(fields=["period", "region"], name="assist_line_period_region"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["settlement", "kind"], condition=Q(recognition__isnull=True), name="one_regular_line_per_kind"
            ),
            models.UniqueConstraint(
                fields=["settlement", "recognition"],
                condition=Q(recognition__isnull=False),
                name="one_retroactive_line_per_recognition",
            ),
            models.CheckConstraint(condition=Q(amount__gte=0), name="assist_line_amount_ge_0"),
        ]

    def __str__(self) -> str:
        return f"{self.settlement_id} {self.kind} {self.amount}"


# ---------------------------------------------------------------------------
# High-cost alerts
# ---------------------------------------------------------------------------


class AlertKind(models.TextChoices):
    MONTH = "month", _("monthly out-of-pocket above the threshold")
    ROLLING_12M = "rolling_12m", _("12-month out-of-pocket above the threshold")


class AlertState(models.TextChoices):
    OPEN = "open", _("open")
    ACKNOWLEDGED = "acknowledged", _("acknowledged")
    REFERRED = "referred", _("referred to assistance")
    CLOSED = "closed", _("closed")


class HighCostAlert(FSMModelMixin, models.Model):
    """高额费用预警: a person whose out-of-pocket cost passed the region's threshold, once per person, month and
    kind (the unique constraint is the guarantee under double runs and concurrent workers)."""

    person = models.ForeignKey(Person, on_delete=models.PROTECT, related_name="cost_alerts", verbose_name=_("person"))
    region = models.ForeignKey(Region, on_delete=models.PROTECT, related_name="+", verbose_name=_("insured region"))
    period = models.DateField(_("month"))
    kind = models.CharField(_("kind"), max_length=15, choices=AlertKind.choices)
    amount = money(_("out-of-pocket"))
    threshold = money(_("threshold"))
    has_support_category = models.BooleanField(_("holds a support category"), default=False)
    categories = models.JSONField(_("support categories"), default=list, blank=True)
    state = FSMField(_("state"), default=AlertState.OPEN, choices=AlertState.choices, protected=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    scan = models.CharField(max_length=32, editable=False, help_text="The scan run that created it.")
    handled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    handled_at = models.DateTimeField(_("handled at"), null=True, blank=True)
    note = models.TextField(_("note"), blank=True)

    class Meta:
        ordering = ["-has_support_category", "-amount", "id"]
        verbose_name = _("high-cost alert")
        verbose_name_plural = _("high-cost alerts")
        constraints = [
            models.UniqueConstraint(fields=["person", "period", "kind"], name="one_alert_per_person_period_kind")
        ]
        indexes = [models.Index(fields=["region", "state", "period"], name="alert_region_state")]

    def __str__(self) -> str:
        return f"{self.person_id} {self.period:%Y-%m} {self.kind}"

    @transition(field=state, source=AlertState.OPEN, target=AlertState.ACKNOWLEDGED)
    def acknowledge(self) -> None:
        pass

    @transition(field=state, source=(AlertState.OPEN, AlertState.ACKNOWLEDGED), target=AlertState.REFERRED)
    def refer(self) -> None:
        pass

    @transition(
        field=state, source=(AlertState.OPEN, AlertState.ACKNOWLEDGED, AlertState.REFERRED), target=AlertState.CLOSED
    )
    def close(self) -> None:
        pass


class AssistanceAuditEntry(AppendOnlyModel):
    """Every write of the assistance app (imports committed, alerts handled, policies, retroactive runs)."""

    action = models.CharField(_("action"), max_length=40)
    alert = models.ForeignKey(HighCostAlert, null=True, blank=True, on_delete=models.PROTECT, related_name="audit")
    person = models.ForeignKey(Person, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    is_system = models.BooleanField(_("by the system"), default=False)
    at = models.DateTimeField(_("at"), default=timezone.now, db_index=True)
    details = models.JSONField(_("details"), default=dict, blank=True)

    class Meta(AppendOnlyModel.Meta):
        ordering = ["at", "id"]
        verbose_name = _("assistance audit entry")
        verbose_name_plural = _("assistance audit entries")

    def __str__(self) -> str:
        return f"{self.action} at {self.at:%Y-%m-%d %H:%M}"
