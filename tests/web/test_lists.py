"""Working lists (issue 15 items 6–7): filters and sort in shareable links, the name / ID search kept out of
URLs, saved views, exports within scope, the queue's outcome report, error pages, favicon, charts."""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from django.urls import reverse
from django.utils import timezone

from enrollment import charts, services
from enrollment.models import Application, PersonalDataAccess, SavedView, State
from enrollment.periods import period_key
from reviews import services as review_services
from reviews.models import ReviewItem
from tests.web.conftest import diagnose, file_application

pytestmark = pytest.mark.django_db


def file_elsewhere(world: Any) -> Application:
    """Another clinic's application, treated there too: outside the county clerk's scope."""
    from tests.conftest import pdf_upload

    return services.application_submit(
        person=world.person(),
        disease=world.hypertension,
        treating_institution=world.other_clinic,
        documents=[("diagnosis_certificate", pdf_upload())],
        actor=world.other_clerk,
    )


def ids(response: Any) -> list[int]:
    return [a.pk for a in response.context["page"].object_list]


# -- filters, sort, pages --------------------------------------------------------------------------


def test_filters_narrow_the_scoped_list_and_stay_in_the_link(world: Any, client_for: Any, time_machine: Any) -> None:
    time_machine.move_to(dt.datetime(2028, 2, 28, 10, tzinfo=dt.UTC))
    early = file_application(world)
    time_machine.move_to(dt.datetime(2028, 2, 29, 10, tzinfo=dt.UTC))  # a leap day
    leap = diagnose(world, file_application(world, disease=world.diabetes), icd10="E11.9")
    time_machine.move_to(dt.datetime(2028, 3, 1, 10, tzinfo=dt.UTC))
    copd = file_application(world, disease=world.copd)
    file_elsewhere(world)  # another clinic's: never in this clerk's list
    client = client_for(world.clerk)
    assert set(ids(client.get(reverse("application-list")))) == {early.pk, leap.pk, copd.pk}
    assert ids(client.get(reverse("application-list"), {"state": ["diagnosed"]})) == [leap.pk]
    assert set(ids(client.get(reverse("application-list"), {"state": ["diagnosed", "submitted"]}))) == {
        early.pk,
        leap.pk,
        copd.pk,
    }
    assert ids(client.get(reverse("application-list"), {"disease": world.copd.code})) == [copd.pk]
    on_leap_day = client.get(reverse("application-list"), {"filed_after": "2028-02-29", "filed_before": "2028-02-29"})
    assert ids(on_leap_day) == [leap.pk]
    assert ids(client.get(reverse("application-list"), {"diagnosed_after": "2028-02-01"})) == [leap.pk]
    region = client.get(reverse("application-list"), {"region": world.province.code})  # the province and below
    assert len(ids(region)) == 3
    institution = client.get(reverse("application-list"), {"institution": world.county.code})
    assert len(ids(institution)) == 3
    # Sort by a whitelisted key, both ways; an unknown key is ignored (default: newest filed first).
    assert ids(client.get(reverse("application-list"), {"o": "filed"})) == [early.pk, leap.pk, copd.pk]
    assert ids(client.get(reverse("application-list"), {"o": "-filed"})) == [copd.pk, leap.pk, early.pk]
    assert ids(client.get(reverse("application-list"), {"o": "person__id_number"})) == [copd.pk, leap.pk, early.pk]
    # The sort links keep the filters, and a disease filter offers only what the clinic's list holds.
    page = client.get(reverse("application-list"), {"state": ["submitted"], "o": "filed"})
    body = page.content.decode()
    assert "state=submitted&amp;o=-filed" in body
    offered = {d.code for d in page.context["filterset"].form.fields["disease"].queryset}
    assert offered == {world.hypertension.code, world.diabetes.code, world.copd.code}


