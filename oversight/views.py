"""Oversight pages: the re-check queue, notices and objections (staff), and the public notice pages.

Thin: scope with oversight.selectors, act with oversight.services. Objects outside the viewer's scope are
404, other roles 403. The public pages need no login, read only the published masked snapshot, are open only
during the notice period and are rate-limited per client address.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.cache import caches
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from enrollment import forms as enrollment_forms
from kernel import roles
from kernel.errors import DomainError
from kernel.tabular import tabular_response
from oversight import forms, selectors, services
from oversight.models import CorrectionState, RecheckState

logger = logging.getLogger(__name__)
# The public pages' request counts live in the cache every process shares (Redis in production): with the
# per-process "default" cache each web worker would count on its own and allow the limit once per worker.
RATE_LIMIT_CACHE = "shared"


def _require_rechecker(user: Any) -> None:
    if not selectors.may_recheck(user):
        raise PermissionDenied


def _require_clinic(user: Any) -> None:
    if not selectors.may_answer_corrections(user):
        raise PermissionDenied


def _require_officer(user: Any) -> None:
    if not selectors.may_handle_notices(user):
        raise PermissionDenied


def _error(request: HttpRequest, error: DomainError) -> None:
    messages.error(request, str(error.message))


# ---------------------------------------------------------------------------
# Re-checks
# ---------------------------------------------------------------------------


@login_required
@require_GET
def recheck_queue(request: HttpRequest) -> HttpResponse:
    _require_rechecker(request.user)
    state = request.GET.get("state", RecheckState.PENDING)
    if state not in (*RecheckState.values, "all"):
        state = RecheckState.PENDING
    samples = selectors.recheck_queue(request.user, state="" if state == "all" else state)
    page = Paginator(samples, 50).get_page(request.GET.get("page"))
    return render(
        request,
        "oversight/recheck_queue.html",
        {"page": page, "state": state, "states": [*RecheckState.choices, ("all", _("all"))]},
    )


@login_required
@require_GET
def recheck_detail(request: HttpRequest, pk: int) -> HttpResponse:
    _require_rechecker(request.user)
    sample = get_object_or_404(selectors.samples_visible_to(request.user), pk=pk)
    return render(
        request,
        "oversight/recheck_detail.html",
        {
            "sample": sample,
            "form": forms.RecheckForm(),
            "corrections": selectors.corrections_of(sample),
            "correction_days": settings.OVERSIGHT_CORRECTION_DAYS,
            "history": selectors.sample_history(sample),
        },
    )


@login_required
@require_POST
def recheck_decide(request: roles.AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    _require_rechecker(request.user)
    sample = get_object_or_404(selectors.samples_visible_to(request.user), pk=pk)
    form = forms.RecheckForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("Choose pass or fail, and give a reason for a failure."))
        return redirect("recheck-detail", pk=sample.pk)
    passed = form.cleaned_data["outcome"] == "pass"
    try:
        services.recheck_decide(
            sample_id=sample.pk,
            actor=request.user,
            passed=passed,
            reason=form.cleaned_data["reason"],
            # The correction radio keeps its choice on the page when the reviewer switches to pass: ignored then.
            correction="terminate" if passed else form.cleaned_data["correction"],
            codes=form.cleaned_data["codes"],
        )
    except DomainError as error:
        _error(request, error)
        return redirect("recheck-detail", pk=sample.pk)
    messages.success(request, _("Re-check of application #%(id)s recorded.") % {"id": sample.application_id})
    return redirect("recheck-queue")


@login_required
@require_http_methods(["GET", "POST"])
def recheck_correction(request: roles.AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    """The clinic's page of a re-check returned for correction: what is asked, and the answer form."""
    _require_clinic(request.user)
    sample = get_object_or_404(selectors.samples_for_clinic(request.user), pk=pk)
    if request.method == "POST":
        form = forms.CorrectionAnswerForm(request.POST)
        documents = enrollment_forms.DocumentFormSet(request.POST, request.FILES, prefix="doc")
        if form.is_valid() and documents.is_valid():
            try:
                services.recheck_answer(
                    sample_id=sample.pk,
                    actor=request.user,
                    answer=form.cleaned_data["answer"],
                    documents=enrollment_forms.uploaded_documents(documents),
                )
            except DomainError as error:
                enrollment_forms.add_domain_error(form, error)
            else:
                messages.success(
                    request,
                    _("Your answer was sent: application #%(id)s goes back to the re-check.")
                    % {"id": sample.application_id},
                )
                return redirect("home")
    else:
        form = forms.CorrectionAnswerForm()
        documents = enrollment_forms.DocumentFormSet(prefix="doc")
    corrections = selectors.corrections_of(sample)
    return render(
        request,
        "oversight/correction.html",
        {
            "sample": sample,
            "corrections": corrections,
            "open_request": next((c for c in corrections if c.state == CorrectionState.OPEN), None),
            "form": form,
            "documents": documents,
        },
    )


@login_required
@require_GET
def quality_export(request: HttpRequest) -> HttpResponseBase:
    _require_rechecker(request.user)
    return tabular_response(
        selectors.QUALITY_HEADER,
        selectors.quality_csv_rows(request.user),
        file_format="csv",
        filename="recheck-quality",
    )


# ---------------------------------------------------------------------------
# Notices and objections (officers)
# ---------------------------------------------------------------------------


