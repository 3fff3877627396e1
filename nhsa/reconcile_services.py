"""Reconciliation with the platform's 5301 (docs/platform.md, "Reconciliation").

For a region's persons with 门慢 enrollments the platform's filings are compared with ours and every
difference is stored (PlatformReconciliation + PlatformDifference); an officer resolves each with one
action: file again, cancel on the platform, or accept as is.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from enrollment import selectors as enrollment_selectors
from enrollment.models import COVERING_STATES, Application, ApplicationKind, Person, Region, State
from enrollment.services import get_system_user
from kernel import roles
from kernel.errors import InvalidInput, NotPermitted
from nhsa import client as platform
from nhsa import services
from nhsa.models import (
    DifferenceKind,
    MessageState,
    PlatformDifference,
    PlatformFiling,
    PlatformMessage,
    PlatformPerson,
    PlatformReconciliation,
    Resolution,
)

logger = logging.getLogger(__name__)

# Applications that were 门慢 enrollments at some point (compared with the platform's filings).
ENROLLED_STATES = (*COVERING_STATES, State.TERMINATED, State.EXPIRED, State.RENEWED)
OPEN_STATES = (MessageState.PENDING, MessageState.SENDING, MessageState.HELD, MessageState.FAILED)


def _date(value: Any) -> dt.date | None:
    if not value:
        return None
    try:
        return dt.date.fromisoformat(str(value)[:10])
    except ValueError:
        return None


def _filing_active(row: dict[str, Any], day: dt.date) -> bool:
    if str(row.get("vali_flag", "1")) == "0" or row.get("cancelled") or row.get("state") == "cancelled":
        return False
    end = _date(row.get("enddate"))
    return end is None or end >= day


def _ours(application: Application) -> dict[str, Any]:
    return {
        "application": application.pk,
        "state": application.state,
        "opsp_dise_code": application.disease.code,
        "begndate": application.valid_from.isoformat() if application.valid_from else None,
        "enddate": (application.valid_until or services.LONG_TERM_END).isoformat(),
    }


def _psn_no(person: Person) -> str:
    known = PlatformPerson.objects.filter(person=person).values_list("psn_no", flat=True).first()
    if known:
        return known
    reason, psn_no = services._person_number(person)
    return psn_no


def reconcile_region(
    *, region: Region, day: dt.date | None = None, actor: roles.Actor | None = None
) -> PlatformReconciliation:
    """Compare the region's enrollments with 5301 and store the differences (a new run each time)."""
    day = day or timezone.localdate()
    actor = actor or get_system_user()
    run = PlatformReconciliation.objects.create(region=region, day=day, started_by=actor)
    region_ids = enrollment_selectors.region_and_descendant_ids(region.pk)
    applications = (
        Application.objects.filter(region_id__in=region_ids, state__in=ENROLLED_STATES)
        .exclude(kind=ApplicationKind.TWO_DISEASES)
        .select_related("person", "disease")
        .order_by("person_id", "pk")
    )
    by_person: dict[int, list[Application]] = {}
    for application in applications:
        by_person.setdefault(application.person_id, []).append(application)
    client = platform.PlatformClient()
    differences: list[PlatformDifference] = []
    try:
        for apps in by_person.values():
            person = apps[0].person
            psn_no = _psn_no(person)
            answer = client.query_enrollments(psn_no) if psn_no else None
            rows = list(((answer.output or {}).get("feedetail") or []) if answer is not None and answer.ok else [])
            differences += _compare(run, person, apps, rows, day)
            run.persons += 1
    except platform.PlatformUnavailable as exc:
        run.error = (str(exc) or type(exc).__name__)[:500]
    PlatformDifference.objects.bulk_create(differences)
    run.finished_at = timezone.now()
    run.save(update_fields=["persons", "error", "finished_at"])
    return run


def _compare(
    run: PlatformReconciliation, person: Person, apps: list[Application], rows: list[dict[str, Any]], day: dt.date
) -> list[PlatformDifference]:
    serials = dict(
        PlatformFiling.objects.filter(application__in=apps).values_list("application_id", "trt_dcla_detl_sn")
    )
    in_flight = set(
        PlatformMessage.objects.filter(application__in=apps, state__in=OPEN_STATES).values_list(
            "application_id", flat=True
        )
    )
    active_rows = [row for row in rows if _filing_active(row, day)]
    matched: set[int] = set()
    found: list[PlatformDifference] = []

    def difference(kind: str, application: Application | None, row: dict[str, Any] | None) -> None:
        found.append(
            PlatformDifference(
                reconciliation=run,
                kind=kind,
                application=application,
                person=person,
                trt_dcla_detl_sn=str((row or {}).get("trt_dcla_detl_sn") or ""),
                ours=_ours(application) if application else {},
                theirs=row or {},
            )
        )

    for application in apps:
        if application.state not in COVERING_STATES or application.pk in in_flight:
            continue
        serial = serials.get(application.pk)
        row_index = next(
            (i for i, row in enumerate(active_rows) if serial and str(row.get("trt_dcla_detl_sn")) == serial), None
        )
        if row_index is None:
            row_index = next(
                (
                    i
                    for i, row in enumerate(active_rows)
                    if i not in matched and row.get("opsp_dise_code") == application.disease.code
                ),
                None,
            )
        if row_index is None:
            difference(DifferenceKind.MISSING_ON_PLATFORM, application, None)
            continue
        matched.add(row_index)
        row = active_rows[row_index]
        ours = _ours(application)
        if row.get("opsp_dise_code") != ours["opsp_dise_code"]:
            difference(DifferenceKind.DISEASE_DIFFERS, application, row)
        elif _date(row.get("begndate")) != _date(ours["begndate"]) or _date(row.get("enddate")) != _date(
            ours["enddate"]
        ):
            difference(DifferenceKind.DATES_DIFFER, application, row)
    for index, row in enumerate(active_rows):
        if index in matched:
            continue
        serial = str(row.get("trt_dcla_detl_sn") or "")
        owner = next((a for a, s in serials.items() if s == serial), None)
        ended: Application | None = next((a for a in apps if a.pk == owner), None) or next(
            (a for a in apps if a.disease.code == row.get("opsp_dise_code") and a.state not in COVERING_STATES),
            None,
        )
        if ended is not None and ended.pk in in_flight:
            continue
        difference(DifferenceKind.ENDED_HERE, ended, row)
    return found


