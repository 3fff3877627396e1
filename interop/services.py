"""Every write of the interop app: roster imports and their commit, the assisted-filing worklist,
catalogue versions. Persons and applications are only ever written through enrollment.services."""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter
from collections.abc import Iterator, Sequence
from itertools import groupby
from operator import itemgetter
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import DataError, IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from enrollment import policies as enrollment_policies
from enrollment import reference_cache
from enrollment import selectors as enrollment_selectors
from enrollment import services as enrollment_services
from enrollment.models import COVERING_STATES, Application, Disease, InsuranceType, TerminationReason
from enrollment.services import person_status
from interop import selectors
from interop.catalogue import catalogue_diff, parse_catalogue
from interop.models import (
    AssistedFiling,
    CatalogueImport,
    FilingState,
    ImportState,
    RosterImport,
    RosterRow,
    RowAction,
    RowStatus,
)
from interop.rosters import REQUIRED_COLUMNS, ROSTER_COLUMNS, Entry, PriorRow, RosterChecker
from kernel import roles
from kernel.errors import DomainError, InvalidInput, NotPermitted, RuleViolation
from kernel.tabular import Table
from kernel.task_queue import enqueue
from kernel.uploads import check_upload, chunks, read_upload, upload_name

logger = logging.getLogger(__name__)

DRY_RUN_CHUNK = 5000
# Commit chunks are small: each is one transaction, and on SQLite a transaction holds the write lock.
COMMIT_CHUNK = 200
# A phase whose worker has not reported progress for this long is taken over by the next run.
STALE_AFTER = dt.timedelta(minutes=10)


# ---------------------------------------------------------------------------
# Roster imports
# ---------------------------------------------------------------------------


def roster_import_create(*, name: str, content: bytes, actor: roles.Actor, queue: bool = True) -> RosterImport:
    """Store an uploaded roster and queue its dry run (``queue=False``: the caller runs
    roster_import_run itself, as the management command does).

    Nothing of the file is parsed here (issue 18 item 6: a 57 KiB XLSX with 400,000 empty rows held the
    upload request for 23 s): only its size and its first bytes are checked (``sniff_format``). The header,
    the rows and the row limit are the task's (``_read_roster``); a file that fails them ends as a failed
    import with the reason in ``error``."""
    selectors.ensure_may_import(actor)
    file_format = check_upload(
        content,
        name,
        max_bytes=settings.ROSTER_MAX_BYTES,
        too_large=_("The file is larger than %(max)d MB; split the roster."),
    )
    admin = roles.has_any_role(actor, roles.ADMIN)
    scope_region = None if admin else enrollment_selectors.user_region(actor)
    if not admin and scope_region is None:
        raise NotPermitted(_("Your account is not attached to a hospital or region."))
    with transaction.atomic():
        roster = RosterImport.objects.create(
            uploaded_by=actor,
            institution=enrollment_selectors.user_institution(actor),
            scope_region=scope_region,
            original_name=upload_name(name, "roster"),
            file_format=file_format,
            content=content,
        )
        if queue:
            transaction.on_commit(lambda: _queue(roster.pk))
    return roster


def roster_import_request_commit(*, import_id: int, actor: roles.Actor, queue: bool = True) -> RosterImport:
    """After the dry run: queue the commit (persons registered, eligible rows onto the worklist)."""
    with transaction.atomic():
        roster = _lock_visible_import(import_id, actor)
        if roster.state != ImportState.VALIDATED:
            raise RuleViolation(
                _("This import is “%(state)s”; only an import whose dry run is done can be committed.")
                % {"state": roster.get_state_display()},
                code="import_not_validated",
            )
        _roster_audit(
            roster.pk, actor, "commit_requested", from_state=roster.state, to_state=ImportState.COMMIT_REQUESTED
        )
        roster.state = ImportState.COMMIT_REQUESTED
        roster.committed_by = actor
        roster.lines_done = 0
        roster.save(update_fields=["state", "committed_by", "lines_done"])
        if queue:
            transaction.on_commit(lambda: _queue(roster.pk))
    return roster


