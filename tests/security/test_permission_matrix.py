"""The permission matrix (docs/design.md: Access and privacy): every API endpoint and web page × every role.

Routes are discovered from the URL resolver, so endpoints other engineers add are walked
automatically — and a route with no line in EXPECTED fails the test until it is declared here.

Outcomes, from the role's point of view:

- ``OK``    permitted: the view did its work or refused the *input* (2xx, 3xx, 400, 409, 415 …);
- ``DENY``  refused: 401 / 403 (API), a redirect to the login page or 403 (web) — or 404, which refuses
            without saying whether the object exists (a role with no scope at all sees nothing);
- ``HIDE``  exactly 404: the object is outside the role's scope and its existence is not revealed.

POST requests carry a valid body (BODIES), so that a refusal of the input (400) cannot hide a missing
permission check; a 400 or 409 after that still counts as "permitted" (the rules refused, not the role).

Object routes are called twice: with objects of the clerk's own institution / the reviewer's own
region ("same"), and with the other institution's / region's objects ("other"). With the other
objects, every role that was ``OK`` on its own must get 404 — never 403 and never data — and every
role that was refused must still be refused (403 or 404).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from typing import Any

import pytest
from django.db import transaction
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone

from enrollment import services
from enrollment.models import PhysicianTitle, Reminder, ReminderChannel, ReminderStatus, SavedView
from enrollment.services.api_tokens import api_token_issue
from kernel import roles
from tests.conftest import pdf_upload
from tests.factories import DiseaseFactory, PhysicianFactory, staff_user

OK, DENY, HIDE = "ok", "deny", "hide"
ROLES = ("anonymous", "clinic", "clinic_other", "physician", "reviewer", "reviewer_other", "officer", "admin")
STAFF = ROLES[1:]


def allow(*allowed: str, hide: tuple[str, ...] = (), everyone_else: str = DENY) -> dict[str, str]:
    """``allowed`` roles are OK, ``hide`` get 404, every other role (anonymous included) ``everyone_else``."""
    table = {role: everyone_else for role in ROLES}
    table["anonymous"] = DENY if everyone_else != OK else OK
    table.update({role: OK for role in allowed})
    table.update({role: HIDE for role in hide})
    return table


PUBLIC = {role: OK for role in ROLES}
ANY_STAFF = allow(*STAFF)
ADMIN_ONLY = allow("admin")
REVIEWERS = allow("reviewer", "reviewer_other")
# Institution- and region-scoped objects (applications, documents): the filing / treating institution's
# clerk, physician and officer, the region's reviewers, administrators.
SCOPED = allow("clinic", "physician", "officer", "reviewer", "admin", hide=("clinic_other", "reviewer_other"))
# Review batches and items: the region's reviewers and administrators.
REGION_REVIEW = allow("reviewer", "admin", hide=("reviewer_other",))
# A transition on a visible application: who may start it; who sees it but may not act is DENY (403).
FILING_SIDE = allow("clinic", "admin", hide=("clinic_other", "reviewer_other"))
INSTITUTION_INBOX = allow("clinic", "physician", "officer", "admin", hide=("clinic_other",))


# One line per (method, route). The route is the URL pattern with {name} placeholders.
EXPECTED: dict[tuple[str, str], dict[str, str]] = {
    # --- API: authentication ------------------------------------------------------------------
    ("POST", "/api/v1/auth/token/"): PUBLIC,  # wrong credentials are a 400, not a permission matter
    ("DELETE", "/api/v1/auth/token/revoke/"): ANY_STAFF,
    # Each user lists and revokes only their own tokens (issue 18): anyone else's token id is a 404.
    ("GET", "/api/v1/auth/tokens/"): ANY_STAFF,
    ("DELETE", "/api/v1/auth/tokens/{pk}/"): allow(
        "clinic", hide=("clinic_other", "physician", "reviewer", "reviewer_other", "officer", "admin")
    ),
    ("GET", "/api/v1/"): ANY_STAFF,
    ("GET", "/api/schema/"): PUBLIC,
    ("GET", "/api/docs/"): PUBLIC,
    # --- API: reference data and persons -----------------------------------------------------
    ("GET", "/api/v1/diseases/"): ANY_STAFF,
    ("GET", "/api/v1/diseases/{code}/"): ANY_STAFF,
    ("GET", "/api/v1/institutions/"): ANY_STAFF,
    ("GET", "/api/v1/institutions/{code}/"): ANY_STAFF,
    ("GET", "/api/v1/persons/"): ANY_STAFF,
    ("POST", "/api/v1/persons/"): allow("clinic", "clinic_other", "physician", "officer", "admin"),
    # A person's dated status: recorded by the insurance office, read by it and the reviewers.
    ("GET", "/api/v1/persons/{pk}/status-events/"): allow("reviewer", "reviewer_other", "officer", "admin"),
    ("POST", "/api/v1/persons/{pk}/status-events/"): allow("officer", "admin"),
    # Coverage: institution staff about persons insured in their province, reviewers about their region
    # (the asked person is insured in the "same" region), administrators about anyone.
    ("GET", "/api/v1/coverage/"): allow("clinic", "clinic_other", "physician", "reviewer", "officer", "admin"),
    # --- API: applications ---------------------------------------------------------------------
    ("GET", "/api/v1/applications/"): ANY_STAFF,
    ("POST", "/api/v1/applications/"): allow("clinic", "clinic_other", "admin"),
    ("GET", "/api/v1/applications/{pk}/"): SCOPED,
    ("POST", "/api/v1/applications/{pk}/diagnose/"): allow("physician", hide=("clinic_other", "reviewer_other")),
    # Staff of the filing / treating institution (clerks, physicians, the centre officer) and admins.
    ("POST", "/api/v1/applications/{pk}/documents/"): allow(
        "clinic", "physician", "officer", "admin", hide=("clinic_other", "reviewer_other")
    ),
    ("GET", "/api/v1/applications/{pk}/reminders/"): SCOPED,
    ("POST", "/api/v1/applications/{pk}/renew/"): FILING_SIDE,
    ("POST", "/api/v1/applications/{pk}/resubmit/"): FILING_SIDE,
    ("POST", "/api/v1/applications/{pk}/withdraw/"): FILING_SIDE,
    ("POST", "/api/v1/applications/{pk}/terminate/"): allow(
        "reviewer", "admin", hide=("clinic_other", "reviewer_other")
    ),
    ("GET", "/api/v1/reminders/"): ANY_STAFF,
    ("POST", "/api/v1/reminders/{pk}/read/"): INSTITUTION_INBOX,
    # --- API: reviews --------------------------------------------------------------------------
    ("GET", "/api/v1/batches/"): ANY_STAFF,  # scoped list: empty without a region to review
    ("GET", "/api/v1/batches/{pk}/"): allow("reviewer", "officer", "admin", hide=("reviewer_other",)),  # issue 15
    ("GET", "/api/v1/queue/"): ANY_STAFF,  # empty for anyone without a stage to work
    ("POST", "/api/v1/queue/claim/"): REVIEWERS,
    # Releases only the caller's own claims: a harmless no-op ({"released": 0}) for everyone else.
    ("POST", "/api/v1/queue/release/"): ANY_STAFF,
    ("GET", "/api/v1/review-items/{pk}/"): REGION_REVIEW,
    # Decisions are the region's reviewers' alone (admins see items but hold no stage).
    ("POST", "/api/v1/review-items/{pk}/approve/"): allow("reviewer", hide=("reviewer_other",)),
    ("POST", "/api/v1/review-items/{pk}/reject/"): allow("reviewer", hide=("reviewer_other",)),
    ("POST", "/api/v1/review-items/{pk}/return/"): allow("reviewer", hide=("reviewer_other",)),
    # 200 with per-item results: for anyone without the item's region and stage every item comes back as a
    # failure and nothing is decided (test_bulk_decide_by_non_reviewers_decides_nothing).
    ("POST", "/api/v1/review-items/bulk-decide/"): ANY_STAFF,
    ("POST", "/api/v1/immediate-approvals/"): allow("officer"),
    # --- API: interop --------------------------------------------------------------------------
    # Called for the clerk's region: its reviewers and administrators (reviewers of other regions refused).
    ("GET", "/api/v1/exports/enrollments/"): allow("reviewer", "admin"),
    ("GET", "/api/v1/roster-imports/"): ANY_STAFF,  # scoped list: empty unless officer of the institution
    ("POST", "/api/v1/roster-imports/"): allow("officer", "admin"),
    ("GET", "/api/v1/roster-imports/{pk}/"): allow("officer", "admin"),
    ("POST", "/api/v1/roster-imports/{pk}/commit/"): allow("officer", "admin"),
    ("GET", "/api/v1/roster-imports/{pk}/report/"): allow("officer", "admin"),
    ("GET", "/api/v1/roster-imports/{pk}/rows/"): allow("officer", "admin"),
    ("GET", "/api/v1/assisted-filings/"): ANY_STAFF,
    ("GET", "/api/v1/assisted-filings/{pk}/"): allow("clinic", "officer", "admin", hide=("clinic_other",)),
    # Filing is clinic work (the officer prepares the worklist, a clerk files).
    ("POST", "/api/v1/assisted-filings/{pk}/file/"): allow("clinic", "admin", hide=("clinic_other",)),
    ("POST", "/api/v1/assisted-filings/{pk}/dismiss/"): allow("clinic", "officer", "admin", hide=("clinic_other",)),
    ("GET", "/api/v1/catalogue-imports/"): ADMIN_ONLY,
    ("POST", "/api/v1/catalogue-imports/"): ADMIN_ONLY,
    ("GET", "/api/v1/catalogue-imports/{pk}/"): ADMIN_ONLY,
    ("POST", "/api/v1/catalogue-imports/{pk}/apply/"): ADMIN_ONLY,
    # --- health ------------------------------------------------------------------------------
    ("GET", "/health/"): PUBLIC,
    ("GET", "/health/db/"): PUBLIC,
    ("GET", "/health/redis/"): PUBLIC,
    ("GET", "/health/worker/"): PUBLIC,
    # --- web pages -----------------------------------------------------------------------------
    ("GET", "/login/"): PUBLIC,
    ("POST", "/logout/"): PUBLIC,
    ("POST", "/i18n/setlang/"): PUBLIC,
    ("GET", "/assets/plotly.min.js"): PUBLIC,
    ("GET", "/"): ANY_STAFF,
    ("GET", "/applications/"): ANY_STAFF,
    ("GET", "/applications/new/"): allow("clinic", "clinic_other", "admin"),
    ("POST", "/applications/new/check.json"): allow("clinic", "clinic_other", "admin"),
    # Working lists (issue 15): every role exports its own scope; saved views are each user's own.
    ("GET", "/applications/renewals/"): ANY_STAFF,  # the renewal worklist, each viewer's own scope
    ("GET", "/applications/export.csv"): ANY_STAFF,
    ("GET", "/applications/export.xlsx"): ANY_STAFF,
    ("POST", "/applications/views/"): ANY_STAFF,
    ("POST", "/applications/views/{pk}/delete/"): allow(
        "clinic", hide=("clinic_other", "physician", "reviewer", "reviewer_other", "officer", "admin")
    ),
    ("GET", "/favicon.ico"): PUBLIC,
    ("GET", "/applications/{pk}/"): SCOPED,
    ("GET", "/applications/{pk}/diagnose/"): allow("physician", hide=("clinic_other", "reviewer_other")),
    ("GET", "/applications/{pk}/renew/"): FILING_SIDE,
    ("POST", "/applications/{pk}/{action}/"): FILING_SIDE,  # action = withdraw
    ("GET", "/documents/{pk}/"): SCOPED,
    ("POST", "/reminders/{pk}/read/"): INSTITUTION_INBOX,
    ("GET", "/reports/"): ADMIN_ONLY,
    ("GET", "/reports/{name}.csv"): ADMIN_ONLY,
    ("GET", "/reviews/queue/"): REVIEWERS,
    ("POST", "/reviews/queue/claim/"): REVIEWERS,
    ("POST", "/reviews/queue/release/"): REVIEWERS,
    ("POST", "/reviews/queue/decide/"): REVIEWERS,
    ("GET", "/reviews/batches/"): allow("reviewer", "reviewer_other", "officer", "admin"),
    # Issue 15: the region's centre officers see its batches and assemble this month's from the web.
    ("GET", "/reviews/batches/{pk}/"): allow("reviewer", "officer", "admin", hide=("reviewer_other",)),
    ("POST", "/reviews/batches/assemble/"): allow("officer", "admin"),
    ("GET", "/reviews/notifications/"): ANY_STAFF,  # each their own
    ("POST", "/reviews/notifications/read/"): ANY_STAFF,
    ("GET", "/reviews/reports/on-time.csv"): ADMIN_ONLY,
    # Interop pages: roster imports (officers of the institution, administrators) and the worklist.
    ("GET", "/roster-imports/"): allow("officer", "admin"),
    ("POST", "/roster-imports/"): allow("officer", "admin"),  # upload (no file here: 400)
    ("GET", "/roster-imports/{pk}/"): allow("officer", "admin"),
    ("POST", "/roster-imports/{pk}/commit/"): allow("officer", "admin"),
    ("GET", "/roster-imports/{pk}/report.csv"): allow("officer", "admin"),
    ("GET", "/roster-imports/{pk}/report.xlsx"): allow("officer", "admin"),
    ("GET", "/worklist/"): allow("clinic", "clinic_other", "officer", "admin"),  # each their own hospital's
    ("POST", "/worklist/{pk}/file/"): allow("clinic", "admin", hide=("clinic_other",)),
    ("POST", "/worklist/{pk}/dismiss/"): allow("clinic", "officer", "admin", hide=("clinic_other",)),
}

# The POST look-ups (issue 18 item 10: the ID number in the body, out of URLs and access logs) answer every role
# exactly as the GETs they replace.
EXPECTED[("POST", "/api/v1/persons/lookup/")] = EXPECTED[("GET", "/api/v1/persons/")]
EXPECTED[("POST", "/api/v1/coverage/")] = EXPECTED[("GET", "/api/v1/coverage/")]

# The national platform link (nhsa): centre officers and administrators; messages and differences of another
# institution's applications, and another province's reconciliation runs, are 404.
PLATFORM_OFFICE = allow("officer", "admin")
EXPECTED.update(
    {
        ("GET", "/platform/messages/"): PLATFORM_OFFICE,
        ("POST", "/platform/messages/{pk}/retry/"): PLATFORM_OFFICE,
        ("POST", "/platform/messages/{pk}/release/"): PLATFORM_OFFICE,
        ("POST", "/platform/messages/{pk}/cancel/"): PLATFORM_OFFICE,
        ("GET", "/platform/reconciliations/"): PLATFORM_OFFICE,
        ("GET", "/platform/reconciliations/{pk}/"): PLATFORM_OFFICE,
        ("GET", "/platform/reconciliations/{pk}/differences.csv"): PLATFORM_OFFICE,
        ("GET", "/platform/reconciliations/{pk}/differences.xlsx"): PLATFORM_OFFICE,
        ("POST", "/platform/differences/{pk}/resend/"): PLATFORM_OFFICE,
        ("POST", "/platform/differences/{pk}/cancel/"): PLATFORM_OFFICE,
        ("POST", "/platform/differences/{pk}/accept/"): PLATFORM_OFFICE,
    }
)

# Costs and assistance (docs/assistance.md): centre officers of the person's region and administrators; another
# region's alerts, statements and an import of another uploader are 404. Settlements are also sent by clinic staff
# for their own institution (the POST answers each row; a row out of the sender's scope is refused in the body).
ASSISTANCE_OFFICE = allow("officer", "admin")
EXPECTED.update(
    {
        ("POST", "/api/v1/settlements/"): allow("clinic", "clinic_other", "officer", "admin"),
        ("GET", "/api/v1/cost-alerts/"): ASSISTANCE_OFFICE,
        ("GET", "/api/v1/cost-alerts/{pk}/"): ASSISTANCE_OFFICE,
        ("POST", "/api/v1/cost-alerts/{pk}/acknowledge/"): ASSISTANCE_OFFICE,
        ("POST", "/api/v1/cost-alerts/{pk}/refer/"): ASSISTANCE_OFFICE,
        ("POST", "/api/v1/cost-alerts/{pk}/close/"): ASSISTANCE_OFFICE,
        ("GET", "/assistance/alerts/"): ASSISTANCE_OFFICE,
        ("POST", "/assistance/alerts/{pk}/acknowledge/"): ASSISTANCE_OFFICE,
        ("POST", "/assistance/alerts/{pk}/refer/"): ASSISTANCE_OFFICE,
        ("POST", "/assistance/alerts/{pk}/close/"): ASSISTANCE_OFFICE,
        ("GET", "/assistance/imports/"): ASSISTANCE_OFFICE,
        ("POST", "/assistance/imports/"): ASSISTANCE_OFFICE,  # upload (no file here: 400)
        ("GET", "/assistance/imports/{pk}/"): ASSISTANCE_OFFICE,
        ("POST", "/assistance/imports/{pk}/commit/"): ASSISTANCE_OFFICE,
        ("GET", "/assistance/statements/{pk}/"): ASSISTANCE_OFFICE,
        ("GET", "/assistance/reports/{name}.csv"): ASSISTANCE_OFFICE,
    }
)

# Oversight (docs/reviews.md, "Oversight"): re-checks are the region's reviewers' (admins read them); notices and
# objections the region's centre officers' and administrators'; the public notice pages need no login.
NOTICE_OFFICE = allow("officer", "admin")
EXPECTED.update(
    {
        ("GET", "/oversight/rechecks/"): allow("reviewer", "reviewer_other", "admin"),  # scoped list
        ("GET", "/oversight/rechecks/quality.csv"): allow("reviewer", "reviewer_other", "admin"),  # scoped rows
        ("GET", "/oversight/rechecks/{pk}/"): REGION_REVIEW,
        ("POST", "/oversight/rechecks/{pk}/decide/"): allow("reviewer", "admin", hide=("reviewer_other",)),
        # A re-check returned for correction is answered by the staff of the clinic that filed the application.
        ("GET", "/oversight/rechecks/{pk}/correction/"): allow("clinic", hide=("clinic_other",)),
        ("POST", "/oversight/rechecks/{pk}/correction/"): allow("clinic", hide=("clinic_other",)),
        ("GET", "/oversight/notices/"): NOTICE_OFFICE,
        ("POST", "/oversight/batches/{pk}/notice/"): NOTICE_OFFICE,
        ("GET", "/oversight/notices/{pk}/"): NOTICE_OFFICE,
        ("GET", "/oversight/notices/{pk}/entries.csv"): NOTICE_OFFICE,
        ("GET", "/oversight/notices/{pk}/entries.xlsx"): NOTICE_OFFICE,
        ("POST", "/oversight/notice-entries/{pk}/objections/"): NOTICE_OFFICE,
        ("POST", "/oversight/objections/{pk}/uphold/"): NOTICE_OFFICE,
        ("POST", "/oversight/objections/{pk}/reject/"): NOTICE_OFFICE,
        ("GET", "/notices/"): PUBLIC,
        ("GET", "/notices/{token}/"): PUBLIC,
        # The oversight API (docs/api.md, "Oversight"): the pages' rules. A re-check decision is a reviewer's: an
        # administrator reads samples but the service refuses them the decision (403; the page shows it as a message).
        ("GET", "/api/v1/rechecks/"): allow("reviewer", "reviewer_other", "admin"),  # scoped list
        ("GET", "/api/v1/rechecks/{pk}/"): REGION_REVIEW,
        ("POST", "/api/v1/rechecks/{pk}/decide/"): allow("reviewer", hide=("reviewer_other",)),
        ("POST", "/api/v1/rechecks/{pk}/answer/"): allow("clinic", hide=("clinic_other",)),
        ("GET", "/api/v1/notices/"): NOTICE_OFFICE,
        ("POST", "/api/v1/notices/"): NOTICE_OFFICE,  # the matrix batch is already published: 409 for them
        ("GET", "/api/v1/notices/{pk}/"): NOTICE_OFFICE,
        ("GET", "/api/v1/notices/{pk}/entries/"): NOTICE_OFFICE,
        ("POST", "/api/v1/notice-entries/{pk}/objections/"): NOTICE_OFFICE,
        ("POST", "/api/v1/objections/{pk}/resolve/"): NOTICE_OFFICE,
    }
)

# Routes deliberately outside the matrix, with the reason.
NOT_WALKED = {
    "/admin/": "Django admin: its own is_staff / model-permission checks, tested in test_data_safety",
    "/media/": "development-only static serving (DEBUG); production serves no media without a view",
    "/static/": "static files",
}


# ---------------------------------------------------------------------------
# Route discovery
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    path: str  # with {name} placeholders
    methods: tuple[str, ...]  # from DRF's routing; empty for plain Django views


def _normalise(pattern: str) -> str:
    path = "/" + pattern.replace("^", "").replace("$", "")
    path = re.sub(r"\(\?P<(\w+)>[^)]*\)", r"{\1}", path)
    path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", path)
    return path.replace("\\.", ".")


def _methods(callback: Any) -> tuple[str, ...]:
    actions = getattr(callback, "actions", None)
    if actions:
        return tuple(sorted(method.upper() for method in actions if method not in {"head", "options"}))
    cls = getattr(callback, "cls", None)
    if cls is not None:  # a DRF APIView
        return tuple(
            sorted(m.upper() for m in cls.http_method_names if m not in {"options", "head"} and hasattr(cls, m))
        )
    return ()


def discover(resolver: Any = None, prefix: str = "") -> list[Route]:
    resolver = resolver or get_resolver()
    routes: list[Route] = []
    for entry in resolver.url_patterns:
        pattern = prefix + str(entry.pattern)
        path = _normalise(pattern)
        if any(path.startswith(skipped) for skipped in NOT_WALKED):
            continue
        if isinstance(entry, URLResolver):
            routes += discover(entry, pattern)
        elif isinstance(entry, URLPattern):
            if "{format}" in path:
                continue  # DRF's ".json" suffix twins of the same views
            routes.append(Route(path, _methods(entry.callback)))
    return sorted(set(routes), key=lambda r: r.path)


def test_every_route_has_a_declared_expectation():
    declared_paths = {path for _method, path in EXPECTED}
    missing = []
    for route in discover():
        if route.methods:
            missing += [f"{m} {route.path}" for m in route.methods if (m, route.path) not in EXPECTED]
        elif route.path not in declared_paths:
            missing.append(f"? {route.path}")
    assert not missing, "declare these in tests/security/test_permission_matrix.py EXPECTED: " + ", ".join(missing)


def test_no_stale_declarations():
    routes = {route.path for route in discover()}
    stale = sorted(f"{m} {p}" for m, p in EXPECTED if p not in routes)
    assert not stale, f"declared but no longer routed: {stale}"


# ---------------------------------------------------------------------------
# The objects the routes are called with
# ---------------------------------------------------------------------------


@dataclass
class Objects:
    values: dict[str, Any]  # placeholder-context key → value


def _make_world_objects(world: Any) -> dict[str, Objects]:
    from enrollment.models import Application
    from interop.models import AssistedFiling, CatalogueImport, RosterImport
    from reviews.models import ReviewBatch, ReviewItem
    from reviews.services import batch_assemble, review_decide

    system = services.get_system_user()
    today = timezone.localdate()
    renewable_disease = DiseaseFactory(
        code="M99901",
        name="测试即时病种",
        disease_type="12",
        counts_toward_limit=False,
        review_mode="immediate",
        validity_months=36,
        icd10_prefixes=["N18"],
    )
    other_physician = staff_user(roles.PHYSICIAN, institution=world.other_clinic)
    PhysicianFactory(institution=world.other_clinic, title=PhysicianTitle.CHIEF, user=other_physician)
    per_side: dict[str, dict[str, Any]] = {}
    for side, clerk, physician, institution, region in (
        ("same", world.clerk, world.physician_user, world.county, world.region),
        ("other", world.other_clerk, other_physician, world.other_clinic, world.other_region),
    ):
        person = world.person(insured_region=region)
        application = services.application_submit(
            person=person,
            disease=world.hypertension,
            treating_institution=institution,
            actor=clerk,
            documents=[("diagnosis_certificate", pdf_upload())],
        )
        in_review = services.application_submit(
            person=person, disease=world.diabetes, treating_institution=institution, actor=clerk
        )
        services.application_diagnose(
            application_id=in_review.pk,
            actor=physician,
            icd10_code="E11.9",
            diagnosis_date=today,
            documents=[("diagnosis_certificate", pdf_upload())],
        )
        returned = services.application_submit(
            person=world.person(insured_region=region),
            disease=world.copd,
            treating_institution=institution,
            actor=clerk,
        )
        services.application_diagnose(
            application_id=returned.pk,
            actor=physician,
            icd10_code="J44.9",
            diagnosis_date=today,
            documents=[("diagnosis_certificate", pdf_upload())],
        )
        batch_assemble(
            region_id=region.pk, period=f"{today:%Y-%m}", actor=system, cutoff=timezone.now() + dt.timedelta(minutes=1)
        )
        reviewer = world.reviewer if side == "same" else world.other_reviewer
        returned_item = ReviewItem.objects.get(application=returned)
        ReviewItem.objects.filter(pk=returned_item.pk).update(
            claimed_by=reviewer, lease_expires_at=timezone.now() + dt.timedelta(minutes=30)
        )
        review_decide(item_id=returned_item.pk, actor=reviewer, decision="return", reason="lab report missing")
        renewable = services.application_submit(
            person=person, disease=renewable_disease, treating_institution=institution, actor=clerk
        )
        services.application_diagnose(
            application_id=renewable.pk,
            actor=physician,
            icd10_code="N18.5",
            diagnosis_date=today,
            documents=[("diagnosis_certificate", pdf_upload())],
        )
        officer = world.officer if side == "same" else staff_user(roles.CENTER_OFFICER, institution=institution)
        approved = services.application_approve(application_id=renewable.pk, actor=officer, immediate=True)
        # Bring it inside the renewal window (fixture data: the sweep is not under test here).
        Application.objects.filter(pk=approved.pk).update(valid_until=today + dt.timedelta(days=30))
        side_values: dict[str, Any] = {
            "person": person,
            "application": application,
            "institution": institution,
            "approved": approved,
            "returned": returned,
        }
        side_values["batch"] = ReviewBatch.objects.get(region=region)
        side_values["item"] = ReviewItem.objects.get(application=in_review)
        side_values["document"] = application.documents.first()
        side_values["reminder"] = Reminder.objects.create(
            application=application,
            offset_days=30,
            channel=ReminderChannel.IN_APP,
            due_on=today,
            valid_until=today + dt.timedelta(days=30),
            status=ReminderStatus.SENT,
            institution=institution,
            message="expiring soon",
        )
        side_values["token"] = api_token_issue(user=clerk, name=f"matrix {side}").token
        side_values["saved_view"] = SavedView.objects.create(user=clerk, page="applications", name=f"matrix {side}")
        side_values["roster"] = RosterImport.objects.create(
            uploaded_by=world.officer if side == "same" else world.admin,
            institution=institution,
            original_name="roster.csv",
            file_format="csv",
            content=b"id_number,name\n",
        )
        side_values["filing"] = AssistedFiling.objects.create(
            person=person, disease=world.copd, institution=institution
        )
        side_values.update(_platform_objects(world, side, application, approved))
        side_values.update(_oversight_objects(world, side, approved, side_values["batch"]))
        side_values.update(_assistance_objects(world, side, person))
        per_side[side] = side_values
    catalogue = CatalogueImport.objects.create(
        uploaded_by=world.admin, original_name="catalogue.json", version="2", data={"version": "2", "diseases": []}
    )
    objects = {}
    for side, values in per_side.items():
        objects[side] = Objects(
            {
                "person": values["person"].pk,
                "application": values["application"].pk,
                "approved": values["approved"].pk,
                "returned": values["returned"].pk,
                "batch": values["batch"].pk,
                "item": values["item"].pk,
                "document": values["document"].pk,
                "reminder": values["reminder"].pk,
                "roster": values["roster"].pk,
                "filing": values["filing"].pk,
                "token": values["token"].pk,
                "saved_view": values["saved_view"].pk,
                "person_scoped": values["person"].pk,
                "person_id_number": values["person"].id_number,
                "catalogue": catalogue.pk,
                "platform_message": values["platform_message"].pk,
                "reconciliation": values["reconciliation"].pk,
                "difference": values["difference"].pk,
                "recheck": values["recheck"].pk,
                "notice": values["notice"].pk,
                "notice_entry": values["notice_entry"].pk,
                "objection": values["objection"].pk,
                "notice_token": values["notice"].token,
                "cost_alert": values["cost_alert"].pk,
                "settlement_import": values["settlement_import"].pk,
            }
        )
    return objects


def _platform_objects(world: Any, side: str, application: Any, approved: Any) -> dict[str, Any]:
    """A held platform message of the side's application and a reconciliation run with one difference; the
    other side's run is another province's (runs are per province)."""
    from enrollment.models import Region
    from nhsa.models import MessageKind, MessageState, PlatformDifference, PlatformMessage, PlatformReconciliation

    message = PlatformMessage.objects.create(
        application=approved, kind=MessageKind.FILE, msgid=f"matrix-{side}", state=MessageState.HELD
    )
    region = world.province if side == "same" else Region.objects.create(code="110000", name="北京市")
    run = PlatformReconciliation.objects.create(region=region, day=timezone.localdate(), started_by=world.admin)
    difference = PlatformDifference.objects.create(
        reconciliation=run, kind="dates_differ", application=approved, person=approved.person
    )
    return {"platform_message": message, "reconciliation": run, "difference": difference}


def _assistance_objects(world: Any, side: str, person: Any) -> dict[str, Any]:
    """A high-cost alert of the side's person (insured in the side's region) and a settlement import uploaded by
    the side's officer (the other side's by another region's officer)."""
    from assistance.models import HighCostAlert, SettlementImport

    alert = HighCostAlert.objects.create(
        person=person,
        region=person.insured_region,
        period=timezone.localdate().replace(day=1),
        kind="month",
        amount="8000.00",
        threshold="7000.00",
        scan="matrix",
    )
    uploader = world.officer if side == "same" else staff_user(roles.CENTER_OFFICER, institution=world.other_clinic)
    record = SettlementImport.objects.create(
        uploaded_by=uploader, original_name="settlements.csv", file_format="csv", content=b"x\n"
    )
    return {"cost_alert": alert, "settlement_import": record}


