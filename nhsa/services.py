"""Every write of the platform outbox (docs/platform.md, "Outbox guarantees").

``on_transition`` runs inside enrollment's transition transaction (enrollment.services.TRANSITION_HOOKS):
the message commits or rolls back with the approval or termination it reports. ``platform_message_deliver``
sends one message outside any transaction: the claim (a conditional UPDATE) and the outcome are each
their own short transaction, and the request in between carries the msgid fixed at creation, so a retry
or a re-send after a killed worker is answered by the platform as the same message.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import uuid
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from enrollment.models import Application, ApplicationKind, Person, province_code
from kernel import roles
from kernel.errors import InvalidInput, NotPermitted
from kernel.task_queue import enqueue
from nhsa import client as platform
from nhsa import envelope
from nhsa.models import (
    FilingState,
    MessageKind,
    MessageState,
    PlatformFiling,
    PlatformMessage,
    PlatformPerson,
)

logger = logging.getLogger(__name__)

FILING_TRANSITIONS = ("approve", "approve_immediately")
CANCELLING_TRANSITIONS = ("terminate",)
# Seconds a cancellation waits before it looks again at a filing still in flight.
DEPENDENCY_WAIT_SECONDS = 60
BACKOFF_CAP_SECONDS = 3600


def may_handle(user: roles.Actor) -> bool:
    return roles.has_any_role(user, roles.CENTER_OFFICER, roles.ADMIN)


# ---------------------------------------------------------------------------
# Writing messages (inside enrollment's transaction)
# ---------------------------------------------------------------------------


def on_transition(*, application: Application, transition: str, from_state: str, actor: roles.Actor) -> None:
    """enrollment.services.TRANSITION_HOOKS: queue a 2503 on approval, a 2504 on termination."""
    if not platform.platform_enabled():
        return
    if application.kind == ApplicationKind.TWO_DISEASES:
        return  # 两病 medication coverage is not a 门慢 filing
    if transition in FILING_TRANSITIONS:
        message_file(application=application)
    elif transition in CANCELLING_TRANSITIONS:
        # 2504's memo is free text, not a code of the platform's: our reason code goes as it is, oversight's
        # recheck_failed and objection_upheld included (docs/platform.md, 2504).
        message_cancel(application=application, memo=application.termination_reason or transition)


def _fixmedins_code(application: Application) -> str:
    return getattr(settings, "PLATFORM_FIXMEDINS_CODE", "") or application.treating_institution.code


def _create(*, application: Application, kind: str, payload: dict[str, Any], **fields: Any) -> PlatformMessage:
    """Insert with a placeholder msgid, then fix the real one from the row's id (unique per second)."""
    message = PlatformMessage.objects.create(
        application=application,
        kind=kind,
        msgid="tmp-" + uuid.uuid4().hex,
        payload=payload,
        next_attempt_at=timezone.now(),
        **fields,
    )
    message.msgid = envelope.new_msgid(_fixmedins_code(application), timezone.now(), message.pk)
    message.save(update_fields=["msgid"])
    if message.state == MessageState.PENDING:
        message_id = message.pk
        transaction.on_commit(lambda: _enqueue(message_id))
    return message


def _enqueue(message_id: int) -> None:
    try:
        enqueue("nhsa.tasks.deliver", message_id)  # by name: the tasks module imports this one
    except Exception:  # noqa: BLE001 - the broker being down loses nothing: beat hands the row over
        logger.warning("platform message %s not queued; deliver_due will send it", message_id, exc_info=True)