def _queue(import_id: int) -> None:
    """Hand the import to a worker. The upload is already committed: if the broker is unreachable the
    import waits as it is and ``roster_imports_requeue`` (beat) queues it later; the clerk's request
    must not fail for it."""
    from kombu.exceptions import OperationalError

    try:
        enqueue("interop.tasks.run_roster_import", import_id)  # by name: the tasks module imports this one
    except OperationalError as exc:
        logger.warning("roster import %s not queued, broker unavailable (%s); the next scan queues it", import_id, exc)


def roster_imports_requeue() -> list[int]:
    """Queue again every import a worker should be running but no task may exist for: a dry run or a
    commit requested while the broker was down or lost with a broker restart, or a phase whose worker
    died. Duplicates are harmless: ``roster_import_run`` claims each phase with a conditional UPDATE."""
    stale = timezone.now() - STALE_AFTER
    waiting = (
        Q(state=ImportState.PENDING, created_at__lt=stale)
        | Q(state=ImportState.COMMIT_REQUESTED)
        | Q(state__in=(ImportState.VALIDATING, ImportState.COMMITTING), heartbeat_at__lt=stale)
    )
    ids = list(RosterImport.objects.filter(waiting).order_by("pk").values_list("pk", flat=True))
    for import_id in ids:
        _queue(import_id)
    return ids


def _lock_visible_import(import_id: int, actor: roles.Actor) -> RosterImport:
    selectors.ensure_may_import(actor)
    visible = selectors.roster_imports_visible_to(actor).filter(pk=import_id).values_list("pk", flat=True)
    roster = RosterImport.objects.select_for_update().filter(pk__in=visible).first()
    if roster is None:
        raise InvalidInput(_("Roster import #%(id)s does not exist.") % {"id": import_id}, code="not_found")
    return roster


