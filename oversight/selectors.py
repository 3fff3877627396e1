"""Every read of the oversight app, scoped to the viewer.

Re-checks are the region's reviewers' work (a reviewer sees the samples of their region and its
sub-regions); notices and objections are the region's centre officers' and administrators'. The public
notice pages read only the published snapshot (NoticeEntry), never a person's row.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db.models import Count, Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from enrollment import selectors as enrollment_selectors
from enrollment.models import COVERING_STATES, Application, AuditEntry, Region
from kernel import roles
from oversight.models import (
    DEFAULT_NOTICE_DAYS,
    CorrectionRequest,
    CorrectionState,
    NoticeEntry,
    NoticePolicy,
    Objection,
    OversightAuditEntry,
    PublicNotice,
    RecheckRate,
    RecheckSample,
    RecheckState,
    SampleKind,
)
from reviews.models import BatchState, Outcome, ReviewBatch, ReviewItem, StageDecision

# Audit transitions that are approvals; which of them count as "low review" is decided per application.
APPROVAL_TRANSITIONS = ("approve", "approve_immediately")
SCORE_PLACES = Decimal("0.000001")

# ---------------------------------------------------------------------------
# Scope
# ---------------------------------------------------------------------------


def recheck_region_ids(user: roles.AnyUser) -> list[int] | None:
    """Regions whose samples the user re-checks or reads; None = every region (admin)."""
    if roles.has_any_role(user, roles.ADMIN):
        return None
    if not roles.has_any_role(user, roles.REVIEWER):
        return []
    region_id = enrollment_selectors.user_region_id(user)
    return enrollment_selectors.region_and_descendant_ids(region_id) if region_id is not None else []


def may_recheck(user: roles.AnyUser) -> bool:
    return roles.has_any_role(user, roles.REVIEWER, roles.ADMIN)


def clinic_institution_id(user: roles.AnyUser) -> int | None:
    """The institution whose correction requests the user answers: a clinic staff member's own; else None."""
    if not roles.has_any_role(user, roles.CLINIC_STAFF):
        return None
    institution = enrollment_selectors.user_institution(user)
    return institution.pk if institution is not None else None


def may_answer_corrections(user: roles.AnyUser) -> bool:
    return clinic_institution_id(user) is not None


def notice_region_ids(user: roles.AnyUser) -> list[int] | None:
    """Regions whose notices the user publishes and whose objections they record; None = every region."""
    if roles.has_any_role(user, roles.ADMIN):
        return None
    if not roles.has_any_role(user, roles.CENTER_OFFICER):
        return []
    region_id = enrollment_selectors.user_region_id(user)
    return enrollment_selectors.region_and_descendant_ids(region_id) if region_id is not None else []


def may_handle_notices(user: roles.AnyUser) -> bool:
    return roles.has_any_role(user, roles.CENTER_OFFICER, roles.ADMIN)


def _in_regions(queryset: QuerySet[Any], region_ids: list[int] | None, field: str = "region_id") -> QuerySet[Any]:
    return queryset if region_ids is None else queryset.filter(**{f"{field}__in": region_ids})


# ---------------------------------------------------------------------------
# Policy: re-check rates and notice days
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RateChoice:
    percent: Decimal
    source: str  # "default" or "<region code>[/disease <code>][/institution <code>]"


def default_recheck_percent() -> Decimal:
    return Decimal(str(settings.OVERSIGHT_RECHECK_PERCENT))


def rates_for_lineage(lineage_ids: list[int]) -> list[RecheckRate]:
    return list(
        RecheckRate.objects.filter(region_id__in=lineage_ids).select_related("region", "disease", "institution")
    )


def recheck_rate(
    *, rates: list[RecheckRate], lineage_ids: list[int], disease_id: int, institution_id: int
) -> RateChoice:
    """The most specific rate for an approval: disease + institution > disease > institution > region default;
    equally specific rates: the nearest region's. No rate at all: settings.OVERSIGHT_RECHECK_PERCENT."""
    nearness = {region_id: index for index, region_id in enumerate(lineage_ids)}
    matching = [
        rate
        for rate in rates
        if rate.region_id in nearness
        and rate.disease_id in (None, disease_id)
        and rate.institution_id in (None, institution_id)
    ]
    if not matching:
        return RateChoice(default_recheck_percent(), "default")
    best = min(matching, key=lambda rate: (-rate.specificity, nearness[rate.region_id]))
    parts = [best.region.code]
    if best.disease is not None:  # None without a query when disease_id is None
        parts.append(f"disease {best.disease.code}")
    if best.institution is not None:
        parts.append(f"institution {best.institution.code}")
    return RateChoice(best.percent, "/".join(parts))


