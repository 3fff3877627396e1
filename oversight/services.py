"""Every write of the oversight app: re-check draws and decisions, the clinic's answers to re-checks returned for
correction and the daily sweep of those requests, notices and objections.

Each service is keyword-only with a required ``actor``, runs in one transaction, locks the rows it changes
(oversight rows first, then enrollment's, in the order application_terminate takes them) and writes its
OversightAuditEntry inside. Corrections of an enrollment go through enrollment's own services, which write
the application's audit row.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django_fsm import has_transition_perm

from enrollment import selectors as enrollment_selectors
from enrollment import services as enrollment_services
from enrollment.models import (
    ACTIVE_STATES,
    COVERING_STATES,
    Application,
    AuditEntry,
    Region,
    TerminationReason,
    mask_id_number,
)
from kernel import roles
from kernel.errors import DomainError, InvalidInput, NotPermitted, RuleViolation
from oversight import selectors
from oversight.models import (
    Correction,
    CorrectionRequest,
    CorrectionState,
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
from reviews.models import BatchState, ReviewBatch, SupplementReason
from reviews.services import ensure_separation_of_duties
from reviews.services.notify import clinic_recipients, notify

logger = logging.getLogger(__name__)

RECHECK_STAGE = "sample_recheck"
# How a failed re-check is corrected: the enrollment terminated today, or the approval returned to the clinic.
TERMINATE, RETURN = "terminate", "return"
CORRECTIONS = (TERMINATE, RETURN)
PERIOD_PATTERN = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
TEXT_LIMIT = 2000


def _audit(
    *, action: str, actor: roles.Actor, reason: str = "", details: dict[str, Any] | None = None, **links: Any
) -> None:
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


def recheck_draw(*, region_id: int, period: str, actor: roles.Actor) -> RecheckDraw:
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


def recheck_draws_for_period(*, period: str, actor: roles.Actor) -> list[RecheckDraw]:
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


def _ensure_independent(*, application: Application, actor: roles.Actor) -> None:
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


def _correction_codes(codes: Sequence[str] | None) -> list[str]:
    """The checklist of a return (reviews' 补正 codes), validated, in the checklist's order."""
    given = list(dict.fromkeys(codes or []))
    unknown = [code for code in given if code not in SupplementReason.values]
    if unknown:
        raise InvalidInput(
            _("Unknown correction item: %(codes)s. Choose from: %(choices)s.")
            % {"codes": ", ".join(unknown), "choices": ", ".join(SupplementReason.values)},
            details={"field": "codes"},
        )
    return [code for code in SupplementReason.values if code in given]


def _masked(name: str) -> str:
    return (name[:1] + "*" * (len(name) - 1)) if name else ""


def recheck_decide(
    *,
    sample_id: int,
    actor: roles.Actor,
    passed: bool,
    reason: str = "",
    termination_reason: str = "",
    correction: str = TERMINATE,
    codes: Sequence[str] | None = None,
) -> RecheckSample:
    """A reviewer of the region records a sample's re-check: pass, or fail with a reason and a correction.

    ``correction="terminate"`` (the default): an enrollment that still covers is terminated at once through
    enrollment's service (one audit row there, with this sample and the reviewer's reason in the note) with the
    reason ``recheck_failed``; the reviewer picks none (``termination_reason`` names another only for callers
    that must). An enrollment that has already ended is left as it is.

    ``correction="return"``: the approval goes back to the clinic that filed it with a correction request — the
    checked ``codes`` (reviews' 补正 checklist) and the reason as its note — to answer within
    OVERSIGHT_CORRECTION_DAYS calendar days; the enrollment keeps covering (nothing changes retroactively) and the
    application's state is untouched. The clinic's answer puts the sample back in the queue; a pass then records
    it as corrected. A sample may be returned again.
    """
    if not roles.has_any_role(actor, roles.REVIEWER):
        raise NotPermitted(_("Sample re-checks are recorded by reviewers."))
    if correction not in CORRECTIONS:
        raise InvalidInput(
            _("A failure is corrected by one of: %(choices)s.") % {"choices": ", ".join(CORRECTIONS)},
            details={"field": "correction"},
        )
    returning = not passed and correction == RETURN
    if passed and correction == RETURN:
        raise InvalidInput(_("Only a failed re-check is returned to the clinic."), details={"field": "correction"})
    reason = _text(reason, field="reason", required=not passed)
    codes = _correction_codes(codes) if returning else []
    if not passed and not returning:
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
        application = Application.objects.select_related("physician", "person").get(pk=sample.application_id)
        _ensure_independent(application=application, actor=actor)
        was_returned = sample.correction == Correction.RETURNED
        request = None
        if passed:
            outcome = Correction.CORRECTED if was_returned else Correction.NONE
        elif returning:
            if application.state not in COVERING_STATES:
                raise RuleViolation(
                    _("The enrollment has already ended: there is nothing to return. Record the failure instead."),
                    code="not_covering",
                )
            request = _correction_open(sample=sample, application=application, codes=codes, note=reason, actor=actor)
            outcome = Correction.RETURNED
        elif application.state in COVERING_STATES:
            enrollment_services.application_terminate(
                application_id=application.pk,
                actor=actor,
                reason=termination_reason,
                note=_("Sample re-check #%(id)s failed: %(reason)s") % {"id": sample.pk, "reason": reason},
            )
            outcome = Correction.TERMINATED
        else:
            outcome = Correction.ALREADY_ENDED
        if passed:
            sample.state = RecheckState.PASSED
        else:
            sample.state = RecheckState.RETURNED if returning else RecheckState.FAILED
        sample.checked_by = actor
        sample.checked_at = timezone.now()
        sample.reason = reason
        sample.correction = outcome
        sample.returns += 1 if returning else 0
        sample.save(update_fields=["state", "checked_by", "checked_at", "reason", "correction", "returns"])
        if returning:
            assert request is not None
            _audit(
                action=OversightAction.RECHECK_RETURNED,
                actor=actor,
                sample=sample,
                application=application,
                correction_request=request,
                reason=reason,
                details={
                    "correction": outcome,
                    "request": request.pk,
                    "codes": codes,
                    "answer_by": request.answer_by.isoformat(),
                },
            )
        else:
            terminated = outcome == Correction.TERMINATED
            details: dict[str, Any] = {
                "correction": outcome,
                "termination_reason": termination_reason if terminated else "",
            }
            if was_returned:
                details["after_returns"] = sample.returns
            _audit(
                action=OversightAction.RECHECK_PASSED if passed else OversightAction.RECHECK_FAILED,
                actor=actor,
                sample=sample,
                application=application,
                reason=reason,
                details=details,
            )
        return sample


def _correction_open(
    *, sample: RecheckSample, application: Application, codes: list[str], note: str, actor: roles.Actor
) -> CorrectionRequest:
    """The correction request of a return, and the in-app notice to the filing clinic's staff."""
    today = timezone.localdate()
    answer_by = today + dt.timedelta(days=int(settings.OVERSIGHT_CORRECTION_DAYS))
    reminder_days = int(settings.OVERSIGHT_CORRECTION_REMINDER_DAYS)
    request = CorrectionRequest.objects.create(
        sample=sample,
        application=application,
        institution_id=application.filing_institution_id,
        codes=codes,
        note=note,
        requested_by=actor,
        requested_at=timezone.now(),
        answer_by=answer_by,
        remind_on=answer_by - dt.timedelta(days=reminder_days) if reminder_days else None,
    )
    notify(
        recipients=clinic_recipients(application),
        kind="recheck_correction",
        application=application,
        subject=_("Approved application #%(id)s (%(name)s): a sample re-check asks for corrections")
        % {"id": application.pk, "name": _masked(application.person.name)},
        message=_(
            "The re-check asks for: %(reasons)s. %(note)s Answer by %(answer_by)s on the clinic's home page; the "
            "enrollment keeps covering meanwhile. Without an answer by then it is terminated."
        )
        % {
            "reasons": "；".join(request.reasons()) or _("see the note"),
            "note": note,
            "answer_by": answer_by.isoformat(),
        },
    )
    return request


# ---------------------------------------------------------------------------
# Sample re-checks: the clinic's answer to a return, reminders, no answer in time
# ---------------------------------------------------------------------------


def recheck_answer(
    *, sample_id: int, actor: roles.Actor, answer: str, documents: Sequence[tuple[str, UploadedFile]] = ()
) -> CorrectionRequest:
    """Staff of the clinic that filed the application answer its open correction request: a note, and documents
    stored through enrollment's document service (attached to the application). The sample goes back to the
    re-check queue (``pending``) with the answer recorded, for a reviewer to decide again."""
    if not roles.has_any_role(actor, roles.CLINIC_STAFF):
        raise NotPermitted(_("Correction requests are answered by the staff of the clinic that filed the application."))
    answer = (answer or "").strip()
    if not answer:
        raise InvalidInput(_("Write what was corrected or added."), details={"field": "answer"})
    answer = _text(answer, field="answer", required=True)
    prepared = [enrollment_services.prepare_document(doc_type, upload) for doc_type, upload in documents]
    with enrollment_services.StoredFiles() as files, transaction.atomic():
        try:
            sample = RecheckSample.objects.select_for_update().get(pk=sample_id)
        except RecheckSample.DoesNotExist:
            raise InvalidInput(_("Re-check #%(id)s does not exist.") % {"id": sample_id}, code="not_found")
        application = Application.objects.select_related("person").get(pk=sample.application_id)
        if selectors.clinic_institution_id(actor) != application.filing_institution_id:
            raise NotPermitted(_("This correction request is for another institution."))
        request = (
            CorrectionRequest.objects.select_for_update().filter(sample=sample, state=CorrectionState.OPEN).first()
        )
        if request is None or sample.state != RecheckState.RETURNED:
            raise RuleViolation(
                _("No correction request of this re-check waits for an answer."), code="no_open_request"
            )
        if timezone.localdate() > request.answer_by:
            raise RuleViolation(
                _("The answer was due by %(day)s.") % {"day": request.answer_by.isoformat()}, code="answer_overdue"
            )
        if prepared and application.state not in ACTIVE_STATES:
            raise RuleViolation(
                _("Documents cannot be added to a %(state)s application.") % {"state": application.get_state_display()},
                code="transition_not_allowed",
            )
        stored = [
            enrollment_services.store_document(application=application, prepared=doc, actor=actor, files=files)
            for doc in prepared
        ]
        request.state = CorrectionState.ANSWERED
        request.answered_by = actor
        request.answered_at = timezone.now()
        request.answer = answer
        request.save(update_fields=["state", "answered_by", "answered_at", "answer"])
        if stored:
            request.documents.set(stored)
        sample.state = RecheckState.PENDING
        sample.save(update_fields=["state"])
        _audit(
            action=OversightAction.CORRECTION_ANSWERED,
            actor=actor,
            sample=sample,
            application=application,
            correction_request=request,
            reason=answer,
            details={"request": request.pk, "documents": [document.pk for document in stored]},
        )
        notify(
            recipients=[request.requested_by],
            kind="recheck_correction_answered",
            application=application,
            subject=_("Re-check #%(sample)s: the clinic answered correction request #%(id)s")
            % {"sample": sample.pk, "id": request.pk},
            message=_("The sample is back in the re-check queue for a decision."),
        )
    return request


@dataclass
class CorrectionSweep:
    reminded: list[int] = field(default_factory=list)
    terminated: list[int] = field(default_factory=list)


def corrections_sweep(*, actor: roles.Actor, today: dt.date | None = None) -> CorrectionSweep:
    """Beat, daily: remind each open correction request once on its reminder day; end each one not answered by its
    answer-by day (the enrollment terminated, reason ``recheck_failed``). Safe to run twice, and beside a second
    worker: each step re-checks the request's state under its lock."""
    if not roles.is_system(actor):
        raise NotPermitted(_("Only the system sweeps correction requests."))
    today = today or timezone.localdate()
    result = CorrectionSweep()
    due_reminders = CorrectionRequest.objects.filter(
        state=CorrectionState.OPEN, reminded_at__isnull=True, remind_on__lte=today, answer_by__gte=today
    ).values_list("pk", flat=True)
    for request_id in list(due_reminders):
        if correction_remind(request_id=request_id, actor=actor, today=today):
            result.reminded.append(request_id)
    overdue = CorrectionRequest.objects.filter(state=CorrectionState.OPEN, answer_by__lt=today).values_list(
        "pk", flat=True
    )
    for request_id in list(overdue):
        try:
            if correction_lapse(request_id=request_id, actor=actor, today=today):
                result.terminated.append(request_id)
        except DomainError:  # one enrollment the service refuses must not hold up the others; retried tomorrow
            logger.exception("correction request %s: the enrollment could not be terminated", request_id)
    return result


def correction_remind(*, request_id: int, actor: roles.Actor, today: dt.date) -> bool:
    """The one reminder of an open request (a conditional read under the lock: a second run finds it sent)."""
    if not roles.is_system(actor):
        raise NotPermitted(_("Only the system sweeps correction requests."))
    with transaction.atomic():
        request = (
            CorrectionRequest.objects.select_for_update()
            .filter(pk=request_id, state=CorrectionState.OPEN, reminded_at__isnull=True, answer_by__gte=today)
            .first()
        )
        if request is None:
            return False
        request.reminded_at = timezone.now()
        request.save(update_fields=["reminded_at"])
        application = Application.objects.select_related("person").get(pk=request.application_id)
        _audit(
            action=OversightAction.CORRECTION_REMINDED,
            actor=actor,
            sample_id=request.sample_id,
            application=application,
            correction_request=request,
            details={"request": request.pk, "answer_by": request.answer_by.isoformat()},
        )
        notify(
            recipients=clinic_recipients(application),
            kind="recheck_correction_reminder",
            application=application,
            subject=_("Reminder: approved application #%(id)s (%(name)s) still needs the re-check's corrections")
            % {"id": application.pk, "name": _masked(application.person.name)},
            message=_(
                "Answer correction request #%(request)s (%(reasons)s) by %(answer_by)s (%(days)s days left); "
                "after that day the enrollment is terminated."
            )
            % {
                "request": request.pk,
                "reasons": "；".join(request.reasons()) or request.note,
                "answer_by": request.answer_by.isoformat(),
                "days": (request.answer_by - today).days,
            },
        )
    return True


def correction_lapse(*, request_id: int, actor: roles.Actor, today: dt.date) -> bool:
    """A request not answered by its day: the sample fails and an enrollment that still covers is terminated today
    (enrollment's service, reason ``recheck_failed``), exactly once — the sample, then the request, are locked
    and the request must still be open."""
    if not roles.is_system(actor):
        raise NotPermitted(_("Only the system sweeps correction requests."))
    with transaction.atomic():
        sample_id = (
            CorrectionRequest.objects.filter(pk=request_id, state=CorrectionState.OPEN)
            .values_list("sample_id", flat=True)
            .first()
        )
        if sample_id is None:
            return False
        sample = RecheckSample.objects.select_for_update().get(pk=sample_id)  # the sample first, as every path
        request = CorrectionRequest.objects.select_for_update().get(pk=request_id)
        if request.state != CorrectionState.OPEN or request.answer_by >= today:
            return False
        application = Application.objects.select_related("person").get(pk=request.application_id)
        note = _("No answer to correction request #%(id)s by %(day)s (sample re-check #%(sample)s).") % {
            "id": request.pk,
            "day": request.answer_by.isoformat(),
            "sample": sample.pk,
        }
        terminated = application.state in COVERING_STATES
        if terminated:
            enrollment_services.application_terminate(
                application_id=application.pk, actor=actor, reason=TerminationReason.RECHECK_FAILED, note=note
            )
        now = timezone.now()
        request.state = CorrectionState.LAPSED
        request.lapsed_at = now
        request.save(update_fields=["state", "lapsed_at"])
        sample.state = RecheckState.FAILED
        sample.checked_by = actor
        sample.checked_at = now
        sample.reason = note
        sample.correction = Correction.UNANSWERED if terminated else Correction.ALREADY_ENDED
        sample.save(update_fields=["state", "checked_by", "checked_at", "reason", "correction"])
        _audit(
            action=OversightAction.CORRECTION_LAPSED,
            actor=actor,
            sample=sample,
            application=application,
            correction_request=request,
            reason=note,
            details={
                "correction": sample.correction,
                "termination_reason": TerminationReason.RECHECK_FAILED if terminated else "",
                "request": request.pk,
                "answer_by": request.answer_by.isoformat(),
            },
        )
        if terminated:
            notify(
                recipients=clinic_recipients(application),
                kind="recheck_correction_lapsed",
                application=application,
                subject=_("Enrollment #%(id)s (%(name)s) terminated: no answer to the re-check's corrections")
                % {"id": application.pk, "name": _masked(application.person.name)},
                message=note,
            )
    return True


# ---------------------------------------------------------------------------
# Public notices (公示)
# ---------------------------------------------------------------------------


def notice_publish(*, batch_id: int, actor: roles.Actor, days: int | None = None) -> PublicNotice:
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


def _lock_entry(entry_id: int, actor: roles.Actor) -> NoticeEntry:
    try:
        entry = NoticeEntry.objects.select_for_update().get(pk=entry_id)
    except NoticeEntry.DoesNotExist:
        raise InvalidInput(_("Notice entry #%(id)s does not exist.") % {"id": entry_id}, code="not_found")
    entry.notice = PublicNotice.objects.get(pk=entry.notice_id)
    if not _in_scope(selectors.notice_region_ids(actor), entry.notice.region_id):
        raise NotPermitted(_("This notice belongs to another region."))
    return entry


def objection_record(*, entry_id: int, actor: roles.Actor, channel: str, text: str, contact: str = "") -> Objection:
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
    *, objection_id: int, actor: roles.Actor, upheld: bool, resolution: str, termination_reason: str = ""
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