def test_pages_keep_the_filters(world: Any, client_for: Any, settings: Any) -> None:
    from enrollment import list_selectors

    for _ in range(3):
        file_application(world)
    original = list_selectors.LIST_PAGE_SIZE
    list_selectors.LIST_PAGE_SIZE = 2
    try:
        page = client_for(world.clerk).get(reverse("application-list"), {"state": ["submitted"], "o": "filed"})
    finally:
        list_selectors.LIST_PAGE_SIZE = original
    assert page.context["page"].paginator.num_pages == 2
    assert "?state=submitted&amp;o=filed&amp;page=2" in page.content.decode()


def test_assignee_filter_lists_what_a_reviewer_holds(world: Any, client_for: Any) -> None:
    for _ in range(3):
        diagnose(world, file_application(world))
    review_services.batch_assemble(
        region_id=world.region.pk,
        period=period_key(timezone.localdate()),
        actor=services.get_system_user(),
        cutoff=timezone.now(),
    )
    client = client_for(world.reviewer)
    client.post(reverse("review-claim"), {"count": 2})
    held = set(ReviewItem.objects.filter(claimed_by=world.reviewer).values_list("application_id", flat=True))
    response = client.get(reverse("application-list"), {"assignee": world.reviewer.username})
    assert set(ids(response)) == held and len(held) == 2
    # The filter is not offered to a clinic (it is the reviewers' business).
    assert "assignee" not in client_for(world.clerk).get(reverse("application-list")).context["filterset"].form.fields


def test_deadline_filter_finds_items_past_their_stage_deadline(world: Any, client_for: Any) -> None:
    for _ in range(3):
        diagnose(world, file_application(world))
    review_services.batch_assemble(
        region_id=world.region.pk,
        period=period_key(timezone.localdate()),
        actor=services.get_system_user(),
        cutoff=timezone.now(),
    )
    items = list(ReviewItem.objects.order_by("pk"))
    today = timezone.localdate()
    # One past its deadline, one due in three days, one due in a month.
    ReviewItem.objects.filter(pk=items[0].pk).update(due_on=today - dt.timedelta(days=1))
    ReviewItem.objects.filter(pk=items[1].pk).update(due_on=today + dt.timedelta(days=3))
    ReviewItem.objects.filter(pk=items[2].pk).update(due_on=today + dt.timedelta(days=30))
    client = client_for(world.reviewer)
    assert set(ids(client.get(reverse("application-list"), {"deadline": "overdue"}))) == {items[0].application_id}
    soon = client.get(reverse("application-list"), {"deadline": "due_7"})
    assert soon.status_code == 200, soon.status_code
    assert set(ids(soon)) == {items[1].application_id}
    # Due today is not yet overdue; due yesterday is.
    ReviewItem.objects.filter(pk=items[1].pk).update(due_on=today)
    assert set(ids(client.get(reverse("application-list"), {"deadline": "overdue"}))) == {items[0].application_id}
    ReviewItem.objects.filter(pk=items[1].pk).update(due_on=today - dt.timedelta(days=1))
    overdue = set(ids(client.get(reverse("application-list"), {"deadline": "overdue"})))
    assert overdue == {items[0].application_id, items[1].application_id}
    # A decided item no longer counts.
    ReviewItem.objects.filter(pk=items[0].pk).update(outcome="approved")
    assert set(ids(client.get(reverse("application-list"), {"deadline": "overdue"}))) == {items[1].application_id}


# -- the name / ID search: POST, then a token in the session --------------------------------------------


