from io import StringIO

import pytest
from django.core.management import call_command

from reviews.models import BatchState, Outcome, ReviewBatch, ReviewItem, StageDecision


@pytest.mark.django_db
def test_seed_demo_puts_applications_in_a_batch_and_decides_some():
    call_command("seed_demo", "--password", "demo-secret-1", "--applications", "24", stdout=StringIO())
    batch = ReviewBatch.objects.get()
    assert batch.state == BatchState.REVIEWING and batch.item_count == 8
    outcomes = set(ReviewItem.objects.values_list("outcome", flat=True))
    assert {Outcome.PENDING, Outcome.APPROVED, Outcome.RETURNED} <= outcomes
    assert ReviewItem.objects.filter(stage="recheck", outcome=Outcome.PENDING).exists()
    assert StageDecision.objects.filter(decided_by__username="reviewer").count() >= 4
    assert not ReviewItem.objects.filter(claimed_by__isnull=False, outcome=Outcome.PENDING).exists()