def filing_payload(application: Application, psn_no: str = "") -> dict[str, Any]:
    """The 2503 input (field mapping in docs/platform.md)."""
    person = application.person
    physician = application.physician
    # 鉴定定点医药机构: where the qualifying diagnosis was made (as the national-shape export has it).
    institution = physician.institution if physician is not None else application.treating_institution
    return {
        "psn_no": psn_no,
        "insutype": person.insurance_type,
        "opsp_dise_code": application.disease.code,
        "opsp_dise_name": application.disease.name,
        "tel": person.phone or "",
        "addr": "",
        "insu_optins": application.region.code[:6],  # the platform's 6-digit division: a township's county
        "ide_fixmedins_no": institution.code,
        "ide_fixmedins_name": institution.name,
        "hosp_ide_date": application.diagnosis_date.isoformat() if application.diagnosis_date else "",
        "diag_dr_codg": physician.licence_number if physician else "",
        "diag_dr_name": physician.name if physician else "",
        "begndate": application.valid_from.isoformat() if application.valid_from else "",
        "enddate": (application.valid_until or LONG_TERM_END).isoformat(),
    }


LONG_TERM_END = envelope.LONG_TERM_ENDDATE


def message_file(*, application: Application) -> PlatformMessage:
    known = PlatformPerson.objects.filter(person_id=application.person_id).values_list("psn_no", flat=True).first()
    return _create(application=application, kind=MessageKind.FILE, payload=filing_payload(application, known or ""))


def message_cancel(*, application: Application, memo: str) -> PlatformMessage | None:
    """A 2504 for the application's filing; nothing when the filing never left (it is superseded instead)."""
    filing = PlatformFiling.objects.filter(application=application, state=FilingState.FILED).first()
    file_message = (
        PlatformMessage.objects.select_for_update()
        .filter(application=application, kind=MessageKind.FILE)
        .exclude(state__in=(MessageState.SUPERSEDED, MessageState.CANCELLED))
        .order_by("-pk")
        .first()
    )
    if filing is None and file_message is None:
        return None
    if filing is None and file_message is not None:
        # Never transmitted: take it back (conditional, so a worker that claimed it meanwhile wins).
        taken = PlatformMessage.objects.filter(
            pk=file_message.pk,
            state__in=(MessageState.PENDING, MessageState.HELD, MessageState.FAILED),
            transmitted=False,
        ).update(state=MessageState.SUPERSEDED, last_error=_("enrollment ended before it was filed"))
        if taken:
            return None
        if file_message.state == MessageState.FAILED and file_message.answer_code:
            # The platform refused it: there is nothing there to cancel.
            PlatformMessage.objects.filter(pk=file_message.pk).update(state=MessageState.SUPERSEDED)
            return None
    payload = {
        "trt_dcla_detl_sn": filing.trt_dcla_detl_sn if filing else "",
        "psn_no": file_message.payload.get("psn_no", "") if file_message else "",
        "memo": memo,
    }
    return _create(
        application=application,
        kind=MessageKind.CANCEL,
        payload=payload,
        depends_on=None if filing else file_message,
    )


def message_cancel_serial(*, application: Application, serial: str, psn_no: str, memo: str) -> PlatformMessage:
    """A 2504 for a serial the platform holds (reconciliation: a filing that ended here)."""
    return _create(
        application=application,
        kind=MessageKind.CANCEL,
        payload={"trt_dcla_detl_sn": serial, "psn_no": psn_no, "memo": memo},
    )


# ---------------------------------------------------------------------------
# Delivery
# ---------------------------------------------------------------------------


def backoff_seconds(attempts: int) -> int:
    """1, 2, 4, … minutes after the 1st, 2nd, 3rd … failed attempt, at most an hour."""
    return min(60 * 2 ** max(attempts - 1, 0), BACKOFF_CAP_SECONDS)


def _claimable(now: dt.datetime) -> Q:
    stale = now - dt.timedelta(seconds=settings.PLATFORM_SENDING_STALE_SECONDS)
    return Q(state=MessageState.PENDING, next_attempt_at__lte=now) | Q(state=MessageState.SENDING, claimed_at__lt=stale)


