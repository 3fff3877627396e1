"""Issue 12 item 9: roster disease names match the way the filing form does (one rule, aliases
included), and a line the dry run reported invalid is never written by the commit."""

from __future__ import annotations

import pytest
from django.db import DataError

from enrollment import selectors as enrollment_selectors
from enrollment import services as enrollment_services
from enrollment.forms import FilingForm
from enrollment.models import Disease, DiseaseType, Person, Region
from interop import services
from interop.models import AssistedFiling, ImportState, RowAction, RowStatus
from kernel.errors import InvalidInput
from tests.factories import DiseaseFactory, synthetic_id_number
from tests.interop.helpers import csv_bytes
from tests.interop.test_rosters import entries, run_import

# ---------------------------------------------------------------------------
# The matching rule
# ---------------------------------------------------------------------------


def match(text: str):
    return enrollment_selectors.disease_matches(text)


def test_alias_finds_the_disease(world):
    world.hypertension.aliases = ["高血压", "原发性高血压"]
    world.hypertension.save()
    assert (match("高血压").disease, match("高血压").how) == (world.hypertension, "alias")
    assert match("原发性高血压").disease == world.hypertension
    assert match("原发性 高血压病").disease == world.hypertension  # alias, loosely


@pytest.mark.parametrize(
    ("text", "code", "how"),
    [
        ("M03900", "M03900", "code"),
        ("Ｍ０３９００", "M03900", "code"),  # full-width
        (" m03900 ", "M03900", "code"),
        ("高血压病", "M03900", "name"),
        ("高血压", "M03900", "loose"),  # no alias needed: one final 病/症 is ignored
        ("高血压症", "M03900", "loose"),
        ("高 血 压 病", "M03900", "loose"),
        ("糖尿病　", "M01600", "name"),  # an ideographic space around it
        ("慢性阻塞性肺疾病", "M05300", "name"),
        ("慢性肾功能不全(血透治疗)", "M07803", "loose"),  # half-width brackets for full-width ones
        ("E11.9", "M01600", "icd10"),
        ("Ｉ１０", "M03900", "icd10"),
    ],
)
def test_code_name_loose_name_and_icd10(world, text, code, how):
    found = match(text)
    assert (found.disease.code if found.disease else found.code, found.how) == (code, how)


def test_ambiguous_alias_is_reported_with_its_candidates_never_guessed(world):
    for disease in (world.hypertension, world.diabetes):
        disease.aliases = ["三高"]
        disease.save()
    found = match("三高")
    assert found.disease is None and found.code == "ambiguous_disease"
    assert [d.code for d in found.candidates] == ["M01600", "M03900"]
    assert "M01600" in found.message and "M03900" in found.message


def test_loose_names_that_collide_are_ambiguous(world):
    DiseaseFactory(code="M09901", name="测试病", disease_type=DiseaseType.CHRONIC)
    DiseaseFactory(code="M09902", name="测试症", disease_type=DiseaseType.CHRONIC)
    assert match("测试病").disease.code == "M09901"  # the exact name wins
    found = match("测试")
    assert found.code == "ambiguous_disease" and {d.code for d in found.candidates} == {"M09901", "M09902"}


def test_an_active_disease_wins_over_an_inactive_one_of_the_same_name(world):
    DiseaseFactory(code="M09903", name="高血压病", active=False)
    assert match("高血压病").disease == world.hypertension
    world.hypertension.active = False
    world.hypertension.save()
    assert match("高血压病").code == "ambiguous_disease"


def test_unknown_and_ambiguous_icd10(world):
    assert match("M99999").code == "unknown_disease"
    assert match("不存在的病").code == "unknown_disease"
    found = match("N18.5")
    assert found.code == "ambiguous_disease" and {d.code for d in found.candidates} == {"M07800", "M07803"}


def test_filing_form_lists_aliases_and_searches_by_the_same_rule(world):
    world.hypertension.aliases = ["原发性高血压"]
    world.hypertension.save()
    html = str(FilingForm(user=world.clerk)["disease"])
    assert "M03900 高血压病（原发性高血压）" in html
    # The search terms are the code and the loose keys of the name and aliases (what filing.js matches).
    assert f'value="{world.hypertension.pk}" data-search="M03900|高血压|原发性高血压"' in html


# ---------------------------------------------------------------------------
# The roster uses the same rule
# ---------------------------------------------------------------------------


