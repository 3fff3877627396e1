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
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from enrollment import forms, selectors, services
from enrollment.models import ApplicationKind, Document, Institution, Region, State
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


def _state_counts(queryset: Any) -> list[tuple[str, str, int]]:
    counts = selectors.states_summary(queryset)
    labels = dict(State.choices)
    return [(state, labels[state], counts.get(state, 0)) for state in STATE_ORDER]


# ---------------------------------------------------------------------------
# Home pages, one per role
# ---------------------------------------------------------------------------


@login_required
def home(request: HttpRequest) -> HttpResponse:
    user = request.user
    role = roles.primary_role(user)
    applications = selectors.applications_visible_to(user)
    context: dict[str, Any] = {"role": role, "counts": _state_counts(applications)}
    if role == roles.CLINIC_STAFF:
        context["returned"] = applications.filter(state=State.RETURNED).order_by("filed_at")[:50]
        context["recent"] = applications.exclude(state=State.RETURNED)[:20]
        context["renewals"] = selectors.renewal_worklist_for(user, within_days=RENEWAL_HORIZON_DAYS)[:50]
        context["inbox"] = selectors.reminder_inbox(user).filter(read_at__isnull=True)[:20]
        template = "enrollment/home_clinic.html"
    elif role == roles.PHYSICIAN:
        context["waiting"] = applications.filter(state=State.SUBMITTED).order_by("filed_at")[:50]
        context["recent"] = applications.filter(diagnosed_by=user).order_by("-diagnosed_at")[:20]
        template = "enrollment/home_physician.html"
    elif role == roles.CENTER_OFFICER:
        context["waiting"] = selectors.reviewed_on_the_spot(applications.filter(state=State.DIAGNOSED)).order_by(
            "diagnosed_at"
        )[:50]
        context["recent"] = applications[:20]
        template = "enrollment/home_officer.html"
    elif role == roles.REVIEWER:
        context["in_review"] = applications.filter(state=State.IN_REVIEW).order_by("diagnosed_at")[:20]
        template = "enrollment/home_reviewer.html"
    elif role == roles.ADMIN:
        context["recent"] = applications[:20]
        template = "enrollment/home_admin.html"
    else:
        template = "enrollment/home_none.html"
    return render(request, template, context)


@login_required
@require_http_methods(["GET", "POST"])
def application_list(request: HttpRequest) -> HttpResponse:
    """The scoped list. The search box posts, so that an ID number typed into it never lands in a URL
    (and so in an access log, §10); the state filter and the pages are plain links."""
    data = request.POST if request.method == "POST" else request.GET
    form = forms.ApplicationFilterForm(data or None)
    queryset = selectors.applications_search(selectors.applications_visible_to(request.user))
    state = ""
    if form.is_valid():
        state = form.cleaned_data["state"]
        text = form.cleaned_data["q"] if request.method == "POST" else ""
        queryset = selectors.applications_search(queryset, state=state, text=text)
    page = Paginator(queryset, 50).get_page(request.GET.get("page"))
    query = f"state={state}" if state else ""
    return render(
        request,
        "enrollment/application_list.html",
        {"form": form, "page": page, "query": query},
    )


# ---------------------------------------------------------------------------
# Filing
# ---------------------------------------------------------------------------


def _require_filer(user: Any) -> None:
    if not roles.has_any_role(user, roles.CLINIC_STAFF, roles.ADMIN):
        raise PermissionDenied


