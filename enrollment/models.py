"""Reference data, persons, applications and the audit trail (门诊慢特病 备案).

Models hold fields, choices, constraints and the FSM transitions. A transition changes only
``self`` and checks its guards; services (enrollment/services.py) are the only callers.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django_fsm import FSMField, FSMModelMixin, transition

from kernel import roles

# The append-only base lives in the kernel (assistance and oversight use it too); its names stay importable here.
from kernel.models import AppendOnlyError, AppendOnlyModel, AuditEntryQuerySet  # noqa: F401
from kernel.sql import model_field

# ---------------------------------------------------------------------------
# Reference data (docs/design.md)
# ---------------------------------------------------------------------------


class Region(models.Model):
    """医保区划: an administrative division, nested province → city → county → township.

    Province, city and county have the 6-digit code of the national division list; a township
    (乡镇/街道, where a county delegates review to its health centres) has the 9-digit code that
    extends its county's.
    """

    code = models.CharField(
        _("region code"),
        max_length=9,
        unique=True,
        validators=[
            RegexValidator(
                r"^\d{6}(\d{3})?$", _("A region code is 6 digits (province to county) or 9 digits (township).")
            )
        ],
    )
    name = models.CharField(_("name"), max_length=100)
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="children", verbose_name=_("parent")
    )

    class Meta:
        ordering = ["code"]
        verbose_name = _("region")
        verbose_name_plural = _("regions")

    def __str__(self) -> str:
        return f"{self.code} {self.name}"

    @property
    def is_township(self) -> bool:
        return len(self.code) == 9

    @property
    def province_code(self) -> str:
        """The 6-digit code of the province this region lies in (its first two digits + 0000)."""
        return province_code(self.code)

    def lineage(self) -> list[Region]:
        """This region and its ancestors, nearest first."""
        chain: list[Region] = []
        node: Region | None = self
        while node is not None and len(chain) < 10:
            chain.append(node)
            node = node.parent
        return chain


def province_code(region_code: str) -> str:
    return region_code[:2] + "0000"


class BenefitStart(models.TextChoices):
    """Where a new enrollment's period starts (a renewal always continues the one it renews)."""

    FILING_DATE = "filing_date", _("filing date")
    DIAGNOSIS_DATE = "diagnosis_date", _("diagnosis date")
    DECISION_DATE = "decision_date", _("decision date")
    NEXT_MONTH = "next_month", _("first day of the month after the decision")


class ReviewLevel(models.TextChoices):
    """Where a region's applications are reviewed (审核权限下放)."""

    COUNTY = "county", _("county insurance office")
    TOWNSHIP = "township", _("township health centre (delegated by the county)")


def default_reminder_offsets() -> list[int]:
    return [90, 30, 7, 0]


class Policy(models.Model):
    """A region's rules. A region without its own policy uses its nearest ancestor's."""

    region = models.OneToOneField(Region, on_delete=models.CASCADE, related_name="policy", verbose_name=_("region"))
    concurrent_chronic_limit = models.PositiveSmallIntegerField(
        _("concurrent chronic limit"), default=2, validators=[MinValueValidator(1), MaxValueValidator(20)]
    )
    batch_day = models.PositiveSmallIntegerField(
        _("batch day of month"), default=1, validators=[MinValueValidator(1), MaxValueValidator(28)]
    )
    renewal_window_days = models.PositiveSmallIntegerField(_("renewal window (days)"), default=180)
    grace_days = models.PositiveSmallIntegerField(
        _("grace days"),
        default=60,
        validators=[MaxValueValidator(366)],
        help_text=_(
            "How long past its end an enrollment with a renewal pending still covers, provisionally "
            "(复审期间待遇照常), and how long after its end a renewal may still be filed."
        ),
    )
    renewal_diagnosis_limit_days = models.PositiveSmallIntegerField(
        _("days a renewal may wait for its diagnosis"),
        default=90,
        validators=[MinValueValidator(1), MaxValueValidator(366)],
        help_text=_("A renewal still without a re-attested diagnosis this long after filing is withdrawn."),
    )
    renewal_diagnosis_warning_days = models.PositiveSmallIntegerField(
        _("warn the clinic this many days before withdrawing an undiagnosed renewal"),
        default=14,
        validators=[MaxValueValidator(366)],
    )
    reminder_offsets = models.JSONField(_("reminder offsets (days before expiry)"), default=default_reminder_offsets)
    benefit_start = models.CharField(
        _("benefit start rule"), max_length=20, choices=BenefitStart.choices, default=BenefitStart.FILING_DATE
    )
    review_level = models.CharField(
        _("review level"), max_length=10, choices=ReviewLevel.choices, default=ReviewLevel.COUNTY
    )
    immediate_diseases: models.ManyToManyField[Disease, Any] = models.ManyToManyField(
        "Disease",
        blank=True,
        related_name="immediate_in_policies",
        verbose_name=_("diseases approved on the spot here"),
        help_text=_(
            "On top of the catalogue's per-disease review mode: diseases whose applications the county "
            "chronic-disease centres of this region approve immediately (即时办结)."
        ),
    )
    two_diseases_validity_months = models.PositiveSmallIntegerField(
        _("两病 medication coverage validity (months)"),
        default=0,
        validators=[MaxValueValidator(120)],
        help_text=_("0: no fixed end; it lasts while the person is resident-insured (390)."),
    )
    two_diseases_reminders = models.BooleanField(_("send expiry reminders for 两病 medication coverage"), default=False)
    poverty_continuation_months = models.PositiveSmallIntegerField(
        _("months poverty-related categories continue after leaving poverty"),
        default=12,
        validators=[MaxValueValidator(60)],
    )

    class Meta:
        verbose_name = _("policy")
        verbose_name_plural = _("policies")

    def __str__(self) -> str:
        return f"{self.region}"

    def clean(self) -> None:
        offsets = self.reminder_offsets
        if not isinstance(offsets, list) or not all(isinstance(x, int) and 0 <= x <= 366 for x in offsets):
            raise ValidationError({"reminder_offsets": _("Give a list of whole days between 0 and 366.")})


