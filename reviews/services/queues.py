"""The reviewer queue: claim the next items under a lease (skip-locked, so two reviewers never get the same item)
and release them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from kernel import roles
from kernel.errors import InvalidInput, NotPermitted
from reviews import selectors
from reviews.models import (
    Outcome,
    ReviewItem,
)

# ---------------------------------------------------------------------------
# Queues: claim and release
# ---------------------------------------------------------------------------


def queue_claim(*, actor: roles.Actor, count: int, stage: str | None = None) -> list[ReviewItem]:
    """Lease the next ``count`` waiting items to the reviewer, oldest first.

    ``skip_locked`` lets concurrent claims pass each other instead of queueing on the same rows,
    and the lease condition is re-checked on the locked rows, so no item is ever given twice.
    """
    if not roles.has_any_role(actor, roles.REVIEWER):
        raise NotPermitted(_("Only reviewers claim review items."))
    if count < 1 or count > 200:
        raise InvalidInput(_("Claim between 1 and 200 items at a time."), details={"field": "count"})
    if stage is not None and stage not in selectors.stages_held(actor):
        raise NotPermitted(_("You do not hold the %(stage)s stage.") % {"stage": stage}, details={"stage": stage})
    now = timezone.now()
    expires = now + dt.timedelta(minutes=settings.REVIEW_LEASE_MINUTES)
    with transaction.atomic():
        ids = list(
            selectors.queue_for(actor, stage=stage)
            .filter(selectors.lease_free(now))
            .select_for_update(skip_locked=True, of=("self",))
            .values_list("pk", flat=True)[:count]
        )
        ReviewItem.objects.filter(pk__in=ids, outcome=Outcome.PENDING).update(
            claimed_by=actor, lease_expires_at=expires
        )
    return list(
        ReviewItem.objects.filter(pk__in=ids)
        .select_related("batch", "region", "claimed_by", "application__person", "application__disease")
        .order_by("queued_at", "id")
    )


def queue_release(*, actor: roles.Actor, item_ids: Sequence[int] | None = None) -> int:
    """Give claimed items back to the queue (all of the reviewer's when no ids are given)."""
    queryset = ReviewItem.objects.filter(claimed_by=actor, outcome=Outcome.PENDING)
    if item_ids is not None:
        queryset = queryset.filter(pk__in=list(item_ids))
    with transaction.atomic():
        return queryset.update(claimed_by=None, lease_expires_at=None)