def _oversight_objects(world: Any, side: str, approved: Any, batch: Any) -> dict[str, Any]:
    """A re-check sample of the side's immediate approval, returned to the filing clinic with an open correction
    request, and a notice of the side's batch listing it, open today, with one open objection."""
    from decimal import Decimal

    from oversight.models import CorrectionRequest, NoticeEntry, Objection, PublicNotice, RecheckDraw, RecheckSample

    system = services.get_system_user()
    now, today = timezone.now(), timezone.localdate()
    reviewer = world.reviewer if side == "same" else world.other_reviewer
    draw = RecheckDraw.objects.create(region=batch.region, period="2000-01", seed=side, drawn_at=now, drawn_by=system)
    sample = RecheckSample.objects.create(
        draw=draw,
        application=approved,
        region=batch.region,
        institution=approved.treating_institution,
        kind="immediate",
        approved_at=now,
        percent=Decimal(100),
        rate_source="matrix",
        score=Decimal(0),
        state="returned",
        correction="returned",
        returns=1,
        checked_by=reviewer,
        checked_at=now,
        reason="matrix",
    )
    CorrectionRequest.objects.create(
        sample=sample,
        application=approved,
        institution_id=approved.filing_institution_id,
        codes=["id_copy"],
        note="matrix",
        requested_by=reviewer,
        requested_at=now,
        answer_by=today + dt.timedelta(days=15),
    )
    notice = PublicNotice.objects.create(
        batch=batch,
        region=batch.region,
        token=f"matrix-{side}-token",
        starts_on=today,
        ends_on=today + dt.timedelta(days=6),
        days=7,
        published_by=world.admin,
        published_at=now,
    )
    entry = NoticeEntry.objects.create(
        notice=notice,
        application=approved,
        number=1,
        masked_name="张*",
        masked_id_number="530***********0000",
        disease_name="x",
        institution_name="y",
        held=True,
    )
    objection = Objection.objects.create(
        entry=entry, channel="phone", text="matrix", recorded_by=world.admin, recorded_at=now
    )
    return {"recheck": sample, "notice": notice, "notice_entry": entry, "objection": objection}