class DiseaseType(models.TextChoices):
    CHRONIC = "11", _("chronic outpatient disease")
    SPECIAL = "12", _("special outpatient disease")


class ReviewMode(models.TextChoices):
    BATCH = "batch", _("monthly batch")
    IMMEDIATE = "immediate", _("immediate (即时办结)")


class InstitutionLevel(models.IntegerChoices):
    PRIMARY = 1, _("level 1 (township / community)")
    SECONDARY = 2, _("level 2 (county)")
    TERTIARY = 3, _("level 3 (city / provincial)")


class PhysicianTitle(models.IntegerChoices):
    RESIDENT = 1, _("resident physician 住院医师")
    ATTENDING = 2, _("attending physician 主治医师")
    ASSOCIATE_CHIEF = 3, _("associate chief physician 副主任医师")
    CHIEF = 4, _("chief physician 主任医师")


class DocumentType(models.TextChoices):
    DIAGNOSIS_CERTIFICATE = "diagnosis_certificate", _("diagnosis certificate")
    TEST_REPORT = "test_report", _("test report")
    MEDICAL_RECORD = "medical_record", _("medical record")
    DISCHARGE_SUMMARY = "discharge_summary", _("discharge summary")
    ID_CARD = "id_card", _("ID card copy")
    OTHER = "other", _("other")


class Disease(models.Model):
    """病种: one entry of the outpatient chronic / special disease catalogue."""

    code = models.CharField(
        _("national code"),
        max_length=6,
        unique=True,
        validators=[RegexValidator(r"^M\d{5}$", _("A disease code is M followed by 5 digits."))],
    )
    name = models.CharField(_("name"), max_length=100)
    disease_type = models.CharField(_("type"), max_length=2, choices=DiseaseType.choices)
    validity_months = models.PositiveSmallIntegerField(
        _("validity (months)"), default=36, help_text=_("0 means long-term (no end date).")
    )
    counts_toward_limit = models.BooleanField(_("counts toward the chronic limit"), default=True)
    min_institution_level = models.PositiveSmallIntegerField(
        _("minimum institution level"), choices=InstitutionLevel.choices, default=InstitutionLevel.PRIMARY
    )
    min_physician_title = models.PositiveSmallIntegerField(
        _("minimum physician title"), choices=PhysicianTitle.choices, default=PhysicianTitle.ATTENDING
    )
    required_documents = models.JSONField(_("required documents"), default=list, blank=True)
    review_mode = models.CharField(
        _("review mode"), max_length=10, choices=ReviewMode.choices, default=ReviewMode.BATCH
    )
    review_stages = models.JSONField(
        _("review stages"), default=list, blank=True, help_text=_("Empty: the default stages of the disease type.")
    )
    icd10_prefixes = models.JSONField(_("ICD-10 prefixes"), default=list, blank=True)
    aliases = models.JSONField(
        _("other names"),
        default=list,
        blank=True,
        help_text=_("Names clerks and rosters use for it (e.g. 高血压 for 高血压病)."),
    )
    cross_province_settlement = models.BooleanField(
        _("cross-province direct settlement"),
        default=False,
        help_text=_("Listed nationally for direct settlement in other provinces (跨省直接结算)."),
    )
    exclusive_with = models.ManyToManyField(
        "self", blank=True, symmetrical=True, verbose_name=_("mutually exclusive with")
    )
    regions = models.ManyToManyField(
        Region,
        blank=True,
        related_name="diseases",
        verbose_name=_("available in regions"),
        help_text=_("Empty: available in every region. A region covers its sub-regions."),
    )
    active = models.BooleanField(_("active"), default=True)
    catalogue_version = models.CharField(_("catalogue version"), max_length=20, default="1")

    class Meta:
        ordering = ["code"]
        verbose_name = _("disease")
        verbose_name_plural = _("diseases")

    def __str__(self) -> str:
        return f"{self.code} {self.name}"

    @property
    def is_long_term(self) -> bool:
        return self.validity_months == 0

    def supports_icd10(self, icd10_code: str) -> bool:
        code = icd10_code.strip().upper().replace(".", "")
        return any(code.startswith(prefix.upper().replace(".", "")) for prefix in self.icd10_prefixes)


class Institution(models.Model):
    """定点医疗机构: a designated medical institution."""

    code = models.CharField(_("institution code"), max_length=30, unique=True)
    name = models.CharField(_("name"), max_length=200)
    level = models.PositiveSmallIntegerField(_("level"), choices=InstitutionLevel.choices)
    region = models.ForeignKey(Region, on_delete=models.PROTECT, related_name="institutions", verbose_name=_("region"))
    may_diagnose = models.BooleanField(_("may diagnose"), default=False)

    class Meta:
        ordering = ["code"]
        verbose_name = _("institution")
        verbose_name_plural = _("institutions")

    def __str__(self) -> str:
        return f"{self.name} ({self.code})"


class Physician(models.Model):
    licence_number = models.CharField(_("licence number"), max_length=30, unique=True)
    name = models.CharField(_("name"), max_length=50)
    institution = models.ForeignKey(
        Institution, on_delete=models.PROTECT, related_name="physicians", verbose_name=_("institution")
    )
    title = models.PositiveSmallIntegerField(_("title"), choices=PhysicianTitle.choices)
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="physician",
        verbose_name=_("user account"),
    )

    class Meta:
        ordering = ["licence_number"]
        verbose_name = _("physician")
        verbose_name_plural = _("physicians")

    def __str__(self) -> str:
        return f"{self.name} ({self.get_title_display()})"


