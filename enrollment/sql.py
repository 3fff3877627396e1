"""Every hand-written SQL statement of the enrollment app, as ``(sql, params)`` builders.

The set-based paths (the validity sweep, the reminder rows, the audit rows of bulk transitions) write in one
statement what the per-row path writes one row at a time; the services run what these build. Table and
column names come from the models (``kernel.sql.table`` / ``column``), values are always parameters, and the
parameters of a statement are placed by ``kernel.sql.compose``, next to the name of their slot. The tests in
tests/enrollment/test_sweep.py and test_reminders.py hold each statement equal to the Python path it mirrors,
on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import connection

from enrollment import notifications
from enrollment.models import (
    TRANSITION_FIELD_COPIES,
    Application,
    AuditEntry,
    Disease,
    Institution,
    Person,
    PersonCategory,
    PersonStatusEvent,
    Reminder,
    ReminderChannel,
    ReminderStatus,
)
from kernel.sql import Fragment, RowReader, column, compose, db_value, sql_in, table

# ---------------------------------------------------------------------------
# Audit rows of a bulk transition
# ---------------------------------------------------------------------------


def audit_rows_insert(*, prototype: AuditEntry, source: Fragment, per_row: dict[str, str]) -> Fragment:
    """``INSERT … SELECT`` of one audit row per row of ``source`` (``FROM … WHERE …``): every column from
    ``prototype`` (an unsaved audit_entry) but the ``per_row`` ones (SQL expressions over ``source``, by
    attname), so a bulk row is exactly the row the per-row path writes."""
    columns: list[str] = []
    values: list[Fragment] = []
    for model_field in AuditEntry._meta.concrete_fields:
        if model_field.primary_key:
            continue
        columns.append(column(AuditEntry, model_field.name))
        if model_field.attname in per_row:
            values.append(Fragment(per_row[model_field.attname]))
        else:
            value = model_field.get_db_prep_save(getattr(prototype, model_field.attname), connection)
            values.append(Fragment("%s", (value,)))
    return compose(
        "INSERT INTO {table} ({columns}) SELECT {values} {source}",
        table=Fragment(table(AuditEntry)),
        columns=Fragment(", ".join(columns)),
        values=Fragment(", ".join(v.sql for v in values), tuple(p for v in values for p in v.params)),
        source=source,
    )


def applications_by_id(ids: list[int]) -> Fragment:
    """``FROM <application table> a WHERE a.id IN (…)``: the source of a chunk's bulk audit rows."""
    where, params = sql_in("a.id", ids)
    return Fragment(f"FROM {table(Application)} a WHERE {where}", tuple(params))


# ---------------------------------------------------------------------------
# The validity sweep
# ---------------------------------------------------------------------------


def sweep_transition_update(
    *, transition: str, source_state: str, to_state: str, updated_at: Any, candidates: Fragment
) -> Fragment:
    """``UPDATE … RETURNING id`` moving the candidates still in ``source_state`` to ``to_state``. Besides the
    state it sets what the transition's FSM method copies on one row (models.TRANSITION_FIELD_COPIES:
    ``expire`` sets ``ended_on = valid_until``), so the bulk and the per-row path set the same values."""
    copies = "".join(
        f", {column(Application, target)} = {column(Application, source)}"
        for target, source in TRANSITION_FIELD_COPIES[transition].items()
    )
    return compose(
        "UPDATE {table} SET {state} = {to_state}, {updated} = {updated_at}{copies} "
        "WHERE {state} = {source_state} AND {id} IN ({candidates}) RETURNING {id}",
        table=Fragment(table(Application)),
        state=Fragment(column(Application, "state")),
        updated=Fragment(column(Application, "updated_at")),
        id=Fragment(column(Application, "id")),
        copies=Fragment(copies),
        to_state=to_state,
        updated_at=updated_at,
        source_state=source_state,
        candidates=candidates,
    )