def draw_score(seed: str, application_id: int) -> Decimal:
    """A number in [0, 1) from the draw's seed and the application id (SHA-256): anyone holding the seed
    recomputes every pick; nobody can foresee it before the seed is drawn."""
    digest = hashlib.sha256(f"{seed}:{application_id}".encode()).hexdigest()
    return (Decimal(int(digest[:15], 16)) / Decimal(16**15)).quantize(SCORE_PLACES, rounding="ROUND_DOWN")


def is_drawn(score: Decimal, percent: Decimal) -> bool:
    return score * 100 < percent


def notice_days_for(region: Region) -> int:
    """The region's notice period, else its nearest ancestor's, else 7 calendar days."""
    lineage = enrollment_selectors.region_lineage_ids(region)
    policies = {p.region_id: p for p in NoticePolicy.objects.filter(region_id__in=lineage)}
    for region_id in lineage:
        if region_id in policies:
            return policies[region_id].notice_days
    return DEFAULT_NOTICE_DAYS


# ---------------------------------------------------------------------------
# Draw candidates
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    application_id: int
    kind: str
    approved_at: dt.datetime
    disease_id: int
    institution_id: int


def period_bounds(period: str) -> tuple[dt.datetime, dt.datetime]:
    """[first day 00:00, first day of the next month 00:00) in the business time zone."""
    year, month = (int(part) for part in period.split("-"))
    start = dt.date(year, month, 1)
    end = dt.date(year + (month == 12), month % 12 + 1, 1)
    return (
        timezone.make_aware(dt.datetime.combine(start, dt.time())),
        timezone.make_aware(dt.datetime.combine(end, dt.time())),
    )


def _approvals_in(period: str) -> QuerySet[AuditEntry]:
    start, end = period_bounds(period)
    return AuditEntry.objects.filter(transition__in=APPROVAL_TRANSITIONS, at__gte=start, at__lt=end)


def regions_with_approvals(period: str) -> list[int]:
    return sorted(set(_approvals_in(period).values_list("application__region_id", flat=True)))


def recheck_candidates(*, region_id: int, period: str) -> list[Candidate]:
    """The region's approvals of the period that had little review: immediate approvals, and approvals whose
    approving round has at most one stage decision (a single-stage review, or a 两病 enrollment opened in
    the reviewer's step). Applications of the region itself, not of sub-regions: each has one draw."""
    rows = list(
        _approvals_in(period)
        .filter(application__region_id=region_id)
        .order_by("application_id", "at")
        .values_list(
            "application_id", "transition", "at", "application__disease_id", "application__treating_institution_id"
        )
    )
    batch_ids = [row[0] for row in rows if row[1] == "approve"]
    decisions: dict[int, tuple[int, int]] = {}  # application → (round, approvals in it)
    for application_id, round_, count in (
        StageDecision.objects.filter(application_id__in=batch_ids, decision="approve")
        .values("application_id", "round")
        .annotate(n=Count("id"))
        .values_list("application_id", "round", "n")
    ):
        if application_id not in decisions or round_ > decisions[application_id][0]:
            decisions[application_id] = (round_, count)
    seen: set[int] = set()
    candidates = []
    for application_id, transition, at, disease_id, institution_id in rows:
        if application_id in seen:
            continue
        seen.add(application_id)
        if transition == "approve_immediately":
            kind = SampleKind.IMMEDIATE
        elif decisions.get(application_id, (0, 0))[1] <= 1:
            kind = SampleKind.SINGLE_STAGE
        else:
            continue
        candidates.append(Candidate(application_id, kind, at, disease_id, institution_id))
    return candidates


# ---------------------------------------------------------------------------
# Re-check queue and quality rates
# ---------------------------------------------------------------------------


def samples_visible_to(user: roles.AnyUser) -> QuerySet[RecheckSample]:
    base = RecheckSample.objects.select_related(
        "draw",
        "region",
        "institution",
        "checked_by",
        "application__person",
        "application__disease",
        "application__treating_institution",
    )
    return _in_regions(base, recheck_region_ids(user))


