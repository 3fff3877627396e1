"""Reviewer pages: the queue (claim, decide one or many), batch list and batch detail.

Thin like enrollment/views.py: scope with reviews.selectors, act with reviews.services.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import F, Prefetch
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from enrollment.forms import add_domain_error
from enrollment.models import Document
from enrollment.periods import period_key
from kernel import roles
from kernel.errors import DomainError
from reviews import forms, selectors, services
from reviews.models import Outcome


def _require_reviewer(user: Any) -> None:
    if not roles.has_any_role(user, roles.REVIEWER):
        raise PermissionDenied


def _claimed(user: Any) -> list[Any]:
    """The reviewer's claimed items with ``due_on``, ``overdue``, ``escalated`` and ``working_days_left``."""
    return selectors.attach_working_days(
        list(
            selectors.with_deadline_flags(selectors.claimed_by(user))
            .select_related(
                "batch",
                "application__person",
                "application__disease",
                "application__physician",
                "application__filing_institution",
                "application__treating_institution",
            )
            .prefetch_related(Prefetch("application__documents", queryset=Document.objects.order_by("uploaded_at")))
            # The stage due date first: what is promised soonest is decided first (no due date: last).
            .order_by(F("due_on").asc(nulls_last=True), "queued_at", "id")
        )
    )


def _render_queue(request: HttpRequest, *, claim_form: Any = None, decide_form: Any = None) -> HttpResponse:
    user = request.user
    stages = selectors.stages_held(user)
    claimed = _claimed(user)
    now = timezone.now()
    for item in claimed:
        item.seconds_left = max(0, int((item.lease_expires_at - now).total_seconds()))
        item.minutes_left = (item.seconds_left + 59) // 60
    # A refused decision clears the selection: the next decision must not fall on items ticked for this one.
    selected: set[int] = set()
    outcome = request.session.pop(QUEUE_OUTCOME_SESSION_KEY, None) if request.method == "GET" else None
    return render(
        request,
        "reviews/queue.html",
        {
            "claimed": claimed,
            "selected": selected,
            "waiting": selectors.claimable_for(user).count(),
            "stages": stages,
            "claim_form": claim_form or forms.ClaimForm(stages=stages),
            "decide_form": decide_form or forms.DecideForm(item_ids=[i.pk for i in claimed]),
            "outcome": _outcome_report(user, outcome) if outcome else None,
        },
        status=400 if (claim_form is not None and claim_form.errors) or (decide_form and decide_form.errors) else 200,
    )


@login_required
@require_GET
def queue(request: HttpRequest) -> HttpResponse:
    _require_reviewer(request.user)
    return _render_queue(request)


@login_required
@require_POST
def queue_claim(request: roles.AuthenticatedHttpRequest) -> HttpResponse:
    _require_reviewer(request.user)
    form = forms.ClaimForm(request.POST, stages=selectors.stages_held(request.user))
    if form.is_valid():
        try:
            items = services.queue_claim(
                actor=request.user, count=form.cleaned_data["count"], stage=form.cleaned_data["stage"] or None
            )
        except DomainError as error:
            add_domain_error(form, error)
        else:
            if items:
                messages.success(request, _("You claimed %(n)d items.") % {"n": len(items)})
            else:
                messages.info(request, _("Nothing is waiting for you to claim."))
            return redirect("review-queue")
    return _render_queue(request, claim_form=form)


@login_required
@require_POST
def queue_release(request: roles.AuthenticatedHttpRequest) -> HttpResponse:
    _require_reviewer(request.user)
    ids = [int(v) for v in request.POST.getlist("items") if v.isdigit()]
    released = services.queue_release(actor=request.user, item_ids=ids or None)
    messages.info(request, _("%(n)d items went back to the queue.") % {"n": released})
    return redirect("review-queue")


