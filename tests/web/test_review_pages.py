"""Reviewer queue, batch pages and reports: scoped, permitted, and acting through the reviews services."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone

from enrollment import report_selectors, services
from enrollment.models import Application, State
from enrollment.periods import period_key
from reviews import services as review_services
from reviews.models import ReviewItem
from tests.reviews.helpers import MARCH_2
from tests.web.conftest import diagnose, file_application

pytestmark = pytest.mark.django_db


def run_batch(world: Any) -> Any:
    return review_services.batch_assemble(
        region_id=world.region.pk,
        period=period_key(timezone.localdate()),
        actor=services.get_system_user(),
        cutoff=timezone.now(),
    )


def diagnose_three(world: Any) -> None:
    for _ in range(3):
        diagnose(world, file_application(world))


@pytest.fixture
def batch(world: Any) -> Any:
    diagnose_three(world)
    return run_batch(world)


def test_queue_only_for_reviewers(world: Any, client_for: Any) -> None:
    for attr in ("clerk", "physician_user", "officer", "admin"):
        assert client_for(getattr(world, attr)).get(reverse("review-queue")).status_code == 403
        assert client_for(getattr(world, attr)).post(reverse("review-claim"), {"count": 1}).status_code == 403
    assert client_for(world.reviewer).get(reverse("review-queue")).status_code == 200


def test_claim_then_approve_one_from_its_row(world: Any, client_for: Any, batch: Any) -> None:
    client = client_for(world.reviewer)
    page = client.get(reverse("review-queue"))
    assert page.context["waiting"] == 3 and page.context["claimed"] == []
    response = client.post(reverse("review-claim"), {"count": 2, "stage": ""})
    assert response.status_code == 302
    page = client.get(reverse("review-queue"))
    claimed = page.context["claimed"]
    assert len(claimed) == 2 and page.context["waiting"] == 1
    assert all(0 < item.seconds_left <= 30 * 60 for item in claimed)
    body = page.content.decode()
    assert (
        'data-seconds="' in body
        and reverse("document-download", args=[claimed[0].application.documents.first().pk]) in body
    )
    assert claimed[0].application.person.id_number not in body  # masked in the queue
    first = claimed[0]
    response = client.post(reverse("review-decide"), {"one": f"approve:{first.pk}", "decision": "approve"})
    assert response.status_code == 302
    application = Application.objects.get(pk=first.application_id)
    assert application.state == State.APPROVED and application.valid_until is not None


def test_bulk_reject_needs_reason_and_clears_selection(world: Any, client_for: Any, batch: Any) -> None:
    client = client_for(world.reviewer, "zh-hans")
    client.post(reverse("review-claim"), {"count": 3})
    ids = list(ReviewItem.objects.filter(claimed_by=world.reviewer).values_list("pk", flat=True))
    response = client.post(reverse("review-decide"), {"items": ids[:2], "decision": "reject", "reason_code": ""})
    assert response.status_code == 400
    # Nothing stays ticked for the next decision, and the error is at the top in plain words, without codes.
    assert response.context["selected"] == set()
    body = response.content.decode()
    assert "checked" not in body.split('id="claimed-items"')[1].split("</table>")[0]
    summary = body.split('id="decide-errors"')[1].split("</div>")[0]
    assert body.index('id="decide-errors"') < body.index('id="claim-form"')
    assert "驳回需要理由" in summary and "criteria_not_met" not in summary and "insufficient_evidence" not in summary
    response = client.post(
        reverse("review-decide"),
        {"items": ids[:2], "decision": "reject", "reason_code": "insufficient_evidence", "reason": "缺少检查报告"},
    )
    assert response.status_code == 302
    states = set(Application.objects.filter(review_items__pk__in=ids[:2]).values_list("state", flat=True))
    assert states == {State.REJECTED}


def test_bulk_reject_applies_the_two_diseases_choice(world: Any, client_for: Any, batch: Any) -> None:
    client = client_for(world.reviewer)
    client.post(reverse("review-claim"), {"count": 3})
    ids = list(ReviewItem.objects.filter(claimed_by=world.reviewer).values_list("pk", flat=True))
    response = client.post(
        reverse("review-decide"),
        {
            "items": ids,
            "decision": "reject",
            "reason_code": "criteria_not_met",
            "reason": "血压未达门慢标准",
            "two_diseases": "on",
        },
    )
    assert response.status_code == 302
    persons = Application.objects.filter(review_items__pk__in=ids).values_list("person", flat=True)
    fallbacks = Application.objects.filter(person__in=list(persons), kind="two_diseases", state=State.APPROVED)
    assert fallbacks.count() == len(ids) == 3


def test_deciding_an_item_not_claimed_is_refused(world: Any, client_for: Any, batch: Any) -> None:
    item = ReviewItem.objects.first()
    response = client_for(world.reviewer).post(reverse("review-decide"), {"items": [item.pk], "decision": "approve"})
    assert response.status_code == 400  # not one of my claimed items
    assert Application.objects.get(pk=item.application_id).state == State.IN_REVIEW


def test_release_gives_items_back(world: Any, client_for: Any, batch: Any) -> None:
    client = client_for(world.reviewer)
    client.post(reverse("review-claim"), {"count": 2})
    assert client.post(reverse("review-release"), {}).status_code == 302
    assert not ReviewItem.objects.filter(claimed_by=world.reviewer).exists()


def test_other_region_reviewer_sees_nothing(world: Any, client_for: Any, batch: Any) -> None:
    client = client_for(world.other_reviewer)
    client.post(reverse("review-claim"), {"count": 5})
    assert client.get(reverse("review-queue")).context["claimed"] == []
    assert client.get(reverse("batch-detail", args=[batch.pk])).status_code == 404
    assert list(client.get(reverse("batch-list")).context["page"].object_list) == []


def test_batch_pages(world: Any, client_for: Any, batch: Any) -> None:
    for attr in ("reviewer", "admin"):
        client = client_for(getattr(world, attr))
        listing = client.get(reverse("batch-list"))
        assert [b.pk for b in listing.context["page"].object_list] == [batch.pk]
        detail = client.get(reverse("batch-detail", args=[batch.pk]))
        assert detail.status_code == 200
        assert detail.context["total"] == 3 and detail.context["progress"] == 0
        assert "M03900" in detail.content.decode()
    assert client_for(world.clerk).get(reverse("batch-list")).status_code == 403
    filtered = client_for(world.admin).get(reverse("batch-list"), {"period": "1999-01"})
    assert list(filtered.context["page"].object_list) == []


# -- reports --------------------------------------------------------------------------------------------


# The clock stands still on 2 March 2026 (Asia/Shanghai) from before the fixtures run: the marker's fixture
# is set up first. Not the 1st of a month on purpose — approved on the 1st, a 36-month period ends inside a
# 36-month report window (tests/enrollment/test_report_month_edges.py covers that day).
@pytest.mark.time_machine(MARCH_2, tick=False)
def test_reports_for_admins_with_charts_and_csv(world: Any, client_for: Any, time_machine: Any) -> None:
    assert timezone.localdate() == dt.date(2026, 3, 2)
    assert world.admin.date_joined == MARCH_2  # the fixtures ran on the pinned clock too
    diagnose_three(world)
    time_machine.shift(dt.timedelta(minutes=1))  # assemble after the diagnoses: the batch cutoff is exclusive
    run_batch(world)
    reviewer = client_for(world.reviewer)
    reviewer.post(reverse("review-claim"), {"count": 3})
    ids = list(ReviewItem.objects.filter(claimed_by=world.reviewer).values_list("pk", flat=True))
    reviewer.post(reverse("review-decide"), {"items": ids[:2], "decision": "approve"})
    reviewer.post(
        reverse("review-decide"),
        {"items": ids[2:], "decision": "reject", "reason_code": "criteria_not_met", "reason": "血压未达标"},
    )
    client = client_for(world.admin)
    page = client.get(reverse("reports"))
    assert page.status_code == 200
    tables = {t.key: t for t, _chart in page.context["tables"]}
    month = period_key(timezone.localdate())
    assert tables["filings"].rows == [{"month": month, "filed": 3, "renewals": 0}]
    assert tables["by_disease"].rows[0]["approved"] == 2 and tables["by_disease"].rows[0]["rejected"] == 1
    assert tables["by_institution"].rows[0]["institution"] == world.county.name
    assert tables["time_to_decision"].rows == [
        {"month": month, "decided": 3, "within_7": 3, "within_30": 0, "within_60": 0, "over_60": 0}
    ]
    # Approved on 2 March 2026, the periods end in March 2029 (1 March from the filing or decision date,
    # 31 March from the 1st of next month): the 37th calendar month counting March 2026 as the first.
    approved = Application.objects.filter(state=State.APPROVED)
    assert approved.count() == 2
    assert {a.valid_until.strftime("%Y-%m") for a in approved} == {"2029-03"}
    expiry_month = tables["expiring"].rows
    assert expiry_month == []  # 36 months ahead: beyond the 12-month window
    body = page.content.decode()
    assert reverse("plotly-js") in body and 'id="filings" type="application/json"' in body
    csv = client.get(reverse("report-csv", args=["by_disease"]))
    assert csv.status_code == 200 and csv["Content-Type"].startswith("text/csv")
    text = csv.content.decode("utf-8-sig").splitlines()
    assert text[0] == "code,disease,approved,rejected,returned"
    assert text[1] == "M03900,高血压病,2,1,0"
    assert client.get(reverse("report-csv", args=["nope"])).status_code == 404
    wide = client.get(reverse("reports"), {"months": "36"})
    assert wide.context["months"] == 36
    assert {t.key: t for t, _c in wide.context["tables"]}["expiring"].values("expiring") == []
    # ... and only just: one calendar month more (past the page's 36-month cap) shows both of them.
    assert report_selectors.expiring_per_month(world.admin, months=37).rows == [
        {"month": "2029-03", "expiring": 2, "renewal_filed": 0}
    ]


def test_reports_expiring_per_month(world: Any, client_for: Any, approved: Any) -> None:
    tables = {t.key: t for t, _c in client_for(world.admin).get(reverse("reports")).context["tables"]}
    assert tables["expiring"].rows == [
        {"month": approved.valid_until.strftime("%Y-%m"), "expiring": 1, "renewal_filed": 0}
    ]


def test_reports_only_for_admins(world: Any, client_for: Any) -> None:
    for attr in ("clerk", "physician_user", "reviewer", "officer"):
        assert client_for(getattr(world, attr)).get(reverse("reports")).status_code == 403
        assert client_for(getattr(world, attr)).get(reverse("report-csv", args=["filings"])).status_code == 403