def reconcile_regions(*, day: dt.date | None = None) -> list[PlatformReconciliation]:
    """Beat, nightly: one run per top-level region that has enrollments."""
    if not platform.platform_enabled():
        return []
    region_ids = (
        Application.objects.filter(state__in=COVERING_STATES)
        .exclude(kind=ApplicationKind.TWO_DISEASES)
        .values_list("region_id", flat=True)
        .distinct()
    )
    roots = {region.lineage()[-1] for region in Region.objects.filter(pk__in=region_ids)}
    return [reconcile_region(region=region, day=day) for region in sorted(roots, key=lambda r: r.code)]


def difference_resolve(*, difference_id: int, actor: roles.Actor, action: str) -> PlatformDifference:
    """One officer action per difference: ``resend`` (a new 2503), ``cancel`` (a 2504) or ``accept``."""
    if not services.may_handle(actor):
        raise NotPermitted(_("Only chronic-disease-centre officers resolve platform differences."))
    if action not in ("resend", "cancel", "accept"):
        raise InvalidInput(_("Choose resend, cancel or accept."), code="invalid_action", details={"field": "action"})
    with transaction.atomic():
        difference = (
            PlatformDifference.objects.select_for_update(of=("self",))
            .select_related("application")
            .filter(pk=difference_id)
            .first()
        )
        if difference is None:
            raise InvalidInput(_("Difference #%(id)s does not exist.") % {"id": difference_id}, code="not_found")
        if difference.resolution:
            raise InvalidInput(_("This difference was already resolved."), code="already_resolved")
        message = None
        if action in ("resend", "cancel"):
            application = difference.application
            if application is None:
                raise InvalidInput(_("No enrollment here matches this filing; accept it instead."), code="no_match")
            application = services_lock(application.pk)
            if action == "resend":
                if application.state not in COVERING_STATES:
                    raise InvalidInput(_("The enrollment is not current; it cannot be filed."), code="not_current")
                message = services.message_file(application=application)
            else:
                serial = difference.trt_dcla_detl_sn
                if not serial:
                    raise InvalidInput(_("The platform holds no filing to cancel."), code="nothing_to_cancel")
                message = services.message_cancel_serial(
                    application=application,
                    serial=serial,
                    psn_no=str(difference.theirs.get("psn_no") or ""),
                    memo=_("reconciliation"),
                )
        difference.resolution = {"resend": Resolution.RESENT, "cancel": Resolution.CANCELLED}.get(
            action, Resolution.ACCEPTED
        )
        difference.resolved_by = actor
        difference.resolved_at = timezone.now()
        difference.message = message
        difference.save(update_fields=["resolution", "resolved_by", "resolved_at", "message"])
        return difference


def services_lock(application_id: int) -> Application:
    return (
        Application.objects.select_for_update(of=("self",))
        .select_related("person", "disease", "region", "treating_institution", "physician")
        .get(pk=application_id)
    )


DIFFERENCE_HEADER = (
    "difference",
    "application",
    "person",
    "disease here",
    "begndate here",
    "enddate here",
    "platform serial",
    "disease on the platform",
    "begndate on the platform",
    "enddate on the platform",
    "resolution",
    "resolved by",
    "resolved at",
)


def difference_rows(run: PlatformReconciliation) -> Any:
    for d in run.differences.select_related("person", "resolved_by").order_by("id").iterator():
        yield (
            d.get_kind_display(),
            d.application_id or "",
            d.person.name,
            d.ours.get("opsp_dise_code", ""),
            d.ours.get("begndate", ""),
            d.ours.get("enddate", ""),
            d.trt_dcla_detl_sn,
            d.theirs.get("opsp_dise_code", ""),
            d.theirs.get("begndate", ""),
            d.theirs.get("enddate", ""),
            d.get_resolution_display() if d.resolution else "",
            d.resolved_by.username if d.resolved_by else "",
            d.resolved_at.isoformat() if d.resolved_at else "",
        )
