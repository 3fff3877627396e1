"""Service tests: every transition's allowed and refused paths, every filing/diagnosis rule and its code."""

from __future__ import annotations

import datetime as dt
import os

import pytest
from django.db import transaction
from django.utils import translation

from enrollment import services
from enrollment.models import (
    AppendOnlyError,
    Application,
    ApplicationKind,
    AuditEntry,
    Document,
    PhysicianTitle,
    Policy,
    State,
)
from kernel.errors import InvalidInput, NotPermitted, RuleViolation, TransitionRefused
from tests.conftest import pdf_upload
from tests.factories import DiseaseFactory, PhysicianFactory, RegionFactory, UserFactory


@pytest.fixture(autouse=True)
def _english_messages():
    """Messages are asserted in their English source form; zh-hans is the default language."""
    with translation.override("en"):
        yield


def submit(world, person=None, disease=None, actor=None, **kwargs):
    return services.application_submit(
        person=person or world.person(),
        disease=disease or world.hypertension,
        treating_institution=kwargs.pop("treating_institution", world.county),
        actor=actor or world.clerk,
        **kwargs,
    )


def diagnose(world, application, *, actor=None, icd="I10", day=None, docs=True):
    return services.application_diagnose(
        application_id=application.pk,
        actor=actor or world.physician_user,
        icd10_code=icd,
        diagnosis_date=day or dt.date(2026, 1, 5),
        documents=[("diagnosis_certificate", pdf_upload())] if docs else [],
    )


def to_in_review(world, application):
    diagnose(world, application)
    with transaction.atomic():
        locked = services.lock_application(application.pk)
        services.run_transition(application=locked, name="enqueue", actor=services.get_system_user())
    return Application.objects.get(pk=application.pk)


def approved(world, person=None, disease=None, icd="I10"):
    application = to_in_review(world, submit(world, person=person, disease=disease))
    if icd:
        pass
    return services.application_approve(application_id=application.pk, actor=world.reviewer)


def last_audit(application) -> AuditEntry:
    return AuditEntry.objects.filter(application=application).order_by("-id").first()


# ---------------------------------------------------------------------------
# submit
# ---------------------------------------------------------------------------


def test_submit_creates_submitted_application_with_audit_row(world):
    person = world.person()
    application = submit(world, person=person, documents=[("test_report", pdf_upload("report.pdf"))])
    assert application.state == State.SUBMITTED
    assert application.filing_institution == world.county
    assert application.region == person.insured_region
    entry = last_audit(application)
    assert (entry.transition, entry.from_state, entry.to_state, entry.actor) == ("submit", "", "submitted", world.clerk)
    assert application.documents.get().doc_type == "test_report"


def test_submit_refused_for_roles_that_do_not_file(world):
    for actor in (world.physician_user, world.reviewer, world.officer):
        with pytest.raises(NotPermitted):
            submit(world, actor=actor)
    assert not Application.objects.exists()


def test_duplicate_disease_refused(world):
    person = world.person()
    first = submit(world, person=person)
    with pytest.raises(RuleViolation) as info:
        submit(world, person=person)
    assert info.value.code == "duplicate_disease"
    assert info.value.details == {"application": first.pk}


def test_same_disease_allowed_again_after_withdrawal(world):
    person = world.person()
    first = submit(world, person=person)
    services.application_withdraw(application_id=first.pk, actor=world.clerk)
    second = submit(world, person=person)
    assert second.state == State.SUBMITTED


def test_limit_reached_names_the_two_enrollments_held(world):
    person = world.person()
    a = submit(world, person=person, disease=world.hypertension)
    b = submit(world, person=person, disease=world.diabetes)
    with pytest.raises(RuleViolation) as info:
        submit(world, person=person, disease=world.copd)
    assert info.value.code == "limit_reached"
    assert info.value.details["held"] == [a.pk, b.pk]
    assert "高血压病" in str(info.value.message) and "糖尿病" in str(info.value.message)
    assert Application.objects.filter(person=person).count() == 2