@login_required
@require_http_methods(["GET", "POST"])
def application_file(request: HttpRequest) -> HttpResponse:
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
                if form.person_changes():
                    form.person = services.person_register(
                        id_number=form.cleaned_data["id_number"],
                        name=form.cleaned_data["name"] or form.person.name,
                        insured_region=form.cleaned_data["insured_region"] or form.person.insured_region,
                        insurance_type=form.cleaned_data["insurance_type"],
                        # Left empty: keep what is on record (the service's None).
                        insurance_number=form.cleaned_data["insurance_number"] or None,
                        phone=form.cleaned_data["phone"] or None,
                        actor=user,
                    )
                application = services.application_submit(
                    person=form.person,
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
    """Showing a registered person's record to whoever typed their full number is itself logged (§10)."""
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

    POST, so that ID numbers never appear in URLs and therefore in access logs (§10).
    """
    user = request.user
    _require_filer(user)
    from enrollment.idnumbers import parse_id_number

    data = request.POST
    raw = data.get("id_number", "")
    result: dict[str, Any] = {
        "id_number": {"valid": False, "message": "", "known": False},
        "person": None,
        "checks": [],
    }
    try:
        number = parse_id_number(raw).number
    except DomainError as error:
        result["id_number"]["message"] = str(error.message)
        number = None
    if number:
        person = selectors.person_by_id_number(user, number)
        result["id_number"].update(valid=True, normalised=number, known=person is not None)
        if person is not None:
            _record_lookup(user, person)
            result["person"] = {
                "name": person.name,
                "sex": person.get_sex_display(),
                "birth_date": person.birth_date.isoformat(),
                "insured_region": person.insured_region_id,
                "insured_region_name": str(person.insured_region),
                "insurance_type": person.insurance_type,
                "insurance_number": person.insurance_number,
                "phone": person.phone,
            }
    disease_id = data.get("disease") or ""
    disease = selectors.diseases_active().filter(pk=disease_id).first() if disease_id.isdigit() else None
    region_id = data.get("insured_region") or ""
    region = Region.objects.filter(pk=region_id).first() if region_id.isdigit() else None
    treating_id = data.get("treating_institution") or ""
    treating = Institution.objects.filter(pk=treating_id).first() if treating_id.isdigit() else None
    if disease is not None and raw:
        checks = selectors.filing_checklist(
            user=user,
            id_number=raw,
            disease=disease,
            insured_region=region,
            document_types=data.getlist("doc_type"),
            treating_institution=treating,
        )
        result["checks"] = [
            {"code": c.code, "label": str(c.label), "passed": c.passed, "message": str(c.message)} for c in checks
        ]
    return JsonResponse(result)


# ---------------------------------------------------------------------------
# One application: page, diagnosis, actions, documents
# ---------------------------------------------------------------------------


def _visible_application(request: HttpRequest, pk: int) -> Any:
    return get_object_or_404(selectors.applications_visible_to(request.user), pk=pk)


def _render_detail(request: HttpRequest, application: Any, bound: dict[str, Any] | None = None) -> HttpResponse:
    user = request.user
    actions = selectors.application_actions_for(user, application)
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
def application_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return _render_detail(request, _visible_application(request, pk))


@login_required
@require_http_methods(["GET", "POST"])
def application_diagnose(request: HttpRequest, pk: int) -> HttpResponse:
    application = _visible_application(request, pk)
    if "diagnose" not in selectors.application_actions_for(request.user, application):
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
        return registered(application_id=application.pk, actor=user, reason=data["note"])
    raise Http404


@login_required
@require_POST
def application_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    application = _visible_application(request, pk)
    if action not in forms.ACTION_FORMS:
        raise Http404
    if action not in selectors.application_actions_for(request.user, application):
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
def document_download(request: HttpRequest, pk: int) -> FileResponse:
    """A diagnosis document opened: every opening is written to the access log (§10, issue 18 item 9)."""
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


def plotly_js_url() -> str:
    import plotly

    return reverse("plotly-js") + f"?v={plotly.__version__}"


# ---------------------------------------------------------------------------
# Renewal (复审) and reminders
# ---------------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def application_renew(request: HttpRequest, pk: int) -> HttpResponse:
    """File the renewal of an expiring enrollment, prefilled from it; the physician then re-attests."""
    previous = _visible_application(request, pk)
    if "renew" not in selectors.application_actions_for(request.user, previous):
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
def reminder_read(request: HttpRequest, pk: int) -> HttpResponse:
    try:
        services.reminder_mark_read(reminder_id=pk, actor=request.user)
    except DomainError as error:
        if error.code == "not_found":
            raise Http404  # another institution's reminder: 404, like every out-of-scope id (DESIGN §10)
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


def _chart(table: Any) -> dict[str, Any]:
    """A plotly figure of one report table (plain data for Plotly.newPlot), validated by plotly itself."""
    import json

    import plotly.graph_objects as go

    label_column = table.columns[0][0] if table.key != "by_disease" and table.key != "by_institution" else None
    x = table.values(label_column) if label_column else table.values(table.columns[1][0])
    series = table.columns[1:] if label_column else table.columns[2:]
    stacked = table.key in ("by_disease", "by_institution", "time_to_decision")
    if table.key == "time_to_decision":
        series = [c for c in series if c[0] != "decided"]
    figure = go.Figure(
        data=[go.Bar(name=str(label), x=x, y=table.values(key)) for key, label in series],
        layout=go.Layout(
            barmode="stack" if stacked else "group",
            margin={"l": 40, "r": 10, "t": 10, "b": 80},
            height=320,
            legend={"orientation": "h"},
            xaxis={"type": "category"},
        ),
    )
    return json.loads(figure.to_json())


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