class StaffProfile(models.Model):
    """Where a user works: an institution (clinic staff, physicians, center officers) or a region (reviewers)."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="profile")
    institution = models.ForeignKey(
        Institution,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="staff",
        verbose_name=_("institution"),
    )
    region = models.ForeignKey(
        Region, null=True, blank=True, on_delete=models.PROTECT, related_name="staff", verbose_name=_("region")
    )
    review_stages = models.JSONField(
        _("review stages held"), default=list, blank=True, help_text=_("For reviewers: the stages they may decide.")
    )

    class Meta:
        verbose_name = _("staff profile")
        verbose_name_plural = _("staff profiles")

    def __str__(self) -> str:
        return f"{self.user} @ {self.institution or self.region or '-'}"


# ---------------------------------------------------------------------------
# Persons (docs/design.md)
# ---------------------------------------------------------------------------


class Sex(models.TextChoices):
    MALE = "1", _("male")
    FEMALE = "2", _("female")


class InsuranceType(models.TextChoices):
    EMPLOYEE = "310", _("employee basic medical insurance")
    RESIDENT = "390", _("resident basic medical insurance")


class SupportCategory(models.TextChoices):
    POVERTY_ALLEVIATED = "poverty_alleviated", _("脱贫人口 (lifted out of poverty)")
    MONITORED = "monitored", _("监测对象 (monitored for relapse into poverty)")
    MINIMUM_LIVING = "minimum_living", _("低保 (minimum living allowance)")
    EXTREME_HARDSHIP = "extreme_hardship", _("特困 (extreme hardship)")
    ORPHAN = "orphan", _("孤儿 (orphan)")


def mask_id_number(id_number: str) -> str:
    """``110***********123X``: the first three and last four characters stay visible."""
    if len(id_number) <= 7:
        return "*" * len(id_number)
    return id_number[:3] + "*" * (len(id_number) - 7) + id_number[-4:]


class Person(models.Model):
    """参保人: an insured person, identified by the normalised 18-character 居民身份证号."""

    id_number = models.CharField(_("ID number"), max_length=18, unique=True)
    name = models.CharField(_("name"), max_length=50)
    sex = models.CharField(_("sex"), max_length=1, choices=Sex.choices)
    birth_date = models.DateField(_("birth date"))
    insurance_number = models.CharField(_("insurance number"), max_length=30, blank=True)
    insurance_type = models.CharField(
        _("insurance type"), max_length=3, choices=InsuranceType.choices, default=InsuranceType.RESIDENT
    )
    insured_region = models.ForeignKey(
        Region, on_delete=models.PROTECT, related_name="persons", verbose_name=_("insured region")
    )
    phone = models.CharField(_("phone"), max_length=20, blank=True)
    support_categories = models.JSONField(_("support categories"), default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        verbose_name = _("person")
        verbose_name_plural = _("persons")

    def __str__(self) -> str:
        return f"{self.name} {self.masked_id_number}"

    @property
    def masked_id_number(self) -> str:
        return mask_id_number(self.id_number)


class RecordAuditEntry(AppendOnlyModel):
    """One change of a record that is neither an application nor a person, append-only: a load of the disease
    catalogue (病种目录), a roster import's or a review batch's state. ``subject`` names the kind of record and
    ``subject_id`` its row (apps above enrollment write here through services.record_audit, so enrollment
    points at none of their tables)."""

    subject = models.CharField(_("record"), max_length=40)
    subject_id = models.BigIntegerField(_("record id"), null=True, blank=True)
    action = models.CharField(_("action"), max_length=40)
    from_state = models.CharField(_("from state"), max_length=20, blank=True)
    to_state = models.CharField(_("to state"), max_length=20, blank=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    is_system = models.BooleanField(_("by the system"), default=False)
    at = models.DateTimeField(_("at"), default=timezone.now)
    details = models.JSONField(_("details"), default=dict, blank=True)

    class Meta(AppendOnlyModel.Meta):
        ordering = ["at", "id"]
        verbose_name = _("record audit entry")
        verbose_name_plural = _("record audit entries")
        indexes = [models.Index(fields=["subject", "subject_id", "at"], name="record_audit_subject")]

    def __str__(self) -> str:
        return f"{self.subject} {self.subject_id or ''} {self.action} at {self.at:%Y-%m-%d %H:%M}"


class StatusEventKind(models.TextChoices):
    """Dated events of a person's insurance status and life, as the insurance office records them."""

    INSURANCE_SUSPENDED = "insurance_suspended", _("insurance suspended (暂停参保)")
    INSURANCE_RESUMED = "insurance_resumed", _("insurance resumed (恢复参保)")
    INSURANCE_ENDED = "insurance_ended", _("insurance ended (终止参保)")
    MOVED_OUT = "moved_out", _("insurance transferred outside the province (转出省外)")
    DIED = "died", _("died (死亡)")
    POVERTY_EXITED = "poverty_exited", _("left poverty (脱贫)")
    CATEGORIES_SET = "categories_set", _("support categories set as of a date")


# Events after which the person is no longer insured here: every enrollment ends, pending filings close.
ENDING_EVENTS: tuple[str, ...] = (
    StatusEventKind.INSURANCE_ENDED,
    StatusEventKind.MOVED_OUT,
    StatusEventKind.DIED,
)


