"""Thin web views: scope through selectors, act through services, render.

Each view validates with a form, calls one service (or a selector) and maps a
``DomainError`` to a form error or a message; nothing is decided here.
"""

from __future__ import annotations

from typing import Any

from csp.decorators import csp_update
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.functional import Promise
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from enrollment import forms, policies, selectors, services
from enrollment.models import ApplicationKind, Document, State
from kernel import roles
from kernel.errors import DomainError

# The order a clerk reads the states in: what needs them first.
STATE_ORDER: tuple[str, ...] = (
    State.RETURNED,
    State.SUBMITTED,
    State.DIAGNOSED,
    State.IN_REVIEW,
    State.APPROVED,
    State.EXPIRING,
    State.REJECTED,
    State.WITHDRAWN,
    State.EXPIRED,
    State.RENEWED,
    State.TERMINATED,
)
RENEWAL_HORIZON_DAYS = 180
HOME_TEMPLATES = {
    roles.CLINIC_STAFF: "enrollment/home_clinic.html",
    roles.PHYSICIAN: "enrollment/home_physician.html",
    roles.CENTER_OFFICER: "enrollment/home_officer.html",
    roles.REVIEWER: "enrollment/home_reviewer.html",
    roles.ADMIN: "enrollment/home_admin.html",
}


def _state_counts(queryset: Any) -> list[tuple[str, str | Promise, int]]:
    counts = selectors.states_summary(queryset)
    labels = dict(State.choices)
    return [(state, labels[state], counts.get(state, 0)) for state in STATE_ORDER]


# ---------------------------------------------------------------------------
# Home pages, one per role
# ---------------------------------------------------------------------------


@login_required
def home(request: roles.AuthenticatedHttpRequest) -> HttpResponse:
    user = request.user
    role = roles.primary_role(user)
    applications = selectors.applications_visible_to(user)
    context: dict[str, Any] = {
        "role": role,
        "counts": _state_counts(applications),
        **selectors.home_worklists(user, role, applications, renewal_horizon_days=RENEWAL_HORIZON_DAYS),
    }
    template = HOME_TEMPLATES.get(role or "", "enrollment/home_none.html")
    return render(request, template, context)


# ---------------------------------------------------------------------------
# The working list: filters and sort in the URL, the name / ID search by POST and a session token
# ---------------------------------------------------------------------------

LIST_SEARCH_SESSION_KEY = "list_searches"
LIST_SEARCH_TTL_SECONDS = 30 * 60
LIST_SEARCHES_KEPT = 10
# What a list URL may carry besides the filter set's own parameters.
LIST_EXTRA_KEYS = ("s", "page")


def _search_token_store(request: HttpRequest, text: str) -> str:
    """Keep a name / ID search in this user's session under a random token; the URL carries only the token."""
    import secrets
    import time

    searches = {
        token: entry
        for token, entry in request.session.get(LIST_SEARCH_SESSION_KEY, {}).items()
        if entry.get("expires", 0) > time.time()
    }
    token = secrets.token_urlsafe(9)
    searches[token] = {"text": text, "expires": time.time() + LIST_SEARCH_TTL_SECONDS}
    newest = sorted(searches.items(), key=lambda item: item[1]["expires"])[-LIST_SEARCHES_KEPT:]
    request.session[LIST_SEARCH_SESSION_KEY] = dict(newest)
    return token


def _search_token_text(request: HttpRequest, token: str) -> str | None:
    """The search a token stands for, or None when it is unknown here (another user's, expired)."""
    import time

    entry = request.session.get(LIST_SEARCH_SESSION_KEY, {}).get(token)
    if not entry or entry.get("expires", 0) <= time.time():
        return None
    return str(entry.get("text", ""))


def _list_query(data: Any, *, drop: tuple[str, ...] = ("page",), **changes: str) -> str:
    query = data.copy()
    for key in drop:
        query.pop(key, None)
    for key, value in changes.items():
        if value:
            query[key] = value
        else:
            query.pop(key, None)
    return query.urlencode()


def _sort_links(request: HttpRequest, filterset: Any) -> dict[str, dict[str, Any]]:
    """Per sort key of the list: its label, the direction in use and the link that sorts by it (filters kept)."""
    from enrollment import list_selectors

    ordering = list_selectors.current_ordering(filterset)
    columns = {}
    for key, label in list_selectors.sort_columns(filterset):
        next_key = "-" + key if ordering == key else key
        columns[key] = {
            "label": label,
            "direction": "ascending" if ordering == key else "descending" if ordering == "-" + key else "none",
            "href": "?" + _list_query(request.GET, o=next_key),
        }
    return columns


