"""Every write of the assistance app: settlements in (file or API), assistance computed, high-cost alerts and
their handling, retroactive assistance. Keyword-only, ``actor`` required, one transaction per unit of work, an
append-only ``AssistanceAuditEntry`` for each write, side effects (tasks) in ``on_commit``.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from dateutil.relativedelta import relativedelta
from django.db import connection, transaction
from django.db.models import Sum
from django.utils import timezone
from django.utils.translation import gettext as _

from assistance import selectors, sql
from assistance.models import (
    AlertKind,
    AlertState,
    AssistanceAuditEntry,
    AssistanceLine,
    HighCostAlert,
    LineKind,
    Settlement,
    SettlementImport,
    SettlementImportRow,
    SettlementImportState,
    SettlementRowStatus,
)
from assistance.rules import ZERO, Facts, Rule, Terms, YearTotals, settlement_lines, yuan
from assistance.settlement_rows import (
    REQUIRED_COLUMNS,
    SAME_FIELDS,
    SETTLEMENT_COLUMNS,
    RowResult,
    SettlementChecker,
    row_values,
    same_settlement,
)
from enrollment import selectors as enrollment_selectors
from enrollment.models import Person, PersonCategory
from kernel import roles
from kernel.errors import DomainError, InvalidInput, NotPermitted, RuleViolation
from kernel.uploads import check_upload, chunks, read_upload, upload_name

logger = logging.getLogger(__name__)

SETTLEMENT_MAX_BYTES = 50 * 1024 * 1024
API_MAX_ROWS = 1000
CHECK_CHUNK = 2000
WRITE_BATCH = 2000
COMPUTE_PERSONS_CHUNK = 5000


def audit(*, action: str, actor: roles.Actor, details: dict[str, Any], alert: Any = None, person: Any = None) -> None:
    AssistanceAuditEntry.objects.create(
        action=action, actor=actor, is_system=roles.is_system(actor), details=details, alert=alert, person=person
    )


def system_user() -> Any:
    from enrollment import services as enrollment_services

    return enrollment_services.get_system_user()


def _ensure_worker(actor: roles.Actor) -> None:
    if not (roles.is_system(actor) or selectors.may_work_assistance(actor)):
        raise NotPermitted(_("Only centre officers and administrators work on costs and assistance."))


def period_start(value: dt.date) -> dt.date:
    return value.replace(day=1)


def parse_period(text: str) -> dt.date:
    try:
        return dt.datetime.strptime((text or "").strip(), "%Y-%m").date()
    except ValueError:
        raise InvalidInput(_("A month is written YYYY-MM."), code="invalid_period", details={"field": "period"})


# ---------------------------------------------------------------------------
# Settlements: recording (shared by the file import and the API)
# ---------------------------------------------------------------------------


@dataclass
class RecordResult:
    rows: list[RowResult]
    created: int = 0
    counts: dict[str, int] = field(default_factory=dict)


def _write(
    results: list[RowResult], *, actor: roles.Actor, settlement_import: SettlementImport | None, compute: bool = True
) -> list[int]:
    """Insert the new settlements of checked rows (inside the caller's transaction) and compute their assistance.

    A multi-row INSERT per 1,000 rows (assistance/sql.py): a serial number another sender wrote meanwhile is
    skipped by the unique index (ON CONFLICT DO NOTHING) and the statement returns the rows it stored; any
    other row is reported as a duplicate, or as a conflict when its data differ."""
    fresh = [r for r in results if r.status == SettlementRowStatus.NEW and r.settlement is not None]
    if not fresh:
        return []
    stamp = timezone.now()
    import_id = settlement_import.pk if settlement_import else None
    mine: dict[str, int] = {}
    for batch in chunks(fresh, sql.INSERT_ROWS):
        built = sql.insert_settlements(
            rows=[r.settlement for r in batch],  # type: ignore[misc]
            import_id=import_id,
            recorded_by_id=actor.pk,
            recorded_at=stamp,
        )
        mine.update((serial, pk) for pk, serial in _run_sql(built))
    created_ids: list[int] = []
    others: list[RowResult] = []
    for row in fresh:
        if row.serial_number in mine:
            created_ids.append(mine[row.serial_number])
        else:
            others.append(row)
    if others:  # another sender won the serial number meanwhile: rare, compared field by field
        theirs = {
            values["serial_number"]: values
            for values in Settlement.objects.filter(serial_number__in=[r.serial_number for r in others]).values(
                "serial_number", *SAME_FIELDS
            )
        }
        for row in others:
            if same_settlement(theirs[row.serial_number], row.settlement):  # type: ignore[arg-type]
                row.status, row.reason_code, row.message = SettlementRowStatus.DUPLICATE, "already_recorded", ""
            else:
                row.status, row.reason_code = SettlementRowStatus.INVALID, "serial_conflict"
                row.message = _("Serial number %(serial)s was already recorded with other data.") % {
                    "serial": row.serial_number
                }
    if created_ids and compute:
        compute_assistance(settlement_ids=created_ids, actor=actor)
    return created_ids


def settlements_record(*, rows: Sequence[dict[str, Any]], actor: roles.Actor, source: str = "api") -> RecordResult:
    """A batch of settlement rows from a HIS or the platform (API): each checked, the new ones stored and their
    assistance computed in one transaction; idempotent by serial number (a row sent again is a duplicate)."""
    if not selectors.may_send_settlements(actor):
        raise NotPermitted(_("Your role may not send settlements."))
    if not rows:
        raise InvalidInput(_("Send at least one row."), details={"field": "rows"})
    if len(rows) > API_MAX_ROWS:
        raise InvalidInput(
            _("At most %(max)d rows per request; split the batch.") % {"max": API_MAX_ROWS}, details={"field": "rows"}
        )
    checker = SettlementChecker(actor=actor, source=source)
    results = checker.check(
        [(index, {k: "" if v is None else str(v) for k, v in row.items()}) for index, row in enumerate(rows, 1)]
    )
    with transaction.atomic():
        created = len(_write(results, actor=actor, settlement_import=None))
        if created:
            audit(
                action="settlements_recorded",
                actor=actor,
                details={"source": source, "created": created, "rows": len(rows)},
            )
    return RecordResult(rows=results, created=created, counts=dict(Counter(r.status for r in results)))


# ---------------------------------------------------------------------------
# Settlement files: upload, dry run, commit (the file is read in the Celery task)
# ---------------------------------------------------------------------------


def settlement_import_create(*, name: str, content: bytes, actor: roles.Actor, queue: bool = True) -> SettlementImport:
    _ensure_worker(actor)
    file_format = check_upload(
        content, name, max_bytes=SETTLEMENT_MAX_BYTES, too_large=_("The file is larger than %(max)d MB; split it.")
    )
    admin = roles.has_any_role(actor, roles.ADMIN)
    scope_region = None if admin else enrollment_selectors.user_region(actor)
    if not admin and scope_region is None:
        raise NotPermitted(_("Your account is not attached to a hospital or region."))
    with transaction.atomic():
        record = SettlementImport.objects.create(
            uploaded_by=actor,
            scope_region=scope_region,
            original_name=upload_name(name, "settlements"),
            file_format=file_format,
            content=content,
        )
        audit(action="settlement_import_uploaded", actor=actor, details={"import": record.pk, "name": name[:100]})
        if queue:
            transaction.on_commit(lambda: _queue(record.pk))
    return record


def settlement_import_request_commit(*, import_id: int, actor: roles.Actor, queue: bool = True) -> SettlementImport:
    _ensure_worker(actor)
    with transaction.atomic():
        visible = selectors.settlement_imports_visible_to(actor).filter(pk=import_id).values_list("pk", flat=True)
        record = SettlementImport.objects.select_for_update().filter(pk__in=visible).first()
        if record is None:
            raise InvalidInput(_("Settlement import #%(id)s does not exist.") % {"id": import_id}, code="not_found")
        if record.state != SettlementImportState.VALIDATED:
            raise RuleViolation(
                _("Only an import whose dry run is done can be committed (this one is “%(state)s”).")
                % {"state": record.get_state_display()},
                code="import_not_validated",
            )
        record.state = SettlementImportState.COMMIT_REQUESTED
        record.committed_by = actor
        record.save(update_fields=["state", "committed_by"])
        audit(action="settlement_import_commit_requested", actor=actor, details={"import": record.pk})
        if queue:
            transaction.on_commit(lambda: _queue(record.pk))
    return record


def _queue(import_id: int) -> None:
    from kombu.exceptions import OperationalError

    from kernel.task_queue import enqueue

    try:
        enqueue("assistance.tasks.run_settlement_import", import_id)
    except OperationalError as exc:
        logger.warning("settlement import %s not queued, broker unavailable (%s)", import_id, exc)


def settlement_import_run(*, import_id: int) -> SettlementImport | None:
    """The dry run or the commit, whichever the state asks for; each claimed by a conditional UPDATE so two
    deliveries of the task never run it side by side. Safe to run twice: the commit writes by serial number."""
    phases = (
        (SettlementImportState.VALIDATING, False, SettlementImportState.PENDING),
        (SettlementImportState.COMMITTING, True, SettlementImportState.COMMIT_REQUESTED),
    )
    for running, commit, waiting in phases:
        if SettlementImport.objects.filter(pk=import_id, state=waiting).update(state=running, error=""):
            record = SettlementImport.objects.select_related("uploaded_by", "committed_by").get(pk=import_id)
            try:
                _run_phase(record, commit=commit)
            except DomainError as exc:
                SettlementImport.objects.filter(pk=import_id).update(
                    state=SettlementImportState.FAILED, error=str(exc.message)
                )
            except Exception:
                SettlementImport.objects.filter(pk=import_id).update(
                    state=SettlementImportState.FAILED,
                    error=_("The import stopped on an internal error; it is logged."),
                )
                raise
            record.refresh_from_db()
            return record
    return None


def _run_phase(record: SettlementImport, *, commit: bool) -> None:
    table, columns = read_upload(
        record, SETTLEMENT_COLUMNS, REQUIRED_COLUMNS, no_rows_message=_("The file has a header but no rows.")
    )
    actor = record.committed_by if commit else record.uploaded_by
    assert actor is not None  # a commit is requested by someone (settlement_import_request_commit)
    checker = SettlementChecker(actor=actor, source="file")
    refused = (
        set(record.rows.filter(status=SettlementRowStatus.INVALID).values_list("line", flat=True)) if commit else set()
    )
    counts: Counter[str] = Counter()
    stored: list[int] = []
    SettlementImportRow.objects.filter(settlement_import=record).delete()
    for chunk in chunks(table.rows, CHECK_CHUNK):
        results = checker.check([(line, row_values(cells, columns)) for line, cells in chunk])
        for result in results:
            if result.line in refused and result.status == SettlementRowStatus.NEW:
                # Refused by the dry run the officer saw: never written, whatever changed since.
                result.status, result.reason_code = SettlementRowStatus.INVALID, "refused_by_dry_run"
                result.message = _("Refused by the dry run; correct the row and send it in a new file.")
        with transaction.atomic():
            if commit:
                # Stored chunk by chunk; their assistance computed once all are in (below), set-based.
                stored.extend(_write(results, actor=actor, settlement_import=record, compute=False))
            SettlementImportRow.objects.bulk_create(
                [
                    SettlementImportRow(
                        settlement_import=record,
                        line=r.line,
                        serial_number=r.serial_number,
                        status=r.status,
                        reason_code=r.reason_code,
                        message=r.message,
                        written=commit and r.status == SettlementRowStatus.NEW,
                    )
                    for r in results
                ],
                batch_size=1000,
            )
        counts.update(r.status for r in results)
    summary: dict[str, Any] = {"lines": len(table.rows), "by_status": dict(counts)}
    now = timezone.now()
    if commit:
        # What this commit stored and nothing computed yet (a crash before this line leaves them to the
        # monthly job, which computes every settlement not computed).
        compute_assistance(settlement_import=record, actor=actor)
        created = len(stored)
        summary["created"] = created
        with transaction.atomic():
            SettlementImport.objects.filter(pk=record.pk).update(
                state=SettlementImportState.COMMITTED, committed_at=now, counts=summary, content=b""
            )
            audit(
                action="settlement_import_committed",
                actor=actor,
                details={"import": record.pk, "created": created, "by_status": dict(counts)},
            )
    else:
        SettlementImport.objects.filter(pk=record.pk).update(
            state=SettlementImportState.VALIDATED, validated_at=now, counts=summary
        )


# ---------------------------------------------------------------------------
# Assistance computed
# ---------------------------------------------------------------------------


def _year_totals(person_ids: list[int], years: set[int]) -> dict[tuple[int, int], YearTotals]:
    totals: dict[tuple[int, int], YearTotals] = defaultdict(YearTotals)
    rows = (
        AssistanceLine.objects.filter(
            person_id__in=person_ids, kind=LineKind.CATEGORY, settlement__settled_on__year__in=sorted(years)
        )
        .values_list("person_id", "settlement__settled_on__year")
        .annotate(deductible=Sum("deductible_applied"), amount=Sum("amount"))
        .order_by()
    )
    for person_id, year, deductible, amount in rows:
        totals[(person_id, year)] = YearTotals(deductible or ZERO, amount or ZERO)
    return totals


def _facts(s: Settlement) -> Facts:
    return Facts(s.settled_on, s.total_cost, s.fund_paid, s.out_of_pocket, s.benefit, s.institution_level)


def _compute_reference(rows: list[Settlement], book: selectors.PolicyBook, now: dt.datetime) -> list[AssistanceLine]:
    """The per-row reference (``assistance.rules.settlement_lines``) for ``rows`` in settlement order: used for
    the person-years the set-based statement leaves out (a deductible or cap that changes within the year) and
    by the tests that check the statement against it."""
    person_ids = sorted({s.person_id for s in rows})
    periods = selectors.category_periods(person_ids)
    totals = _year_totals(person_ids, {s.settled_on.year for s in rows})
    lines: list[AssistanceLine] = []
    for s in rows:
        terms = book.terms(s.region_id)
        rule = terms.best_rule(selectors.held_on(periods.get(s.person_id, []), s.settled_on))
        for line in settlement_lines(_facts(s), rule, terms, totals[(s.person_id, s.settled_on.year)]):
            lines.append(_line(s, line, now))
    return lines


def _run_sql(built: tuple[str, list[Any]]) -> list[tuple[Any, ...]]:
    sql, params = built
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall() if cursor.description else []


def compute_assistance(
    *,
    actor: roles.Actor,
    settlement_ids: Sequence[int] | None = None,
    period: dt.date | None = None,
    settlement_import: SettlementImport | None = None,
    reference: bool = False,
) -> int:
    """Compute the regular lines of every settlement not computed yet (of ``settlement_ids``, or of a month, or
    all, or of one file import), by chunks of persons, each chunk in one transaction with its persons locked.

    The rule is that of the most generous category the person holds on the settlement date (dated categories);
    the deductible and cap run over the calendar year in settlement order, so a settlement that arrives late
    takes what is left. Each chunk is one ``INSERT … SELECT`` (assistance/sql.py); a person-year whose held
    categories carry different deductibles or caps goes through the per-row reference, as does everything
    with ``reference=True`` (the tests' check of the statement). Returns the number of settlements computed.
    Safe to run twice and side by side (persons locked, settlements marked once, lines unique).
    """
    if not (roles.is_system(actor) or selectors.may_send_settlements(actor)):
        raise NotPermitted()
    pending = Settlement.objects.filter(computed_at__isnull=True)
    if settlement_ids is not None:
        pending = pending.filter(pk__in=list(settlement_ids))
    if period is not None:
        pending = pending.filter(period=period)
    if settlement_import is not None:
        pending = pending.filter(settlement_import=settlement_import)
    person_ids = list(pending.order_by("person_id").values_list("person_id", flat=True).distinct())
    if not person_ids:
        return 0
    book = selectors.PolicyBook()
    terms_by_region = {
        region_id: book.terms(region_id)
        for region_id in pending.order_by().values_list("region_id", flat=True).distinct()
    }
    mixed = any(len({(r.deductible, r.annual_cap) for r in t.rules.values()}) > 1 for t in terms_by_region.values())
    done = 0
    for chunk in chunks(person_ids, COMPUTE_PERSONS_CHUNK):
        with transaction.atomic():
            list(Person.objects.select_for_update().filter(pk__in=list(chunk)).order_by("pk").values_list("pk"))
            ids = list(
                pending.filter(person_id__in=list(chunk), computed_at__isnull=True)
                .order_by("person_id", "settled_on", "serial_number")
                .values_list("pk", flat=True)
            )
            if not ids:
                continue
            now = timezone.now()
            by_reference = ids if reference else []
            if mixed and not reference:
                by_reference = [
                    row[0] for row in _run_sql(sql.irregular_ids(settlement_ids=ids, terms_by_region=terms_by_region))
                ]
            if by_reference:
                rows = list(
                    Settlement.objects.filter(pk__in=by_reference).order_by("person_id", "settled_on", "serial_number")
                )
                AssistanceLine.objects.bulk_create(
                    _compute_reference(rows, book, now), batch_size=2000, ignore_conflicts=True
                )
            if not reference:
                _run_sql(sql.insert_lines(settlement_ids=ids, terms_by_region=terms_by_region, now=now))
            _run_sql(sql.mark_computed(settlement_ids=ids, now=now))
            done += len(ids)
    return done


def _line(s: Settlement, line: Any, now: dt.datetime, recognition_id: int | None = None) -> AssistanceLine:
    return AssistanceLine(
        settlement_id=s.pk,
        person_id=s.person_id,
        region_id=s.region_id,
        period=s.period,
        kind=line.kind,
        category=line.category,
        ratio=line.ratio,
        base=line.base,
        deductible_applied=line.deductible_applied,
        amount=line.amount,
        recognition_id=recognition_id,
        created_at=now,
    )


# ---------------------------------------------------------------------------
# Retroactive assistance (追溯救助)
# ---------------------------------------------------------------------------


def retroactive_assistance(*, recognition_ids: Sequence[int], actor: roles.Actor) -> int:
    """For each recognised category period: settlements in the policy's retroactive window before its start
    (``retroactive_months``, 6–12) are recomputed as if the category had held then; what that gives beyond the
    assistance already paid on each settlement is listed for payment as a retroactive line, once per settlement
    and recognition (unique), however often this runs. Returns the number of lines created."""
    if not (roles.is_system(actor) or selectors.may_work_assistance(actor)):
        raise NotPermitted()
    book = selectors.PolicyBook()
    created = 0
    for recognition in PersonCategory.objects.filter(pk__in=list(recognition_ids)).select_related("person"):
        person = recognition.person
        terms = book.terms(person.insured_region_id)
        rule = terms.rules.get(recognition.category)
        if rule is None:
            continue
        window_start = recognition.valid_from - relativedelta(months=terms.retroactive_months)
        with transaction.atomic():
            Person.objects.select_for_update().filter(pk=person.pk).values_list("pk").first()
            settlements = list(
                Settlement.objects.filter(
                    person=person, settled_on__gte=window_start, settled_on__lt=recognition.valid_from
                ).order_by("settled_on", "serial_number")
            )
            if not settlements:
                continue
            lines = _retroactive_lines(person, settlements, recognition, rule, terms)
            AssistanceLine.objects.bulk_create(lines, ignore_conflicts=True)
            mine = AssistanceLine.objects.filter(recognition=recognition, created_at__in={x.created_at for x in lines})
            count = mine.count()
            if count:
                audit(
                    action="retroactive_assistance_listed",
                    actor=actor,
                    person=person,
                    details={
                        "recognition": recognition.pk,
                        "category": recognition.category,
                        "window": [window_start.isoformat(), recognition.valid_from.isoformat()],
                        "lines": count,
                        "amount": str(yuan(mine.aggregate(total=Sum("amount"))["total"] or ZERO)),
                    },
                )
            created += count
    return created


def _retroactive_lines(
    person: Person, settlements: list[Settlement], recognition: PersonCategory, rule: Rule, terms: Terms
) -> list[AssistanceLine]:
    """Each year of the window recomputed from its first settlement with the recognised category added to
    the ones held then; the difference to what each settlement already got is the retroactive amount."""
    paid: dict[int, Decimal] = defaultdict(lambda: ZERO)
    first_day = dt.date(settlements[0].settled_on.year, 1, 1)
    year_rows = list(
        Settlement.objects.filter(person=person, settled_on__gte=first_day, settled_on__lt=recognition.valid_from)
        .order_by("settled_on", "serial_number")
        .prefetch_related("lines")
    )
    for s in year_rows:
        paid[s.pk] = sum((x.amount for x in s.lines.all()), ZERO)
    periods = selectors.category_periods([person.pk]).get(person.pk, [])
    in_window = {s.pk for s in settlements}
    totals: dict[int, YearTotals] = defaultdict(YearTotals)
    now = timezone.now()
    lines: list[AssistanceLine] = []
    for s in year_rows:
        held = selectors.held_on(periods, s.settled_on)
        if s.pk in in_window:
            held = sorted({*held, recognition.category})
        best = terms.best_rule(held)
        should = sum((x.amount for x in settlement_lines(_facts(s), best, terms, totals[s.settled_on.year])), ZERO)
        extra = yuan(should - paid[s.pk])
        if s.pk in in_window and extra > 0:
            lines.append(
                AssistanceLine(
                    settlement_id=s.pk,
                    person_id=s.person_id,
                    region_id=s.region_id,
                    period=s.period,
                    kind=LineKind.RETROACTIVE,
                    category=recognition.category,
                    ratio=rule.ratio,
                    base=s.out_of_pocket,
                    amount=extra,
                    recognition=recognition,
                    created_at=now,
                )
            )
    return lines


def retroactive_mark_paid(*, line_ids: Sequence[int], actor: roles.Actor) -> int:
    _ensure_worker(actor)
    with transaction.atomic():
        visible = selectors.retroactive_payable(actor).filter(pk__in=list(line_ids)).values_list("pk", flat=True)
        ids = list(AssistanceLine.objects.select_for_update().filter(pk__in=visible).values_list("pk", flat=True))
        AssistanceLine.objects.filter(pk__in=ids).update(paid_at=timezone.now())
        if ids:
            audit(action="retroactive_assistance_paid", actor=actor, details={"lines": ids})
    return len(ids)


# ---------------------------------------------------------------------------
# High-cost alerts
# ---------------------------------------------------------------------------


@dataclass
class ScanResult:
    period: dt.date
    created: dict[str, int]
    candidates: dict[str, int]


def alerts_scan(*, period: dt.date, actor: roles.Actor) -> ScanResult:
    """Find persons whose out-of-pocket total of the month (and, where the region's policy sets it, of the 12
    months ending with it) passes the region's threshold; one alert per person, month and kind.

    The totals are one aggregate query each; alerts are inserted with ON CONFLICT DO NOTHING against the unique
    (person, period, kind), so a second run, or a second worker at the same time, creates none twice. The alerts
    this run created carry its scan id: exactly those get their audit rows.
    """
    if not (roles.is_system(actor) or selectors.may_work_assistance(actor)):
        raise NotPermitted()
    period = period_start(period)
    book = selectors.PolicyBook()
    scan = uuid.uuid4().hex
    created: dict[str, int] = {}
    candidates: dict[str, int] = {}
    month_rows = (
        Settlement.objects.filter(period=period)
        .values_list("person_id", "person__insured_region_id")
        .annotate(total=Sum("out_of_pocket"))
        .order_by()
    )
    first = period - relativedelta(months=11)
    rolling_rows = (
        Settlement.objects.filter(period__gte=first, period__lte=period)
        .values_list("person_id", "person__insured_region_id")
        .annotate(total=Sum("out_of_pocket"))
        .order_by()
    )
    has_rolling = any(t.rolling_12m_threshold is not None for t in [book.default, *book.own.values()])
    kinds: list[tuple[str, Any]] = [(AlertKind.MONTH, month_rows)]
    if has_rolling:
        kinds.append((AlertKind.ROLLING_12M, rolling_rows))
    for kind, rows in kinds:
        over: list[tuple[int, int, Decimal, Decimal]] = []
        for person_id, region_id, total in rows:
            terms = book.terms(region_id)
            threshold = terms.threshold_month if kind == AlertKind.MONTH else terms.rolling_12m_threshold
            if threshold is not None and total > threshold:
                over.append((person_id, region_id, total, threshold))
        candidates[str(kind)] = len(over)
        created[str(kind)] = 0
        for chunk in chunks(over, 5000):
            periods = selectors.category_periods([p for p, *_rest in chunk])
            last_day = period + relativedelta(months=1) - dt.timedelta(days=1)
            alerts = []
            for person_id, region_id, total, threshold in chunk:
                held = sorted(
                    {
                        c
                        for c, start, end in periods.get(person_id, [])
                        if start <= last_day and (end is None or end >= period)
                    }
                )
                alerts.append(
                    HighCostAlert(
                        person_id=person_id,
                        region_id=region_id,
                        period=period,
                        kind=kind,
                        amount=total,
                        threshold=threshold,
                        has_support_category=bool(held),
                        categories=held,
                        scan=scan,
                    )
                )
            with transaction.atomic():
                HighCostAlert.objects.bulk_create(alerts, batch_size=1000, ignore_conflicts=True)
                mine = list(
                    HighCostAlert.objects.filter(scan=scan, kind=kind, person_id__in=[a.person_id for a in alerts])
                )
                AssistanceAuditEntry.objects.bulk_create(
                    [
                        AssistanceAuditEntry(
                            action="alert_created",
                            alert=alert,
                            person_id=alert.person_id,
                            actor=actor,
                            is_system=roles.is_system(actor),
                            details={"period": f"{period:%Y-%m}", "kind": kind, "amount": str(alert.amount)},
                        )
                        for alert in mine
                    ],
                    batch_size=1000,
                )
            created[str(kind)] += len(mine)
    return ScanResult(period=period, created=created, candidates=candidates)


ALERT_ACTIONS = {"acknowledge": "acknowledge", "refer": "refer", "close": "close"}


def alert_act(*, alert_id: int, action: str, actor: roles.Actor, note: str = "") -> HighCostAlert:
    """Acknowledge, refer to assistance, or close an alert (closing needs a note); audited."""
    _ensure_worker(actor)
    if action not in ALERT_ACTIONS:
        raise InvalidInput(_("Unknown action."), details={"field": "action"})
    note = (note or "").strip()
    if len(note) > 1000:
        raise InvalidInput(_("The note is longer than 1000 characters."), details={"field": "note"})
    if action == "close" and not note:
        raise InvalidInput(_("Say why the alert is closed."), details={"field": "note"})
    with transaction.atomic():
        visible = selectors.alerts_visible_to(actor).filter(pk=alert_id).values_list("pk", flat=True)
        alert = HighCostAlert.objects.select_for_update().filter(pk__in=visible).first()
        if alert is None:
            raise InvalidInput(_("Alert #%(id)s does not exist.") % {"id": alert_id}, code="not_found")
        before = alert.state
        method = getattr(alert, ALERT_ACTIONS[action])
        from django_fsm import can_proceed

        if not can_proceed(method):
            raise RuleViolation(
                _("This alert is %(state)s; it cannot be %(action)s now.")
                % {"state": alert.get_state_display(), "action": action},
                code="transition_not_allowed",
            )
        method()
        alert.handled_by = actor
        alert.handled_at = timezone.now()
        if note:
            alert.note = note
        alert.save()
        audit(
            action=f"alert_{action}",
            actor=actor,
            alert=alert,
            person=alert.person,
            details={"from": before, "to": alert.state, "note": note},
        )
    return alert


def alert_open_count(period: dt.date) -> int:
    return HighCostAlert.objects.filter(period=period, state=AlertState.OPEN).count()


def previous_period(today: dt.date | None = None) -> dt.date:
    today = today or timezone.localdate()
    return period_start(today) - relativedelta(months=1)


def monthly_run(*, actor: roles.Actor, period: dt.date | None = None) -> ScanResult:
    """The beat job: compute what is not computed, then scan the month (default: last month)."""
    period = period or previous_period()
    compute_assistance(actor=actor, period=period)
    return alerts_scan(period=period, actor=actor)
