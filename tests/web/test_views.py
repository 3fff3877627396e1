"""Every page for every role: scoping (404 outside), actions shown only when permitted (403 on POST otherwise)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from enrollment import services
from enrollment.models import Application, Person, State
from kernel import roles
from tests.conftest import pdf_upload
from tests.factories import UserFactory
from tests.web.conftest import diagnose, file_application

pytestmark = pytest.mark.django_db


def _return(application: Application, actor: Any) -> None:
    system = services.get_system_user()
    with transaction.atomic():
        locked = services.lock_application(application.pk)
        services.run_transition(application=locked, name="enqueue", actor=system)
        services.run_transition(
            application=locked, name="return_for_information", actor=actor, missing="附上近三个月血压记录"
        )


# -- login, logout, home pages -----------------------------------------------------------


def test_anonymous_is_sent_to_login(world: Any, client: Any, submitted: Application) -> None:
    for url in (
        reverse("home"),
        reverse("application-list"),
        reverse("application-file"),
        reverse("application-detail", args=[submitted.pk]),
        reverse("application-diagnose", args=[submitted.pk]),
        reverse("filing-check"),
    ):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith(reverse("login")), url


def test_login_shows_role_and_institution_and_logout(world: Any, client: Any) -> None:
    page = client.get(reverse("login"))
    assert page.status_code == 200
    assert "登录" in page.content.decode()  # Chinese by default
    response = client.post(reverse("login"), {"username": world.clerk.username, "password": "pw-for-tests-2026"})
    assert response.status_code == 302 and response["Location"] == reverse("home")
    home = client.get(reverse("home"), HTTP_ACCEPT_LANGUAGE="zh-hans")
    body = home.content.decode()
    assert "定点医疗机构工作人员" in body or "医疗机构经办人员" in body
    assert world.county.name in body
    assert client.post(reverse("logout")).status_code == 302
    assert client.get(reverse("home")).status_code == 302


def test_wrong_password_keeps_username_and_shows_error(world: Any, client: Any) -> None:
    response = client.post(reverse("login"), {"username": world.clerk.username, "password": "nope"})
    assert response.status_code == 200
    body = response.content.decode()
    assert f'value="{world.clerk.username}"' in body
    assert 'class="errors"' in body


@pytest.mark.parametrize(
    ("attr", "template"),
    [
        ("clerk", "enrollment/home_clinic.html"),
        ("physician_user", "enrollment/home_physician.html"),
        ("reviewer", "enrollment/home_reviewer.html"),
        ("officer", "enrollment/home_officer.html"),
        ("admin", "enrollment/home_admin.html"),
    ],
)
def test_each_role_lands_on_its_home(world: Any, client_for: Any, attr: str, template: str, submitted: Any) -> None:
    response = client_for(getattr(world, attr)).get(reverse("home"))
    assert response.status_code == 200
    assert template in [t.name for t in response.templates]


def test_user_without_role_gets_a_plain_home(world: Any, client_for: Any) -> None:
    response = client_for(UserFactory()).get(reverse("home"))
    assert response.status_code == 200
    assert "enrollment/home_none.html" in [t.name for t in response.templates]


def test_clinic_home_counts_returned_first_and_renewal_worklist(
    world: Any, client_for: Any, approved: Application
) -> None:
    returned = file_application(world)
    diagnose(world, returned)
    _return(returned, world.reviewer)
    far = file_application(world)  # submitted, not in the worklist
    response = client_for(world.clerk).get(reverse("home"))
    counts = response.context["counts"]
    assert counts[0][0] == State.RETURNED and counts[0][2] == 1
    assert dict((s, n) for s, _label, n in counts)[State.APPROVED] == 1
    assert [a.pk for a in response.context["returned"]] == [returned.pk]
    assert [a.pk for a in response.context["renewals"]] == [approved.pk]
    body = response.content.decode()
    assert reverse("application-renew", args=[approved.pk]) in body
    assert far.pk not in [a.pk for a in response.context["renewals"]]


def test_renewal_worklist_leaves_out_enrollments_expiring_later(world: Any, client_for: Any, approved: Any) -> None:
    Application.objects.filter(pk=approved.pk).update(valid_until=timezone.localdate() + dt.timedelta(days=181))
    response = client_for(world.clerk).get(reverse("home"))
    assert list(response.context["renewals"]) == []


def test_other_clinic_home_does_not_list_this_clinics_applications(world: Any, client_for: Any, submitted: Any) -> None:
    response = client_for(world.other_clerk).get(reverse("home"))
    assert sum(n for _s, _l, n in response.context["counts"]) == 0
    body = response.content.decode()
    assert submitted.person.name not in body
    assert body.count("No application is waiting for more information.") == 1  # not reused for other lists
    assert "Nothing here." in body


def test_physician_home_lists_waiting_for_diagnosis(world: Any, client_for: Any, submitted: Any) -> None:
    response = client_for(world.physician_user).get(reverse("home"))
    assert [a.pk for a in response.context["waiting"]] == [submitted.pk]
    assert reverse("application-diagnose", args=[submitted.pk]) in response.content.decode()


def test_officer_home_lists_immediate_mode_diagnosed(world: Any, client_for: Any) -> None:
    application = diagnose(world, file_application(world, disease=world.dialysis), icd10="N18.5")
    response = client_for(world.officer).get(reverse("home"))
    assert [a.pk for a in response.context["waiting"]] == [application.pk]


# -- list ------------------------------------------------------------------------------------


def test_application_list_is_scoped_and_filtered(world: Any, client_for: Any, submitted: Any, diagnosed: Any) -> None:
    mine = client_for(world.clerk).get(reverse("application-list"))
    assert {a.pk for a in mine.context["page"].object_list} == {submitted.pk, diagnosed.pk}
    filtered = client_for(world.clerk).get(reverse("application-list"), {"state": "diagnosed"})
    assert [a.pk for a in filtered.context["page"].object_list] == [diagnosed.pk]
    by_id = client_for(world.clerk).post(reverse("application-list"), {"q": submitted.person.id_number}, follow=True)
    assert [a.pk for a in by_id.context["page"].object_list] == [submitted.pk]
    assert all(submitted.person.id_number not in url for url, _status in by_id.redirect_chain)
    theirs = client_for(world.other_clerk).get(reverse("application-list"))
    assert list(theirs.context["page"].object_list) == []
    other_region = client_for(world.other_reviewer).get(reverse("application-list"))
    assert list(other_region.context["page"].object_list) == []
    region = client_for(world.reviewer).get(reverse("application-list"))
    assert len(region.context["page"].object_list) == 2
    # ID numbers are masked in lists, for everyone.
    assert submitted.person.id_number not in mine.content.decode()


def test_application_list_query_count_is_flat(world: Any, client_for: Any, django_assert_max_num_queries: Any) -> None:
    for _ in range(6):
        file_application(world)
    client = client_for(world.clerk)
    with django_assert_max_num_queries(12):
        client.get(reverse("application-list"))


# -- application page ----------------------------------------------------------------------------


def test_clinic_b_cannot_open_clinic_as_application(world: Any, client_for: Any, submitted: Any) -> None:
    client = client_for(world.other_clerk)
    assert client.get(reverse("application-detail", args=[submitted.pk])).status_code == 404
    document = submitted.documents.get()
    assert client.get(reverse("document-download", args=[document.pk])).status_code == 404
    response = client.post(
        reverse("application-action", args=[submitted.pk, "withdraw"]),
        {"withdraw-confirm": "on", "withdraw-reason": "x"},
    )
    assert response.status_code == 404
    assert client_for(world.other_reviewer).get(reverse("application-detail", args=[submitted.pk])).status_code == 404
    submitted.refresh_from_db()
    assert submitted.state == State.SUBMITTED


def test_application_page_shows_person_disease_documents_timeline(world: Any, client_for: Any, diagnosed: Any) -> None:
    response = client_for(world.clerk).get(reverse("application-detail", args=[diagnosed.pk]))
    assert response.status_code == 200
    body = response.content.decode()
    assert diagnosed.person.id_number in body  # the filing clerk identifies the applicant
    assert "M03900" in body and "I10" in body
    assert reverse("document-download", args=[diagnosed.documents.get().pk]) in body
    assert [e.transition for e in response.context["timeline"]] == ["submit", "diagnose"]
    assert "diagnosis recorded" in body


@pytest.mark.parametrize("attr", ["physician_user", "reviewer", "officer"])
def test_id_number_masked_for_roles_that_do_not_need_it(world: Any, client_for: Any, attr: str, submitted: Any) -> None:
    body = client_for(getattr(world, attr)).get(reverse("application-detail", args=[submitted.pk])).content.decode()
    assert submitted.person.id_number not in body
    assert submitted.person.masked_id_number in body


def test_actions_shown_match_the_role(world: Any, client_for: Any, submitted: Any, approved: Any) -> None:
    clerk = client_for(world.clerk).get(reverse("application-detail", args=[submitted.pk]))
    assert clerk.context["actions"] == ["withdraw"]
    assert reverse("application-action", args=[submitted.pk, "withdraw"]) in clerk.content.decode()
    physician = client_for(world.physician_user).get(reverse("application-detail", args=[submitted.pk]))
    assert physician.context["actions"] == ["diagnose"]
    assert "application-action" not in physician.content.decode()
    assert reverse("application-action", args=[submitted.pk, "withdraw"]) not in physician.content.decode()
    reviewer = client_for(world.reviewer).get(reverse("application-detail", args=[submitted.pk]))
    assert reviewer.context["actions"] == []
    on_approved = client_for(world.reviewer).get(reverse("application-detail", args=[approved.pk]))
    assert on_approved.context["actions"] == ["terminate"]
    clerk_on_approved = client_for(world.clerk).get(reverse("application-detail", args=[approved.pk]))
    assert "terminate" not in clerk_on_approved.context["actions"]
    assert "withdraw" not in clerk_on_approved.context["actions"]


def test_actions_not_permitted_are_refused_on_post(world: Any, client_for: Any, submitted: Any, approved: Any) -> None:
    withdraw = {"withdraw-confirm": "on", "withdraw-reason": "测试"}
    url = reverse("application-action", args=[submitted.pk, "withdraw"])
    assert client_for(world.physician_user).post(url, withdraw).status_code == 403
    assert client_for(world.reviewer).post(url, withdraw).status_code == 403
    terminate = {"terminate-confirm": "on", "terminate-reason": "death"}
    assert (
        client_for(world.clerk)
        .post(reverse("application-action", args=[approved.pk, "terminate"]), terminate)
        .status_code
        == 403
    )
    # Not possible in this state, even for a role that could otherwise.
    resubmit = reverse("application-action", args=[submitted.pk, "resubmit"])
    assert client_for(world.clerk).post(resubmit, {"resubmit-confirm": "on"}).status_code == 403
    assert client_for(world.clerk).post(reverse("application-action", args=[submitted.pk, "bogus"])).status_code == 404
    assert client_for(world.clerk).get(url).status_code == 405
    assert client_for(world.clerk).get(reverse("application-diagnose", args=[submitted.pk])).status_code == 403
    submitted.refresh_from_db()
    approved.refresh_from_db()
    assert (submitted.state, approved.state) == (State.SUBMITTED, State.APPROVED)


def test_withdraw_needs_confirmation_and_reason(world: Any, client_for: Any, submitted: Any) -> None:
    client = client_for(world.clerk)
    url = reverse("application-action", args=[submitted.pk, "withdraw"])
    response = client.post(url, {"withdraw-reason": "申请人自愿撤回"})
    assert response.status_code == 400
    body = response.content.decode()
    assert "申请人自愿撤回" in body  # what was typed is kept
    assert "This field is required." in body
    response = client.post(url, {"withdraw-reason": "申请人自愿撤回", "withdraw-confirm": "on"})
    assert response.status_code == 302
    submitted.refresh_from_db()
    assert submitted.state == State.WITHDRAWN
    assert submitted.audit_entries.last().reason == "申请人自愿撤回"
    follow = client.get(response["Location"])
    assert "withdrawn" in follow.content.decode()


def test_resubmit_a_returned_application_with_a_document(world: Any, client_for: Any) -> None:
    application = diagnose(world, file_application(world))
    _return(application, world.reviewer)
    response = client_for(world.clerk).post(
        reverse("application-action", args=[application.pk, "resubmit"]),
        {
            "resubmit-confirm": "on",
            "resubmit-note": "已补充",
            "resubmit-doc_type": "test_report",
            "resubmit-file": pdf_upload("report.pdf"),
        },
    )
    assert response.status_code == 302
    application.refresh_from_db()
    assert application.state == State.DIAGNOSED
    assert application.documents.filter(doc_type="test_report").exists()


def test_resubmit_with_a_bad_file_shows_the_services_reason(world: Any, client_for: Any) -> None:
    application = diagnose(world, file_application(world))
    _return(application, world.reviewer)
    response = client_for(world.clerk).post(
        reverse("application-action", args=[application.pk, "resubmit"]),
        {
            "resubmit-confirm": "on",
            "resubmit-doc_type": "test_report",
            "resubmit-file": pdf_upload("report.pdf", b"not a pdf at all"),
        },
    )
    assert response.status_code == 400
    assert "does not contain what its name says" in response.content.decode()
    application.refresh_from_db()
    assert application.state == State.RETURNED


def test_reviewer_terminates_an_enrollment(world: Any, client_for: Any, approved: Any) -> None:
    response = client_for(world.reviewer).post(
        reverse("application-action", args=[approved.pk, "terminate"]),
        {"terminate-confirm": "on", "terminate-reason": "moved_out", "terminate-note": "迁出省外"},
    )
    assert response.status_code == 302
    approved.refresh_from_db()
    assert approved.state == State.TERMINATED and approved.termination_reason == "moved_out"


def test_officer_approves_an_immediate_mode_application(world: Any, client_for: Any) -> None:
    application = diagnose(world, file_application(world, disease=world.dialysis), icd10="N18.5")
    client = client_for(world.officer)
    page = client.get(reverse("application-detail", args=[application.pk]))
    # Issue 15: the officer may also reject or return (补正) on the spot.
    assert page.context["actions"] == ["approve_immediately", "reject_immediately", "return_immediately"]
    response = client.post(
        reverse("application-action", args=[application.pk, "approve_immediately"]),
        {"approve_immediately-confirm": "on"},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    application.refresh_from_db()
    assert application.state == State.APPROVED and application.valid_from == timezone.localdate()
    assert application.valid_until is None  # dialysis is long-term
    body = client.get(reverse("application-detail", args=[application.pk])).content.decode()
    assert 'data-testid="valid-from"' in body


def test_document_download_for_visible_application(world: Any, client_for: Any, submitted: Any) -> None:
    document = submitted.documents.get()
    response = client_for(world.physician_user).get(reverse("document-download", args=[document.pk]))
    assert response.status_code == 200
    assert b"".join(response.streaming_content).startswith(b"%PDF-")
    assert response["Content-Type"] == "application/pdf"


# -- filing ---------------------------------------------------------------------------------------


def _filing_data(world: Any, **overrides: Any) -> dict[str, Any]:
    data = {
        "id_number": "",
        "name": "",
        "insured_region": "",
        "insurance_type": "390",
        "insurance_number": "",
        "phone": "",
        "disease": world.hypertension.pk,
        "treating_institution": world.county.pk,
        "doc-TOTAL_FORMS": "3",
        "doc-INITIAL_FORMS": "0",
        "doc-MIN_NUM_FORMS": "0",
        "doc-MAX_NUM_FORMS": "6",
        "action": "submit",
    }
    data.update(overrides)
    return data


def test_file_page_only_for_filers(world: Any, client_for: Any) -> None:
    assert client_for(world.clerk).get(reverse("application-file")).status_code == 200
    assert client_for(world.admin).get(reverse("application-file")).status_code == 200
    for attr in ("physician_user", "reviewer", "officer"):
        assert client_for(getattr(world, attr)).get(reverse("application-file")).status_code == 403
        assert client_for(getattr(world, attr)).post(reverse("filing-check")).status_code == 403


def test_file_for_a_new_person_with_upload(world: Any, client_for: Any) -> None:
    from tests.factories import synthetic_id_number

    number = synthetic_id_number()
    data = _filing_data(
        world,
        id_number=number.lower(),
        name="新病人",
        insured_region=world.region.pk,
        phone="13800000000",
        **{"doc-0-doc_type": "diagnosis_certificate", "doc-0-file": pdf_upload()},
    )
    response = client_for(world.clerk).post(reverse("application-file"), data)
    assert response.status_code == 302, response.context["form"].errors if response.context else response
    application = Application.objects.get()
    assert response["Location"] == reverse("application-detail", args=[application.pk])
    assert application.person.name == "新病人" and application.person.id_number == number.upper()
    assert application.filed_by == world.clerk and application.documents.count() == 1


def test_file_for_a_known_person_uses_the_registered_record(world: Any, client_for: Any) -> None:
    person = world.person(name="老病人", phone="13900000000")
    data = _filing_data(world, id_number=person.id_number)
    response = client_for(world.clerk).post(reverse("application-file"), data)
    assert response.status_code == 302
    assert Application.objects.get().person == person
    person.refresh_from_db()
    assert person.phone == "13900000000"


def test_invalid_id_number_error_next_to_field_and_values_kept(world: Any, client_for: Any) -> None:
    data = _filing_data(world, id_number="53012419600517001X", name="张三", insured_region=world.region.pk)
    response = client_for(world.clerk).post(reverse("application-file"), data)
    assert response.status_code == 200
    form = response.context["form"]
    assert "id_number" in form.errors
    body = response.content.decode()
    assert 'value="张三"' in body and 'value="53012419600517001X"' in body
    assert 'id="field-id_number"' in body and "has-error" in body
    assert not Application.objects.exists() and not Person.objects.exists()


def test_new_person_needs_name_and_region(world: Any, client_for: Any) -> None:
    from tests.factories import synthetic_id_number

    response = client_for(world.clerk).post(
        reverse("application-file"), _filing_data(world, id_number=synthetic_id_number())
    )
    assert set(response.context["form"].errors) == {"name", "insured_region"}


def test_check_shows_the_checklist_with_reasons(world: Any, client_for: Any) -> None:
    person = world.person()
    for disease in (world.diabetes, world.copd):
        file_application(world, person=person, disease=disease)
    data = _filing_data(world, id_number=person.id_number, action="check")
    response = client_for(world.clerk).post(reverse("application-file"), data)
    assert response.status_code == 200
    checks = {c.code: c for c in response.context["checks"]}
    assert checks["limit_reached"].passed is False
    assert "2 of 2" in str(checks["limit_reached"].label)
    assert checks["documents_missing"].passed is False
    body = response.content.decode()
    assert "already holds 2 of 2 chronic enrollments" in body
    assert not Application.objects.filter(disease=world.hypertension).exists()


def test_submit_refused_by_the_service_is_shown_on_the_form(world: Any, client_for: Any) -> None:
    person = world.person()
    for disease in (world.diabetes, world.copd):
        file_application(world, person=person, disease=disease)
    response = client_for(world.clerk).post(
        reverse("application-file"), _filing_data(world, id_number=person.id_number)
    )
    assert response.status_code == 200
    assert "already holds 2 of 2" in " ".join(response.context["form"].non_field_errors())


def test_lookup_prefills_a_known_person_without_javascript(world: Any, client_for: Any) -> None:
    person = world.person(name="王老五", phone="13700000000")
    data = _filing_data(world, id_number=person.id_number, action="lookup")
    response = client_for(world.clerk).post(reverse("application-file"), data)
    body = response.content.decode()
    assert 'value="王老五"' in body and 'value="13700000000"' in body


def test_filing_check_json(world: Any, client_for: Any) -> None:
    client = client_for(world.clerk)
    assert client.get(reverse("filing-check"), {"id_number": "123"}).status_code == 405  # never in a URL
    bad = client.post(reverse("filing-check"), {"id_number": "123"}).json()
    assert bad["id_number"]["valid"] is False and "18 characters" in bad["id_number"]["message"]
    person = world.person(name="李四")
    known = client.post(
        reverse("filing-check"), {"id_number": person.id_number.lower(), "disease": world.hypertension.pk}
    ).json()
    assert known["id_number"] == {"valid": True, "message": "", "known": True, "normalised": person.id_number}
    assert known["person"]["name"] == "李四"
    assert [c["code"] for c in known["checks"]] == [
        "valid_id_number",
        "not_insured",
        "disease_not_available",
        "outside_province",
        "duplicate_disease",
        "mutually_exclusive",
        "limit_reached",
        "documents_missing",
    ]
    with_doc = client.post(
        reverse("filing-check"),
        {"id_number": person.id_number, "disease": world.hypertension.pk, "doc_type": "diagnosis_certificate"},
    ).json()
    assert all(c["passed"] for c in with_doc["checks"])


def test_renewal_filing_is_prefilled_from_the_expiring_enrollment(world: Any, client_for: Any, approved: Any) -> None:
    client = client_for(world.clerk)
    detail = client.get(reverse("application-detail", args=[approved.pk]))
    assert "renew" in detail.context["actions"]
    url = reverse("application-renew", args=[approved.pk])
    page = client.get(url)
    assert page.status_code == 200
    assert page.context["form"].initial["treating_institution"] == approved.treating_institution
    assert {c.code: c.passed for c in page.context["checks"]}["limit_reached"] is True
    unconfirmed = client.post(url, {"treating_institution": world.county.pk})
    assert unconfirmed.status_code == 200 and "confirm" in unconfirmed.context["form"].errors
    response = client.post(url, {"treating_institution": world.county.pk, "confirm": "on"})
    assert response.status_code == 302
    renewal = Application.objects.get(renews=approved)
    assert response["Location"] == reverse("application-detail", args=[renewal.pk])
    assert renewal.kind == "renewal" and renewal.icd10_code == approved.icd10_code
    home = client.get(reverse("home"))
    assert [a.pending_renewal for a in home.context["renewals"]] == [True]
    # A second renewal is not offered, and refused if posted.
    assert "renew" not in client.get(reverse("application-detail", args=[approved.pk])).context["actions"]
    assert client.post(url, {"treating_institution": world.county.pk, "confirm": "on"}).status_code == 403


def test_renewal_not_offered_before_the_window_or_to_other_roles(world: Any, client_for: Any, approved: Any) -> None:
    url = reverse("application-renew", args=[approved.pk])
    assert client_for(world.physician_user).get(url).status_code == 403
    assert client_for(world.reviewer).get(url).status_code == 403
    assert client_for(world.other_clerk).get(url).status_code == 404
    Application.objects.filter(pk=approved.pk).update(valid_until=timezone.localdate() + dt.timedelta(days=400))
    assert client_for(world.clerk).get(url).status_code == 403


def test_full_id_views_are_logged(world: Any, client_for: Any, submitted: Any) -> None:
    from enrollment.models import PersonalDataAccess

    client_for(world.clerk).get(reverse("application-detail", args=[submitted.pk]))
    client_for(world.reviewer).get(reverse("application-detail", args=[submitted.pk]))  # masked: not logged
    assert list(PersonalDataAccess.objects.values_list("viewer", "purpose")) == [(world.clerk.pk, "application_detail")]


# -- diagnosis -------------------------------------------------------------------------------------


def test_diagnosis_form(world: Any, client_for: Any, submitted: Any) -> None:
    client = client_for(world.physician_user)
    url = reverse("application-diagnose", args=[submitted.pk])
    assert client.get(url).status_code == 200
    management = {"doc-TOTAL_FORMS": "3", "doc-INITIAL_FORMS": "0", "doc-MIN_NUM_FORMS": "0", "doc-MAX_NUM_FORMS": "6"}
    date = (timezone.localdate() - dt.timedelta(days=2)).isoformat()
    wrong = client.post(url, {"icd10_code": "J44", "diagnosis_date": date, **management})
    assert wrong.status_code == 200
    body = wrong.content.decode()
    assert "does not support" in body and 'value="J44"' in body and f'value="{date}"' in body
    future = client.post(url, {"icd10_code": "I10", "diagnosis_date": "2999-01-01", **management})
    assert "diagnosis_date" in future.context["form"].errors
    done = client.post(url, {"icd10_code": "I10", "diagnosis_date": date, **management})
    assert done.status_code == 302
    submitted.refresh_from_db()
    assert submitted.state == State.DIAGNOSED and submitted.physician == world.physician


def test_physician_of_another_institution_cannot_open_or_diagnose(world: Any, client_for: Any) -> None:
    from tests.factories import PhysicianFactory, staff_user

    user = staff_user(roles.PHYSICIAN, institution=world.township)
    PhysicianFactory(institution=world.township, user=user)
    application = file_application(world)  # filed and treated at the county hospital
    client = client_for(user)
    assert client.get(reverse("application-detail", args=[application.pk])).status_code == 404
    assert client.get(reverse("application-diagnose", args=[application.pk])).status_code == 404


# -- assets and language ---------------------------------------------------------------------------------


def test_plotly_is_served_from_the_installed_package(client: Any) -> None:
    response = client.get(reverse("plotly-js"))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/javascript")
    head = b"".join(response.streaming_content)[:2000]
    assert b"plotly" in head.lower()


def test_chinese_by_default_english_switchable(world: Any, client_for: Any) -> None:
    chinese = client_for(world.clerk, language="zh-hans").get(reverse("home")).content.decode()
    assert "门诊慢特病" in chinese and "续期" in chinese
    english = client_for(world.clerk, language="en").get(reverse("home")).content.decode()
    assert "Renewal worklist" in english
    client = client_for(world.clerk, language="zh-hans")
    response = client.post(reverse("set_language"), {"language": "en", "next": reverse("home")})
    assert response.status_code == 302
    assert "Renewal worklist" in client.get(reverse("home")).content.decode()
