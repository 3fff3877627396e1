"""Web pages of the interop app: roster imports (upload, dry run, report, commit) and the hospital's
assisted-filing worklist (合办帮办).

Thin like enrollment/views.py: scope with interop.selectors, act with interop.services, map a
``DomainError`` to a form error or a message. Objects outside the viewer's scope are 404.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from enrollment.forms import add_domain_error
from interop import selectors, services
from interop.models import FilingState, RowAction, RowStatus
from kernel import roles
from kernel.errors import DomainError
from kernel.tabular import tabular_response
from kernel.uploads import report_context, request_commit_from, upload_file_field

ROWS_PER_PAGE = 100


class RosterUploadForm(forms.Form):
    file = upload_file_field(
        gettext_lazy("roster file"), gettext_lazy("CSV (UTF-8, UTF-8 with BOM or GBK) or XLSX, with a header row.")
    )


class DismissForm(forms.Form):
    reason = forms.CharField(label=gettext_lazy("reason"), max_length=500)


def _require_importer(user: Any) -> None:
    if not selectors.may_import(user):
        raise PermissionDenied


def _require_worklist(user: Any, *allowed: str) -> None:
    if not roles.has_any_role(user, *(allowed or (roles.CLINIC_STAFF, roles.CENTER_OFFICER, roles.ADMIN))):
        raise PermissionDenied


# ---------------------------------------------------------------------------
# Roster imports
# ---------------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def roster_list(request: roles.AuthenticatedHttpRequest) -> HttpResponse:
    """The imports this user may see, and the upload form (the dry run starts at once)."""
    _require_importer(request.user)
    form = RosterUploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        try:
            roster = services.roster_import_create(name=upload.name, content=upload.read(), actor=request.user)
        except DomainError as error:
            add_domain_error(form, error)
        else:
            messages.success(request, _("The roster was uploaded; the dry run has started."))
            return redirect("roster-detail", pk=roster.pk)
    page = Paginator(selectors.roster_imports_visible_to(request.user), 50).get_page(request.GET.get("page"))
    return render(
        request,
        "interop/roster_list.html",
        {"form": form, "page": page, "query": ""},
        status=400 if form.errors else 200,
    )


@login_required
@require_GET
def roster_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """State and progress, counts, the per-row report (filter by status) and the commit button."""
    _require_importer(request.user)
    roster = get_object_or_404(selectors.roster_imports_visible_to(request.user), pk=pk)
    status, context = report_context(request, roster, RowStatus)
    page = Paginator(selectors.roster_rows(roster, status or None), ROWS_PER_PAGE).get_page(request.GET.get("page"))
    by_action = (roster.counts or {}).get("by_action", {})
    actions = [(label, by_action[value]) for value, label in RowAction.choices if value in by_action]
    return render(
        request, "interop/roster_detail.html", {"roster": roster, "actions": actions, "page": page, **context}
    )


@login_required
@require_POST
def roster_commit(request: roles.AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    _require_importer(request.user)
    roster = get_object_or_404(selectors.roster_imports_visible_to(request.user), pk=pk)
    request_commit_from(request, lambda: services.roster_import_request_commit(import_id=roster.pk, actor=request.user))
    return redirect("roster-detail", pk=roster.pk)


@login_required
@require_GET
def roster_report(request: HttpRequest, pk: int, file_format: str) -> HttpResponseBase:
    """The whole report as CSV or XLSX (ID numbers masked)."""
    _require_importer(request.user)
    roster = get_object_or_404(selectors.roster_imports_visible_to(request.user), pk=pk)
    return tabular_response(
        selectors.ROSTER_REPORT_HEADER,
        selectors.roster_report_rows(roster),
        file_format=file_format,
        filename=f"roster-{roster.pk}-report",
    )


# ---------------------------------------------------------------------------
# The assisted-filing worklist (合办帮办)
# ---------------------------------------------------------------------------


@login_required
@require_GET
def worklist(request: HttpRequest) -> HttpResponse:
    """Open items of the user's hospital (oldest first) and the ones closed most recently."""
    _require_worklist(request.user)
    visible = selectors.assisted_filings_visible_to(request.user)
    page = Paginator(visible.filter(state=FilingState.OPEN).order_by("created_at", "id"), 50).get_page(
        request.GET.get("page")
    )
    closed = visible.exclude(state=FilingState.OPEN).order_by("-closed_at", "-id")[:20]
    return render(
        request,
        "interop/worklist.html",
        {
            "page": page,
            "query": "",
            "closed": closed,
            "may_file": roles.has_any_role(request.user, roles.CLINIC_STAFF, roles.ADMIN),
            "dismiss_form": DismissForm(),
        },
    )


@login_required
@require_POST
def worklist_file(request: roles.AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    """One click: the application is filed through the normal filing service (its rules apply)."""
    _require_worklist(request.user, roles.CLINIC_STAFF, roles.ADMIN)
    filing = get_object_or_404(selectors.assisted_filings_visible_to(request.user), pk=pk)
    try:
        filing = services.assisted_filing_file(filing_id=filing.pk, actor=request.user)
    except DomainError as error:
        messages.error(
            request,
            _("%(person)s · %(disease)s could not be filed: %(message)s")
            % {"person": filing.person.name, "disease": filing.disease.name, "message": error.message},
        )
        return redirect("worklist")
    messages.success(
        request,
        _("Application #%(id)s filed for %(person)s.") % {"id": filing.application_id, "person": filing.person.name},
    )
    return redirect("application-detail", pk=filing.application_id)


@login_required
@require_POST
def worklist_dismiss(request: roles.AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    _require_worklist(request.user)
    filing = get_object_or_404(selectors.assisted_filings_visible_to(request.user), pk=pk)
    form = DismissForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("Say why the item is dismissed."))
        return redirect("worklist")
    try:
        services.assisted_filing_dismiss(filing_id=filing.pk, actor=request.user, reason=form.cleaned_data["reason"])
    except DomainError as error:
        messages.error(request, str(error.message))
    else:
        messages.success(request, _("The item was taken off the worklist."))
    return redirect("worklist")