class PersonStatusEvent(models.Model):
    """One dated event of a person's status (参保状态变更 / 死亡 / 脱贫), append-only.

    ``effective_date`` is the first day the new status holds, except for ``died``, whose date is the
    day of death (still covered). ``(source, reference)`` is unique, so a re-sent event changes nothing.
    ``applied_at`` is set once its effects (terminations, withdrawals, category ends) have been carried
    out: at once when the date has come, by the daily sweep when it was recorded ahead of time.
    """

    person = models.ForeignKey(Person, on_delete=models.PROTECT, related_name="status_events")
    kind = models.CharField(_("event"), max_length=30, choices=StatusEventKind.choices)
    effective_date = models.DateField(_("effective date"))
    source = models.CharField(_("source"), max_length=50, help_text=_("Who reported it: api, import, admin, …"))
    reference = models.CharField(_("reference"), max_length=100, help_text=_("The sender's own id for the event."))
    insurance_type = models.CharField(
        _("insurance type from this date"), max_length=3, choices=InsuranceType.choices, blank=True
    )
    categories = models.JSONField(_("support categories from this date"), default=list, blank=True)
    note = models.CharField(_("note"), max_length=500, blank=True)
    recorded_at = models.DateTimeField(_("recorded at"), default=timezone.now, db_index=True)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", verbose_name=_("recorded by")
    )
    applied_at = models.DateTimeField(_("effects carried out at"), null=True, blank=True)

    class Meta:
        ordering = ["effective_date", "recorded_at", "id"]
        verbose_name = _("status event")
        verbose_name_plural = _("status events")
        constraints = [
            models.UniqueConstraint(fields=["source", "reference"], name="one_status_event_per_reference"),
        ]
        indexes = [
            models.Index(fields=["person", "effective_date"], name="status_event_person_date"),
            models.Index(fields=["applied_at", "effective_date"], name="status_event_unapplied"),
        ]

    def __str__(self) -> str:
        return f"{self.person_id} {self.kind} {self.effective_date}"


