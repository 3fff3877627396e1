"""Province-wide recognition (省内互认), the catalogue's cross-province column and aliases, review
delegated to township health centres (审核权限下放) and on-the-spot approval per region (即时办结).

Issue 12 items 6 and 7; the rules are described in docs/entitlement.md.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import time_machine
from django.core.management import call_command
from rest_framework.test import APIClient

from enrollment import policies, selectors, services
from enrollment.models import Application, Disease, Region, ReviewLevel, State, immediate_review
from interop.catalogue import catalogue_diff, parse_catalogue
from interop.rosters import Reference
from kernel import roles
from kernel.errors import InvalidInput, NotPermitted, RuleViolation, TransitionRefused
from reviews import selectors as review_selectors
from reviews import services as review_services
from reviews import tasks as review_tasks
from reviews.models import ReviewBatch, ReviewItem
from tests.factories import InstitutionFactory, PolicyFactory, RegionFactory, staff_user, synthetic_id_number
from tests.reviews.helpers import SHANGHAI, diagnosed, item_of

pytestmark = pytest.mark.django_db

CATALOGUE = Path(__file__).resolve().parents[2] / "enrollment" / "data" / "catalogue.json"


def client_for(user: Any) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


# ---------------------------------------------------------------------------
# A. Recognition is valid across the province, not beyond it
# ---------------------------------------------------------------------------


@dataclass
class OtherProvince:
    hospital: Any
    clerk: Any


@pytest.fixture
def guangdong(world: Any) -> OtherProvince:
    """Another province with a qualified hospital and a clerk of its own."""
    province = RegionFactory(code="440000", name="广东省")
    city = RegionFactory(code="440100", name="广州市", parent=province)
    hospital = InstitutionFactory(level=3, region=city, name="广州市第一人民医院", may_diagnose=True)
    return OtherProvince(hospital=hospital, clerk=staff_user(roles.CLINIC_STAFF, institution=hospital))


def test_treating_institution_in_another_province_is_refused(world, guangdong):
    person = world.person()
    with pytest.raises(RuleViolation) as refused:
        services.application_submit(
            person=person, disease=world.hypertension, treating_institution=guangdong.hospital, actor=world.clerk
        )
    assert refused.value.code == "outside_province"
    assert "广州市第一人民医院" in str(refused.value.message) and "云南省" in str(refused.value.message)
    assert refused.value.details == {
        "institution": guangdong.hospital.code,
        "institution_province": "440000",
        "insured_province": "530000",
    }
    assert not Application.objects.filter(person=person).exists()


def test_filing_institution_in_another_province_is_refused(world, guangdong):
    person = world.person()
    with pytest.raises(RuleViolation) as refused:
        services.application_submit(
            person=person, disease=world.hypertension, treating_institution=world.county, actor=guangdong.clerk
        )
    assert refused.value.code == "outside_province"
    assert refused.value.details["institution"] == guangdong.hospital.code
    assert not Application.objects.filter(person=person).exists()


def test_another_city_of_the_same_province_is_allowed(world):
    """省内互认: a Kunming person files at a Qujing hospital, or through a Qujing clinic."""
    treated_elsewhere = services.application_submit(
        person=world.person(), disease=world.hypertension, treating_institution=world.other_clinic, actor=world.clerk
    )
    filed_elsewhere = services.application_submit(
        person=world.person(), disease=world.hypertension, treating_institution=world.county, actor=world.other_clerk
    )
    assert treated_elsewhere.state == filed_elsewhere.state == State.SUBMITTED
    # Reviewed where the person is insured, whoever filed it.
    assert treated_elsewhere.region == filed_elsewhere.region == world.region


def test_the_province_rule_comes_right_after_the_catalogue_rule(world, guangdong):
    checks = selectors.eligibility_checks(
        person=world.person(), disease=world.hypertension, treating_institution=guangdong.hospital
    )
    codes = [check.code for check in checks]
    assert codes.index("outside_province") == codes.index("disease_not_available") + 1
    failed = [check.code for check in checks if not check.passed]
    assert failed == ["outside_province"]


def test_api_refuses_with_409_outside_province(world, guangdong):
    person = world.person()
    client = client_for(world.clerk)
    refused = client.post(
        "/api/v1/applications/",
        {"id_number": person.id_number, "disease": "M03900", "treating_institution": guangdong.hospital.code},
        format="json",
    )
    assert refused.status_code == 409, refused.content
    body = refused.json()
    assert body["code"] == "outside_province" and body["details"]["insured_province"] == "530000"
    allowed = client.post(
        "/api/v1/applications/",
        {"id_number": person.id_number, "disease": "M03900", "treating_institution": world.other_clinic.code},
        format="json",
    )
    assert allowed.status_code == 201, allowed.content


def test_filing_checklist_shows_the_province_rule(world, guangdong):
    person = world.person()
    known = selectors.filing_checklist(
        user=world.clerk,
        id_number=person.id_number,
        disease=world.hypertension,
        treating_institution=guangdong.hospital,
    )
    assert {c.code: c.passed for c in known}["outside_province"] is False
    same = selectors.filing_checklist(
        user=world.clerk, id_number=person.id_number, disease=world.hypertension, treating_institution=world.county
    )
    assert {c.code: c.passed for c in same}["outside_province"] is True
    # A person not registered yet: the region typed into the form decides.
    new = selectors.filing_checklist(
        user=guangdong.clerk,
        id_number=synthetic_id_number(),
        disease=world.hypertension,
        insured_region=world.region,
        treating_institution=guangdong.hospital,
    )
    check = next(c for c in new if c.code == "outside_province")
    assert not check.passed and check.details["institution_province"] == "440000"


def test_roster_never_puts_a_filing_on_a_hospital_outside_the_province(world):
    """Reference.hospital climbs the person's lineage; above the province it must stop."""
    nation = RegionFactory(code="100000", name="全国")
    Region.objects.filter(pk=world.province.pk).update(parent=nation)
    national = InstitutionFactory(level=3, region=nation, may_diagnose=True)
    level_three = Disease.objects.filter(pk=world.coronary.pk)
    level_three.update(min_institution_level=3)
    disease = level_three.get()
    reference = Reference(None)
    assert reference.hospital(world.region.pk, disease) is None
    # Inside the province it is found as before.
    provincial = InstitutionFactory(level=3, region=world.province, may_diagnose=True)
    assert Reference(None).hospital(world.region.pk, disease) == provincial.pk
    assert national.pk != provincial.pk