@login_required
@require_http_methods(["GET", "POST"])
def application_list(request: roles.AuthenticatedHttpRequest) -> HttpResponse:
    """The scoped working list: filters, sort and page are GET parameters (a link to share or bookmark).

    A search by name or 身份证号 is POSTed and kept in the user's session under a short-lived random token;
    the URL carries only ``s=<token>``, never the text (no ID number or name in URLs, access logs or a
    forwarded link). The token means nothing in another user's session.
    """
    from enrollment import list_selectors

    if request.method == "POST":
        search = forms.ListSearchForm(request.POST)
        filters = QueryDict(request.POST.get("filters", ""), mutable=True)
        if search.is_valid() and search.cleaned_data["q"]:
            token = _search_token_store(request, search.cleaned_data["q"])
            return redirect(reverse("application-list") + "?" + _list_query(filters, drop=("page", "s"), s=token))
        return redirect(reverse("application-list") + "?" + _list_query(filters, drop=("page", "s")))
    user = request.user
    filterset = list_selectors.application_list_filter(user, request.GET)
    token = request.GET.get("s", "")
    text = _search_token_text(request, token) if token else ""
    if text is None:
        messages.info(request, _("That search has expired or belongs to someone else; search again."))
        text = ""
    rows = list_selectors.application_list_rows(filterset, text=text)
    page = Paginator(rows, list_selectors.LIST_PAGE_SIZE).get_page(request.GET.get("page"))
    columns = _sort_links(request, filterset)
    query = _list_query(request.GET)
    return render(
        request,
        "enrollment/application_list.html",
        {
            "filterset": filterset,
            "search_form": forms.ListSearchForm(initial={"q": text}),
            "searching": bool(text),
            "page": page,
            "query": query,
            "filters_query": _list_query(request.GET, drop=("page", "s")),
            "columns": columns,
            "saved_views": list_selectors.saved_views_of(user, "applications"),
            "save_form": forms.SavedViewForm(),
            "may_export_full": roles.has_any_role(user, roles.CLINIC_STAFF, roles.ADMIN),
        },
    )


@login_required
@require_GET
def renewal_list(request: HttpRequest) -> HttpResponse:
    """The renewal worklist: the viewer's enrollments whose validity ends within the horizon, filtered by
    disease, institution, region and end date, sorted and paged by GET parameters only (no name or ID number
    is ever part of its links)."""
    from enrollment import list_selectors

    filterset = list_selectors.renewal_list_filter(request.user, request.GET, within_days=RENEWAL_HORIZON_DAYS)
    rows = list_selectors.renewal_list_rows(filterset)
    page = Paginator(rows, list_selectors.LIST_PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request,
        "enrollment/renewal_list.html",
        {
            "filterset": filterset,
            "page": page,
            "query": _list_query(request.GET),
            "filters_query": _list_query(request.GET, drop=("page",)),
            "columns": _sort_links(request, filterset),
            "may_file": roles.has_any_role(request.user, roles.CLINIC_STAFF, roles.ADMIN),
        },
    )


@login_required
@require_GET
def application_list_export(request: roles.AuthenticatedHttpRequest, file_format: str) -> Any:
    """The list as filtered (and searched), within the viewer's scope, as CSV or XLSX (formula-safe).

    ID numbers are masked unless ``full_ids=1`` is asked by a role that sees them on the application page;
    then only those rows carry them, and each person so handed out is written to the access log.
    """
    from enrollment import list_selectors
    from kernel.tabular import tabular_response

    if file_format not in ("csv", "xlsx"):
        raise Http404
    user = request.user
    filterset = list_selectors.application_list_filter(user, request.GET)
    token = request.GET.get("s", "")
    text = (_search_token_text(request, token) or "") if token else ""
    rows = list_selectors.application_list_rows(filterset, text=text)
    full = request.GET.get("full_ids") == "1" and roles.has_any_role(user, roles.CLINIC_STAFF, roles.ADMIN)
    chunks = list_selectors.export_chunks(user, rows, full_id_numbers=full)
    reason = "application list export: " + (_list_query(request.GET, drop=("page", "s", "full_ids")) or "all")
    return tabular_response(
        list_selectors.export_header(),
        services.application_list_export_rows(actor=user, chunks=chunks, reason=reason),
        file_format=file_format,
        filename=f"applications-{timezone.localdate():%Y%m%d}",
    )