def test_roster_condition_by_alias_and_without_suffix(world):
    world.diabetes.aliases = ["消渴症"]
    world.diabetes.save()
    rows = [
        [synthetic_id_number(), "甲", "530100", "", "", "高血压"],  # 2 loose name
        [synthetic_id_number(), "乙", "530100", "", "", "消渴症"],  # 3 alias
        [synthetic_id_number(), "丙", "530100", "", "", "高血压 病"],  # 4 one condition despite the space
        [synthetic_id_number(), "丁", "530100", "", "", "高血压 糖尿病"],  # 5 two conditions
        [synthetic_id_number(), "戊", "530100", "", "", "M05300 I10"],  # 6 two codes, not one ICD-10 code
    ]
    # An ICD-10 prefix that "M05300I10" would start with, were the space dropped.
    DiseaseFactory(code="M09904", name="类风湿关节炎", icd10_prefixes=["M05"])
    roster = run_import(csv_bytes(rows), world.admin)
    assert entries(roster) == {
        (2, "高血压"): (RowStatus.ELIGIBLE, ""),
        (3, "消渴症"): (RowStatus.ELIGIBLE, ""),
        (4, "高血压 病"): (RowStatus.ELIGIBLE, ""),
        (5, "高血压"): (RowStatus.ELIGIBLE, ""),
        (5, "糖尿病"): (RowStatus.ELIGIBLE, ""),
        (6, "M05300"): (RowStatus.ELIGIBLE, ""),
        (6, "I10"): (RowStatus.ELIGIBLE, ""),
    }
    assert {(r.line, r.disease.code) for r in roster.rows.all()} == {
        (2, "M03900"),
        (3, "M01600"),
        (4, "M03900"),
        (5, "M03900"),
        (5, "M01600"),
        (6, "M05300"),
        (6, "M03900"),
    }
    assert match("M05300 I10").code == "unknown_disease"  # one text, two codes: not guessed either


def test_roster_alias_match_hypertension(world):
    world.hypertension.aliases = ["高血压"]
    world.hypertension.save()
    roster = run_import(csv_bytes([[synthetic_id_number(), "甲", "530100", "", "", "高血压"]]), world.admin)
    row = roster.rows.get()
    assert (row.status, row.disease.code) == (RowStatus.ELIGIBLE, "M03900")


def test_roster_ambiguous_alias(world):
    for disease in (world.hypertension, world.coronary):
        disease.aliases = ["心血管病"]
        disease.save()
    roster = run_import(
        csv_bytes([[synthetic_id_number(), "甲", "530100", "", "", "心血管病"]]), world.admin, commit=True
    )
    row = roster.rows.get()
    assert (row.status, row.reason_code, row.disease) == (RowStatus.INVALID, "ambiguous_disease", None)
    assert "M03900" in row.message and "M04600" in row.message
    assert row.action == RowAction.NOT_WRITTEN and AssistedFiling.objects.count() == 0


# ---------------------------------------------------------------------------
# What the dry run refuses, the commit never writes
# ---------------------------------------------------------------------------


def test_a_51_character_name_is_invalid_in_the_dry_run_and_not_registered_on_commit(world):
    long_number, fine_number = synthetic_id_number(), synthetic_id_number()
    rows = [
        [long_number, "张" * 51, "530100", "", "", "M03900"],
        [fine_number, "李" * 50, "530100", "", "", "M03900"],
    ]
    roster = run_import(csv_bytes(rows), world.admin)
    assert entries(roster) == {
        (2, "M03900"): (RowStatus.INVALID, "invalid_name"),
        (3, "M03900"): (RowStatus.ELIGIBLE, ""),
    }
    services.roster_import_request_commit(import_id=roster.pk, actor=world.admin, queue=False)
    roster = services.roster_import_run(import_id=roster.pk)
    assert roster.state == ImportState.COMMITTED
    refused = roster.rows.get(line=2)
    assert (refused.status, refused.reason_code, refused.action, refused.person) == (
        RowStatus.INVALID,
        "invalid_name",
        RowAction.NOT_WRITTEN,
        None,
    )
    assert refused.name == "张" * 51  # the report shows what the file said
    assert not Person.objects.filter(id_number=long_number).exists()
    assert Person.objects.get(id_number=fine_number).name == "李" * 50
    assert list(AssistedFiling.objects.values_list("person__id_number", flat=True)) == [fine_number]