@login_required
@require_GET
def notice_list(request: HttpRequest) -> HttpResponse:
    _require_officer(request.user)
    page = Paginator(selectors.notices_visible_to(request.user), 50).get_page(request.GET.get("page"))
    return render(
        request,
        "oversight/notice_list.html",
        {
            "page": page,
            "batches": selectors.publishable_batches(request.user)[:50],
            "today": timezone.localdate(),
            "form": forms.PublishForm(),
        },
    )


@login_required
@require_POST
def notice_publish(request: roles.AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    _require_officer(request.user)
    batch = selectors.batch_for_notice(request.user, pk)
    if batch is None:
        raise Http404
    form = forms.PublishForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("A notice runs between 5 and 30 days."))
        return redirect("notice-list")
    try:
        notice = services.notice_publish(batch_id=batch.pk, actor=request.user, days=form.cleaned_data["days"])
    except DomainError as error:
        _error(request, error)
        return redirect("notice-list")
    messages.success(request, _("The approved list is published until %(end)s.") % {"end": notice.ends_on})
    return redirect("notice-detail", pk=notice.pk)


@login_required
@require_GET
def notice_detail(request: HttpRequest, pk: int) -> HttpResponse:
    _require_officer(request.user)
    notice = get_object_or_404(selectors.notices_visible_to(request.user), pk=pk)
    entries = selectors.entries_with_objections(notice)
    return render(
        request,
        "oversight/notice_detail.html",
        {
            "notice": notice,
            "entries": entries,
            "objectable": [entry for entry in entries if not entry.withdrawn],
            "is_open": notice.is_open_on(timezone.localdate()),
            "objection_form": forms.ObjectionForm(),
        },
    )


@login_required
@require_GET
def notice_export(request: HttpRequest, pk: int, file_format: str) -> HttpResponseBase:
    _require_officer(request.user)
    notice = get_object_or_404(selectors.notices_visible_to(request.user), pk=pk)
    header = [_("no."), _("name"), _("ID number"), _("disease"), _("institution"), _("status")]
    rows = selectors.notice_export_rows(
        notice, held_label=_("under verification"), withdrawn_label=_("approval withdrawn after verification")
    )
    return tabular_response(header, rows, file_format=file_format, filename=f"notice-{notice.batch.period}")


@login_required
@require_POST
def objection_record(request: roles.AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    _require_officer(request.user)
    entry = selectors.entry_for_officer(request.user, pk)
    if entry is None:
        raise Http404
    form = forms.ObjectionForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("Say how the objection was received and what it says."))
        return redirect("notice-detail", pk=entry.notice_id)
    try:
        services.objection_record(entry_id=entry.pk, actor=request.user, **form.cleaned_data)
    except DomainError as error:
        _error(request, error)
    else:
        messages.success(
            request, _("Objection recorded: entry %(number)s is under verification.") % {"number": entry.number}
        )
    return redirect("notice-detail", pk=entry.notice_id)


@login_required
@require_POST
def objection_resolve(request: roles.AuthenticatedHttpRequest, pk: int, upheld: bool) -> HttpResponse:
    _require_officer(request.user)
    objection = selectors.objection_for_officer(request.user, pk)
    if objection is None:
        raise Http404
    form = forms.ResolveForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("Write the resolution: it is kept in the audit trail."))
        return redirect("notice-detail", pk=objection.entry.notice_id)
    try:
        services.objection_resolve(objection_id=objection.pk, actor=request.user, upheld=upheld, **form.cleaned_data)
    except DomainError as error:
        _error(request, error)
    else:
        messages.success(request, _("Objection resolved."))
    return redirect("notice-detail", pk=objection.entry.notice_id)


# ---------------------------------------------------------------------------
# Public pages (no login)
# ---------------------------------------------------------------------------


def _client_address(request: HttpRequest) -> str:
    for header in getattr(settings, "AXES_IPWARE_META_PRECEDENCE_ORDER", ["REMOTE_ADDR"]):
        value = request.META.get(header, "")
        if value:
            return value.split(",")[0].strip()[:64]
    return "unknown"


def _rate_limited(request: HttpRequest) -> bool:
    """A fixed one-minute window per client address, counted in the shared cache, so that every web process
    adds to the same count (``add`` then ``incr``: atomic in Redis). The cache server unreachable: the page is
    served unlimited rather than failing (logged)."""
    limit = settings.PUBLIC_NOTICE_REQUESTS_PER_MINUTE
    if limit <= 0:
        return False
    counts = caches[RATE_LIMIT_CACHE]
    key = f"public-notice:{_client_address(request)}:{int(timezone.now().timestamp() // 60)}"
    try:
        if counts.add(key, 1, timeout=90):
            return False
        return counts.incr(key) > limit
    except ValueError:  # the key expired between add and incr: a new window
        return False
    except Exception:  # noqa: BLE001 - the shared cache down must not take the public page down
        logger.warning("shared cache unreachable: public notice pages not rate-limited", exc_info=True)
        return False


def _too_many(request: HttpRequest) -> HttpResponse:
    response = render(request, "oversight/public_too_many.html", status=429)
    response["Retry-After"] = "60"
    return response


@require_GET
def public_notice_list(request: HttpRequest) -> HttpResponse:
    if _rate_limited(request):
        return _too_many(request)
    notices = selectors.public_notices_open(timezone.localdate())[:100]
    return render(request, "oversight/public_list.html", {"notices": notices})


@require_GET
def public_notice(request: HttpRequest, token: str) -> HttpResponse:
    if _rate_limited(request):
        return _too_many(request)
    notice = selectors.public_notice(token, timezone.localdate())
    if notice is None:
        raise Http404
    return render(request, "oversight/public_notice.html", {"notice": notice, "entries": selectors.entries_of(notice)})
