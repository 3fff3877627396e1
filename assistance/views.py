"""Web pages of the assistance app: the high-cost alert worklist, settlement file imports, the printable
person-month statement, report exports. Thin: scope with assistance.selectors, act with assistance.services;
objects outside the viewer's scope are 404."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from assistance import reports, selectors, services
from assistance.forms import AlertActionForm, SettlementUploadForm
from assistance.models import AlertState, SettlementRowStatus
from kernel import roles
from kernel.errors import DomainError
from kernel.tabular import csv_chunks
from kernel.uploads import report_context, request_commit_from


def _require_worker(user: Any) -> None:
    if not selectors.may_work_assistance(user):
        raise PermissionDenied


@login_required
@require_GET
def alert_worklist(request: HttpRequest) -> HttpResponse:
    """高额费用预警: open alerts, persons with a support category first, then the highest amounts."""
    _require_worker(request.user)
    state = request.GET.get("state", "")
    state = state if state in AlertState.values else ""
    page = Paginator(selectors.alert_worklist(request.user, state=state), 50).get_page(request.GET.get("page"))
    return render(
        request,
        "assistance/alerts.html",
        {
            "page": page,
            "state": state,
            "states": AlertState.choices,
            "counts": selectors.alert_counts(request.user),
            "query": f"state={state}" if state else "",
            "form": AlertActionForm(),
        },
    )


@login_required
@require_POST
def alert_action(request: roles.AuthenticatedHttpRequest, pk: int, action: str) -> HttpResponse:
    _require_worker(request.user)
    alert = get_object_or_404(selectors.alerts_visible_to(request.user), pk=pk)
    form = AlertActionForm(request.POST)
    note = form.cleaned_data["note"] if form.is_valid() else ""
    try:
        services.alert_act(alert_id=alert.pk, action=action, actor=request.user, note=note)
    except DomainError as error:
        messages.error(request, str(error.message))
    else:
        messages.success(request, _("Alert updated."))
    return redirect("cost-alerts")


@login_required
@require_http_methods(["GET", "POST"])
def import_list(request: roles.AuthenticatedHttpRequest) -> HttpResponse:
    _require_worker(request.user)
    form = SettlementUploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        try:
            record = services.settlement_import_create(name=upload.name, content=upload.read(), actor=request.user)
        except DomainError as error:
            form.add_error("file", str(error.message))
        else:
            messages.success(request, _("The file was uploaded; the dry run has started."))
            return redirect("settlement-import-detail", pk=record.pk)
    page = Paginator(selectors.settlement_imports_visible_to(request.user), 50).get_page(request.GET.get("page"))
    return render(request, "assistance/imports.html", {"form": form, "page": page}, status=400 if form.errors else 200)


@login_required
@require_GET
def import_detail(request: roles.AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    _require_worker(request.user)
    record = get_object_or_404(selectors.settlement_imports_visible_to(request.user), pk=pk)
    status, context = report_context(request, record, SettlementRowStatus)
    rows = selectors.settlement_import_rows(record, status or None)
    page = Paginator(rows, 100).get_page(request.GET.get("page"))
    return render(request, "assistance/import_detail.html", {"record": record, "page": page, **context})


@login_required
@require_POST
def import_commit(request: roles.AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    _require_worker(request.user)
    record = get_object_or_404(selectors.settlement_imports_visible_to(request.user), pk=pk)
    request_commit_from(
        request, lambda: services.settlement_import_request_commit(import_id=record.pk, actor=request.user)
    )
    return redirect("settlement-import-detail", pk=record.pk)


def _period(request: HttpRequest, months: list[dt.date]) -> dt.date:
    raw = request.GET.get("period", "")
    try:
        return services.parse_period(raw)
    except DomainError:
        return months[0] if months else timezone.localdate().replace(day=1)


@login_required
@require_GET
def statement(request: HttpRequest, pk: int) -> HttpResponse:
    """一站式结算单: a person's month of settlements and assistance, printable (print stylesheet)."""
    _require_worker(request.user)
    person = get_object_or_404(selectors.persons_visible_to(request.user), pk=pk)
    months = selectors.person_months(person)
    period = _period(request, months)
    return render(
        request,
        "assistance/statement.html",
        {"statement": selectors.statement(person, period), "months": months, "printed_at": timezone.localtime()},
    )


@login_required
@require_GET
def report_csv(request: HttpRequest, name: str) -> HttpResponse:
    _require_worker(request.user)
    if name not in reports.TABLES:
        raise Http404
    table = reports.table(name, request.user, months=reports.months_param(request.GET.get("months")))
    header = [str(label) for _key, label in table.columns]
    rows = ([row[key] for key, _label in table.columns] for row in table.rows)
    response = HttpResponse(b"".join(csv_chunks(header, rows)), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="assistance-{name}.csv"'
    return response