@login_required
@require_POST
def queue_decide(request: roles.AuthenticatedHttpRequest) -> HttpResponse:
    """Decide the selected items; a row's own button (``one``) decides just that row."""
    user = request.user
    _require_reviewer(user)
    claimed_ids = [i.pk for i in _claimed(user)]
    data = request.POST.copy()
    one = data.get("one", "")
    if one:
        decision, _sep, item = one.partition(":")
        data.setlist("items", [item])
        data["decision"] = decision
    form = forms.DecideForm(data, item_ids=claimed_ids)
    if not form.is_valid():
        return _render_queue(request, decide_form=form)
    cleaned = form.cleaned_data
    try:
        if len(cleaned["items"]) == 1:
            services.review_decide(
                item_id=cleaned["items"][0],
                actor=user,
                decision=cleaned["decision"],
                reason_code=cleaned["reason_code"],
                reason=cleaned["reason"],
                two_diseases=cleaned["two_diseases"],
            )
            decided, failed = [cleaned["items"][0]], []
        else:
            result = services.review_decide_bulk(
                item_ids=cleaned["items"],
                actor=user,
                decision=cleaned["decision"],
                reason_code=cleaned["reason_code"],
                reason=cleaned["reason"],
                two_diseases=cleaned["two_diseases"],
            )
            decided, failed = result.decided, result.failed
    except DomainError as error:
        add_domain_error(form, error)
        return _render_queue(request, decide_form=form)
    # The per-item report is shown once on the queue page after the redirect.
    request.session[QUEUE_OUTCOME_SESSION_KEY] = {
        "decision": cleaned["decision"],
        "decided": list(decided),
        "failed": [{"item": f["item"], "message": str(f["message"])} for f in failed],
    }
    messages.success(request, _("%(n)d items decided.") % {"n": len(decided)})
    if failed:
        messages.error(request, _("%(n)d items were not decided: see the report below.") % {"n": len(failed)})
    return redirect("review-queue")


QUEUE_OUTCOME_SESSION_KEY = "queue_outcome"


def _outcome_report(user: Any, outcome: dict[str, Any]) -> dict[str, Any]:
    """The last decision's report: each item with its application and person, decided or why not."""
    from reviews.models import Decision

    decided = [int(i) for i in outcome.get("decided", [])]
    failed = {int(f["item"]): f["message"] for f in outcome.get("failed", [])}
    items = selectors.items_for_report(user, [*decided, *failed])
    rows = [
        {"item": item, "decided": item.pk not in failed, "message": failed.get(item.pk, "")}
        for item in sorted(items, key=lambda i: (i.pk in decided, i.pk))
    ]
    return {
        "decision": dict(Decision.choices).get(outcome.get("decision", ""), ""),
        "rows": rows,
        "decided": len(decided),
        "failed": len(failed),
    }


# ---------------------------------------------------------------------------
# Batches
# ---------------------------------------------------------------------------


def _require_batch_viewer(user: Any) -> None:
    if not roles.has_any_role(user, roles.REVIEWER, roles.CENTER_OFFICER, roles.ADMIN):
        raise PermissionDenied


def _assemble_form(user: Any, data: Any = None) -> Any:
    choices = selectors.assembly_choices(user)
    if not choices:
        return None
    labels = [(pk, _("%(region)s — %(n)d diagnosed") % {"region": label, "n": n}) for pk, label, n in choices]
    return forms.AssembleBatchForm(data, regions=labels)


@login_required
@require_GET
def batch_list(request: HttpRequest) -> HttpResponse:
    _require_batch_viewer(request.user)
    form = forms.BatchFilterForm(request.GET or None)
    batches = selectors.batches_visible_to(request.user).order_by("-period", "region__code")
    if form.is_valid():
        if form.cleaned_data["period"]:
            batches = batches.filter(period=form.cleaned_data["period"])
        if form.cleaned_data["region"]:
            batches = batches.filter(region__code__startswith=form.cleaned_data["region"])
    page = Paginator(batches, 50).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    may_assemble = selectors.assembly_region_ids(request.user) != []
    return render(
        request,
        "reviews/batch_list.html",
        {
            "form": form,
            "page": page,
            "query": query.urlencode(),
            "assemble_form": _assemble_form(request.user) if may_assemble else None,
            "may_assemble": may_assemble,
            "period": period_key(timezone.localdate()),
        },
    )