# ---------------------------------------------------------------------------
# B. The catalogue's cross-province settlement column and aliases
# ---------------------------------------------------------------------------

CROSS_PROVINCE = {"M03900", "M01600", "M00503", "M07803", "M07804", "M08300"}


def test_bundled_catalogue_loads_cross_province_settlement_and_aliases():
    call_command("load_catalogue", verbosity=0)
    assert set(Disease.objects.filter(cross_province_settlement=True).values_list("code", flat=True)) == CROSS_PROVINCE
    hypertension = Disease.objects.get(code="M03900")
    assert hypertension.aliases == ["高血压", "原发性高血压"]
    assert "2型糖尿病" in Disease.objects.get(code="M01600").aliases
    assert Disease.objects.get(code="M02101").aliases == []
    # No alias repeats a name of the catalogue, and none names two diseases.
    data = json.loads(CATALOGUE.read_text(encoding="utf-8"))
    names = {entry["name"] for entry in data["diseases"]}
    aliases = [alias for entry in data["diseases"] for alias in entry.get("aliases", [])]
    assert len(aliases) == len(set(aliases)) and not names & set(aliases)


def test_loader_defaults_and_refuses_bad_aliases(world):
    system = services.get_system_user()
    services.catalogue_load(
        data={"version": "t1", "diseases": [{"code": "M09901", "name": "测试病", "type": "11"}]}, actor=system
    )
    plain = Disease.objects.get(code="M09901")
    assert (plain.cross_province_settlement, plain.aliases) == (False, [])
    services.catalogue_load(
        data={
            "version": "t2",
            "diseases": [
                {
                    "code": "M09901",
                    "name": "测试病",
                    "type": "11",
                    "cross_province_settlement": True,
                    "aliases": [" 测试 ", "测试", "测试病", ""],
                }
            ],
        },
        actor=system,
    )
    plain.refresh_from_db()
    assert (plain.cross_province_settlement, plain.aliases) == (True, ["测试"])
    with pytest.raises(InvalidInput) as refused:
        services.catalogue_load(
            data={"version": "t3", "diseases": [{"code": "M09901", "name": "测试病", "type": "11", "aliases": "测试"}]},
            actor=system,
        )
    assert refused.value.code == "invalid_catalogue"