class PersonCategory(models.Model):
    """A support category (脱贫人口, 监测对象, 低保, 特困, 孤儿 …) a person holds over a dated period.

    ``valid_until`` is the last day it holds (None: open-ended). A category is never deleted: an import
    or event that replaces the person's categories ends the old rows the day before its date.
    """

    person = models.ForeignKey(Person, on_delete=models.PROTECT, related_name="categories")
    category = models.CharField(_("category"), max_length=30, choices=SupportCategory.choices)
    valid_from = models.DateField(_("valid from"))
    valid_until = models.DateField(_("valid until"), null=True, blank=True)
    source = models.CharField(_("source"), max_length=50)
    reference = models.CharField(_("reference"), max_length=100, blank=True)
    recorded_at = models.DateTimeField(_("recorded at"), default=timezone.now)
    ended_at = models.DateTimeField(_("end recorded at"), null=True, blank=True)
    lapse_recorded_at = models.DateTimeField(
        _("lapse recorded at"), null=True, blank=True, help_text=_("When the daily sweep recorded that it ended.")
    )

    class Meta:
        ordering = ["person", "valid_from", "id"]
        verbose_name = _("support category period")
        verbose_name_plural = _("support category periods")
        indexes = [models.Index(fields=["person", "category", "valid_from"], name="category_person")]
        constraints = [
            models.CheckConstraint(
                condition=Q(valid_until__isnull=True) | Q(valid_until__gte=models.F("valid_from")),
                name="category_period_ordered",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.person_id} {self.category} {self.valid_from}–{self.valid_until or ''}"

    def holds_on(self, day: dt.date) -> bool:
        return self.valid_from <= day and (self.valid_until is None or day <= self.valid_until)


class PersonAuditEntry(AppendOnlyModel):
    """One change of a person's data (status event, categories, register), append-only: who, what, when."""

    person = models.ForeignKey(Person, on_delete=models.PROTECT, related_name="audit_entries")
    action = models.CharField(_("action"), max_length=40)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    is_system = models.BooleanField(_("by the system"), default=False)
    at = models.DateTimeField(_("at"), default=timezone.now)
    details = models.JSONField(_("details"), default=dict, blank=True)

    class Meta(AppendOnlyModel.Meta):
        ordering = ["at", "id"]
        verbose_name = _("person audit entry")
        verbose_name_plural = _("person audit entries")
        indexes = [models.Index(fields=["person", "at"], name="person_audit_at")]

    def __str__(self) -> str:
        return f"{self.person_id} {self.action} at {self.at:%Y-%m-%d %H:%M}"


# ---------------------------------------------------------------------------
# Applications and their state machine (docs/design.md)
# ---------------------------------------------------------------------------


class State(models.TextChoices):
    SUBMITTED = "submitted", _("submitted")
    DIAGNOSED = "diagnosed", _("diagnosed")
    IN_REVIEW = "in_review", _("in review")
    RETURNED = "returned", _("returned for more information")
    APPROVED = "approved", _("approved")
    REJECTED = "rejected", _("rejected")
    WITHDRAWN = "withdrawn", _("withdrawn")
    EXPIRING = "expiring", _("expiring")
    EXPIRED = "expired", _("expired")
    RENEWED = "renewed", _("renewed")
    TERMINATED = "terminated", _("terminated")


# "Active" for the concurrent limit and the one-per-disease rule (docs/design.md: Applications and the state machine).
ACTIVE_STATES: tuple[str, ...] = (
    State.SUBMITTED,
    State.DIAGNOSED,
    State.IN_REVIEW,
    State.RETURNED,
    State.APPROVED,
    State.EXPIRING,
)
# States in which an enrollment gives benefits.
COVERING_STATES: tuple[str, ...] = (State.APPROVED, State.EXPIRING)


class ApplicationKind(models.TextChoices):
    NEW = "new", _("new application")
    RENEWAL = "renewal", _("renewal (复审)")
    TWO_DISEASES = "two_diseases", _("two diseases (两病) medication coverage")


class TerminationReason(models.TextChoices):
    DEATH = "death", _("death")
    LOSS_OF_COVERAGE = "loss_of_coverage", _("loss of insurance coverage")
    MOVED_OUT = "moved_out", _("moved out of the province")
    CURED = "cured", _("cured")
    DISEASE_REMOVED = "disease_removed", _("disease removed from the catalogue")
    # Set by oversight's services (the re-check decision and the objection resolution), never picked by hand there.
    RECHECK_FAILED = "recheck_failed", _("failed the sample re-check")
    OBJECTION_UPHELD = "objection_upheld", _("objection upheld during the public notice")


# Reasons a clerk or reviewer may give when ending an enrollment by hand (the application page, the API's
# terminate action). The oversight corrections (a failed sample re-check, an objection upheld during the
# public notice) end enrollments through their own services with their own reasons, never typed by hand.
OVERSIGHT_TERMINATION_REASONS: tuple[str, ...] = ("recheck_failed", "objection_upheld")
MANUAL_TERMINATION_CHOICES: list[tuple[str, Any]] = [
    (value, label) for value, label in TerminationReason.choices if value not in OVERSIGHT_TERMINATION_REASONS
]


def _can_file(instance: models.Model, user: Any) -> bool:
    return roles.has_any_role(user, roles.CLINIC_STAFF, roles.ADMIN)


def _can_diagnose(instance: models.Model, user: Any) -> bool:
    return roles.has_any_role(user, roles.PHYSICIAN)


def _can_review(instance: models.Model, user: Any) -> bool:
    return roles.has_any_role(user, roles.REVIEWER, roles.ADMIN)


def _can_approve_immediately(instance: models.Model, user: Any) -> bool:
    return roles.has_any_role(user, roles.CENTER_OFFICER)


def _can_terminate(instance: models.Model, user: Any) -> bool:
    return roles.has_any_role(user, roles.REVIEWER, roles.ADMIN)


def _is_system(instance: models.Model, user: Any) -> bool:
    return roles.is_system(user)


# The diagnosis an application must carry before it is reviewed (the enqueue and approve_immediately guards):
# one list of fields, read by the FSM condition on one row and by ``with_diagnosis()`` on the set-based paths
# (batch assembly), so the two cannot drift apart.
DIAGNOSIS_REQUIRED_FIELDS = ("icd10_code", "diagnosis_date", "physician")


def _has_diagnosis(instance: models.Model) -> bool:
    return all(getattr(instance, model_field(Application, name).attname) for name in DIAGNOSIS_REQUIRED_FIELDS)


def with_diagnosis() -> Q:
    """``_has_diagnosis`` as a filter: every required field set (not null, not empty text)."""
    condition = Q()
    for name in DIAGNOSIS_REQUIRED_FIELDS:
        model_field = Application._meta.get_field(name)
        if model_field.null:
            condition &= Q(**{f"{name}__isnull": False})
        if isinstance(model_field, models.CharField | models.TextField):
            condition &= ~Q(**{name: ""})
    return condition


def _immediate_mode(instance: models.Model) -> bool:
    assert isinstance(instance, Application)  # a condition of Application's transitions only
    return instance.review_is_immediate()


def immediate_review(disease: Disease, region: Region) -> bool:
    """即时办结: the catalogue marks the disease immediate, or the policy of the region (or of the nearest
    ancestor that has a policy) lists it among the diseases its chronic-disease centres approve at once."""
    if disease.review_mode == ReviewMode.IMMEDIATE:
        return True
    node: Region | None = region
    for _depth in range(10):
        if node is None:
            return False
        policy = Policy.objects.filter(region=node).first()
        if policy is not None:
            return policy.immediate_diseases.filter(pk=disease.pk).exists()
        node = node.parent
    return False


class Application(FSMModelMixin, models.Model):
    """One person, one disease: the filing and, once approved, the enrollment it becomes."""

    person = models.ForeignKey(Person, on_delete=models.PROTECT, related_name="applications", verbose_name=_("person"))
    disease = models.ForeignKey(
        Disease, on_delete=models.PROTECT, related_name="applications", verbose_name=_("disease")
    )
    kind = models.CharField(_("kind"), max_length=20, choices=ApplicationKind.choices, default=ApplicationKind.NEW)
    renews = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="renewals",
        verbose_name=_("renews enrollment"),
    )
    state = FSMField(_("state"), default=State.SUBMITTED, choices=State.choices, protected=True)

    filing_institution = models.ForeignKey(
        Institution, on_delete=models.PROTECT, related_name="filed_applications", verbose_name=_("filing institution")
    )
    treating_institution = models.ForeignKey(
        Institution,
        on_delete=models.PROTECT,
        related_name="treated_applications",
        verbose_name=_("treating institution"),
    )
    region = models.ForeignKey(
        Region,
        on_delete=models.PROTECT,
        related_name="applications",
        verbose_name=_("region"),
        help_text=_("The person's insured region when filed: whose batch and reviewers handle it."),
    )
    filed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="filed_applications",
        verbose_name=_("filed by"),
    )
    filed_at = models.DateTimeField(_("filed at"), default=timezone.now)

    # Diagnosis (recorded by a physician of a may-diagnose institution).
    icd10_code = models.CharField(_("ICD-10 code"), max_length=10, blank=True)
    diagnosis_date = models.DateField(_("diagnosis date"), null=True, blank=True)
    physician = models.ForeignKey(
        Physician,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="diagnoses",
        verbose_name=_("physician"),
    )
    diagnosed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="diagnosed_applications",
        verbose_name=_("diagnosis recorded by"),
    )
    diagnosed_at = models.DateTimeField(_("diagnosed at"), null=True, blank=True)

    # Decision and validity (docs/design.md: Validity, renewal and reminders).
    decided_at = models.DateTimeField(_("decided at"), null=True, blank=True)
    valid_from = models.DateField(_("valid from"), null=True, blank=True)
    valid_until = models.DateField(_("valid until"), null=True, blank=True)
    decision_reason_code = models.CharField(_("decision reason code"), max_length=40, blank=True)
    decision_reason = models.TextField(_("decision reason"), blank=True)
    termination_reason = models.CharField(
        _("termination reason"), max_length=30, choices=TerminationReason.choices, blank=True
    )
    ended_on = models.DateField(_("coverage ended on"), null=True, blank=True)
    provisional_until = models.DateField(
        _("old enrollment covers provisionally until"),
        null=True,
        blank=True,
        help_text=_(
            "For a renewal: the last day the enrollment it renews keeps covering while this renewal is "
            "pending (its end + the grace days of the policy when the renewal was filed)."
        ),
    )

    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-filed_at", "-id"]
        verbose_name = _("application")
        verbose_name_plural = _("applications")
        constraints = [
            # One active filing per person, disease and kind; renewals are linked to the
            # enrollment they renew and are held to one pending renewal each instead.
            models.UniqueConstraint(
                fields=["person", "disease", "kind"],
                condition=Q(state__in=ACTIVE_STATES, renews__isnull=True),
                name="one_active_application_per_disease",
            ),
            models.UniqueConstraint(
                fields=["renews"],
                condition=Q(state__in=ACTIVE_STATES, renews__isnull=False),
                name="one_active_renewal_per_enrollment",
            ),
            models.CheckConstraint(
                condition=Q(valid_until__isnull=True)
                | Q(valid_from__isnull=True)
                | Q(valid_until__gte=models.F("valid_from")),
                name="validity_period_ordered",
            ),
        ]
        indexes = [
            models.Index(fields=["person", "state"], name="app_person_state"),
            models.Index(fields=["filing_institution", "state", "-filed_at"], name="app_filing_inst"),
            models.Index(fields=["treating_institution", "state"], name="app_treating_inst"),
            models.Index(fields=["region", "state", "diagnosed_at"], name="app_region_state_diag"),
            models.Index(fields=["state", "valid_until"], name="app_state_valid_until"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.disease.code} {self.get_state_display()}"

    @property
    def is_active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def is_covering(self) -> bool:
        return self.state in COVERING_STATES

    @property
    def is_two_diseases(self) -> bool:
        return self.kind == ApplicationKind.TWO_DISEASES

    def review_is_immediate(self) -> bool:
        return immediate_review(self.disease, self.region)

    # -- transitions: each changes only self; services write audit and side effects --

    @transition(field=state, source=State.SUBMITTED, target=State.DIAGNOSED, permission=_can_diagnose)
    def diagnose(self, *, physician: Physician, icd10_code: str, diagnosis_date: dt.date, recorded_by: Any) -> None:
        self.physician = physician
        self.icd10_code = icd10_code.strip().upper()
        self.diagnosis_date = diagnosis_date
        self.diagnosed_by = recorded_by
        self.diagnosed_at = timezone.now()

    @transition(
        field=state,
        source=[State.SUBMITTED, State.DIAGNOSED, State.RETURNED],
        target=State.WITHDRAWN,
        permission=_can_file,
    )
    def withdraw(self) -> None:
        self.decided_at = timezone.now()

    @transition(
        field=state, source=State.DIAGNOSED, target=State.IN_REVIEW, conditions=[_has_diagnosis], permission=_is_system
    )
    def enqueue(self) -> None:
        pass

    @transition(field=state, source=State.IN_REVIEW, target=State.APPROVED, permission=_can_review)
    def approve(self, *, valid_from: dt.date, valid_until: dt.date | None) -> None:
        self._set_validity(valid_from, valid_until)

    @transition(
        field=state,
        source=State.DIAGNOSED,
        target=State.APPROVED,
        conditions=[_has_diagnosis, _immediate_mode],
        permission=_can_approve_immediately,
    )
    def approve_immediately(self, *, valid_from: dt.date, valid_until: dt.date | None) -> None:
        self._set_validity(valid_from, valid_until)

    # Immediate mode's other two decisions (reviews.services.immediate): reject, or return for 补正.
    @transition(
        field=state,
        source=State.DIAGNOSED,
        target=State.REJECTED,
        conditions=[_immediate_mode],
        permission=_can_approve_immediately,
    )
    def reject_immediately(self, *, reason_code: str, reason: str) -> None:
        self.decided_at = timezone.now()
        self.decision_reason_code = reason_code
        self.decision_reason = reason

    @transition(
        field=state,
        source=State.DIAGNOSED,
        target=State.RETURNED,
        conditions=[_immediate_mode],
        permission=_can_approve_immediately,
    )
    def return_immediately(self, *, missing: str) -> None:
        self.decision_reason_code = "more_information"
        self.decision_reason = missing

    @transition(field=state, source=State.IN_REVIEW, target=State.REJECTED, permission=_can_review)
    def reject(self, *, reason_code: str, reason: str) -> None:
        self.decided_at = timezone.now()
        self.decision_reason_code = reason_code
        self.decision_reason = reason

    @transition(field=state, source=State.IN_REVIEW, target=State.RETURNED, permission=_can_review)
    def return_for_information(self, *, missing: str) -> None:
        self.decision_reason_code = "more_information"
        self.decision_reason = missing

    @transition(field=state, source=State.RETURNED, target=State.DIAGNOSED, permission=_can_file)
    def resubmit(self) -> None:
        self.decision_reason_code = ""
        self.decision_reason = ""

    @transition(field=state, source=State.APPROVED, target=State.EXPIRING, permission=_is_system)
    def mark_expiring(self) -> None:
        pass

    @transition(
        field=state,
        source=[State.SUBMITTED, State.DIAGNOSED, State.IN_REVIEW, State.RETURNED],
        target=State.WITHDRAWN,
        permission=_is_system,
    )
    def close(self) -> None:
        """The system closes a pending application the person can no longer hold (death, insurance ended)."""
        self.decided_at = timezone.now()

    @transition(field=state, source=[State.APPROVED, State.EXPIRING], target=State.EXPIRED, permission=_is_system)
    def expire(self, *, ended_on: dt.date | None = None) -> None:
        self._copy_transition_fields("expire")
        if ended_on is not None:
            # A renewal rejected or withdrawn after the end honours the provisional days given (ended_on later).
            self.ended_on = ended_on

    @transition(field=state, source=[State.APPROVED, State.EXPIRING], target=State.RENEWED)
    def supersede(self) -> None:
        self._copy_transition_fields("supersede")

    def _copy_transition_fields(self, transition: str) -> None:
        for target, source in TRANSITION_FIELD_COPIES.get(transition, {}).items():
            setattr(self, target, getattr(self, source))

    @transition(
        field=state, source=[State.APPROVED, State.EXPIRING], target=State.TERMINATED, permission=_can_terminate
    )
    def terminate(self, *, reason: str, ended_on: dt.date) -> None:
        self.termination_reason = reason
        self.ended_on = ended_on

    def _set_validity(self, valid_from: dt.date, valid_until: dt.date | None) -> None:
        self.decided_at = timezone.now()
        self.valid_from = valid_from
        self.valid_until = valid_until


# The fields a transition sets from the row's own fields, {target: source}: the FSM method copies them on one
# instance, the validity sweep's set-based UPDATE writes them as ``target = source`` (enrollment.sql), so the
# per-row and the bulk path of a transition set the same values.
TRANSITION_FIELD_COPIES: dict[str, dict[str, str]] = {
    "expire": {"ended_on": "valid_until"},
    "supersede": {"ended_on": "valid_until"},
    "mark_expiring": {},
}


def document_upload_to(instance: Document, filename: str) -> str:
    # The stored name never reuses the uploaded one: it may hold a patient's name.
    return f"documents/{instance.application_id}/{instance.sha256[:16]}{instance.extension}"


class Document(models.Model):
    """Evidence attached to an application: diagnosis certificate, test reports, …"""

    application = models.ForeignKey(
        Application, on_delete=models.CASCADE, related_name="documents", verbose_name=_("application")
    )
    doc_type = models.CharField(_("document type"), max_length=30, choices=DocumentType.choices)
    file = models.FileField(_("file"), upload_to=document_upload_to, max_length=200)
    original_name = models.CharField(_("original file name"), max_length=255)
    content_type = models.CharField(_("content type"), max_length=100)
    extension = models.CharField(max_length=10)
    size = models.PositiveIntegerField(_("size (bytes)"))
    sha256 = models.CharField(max_length=64)
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    uploaded_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["uploaded_at", "id"]
        verbose_name = _("document")
        verbose_name_plural = _("documents")

    def __str__(self) -> str:
        return f"{self.get_doc_type_display()} #{self.pk}"


# ---------------------------------------------------------------------------
# Audit trail
# ---------------------------------------------------------------------------


class AuditEntry(AppendOnlyModel):
    """One row per state change of an application, written in the same transaction as the change."""

    application = models.ForeignKey(
        Application, on_delete=models.PROTECT, related_name="audit_entries", verbose_name=_("application")
    )
    transition = models.CharField(_("transition"), max_length=40)
    from_state = models.CharField(_("from"), max_length=20, blank=True)
    to_state = models.CharField(_("to"), max_length=20)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="audit_entries",
        verbose_name=_("actor"),
    )
    is_system = models.BooleanField(_("by the system"), default=False)
    at = models.DateTimeField(_("at"), default=timezone.now, db_index=True)
    reason_code = models.CharField(_("reason code"), max_length=40, blank=True)
    reason = models.TextField(_("reason"), blank=True)
    # The review batch (reviews.ReviewBatch) the row belongs to, by id: enrollment sits below reviews and
    # does not name its models. On PostgreSQL the reviews app adds the foreign-key constraint itself
    # (reviews migration 0008); labels come through ``selectors.BATCH_LABELS``.
    batch_id = models.BigIntegerField(_("batch"), null=True, blank=True, db_index=True)
    batch_label: str | None  # set by selectors.attach_batch_labels, not stored
    stage = models.CharField(_("review stage"), max_length=30, blank=True)
    details = models.JSONField(_("details"), default=dict, blank=True)

    class Meta:
        ordering = ["at", "id"]
        verbose_name = _("audit entry")
        verbose_name_plural = _("audit entries")
        indexes = [models.Index(fields=["application", "at"], name="audit_app_at")]

    def __str__(self) -> str:
        return f"{self.application_id}: {self.from_state} → {self.to_state} ({self.transition})"