def test_limit_counts_every_active_state_but_not_ended_ones(world):
    person = world.person()
    held = approved(world, person=person, disease=world.hypertension)
    assert held.state == State.APPROVED
    second = submit(world, person=person, disease=world.diabetes)
    with pytest.raises(RuleViolation, match="2 of 2"):
        submit(world, person=person, disease=world.copd)
    services.application_withdraw(application_id=second.pk, actor=world.clerk)
    assert submit(world, person=person, disease=world.copd).state == State.SUBMITTED


def test_special_diseases_do_not_count_toward_the_chronic_limit(world):
    person = world.person()
    submit(world, person=person, disease=world.hypertension)
    submit(world, person=person, disease=world.diabetes)
    assert submit(world, person=person, disease=world.renal).state == State.SUBMITTED


def test_limit_follows_the_regions_policy(world):
    Policy.objects.create(region=world.region, concurrent_chronic_limit=3)
    person = world.person()
    for disease in (world.hypertension, world.diabetes, world.copd):
        submit(world, person=person, disease=disease)
    with pytest.raises(RuleViolation) as info:
        submit(world, person=person, disease=world.coronary)
    assert info.value.details["limit"] == 3


def test_policy_inherited_from_parent_region(world):
    Policy.objects.create(region=world.province, concurrent_chronic_limit=1)
    person = world.person()
    submit(world, person=person, disease=world.hypertension)
    with pytest.raises(RuleViolation) as info:
        submit(world, person=person, disease=world.diabetes)
    assert info.value.code == "limit_reached"


def test_two_diseases_coverage_does_not_count(world):
    person = world.person()
    Application.objects.create(
        person=person,
        disease=world.hypertension,
        kind=ApplicationKind.TWO_DISEASES,
        filing_institution=world.county,
        treating_institution=world.county,
        region=world.region,
        filed_by=world.clerk,
    )
    submit(world, person=person, disease=world.diabetes)
    assert submit(world, person=person, disease=world.copd).state == State.SUBMITTED


def test_mutually_exclusive_disease_refused(world):
    person = world.person()
    held = submit(world, person=person, disease=world.renal)
    with pytest.raises(RuleViolation) as info:
        submit(world, person=person, disease=world.dialysis)
    assert info.value.code == "mutually_exclusive"
    assert info.value.details == {"application": held.pk}


def test_disease_not_available_in_region(world):
    world.copd.regions.add(world.other_region)
    with pytest.raises(RuleViolation) as info:
        submit(world, disease=world.copd)
    assert info.value.code == "disease_not_available"


def test_disease_available_through_parent_region(world):
    world.copd.regions.add(world.province)
    assert submit(world, disease=world.copd).state == State.SUBMITTED


def test_inactive_disease_not_available(world):
    world.copd.active = False
    world.copd.save()
    with pytest.raises(RuleViolation) as info:
        submit(world, disease=world.copd)
    assert info.value.code == "disease_not_available"


def test_partial_unique_constraint_backs_the_duplicate_check(world):
    from django.db import IntegrityError

    person = world.person()
    submit(world, person=person)
    with pytest.raises(IntegrityError), transaction.atomic():
        Application.objects.create(
            person=person,
            disease=world.hypertension,
            filing_institution=world.county,
            treating_institution=world.county,
            region=world.region,
            filed_by=world.clerk,
        )


# ---------------------------------------------------------------------------
# person
# ---------------------------------------------------------------------------