def recheck_queue(user: roles.AnyUser, *, state: str = "") -> QuerySet[RecheckSample]:
    samples = samples_visible_to(user)
    if state in RecheckState.values:
        samples = samples.filter(state=state)
    return samples.order_by("state" if not state else "approved_at", "approved_at", "id")


def samples_for_clinic(user: roles.AnyUser) -> QuerySet[RecheckSample]:
    """The samples of applications the user's institution filed (whose correction requests it answers)."""
    institution_id = clinic_institution_id(user)
    if institution_id is None:
        return RecheckSample.objects.none()
    return RecheckSample.objects.filter(application__filing_institution_id=institution_id).select_related(
        "application__person", "application__disease", "institution"
    )


def open_corrections_for(user: roles.AnyUser) -> QuerySet[CorrectionRequest]:
    """The clinic home's block: its institution's open correction requests, the soonest due first."""
    institution_id = clinic_institution_id(user)
    if institution_id is None:
        return CorrectionRequest.objects.none()
    return (
        CorrectionRequest.objects.filter(institution_id=institution_id, state=CorrectionState.OPEN)
        .select_related("application__person", "application__disease")
        .order_by("answer_by", "id")
    )


def corrections_of(sample: RecheckSample) -> list[CorrectionRequest]:
    """A sample's correction requests, oldest first, with who asked and answered and the documents added."""
    return list(
        CorrectionRequest.objects.filter(sample=sample)
        .select_related("requested_by", "answered_by")
        .prefetch_related("documents")
        .order_by("requested_at", "id")
    )


def sample_history(sample: RecheckSample) -> QuerySet[OversightAuditEntry]:
    return OversightAuditEntry.objects.filter(Q(sample=sample) | Q(draw=sample.draw_id, application=None)).order_by(
        "at", "id"
    )


@dataclass(frozen=True)
class QualityRow:
    institution_code: str
    institution_name: str
    sampled: int
    rechecked: int
    failed: int
    returned: int = 0

    @property
    def failure_percent(self) -> Decimal | None:
        if not self.rechecked:
            return None
        return (Decimal(self.failed) * 100 / Decimal(self.rechecked)).quantize(Decimal("0.1"))


QUALITY_HEADER = (
    "institution code",
    "institution",
    "sampled",
    "re-checked",
    "failed",
    "failure rate (%)",
    "returned",
)


def quality_rates(user: roles.AnyUser) -> list[QualityRow]:
    """Per treating institution: samples drawn, re-checked, failed, returned — one grouped query.

    A return is a failed re-check whose correction is asked of the clinic: a sample returned at least once counts as
    re-checked and failed from the return on, also when the clinic's answer then passes it ("failed and
    corrected"); ``returned`` counts those samples."""
    was_returned = Q(returns__gt=0)
    rows = (
        samples_visible_to(user)
        .order_by()
        .values("institution__code", "institution__name")
        .annotate(
            sampled=Count("id"),
            rechecked=Count("id", filter=~Q(state=RecheckState.PENDING) | was_returned),
            failed=Count("id", filter=Q(state=RecheckState.FAILED) | was_returned),
            returned=Count("id", filter=was_returned),
        )
        .order_by("institution__code")
    )
    return [
        QualityRow(
            r["institution__code"], r["institution__name"], r["sampled"], r["rechecked"], r["failed"], r["returned"]
        )
        for r in rows
    ]


def quality_csv_rows(user: roles.AnyUser) -> list[list[Any]]:
    return [
        [
            row.institution_code,
            row.institution_name,
            row.sampled,
            row.rechecked,
            row.failed,
            "" if row.failure_percent is None else str(row.failure_percent),
            row.returned,
        ]
        for row in quality_rates(user)
    ]


def report_panel(request: Any) -> dict[str, Any] | None:
    """enrollment.selectors.REPORT_PANELS: re-check quality per institution (the reports page, admins)."""
    if not may_recheck(request.user):
        return None
    return {"template": "oversight/_report_panel.html", "rows": quality_rates(request.user)}


# ---------------------------------------------------------------------------
# Notices
# ---------------------------------------------------------------------------