def platform_message_deliver(*, message_id: int) -> PlatformMessage:
    """Send one message; safe to call twice and from two workers (the conditional UPDATE is the claim)."""
    now = timezone.now()
    claimed = PlatformMessage.objects.filter(_claimable(now), pk=message_id).update(
        state=MessageState.SENDING, attempts=F("attempts") + 1, claimed_at=now, updated_at=now
    )
    message = PlatformMessage.objects.select_related("application", "depends_on").get(pk=message_id)
    if not claimed:
        return message
    claim = message.claimed_at
    try:
        if message.kind == MessageKind.FILE:
            return _deliver_file(message, claim)
        return _deliver_cancel(message, claim)
    except (platform.PlatformUnavailable, platform.PlatformNotConfigured) as exc:
        return _retry_later(message, claim, str(exc) or type(exc).__name__)


def _finish(message: PlatformMessage, claim: dt.datetime | None, **values: Any) -> PlatformMessage:
    """Write the outcome only while the claim is still ours (a stale re-claim took it otherwise)."""
    PlatformMessage.objects.filter(pk=message.pk, state=MessageState.SENDING, claimed_at=claim).update(
        updated_at=timezone.now(), **values
    )
    message.refresh_from_db()
    return message


def _retry_later(message: PlatformMessage, claim: dt.datetime | None, error: str) -> PlatformMessage:
    now = timezone.now()
    if message.attempts >= settings.PLATFORM_MAX_ATTEMPTS:
        return _finish(message, claim, state=MessageState.FAILED, last_error=error[:500], next_attempt_at=None)
    return _finish(
        message,
        claim,
        state=MessageState.PENDING,
        last_error=error[:500],
        next_attempt_at=now + dt.timedelta(seconds=backoff_seconds(message.attempts)),
    )


def _mark_transmitted(message: PlatformMessage) -> None:
    if not message.transmitted:
        PlatformMessage.objects.filter(pk=message.pk).update(transmitted=True)
        message.transmitted = True


def _deliver_file(message: PlatformMessage, claim: dt.datetime | None) -> PlatformMessage:
    application = Application.objects.select_related("person", "person__insured_region").get(pk=message.application_id)
    payload = dict(message.payload)
    if not payload.get("psn_no"):
        # Known from an earlier 1101 (checked then), or looked up now.
        known = PlatformPerson.objects.filter(person_id=application.person_id).values_list("psn_no", flat=True).first()
        reason, psn_no = ("", known) if known else _person_number(application.person)
        if reason:
            return _finish(message, claim, state=MessageState.HELD, held_reason=reason[:500], next_attempt_at=None)
        payload["psn_no"] = psn_no
        PlatformMessage.objects.filter(pk=message.pk).update(payload=payload)
        message.payload = payload
    _mark_transmitted(message)
    answer = platform.PlatformClient().file_enrollment(payload, msgid=message.msgid)
    if not (answer.ok or answer.already_done):
        return _refused(message, claim, answer)
    serial = answer.trt_dcla_detl_sn
    with transaction.atomic():
        PlatformFiling.objects.update_or_create(
            application_id=message.application_id,
            defaults={"trt_dcla_detl_sn": serial, "state": FilingState.FILED, "filed_at": timezone.now()},
        )
        message = _finish(
            message,
            claim,
            state=MessageState.SENT,
            sent_at=timezone.now(),
            answer_code=str(answer.code or ""),
            answer_message=(answer.message or "")[:500],
            last_error="",
            next_attempt_at=None,
        )
        # A cancellation that waited for this serial can go now.
        waiting = list(
            PlatformMessage.objects.filter(depends_on=message, state=MessageState.PENDING).values_list("pk", flat=True)
        )
        PlatformMessage.objects.filter(pk__in=waiting).update(next_attempt_at=timezone.now())
        for pk in waiting:
            transaction.on_commit(functools.partial(_enqueue, pk))
    return message


def _refused(message: PlatformMessage, claim: dt.datetime | None, answer: Any) -> PlatformMessage:
    return _finish(
        message,
        claim,
        state=MessageState.FAILED,
        answer_code=str(answer.code or "")[:20],
        answer_message=(answer.message or "")[:500],
        last_error=(answer.message or str(answer.code))[:500],
        next_attempt_at=None,
    )