def test_person_register_normalises_and_derives(world):
    from tests.factories import synthetic_id_number

    number = synthetic_id_number(dt.date(1955, 3, 9), sex="2")
    person = services.person_register(
        id_number=number.lower() + " ",
        name=" 王芳 ",
        insured_region=world.region,
        actor=world.officer,
        support_categories=["monitored"],
    )
    assert person.id_number == number
    assert person.sex == "2"
    assert person.name == "王芳"
    assert person.birth_date.year == 1955
    services.application_submit(
        person=person, disease=world.hypertension, treating_institution=world.county, actor=world.clerk
    )
    again = services.person_register(
        id_number=number, name="王芳", insured_region=world.region, actor=world.clerk, phone="13800000000"
    )
    assert again.pk == person.pk and again.phone == "13800000000"
    assert again.support_categories == ["monitored"]  # not given: kept
    services.person_register(
        id_number=number,
        name="王芳",
        insured_region=world.region,
        actor=world.officer,
        insurance_type="310",
        insurance_number="INS-1",
    )
    kept = services.person_register(id_number=number, name="王芳", insured_region=world.region, actor=world.clerk)
    assert (kept.insurance_type, kept.insurance_number, kept.phone) == ("310", "INS-1", "13800000000")


def test_who_may_change_which_person_fields_and_every_change_is_audited(world):
    """Issue 18: any staff member could overwrite any person (region, insurance, categories, phone)."""
    from enrollment.models import PersonAuditEntry
    from kernel.errors import NotPermitted
    from tests.factories import synthetic_id_number

    person = services.person_register(
        id_number=synthetic_id_number(dt.date(1961, 2, 3)),
        name="张三",
        insured_region=world.region,
        actor=world.officer,
    )
    # Another clinic, holding no application of the person: neither contact details nor office fields.
    for changes, fields in (
        ({"phone": "13900000000"}, ["phone"]),
        ({"insurance_type": "310"}, ["insurance_type"]),
        ({"insured_region": world.other_region}, ["insured_region"]),
        ({"name": "李四"}, ["name"]),
        ({"support_categories": ["orphan"]}, ["support_categories"]),
    ):
        args = {"id_number": person.id_number, "name": "张三", "insured_region": world.region, **changes}
        with pytest.raises(NotPermitted) as refused:
            services.person_register(actor=world.other_clerk, **args)
        assert refused.value.code == "person_change_not_permitted" and refused.value.details["fields"] == fields
    person.refresh_from_db()
    assert (person.phone, person.insurance_type, person.insured_region, person.name) == (
        "",
        "390",
        world.region,
        "张三",
    )
    # The same values again change nothing and are allowed (a clinic re-sending what is on record).
    services.person_register(
        id_number=person.id_number, name="张三", insured_region=world.region, actor=world.other_clerk
    )
    # A clinic holding an application of the person keeps the phone up to date; audited, masked.
    services.application_submit(
        person=person, disease=world.hypertension, treating_institution=world.county, actor=world.clerk
    )
    services.person_register(
        id_number=person.id_number, name="张三", insured_region=world.region, actor=world.clerk, phone="13912345678"
    )
    entries = list(PersonAuditEntry.objects.filter(person=person).order_by("id"))
    assert [e.action for e in entries] == ["person_registered", "person_changed"]
    assert entries[1].actor == world.clerk
    assert entries[1].details["changes"] == {"phone": {"from": "", "to": "139****5678"}}
    # The office corrects region and insurance.
    services.person_register(
        id_number=person.id_number,
        name="张三",
        insured_region=world.other_region,
        actor=world.officer,
        insurance_type="310",
    )
    last = PersonAuditEntry.objects.filter(person=person).order_by("-id").first()
    assert last.details["changes"] == {
        "insurance_type": {"from": "390", "to": "310"},
        "insured_region": {"from": world.region.code, "to": world.other_region.code},
    }


def test_person_register_rejects_bad_input(world):
    with pytest.raises(InvalidInput) as info:
        services.person_register(id_number="123", name="x", insured_region=world.region, actor=world.clerk)
    assert info.value.code == "invalid_id_number"
    from tests.factories import synthetic_id_number

    with pytest.raises(InvalidInput, match="support category"):
        services.person_register(
            id_number=synthetic_id_number(),
            name="x",
            insured_region=world.region,
            actor=world.clerk,
            support_categories=["vip"],
        )