def test_catalogue_import_reads_and_compares_both_columns():
    call_command("load_catalogue", verbosity=0)
    csv = (
        "病种编码,病种名称,病种类型,跨省直接结算,别名\n"
        "M03900,高血压病,11,是,高血压;原发性高血压\n"
        "M04600,冠心病,11,是,冠状动脉粥样硬化性心脏病\n"
    ).encode()
    data = parse_catalogue(csv, "catalogue.csv", version="2027.1")
    entries = {entry["code"]: entry for entry in data["diseases"]}
    assert entries["M03900"]["aliases"] == ["高血压", "原发性高血压"]
    assert entries["M04600"]["cross_province_settlement"] is True
    changed = {row["code"]: row["fields"] for row in catalogue_diff(data)["changed"]}
    assert changed["M04600"]["cross_province_settlement"] == [False, True]
    assert "aliases" not in changed.get("M03900", {}) and "cross_province_settlement" not in changed.get("M03900", {})


def test_disease_api_shows_both(world):
    Disease.objects.filter(pk=world.hypertension.pk).update(cross_province_settlement=True, aliases=["高血压"])
    body = client_for(world.clerk).get("/api/v1/diseases/M03900/").json()
    assert body["cross_province_settlement"] is True and body["aliases"] == ["高血压"]
    assert client_for(world.clerk).get("/api/v1/diseases/M05300/").json()["cross_province_settlement"] is False


# ---------------------------------------------------------------------------
# C. Review delegated to township health centres, batches, on-the-spot approval per region
# ---------------------------------------------------------------------------


@dataclass
class Delegation:
    county: Region  # 富民县: review_level = township, batch day 5
    t1: Region  # 永定街道
    t2: Region  # 款庄镇
    plain_county: Region  # 安宁市: no policy of its own (county-level review)
    plain_township: Region
    centre_1: Any  # township health centre of t1
    reviewer_t1: Any  # attached through the health centre
    reviewer_t2: Any  # attached through the region
    reviewer_county: Any


@pytest.fixture
def delegation(world: Any) -> Delegation:
    county = RegionFactory(code="530124", name="富民县", parent=world.region)
    PolicyFactory(region=county, review_level=ReviewLevel.TOWNSHIP, batch_day=5)
    t1 = RegionFactory(code="530124001", name="永定街道", parent=county)
    t2 = RegionFactory(code="530124101", name="款庄镇", parent=county)
    plain_county = RegionFactory(code="530181", name="安宁市", parent=world.region)
    plain_township = RegionFactory(code="530181001", name="连然街道", parent=plain_county)
    centre_1 = InstitutionFactory(level=1, region=t1, name="永定街道卫生院", may_diagnose=True)
    stages = ["initial_review", "recheck", "approval"]
    return Delegation(
        county=county,
        t1=t1,
        t2=t2,
        plain_county=plain_county,
        plain_township=plain_township,
        centre_1=centre_1,
        reviewer_t1=staff_user(roles.REVIEWER, institution=centre_1, stages=stages, username="rev_t1"),
        reviewer_t2=staff_user(roles.REVIEWER, region=t2, stages=stages, username="rev_t2"),
        reviewer_county=staff_user(roles.REVIEWER, region=county, stages=stages, username="rev_county"),
    )