# Which object a {pk} stands for, by route prefix (first match wins).
PK_KIND = [
    ("/api/v1/applications/{pk}/renew/", "approved"),
    ("/applications/{pk}/renew/", "approved"),
    ("/api/v1/applications/{pk}/terminate/", "approved"),
    ("/api/v1/applications/{pk}/resubmit/", "returned"),
    ("/api/v1/applications/", "application"),
    ("/applications/views/{pk}/delete/", "saved_view"),
    ("/applications/", "application"),
    ("/api/v1/batches/", "batch"),
    ("/reviews/batches/", "batch"),
    ("/api/v1/review-items/", "item"),
    ("/documents/", "document"),
    ("/api/v1/reminders/", "reminder"),
    ("/reminders/", "reminder"),
    ("/api/v1/roster-imports/", "roster"),
    ("/roster-imports/{pk}/", "roster"),
    ("/roster-imports/{pk}/commit/", "roster"),
    ("/roster-imports/{pk}/report.csv", "roster"),
    ("/roster-imports/{pk}/report.xlsx", "roster"),
    ("/worklist/{pk}/file/", "filing"),
    ("/worklist/{pk}/dismiss/", "filing"),
    ("/api/v1/assisted-filings/", "filing"),
    ("/api/v1/catalogue-imports/", "catalogue"),
    ("/api/v1/persons/", "person"),
    ("/api/v1/auth/tokens/", "token"),  # a token of the clerk (same side) or of the other clerk
    ("/platform/messages/", "platform_message"),
    ("/platform/reconciliations/", "reconciliation"),
    ("/platform/differences/", "difference"),
    ("/oversight/rechecks/", "recheck"),
    ("/oversight/batches/", "batch"),
    ("/oversight/notices/", "notice"),
    ("/oversight/notice-entries/", "notice_entry"),
    ("/oversight/objections/", "objection"),
    ("/api/v1/rechecks/", "recheck"),
    ("/api/v1/notices/", "notice"),
    ("/api/v1/notice-entries/", "notice_entry"),
    ("/api/v1/objections/", "objection"),
    ("/api/v1/cost-alerts/", "cost_alert"),
    ("/assistance/alerts/", "cost_alert"),
    ("/assistance/imports/", "settlement_import"),
    ("/assistance/statements/", "person_scoped"),
]
# Routes whose objects belong to an institution or region (called with the other side's too).
SCOPED_KINDS = {
    "application",
    "approved",
    "returned",
    "batch",
    "item",
    "document",
    "reminder",
    "roster",
    "filing",
    "token",  # per user: the other clerk's token is theirs alone
    "saved_view",  # per user, like tokens
    "platform_message",
    "reconciliation",
    "difference",
    "recheck",
    "notice",
    "notice_entry",
    "objection",
    "cost_alert",
    "settlement_import",
    "person_scoped",  # a person's assistance statement: the other side's person is another region's
}