def test_id_search_goes_by_post_and_never_into_the_url(world: Any, client_for: Any, time_machine: Any) -> None:
    time_machine.move_to(dt.datetime(2027, 12, 31, 23, 50, tzinfo=dt.UTC))
    wanted = file_application(world)
    file_application(world)
    client = client_for(world.clerk)
    number = wanted.person.id_number
    response = client.post(reverse("application-list"), {"q": number.lower(), "filters": "state=submitted"})
    assert response.status_code == 302
    location = response["Location"]
    assert number not in location and number.lower() not in location
    query = parse_qs(urlparse(location).query)
    assert query["state"] == ["submitted"] and len(query["s"][0]) >= 10
    page = client.get(location)
    assert ids(page) == [wanted.pk] and page.context["searching"]
    # The token means nothing to another user.
    other = client_for(world.admin).get(location)
    assert len(ids(other)) == 2 and not other.context["searching"]
    # Nor after 30 minutes (across the year end).
    time_machine.move_to(dt.datetime(2028, 1, 1, 0, 21, tzinfo=dt.UTC))
    expired = client.get(location)
    assert len(ids(expired)) == 2
    # A search by part of a name works the same way.
    by_name = client.post(reverse("application-list"), {"q": wanted.person.name}, follow=True)
    assert wanted.pk in ids(by_name)
    assert all(wanted.person.name not in url for url, _status in by_name.redirect_chain)


# -- saved views -----------------------------------------------------------------------------------------


def test_saved_views_are_per_user_and_never_keep_the_search(world: Any, client_for: Any) -> None:
    file_application(world)
    client = client_for(world.clerk)
    response = client.post(
        reverse("saved-view-save"),
        {"name": "待诊断", "filters": "state=submitted&s=secret-token&page=3&bogus=1&filed_after=2026-01-01"},
    )
    assert response.status_code == 302
    view = SavedView.objects.get(user=world.clerk)
    assert view.query == "state=submitted&filed_after=2026-01-01"
    listing = client.get(reverse("application-list"))
    assert [v.name for v in listing.context["saved_views"]] == ["待诊断"]
    assert f"?{view.query}".replace("&", "&amp;") in listing.content.decode()
    # Saving under the same name replaces it; the old row is kept, stamped deleted.
    client.post(reverse("saved-view-save"), {"name": "待诊断", "filters": "state=diagnosed"})
    assert SavedView.objects.filter(user=world.clerk).count() == 2
    live = SavedView.objects.get(user=world.clerk, deleted_at__isnull=True)
    assert live.query == "state=diagnosed"
    # Another user neither sees nor deletes it.
    assert list(client_for(world.other_clerk).get(reverse("application-list")).context["saved_views"]) == []
    assert client_for(world.other_clerk).post(reverse("saved-view-delete", args=[live.pk])).status_code == 404
    assert client.post(reverse("saved-view-delete", args=[live.pk])).status_code == 302
    live.refresh_from_db()
    assert live.deleted_at is not None
    assert client.post(reverse("saved-view-save"), {"name": "  ", "filters": ""}).status_code == 302
    assert SavedView.objects.filter(user=world.clerk, deleted_at__isnull=True).count() == 0


# -- export ------------------------------------------------------------------------------------------------


def _csv_rows(response: Any) -> list[list[str]]:
    text = b"".join(response.streaming_content).decode("utf-8-sig")
    return list(csv.reader(io.StringIO(text)))


def test_export_masks_id_numbers_and_logs_full_ones(world: Any, client_for: Any) -> None:
    mine = file_application(world)
    file_application(world, disease=world.copd)
    file_elsewhere(world)
    client = client_for(world.clerk)
    rows = _csv_rows(client.get(reverse("application-export-csv"), {"disease": world.hypertension.code}))
    assert len(rows) == 2 and rows[1][0] == str(mine.pk)
    assert mine.person.id_number not in rows[1] and "*" in rows[1][2]
    assert PersonalDataAccess.objects.count() == 0
    full = _csv_rows(client.get(reverse("application-export-csv"), {"full_ids": "1"}))
    assert len(full) == 3  # the other clinic's application is outside the scope
    assert mine.person.id_number in [row[2] for row in full]
    logged = PersonalDataAccess.objects.filter(viewer=world.clerk, purpose="export_full_id")
    assert logged.count() == 2 and "application list export" in logged.first().reason
    # A reviewer asking for full numbers still gets them masked, and nothing is logged.
    reviewer_rows = _csv_rows(client_for(world.reviewer).get(reverse("application-export-csv"), {"full_ids": "1"}))
    assert all("*" in row[2] for row in reviewer_rows[1:])
    assert PersonalDataAccess.objects.filter(viewer=world.reviewer).count() == 0


