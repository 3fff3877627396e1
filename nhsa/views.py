"""Officer pages of the platform link: messages needing an officer, reconciliation runs and their differences.

Thin: scope with nhsa.selectors, act with nhsa.services / nhsa.reconcile_services; objects outside the
viewer's scope are 404, other roles 403.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from kernel import roles
from kernel.errors import DomainError
from kernel.tabular import tabular_response
from nhsa import reconcile_services, selectors, services

MESSAGE_ACTIONS = {
    "retry": services.platform_message_retry,
    "release": services.platform_message_release,
    "cancel": services.platform_message_cancel,
}


def _require_officer(user: Any) -> None:
    if not selectors.may_handle(user):
        raise PermissionDenied


@login_required
@require_GET
def outbox(request: HttpRequest) -> HttpResponse:
    _require_officer(request.user)
    page = Paginator(selectors.messages_needing_officer(request.user), 50).get_page(request.GET.get("page"))
    return render(
        request,
        "nhsa/outbox.html",
        {"page": page, "counts": selectors.outbox_counts(request.user)},
    )


@login_required
@require_POST
def message_action(request: roles.AuthenticatedHttpRequest, pk: int, action: str) -> HttpResponse:
    _require_officer(request.user)
    if action not in MESSAGE_ACTIONS:
        raise Http404
    message = selectors.message_visible_to(request.user, pk)
    if message is None:
        raise Http404
    try:
        MESSAGE_ACTIONS[action](message_id=message.pk, actor=request.user, note=request.POST.get("note", "")[:500])
    except DomainError as error:
        messages.error(request, str(error.message))
    else:
        messages.success(request, _("Platform message #%(id)s: done.") % {"id": message.pk})
    return redirect("platform-outbox")


@login_required
@require_GET
def reconciliation_list(request: HttpRequest) -> HttpResponse:
    _require_officer(request.user)
    page = Paginator(selectors.reconciliations_visible_to(request.user), 50).get_page(request.GET.get("page"))
    return render(request, "nhsa/reconciliation_list.html", {"page": page})


@login_required
@require_GET
def reconciliation_detail(request: HttpRequest, pk: int) -> HttpResponse:
    _require_officer(request.user)
    run = get_object_or_404(selectors.reconciliations_visible_to(request.user), pk=pk)
    page = Paginator(selectors.differences_of(run, request.user), 100).get_page(request.GET.get("page"))
    return render(request, "nhsa/reconciliation_detail.html", {"run": run, "page": page})


@login_required
@require_GET
def reconciliation_export(request: HttpRequest, pk: int, file_format: str) -> HttpResponseBase:
    _require_officer(request.user)
    run = get_object_or_404(selectors.reconciliations_visible_to(request.user), pk=pk)
    return tabular_response(
        reconcile_services.DIFFERENCE_HEADER,
        reconcile_services.difference_rows(run),
        file_format=file_format,
        filename=f"platform-reconciliation-{run.pk}",
    )


@login_required
@require_POST
def difference_action(request: roles.AuthenticatedHttpRequest, pk: int, action: str) -> HttpResponse:
    _require_officer(request.user)
    difference = selectors.difference_visible_to(request.user, pk)
    if difference is None or action not in ("resend", "cancel", "accept"):
        raise Http404
    try:
        reconcile_services.difference_resolve(difference_id=difference.pk, actor=request.user, action=action)
    except DomainError as error:
        messages.error(request, str(error.message))
    else:
        messages.success(request, _("Difference #%(id)s resolved.") % {"id": difference.pk})
    return redirect("platform-reconciliation-detail", pk=difference.reconciliation_id)