def pk_kind(route: str) -> str:
    for prefix, kind in PK_KIND:
        if route == prefix or ("{pk}" not in prefix and route.startswith(prefix)):
            return kind
    raise AssertionError(f"no object kind declared for {route} in PK_KIND")


def concrete(path: str, objects: Objects) -> tuple[str, str | None]:
    kind = None
    if "{pk}" in path:
        kind = pk_kind(path)
        path = path.replace("{pk}", str(objects.values[kind]))
    path = path.replace("{code}", "M03900" if "/diseases/" in path else "__INSTITUTION__")
    path = path.replace("{action}", "withdraw")
    path = path.replace("{name}", "by_region" if path.startswith("/assistance/") else "filings")
    path = path.replace("{token}", str(objects.values.get("notice_token", "")))
    return path, kind


# ---------------------------------------------------------------------------
# Calling a route as a role
# ---------------------------------------------------------------------------


def users(world: Any) -> dict[str, Any]:
    return {
        "anonymous": None,
        "clinic": world.clerk,
        "clinic_other": world.other_clerk,
        "physician": world.physician_user,
        "reviewer": world.reviewer,
        "reviewer_other": world.other_reviewer,
        "officer": world.officer,
        "admin": world.admin,
    }


def outcome(response: Any, path: str) -> str:
    status = response.status_code
    if path.startswith("/health/") and status == 503:
        return OK  # the probe answered: the component it checks is down (no worker runs in tests)
    assert status < 500, f"{path}: server error {status}"
    if path == "/logout/" and status == 302:
        return OK
    if status in (401, 403):
        return DENY
    if status == 404:
        return HIDE
    if status in (301, 302) and "/login/" in response.get("Location", "") and not path.startswith("/login/"):
        return DENY
    return OK


