"""Every write of the reviews app, one module per concern.

Application state changes go through enrollment's audit kit (run_transition, application_approve), so
each writes its one audit row in the same transaction. Batch assembly is the one bulk path: it moves
applications with a queryset update and bulk-inserts their audit rows, chunk by chunk. The modules are:

- ``assembly``: Monthly batch assembly (每月集中审批): diagnosed applications frozen into the region's batch, set-based
  and chunked, one audit row per item; closing a batch when every item is decided.
- ``queues``: The reviewer queue: claim the next items under a lease (skip-locked, so two reviewers never get the
  same item) and release them.
- ``decisions``: Stage decisions (approve / reject / return) with separation of duties, bulk decisions, and the 两病
  medication enrollment a rejection may open.
- ``immediate``: Immediate mode (即时办结): a center officer approves right after the diagnosis, without waiting for the
  batch.
- ``closing``: An application the system closed (status events) leaves the queue.
- ``deadlines``: Stage due dates in working days and the daily escalation of overdue items.
- ``supplements``: 补正 requests: the clinic's checklist, the paused clock, the reminder and the withdrawal.
- ``notify``: In-app notifications and their e-mail copies.
"""

from __future__ import annotations

from reviews.services.assembly import (
    batch_assemble,
    batch_close_if_done,
)
from reviews.services.closing import (
    review_items_close_for,
)
from reviews.services.deadlines import (
    EscalationResult,
    escalate_overdue,
    item_stage_due_on,
)
from reviews.services.decisions import (
    BulkResult,
    DecisionInput,
    ensure_separation_of_duties,
    review_decide,
    review_decide_bulk,
)
from reviews.services.immediate import (
    application_approve_immediately,
    application_reject_immediately,
    application_return_immediately,
    ensure_immediate_decision,
    may_decide_immediately,
)
from reviews.services.notify import (
    notifications_mark_read,
    notify,
)
from reviews.services.queues import (
    queue_claim,
    queue_release,
)
from reviews.services.supplements import (
    SweepResult,
    supplement_open,
    supplement_remind,
    supplement_withdraw_unanswered,
    supplements_sweep,
)

__all__ = [
    "BulkResult",
    "DecisionInput",
    "EscalationResult",
    "SweepResult",
    "application_approve_immediately",
    "application_reject_immediately",
    "application_return_immediately",
    "ensure_immediate_decision",
    "escalate_overdue",
    "item_stage_due_on",
    "may_decide_immediately",
    "notifications_mark_read",
    "notify",
    "supplement_open",
    "supplement_remind",
    "supplement_withdraw_unanswered",
    "supplements_sweep",
    "batch_assemble",
    "batch_close_if_done",
    "ensure_separation_of_duties",
    "queue_claim",
    "queue_release",
    "review_decide",
    "review_decide_bulk",
    "review_items_close_for",
]