@login_required
@require_POST
def batch_assemble(request: roles.AuthenticatedHttpRequest) -> HttpResponse:
    """Assemble a region's batch of this month now: the monthly run's service and idempotency, the officer's
    region only, every moved application audited with the officer as actor."""
    user = request.user
    if selectors.assembly_region_ids(user) == []:
        raise PermissionDenied
    form = _assemble_form(user, request.POST)
    if form is None:
        messages.info(request, _("No diagnosed application waits for a batch in your regions."))
        return redirect("batch-list")
    if not form.is_valid():
        for errors in form.errors.values():
            for error in errors:
                messages.error(request, error)
        return redirect("batch-list")
    region_id = form.cleaned_data["region"]
    period = selectors.web_assembly_period(region_id)
    try:
        # Everything diagnosed until now: the batch the region's applications wait for, brought forward.
        batch = services.batch_assemble(region_id=region_id, period=period, actor=user, cutoff=timezone.now())
    except DomainError as error:
        messages.error(request, str(error.message))
        return redirect("batch-list")
    messages.success(
        request,
        _("Batch %(period)s of %(region)s: %(n)d applications in review.")
        % {"period": batch.period, "region": batch.region, "n": batch.item_count},
    )
    return redirect("batch-detail", pk=batch.pk)


@login_required
@require_GET
def batch_detail(request: HttpRequest, pk: int) -> HttpResponse:
    _require_batch_viewer(request.user)
    batch = get_object_or_404(selectors.batches_visible_to(request.user), pk=pk)
    counts = selectors.batch_counts(batch)
    decided = sum(n for outcome, n in counts["by_outcome"].items() if outcome != Outcome.PENDING)
    total = sum(counts["by_outcome"].values())
    return render(
        request,
        "reviews/batch_detail.html",
        {
            "batch": batch,
            "counts": counts,
            "outcomes": [(o, label, counts["by_outcome"].get(o, 0)) for o, label in Outcome.choices],
            "decided": decided,
            "total": total,
            "progress": round(100 * decided / total) if total else 100,
            "deadlines": selectors.batch_deadlines(batch),
            "stragglers": selectors.batch_stragglers(batch),
        },
    )


# ---------------------------------------------------------------------------
# Notifications and the on-time report
# ---------------------------------------------------------------------------


@login_required
@require_GET
def notification_list(request: roles.AuthenticatedHttpRequest) -> HttpResponse:
    page = Paginator(selectors.notifications_for(request.user), 50).get_page(request.GET.get("page"))
    return render(request, "reviews/notifications.html", {"page": page, "query": ""})


@login_required
@require_POST
def notifications_read(request: roles.AuthenticatedHttpRequest) -> HttpResponse:
    services.notifications_mark_read(actor=request.user)
    return redirect("review-notifications")


@login_required
@require_GET
def on_time_csv(request: HttpRequest) -> HttpResponse:
    """The reports page's on-time rates as CSV (formula-safe writer), administrators only like the page."""
    from kernel.tabular import csv_chunks
    from reviews import panels

    if not roles.has_any_role(request.user, roles.ADMIN):
        raise PermissionDenied
    rows = selectors.on_time_rates(request.user, since=panels.on_time_since(panels.report_months(request)))
    header = [_("dimension"), _("key"), _("name"), _("decided"), _("on time"), _("on-time rate (%)")]
    body = ([row.dimension, row.key, row.label, row.decided, row.on_time, row.rate] for row in rows)
    response = HttpResponse(b"".join(csv_chunks(header, body)), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="on_time.csv"'
    return response