# ---------------------------------------------------------------------------
# Expiry reminders (docs/design.md: Validity, renewal and reminders)
# ---------------------------------------------------------------------------


class ReminderChannel(models.TextChoices):
    SMS = "sms", _("SMS to the patient")
    EMAIL = "email", _("e-mail to the filing clinic")
    IN_APP = "in_app", _("in-app notice to the filing clinic")


class ReminderStatus(models.TextChoices):
    PENDING = "pending", _("pending")
    SENDING = "sending", _("sending")
    SENT = "sent", _("sent")
    FAILED = "failed", _("failed")
    CANCELLED = "cancelled", _("cancelled")
    SKIPPED = "skipped", _("skipped")


class Reminder(models.Model):
    """One expiry reminder of one enrollment at one offset on one channel (到期提醒).

    The row is created before anything is sent and the unique constraint below is what makes a
    reminder go out at most once, however often the sweep runs and however many workers run it.
    ``sending`` is the claim a worker takes before calling the gateway; a row left ``sending`` by a
    crashed worker is never sent again automatically (it may have gone out), an operator decides.
    """

    application = models.ForeignKey(
        Application, on_delete=models.PROTECT, related_name="reminders", verbose_name=_("enrollment")
    )
    offset_days = models.PositiveSmallIntegerField(_("days before expiry"))
    channel = models.CharField(_("channel"), max_length=10, choices=ReminderChannel.choices)
    due_on = models.DateField(_("due on"))
    valid_until = models.DateField(_("enrollment valid until"))
    status = models.CharField(
        _("status"), max_length=10, choices=ReminderStatus.choices, default=ReminderStatus.PENDING
    )
    institution = models.ForeignKey(
        Institution,
        on_delete=models.PROTECT,
        related_name="reminders",
        verbose_name=_("filing institution"),
    )
    recipient = models.CharField(_("recipient"), max_length=1000, blank=True)
    subject = models.CharField(_("subject"), max_length=200, blank=True)
    message = models.TextField(_("message"))
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    last_error = models.CharField(_("last error"), max_length=500, blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    updated_at = models.DateTimeField(_("updated at"), default=timezone.now)
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)
    read_at = models.DateTimeField(_("read at"), null=True, blank=True)

    class Meta:
        ordering = ["-due_on", "-offset_days", "channel"]
        verbose_name = _("reminder")
        verbose_name_plural = _("reminders")
        constraints = [
            models.UniqueConstraint(
                fields=["application", "offset_days", "channel"], name="one_reminder_per_offset_and_channel"
            ),
        ]
        indexes = [
            models.Index(fields=["institution", "channel", "-created_at"], name="reminder_inbox"),
            models.Index(fields=["status", "created_at"], name="reminder_status"),
        ]

    def __str__(self) -> str:
        return f"#{self.application_id} −{self.offset_days}d {self.channel} {self.status}"