def test_review_region_follows_the_policy_of_the_township(world, delegation):
    d = delegation
    assert selectors.review_region_for(d.t1) == d.t1  # county delegates: the township reviews
    assert selectors.review_region_for(d.plain_township) == d.plain_county  # county-level review
    assert selectors.review_region_for(d.county) == d.county
    assert selectors.review_region_for(world.region) == world.region
    # A township's own policy decides over its county's.
    PolicyFactory(region=d.t2, review_level=ReviewLevel.COUNTY)
    assert selectors.review_region_for(d.t2) == d.county


def test_filing_takes_the_review_region(world, delegation):
    d = delegation

    def file(region: Region) -> Application:
        return services.application_submit(
            person=world.person(insured_region=region),
            disease=world.hypertension,
            treating_institution=world.county,
            actor=world.clerk,
        )

    assert file(d.t1).region == d.t1
    assert file(d.plain_township).region == d.plain_county
    assert file(d.county).region == d.county


@pytest.fixture
def delegated_items(world: Any, delegation: Delegation) -> dict[str, Any]:
    """One diagnosed hypertension filing per region in February, assembled into the March batches."""
    d = delegation
    apps = {
        key: diagnosed(world, person=world.person(insured_region=region))
        for key, region in (("t1", d.t1), ("t2", d.t2), ("county", d.county))
    }
    with time_machine.travel(dt.datetime(2026, 3, 3, 9, 0, tzinfo=SHANGHAI), tick=False):
        assert review_selectors.due_batches(dt.date(2026, 3, 3)) == []  # the county's batch day (5th) is inherited
    with time_machine.travel(dt.datetime(2026, 3, 5, 9, 0, tzinfo=SHANGHAI), tick=False):
        due = review_selectors.due_batches(dt.date(2026, 3, 5))
        assert {(item.region_id, item.period) for item in due} == {
            (d.t1.pk, "2026-03"),
            (d.t2.pk, "2026-03"),
            (d.county.pk, "2026-03"),
        }
        # The beat job, with the assembly tasks it sends run as a worker would.
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(
                review_tasks.assemble_batch, "delay", lambda *a: review_tasks.assemble_batch.apply(args=a).get()
            )
            review_tasks.assemble_due_batches.apply(kwargs={"day": "2026-03-05"}).get()
    return {key: item_of(application) for key, application in apps.items()} | {"applications": apps}


def test_a_delegated_township_gets_its_own_monthly_batch(world, delegation, delegated_items):
    d = delegation
    batches = {b.region_id: b for b in ReviewBatch.objects.all()}
    assert set(batches) == {d.t1.pk, d.t2.pk, d.county.pk}
    t1_batch = batches[d.t1.pk]
    assert (t1_batch.period, t1_batch.item_count) == ("2026-03", 1)
    assert t1_batch.cutoff == dt.datetime(2026, 3, 5, tzinfo=SHANGHAI)
    assert delegated_items["t1"].batch_id == t1_batch.pk and delegated_items["t1"].region_id == d.t1.pk
    # Running it again changes nothing.
    review_services.batch_assemble(region_id=d.t1.pk, period="2026-03", actor=services.get_system_user())
    assert ReviewItem.objects.filter(batch=t1_batch).count() == 1


def test_township_reviewer_sees_claims_and_decides_only_their_township(world, delegation, delegated_items):
    d = delegation
    items = delegated_items
    assert {i.pk for i in review_selectors.queue_for(d.reviewer_t1)} == {items["t1"].pk}
    assert set(selectors.applications_visible_to(d.reviewer_t1).values_list("pk", flat=True)) == {
        items["applications"]["t1"].pk
    }
    assert set(review_selectors.batches_visible_to(d.reviewer_t1).values_list("region_id", flat=True)) == {d.t1.pk}
    claimed = review_services.queue_claim(actor=d.reviewer_t1, count=10)
    assert [i.pk for i in claimed] == [items["t1"].pk]
    for other in (items["t2"], items["county"]):
        with pytest.raises(NotPermitted):
            review_services.review_decide(item_id=other.pk, actor=d.reviewer_t1, decision="approve")
    review_services.review_decide(item_id=items["t1"].pk, actor=d.reviewer_t1, decision="approve")
    assert Application.objects.get(pk=items["t1"].application_id).state == State.APPROVED


