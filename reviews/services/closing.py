"""An application the system closed (status events) leaves the queue."""

from __future__ import annotations

import functools

from django.db import transaction
from django.utils import timezone

from enrollment.models import Application, State
from reviews.models import (
    Outcome,
    ReviewItem,
)
from reviews.services.assembly import batch_close_if_done

# ---------------------------------------------------------------------------
# An application the system closed (status events) leaves the queue
# ---------------------------------------------------------------------------


def review_items_close_for(*, application: Application, from_state: str) -> int:
    """Registered in enrollment.services.APPLICATION_CLOSED_HOOKS (reviews/apps.py): the pending item of
    an application closed while in review is closed too, and its batch may close."""
    if from_state != State.IN_REVIEW:
        return 0
    batch_ids = list(
        ReviewItem.objects.filter(application=application, outcome=Outcome.PENDING).values_list("batch_id", flat=True)
    )
    closed = ReviewItem.objects.filter(application=application, outcome=Outcome.PENDING).update(
        outcome=Outcome.WITHDRAWN, decided_at=timezone.now(), claimed_by=None, lease_expires_at=None
    )
    for batch_id in batch_ids:
        transaction.on_commit(functools.partial(batch_close_if_done, batch_id=batch_id))
    return closed