@pytest.mark.parametrize(
    ("name", "phone", "declared", "reason"),
    [
        ("王" * 51, "", "M03900", "invalid_name"),
        ("王\x00五", "", "M03900", "invalid_name"),
        ("王五", "0871-6543210 转 12345678", "M03900", "invalid_phone"),
        ("王五", "138\x0000", "M03900", "invalid_phone"),
        ("王五", "", "M99999", "unknown_disease"),
        ("王五", "", "不存在的病", "unknown_disease"),
    ],
)
def test_an_invalid_line_between_two_valid_ones(world, name, phone, declared, reason):
    numbers = [synthetic_id_number() for _ in range(3)]
    rows = [
        [numbers[0], "甲", "530100", "13800000001", "", "M03900"],
        [numbers[1], name, "530100", phone, "", declared],
        [numbers[2], "丙", "530100", "", "", "M01600"],
    ]
    roster = run_import(csv_bytes(rows), world.admin)
    dry = entries(roster)
    assert [dry[key] for key in sorted(dry)] == [
        (RowStatus.ELIGIBLE, ""),
        (RowStatus.INVALID, reason),
        (RowStatus.ELIGIBLE, ""),
    ]
    services.roster_import_request_commit(import_id=roster.pk, actor=world.admin, queue=False)
    roster = services.roster_import_run(import_id=roster.pk)
    assert roster.state == ImportState.COMMITTED, roster.error
    assert entries(roster) == dry  # every report row survives, with the dry run's verdict
    assert list(roster.rows.order_by("line").values_list("action", flat=True)) == [
        RowAction.FILING_CREATED,
        RowAction.NOT_WRITTEN,
        RowAction.FILING_CREATED,
    ]
    assert set(Person.objects.filter(id_number__in=numbers).values_list("id_number", flat=True)) == {
        numbers[0],
        numbers[2],
    }
    assert set(AssistedFiling.objects.values_list("person__id_number", "disease__code")) == {
        (numbers[0], "M03900"),
        (numbers[2], "M01600"),
    }
    assert roster.counts["by_action"][RowAction.NOT_WRITTEN] == 1
    assert "\x00" not in roster.rows.get(line=3).name + roster.rows.get(line=3).phone


def test_what_the_dry_run_refused_stays_refused_when_the_data_change_before_commit(world):
    unknown_region, partly = synthetic_id_number(), synthetic_id_number()
    rows = [
        [unknown_region, "甲", "530199", "", "", "M03900"],  # region not known yet
        [partly, "乙", "530100", "", "", "M03900;M09999"],  # second condition not in the catalogue yet
    ]
    roster = run_import(csv_bytes(rows), world.admin)
    assert entries(roster) == {
        (2, "M03900"): (RowStatus.INVALID, "unknown_region"),
        (3, "M03900"): (RowStatus.ELIGIBLE, ""),
        (3, "M09999"): (RowStatus.INVALID, "unknown_disease"),
    }
    Region.objects.create(code="530199", name="新设区", parent=world.region)
    DiseaseFactory(code="M09999", name="新增病种", disease_type=DiseaseType.CHRONIC)
    services.roster_import_request_commit(import_id=roster.pk, actor=world.admin, queue=False)
    roster = services.roster_import_run(import_id=roster.pk)
    assert entries(roster) == {
        (2, "M03900"): (RowStatus.INVALID, "unknown_region"),
        (3, "M03900"): (RowStatus.ELIGIBLE, ""),
        (3, "M09999"): (RowStatus.INVALID, "unknown_disease"),
    }
    assert not Person.objects.filter(id_number=unknown_region).exists()
    assert list(AssistedFiling.objects.values_list("person__id_number", "disease__code")) == [(partly, "M03900")]
    assert roster.rows.get(declared="M09999").action == RowAction.NOT_WRITTEN


