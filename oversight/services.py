"""Every write of the oversight app: re-check draws and decisions, notices and objections.

Each service is keyword-only with a required ``actor``, runs in one transaction, locks the rows it changes
(oversight rows first, then enrollment's, in the order application_terminate takes them) and writes its
OversightAuditEntry inside. Corrections of an enrollment go through enrollment's own services, which write
the application's audit row.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django_fsm import has_transition_perm

from enrollment import selectors as enrollment_selectors
from enrollment import services as enrollment_services
from enrollment.models import COVERING_STATES, Application, AuditEntry, Region, TerminationReason, mask_id_number
from kernel import roles
from kernel.errors import InvalidInput, NotPermitted, RuleViolation
from oversight import selectors
from oversight.models import (
    Correction,
    NoticeEntry,
    Objection,
    ObjectionChannel,
    ObjectionState,
    OversightAction,
    OversightAuditEntry,
    PublicNotice,
    RecheckDraw,
    RecheckSample,
    RecheckState,
    mask_name,
)
from reviews.models import BatchState, ReviewBatch
from reviews.services import ensure_separation_of_duties

RECHECK_STAGE = "sample_recheck"
PERIOD_PATTERN = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
TEXT_LIMIT = 2000


def _audit(*, action: str, actor: Any, reason: str = "", details: dict[str, Any] | None = None, **links: Any) -> None:
    OversightAuditEntry(
        action=action, actor=actor, at=timezone.now(), reason=reason, details=details or {}, **links
    ).save()


def _text(value: str, *, field: str, required: bool, limit: int = TEXT_LIMIT) -> str:
    value = (value or "").strip()
    if required and not value:
        raise InvalidInput(_("Write a reason: it is kept in the audit trail."), details={"field": field})
    if len(value) > limit:
        raise InvalidInput(_("At most %(limit)s characters, please.") % {"limit": limit}, details={"field": field})
    return value


def _in_scope(region_ids: list[int] | None, region_id: int) -> bool:
    return region_ids is None or region_id in region_ids


# ---------------------------------------------------------------------------
# Sample re-checks (抽查复核): the draw
# ---------------------------------------------------------------------------


def recheck_draw(*, region_id: int, period: str, actor: Any) -> RecheckDraw:
    """Draw the region's low-review approvals of ``period`` (YYYY-MM) into the re-check queue, once.

    The first run creates the draw with a random seed and picks every candidate whose score
    (SHA-256 of seed and application id) is below its rate; later runs, and a second worker running at the
    same time, find the completed draw and change nothing. An application is sampled at most once, ever
    (unique application), so overlapping runs cannot queue it twice.
    """
    if not PERIOD_PATTERN.match(period or ""):
        raise InvalidInput(_("Give the period as YYYY-MM."), details={"field": "period"})
    if not (roles.is_system(actor) or roles.has_any_role(actor, roles.ADMIN)):
        raise NotPermitted(_("Re-check draws are run by the system (beat) or an administrator."))
    region = Region.objects.get(pk=region_id)
    with transaction.atomic():
        try:
            with transaction.atomic():
                draw, _created = RecheckDraw.objects.get_or_create(
                    region=region,
                    period=period,
                    defaults={"seed": secrets.token_hex(16), "drawn_at": timezone.now(), "drawn_by": actor},
                )
        except IntegrityError:  # another worker created it between our read and our insert
            draw = RecheckDraw.objects.get(region=region, period=period)
        draw = RecheckDraw.objects.select_for_update().get(pk=draw.pk)
        if draw.completed_at is not None:
            return draw
        candidates = selectors.recheck_candidates(region_id=region.pk, period=period)
        lineage = enrollment_selectors.region_lineage_ids(region)
        rates = selectors.rates_for_lineage(lineage)
        samples = []
        for candidate in candidates:
            choice = selectors.recheck_rate(
                rates=rates,
                lineage_ids=lineage,
                disease_id=candidate.disease_id,
                institution_id=candidate.institution_id,
            )
            score = selectors.draw_score(draw.seed, candidate.application_id)
            if selectors.is_drawn(score, choice.percent):
                samples.append(
                    RecheckSample(
                        draw=draw,
                        application_id=candidate.application_id,
                        region=region,
                        institution_id=candidate.institution_id,
                        kind=candidate.kind,
                        approved_at=candidate.approved_at,
                        percent=choice.percent,
                        rate_source=choice.source,
                        score=score,
                    )
                )
        RecheckSample.objects.bulk_create(samples, ignore_conflicts=True)
        draw.candidates = len(candidates)
        draw.sampled = RecheckSample.objects.filter(draw=draw).count()
        draw.completed_at = timezone.now()
        draw.save(update_fields=["candidates", "sampled", "completed_at"])
        _audit(
            action=OversightAction.DRAW,
            actor=actor,
            draw=draw,
            details={
                "region": region.code,
                "period": period,
                "seed": draw.seed,
                "candidates": draw.candidates,
                "sampled": draw.sampled,
                "rule": "sha256(seed:application_id) < rate",
            },
        )
        return draw


def recheck_draws_for_period(*, period: str, actor: Any) -> list[RecheckDraw]:
    """Every region with approvals in ``period``: one draw each, each in its own transaction."""
    if not PERIOD_PATTERN.match(period or ""):
        raise InvalidInput(_("Give the period as YYYY-MM."), details={"field": "period"})
    return [
        recheck_draw(region_id=region_id, period=period, actor=actor)
        for region_id in selectors.regions_with_approvals(period)
    ]


# ---------------------------------------------------------------------------
# Sample re-checks: the decision
# ---------------------------------------------------------------------------


def _ensure_independent(*, application: Application, actor: Any) -> None:
    """Separation of duties, as in a stage decision, and not the one who approved it either."""
    ensure_separation_of_duties(application=application, actor=actor, stage=RECHECK_STAGE)
    approved_by_actor = AuditEntry.objects.filter(
        application=application, transition__in=selectors.APPROVAL_TRANSITIONS, actor=actor
    ).exists()
    if approved_by_actor:
        raise RuleViolation(
            _("You approved this application, so another reviewer re-checks it."),
            code="separation_of_duties",
            details={"rule": "approved_by"},
        )


def _termination_reason(value: str, default: str) -> str:
    """The reason an oversight correction terminates with: its own precise reason unless a caller names another."""
    if not value:
        return default
    if value not in TerminationReason.values:
        raise InvalidInput(
            _("Choose a termination reason: %(choices)s.") % {"choices": ", ".join(TerminationReason.values)},
            code="invalid_reason",
            details={"field": "termination_reason"},
        )
    return value


def recheck_decide(
    *, sample_id: int, actor: Any, passed: bool, reason: str = "", termination_reason: str = ""
) -> RecheckSample:
    """A reviewer of the region records a sample's re-check: pass, or fail with a reason.

    A failed re-check of an enrollment that still covers opens its correction at once: the enrollment is
    terminated through enrollment's service (one audit row there, with this sample and the reviewer's reason
    in the note) with the reason ``recheck_failed``; the reviewer picks none (``termination_reason`` names
    another only for callers that must). An enrollment that has already ended is left as it is.
    """
    if not roles.has_any_role(actor, roles.REVIEWER):
        raise NotPermitted(_("Sample re-checks are recorded by reviewers."))
    reason = _text(reason, field="reason", required=not passed)
    if not passed:
        termination_reason = _termination_reason(termination_reason, TerminationReason.RECHECK_FAILED)
    with transaction.atomic():
        try:
            sample = RecheckSample.objects.select_for_update().get(pk=sample_id)
        except RecheckSample.DoesNotExist:
            raise InvalidInput(_("Re-check #%(id)s does not exist.") % {"id": sample_id}, code="not_found")
        if not _in_scope(selectors.recheck_region_ids(actor), sample.region_id):
            raise NotPermitted(_("This re-check belongs to another region."))
        if sample.state != RecheckState.PENDING:
            raise RuleViolation(
                _("This sample was already re-checked (%(state)s).") % {"state": sample.get_state_display()},
                code="already_rechecked",
            )
        application = Application.objects.select_related("physician").get(pk=sample.application_id)
        _ensure_independent(application=application, actor=actor)
        correction = Correction.NONE
        if not passed:
            if application.state in COVERING_STATES:
                enrollment_services.application_terminate(
                    application_id=application.pk,
                    actor=actor,
                    reason=termination_reason,
                    note=_("Sample re-check #%(id)s failed: %(reason)s") % {"id": sample.pk, "reason": reason},
                )
                correction = Correction.TERMINATED
            else:
                correction = Correction.ALREADY_ENDED
        sample.state = RecheckState.PASSED if passed else RecheckState.FAILED
        sample.checked_by = actor
        sample.checked_at = timezone.now()
        sample.reason = reason
        sample.correction = correction
        sample.save(update_fields=["state", "checked_by", "checked_at", "reason", "correction"])
        _audit(
            action=OversightAction.RECHECK_PASSED if passed else OversightAction.RECHECK_FAILED,
            actor=actor,
            sample=sample,
            application=application,
            reason=reason,
            details={"correction": correction, "termination_reason": termination_reason if correction else ""},
        )
        return sample


# ---------------------------------------------------------------------------
# Public notices (公示)
# ---------------------------------------------------------------------------


def notice_publish(*, batch_id: int, actor: Any, days: int | None = None) -> PublicNotice:
    """Publish a reviewing or closed batch's approved list from today for the policy's number of calendar
    days (default 7; both the first and the last day are included)."""
    if not roles.has_any_role(actor, roles.CENTER_OFFICER, roles.ADMIN):
        raise NotPermitted(_("Notices are published by centre officers and administrators."))
    with transaction.atomic():
        try:
            batch = ReviewBatch.objects.select_for_update().select_related("region").get(pk=batch_id)
        except ReviewBatch.DoesNotExist:
            raise InvalidInput(_("Batch #%(id)s does not exist.") % {"id": batch_id}, code="not_found")
        if not _in_scope(selectors.notice_region_ids(actor), batch.region_id):
            raise NotPermitted(_("This batch belongs to another region."))
        if batch.state not in (BatchState.REVIEWING, BatchState.CLOSED):
            raise RuleViolation(
                _("The batch is still being assembled; publish it once it is reviewing or closed."),
                code="batch_not_ready",
            )
        if PublicNotice.objects.filter(batch=batch).exists():
            raise RuleViolation(_("This batch's approved list is already published."), code="already_published")
        policy_days = selectors.notice_days_for(batch.region)
        days = policy_days if days is None else days
        if not 5 <= days <= 30:
            raise InvalidInput(_("A notice runs between 5 and 30 days."), details={"field": "days"})
        today = timezone.localdate()
        notice = PublicNotice.objects.create(
            batch=batch,
            region=batch.region,
            token=secrets.token_urlsafe(16)[:22],
            starts_on=today,
            ends_on=today + dt.timedelta(days=days - 1),
            days=days,
            published_by=actor,
            published_at=timezone.now(),
        )
        entries = [
            NoticeEntry(
                notice=notice,
                application=application,
                number=number,
                masked_name=mask_name(application.person.name),
                masked_id_number=mask_id_number(application.person.id_number),
                disease_name=application.disease.name,
                institution_name=application.treating_institution.name,
            )
            for number, application in enumerate(selectors.notice_applications(batch), start=1)
        ]
        NoticeEntry.objects.bulk_create(entries)
        _audit(
            action=OversightAction.NOTICE_PUBLISHED,
            actor=actor,
            notice=notice,
            details={
                "batch": batch.pk,
                "entries": len(entries),
                "starts_on": notice.starts_on.isoformat(),
                "ends_on": notice.ends_on.isoformat(),
                "days": days,
            },
        )
        return notice


def _lock_entry(entry_id: int, actor: Any) -> NoticeEntry:
    try:
        entry = NoticeEntry.objects.select_for_update().get(pk=entry_id)
    except NoticeEntry.DoesNotExist:
        raise InvalidInput(_("Notice entry #%(id)s does not exist.") % {"id": entry_id}, code="not_found")
    entry.notice = PublicNotice.objects.get(pk=entry.notice_id)
    if not _in_scope(selectors.notice_region_ids(actor), entry.notice.region_id):
        raise NotPermitted(_("This notice belongs to another region."))
    return entry


def objection_record(*, entry_id: int, actor: Any, channel: str, text: str, contact: str = "") -> Objection:
    """Record an objection received during the notice period; it holds the entry ("under verification").

    The approval stays in force while the entry is held (the enrollment covers as before); the officer's
    resolution either corrects it (upheld) or releases the hold (rejected).
    """
    if not roles.has_any_role(actor, roles.CENTER_OFFICER, roles.ADMIN):
        raise NotPermitted(_("Objections are recorded by centre officers and administrators."))
    if channel not in ObjectionChannel.values:
        raise InvalidInput(_("Say how the objection was received."), details={"field": "channel"})
    text = _text(text, field="text", required=True)
    contact = _text(contact, field="contact", required=False, limit=200)
    with transaction.atomic():
        entry = _lock_entry(entry_id, actor)
        today = timezone.localdate()
        if not entry.notice.is_open_on(today):
            raise RuleViolation(
                _("Objections are recorded during the notice period (%(start)s to %(end)s).")
                % {"start": entry.notice.starts_on, "end": entry.notice.ends_on},
                code="notice_closed",
            )
        if entry.withdrawn:
            raise RuleViolation(_("This approval was already withdrawn after verification."), code="entry_withdrawn")
        objection = Objection.objects.create(
            entry=entry, channel=channel, text=text, contact=contact, recorded_by=actor, recorded_at=timezone.now()
        )
        entry.held = True
        entry.save(update_fields=["held"])
        # The objector's text and contact stay in the Objection row (personal data), not in the audit details.
        _audit(
            action=OversightAction.OBJECTION_RECORDED,
            actor=actor,
            objection=objection,
            notice=entry.notice,
            application_id=entry.application_id,
            details={"entry": entry.number, "channel": channel},
        )
        return objection


@dataclass(frozen=True)
class Resolution:
    objection: Objection
    terminated: bool


def objection_resolve(
    *, objection_id: int, actor: Any, upheld: bool, resolution: str, termination_reason: str = ""
) -> Resolution:
    """An officer resolves an objection after verifying it.

    Upheld: an enrollment that still covers is terminated (enrollment's service, ending today, never
    retroactively) with the reason ``objection_upheld`` and the officer's resolution in the note (the officer
    picks no reason; ``termination_reason`` names another only for callers that must), and the entry shows
    "approval withdrawn after verification". Rejected: the hold is released once no other objection to the
    entry is open.
    """
    if not roles.has_any_role(actor, roles.CENTER_OFFICER, roles.ADMIN):
        raise NotPermitted(_("Objections are resolved by centre officers and administrators."))
    resolution = _text(resolution, field="resolution", required=True)
    termination_reason = _termination_reason(termination_reason, TerminationReason.OBJECTION_UPHELD) if upheld else ""
    with transaction.atomic():
        try:
            objection = Objection.objects.select_for_update().get(pk=objection_id)
        except Objection.DoesNotExist:
            raise InvalidInput(_("Objection #%(id)s does not exist.") % {"id": objection_id}, code="not_found")
        entry = _lock_entry(objection.entry_id, actor)
        if objection.state != ObjectionState.OPEN:
            raise RuleViolation(_("This objection was already resolved."), code="already_resolved")
        terminated = False
        if upheld:
            application = Application.objects.get(pk=entry.application_id)
            if application.state in COVERING_STATES:
                # Centre officers hold no terminate permission of their own (reviewers and admins do): the
                # correction is carried out by the system on the officer's recorded resolution, and both audit
                # trails name it.
                terminator = actor if has_transition_perm(application.terminate, actor) else None
                enrollment_services.application_terminate(
                    application_id=application.pk,
                    actor=terminator or enrollment_services.get_system_user(),
                    reason=termination_reason,
                    note=_("Objection to public notice entry %(number)s upheld by %(user)s: %(resolution)s")
                    % {"number": entry.number, "user": actor.get_username(), "resolution": resolution},
                )
                terminated = True
            entry.withdrawn = True
        objection.state = ObjectionState.UPHELD if upheld else ObjectionState.REJECTED
        objection.resolved_by = actor
        objection.resolved_at = timezone.now()
        objection.resolution = resolution
        objection.save(update_fields=["state", "resolved_by", "resolved_at", "resolution"])
        entry.held = entry.objections.filter(state=ObjectionState.OPEN).exclude(pk=objection.pk).exists()
        entry.save(update_fields=["held", "withdrawn"])
        _audit(
            action=OversightAction.OBJECTION_UPHELD if upheld else OversightAction.OBJECTION_REJECTED,
            actor=actor,
            objection=objection,
            notice_id=entry.notice_id,
            application_id=entry.application_id,
            reason=resolution,
            details={"entry": entry.number, "terminated": terminated, "termination_reason": termination_reason},
        )
        return Resolution(objection=objection, terminated=terminated)