def test_export_xlsx_follows_the_search_token(world: Any, client_for: Any) -> None:
    from openpyxl import load_workbook

    wanted = file_application(world)
    file_application(world)
    client = client_for(world.clerk)
    location = client.post(reverse("application-list"), {"q": wanted.person.id_number})["Location"]
    token = parse_qs(urlparse(location).query)["s"][0]
    response = client.get(reverse("application-export-xlsx"), {"s": token})
    assert response["Content-Disposition"].endswith('.xlsx"')
    sheet = load_workbook(io.BytesIO(b"".join(response.streaming_content))).active
    values = list(sheet.values)
    assert len(values) == 2 and values[1][0] == wanted.pk


# -- queue: per-item outcome report, 两病 carried, plain errors -------------------------------------------------


def test_bulk_decision_reports_each_item(world: Any, client_for: Any) -> None:
    hypertension = diagnose(world, file_application(world))
    copd = diagnose(world, file_application(world, disease=world.copd), icd10="J44.9")
    review_services.batch_assemble(
        region_id=world.region.pk,
        period=period_key(timezone.localdate()),
        actor=services.get_system_user(),
        cutoff=timezone.now(),
    )
    client = client_for(world.reviewer, "zh-hans")
    client.post(reverse("review-claim"), {"count": 5})
    items = list(ReviewItem.objects.filter(claimed_by=world.reviewer).values_list("pk", flat=True))
    response = client.post(
        reverse("review-decide"),
        {
            "items": items,
            "decision": "reject",
            "reason_code": "criteria_not_met",
            "reason": "未达标准",
            "two_diseases": "on",
        },
    )
    assert response.status_code == 302
    page = client.get(reverse("review-queue"))
    report = page.context["outcome"]
    outcomes = {row["item"].application_id: (row["decided"], row["message"]) for row in report["rows"]}
    assert outcomes[hypertension.pk] == (True, "")
    assert outcomes[copd.pk][0] is False and "两病" in outcomes[copd.pk][1]
    assert Application.objects.get(pk=hypertension.pk).state == State.REJECTED
    assert Application.objects.filter(person=hypertension.person, kind="two_diseases").exists()
    assert 'id="outcome-report"' in page.content.decode()
    # Shown once.
    assert client.get(reverse("review-queue")).context["outcome"] is None


def test_two_diseases_without_its_rejection_is_refused_in_plain_words(world: Any, client_for: Any) -> None:
    diagnose(world, file_application(world))
    review_services.batch_assemble(
        region_id=world.region.pk,
        period=period_key(timezone.localdate()),
        actor=services.get_system_user(),
        cutoff=timezone.now(),
    )
    client = client_for(world.reviewer, "zh-hans")
    client.post(reverse("review-claim"), {"count": 1})
    item = ReviewItem.objects.get(claimed_by=world.reviewer)
    response = client.post(reverse("review-decide"), {"items": [item.pk], "decision": "approve", "two_diseases": "on"})
    assert response.status_code == 400
    summary = response.content.decode().split('id="decide-errors"')[1].split("</div>")[0]
    assert "两病" in summary and "two_diseases" not in summary
    assert Application.objects.get(pk=item.application_id).state == State.IN_REVIEW


# -- filing and diagnosis forms ---------------------------------------------------------------------------------