def analyze_reminders() -> Fragment:
    """PostgreSQL: refresh the planner's statistics of the reminder table (see sweep._refresh_reminder_statistics)."""
    return Fragment(f"ANALYZE {table(Reminder)}")


# ---------------------------------------------------------------------------
# Reminder rows
# ---------------------------------------------------------------------------


def reminder_dates(day: dt.date, offset: int) -> Fragment:
    """The only database-specific part of the reminder SQL: ``valid_until`` as ``YYYY-MM-DD`` text,
    the days left until it and the due date of the offset, as columns of the enrollment ``a``."""
    if connection.vendor == "postgresql":
        template = (
            "to_char(a.valid_until, 'YYYY-MM-DD') AS date_text, (a.valid_until - CAST({day} AS date)) AS days_left, "
            "(a.valid_until - CAST({offset} AS integer)) AS due_on"
        )
    else:
        template = (
            "a.valid_until AS date_text, CAST(julianday(a.valid_until) - julianday({day}) AS integer) AS days_left, "
            "date(a.valid_until, '-' || CAST({offset} AS text) || ' days') AS due_on"
        )
    return compose(template, day=day.isoformat(), offset=offset)


def reminder_text_slots() -> dict[notifications.Slot, str]:
    """SQL for every slot of the reminder templates (``notifications.render_sql``), over the columns of
    the enrollment row ``b`` built in ``reminder_rows``: the SQL twin of ``chinese_date``,
    ``_days_phrase`` and ``mask_id_number`` (tests/enrollment/test_reminders.py holds them equal)."""
    number = "CAST(CAST(substr(b.date_text, {start}, {length}) AS integer) AS text)"
    return {
        notifications.Slot.DISEASE: "b.disease_name",
        notifications.Slot.CLINIC: "b.clinic_name",
        notifications.Slot.PERSON: "b.person_name",
        notifications.Slot.MASKED_ID: (
            "CASE WHEN length(b.id_number) <= 7 THEN substr('*******', 1, length(b.id_number)) "
            "ELSE substr(b.id_number, 1, 3) || substr('***********', 1, length(b.id_number) - 7) "
            "|| substr(b.id_number, length(b.id_number) - 3) END"
        ),
        notifications.Slot.APPLICATION: "CAST(b.application_id AS text)",
        notifications.Slot.VALID_UNTIL: (
            f"{number.format(start=1, length=4)} || '年' || {number.format(start=6, length=2)} || '月' || "
            f"{number.format(start=9, length=2)} || '日'"
        ),
        notifications.Slot.DAYS_PHRASE: (
            "CASE WHEN b.days_left > 0 THEN '还有' || CAST(b.days_left AS text) || '天到期' "
            "WHEN b.days_left = 0 THEN '今天到期' ELSE '已经到期' END"
        ),
    }


def _clinic_emails_case(emails: dict[int, str]) -> Fragment:
    """The clinic staff addresses of the enrollment's filing institution (``''`` when it has none)."""
    with_emails = sorted(pk for pk, addresses in emails.items() if addresses)
    if not with_emails:
        return Fragment("''")
    whens = [compose("WHEN {institution} THEN {addresses}", institution=pk, addresses=emails[pk]) for pk in with_emails]
    return Fragment(
        f"CASE a.filing_institution_id {' '.join(w.sql for w in whens)} ELSE '' END",
        tuple(p for w in whens for p in w.params),
    )


def _text(template: Any, slots: dict[notifications.Slot, str]) -> Fragment:
    sql, params = notifications.render_sql(template, slots)
    return Fragment(sql, tuple(params))