def _deliver_cancel(message: PlatformMessage, claim: dt.datetime | None) -> PlatformMessage:
    payload = dict(message.payload)
    if not payload.get("trt_dcla_detl_sn"):
        filing = PlatformFiling.objects.filter(application_id=message.application_id).first()
        dependency = message.depends_on
        if filing is None:
            if dependency is not None and dependency.state in (MessageState.SUPERSEDED, MessageState.CANCELLED):
                if not dependency.transmitted:
                    return _finish(
                        message,
                        claim,
                        state=MessageState.SUPERSEDED,
                        last_error=_("the filing was never sent"),
                        next_attempt_at=None,
                    )
            if dependency is not None and dependency.state == MessageState.FAILED and dependency.answer_code:
                return _finish(
                    message,
                    claim,
                    state=MessageState.SUPERSEDED,
                    last_error=_("the platform refused the filing"),
                    next_attempt_at=None,
                )
            # The filing is still in flight: wait for its serial (does not count as an attempt).
            return _finish(
                message,
                claim,
                state=MessageState.PENDING,
                attempts=F("attempts") - 1,
                last_error=_("waiting for the filing's serial number"),
                next_attempt_at=timezone.now() + dt.timedelta(seconds=DEPENDENCY_WAIT_SECONDS),
            )
        payload["trt_dcla_detl_sn"] = filing.trt_dcla_detl_sn
        if not payload.get("psn_no") and dependency is not None:
            payload["psn_no"] = dependency.payload.get("psn_no", "")
        PlatformMessage.objects.filter(pk=message.pk).update(payload=payload)
        message.payload = payload
    _mark_transmitted(message)
    answer = platform.PlatformClient().cancel_enrollment(
        payload["trt_dcla_detl_sn"], payload.get("psn_no", ""), payload.get("memo", ""), msgid=message.msgid
    )
    if not (answer.ok or answer.already_done):
        return _refused(message, claim, answer)
    with transaction.atomic():
        PlatformFiling.objects.filter(application_id=message.application_id).update(
            state=FilingState.CANCELLED, cancelled_at=timezone.now()
        )
        return _finish(
            message,
            claim,
            state=MessageState.SENT,
            sent_at=timezone.now(),
            answer_code=str(answer.code or ""),
            answer_message=(answer.message or "")[:500],
            last_error="",
            next_attempt_at=None,
        )


def _person_number(person: Person) -> tuple[str, str]:
    """(reason to hold, psn_no): 1101 when the number is unknown; differences hold the message."""
    answer = platform.PlatformClient().person_lookup(person.id_number, psn_name=person.name)
    if not answer.ok:
        return _("The platform does not know this person (%(code)s: %(message)s).") % {
            "code": answer.code,
            "message": answer.message,
        }, ""
    output = answer.output or {}
    base = output.get("baseinfo") or {}
    insured = output.get("insuinfo") or []
    ours = next((row for row in insured if str(row.get("insutype")) == person.insurance_type), None)
    reasons = []
    if base.get("psn_name") and base["psn_name"] != person.name:
        reasons.append(
            _("name here “%(ours)s”, on the platform “%(theirs)s”") % {"ours": person.name, "theirs": base["psn_name"]}
        )
    if ours is None:
        reasons.append(
            _("insurance type here %(ours)s, on the platform %(theirs)s")
            % {"ours": person.insurance_type, "theirs": ", ".join(str(r.get("insutype")) for r in insured) or "—"}
        )
    else:
        area = str(ours.get("insuplc_admdvs") or "")
        here = person.insured_region.code
        if area and not (area.startswith(here) or here.startswith(area)) and province_code(area) != province_code(here):
            reasons.append(_("insured area here %(ours)s, on the platform %(theirs)s") % {"ours": here, "theirs": area})
    psn_no = str(base.get("psn_no") or "")
    PlatformPerson.objects.update_or_create(
        person=person,
        defaults={
            "psn_no": psn_no,
            "psn_name": str(base.get("psn_name") or "")[:50],
            "insutype": str((ours or (insured[0] if insured else {})).get("insutype") or "")[:6],
            "insuplc_admdvs": str((ours or (insured[0] if insured else {})).get("insuplc_admdvs") or "")[:9],
            "looked_up_at": timezone.now(),
        },
    )
    if reasons:
        return _("The platform's record differs from ours: %(list)s. Correct the person, then release.") % {
            "list": "; ".join(reasons)
        }, psn_no
    if not psn_no:
        return _("The platform answered without a person number."), ""
    return "", psn_no