def test_diagnosis_date_defaults_to_today(world: Any, client_for: Any, time_machine: Any) -> None:
    time_machine.move_to(dt.datetime(2028, 2, 29, 23, 30, tzinfo=dt.UTC))  # already 1 March in China
    submitted = file_application(world)
    page = client_for(world.physician_user).get(reverse("application-diagnose", args=[submitted.pk]))
    assert page.context["form"]["diagnosis_date"].value() == dt.date(2028, 3, 1)
    assert 'value="2028-03-01"' in page.content.decode()


def test_id_field_enter_looks_up_without_javascript(world: Any, client_for: Any) -> None:
    """The look-up button is the form's first submit button: Enter in the ID field (implicit submission) looks
    the person up instead of filing the half-filled form."""
    body = client_for(world.clerk).get(reverse("application-file")).content.decode()
    form = body.split('id="filing-form"')[1]
    first_button = form[form.index("<button") : form.index(">", form.index("<button"))]
    assert 'value="lookup"' in first_button
    assert form.index('name="id_number"') < form.index('value="lookup"') < form.index('id="submit-filing"')


# -- error pages and favicon ----------------------------------------------------------------------------------------


def test_404_and_403_pages_are_translated_with_navigation(world: Any, client_for: Any) -> None:
    client = client_for(world.clerk, "zh-hans")
    missing = client.get("/no-such-page/")
    assert missing.status_code == 404
    body = missing.content.decode()
    assert "这里没有" in body and reverse("home") in body and reverse("application-list") in body
    denied = client.get(reverse("reports"))
    assert denied.status_code == 403
    assert "您的角色" in denied.content.decode() and 'id="error-home"' in denied.content.decode()
    assert client_for(world.other_clerk, "zh-hans").get(reverse("application-detail", args=[99999])).status_code == 404


def test_500_page_renders_without_the_database() -> None:
    """No django_db mark: any query would fail the test. Django renders 500.html without a request."""
    from django.template import loader
    from django.utils import translation

    with translation.override("zh-hans"):
        html = loader.get_template("500.html").render()
    assert "出错" in html and 'href="/"' in html


def test_api_errors_stay_json(world: Any, client_for: Any) -> None:
    response = client_for(world.clerk).get("/api/v1/no-such-endpoint/")
    assert response.status_code == 404 and response.json()["code"] == "not_found"


def test_favicon(client: Any) -> None:
    response = client.get("/favicon.ico")
    assert response.status_code == 302 and response["Location"].endswith("favicon.svg")


# -- charts ------------------------------------------------------------------------------------------------------------


def test_charts_colour_by_meaning_with_the_legend_above(world: Any) -> None:
    from enrollment import report_selectors

    table = report_selectors.Table(
        key="by_disease",
        title="t",
        columns=[("code", "code"), ("disease", "disease"), *report_selectors.DECISION_COLUMNS],
        rows=[{"code": "M03900", "disease": "高血压", "approved": 3, "rejected": 1, "returned": 2}],
    )
    assert charts.has_data(table)
    figure = charts.report_figure(table)
    colours = {trace["name"]: trace["marker"]["color"] for trace in figure["data"]}
    labels = dict(report_selectors.DECISION_COLUMNS)
    assert colours[str(labels["approved"])] == charts.OK
    assert colours[str(labels["rejected"])] == charts.BAD
    assert colours[str(labels["returned"])] == charts.WAIT
    legend = figure["layout"]["legend"]
    assert legend["orientation"] == "h" and legend["y"] > 1 and legend["yanchor"] == "bottom"
    assert figure["data"][0]["orientation"] == "h"  # disease names on the left, not under each other
    empty = report_selectors.Table(key="by_disease", title="t", columns=table.columns, rows=[])
    assert not charts.has_data(empty)


def test_reports_page_shows_an_empty_state(world: Any, client_for: Any) -> None:
    page = client_for(world.admin, "zh-hans").get(reverse("reports"))
    body = page.content.decode()
    assert body.count('data-testid="chart-empty"') >= len(page.context["tables"])
    for table, chart in page.context["tables"]:
        assert chart is None and f'data-figure="{table.key}"' not in body