def reminder_rows(
    *,
    candidates: Fragment,
    offset: int,
    day: dt.date,
    now: Any,
    emails: dict[int, str],
    templates: tuple[Any, Any, Any],
    skipped_for: int | None = None,
) -> Fragment:
    """One ``INSERT … SELECT … ON CONFLICT DO NOTHING RETURNING`` of an SMS, an e-mail and an in-app row per
    enrollment of ``candidates``, the texts rendered by the database from the templates of ``notifications``.
    ``skipped_for``: the rows of an offset a later one superseded, recorded as skipped. ``emails``: the filing
    institutions' clinic staff addresses, by institution id."""
    sms, email, in_app = ReminderChannel.SMS, ReminderChannel.EMAIL, ReminderChannel.IN_APP
    if skipped_for is None:
        status = compose(
            "CASE WHEN ch.channel = {in_app} THEN {sent} WHEN ch.recipient = '' THEN {skipped} ELSE {pending} END",
            in_app=in_app,
            sent=ReminderStatus.SENT,
            skipped=ReminderStatus.SKIPPED,
            pending=ReminderStatus.PENDING,
        )
        error = compose("CASE WHEN ch.channel = {in_app} THEN '' ELSE ch.missing END", in_app=in_app)
        sent_at = compose("CASE WHEN ch.channel = {in_app} THEN {now} END", in_app=in_app, now=now)
    else:
        status = compose("{skipped}", skipped=ReminderStatus.SKIPPED)
        error = compose("{superseded}", superseded=f"superseded by the {skipped_for}-day reminder")
        sent_at = Fragment("NULL")
    slots = reminder_text_slots()
    sms_text, subject_text, body_text = (_text(template, slots) for template in templates)
    return compose(
        """
        INSERT INTO {reminder}
            (application_id, offset_days, channel, due_on, valid_until, status, institution_id, recipient,
             subject, message, attempts, last_error, created_at, updated_at, sent_at)
        SELECT ch.application_id, {offset}, ch.channel, ch.due_on, ch.valid_until, {status}, ch.institution_id,
            ch.recipient, ch.subject, ch.message, 0, {error}, {created_at}, {updated_at}, {sent_at}
        FROM (
            SELECT t.application_id, t.valid_until, t.institution_id, t.due_on, c.channel,
                CASE c.channel WHEN {phone_channel} THEN t.phone WHEN {email_channel} THEN t.emails ELSE '' END
                    AS recipient,
                CASE c.channel WHEN {sms_has_no_subject} THEN '' ELSE t.clinic_subject END AS subject,
                CASE c.channel WHEN {sms_gets_sms_text} THEN t.sms ELSE t.body END AS message,
                CASE WHEN c.channel = {sms_needs_phone} AND t.phone = '' THEN {no_phone}
                     WHEN c.channel = {email_needs_address} AND t.emails = '' THEN {no_address} ELSE '' END
                    AS missing
            FROM (
                SELECT b.application_id, b.valid_until, b.institution_id, b.due_on, b.phone, b.emails,
                    {sms_text} AS sms, {subject_text} AS clinic_subject, {body_text} AS body
                FROM (
                    SELECT a.id AS application_id, a.valid_until, a.filing_institution_id AS institution_id,
                        {dates}, trim(p.phone) AS phone, {emails} AS emails, d.name AS disease_name,
                        i.name AS clinic_name, p.name AS person_name, p.id_number
                    FROM {application} a
                    JOIN {person} p ON p.id = a.person_id
                    JOIN {disease} d ON d.id = a.disease_id
                    JOIN {institution} i ON i.id = a.filing_institution_id
                    WHERE a.id IN ({candidates})
                ) b
            ) t
            CROSS JOIN (SELECT {first} AS channel UNION ALL SELECT {second} UNION ALL SELECT {third}) c
        ) ch
        WHERE ch.application_id IS NOT NULL
        ON CONFLICT DO NOTHING
        RETURNING id, application_id, channel, status
        """,
        reminder=Fragment(table(Reminder)),
        application=Fragment(table(Application)),
        person=Fragment(table(Person)),
        disease=Fragment(table(Disease)),
        institution=Fragment(table(Institution)),
        offset=offset,
        status=status,
        error=error,
        created_at=now,
        updated_at=now,
        sent_at=sent_at,
        phone_channel=sms,
        email_channel=email,
        sms_has_no_subject=sms,
        sms_gets_sms_text=sms,
        sms_needs_phone=sms,
        no_phone="no mobile number on file",
        email_needs_address=email,
        no_address="no clinic staff e-mail address",
        sms_text=sms_text,
        subject_text=subject_text,
        body_text=body_text,
        dates=reminder_dates(day, offset),
        emails=_clinic_emails_case(emails),
        candidates=candidates,
        first=sms,
        second=email,
        third=in_app,
    )


