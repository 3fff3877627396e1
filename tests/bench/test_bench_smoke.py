"""A small run of the scale benchmarks (bench/): the generator, then the batch and the sweep, each
through the product path and the hand-written SQL baseline, on a few thousand rows.

The timings mean nothing at this size; what is checked is that the generator respects the
constraints and that the product and its baseline do the same work on the same data.
"""

from __future__ import annotations

import pytest
from django.core.management import call_command

from bench import batch, generate, sweep
from enrollment.models import Application, AuditEntry, Reminder
from reviews.models import ReviewItem

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


@pytest.fixture
def generated() -> generate.Generated:
    call_command("load_catalogue", verbosity=0)
    return generate.generate(applications=3000, cities=1, counties=2)


def test_generator_makes_a_consistent_mix(generated: generate.Generated) -> None:
    assert Application.objects.count() == generated.applications == 3000
    assert AuditEntry.objects.count() == generated.audit_rows
    assert generated.by_state["diagnosed"] > 500
    assert set(generated.by_state) >= {"approved", "expiring", "expired", "submitted"}
    # A second run appends new people instead of colliding with the first one's.
    more = generate.generate(applications=500, seed=7, cities=1, counties=2)
    assert Application.objects.count() == 3000 + more.applications


def test_batch_product_and_baseline_move_the_same_rows(generated: generate.Generated) -> None:
    diagnosed = Application.objects.filter(state="diagnosed").count()
    product, baseline, parallel = batch.compare(chunk_size=200, vacuum=False)
    assert parallel is None
    assert product.rows == baseline.rows == diagnosed
    assert product.checksum == baseline.checksum
    # Each reset put the data back: nothing of either run is left.
    assert Application.objects.filter(state="diagnosed").count() == diagnosed
    assert not ReviewItem.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_batch_shared_out_over_two_workers_moves_the_same_rows() -> None:
    """The ``--workers`` run: threads with their own connections, so the data must be committed."""
    call_command("load_catalogue", verbosity=0)
    generate.generate(applications=1200, cities=1, counties=3)
    diagnosed = Application.objects.filter(state="diagnosed").count()
    assert len(batch._regions()) >= 2
    product, baseline, parallel = batch.compare(chunk_size=50, vacuum=False, workers=2)
    assert parallel is not None and diagnosed > 0
    assert product.rows == baseline.rows == parallel.rows == diagnosed
    assert product.checksum == baseline.checksum == parallel.checksum
    assert Application.objects.filter(state="diagnosed").count() == diagnosed
    assert not ReviewItem.objects.exists()


def test_sweep_product_and_baseline_do_the_same_work(generated: generate.Generated) -> None:
    audit_rows = AuditEntry.objects.count()
    product, baseline = sweep.compare(chunk_size=200, vacuum=False)
    assert product.expired > 0 and product.expiring > 0 and product.reminders > 0
    assert (product.expired, product.expiring, product.reminders, product.checksum) == (
        baseline.expired,
        baseline.expiring,
        baseline.reminders,
        baseline.checksum,
    )
    assert AuditEntry.objects.count() == audit_rows
    assert not Reminder.objects.exists()