@login_required
@require_POST
def saved_view_save(request: roles.AuthenticatedHttpRequest) -> HttpResponse:
    from enrollment import list_selectors

    form = forms.SavedViewForm(request.POST)
    query = request.POST.get("filters", "")
    if form.is_valid():
        allowed = [*list_selectors.application_list_filter(request.user, None).form.fields, "o"]
        keys = set()
        for name in allowed:
            keys.update({name, f"{name}_after", f"{name}_before"})
        try:
            view = services.saved_view_save(
                actor=request.user, page="applications", name=form.cleaned_data["name"], query=query, allowed_keys=keys
            )
        except DomainError as error:
            messages.error(request, str(error.message))
        else:
            messages.success(request, _("The view “%(name)s” was saved.") % {"name": view.name})
            return redirect(reverse("application-list") + ("?" + view.query if view.query else ""))
    else:
        messages.error(request, _("Give the view a name."))
    return redirect(reverse("application-list") + ("?" + query if query else ""))


@login_required
@require_POST
def saved_view_delete(request: roles.AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    try:
        view = services.saved_view_delete(actor=request.user, view_id=pk)
    except DomainError as error:
        if error.code == "not_found":
            raise Http404  # another user's view: not revealed
        raise
    messages.success(request, _("The view “%(name)s” was deleted.") % {"name": view.name})
    return redirect("application-list")


# ---------------------------------------------------------------------------
# Filing
# ---------------------------------------------------------------------------


def _require_filer(user: Any) -> None:
    if not roles.has_any_role(user, roles.CLINIC_STAFF, roles.ADMIN):
        raise PermissionDenied


@login_required
@require_http_methods(["GET", "POST"])
def application_file(request: roles.AuthenticatedHttpRequest) -> HttpResponse:
    """Look up the person, pick disease and institution, see the checklist, then submit.

    The buttons post ``action``: ``lookup`` (fill in a known person), ``check`` (show the
    checklist) or ``submit``. With JavaScript the first two happen as the clerk types.
    """
    user = request.user
    _require_filer(user)
    if request.method == "POST":
        form = forms.FilingForm(request.POST, user=user)
        documents = forms.DocumentFormSet(request.POST, request.FILES, prefix="doc")
        action = request.POST.get("action", "submit")
        valid = form.is_valid() and documents.is_valid()
        checks = _checklist(form, documents, user) if form.is_valid() else None
        if action == "lookup" or action == "check":
            if action == "lookup" and form.cleaned_data.get("id_number") and form.person is not None:
                _record_lookup(user, form.person)
                form = forms.FilingForm(_prefilled(request.POST, form.person), user=user)
                form.is_valid()
            return _render_filing(request, form, documents, checks)
        if valid:
            try:
                details = None
                if form.person_changes():
                    # A new person has both (FilingForm.clean); a known one keeps what the clerk left empty.
                    name, insured_region = form.cleaned_data["name"], form.cleaned_data["insured_region"]
                    if form.person is not None:
                        name = name or form.person.name
                        insured_region = insured_region or form.person.insured_region
                    details = services.PersonDetails(
                        id_number=form.cleaned_data["id_number"],
                        name=name,
                        insured_region=insured_region,
                        insurance_type=form.cleaned_data["insurance_type"],
                        # Left empty: keep what is on record (the service's None).
                        insurance_number=form.cleaned_data["insurance_number"] or None,
                        phone=form.cleaned_data["phone"] or None,
                    )
                # One transaction: a refused filing leaves the person as it was.
                application = services.application_file_with_person(
                    person=form.person,
                    person_details=details,
                    disease=form.cleaned_data["disease"],
                    treating_institution=form.cleaned_data["treating_institution"],
                    documents=forms.uploaded_documents(documents),
                    actor=user,
                )
            except DomainError as error:
                forms.add_domain_error(form, error)
            else:
                messages.success(request, _("Application #%(id)s was filed.") % {"id": application.pk})
                return redirect("application-detail", pk=application.pk)
        return _render_filing(request, form, documents, checks)
    form = forms.FilingForm(initial={"treating_institution": selectors.user_institution(user)}, user=user)
    return _render_filing(request, form, forms.DocumentFormSet(prefix="doc"), None)


def _record_lookup(user: Any, person: Any) -> None:
    """Showing a registered person's record to whoever typed their full number is itself logged
    (docs/design.md: Access and privacy)."""
    from enrollment.models import AccessPurpose

    services.personal_data_access_record(viewer=user, person=person, purpose=AccessPurpose.PERSON_LOOKUP)


def _prefilled(data: Any, person: Any) -> Any:
    data = data.copy()
    data["name"] = person.name
    data["insured_region"] = str(person.insured_region_id)
    data["insurance_type"] = person.insurance_type
    data["insurance_number"] = person.insurance_number
    data["phone"] = person.phone
    return data


def _checklist(form: forms.FilingForm, documents: Any, user: Any) -> list[selectors.EligibilityCheck] | None:
    disease = form.cleaned_data.get("disease")
    number = form.cleaned_data.get("id_number")
    if disease is None or not number:
        return None
    doc_types = [f.cleaned_data.get("doc_type") for f in documents.forms if f.is_valid() and f.cleaned_data.get("file")]
    return selectors.filing_checklist(
        user=user,
        id_number=number,
        disease=disease,
        insured_region=form.cleaned_data.get("insured_region") or (form.person.insured_region if form.person else None),
        document_types=doc_types,
        treating_institution=form.cleaned_data.get("treating_institution"),
    )


def _render_filing(request: HttpRequest, form: Any, documents: Any, checks: Any) -> HttpResponse:
    return render(
        request,
        "enrollment/application_file.html",
        {
            "form": form,
            "documents": documents,
            "checks": checks,
            "person": getattr(form, "person", None),
            "diseases": selectors.diseases_active(),
        },
    )


@login_required
@require_POST
def filing_check(request: HttpRequest) -> JsonResponse:
    """The number checked as it is typed, the person prefilled, and the checklist: JSON for the filing page.

    POST, so that ID numbers never appear in URLs and therefore in access logs (docs/design.md: Access and privacy).
    """
    user = request.user
    _require_filer(user)
    data = request.POST
    answer = selectors.filing_check_answer(
        user,
        id_number=data.get("id_number", ""),
        disease_id=data.get("disease") or "",
        insured_region_id=data.get("insured_region") or "",
        treating_institution_id=data.get("treating_institution") or "",
        document_types=data.getlist("doc_type"),
    )
    if answer.person is not None:
        _record_lookup(user, answer.person)
    return JsonResponse(answer.result)


# ---------------------------------------------------------------------------
# One application: page, diagnosis, actions, documents
# ---------------------------------------------------------------------------


def _visible_application(request: HttpRequest, pk: int) -> Any:
    return get_object_or_404(selectors.applications_visible_to(request.user), pk=pk)


def _render_detail(
    request: roles.AuthenticatedHttpRequest, application: Any, bound: dict[str, Any] | None = None
) -> HttpResponse:
    user = request.user
    actions = policies.application_actions_for(user, application)
    action_forms = []
    for name in actions:
        if name in ("diagnose", "renew"):
            continue
        form = (bound or {}).get(name) or forms.ACTION_FORMS[name](prefix=name)
        action_forms.append((name, form))
    status = 400 if bound else 200
    full_id = selectors.may_see_full_id_number(user, application)
    if full_id:
        from enrollment.models import AccessPurpose

        services.personal_data_access_record(
            viewer=user, person=application.person, purpose=AccessPurpose.APPLICATION_DETAIL, application=application
        )
    return render(
        request,
        "enrollment/application_detail.html",
        {
            "application": application,
            "full_id": full_id,
            "reminders": selectors.reminders_of(application) if selectors.on_filing_side(user, application) else [],
            "documents": application.documents.all(),
            "timeline": selectors.application_timeline(application),
            "actions": actions,
            "action_forms": action_forms,
            "renewals": application.renewals.all(),
            "panels": [panel for hook in selectors.APPLICATION_PANELS if (panel := hook(request, application))],
        },
        status=status,
    )


@login_required
@require_GET
def application_detail(request: roles.AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    return _render_detail(request, _visible_application(request, pk))


@login_required
@require_http_methods(["GET", "POST"])
def application_diagnose(request: roles.AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    application = _visible_application(request, pk)
    if "diagnose" not in policies.application_actions_for(request.user, application):
        raise PermissionDenied
    if request.method == "POST":
        form = forms.DiagnosisForm(request.POST)
        documents = forms.DocumentFormSet(request.POST, request.FILES, prefix="doc")
        if form.is_valid() and documents.is_valid():
            try:
                services.application_diagnose(
                    application_id=application.pk,
                    actor=request.user,
                    icd10_code=form.cleaned_data["icd10_code"],
                    diagnosis_date=form.cleaned_data["diagnosis_date"],
                    documents=forms.uploaded_documents(documents),
                )
            except DomainError as error:
                forms.add_domain_error(form, error)
            else:
                messages.success(request, _("The diagnosis was recorded."))
                return redirect("application-detail", pk=application.pk)
    else:
        form = forms.DiagnosisForm()
        documents = forms.DocumentFormSet(prefix="doc")
    return render(
        request,
        "enrollment/application_diagnose.html",
        {
            "application": application,
            "form": form,
            "documents": documents,
            "existing_documents": application.documents.all(),
            "physician": getattr(request.user, "physician", None),
        },
    )


def _run_action(name: str, application: Any, form: Any, user: Any) -> Any:
    data = form.cleaned_data
    if name == "withdraw":
        return services.application_withdraw(application_id=application.pk, actor=user, reason=data["reason"])
    if name == "resubmit":
        documents = [(data["doc_type"], data["file"])] if data.get("file") else []
        return services.application_resubmit(
            application_id=application.pk, actor=user, note=data["note"], documents=documents
        )
    if name == "terminate":
        return services.application_terminate(
            application_id=application.pk,
            actor=user,
            reason=data["reason"],
            note=data["note"],
            ended_on=data.get("ended_on"),
        )
    registered = services.APPLICATION_ACTION_SERVICES.get(name)
    if registered is not None:  # e.g. approve_immediately, which the reviews app owns
        # A registered form may name the service's arguments itself (the reviews app's reject / return).
        arguments = form.service_kwargs() if hasattr(form, "service_kwargs") else {"reason": data["note"]}
        return registered(application_id=application.pk, actor=user, **arguments)
    raise Http404


@login_required
@require_POST
def application_action(request: roles.AuthenticatedHttpRequest, pk: int, action: str) -> HttpResponse:
    application = _visible_application(request, pk)
    if action not in forms.ACTION_FORMS:
        raise Http404
    if action not in policies.application_actions_for(request.user, application):
        raise PermissionDenied
    form = forms.ACTION_FORMS[action](request.POST, request.FILES, prefix=action)
    if form.is_valid():
        try:
            result = _run_action(action, application, form, request.user)
        except DomainError as error:
            forms.add_domain_error(form, error)
        else:
            messages.success(
                request, _("Done: the application is now %(state)s.") % {"state": result.get_state_display()}
            )
            return redirect("application-detail", pk=application.pk)
    return _render_detail(request, application, bound={action: form})


@login_required
@require_GET
def document_download(request: roles.AuthenticatedHttpRequest, pk: int) -> FileResponse:
    """A diagnosis document opened: every opening is written to the access log
    (docs/design.md: Access and privacy; issue 18 item 9)."""
    from enrollment.models import AccessPurpose

    document = get_object_or_404(
        Document.objects.filter(application__in=selectors.applications_visible_to(request.user)).select_related(
            "application__person"
        ),
        pk=pk,
    )
    handle = document.file.open("rb")  # a missing file fails here, before anything is logged as seen
    try:
        services.personal_data_access_record(
            viewer=request.user,
            person=document.application.person,
            application=document.application,
            purpose=AccessPurpose.DOCUMENT_VIEW,
            reason=f"document #{document.pk} ({document.doc_type})",
        )
    except Exception:
        handle.close()
        raise
    return FileResponse(handle, content_type=document.content_type, filename=document.original_name)


# ---------------------------------------------------------------------------
# Assets that come from installed packages
# ---------------------------------------------------------------------------


@require_GET
def plotly_js(request: HttpRequest) -> FileResponse:
    """plotly.min.js from the installed plotly wheel: no CDN, nothing copied into the repository."""
    from pathlib import Path

    import plotly

    path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    response = FileResponse(path.open("rb"), content_type="text/javascript; charset=utf-8")
    response["Cache-Control"] = "public, max-age=86400"
    return response


@require_GET
def favicon(request: HttpRequest) -> HttpResponse:
    """/favicon.ico, which browsers ask for on their own: the SVG icon in static/ (linked in base.html too)."""
    from django.templatetags.static import static

    response = redirect(static("favicon.svg"))
    response["Cache-Control"] = "public, max-age=86400"
    return response


def plotly_js_url() -> str:
    import plotly

    return reverse("plotly-js") + f"?v={plotly.__version__}"


# ---------------------------------------------------------------------------
# Renewal (复审) and reminders
# ---------------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def application_renew(request: roles.AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    """File the renewal of an expiring enrollment, prefilled from it; the physician then re-attests."""
    previous = _visible_application(request, pk)
    if "renew" not in policies.application_actions_for(request.user, previous):
        raise PermissionDenied
    if request.method == "POST":
        form = forms.RenewalForm(request.POST)
        if form.is_valid():
            try:
                renewal = services.application_renew(
                    application_id=previous.pk,
                    actor=request.user,
                    treating_institution=form.cleaned_data["treating_institution"],
                )
            except DomainError as error:
                forms.add_domain_error(form, error)
            else:
                messages.success(request, _("Renewal #%(id)s was filed.") % {"id": renewal.pk})
                return redirect("application-detail", pk=renewal.pk)
    else:
        form = forms.RenewalForm(initial={"treating_institution": previous.treating_institution})
    chosen = getattr(form, "cleaned_data", {}).get("treating_institution")
    checks = selectors.filing_checklist(
        user=request.user,
        id_number=previous.person.id_number,
        disease=previous.disease,
        kind=ApplicationKind.RENEWAL,
        renews=previous,
        treating_institution=chosen or previous.treating_institution,
    )
    return render(
        request,
        "enrollment/application_renew.html",
        {"previous": previous, "form": form, "checks": checks, "documents": previous.documents.all()},
    )


@login_required
@require_POST
def reminder_read(request: roles.AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    try:
        services.reminder_mark_read(reminder_id=pk, actor=request.user)
    except DomainError as error:
        if error.code == "not_found":
            # Another institution's reminder: 404, like every out-of-scope id (docs/design.md: Access and privacy).
            raise Http404
        messages.error(request, str(error.message))
    return redirect("home")


# ---------------------------------------------------------------------------
# Reports for administrators: tables, charts (plotly, served from its wheel) and CSV
# ---------------------------------------------------------------------------


def _require_admin(user: Any) -> None:
    if not roles.has_any_role(user, roles.ADMIN):
        raise PermissionDenied


def _report_months(request: HttpRequest) -> int:
    raw = request.GET.get("months", "12")
    return min(36, max(1, int(raw))) if raw.isdigit() else 12


def _chart(table: Any) -> dict[str, Any] | None:
    """The table's plotly figure, or None when there is nothing to draw (the page says so instead)."""
    from enrollment import charts

    return charts.report_figure(table) if charts.has_data(table) else None


@login_required
@require_GET
@csp_update({"style-src": ["'unsafe-inline'"]})  # plotly.js injects the styles of its hover labels and toolbar
def reports(request: HttpRequest) -> HttpResponse:
    from enrollment import report_selectors

    _require_admin(request.user)
    months = _report_months(request)
    tables = [report_selectors.report(name, request.user, months=months) for name in report_selectors.REPORTS]
    return render(
        request,
        "enrollment/reports.html",
        {
            "tables": [(t, _chart(t)) for t in tables],
            "months": months,
            "month_choices": (3, 6, 12, 24, 36),
            "panels": [panel for hook in selectors.REPORT_PANELS if (panel := hook(request))],
        },
    )


@login_required
@require_GET
def report_csv(request: HttpRequest, name: str) -> HttpResponse:
    from enrollment import report_selectors
    from kernel.tabular import csv_chunks  # the one CSV writer: BOM for Excel, no text cell read as a formula

    _require_admin(request.user)
    if name not in report_selectors.REPORTS:
        raise Http404
    table = report_selectors.report(name, request.user, months=_report_months(request))
    header = [str(label) for _key, label in table.columns]
    rows = ([row[key] for key, _label in table.columns] for row in table.rows)
    response = HttpResponse(b"".join(csv_chunks(header, rows)), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{name}.csv"'
    return response