def roster_import_run(*, import_id: int) -> RosterImport | None:
    """Do what the import's state asks: the dry run, or the commit. Safe to run twice.

    A phase is claimed by a conditional UPDATE, so two deliveries of the same task never run it
    side by side; a phase whose worker died (no progress for STALE_AFTER) is run again from the
    start: its report rows are rewritten, person_register is an upsert, and a worklist item that
    already exists is reported as such rather than created twice.
    """
    now = timezone.now()
    stale = Q(heartbeat_at__isnull=True) | Q(heartbeat_at__lt=now - STALE_AFTER)
    phases = (
        (ImportState.VALIDATING, False, Q(state=ImportState.PENDING) | (Q(state=ImportState.VALIDATING) & stale)),
        (
            ImportState.COMMITTING,
            True,
            Q(state=ImportState.COMMIT_REQUESTED) | (Q(state=ImportState.COMMITTING) & stale),
        ),
    )
    for running, commit, claim in phases:
        # No savepoint: the claim and its audit row are one transaction of their own (the task runs outside any).
        with transaction.atomic(savepoint=False):
            claimed = RosterImport.objects.filter(claim, pk=import_id).update(
                state=running, heartbeat_at=now, lines_done=0, error=""
            )
            if claimed:
                system = enrollment_services.get_system_user()
                _roster_audit(import_id, system, "phase_claimed", to_state=running)
        if claimed:
            roster = RosterImport.objects.select_related("scope_region", "committed_by").get(pk=import_id)
            try:
                _run_phase(roster, commit=commit, system=system)
            except DomainError as exc:
                _fail(roster, str(exc.message))
            except SoftTimeLimitExceeded:
                # The task's soft time limit (ROSTER_TASK_SECONDS): the worker is freed, the clerk told why.
                # Lines a commit finished stay committed (each chunk is its own transaction).
                _fail(
                    roster,
                    _("The import took longer than %(minutes)d minutes and was stopped; split the file.")
                    % {"minutes": max(1, settings.ROSTER_TASK_SECONDS // 60)},
                )
            except Exception:
                _fail(roster, _("The import stopped on an internal error; it has been logged."))
                raise
            roster.refresh_from_db()
            return roster
    return None


def _roster_audit(
    import_id: int,
    actor: roles.Actor | None,
    action: str,
    *,
    to_state: str,
    from_state: str = "",
    details: dict[str, Any] | None = None,
) -> None:
    """The audit row of a roster import's state change (the worker's changes are the system's)."""
    enrollment_services.record_audit(
        subject="roster_import",
        subject_id=import_id,
        action=action,
        actor=actor or enrollment_services.get_system_user(),
        from_state=from_state,
        to_state=to_state,
        details=details,
    )


def _fail(roster: RosterImport, message: str) -> None:
    logger.warning("roster import %s failed", roster.pk)
    with transaction.atomic(savepoint=False):
        RosterImport.objects.filter(pk=roster.pk).update(state=ImportState.FAILED, error=message, heartbeat_at=None)
        _roster_audit(roster.pk, None, "failed", to_state=ImportState.FAILED, details={"error": str(message)[:500]})


def _run_phase(roster: RosterImport, *, commit: bool, system: roles.Actor | None = None) -> None:
    """The dry run, or the commit: the same checker over the same lines.

    The commit also gets the dry run's report: what it refused stays refused (see RosterChecker).
    Its report rows are replaced chunk by chunk, in the chunk's transaction, so that if the commit
    stops, every line it did not finish still has its dry-run row.
    """
    table, columns = _read_roster(roster)
    report_pks, dry_run = _dry_run_report(roster) if commit else ({}, {})
    checker = RosterChecker(columns=columns, scope_region=roster.scope_region, dry_run=dry_run)
    actor = roster.committed_by or roster.uploaded_by
    by_status: Counter[str] = Counter()
    by_action: Counter[str] = Counter()
    if not commit:
        RosterRow.objects.filter(roster_import=roster).delete()
    done = 0
    for chunk in chunks(table.rows, COMMIT_CHUNK if commit else DRY_RUN_CHUNK):
        entries = checker.check(chunk)
        with transaction.atomic():
            if commit:
                replaced = [pk for line, _cells in chunk for pk in report_pks.get(line, ())]
                RosterRow.objects.filter(pk__in=replaced).delete()
                _commit_entries(roster, checker, entries, actor)
            RosterRow.objects.bulk_create([_row(roster, entry) for entry in entries], batch_size=1000)
        by_status.update(entry.status for entry in entries)
        by_action.update(entry.action or RowAction.NOT_WRITTEN for entry in entries)
        done += len(chunk)
        RosterImport.objects.filter(pk=roster.pk).update(lines_done=done, heartbeat_at=timezone.now())
    counts = {
        "lines": len(table.rows),
        "entries": sum(by_status.values()),
        "by_status": {status: by_status.get(status, 0) for status in RowStatus.values},
    }
    finished: dict[str, Any] = {"lines_total": len(table.rows), "lines_done": done, "heartbeat_at": None}
    if commit:
        counts["by_action"] = {action: by_action.get(action, 0) for action in RowAction.values if action}
        finished.update(state=ImportState.COMMITTED, committed_at=timezone.now(), content=b"")
    else:
        finished.update(state=ImportState.VALIDATED, validated_at=timezone.now())
    with transaction.atomic(savepoint=False):
        RosterImport.objects.filter(pk=roster.pk).update(counts=counts, **finished)
        _roster_audit(roster.pk, system, "committed" if commit else "validated", to_state=finished["state"])


def _read_roster(roster: RosterImport) -> tuple[Table, dict[str, int]]:
    """The stored file read (in the task, never in the upload request) within ROSTER_MAX_ROWS rows and
    ROSTER_READ_SECONDS, its header mapped; the import's format, encoding and line count recorded."""
    return read_upload(
        roster, ROSTER_COLUMNS, REQUIRED_COLUMNS, no_rows_message=_("The roster has a header but no rows.")
    )


def _dry_run_report(roster: RosterImport) -> tuple[dict[int, list[int]], dict[int, list[PriorRow]]]:
    """The report rows the commit replaces (their ids, by line), and the rows of every line with an
    invalid one (for RosterChecker: what the dry run refused stays refused)."""
    rows = (
        RosterRow.objects.filter(roster_import=roster)
        .order_by("line", "pk")
        .values_list("pk", "line", "status", "reason_code", "message", "declared", "disease_id")
        .iterator(chunk_size=5000)
    )
    pks: dict[int, list[int]] = {}
    refused: dict[int, list[PriorRow]] = {}
    for line, group in groupby(rows, key=itemgetter(1)):
        members = list(group)
        pks[line] = [member[0] for member in members]
        if any(member[2] == RowStatus.INVALID for member in members):
            occurrences: Counter[str] = Counter()
            prior: list[PriorRow] = []
            for _pk, _line, status, reason_code, message, declared, disease_id in members:
                occurrences[declared] += 1
                prior.append(PriorRow(status, reason_code, message, declared, disease_id, occurrences[declared]))
            refused[line] = prior
    return pks, refused


def _row(roster: RosterImport, entry: Entry) -> RosterRow:
    return RosterRow(
        roster_import=roster,
        line=entry.line,
        id_number=entry.id_number,
        name=entry.name,
        region_code=entry.region_code,
        phone=entry.phone,
        support_categories=entry.support_categories,
        declared=entry.declared,
        disease_id=entry.disease_id,
        status=entry.status,
        reason_code=entry.reason_code,
        message=entry.message,
        action=entry.action or RowAction.NOT_WRITTEN,
        person_id=entry.person_id,
    )


def _commit_entries(roster: RosterImport, checker: RosterChecker, entries: list[Entry], actor: roles.Actor) -> None:
    """Register the person of each line with a usable row and put its eligible conditions on the worklist.

    A row the check found invalid is never written; a line with only invalid rows writes nothing at
    all. Each line is written in its own savepoint: a line the database still refuses is reported as
    invalid (nothing of it kept) and the others go on.
    """
    for _line, group in groupby(entries, key=lambda entry: entry.line):
        lines = list(group)
        first = lines[0]
        usable = [entry for entry in lines if entry.status != RowStatus.INVALID]
        if not first.person_ok or not usable:
            continue
        state = checker.people[first.id_number]
        known = state.details
        try:
            with transaction.atomic():
                person = enrollment_services.person_register(
                    id_number=first.id_number,
                    name=first.name,
                    insured_region=checker.reference.regions[first.region_code],
                    actor=actor,
                    # A roster carries no insurance details: keep what the person already has.
                    insurance_type=known.get("insurance_type", InsuranceType.RESIDENT),
                    insurance_number=known.get("insurance_number", ""),
                    phone=first.phone or known.get("phone", ""),
                )
                if first.support_categories:
                    # Dated and replacing, never merged: the roster's list holds from the roster's date.
                    person_status.person_categories_replace(
                        person=person,
                        categories=first.support_categories,
                        as_of=timezone.localtime(roster.created_at).date(),
                        source="roster",
                        reference=f"roster:{roster.pk}:line:{first.line}",
                        actor=actor,
                    )
                    person.refresh_from_db()
                actions = [_commit_condition(roster, person, entry) for entry in usable]
        except DomainError as exc:
            _refuse_line(lines, exc.code, str(exc.message))
            continue
        except (DataError, IntegrityError) as exc:
            # The database's message may quote the values (an ID number): only its kind is logged.
            logger.warning("roster import %s line %s not written: %s", roster.pk, first.line, type(exc).__name__)
            _refuse_line(
                lines, "not_stored", _("The database refused this line; nothing of it was written. Check its values.")
            )
            continue
        state.person_id = person.pk
        state.details = {
            "insurance_type": person.insurance_type,
            "insurance_number": person.insurance_number,
            "phone": person.phone,
            "support_categories": person.support_categories,
        }
        for entry, (action, reason_code) in zip(usable, actions, strict=True):
            entry.person_id = person.pk
            entry.action = action
            if reason_code:
                entry.reason_code = reason_code


def _commit_condition(roster: RosterImport, person: Any, entry: Entry) -> tuple[str, str]:
    """What the commit does for one usable row: (action, new reason code or "")."""
    if entry.status != RowStatus.ELIGIBLE:
        return RowAction.PERSON_REGISTERED, ""
    if entry.reason_code == "on_worklist":
        return RowAction.FILING_EXISTS, ""
    # An eligible row names its disease and the hospital that files (RosterChecker).
    assert entry.disease_id is not None and entry.institution_id is not None
    try:
        with transaction.atomic():
            AssistedFiling.objects.create(
                person=person,
                disease_id=entry.disease_id,
                institution_id=entry.institution_id,
                roster_import=roster,
                roster_line=entry.line,
            )
    except IntegrityError:
        # Put there meanwhile (another import, or an earlier run of this one).
        return RowAction.FILING_EXISTS, "on_worklist"
    return RowAction.FILING_CREATED, ""


def _refuse_line(lines: list[Entry], code: str, message: str) -> None:
    for entry in lines:
        entry.status, entry.reason_code, entry.message = RowStatus.INVALID, code, message
        entry.action, entry.person_id = "", None


# ---------------------------------------------------------------------------
# The assisted-filing worklist (合办帮办)
# ---------------------------------------------------------------------------


def _lock_filing(filing_id: int, actor: roles.Actor) -> AssistedFiling:
    visible = selectors.assisted_filings_visible_to(actor).filter(pk=filing_id).values_list("pk", flat=True)
    filing = (
        AssistedFiling.objects.select_for_update(of=("self",))
        .select_related("person", "disease", "institution")
        .filter(pk__in=visible)
        .first()
    )
    if filing is None:
        raise InvalidInput(_("Worklist item #%(id)s does not exist.") % {"id": filing_id}, code="not_found")
    if filing.state != FilingState.OPEN:
        raise RuleViolation(
            _("This worklist item is already %(state)s.") % {"state": filing.get_state_display()},
            code="filing_closed",
        )
    return filing


def assisted_filing_file(*, filing_id: int, actor: roles.Actor) -> AssistedFiling:
    """One click: file the application for the person and disease on the worklist.

    The filing goes through enrollment.services.application_submit, so every filing rule is
    checked again now; if one refuses, the item stays open and the message says why.
    """
    with transaction.atomic():
        filing = _lock_filing(filing_id, actor)
        application = enrollment_services.application_submit(
            person=filing.person, disease=filing.disease, treating_institution=filing.institution, actor=actor
        )
        filing.state = FilingState.FILED
        filing.application = application
        filing.closed_by = actor
        filing.closed_at = timezone.now()
        filing.save(update_fields=["state", "application", "closed_by", "closed_at"])
    return filing


def assisted_filing_dismiss(*, filing_id: int, actor: roles.Actor, reason: str) -> AssistedFiling:
    """Take an item off the worklist (the person declined, moved, …); the reason is kept."""
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput(_("Say why the item is dismissed."), details={"field": "reason"})
    with transaction.atomic():
        filing = _lock_filing(filing_id, actor)
        filing.state = FilingState.DISMISSED
        filing.dismiss_reason = reason
        filing.closed_by = actor
        filing.closed_at = timezone.now()
        filing.save(update_fields=["state", "dismiss_reason", "closed_by", "closed_at"])
    return filing


# ---------------------------------------------------------------------------
# Exports: handing out full ID numbers is logged
# ---------------------------------------------------------------------------


def export_enrollments(
    *, viewer: roles.Actor | None, request: selectors.ExportRequest, chunk_size: int = 2000
) -> tuple[tuple[str, ...], Iterator[tuple[Any, ...]]]:
    """The export's header and its rows (lazy, chunk by chunk), to be written to a file or a response.

    An export carrying full ID numbers (the national shape; the office list for administrators) is a read
    of those persons' full records (docs/design.md: Access and privacy; issue 18 item 9): before each chunk of
    rows is handed out, one
    access-log row per person in it not yet logged by this export is written in one bulk insert (purpose
    ``export_full_id``; the reason names the export: shape, region, period, basis). A masked export writes
    none. The operator's command (``viewer=None``) has no user: its rows are logged under the system user
    (``settings.SYSTEM_USERNAME``), the reason saying it was the command.
    """
    header, chunks = selectors.export_chunks(viewer=viewer, request=request, chunk_size=chunk_size)
    if not request.full_id_numbers:
        return header, (row for chunk in chunks for _person_id, row in chunk)
    actor = viewer if viewer is not None else enrollment_services.get_system_user()
    reason = (
        f"enrollment export ({'operator command' if viewer is None else 'api'}): shape={request.shape} "
        f"region={request.region.code} period={request.period} basis={request.basis}"
    )
    return header, _logged_export_rows(chunks, actor, reason)


def _logged_export_rows(chunks: Iterator[Any], actor: roles.Actor, reason: str) -> Iterator[tuple[Any, ...]]:
    from enrollment.models import AccessPurpose

    logged: set[int] = set()
    for chunk in chunks:
        persons = [person_id for person_id in dict.fromkeys(pid for pid, _row in chunk) if person_id not in logged]
        if persons:
            enrollment_services.personal_data_access_record_many(
                viewer=actor, person_ids=persons, purpose=AccessPurpose.EXPORT_FULL_ID, reason=reason
            )
            logged.update(persons)
        for _person_id, row in chunk:
            yield row


# ---------------------------------------------------------------------------
# Catalogue versions
# ---------------------------------------------------------------------------


def _ensure_catalogue_admin(actor: roles.Actor) -> None:
    enrollment_policies.ensure_may_maintain_catalogue(actor)


def catalogue_import_create(
    *, name: str, content: bytes, actor: roles.Actor, version: str | None = None
) -> CatalogueImport:
    """Read a new catalogue version and store it with its diff; nothing in the catalogue changes yet."""
    _ensure_catalogue_admin(actor)
    data = parse_catalogue(content, name, version)
    return CatalogueImport.objects.create(
        uploaded_by=actor,
        original_name=(name or "catalogue")[:255],
        version=data["version"][:20],
        data=data,
        diff=catalogue_diff(data),
    )


def catalogue_import_apply(
    *, import_id: int, actor: roles.Actor, terminate_enrollments: bool = False
) -> dict[str, Any]:
    """Apply a stored catalogue version (the diff is computed again against today's catalogue).

    Added and changed diseases go through enrollment.services.catalogue_load. Removed diseases
    are deactivated, never deleted (applications refer to them); with ``terminate_enrollments``
    their approved and expiring enrollments end with reason ``disease_removed`` through
    enrollment.services.application_terminate, one audited transition each.
    """
    _ensure_catalogue_admin(actor)
    with transaction.atomic():
        record = CatalogueImport.objects.select_for_update().filter(pk=import_id).first()
        if record is None:
            raise InvalidInput(_("Catalogue import #%(id)s does not exist.") % {"id": import_id}, code="not_found")
        if record.applied_at is not None:
            raise RuleViolation(_("This catalogue version has already been applied."), code="already_applied")
        data = record.data
        diff = catalogue_diff(data)
        loaded = enrollment_services.catalogue_load(data=data, actor=actor)
        removed_codes = [item["code"] for item in diff["removed"]]
        deactivated = Disease.objects.filter(code__in=removed_codes).update(
            active=False, catalogue_version=str(data["version"])[:20]
        )
        reference_cache.invalidate()  # a queryset update sends no signal
        result: dict[str, Any] = {
            **loaded,
            "added": len(diff["added"]),
            "changed": len(diff["changed"]),
            "deactivated": deactivated,
            "terminated": 0,
            "not_terminated": [],
        }
        record.diff = diff
        record.applied_at = timezone.now()
        record.applied_by = actor
        record.result = result
        record.save(update_fields=["diff", "applied_at", "applied_by", "result"])
    if terminate_enrollments:
        # Every disease this version leaves out (or lists as inactive), not only those it removes now:
        # applying the same file again finishes a termination run that was interrupted.
        listed_active = {entry["code"] for entry in data["diseases"] if entry.get("active", True)}
        codes = set(removed_codes) | set(
            Disease.objects.filter(active=False).exclude(code__in=listed_active).values_list("code", flat=True)
        )
        result.update(terminate_removed_enrollments(codes=sorted(codes), actor=actor))
        CatalogueImport.objects.filter(pk=record.pk).update(result=result)
    return result


def terminate_removed_enrollments(*, codes: Sequence[str], actor: roles.Actor) -> dict[str, Any]:
    """End every approved or expiring enrollment of inactive diseases (one transaction each, so a
    long run can be resumed by running it again: terminated enrollments are no longer selected)."""
    _ensure_catalogue_admin(actor)
    inactive = list(Disease.objects.filter(code__in=codes, active=False).values_list("pk", flat=True))
    enrollments = Application.objects.filter(disease_id__in=inactive, state__in=COVERING_STATES)
    today = timezone.localdate()
    terminated = 0
    refused: list[dict[str, Any]] = []
    for application_id, valid_from in list(enrollments.order_by("pk").values_list("pk", "valid_from")):
        try:
            enrollment_services.application_terminate(
                application_id=application_id,
                actor=actor,
                reason=TerminationReason.DISEASE_REMOVED,
                note=_("Disease removed from the catalogue."),
                # An enrollment that starts next month ends the day it would have started.
                ended_on=max(today, valid_from) if valid_from else today,
            )
            terminated += 1
        except DomainError as exc:
            refused.append({"application": application_id, "code": exc.code, "message": str(exc.message)})
    return {"terminated": terminated, "not_terminated": refused}