# ---------------------------------------------------------------------------
# diagnose
# ---------------------------------------------------------------------------


def test_diagnose_records_diagnosis_and_audit(world):
    application = diagnose(world, submit(world))
    assert application.state == State.DIAGNOSED
    assert application.icd10_code == "I10"
    assert application.physician == world.physician
    entry = last_audit(application)
    assert (entry.transition, entry.from_state, entry.to_state) == ("diagnose", "submitted", "diagnosed")
    assert entry.actor == world.physician_user
    assert application.documents.filter(doc_type="diagnosis_certificate").count() == 1


def test_diagnosis_mismatch(world):
    application = submit(world)
    with pytest.raises(RuleViolation) as info:
        diagnose(world, application, icd="E11")
    assert info.value.code == "diagnosis_mismatch"
    application.refresh_from_db()
    assert application.state == State.SUBMITTED
    assert not application.documents.exists()  # nothing half-written


def test_physician_not_qualified(world):
    application = submit(world)
    with pytest.raises(RuleViolation) as info:
        diagnose(world, application, actor=world.resident_user)
    assert info.value.code == "physician_not_qualified"


def test_institution_not_qualified_by_level(world):
    from tests.factories import staff_user

    township_doctor = staff_user("physician", institution=world.township)
    PhysicianFactory(institution=world.township, title=PhysicianTitle.CHIEF, user=township_doctor)
    application = submit(world, disease=world.coronary, treating_institution=world.township)
    with pytest.raises(RuleViolation) as info:
        diagnose(world, application, actor=township_doctor, icd="I25")
    assert info.value.code == "institution_not_qualified"


def test_institution_without_diagnosing_rights(world):
    from tests.factories import staff_user

    doctor = staff_user("physician", institution=world.no_diagnosis)
    PhysicianFactory(institution=world.no_diagnosis, title=PhysicianTitle.CHIEF, user=doctor)
    application = submit(world, treating_institution=world.no_diagnosis)
    with pytest.raises(RuleViolation) as info:
        diagnose(world, application, actor=doctor)
    assert info.value.code == "institution_not_qualified"


def test_diagnose_requires_documents(world):
    application = submit(world)
    with pytest.raises(RuleViolation) as info:
        diagnose(world, application, docs=False)
    assert info.value.code == "documents_missing"
    assert info.value.details == {"missing": ["diagnosis_certificate"]}


def test_diagnose_refused_for_non_physician_and_other_institution(world):
    application = submit(world)
    with pytest.raises(NotPermitted):
        diagnose(world, application, actor=world.clerk)
    from tests.factories import staff_user

    outsider = staff_user("physician", institution=world.other_clinic)
    PhysicianFactory(institution=world.other_clinic, title=PhysicianTitle.CHIEF, user=outsider)
    with pytest.raises(NotPermitted):
        diagnose(world, application, actor=outsider)


def test_diagnose_twice_is_refused(world):
    application = diagnose(world, submit(world))
    with pytest.raises(TransitionRefused) as info:
        diagnose(world, application)
    assert info.value.code == "transition_not_allowed"


def test_diagnosis_date_in_future_or_before_birth_refused(world):
    application = submit(world)
    with pytest.raises(InvalidInput, match="future"):
        diagnose(world, application, day=dt.date.today() + dt.timedelta(days=3))
    with pytest.raises(InvalidInput, match="birth"):
        diagnose(world, application, day=dt.date(1900, 1, 1))


# ---------------------------------------------------------------------------
# withdraw, resubmit, enqueue, approve, reject, return, terminate
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("stage", ["submitted", "diagnosed"])
def test_withdraw_allowed_before_review(world, stage):
    application = submit(world)
    if stage == "diagnosed":
        diagnose(world, application)
    application = services.application_withdraw(application_id=application.pk, actor=world.clerk, reason="moved")
    assert application.state == State.WITHDRAWN
    assert last_audit(application).reason == "moved"


