"""The SQL modules (issue 14): statements built as (sql, params) with named slots, and the bulk path of a
transition setting what its FSM method sets (models.TRANSITION_FIELD_COPIES)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import transaction

from enrollment import services
from enrollment import sql as enrollment_sql
from enrollment.models import TRANSITION_FIELD_COPIES, Application, State
from kernel.sql import Fragment, chunks, compose
from tests.enrollment.validity_helpers import at, enrol


def test_compose_places_each_value_where_its_name_is():
    inner = Fragment("x IN (%s, %s)", (1, 2))
    built = compose("SELECT {a} WHERE {inner} AND y = {b} OR z = {a}", a="first", b="second", inner=inner)
    assert built.sql == "SELECT %s WHERE x IN (%s, %s) AND y = %s OR z = %s"
    assert built.params == ("first", 1, 2, "second", "first")
    sql, params = built  # unpacks as cursor.execute(*built) takes it
    assert (sql, params) == (built.sql, list(built.params))


def test_compose_refuses_a_bare_placeholder_and_an_unused_part():
    with pytest.raises(ValueError):
        compose("SELECT %s")
    with pytest.raises(ValueError):
        compose("SELECT {a}", a=1, b=2)
    with pytest.raises(KeyError):
        compose("SELECT {a}")


def test_chunks_of_a_list_and_of_an_id_array():
    from array import array

    assert list(chunks([1, 2, 3, 4, 5], 2)) == [[1, 2], [3, 4], [5]]
    assert list(chunks(array("q", [7, 8, 9]), 2)) == [[7, 8], [9]]


@pytest.mark.django_db
def test_the_sweeps_update_and_the_expire_transition_set_the_same_fields(world):
    """Two enrollments of the same dates: one expired row by row (the FSM method), one by the sweep's UPDATE."""
    start = dt.date(2024, 2, 29)  # a leap day: valid_until falls on a month end
    by_row = enrol(world, on=start)
    by_sweep = enrol(world, on=start, disease=world.diabetes, icd="E11")
    assert by_row.valid_until == by_sweep.valid_until
    after = by_row.valid_until + dt.timedelta(days=400)
    with at(after):
        with transaction.atomic():
            services.run_transition(
                application=services.lock_application(by_row.pk), name="expire", actor=services.get_system_user()
            )
        services.validity_sweep(actor=services.get_system_user(), enqueue=False)
    by_row.refresh_from_db()
    by_sweep.refresh_from_db()
    assert by_row.state == by_sweep.state == State.EXPIRED
    assert TRANSITION_FIELD_COPIES["expire"] == {"ended_on": "valid_until"}
    for target, source in TRANSITION_FIELD_COPIES["expire"].items():
        assert getattr(by_row, target) == getattr(by_sweep, target) == getattr(by_sweep, source)


def _sweep_update(transition: str, to_state: str) -> Fragment:
    return enrollment_sql.sweep_transition_update(
        transition=transition,
        source_state=State.APPROVED,
        to_state=to_state,
        updated_at="2026-01-01",
        candidates=Fragment("SELECT 1"),
    )


def test_the_update_writes_every_copy_of_the_transition():
    statement = _sweep_update("expire", State.EXPIRED)
    assert '"ended_on" = "valid_until"' in statement.sql
    assert statement.params == (State.EXPIRED, "2026-01-01", State.APPROVED)
    assert "ended_on" not in _sweep_update("mark_expiring", State.EXPIRING).sql
    instance = Application(state=State.APPROVED, valid_until=dt.date(2026, 12, 31))
    instance.expire()
    assert instance.ended_on == dt.date(2026, 12, 31)


def test_the_diagnosis_guard_and_the_assembly_filter_are_one_definition(world):
    from enrollment.models import DIAGNOSIS_REQUIRED_FIELDS, with_diagnosis

    assert set(DIAGNOSIS_REQUIRED_FIELDS) == {"icd10_code", "diagnosis_date", "physician"}
    where = str(Application.objects.filter(with_diagnosis()).query)
    assert "icd10_code" in where and "diagnosis_date" in where and "physician_id" in where