def test_county_reviewer_backs_up_every_township(world, delegation, delegated_items):
    d = delegation
    items = delegated_items
    expected = {items["t1"].pk, items["t2"].pk, items["county"].pk}
    assert {i.pk for i in review_selectors.queue_for(d.reviewer_county)} == expected
    claimed = review_services.queue_claim(actor=d.reviewer_county, count=10)
    assert {i.pk for i in claimed} == expected
    review_services.review_decide(item_id=items["t2"].pk, actor=d.reviewer_county, decision="approve")
    assert Application.objects.get(pk=items["t2"].application_id).state == State.APPROVED
    # The city's reviewer (above the county) sees the pending ones too; the other city's does not.
    assert {i.pk for i in review_selectors.queue_for(world.reviewer)} == expected - {items["t2"].pk}
    assert not review_selectors.queue_for(world.other_reviewer).exists()


def test_township_reviewer_api_scope(world, delegation, delegated_items):
    d = delegation
    items = delegated_items
    mine = client_for(d.reviewer_t1)
    assert [row["id"] for row in mine.get("/api/v1/queue/").json()["results"]] == [items["t1"].pk]
    assert [b["region"] for b in mine.get("/api/v1/batches/").json()["results"]] == [d.t1.code]
    for other in (items["t2"], items["county"]):
        assert mine.get(f"/api/v1/review-items/{other.pk}/").status_code == 404
        assert mine.post(f"/api/v1/review-items/{other.pk}/approve/", {}, format="json").status_code == 404
        assert mine.get(f"/api/v1/applications/{other.application_id}/").status_code == 404
    claimed = mine.post("/api/v1/queue/claim/", {"count": 10}, format="json").json()
    assert [row["id"] for row in claimed] == [items["t1"].pk]
    approved = mine.post(f"/api/v1/review-items/{items['t1'].pk}/approve/", {}, format="json")
    assert approved.status_code == 200 and approved.json()["outcome"] == "approved"

    county = client_for(d.reviewer_county)
    assert county.get(f"/api/v1/review-items/{items['t2'].pk}/").status_code == 200
    assert county.get(f"/api/v1/applications/{items['t2'].application_id}/").status_code == 200
    assert county.post("/api/v1/queue/claim/", {"count": 10}, format="json").status_code == 200
    decided = county.post(f"/api/v1/review-items/{items['county'].pk}/approve/", {}, format="json")
    assert decided.status_code == 200 and decided.json()["outcome"] == "approved"


@pytest.fixture
def copd_immediate_in_county(world: Any, delegation: Delegation) -> Any:
    """COPD is reviewed in the monthly batch by the catalogue; 富民县 approves it on the spot."""
    assert world.copd.review_mode == "batch"
    policy = delegation.county.policy
    policy.immediate_diseases.add(world.copd)
    return policy


def test_listed_disease_is_approved_on_the_spot_in_its_county_only(world, delegation, copd_immediate_in_county):
    d = delegation
    in_county = diagnosed(world, disease=world.copd, person=world.person(insured_region=d.county))
    in_township = diagnosed(world, disease=world.copd, person=world.person(insured_region=d.t1))
    elsewhere = diagnosed(world, disease=world.copd, person=world.person(insured_region=d.plain_county))
    assert in_township.region == d.t1  # the delegated township inherits the county's immediate list

    for application in (in_county, in_township):
        assert application.review_is_immediate()
        review_services.application_approve_immediately(application_id=application.pk, actor=world.officer)
        assert Application.objects.get(pk=application.pk).state == State.APPROVED

    assert not elsewhere.review_is_immediate()
    with pytest.raises(TransitionRefused) as refused:
        review_services.application_approve_immediately(application_id=elsewhere.pk, actor=world.officer)
    assert refused.value.code == "not_immediate" and refused.value.details == {"region": d.plain_county.code}
    assert Application.objects.get(pk=elsewhere.pk).state == State.DIAGNOSED