def test_withdraw_refused_in_review_and_for_other_clinic(world):
    application = to_in_review(world, submit(world))
    with pytest.raises(TransitionRefused):
        services.application_withdraw(application_id=application.pk, actor=world.clerk)
    other = submit(world)
    with pytest.raises(NotPermitted):
        services.application_withdraw(application_id=other.pk, actor=world.other_clerk)
    with pytest.raises(NotPermitted):
        services.application_withdraw(application_id=other.pk, actor=world.reviewer)


def test_enqueue_only_by_system_and_only_when_diagnosed(world):
    application = submit(world)
    with transaction.atomic(), pytest.raises(TransitionRefused):
        services.run_transition(
            application=services.lock_application(application.pk), name="enqueue", actor=services.get_system_user()
        )
    diagnose(world, application)
    with transaction.atomic(), pytest.raises(NotPermitted):
        services.run_transition(
            application=services.lock_application(application.pk), name="enqueue", actor=world.reviewer
        )


def test_approve_sets_validity_and_audit(world, today):
    application = approved(world)
    assert application.state == State.APPROVED
    assert application.valid_from == today
    assert application.valid_until is not None and application.valid_until > today
    entry = last_audit(application)
    assert (entry.transition, entry.from_state, entry.to_state) == ("approve", "in_review", "approved")
    assert entry.details["valid_from"] == today.isoformat()


def test_approve_refused_for_clinic_staff(world):
    application = to_in_review(world, submit(world))
    with pytest.raises(NotPermitted):
        services.application_approve(application_id=application.pk, actor=world.clerk)


def test_reject_and_return_and_resubmit(world):
    application = to_in_review(world, submit(world))
    with transaction.atomic():
        services.run_transition(
            application=services.lock_application(application.pk),
            name="return_for_information",
            actor=world.reviewer,
            missing="blood pressure records",
        )
    application.refresh_from_db()
    assert application.state == State.RETURNED
    resubmitted = services.application_resubmit(
        application_id=application.pk,
        actor=world.clerk,
        note="added records",
        documents=[("test_report", pdf_upload("bp.pdf"))],
    )
    assert resubmitted.state == State.DIAGNOSED
    assert resubmitted.documents.filter(doc_type="test_report").exists()
    other = to_in_review(world, submit(world))
    with transaction.atomic():
        services.run_transition(
            application=services.lock_application(other.pk),
            name="reject",
            actor=world.reviewer,
            reason_code="criteria_not_met",
            reason="BP normal",
        )
    other.refresh_from_db()
    assert other.state == State.REJECTED and other.decision_reason_code == "criteria_not_met"


def test_immediate_approval_only_for_immediate_diseases_and_center_officers(world, today):
    application = submit(world, disease=world.dialysis)
    diagnose(world, application, icd="N18.5")
    with pytest.raises(NotPermitted):
        services.application_approve(application_id=application.pk, actor=world.reviewer, immediate=True)
    approved_now = services.application_approve(application_id=application.pk, actor=world.officer, immediate=True)
    assert approved_now.state == State.APPROVED
    assert approved_now.valid_from == today and approved_now.valid_until is None  # long-term
    batch_disease = diagnose(world, submit(world))
    with pytest.raises(TransitionRefused):
        services.application_approve(application_id=batch_disease.pk, actor=world.officer, immediate=True)


def test_terminate_approved_enrollment(world, today):
    application = approved(world)
    terminated = services.application_terminate(
        application_id=application.pk, actor=world.reviewer, reason="moved_out", note="moved to Sichuan"
    )
    assert terminated.state == State.TERMINATED
    assert terminated.termination_reason == "moved_out"
    assert terminated.ended_on == today
    entry = last_audit(terminated)
    assert (entry.transition, entry.reason_code, entry.reason) == ("terminate", "moved_out", "moved to Sichuan")