def test_a_line_the_database_refuses_on_commit_is_reported_and_the_others_are_written(world, monkeypatch):
    numbers = [synthetic_id_number() for _ in range(3)]
    rows = [[number, "甲乙丙"[i], "530100", "", "", "M03900"] for i, number in enumerate(numbers)]
    roster = run_import(csv_bytes(rows), world.admin)
    register = enrollment_services.person_register

    def refusing(**kwargs):
        if kwargs["id_number"] == numbers[1]:
            raise DataError("value too long")
        return register(**kwargs)

    monkeypatch.setattr(enrollment_services, "person_register", refusing)
    services.roster_import_request_commit(import_id=roster.pk, actor=world.admin, queue=False)
    roster = services.roster_import_run(import_id=roster.pk)
    assert roster.state == ImportState.COMMITTED
    refused = roster.rows.get(line=3)
    assert (refused.status, refused.reason_code, refused.action) == (
        RowStatus.INVALID,
        "not_stored",
        RowAction.NOT_WRITTEN,
    )
    assert "value too long" not in refused.message
    assert set(Person.objects.filter(id_number__in=numbers).values_list("id_number", flat=True)) == {
        numbers[0],
        numbers[2],
    }
    assert AssistedFiling.objects.count() == 2


def test_a_commit_that_stops_keeps_the_dry_run_report_of_the_lines_it_did_not_reach(world, monkeypatch):
    numbers = [synthetic_id_number() for _ in range(4)]
    rows = [[number, "甲乙丙丁"[i], "530100", "", "", "M03900"] for i, number in enumerate(numbers)]
    roster = run_import(csv_bytes(rows), world.admin)
    monkeypatch.setattr(services, "COMMIT_CHUNK", 2)
    register = enrollment_services.person_register

    def crashing(**kwargs):
        if kwargs["id_number"] == numbers[2]:
            raise RuntimeError("worker bug")
        return register(**kwargs)

    monkeypatch.setattr(enrollment_services, "person_register", crashing)
    services.roster_import_request_commit(import_id=roster.pk, actor=world.admin, queue=False)
    with pytest.raises(RuntimeError):
        services.roster_import_run(import_id=roster.pk)
    roster.refresh_from_db()
    assert roster.state == ImportState.FAILED
    # Lines 2–3 were committed (their rows say so); lines 4–5 keep their dry-run rows.
    assert list(roster.rows.order_by("line").values_list("line", "status", "action")) == [
        (2, RowStatus.ELIGIBLE, RowAction.FILING_CREATED),
        (3, RowStatus.ELIGIBLE, RowAction.FILING_CREATED),
        (4, RowStatus.ELIGIBLE, RowAction.NOT_WRITTEN),
        (5, RowStatus.ELIGIBLE, RowAction.NOT_WRITTEN),
    ]
    assert not Person.objects.filter(id_number__in=numbers[2:]).exists()


# ---------------------------------------------------------------------------
# person_register holds the same rule
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "phone", "code"),
    [("张" * 51, None, "invalid_name"), ("张\x00三", None, "invalid_name"), ("张三", "1" * 21, "invalid_phone")],
)
def test_person_register_refuses_what_a_person_row_cannot_hold(world, name, phone, code):
    number = synthetic_id_number()
    with pytest.raises(InvalidInput) as caught:
        enrollment_services.person_register(
            id_number=number, name=name, phone=phone, insured_region=world.region, actor=world.admin
        )
    assert caught.value.code == code
    assert not Person.objects.filter(id_number=number).exists()


def test_rare_characters_in_private_use_are_a_valid_name():
    assert enrollment_selectors.person_details_problem(name="王\ue000明") is None
    assert enrollment_selectors.person_details_problem(name="阿依·买买提") is None


# ---------------------------------------------------------------------------
# The catalogue file's aliases column
# ---------------------------------------------------------------------------


def test_catalogue_csv_aliases_column(world):
    header = "code,name,type,icd10_prefixes,aliases\n"
    lines = [
        f"{d.code},{d.name},{d.disease_type},{';'.join(d.icd10_prefixes)},"
        for d in Disease.objects.order_by("code")
        if d.code != "M03900"
    ]
    lines.append("M03900,高血压病,11,I10;I11;I12;I13;I15,高血压；原发性高血压")
    content = (header + "\n".join(lines) + "\n").encode()
    record = services.catalogue_import_create(name="c.csv", content=content, actor=world.admin, version="2027.2")
    entry = next(e for e in record.data["diseases"] if e["code"] == "M03900")
    assert entry["aliases"] == ["高血压", "原发性高血压"]
    changed = {item["code"]: item["fields"] for item in record.diff["changed"]}
    assert changed["M03900"]["aliases"] == [[], ["高血压", "原发性高血压"]]
    services.catalogue_import_apply(import_id=record.pk, actor=world.admin)
    world.hypertension.refresh_from_db()
    assert world.hypertension.aliases == ["高血压", "原发性高血压"]
    assert match("原发性高血压").disease == world.hypertension