# ---------------------------------------------------------------------------
# The coverage answer's reads
# ---------------------------------------------------------------------------

# The columns each read takes, in the order of the statement's SELECT list.
COVERAGE_PERSON = RowReader(Person)
COVERAGE_APPLICATION = RowReader(Application)
COVERAGE_DECISION = RowReader(AuditEntry)


def coverage_reads(
    *, id_number: str, disease_id: int, approval_transitions: tuple[str, ...], as_of: dt.datetime | None
) -> Fragment:
    """One statement for what the coverage answer reads about a person, in place of four querysets: the
    person (one row per application of the disease, or one with NULL application columns), whether they have
    any status events and any support categories, each application of the disease, and each application's
    latest approval audit row (recorded by ``as_of`` when given) with its actor's id and username. The
    ``SELECT`` list is ``COVERAGE_PERSON``, the two flags, ``COVERAGE_APPLICATION``, ``COVERAGE_DECISION``,
    then the actor's username."""
    from django.contrib.auth import get_user_model

    users = get_user_model()
    recorded = compose(
        "AND e2.{at} <= {as_of}", at=Fragment(column(AuditEntry, "at")), as_of=db_value(AuditEntry, "at", as_of)
    )
    return compose(
        "SELECT {person_columns}, "
        "EXISTS (SELECT 1 FROM {events} ev WHERE ev.{event_person} = p.{pk}), "
        "EXISTS (SELECT 1 FROM {categories} c WHERE c.{category_person} = p.{pk}), "
        "{application_columns}, {decision_columns}, u.{username} "
        "FROM {persons} p "
        "LEFT JOIN {applications} a ON a.{person} = p.{pk} AND a.{disease} = {disease_id} "
        "LEFT JOIN {entries} e ON e.{pk} = ("
        "SELECT e2.{pk} FROM {entries} e2 WHERE e2.{entry_application} = a.{pk} AND e2.{transition} IN ({approvals}) "
        "{recorded} ORDER BY e2.{at} DESC, e2.{pk} DESC LIMIT 1) "
        "LEFT JOIN {users} u ON u.{pk} = e.{actor} "
        "WHERE p.{id_number_column} = {id_number} ORDER BY a.{pk}",
        person_columns=Fragment(COVERAGE_PERSON.columns("p")),
        events=Fragment(table(PersonStatusEvent)),
        event_person=Fragment(column(PersonStatusEvent, "person")),
        pk=Fragment("id"),
        categories=Fragment(table(PersonCategory)),
        category_person=Fragment(column(PersonCategory, "person")),
        application_columns=Fragment(COVERAGE_APPLICATION.columns("a")),
        decision_columns=Fragment(COVERAGE_DECISION.columns("e")),
        username=Fragment(column(users, "username")),
        persons=Fragment(table(Person)),
        applications=Fragment(table(Application)),
        person=Fragment(column(Application, "person")),
        disease=Fragment(column(Application, "disease")),
        disease_id=disease_id,
        entries=Fragment(table(AuditEntry)),
        entry_application=Fragment(column(AuditEntry, "application")),
        transition=Fragment(column(AuditEntry, "transition")),
        approvals=Fragment(", ".join(["%s"] * len(approval_transitions)), approval_transitions),
        recorded=recorded if as_of is not None else Fragment(""),
        at=Fragment(column(AuditEntry, "at")),
        users=Fragment(table(users)),
        actor=Fragment(column(AuditEntry, "actor")),
        id_number_column=Fragment(column(Person, "id_number")),
        id_number=id_number,
    )