def test_immediate_approval_api_per_region(world, delegation, copd_immediate_in_county):
    d = delegation
    in_county = diagnosed(world, disease=world.copd, person=world.person(insured_region=d.county))
    elsewhere = diagnosed(world, disease=world.copd, person=world.person(insured_region=d.plain_county))
    officer = client_for(world.officer)
    refused = officer.post("/api/v1/immediate-approvals/", {"application": elsewhere.pk}, format="json")
    assert refused.status_code == 409 and refused.json()["code"] == "not_immediate"
    approved = officer.post("/api/v1/immediate-approvals/", {"application": in_county.pk}, format="json")
    assert approved.status_code == 200 and approved.json()["state"] == "approved"


def test_every_reader_uses_the_one_immediate_rule(world, delegation, copd_immediate_in_county):
    """The officer's worklist (a queryset) and the page's actions agree with models.immediate_review."""
    d = delegation
    apps = [
        diagnosed(world, disease=world.copd, person=world.person(insured_region=d.county)),
        diagnosed(world, disease=world.copd, person=world.person(insured_region=d.t1)),
        diagnosed(world, disease=world.copd, person=world.person(insured_region=d.plain_township)),
        diagnosed(world, disease=world.copd, person=world.person(insured_region=d.plain_county)),
        diagnosed(world, disease=world.dialysis, person=world.person(insured_region=d.plain_county)),
        diagnosed(world, disease=world.hypertension, person=world.person(insured_region=d.county)),
        diagnosed(world, disease=world.copd),  # the city: no policy anywhere above it
    ]
    expected = {a.pk for a in apps if immediate_review(a.disease, a.region)}
    assert len(expected) == 3  # COPD in the county and its township, dialysis anywhere
    found = set(
        selectors.reviewed_on_the_spot(Application.objects.filter(pk__in=[a.pk for a in apps])).values_list(
            "pk", flat=True
        )
    )
    assert found == expected
    for application in apps:
        actions = policies.application_actions_for(world.officer, application)
        assert ("approve_immediately" in actions) == (application.pk in expected)
    # The monthly batch still takes what was not approved on the spot (the fallback).
    with time_machine.travel(dt.datetime(2026, 3, 6, 9, 0, tzinfo=SHANGHAI), tick=False):
        batch = review_services.batch_assemble(
            region_id=d.county.pk, period="2026-03", actor=services.get_system_user()
        )
    assert batch.item_count == 2


def test_officer_home_lists_what_is_immediate_in_its_region(world, delegation, copd_immediate_in_county):
    from django.test import Client

    d = delegation
    listed = diagnosed(world, disease=world.copd, person=world.person(insured_region=d.county))
    not_listed = diagnosed(world, disease=world.copd, person=world.person(insured_region=d.plain_county))
    client = Client()
    client.force_login(world.officer)
    page = client.get("/")
    assert page.status_code == 200
    waiting = {a.pk for a in page.context["waiting"]}
    assert listed.pk in waiting and not_listed.pk not in waiting


def test_demo_seed_has_townships_and_both_policies():
    from io import StringIO

    from django.contrib.auth import get_user_model

    call_command("seed_demo", "--password", "demo-secret-1", "--applications", "6", stdout=StringIO())
    township = Region.objects.get(code="530124001")
    assert township.is_township and township.parent.code == "530124"
    assert township.institutions.filter(code="H53012402").exists()
    assert Region.objects.get(code="530302102").institutions.filter(code="H53030202").exists()
    assert selectors.review_region_for(township).code == "530124"  # 富民县 reviews at the county
    yuezhou = Region.objects.get(code="530302102")
    assert selectors.review_region_for(yuezhou) == yuezhou  # 麒麟区 delegates to its townships
    assert set(selectors.policy_for_region(township).immediate_diseases.values_list("code", flat=True)) == {
        "M03900",
        "M01600",
    }
    reviewer = get_user_model().objects.get(username="reviewer_yuezhou")
    assert selectors.user_region_id(reviewer) == yuezhou.pk
    for username in ("clinic", "clinic_county", "doctor", "reviewer", "officer", "admin"):
        assert get_user_model().objects.get(username=username).check_password("demo-secret-1")