def bodies(world: Any, same: Objects) -> dict[tuple[str, str], Any]:
    """Valid request bodies / query strings, so that the permission check — not input validation — answers."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    newcomer = world.person()
    v = same.values
    return {
        ("POST", "/api/v1/auth/token/"): {"username": world.clerk.username, "password": "pw-for-tests-2026"},
        ("GET", "/api/v1/persons/"): {"id_number": newcomer.id_number},
        ("POST", "/api/v1/persons/"): {
            "id_number": newcomer.id_number,
            "name": newcomer.name,
            "insured_region": world.region.code,
        },
        ("GET", "/api/v1/coverage/"): {"id_number": newcomer.id_number, "disease": "M03900"},
        ("POST", "/api/v1/persons/lookup/"): {"id_number": newcomer.id_number, "reason": "permission matrix"},
        ("POST", "/api/v1/coverage/"): {"id_number": newcomer.id_number, "disease": "M03900"},
        ("POST", "/api/v1/applications/"): {
            "id_number": newcomer.id_number,
            "disease": "M05300",
            "treating_institution": world.county.code,
        },
        # Dated far ahead: recorded (the permission is what is under test) without changing today's status.
        ("POST", "/api/v1/persons/{pk}/status-events/"): {
            "kind": "insurance_suspended",
            "effective_date": "2099-01-01",
            "reference": "matrix-1",
        },
        ("POST", "/api/v1/applications/{pk}/diagnose/"): {"icd10_code": "I10", "diagnosis_date": "2026-01-05"},
        ("POST", "/api/v1/applications/{pk}/documents/"): lambda: {
            "doc_type": "test_report",
            "file": SimpleUploadedFile("lab.pdf", b"%PDF-1.4 x", content_type="application/pdf"),
        },
        ("POST", "/api/v1/applications/{pk}/terminate/"): {"reason": "death"},
        ("POST", "/api/v1/queue/claim/"): {"count": 1},
        ("POST", "/api/v1/review-items/{pk}/reject/"): {"reason_code": "criteria_not_met", "reason": "x"},
        ("POST", "/api/v1/review-items/{pk}/return/"): {"missing": "lab report"},
        ("POST", "/api/v1/review-items/bulk-decide/"): {"items": [v["item"]], "decision": "approve"},
        ("POST", "/api/v1/immediate-approvals/"): {"application": v["application"]},
        ("GET", "/api/v1/exports/enrollments/"): {"region": world.region.code, "period": "2026-01"},
        ("POST", "/api/v1/roster-imports/"): lambda: {
            "file": SimpleUploadedFile("roster.csv", b"id_number,name,region,declared\n", content_type="text/csv")
        },
        ("POST", "/api/v1/assisted-filings/{pk}/dismiss/"): {"reason": "moved away"},
        ("POST", "/api/v1/catalogue-imports/"): lambda: {
            "file": SimpleUploadedFile("catalogue.json", b'{"version": "9", "diseases": []}')
        },
        ("POST", "/api/v1/catalogue-imports/{pk}/apply/"): {"terminate_enrollments": False},
        ("POST", "/i18n/setlang/"): {"language": "en"},
        ("POST", "/api/v1/settlements/"): {
            "rows": [
                {
                    "serial_number": "MATRIX-1",
                    "id_number": v["person_id_number"],
                    "settled_on": "2026-01-05",
                    "institution_code": world.county.code,
                    "institution_level": "county",
                    "total_cost": "100.00",
                    "fund_paid": "60.00",
                    "out_of_pocket": "40.00",
                }
            ]
        },
        ("POST", "/api/v1/cost-alerts/{pk}/close/"): {"note": "handled"},
        ("POST", "/assistance/alerts/{pk}/close/"): {"note": "handled"},
        ("POST", "/assistance/imports/{pk}/commit/"): {"confirm": "on"},
        ("POST", "/oversight/rechecks/{pk}/decide/"): {"outcome": "pass", "reason": "matrix"},
        ("POST", "/oversight/rechecks/{pk}/correction/"): {
            "answer": "matrix",
            "doc-TOTAL_FORMS": "0",
            "doc-INITIAL_FORMS": "0",
        },
        ("POST", "/api/v1/rechecks/{pk}/answer/"): {"answer": "matrix"},
        ("POST", "/oversight/batches/{pk}/notice/"): {"days": "7"},
        ("POST", "/oversight/notice-entries/{pk}/objections/"): {"channel": "phone", "text": "matrix"},
        ("POST", "/oversight/objections/{pk}/uphold/"): {"resolution": "matrix"},
        ("POST", "/oversight/objections/{pk}/reject/"): {"resolution": "matrix"},
        ("POST", "/api/v1/rechecks/{pk}/decide/"): {"result": "pass", "reason": "matrix"},
        ("POST", "/api/v1/notices/"): {"batch": v["batch"], "days": 7},
        ("POST", "/api/v1/notice-entries/{pk}/objections/"): {"channel": "phone", "text": "matrix"},
        ("POST", "/api/v1/objections/{pk}/resolve/"): {"upheld": False, "resolution": "matrix"},
        ("POST", "/applications/new/check.json"): {
            "id_number": newcomer.id_number,
            "disease": world.copd.pk,
            "treating_institution": world.county.pk,
        },
    }


MULTIPART = {"/api/v1/applications/{pk}/documents/", "/api/v1/roster-imports/", "/api/v1/catalogue-imports/"}


def call(client: Client, method: str, route: str, path: str, body: Any) -> Any:
    body = body() if callable(body) else body
    if method == "GET":
        return client.get(path, body or {})
    if method == "DELETE":
        return client.delete(path)
    if route in MULTIPART:
        return client.post(path, body)
    if path.startswith("/api/"):
        return client.post(path, data=json.dumps(body or {}), content_type="application/json")
    return client.post(path, body or {})


def outcomes_for(world: Any, method: str, route: str, path: str, body: Any) -> dict[str, str]:
    """Each role's outcome, every call inside a rolled-back savepoint so that roles do not see each
    other's effects (a withdraw by the clerk must not turn the admin's withdraw into a 409)."""
    results = {}
    for role, user in users(world).items():
        client = Client()
        if user is not None:
            client.force_login(user)
        with transaction.atomic():
            results[role] = outcome(call(client, method, route, path, body), path)
            transaction.set_rollback(True)
    return results


CASES = sorted(EXPECTED)


@pytest.mark.parametrize(("method", "route"), CASES, ids=[f"{m} {p}" for m, p in CASES])
def test_permission_matrix(world, method, route, settings, tmp_path):
    settings.CELERY_TASK_ALWAYS_EAGER = False
    objects = _make_world_objects(world)
    expected = EXPECTED[(method, route)]
    path, kind = concrete(route, objects["same"])
    path = path.replace("__INSTITUTION__", world.county.code)
    body = bodies(world, objects["same"]).get((method, route))
    actual = outcomes_for(world, method, route, path, body)
    accepted = {OK: {OK}, HIDE: {HIDE}, DENY: {DENY, HIDE}}
    mismatches = {
        role: (expected[role], actual[role]) for role in ROLES if actual[role] not in accepted[expected[role]]
    }
    assert not mismatches, f"{method} {path}: role: (expected, actual) {mismatches}"

    if kind in SCOPED_KINDS:
        other_path, _kind = concrete(route, objects["other"])
        swapped = {"clinic": "clinic_other", "clinic_other": "clinic", "reviewer": "reviewer_other"}
        swapped["reviewer_other"] = "reviewer"
        other_actual = outcomes_for(world, method, route, other_path, body)
        problems = {}
        for role in STAFF:
            mirror = swapped.get(role, role)
            if role in ("physician", "officer"):
                mirror = "__same_side_only__"
            own = expected[mirror] if mirror in expected else expected[role]
            if role == "admin":
                want = {OK} if expected[role] == OK else {DENY, HIDE}
            elif mirror == "__same_side_only__":
                # Physician and officer work at the clerk's institution: the other side is out of scope.
                want = {HIDE} if expected[role] == OK else {DENY, HIDE}
            else:
                want = {own} if own != DENY else {DENY, HIDE}
            if other_actual[role] not in want:
                problems[role] = (sorted(want), other_actual[role])
        assert not problems, f"{method} {other_path} (other side's object): role: (expected, actual) {problems}"


def test_bulk_decide_by_non_reviewers_decides_nothing(world):
    objects = _make_world_objects(world)
    from reviews.models import ReviewItem

    item = ReviewItem.objects.get(pk=objects["same"].values["item"])
    for user in (world.clerk, world.physician_user, world.officer, world.admin, world.other_reviewer):
        client = Client()
        client.force_login(user)
        response = client.post(
            "/api/v1/review-items/bulk-decide/",
            data=json.dumps({"items": [item.pk], "decision": "approve"}),
            content_type="application/json",
        )
        # 400 "select at least one" when none of the items is in the caller's scope; 200 with failures otherwise.
        assert response.status_code in (200, 400, 403), response.content
        if response.status_code == 200:
            assert response.json()["decided"] in ([], 0) and len(response.json()["failed"]) == 1
    item.refresh_from_db()
    assert item.outcome == "pending" and item.decided_at is None


# Who may change which field of a registered person through POST /api/v1/persons/ (issue 18): the person
# holds an application filed at the clerk's institution (world.county); "clinic_other" holds none.
PERSON_CHANGES: dict[str, dict[str, str]] = {
    "phone": allow("clinic", "physician", "officer", "admin"),
    "insured_region": allow("officer", "admin"),
    "insurance_type": allow("officer", "admin"),
    "name": allow("officer", "admin"),
    "support_categories": allow("officer", "admin"),
}


@pytest.mark.parametrize("field", sorted(PERSON_CHANGES))
def test_person_change_matrix(world, field):
    from enrollment.models import Person, PersonAuditEntry

    person = world.person(name="张三", phone="13800000000")
    services.application_submit(
        person=person, disease=world.hypertension, treating_institution=world.county, actor=world.clerk
    )
    values = {
        "phone": "13911112222",
        "insured_region": world.other_region.code,
        "insurance_type": "310",
        "name": "李四",
        "support_categories": ["orphan"],
    }
    for role, user in users(world).items():
        Person.objects.filter(pk=person.pk).update(
            phone="13800000000", insured_region=world.region, insurance_type="390", name="张三"
        )
        client = Client()
        if user is not None:
            client.force_login(user)
        body = {"id_number": person.id_number, "name": "张三", "insured_region": world.region.code}
        body[field] = values[field]
        before = PersonAuditEntry.objects.filter(person=person, action="person_changed").count()
        response = client.post("/api/v1/persons/", data=json.dumps(body), content_type="application/json")
        got = outcome(response, "/api/v1/persons/")
        assert got == PERSON_CHANGES[field][role], (field, role, response.status_code, response.content[:300])
        changed = PersonAuditEntry.objects.filter(person=person, action="person_changed").count() - before
        if got == OK and field != "support_categories":
            assert changed == 1, (field, role)  # every change of a person's data has its audit row
        if got != OK:
            assert changed == 0


INLINE_CODE = re.compile(
    # Executable inline <script> (json_script data blocks are not executed, CSP allows them), <style>, style=,
    # on…= handlers, javascript: URLs.
    r"<script(?![^>]*\b(?:src=|type=\"application/json\"))[^>]*>\s*\S|<style\b|\sstyle\s*=|\son[a-z]+\s*=\s*[\"']"
    r"|javascript:",
    re.IGNORECASE,
)


@pytest.mark.parametrize("role", ["clinic", "physician", "reviewer", "officer", "admin"])
def test_no_web_page_needs_inline_script_or_style(world, role):
    """CSP is script-src 'self' / style-src 'self': inline code on any page would be blocked by the browser."""
    objects = _make_world_objects(world)
    client = Client()
    client.force_login(users(world)[role])
    checked = 0
    for (method, route), _expected in EXPECTED.items():
        if method != "GET" or route.startswith(("/api/", "/health/")) or route.endswith((".js", ".csv")):
            continue
        path, _kind = concrete(route, objects["same"])
        response = client.get(path)
        if response.status_code != 200 or not response["Content-Type"].startswith("text/html"):
            continue
        html = response.content.decode()
        match = INLINE_CODE.search(html)
        assert match is None, f"{path} as {role}: inline code {html[max(0, match.start() - 60) : match.end() + 60]!r}"
        assert "Content-Security-Policy" in response
        checked += 1
    assert checked >= 3