def test_terminate_refused_for_clinic_staff_bad_reason_and_wrong_state(world):
    application = approved(world)
    with pytest.raises(NotPermitted):
        services.application_terminate(application_id=application.pk, actor=world.clerk, reason="death")
    with pytest.raises(InvalidInput) as info:
        services.application_terminate(application_id=application.pk, actor=world.reviewer, reason="bored")
    assert info.value.code == "invalid_reason"
    pending = submit(world)
    with pytest.raises(TransitionRefused):
        services.application_terminate(application_id=pending.pk, actor=world.admin, reason="death")


def test_protected_state_cannot_be_assigned(world):
    application = submit(world)
    with pytest.raises(AttributeError):
        application.state = State.APPROVED


def test_every_transition_writes_exactly_one_audit_row(world):
    application = submit(world)
    diagnose(world, application)
    to_count = AuditEntry.objects.filter(application=application).count()
    assert to_count == 2
    assert list(AuditEntry.objects.filter(application=application).values_list("transition", flat=True)) == [
        "submit",
        "diagnose",
    ]


def test_audit_log_is_append_only(world):
    application = submit(world)
    entry = last_audit(application)
    entry.reason = "tampered"
    with pytest.raises(AppendOnlyError):
        entry.save()
    with pytest.raises(AppendOnlyError):
        entry.delete()
    with pytest.raises(AppendOnlyError):
        AuditEntry.objects.filter(pk=entry.pk).update(reason="x")
    with pytest.raises(AppendOnlyError):
        AuditEntry.objects.filter(pk=entry.pk).delete()
    assert AuditEntry.objects.get(pk=entry.pk).reason == ""


# ---------------------------------------------------------------------------
# documents
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "fragment"),
    [
        ("scan.exe", b"MZ...", "PDF, JPEG or PNG"),
        ("empty.pdf", b"", "empty"),
        ("fake.pdf", b"<html>not a pdf</html>", "does not contain"),
        ("x" * 300 + ".pdf", b"%PDF-1.4", "200 characters"),
    ],
)
def test_bad_uploads_rejected_and_nothing_stored(world, name, content, fragment, settings):
    application = submit(world)
    with pytest.raises(InvalidInput) as info:
        services.document_attach(
            application_id=application.pk, actor=world.clerk, doc_type="test_report", upload=pdf_upload(name, content)
        )
    assert info.value.code == "invalid_document"
    assert fragment in str(info.value.message)
    assert not Document.objects.exists()
    media = settings.MEDIA_ROOT
    assert not os.path.exists(media) or not any(files for _r, _d, files in os.walk(media))


def test_oversized_upload_rejected(world, settings):
    settings.DOCUMENT_MAX_BYTES = 100
    application = submit(world)
    with pytest.raises(InvalidInput, match="limit"):
        services.document_attach(
            application_id=application.pk,
            actor=world.clerk,
            doc_type="test_report",
            upload=pdf_upload("big.pdf", b"%PDF-" + b"0" * 200),
        )


def test_stored_file_removed_when_transaction_fails(world, settings):
    person = world.person()
    submit(world, person=person)
    with pytest.raises(RuleViolation):
        submit(world, person=person, documents=[("test_report", pdf_upload())])
    assert not any(files for _r, _d, files in os.walk(settings.MEDIA_ROOT))


def test_stored_name_does_not_reuse_uploaded_name(world):
    application = submit(world, documents=[("test_report", pdf_upload("张三-化验单.pdf"))])
    document = application.documents.get()
    assert "张三" not in document.file.name
    assert document.original_name == "张三-化验单.pdf"


def test_system_user_cannot_log_in(db):
    system = services.get_system_user()
    assert not system.is_active and not system.has_usable_password()
    assert services.get_system_user().pk == system.pk


def test_region_factory_and_disease_factory_are_usable(db):
    # guards the fixtures other tests depend on
    region = RegionFactory(code="530999")
    assert DiseaseFactory(code="M99999").code == "M99999"
    assert UserFactory(username="u1").check_password("pw-for-tests-2026")
    assert region.lineage() == [region]
