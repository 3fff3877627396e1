"""Reviewer pages: the queue (claim, decide one or many), batch list and batch detail.

Thin like enrollment/views.py: scope with reviews.selectors, act with reviews.services.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Prefetch
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from enrollment.forms import add_domain_error
from enrollment.models import Document
from kernel import roles
from kernel.errors import DomainError
from reviews import forms, selectors, services
from reviews.models import Outcome


def _require_reviewer(user: Any) -> None:
    if not roles.has_any_role(user, roles.REVIEWER):
        raise PermissionDenied


def _claimed(user: Any) -> list[Any]:
    return list(
        selectors.claimed_by(user)
        .select_related(
            "batch",
            "application__person",
            "application__disease",
            "application__physician",
            "application__filing_institution",
            "application__treating_institution",
        )
        .prefetch_related(Prefetch("application__documents", queryset=Document.objects.order_by("uploaded_at")))
        .order_by("queued_at", "id")
    )


def _render_queue(request: HttpRequest, *, claim_form: Any = None, decide_form: Any = None) -> HttpResponse:
    user = request.user
    stages = selectors.stages_held(user)
    claimed = _claimed(user)
    now = timezone.now()
    for item in claimed:
        item.seconds_left = max(0, int((item.lease_expires_at - now).total_seconds()))
        item.minutes_left = (item.seconds_left + 59) // 60
    selected: set[int] = set()
    if decide_form is not None and decide_form.is_bound and not decide_form.data.get("one"):
        selected = {int(v) for v in decide_form.data.getlist("items") if str(v).isdigit()}
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
def queue_claim(request: HttpRequest) -> HttpResponse:
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
def queue_release(request: HttpRequest) -> HttpResponse:
    _require_reviewer(request.user)
    ids = [int(v) for v in request.POST.getlist("items") if v.isdigit()]
    released = services.queue_release(actor=request.user, item_ids=ids or None)
    messages.info(request, _("%(n)d items went back to the queue.") % {"n": released})
    return redirect("review-queue")


@login_required
@require_POST
def queue_decide(request: HttpRequest) -> HttpResponse:
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
            decided, failed = 1, []
        else:
            result = services.review_decide_bulk(
                item_ids=cleaned["items"],
                actor=user,
                decision=cleaned["decision"],
                reason_code=cleaned["reason_code"],
                reason=cleaned["reason"],
                two_diseases=cleaned["two_diseases"],
            )
            decided, failed = len(result.decided), result.failed
    except DomainError as error:
        add_domain_error(form, error)
        return _render_queue(request, decide_form=form)
    messages.success(request, _("%(n)d items decided.") % {"n": decided})
    for failure in failed:
        messages.error(request, _("Item #%(item)s: %(message)s") % failure)
    return redirect("review-queue")


# ---------------------------------------------------------------------------
# Batches
# ---------------------------------------------------------------------------


def _require_batch_viewer(user: Any) -> None:
    if not roles.has_any_role(user, roles.REVIEWER, roles.ADMIN):
        raise PermissionDenied


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
    return render(request, "reviews/batch_list.html", {"form": form, "page": page, "query": query.urlencode()})


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
        },
    )