# ---------------------------------------------------------------------------
# Who viewed whose full record (docs/design.md: Access and privacy)
# ---------------------------------------------------------------------------


class AccessPurpose(models.TextChoices):
    PERSON_LOOKUP = "person_lookup", _("person looked up by full ID number")
    APPLICATION_DETAIL = "application_detail", _("application shown with the full ID number")
    DOCUMENT_VIEW = "document_view", _("diagnosis document opened")
    EXPORT_FULL_ID = "export_full_id", _("export with full ID numbers")
    COVERAGE_QUERY = "coverage_query", _("coverage of a person queried")
    PERSON_CHANGE = "person_change", _("person's record changed")


class PersonalDataAccess(AppendOnlyModel):
    """One viewing of a full, unmasked record: who, whose, when, why. Append-only, like the audit trail."""

    viewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", verbose_name=_("viewed by")
    )
    person = models.ForeignKey(Person, on_delete=models.PROTECT, related_name="access_log", verbose_name=_("person"))
    application = models.ForeignKey(
        Application,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="access_log",
        verbose_name=_("application"),
    )
    purpose = models.CharField(_("what was viewed"), max_length=30, choices=AccessPurpose.choices)
    reason = models.CharField(_("reason given"), max_length=500, blank=True)
    at = models.DateTimeField(_("at"), default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name = _("personal data access")
        verbose_name_plural = _("personal data accesses")
        indexes = [
            models.Index(fields=["person", "at"], name="access_person_at"),
            models.Index(fields=["viewer", "at"], name="access_viewer_at"),
        ]

    def __str__(self) -> str:
        return f"{self.viewer_id} viewed person {self.person_id} ({self.purpose}) at {self.at:%Y-%m-%d %H:%M}"


# ---------------------------------------------------------------------------
# API tokens (security review, issue 18 item 8)
# ---------------------------------------------------------------------------


class ApiToken(models.Model):
    """A bearer token for the REST API (``Authorization: Token <key>``), one row per issued token.

    Only the SHA-256 of the key is stored (the key is shown once, when it is issued) and its first
    characters, so that its owner can tell their tokens apart in the list. A token ends at
    ``expires_at`` (settings.API_TOKEN_LIFETIME_HOURS after it was issued), when its owner revokes it,
    and when the owner's password changes or the account is deactivated (enrollment/services/api_tokens.py).
    ``password_fingerprint`` ties it to the password it was issued under, so a password set by any path
    (even a queryset update, which sends no signal) ends it too. Written by api_tokens only.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens", verbose_name=_("user")
    )
    name = models.CharField(_("name"), max_length=100, blank=True, help_text=_("What the token is for."))
    key_hash = models.CharField(_("key (SHA-256)"), max_length=64, unique=True, editable=False)
    prefix = models.CharField(_("key starts with"), max_length=8, editable=False)
    password_fingerprint = models.CharField(max_length=64, editable=False)
    created_at = models.DateTimeField(_("issued at"), default=timezone.now)
    expires_at = models.DateTimeField(_("expires at"), db_index=True)
    last_used_at = models.DateTimeField(_("last used at"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("API token")
        verbose_name_plural = _("API tokens")
        indexes = [models.Index(fields=["user", "expires_at"], name="api_token_user_expiry")]

    def __str__(self) -> str:
        return f"{self.masked_key} ({self.user_id})"

    @property
    def masked_key(self) -> str:
        return f"{self.prefix}…"


# ---------------------------------------------------------------------------
# Saved views of the working lists (issue 15 item 6)
# ---------------------------------------------------------------------------


class SavedView(models.Model):
    """A named set of list filters a user keeps for themselves: the GET query of a list page.

    The query never holds a name or an ID number (the search goes by a session token, which is not kept).
    Rows are never deleted: a deletion is stamped in ``deleted_at``, so that the table is its own record of
    who saved and removed what, and when. Written by enrollment.services.saved_views only.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="saved_views", verbose_name=_("user")
    )
    page = models.CharField(_("list"), max_length=30)
    name = models.CharField(_("name"), max_length=60)
    query = models.CharField(_("filters"), max_length=1000, blank=True)
    created_at = models.DateTimeField(_("saved at"), default=timezone.now)
    deleted_at = models.DateTimeField(_("deleted at"), null=True, blank=True)

    class Meta:
        ordering = ["name", "id"]
        verbose_name = _("saved view")
        verbose_name_plural = _("saved views")
        constraints = [
            models.UniqueConstraint(
                fields=["user", "page", "name"],
                condition=models.Q(deleted_at__isnull=True),
                name="saved_view_unique_live_name",
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.page}, user {self.user_id})"
