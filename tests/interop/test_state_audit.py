"""State changes of roster imports and review batches are audited (issue 14): each change writes a
RecordAuditEntry in its own transaction, by the clerk who asked or by the system for the worker's steps."""

from __future__ import annotations

import pytest

from enrollment.models import RecordAuditEntry
from interop import services
from interop.models import ImportState
from tests.factories import synthetic_id_number
from tests.interop.helpers import csv_bytes
from tests.interop.test_rosters import run_import

pytestmark = pytest.mark.django_db


def _trail(subject: str, subject_id: int) -> list[tuple[str, str, str, bool]]:
    return list(
        RecordAuditEntry.objects.filter(subject=subject, subject_id=subject_id)
        .order_by("id")
        .values_list("action", "from_state", "to_state", "is_system")
    )


def test_a_roster_imports_states_are_audited(world):
    roster = run_import(csv_bytes([[synthetic_id_number(), "李四", "530100", "", "", "M03900"]]), world.admin)
    services.roster_import_request_commit(import_id=roster.pk, actor=world.admin, queue=False)
    roster = services.roster_import_run(import_id=roster.pk)
    assert roster.state == ImportState.COMMITTED
    assert _trail("roster_import", roster.pk) == [
        ("phase_claimed", "", ImportState.VALIDATING, True),
        ("validated", "", ImportState.VALIDATED, True),
        ("commit_requested", ImportState.VALIDATED, ImportState.COMMIT_REQUESTED, False),
        ("phase_claimed", "", ImportState.COMMITTING, True),
        ("committed", "", ImportState.COMMITTED, True),
    ]
    requested = RecordAuditEntry.objects.get(subject="roster_import", action="commit_requested")
    assert requested.actor == world.admin


def test_a_review_batchs_states_are_audited(world):
    from reviews.models import BatchState, ReviewBatch
    from tests.reviews.helpers import assemble, diagnosed

    diagnosed(world)
    batch = assemble(world)
    assert batch.state == BatchState.REVIEWING
    trail = _trail("review_batch", batch.pk)
    assert trail[0] == ("assembled", BatchState.OPEN, BatchState.REVIEWING, True)
    # Closing is the system's, once every item is decided.
    from reviews.services.assembly import batch_close_if_done

    assert batch_close_if_done(batch_id=batch.pk) is False  # an item is still pending: nothing written
    assert len(_trail("review_batch", batch.pk)) == 1
    assert ReviewBatch.objects.get(pk=batch.pk).state == BatchState.REVIEWING