def notices_visible_to(user: roles.AnyUser) -> QuerySet[PublicNotice]:
    base = PublicNotice.objects.select_related("batch", "region", "published_by").annotate(
        entry_count=Count("entries", distinct=True),
        held_count=Count("entries", filter=Q(entries__held=True), distinct=True),
    )
    return _in_regions(base, notice_region_ids(user)).order_by("-starts_on", "-id")


def publishable_batches(user: roles.AnyUser) -> QuerySet[ReviewBatch]:
    """Reviewing or closed batches of the user's regions without a notice yet, with their approved count."""
    batches = ReviewBatch.objects.filter(
        state__in=(BatchState.REVIEWING, BatchState.CLOSED), public_notice__isnull=True
    ).select_related("region")
    approved = ReviewItem.objects.filter(batch=OuterRef("pk"), outcome=Outcome.APPROVED)
    return (
        _in_regions(batches, notice_region_ids(user))
        .annotate(has_approved=Exists(approved))
        .order_by("-period", "region__code")
    )


def batch_for_notice(user: roles.AnyUser, batch_id: int) -> ReviewBatch | None:
    return (
        _in_regions(ReviewBatch.objects.select_related("region"), notice_region_ids(user)).filter(pk=batch_id).first()
    )


def notice_applications(batch: ReviewBatch) -> QuerySet[Application]:
    """The approved list of a batch: applications approved through it and still covering, in approval order."""
    return (
        Application.objects.filter(
            review_items__batch=batch, review_items__outcome=Outcome.APPROVED, state__in=COVERING_STATES
        )
        .select_related("person", "disease", "treating_institution")
        .order_by("decided_at", "pk")
        .distinct()
    )


def entries_of(notice: PublicNotice) -> QuerySet[NoticeEntry]:
    return notice.entries.order_by("number")


def entries_with_objections(notice: PublicNotice) -> list[NoticeEntry]:
    entries = list(entries_of(notice).prefetch_related("objections__recorded_by", "objections__resolved_by"))
    return entries


def entry_for_officer(user: roles.AnyUser, entry_id: int) -> NoticeEntry | None:
    entries = NoticeEntry.objects.select_related("notice")
    return _in_regions(entries, notice_region_ids(user), "notice__region_id").filter(pk=entry_id).first()


def objection_for_officer(user: roles.AnyUser, objection_id: int) -> Objection | None:
    objections = Objection.objects.select_related("entry__notice")
    return _in_regions(objections, notice_region_ids(user), "entry__notice__region_id").filter(pk=objection_id).first()


NOTICE_EXPORT_HEADER = ("no.", "name", "ID number", "disease", "institution", "status")


def notice_export_rows(notice: PublicNotice, *, held_label: str, withdrawn_label: str) -> list[list[Any]]:
    """The public list as a file: the masked snapshot only, exactly what the public page shows."""
    return [
        [
            entry.number,
            entry.masked_name,
            entry.masked_id_number,
            entry.disease_name,
            entry.institution_name,
            withdrawn_label if entry.withdrawn else (held_label if entry.held else ""),
        ]
        for entry in entries_of(notice)
    ]


def public_notices_open(day: dt.date) -> QuerySet[PublicNotice]:
    return (
        PublicNotice.objects.filter(starts_on__lte=day, ends_on__gte=day)
        .select_related("region", "batch")
        .order_by("-starts_on", "region__code")
    )


def public_notice(token: str, day: dt.date) -> PublicNotice | None:
    """A notice by its token, while it is published; after its end it is no longer public (404)."""
    if not token or len(token) > 32:
        return None
    return public_notices_open(day).filter(token=token).first()


# ---------------------------------------------------------------------------
# The application page
# ---------------------------------------------------------------------------


def application_panel(request: Any, application: Application) -> dict[str, Any] | None:
    """enrollment.selectors.APPLICATION_PANELS: the re-check and notice status of a visible application.

    The objector's text and contact are never here: "under verification" and the outcome only.
    """
    sample = RecheckSample.objects.filter(application=application).select_related("checked_by").first()
    entries = list(
        NoticeEntry.objects.filter(application=application).select_related("notice__batch").order_by("notice_id")
    )
    if sample is None and not entries:
        return None
    answerable = (
        sample is not None
        and sample.state == RecheckState.RETURNED
        and clinic_institution_id(request.user) == application.filing_institution_id
    )
    return {
        "template": "oversight/_application_panel.html",
        "sample": sample,
        "entries": entries,
        "answerable": answerable,
    }