def due_message_ids(*, limit: int = 500) -> list[int]:
    """Pending rows whose time has come and rows a killed worker left ``sending``."""
    return list(
        PlatformMessage.objects.filter(_claimable(timezone.now()))
        .order_by("next_attempt_at", "pk")
        .values_list("pk", flat=True)[:limit]
    )


# ---------------------------------------------------------------------------
# Officers: retry, release, cancel
# ---------------------------------------------------------------------------


def _lock_for_officer(message_id: int, actor: roles.Actor) -> PlatformMessage:
    if not may_handle(actor):
        raise NotPermitted(_("Only chronic-disease-centre officers handle platform messages."))
    message = PlatformMessage.objects.select_for_update().filter(pk=message_id).first()
    if message is None:
        raise InvalidInput(_("Platform message #%(id)s does not exist.") % {"id": message_id}, code="not_found")
    return message


def _requeue(message: PlatformMessage, actor: roles.Actor, note: str, **values: Any) -> PlatformMessage:
    now = timezone.now()
    PlatformMessage.objects.filter(pk=message.pk).update(
        state=MessageState.PENDING,
        next_attempt_at=now,
        handled_by=actor,
        handled_at=now,
        handled_note=note[:500],
        updated_at=now,
        **values,
    )
    transaction.on_commit(lambda: _enqueue(message.pk))
    message.refresh_from_db()
    return message


def platform_message_retry(*, message_id: int, actor: roles.Actor, note: str = "") -> PlatformMessage:
    """An officer sends a failed message again (same msgid: the platform never files it twice)."""
    with transaction.atomic():
        message = _lock_for_officer(message_id, actor)
        if message.state != MessageState.FAILED:
            raise InvalidInput(_("Only a failed message can be retried."), code="not_failed")
        return _requeue(message, actor, note, attempts=0, last_error="", answer_code="", answer_message="")


def platform_message_release(*, message_id: int, actor: roles.Actor, note: str = "") -> PlatformMessage:
    """An officer releases a held message after correcting the person: it is looked up and built again."""
    with transaction.atomic():
        message = _lock_for_officer(message_id, actor)
        if message.state != MessageState.HELD:
            raise InvalidInput(_("Only a held message can be released."), code="not_held")
        application = Application.objects.select_related(
            "person", "disease", "region", "treating_institution", "physician"
        ).get(pk=message.application_id)
        PlatformPerson.objects.filter(person_id=application.person_id).delete()
        payload = filing_payload(application) if message.kind == MessageKind.FILE else message.payload
        return _requeue(message, actor, note, held_reason="", payload=payload)


def platform_message_cancel(*, message_id: int, actor: roles.Actor, note: str = "") -> PlatformMessage:
    """An officer decides a held or failed message is not to be sent."""
    with transaction.atomic():
        message = _lock_for_officer(message_id, actor)
        if message.state not in (MessageState.HELD, MessageState.FAILED, MessageState.PENDING):
            raise InvalidInput(_("Only a held, failed or queued message can be cancelled."), code="not_open")
        now = timezone.now()
        PlatformMessage.objects.filter(pk=message.pk).update(
            state=MessageState.CANCELLED, handled_by=actor, handled_at=now, handled_note=note[:500], updated_at=now
        )
        if not message.transmitted:
            PlatformMessage.objects.filter(depends_on=message, state=MessageState.PENDING).update(
                state=MessageState.SUPERSEDED, last_error=_("the filing was never sent"), updated_at=now
            )
        message.refresh_from_db()
        return message
