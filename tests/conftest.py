"""Shared fixtures: a small world with one region, institutions, staff of every role and a catalogue."""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from typing import Any

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile

from enrollment.models import Disease, DiseaseType, Institution, PhysicianTitle, Region
from kernel import roles
from tests.factories import (
    DiseaseFactory,
    InstitutionFactory,
    PersonFactory,
    PhysicianFactory,
    RegionFactory,
    staff_user,
)

PDF_BYTES = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"


def pytest_collection_modifyitems(config: Any, items: list[Any]) -> None:
    """Tests that need real PostgreSQL / Redis run in the service pass of .ci/run.

    Outside it they are skipped with that reason; with REQUIRE_SERVICES=1 (CI's second pass)
    nothing is skipped, and an unreachable service fails the run instead.
    """
    on_postgres = settings.IS_POSTGRES
    on_redis = bool(settings.REDIS_URL)
    for item in items:
        if "postgres" in item.keywords and not on_postgres:
            item.add_marker(pytest.mark.skip(reason="needs PostgreSQL: runs in the DATABASE_URL pass of .ci/run"))
        if "redis" in item.keywords and not (on_redis and on_postgres):
            item.add_marker(pytest.mark.skip(reason="needs Redis + PostgreSQL: runs in the service pass of .ci/run"))


def pytest_sessionstart(session: Any) -> None:
    if os.environ.get("REQUIRE_SERVICES") == "1" and not (settings.IS_POSTGRES and settings.REDIS_URL):
        raise pytest.UsageError("REQUIRE_SERVICES=1 but DATABASE_URL/REDIS_URL do not point at PostgreSQL and Redis")


@pytest.fixture(autouse=True)
def _test_settings(tmp_path: Any, settings: Any) -> None:
    settings.MEDIA_ROOT = str(tmp_path / "media")
    # Password hashing is not under test here; the default hasher costs ~0.3 s per user.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # The per-process copies of reference data and tokens (kernel.reference_cache): a test's rows are rolled
    # back without a signal, and SQLite reuses their ids, so every test starts with none.
    from kernel import reference_cache

    reference_cache.clear_all()


def pdf_upload(name: str = "certificate.pdf", content: bytes = PDF_BYTES) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, content_type="application/pdf")


@dataclass
class World:
    province: Region
    region: Region
    other_region: Region
    township: Institution  # level 1, may diagnose
    county: Institution  # level 2, may diagnose
    other_clinic: Institution  # level 2, other region
    no_diagnosis: Institution  # level 1, may not diagnose
    clerk: Any
    other_clerk: Any
    physician_user: Any
    physician: Any
    resident_user: Any
    resident: Any
    reviewer: Any
    other_reviewer: Any
    officer: Any
    admin: Any
    hypertension: Disease
    diabetes: Disease
    coronary: Disease
    copd: Disease
    dialysis: Disease
    renal: Disease

    def person(self, **kwargs: Any) -> Any:
        kwargs.setdefault("insured_region", self.region)
        return PersonFactory(**kwargs)


@pytest.fixture
def world(db: Any) -> World:
    province = RegionFactory(code="530000", name="云南省")
    region = RegionFactory(code="530100", name="昆明市", parent=province)
    other_region = RegionFactory(code="530300", name="曲靖市", parent=province)
    township = InstitutionFactory(level=1, region=region, name="乡镇卫生院")
    county = InstitutionFactory(level=2, region=region, name="县医院")
    other_clinic = InstitutionFactory(level=2, region=other_region, name="外区医院")
    no_diagnosis = InstitutionFactory(level=1, region=region, may_diagnose=False)
    physician_user = staff_user(roles.PHYSICIAN, institution=county)
    physician = PhysicianFactory(institution=county, title=PhysicianTitle.ASSOCIATE_CHIEF, user=physician_user)
    resident_user = staff_user(roles.PHYSICIAN, institution=county)
    resident = PhysicianFactory(institution=county, title=PhysicianTitle.RESIDENT, user=resident_user)
    common = {"required_documents": ["diagnosis_certificate"]}
    w = World(
        province=province,
        region=region,
        other_region=other_region,
        township=township,
        county=county,
        other_clinic=other_clinic,
        no_diagnosis=no_diagnosis,
        clerk=staff_user(roles.CLINIC_STAFF, institution=county),
        other_clerk=staff_user(roles.CLINIC_STAFF, institution=other_clinic),
        physician_user=physician_user,
        physician=physician,
        resident_user=resident_user,
        resident=resident,
        reviewer=staff_user(roles.REVIEWER, region=region, stages=["initial_review", "recheck", "approval"]),
        other_reviewer=staff_user(roles.REVIEWER, region=other_region, stages=["initial_review"]),
        officer=staff_user(roles.CENTER_OFFICER, institution=county),
        admin=staff_user(roles.ADMIN, region=province),
        hypertension=DiseaseFactory(
            code="M03900", name="高血压病", icd10_prefixes=["I10", "I11", "I12", "I13", "I15"], **common
        ),
        diabetes=DiseaseFactory(
            code="M01600", name="糖尿病", icd10_prefixes=["E10", "E11", "E12", "E13", "E14"], **common
        ),
        coronary=DiseaseFactory(
            code="M04600", name="冠心病", icd10_prefixes=["I20", "I25"], min_institution_level=2, **common
        ),
        copd=DiseaseFactory(code="M05300", name="慢性阻塞性肺疾病", icd10_prefixes=["J44"], **common),
        dialysis=DiseaseFactory(
            code="M07803",
            name="慢性肾功能不全（血透治疗）",
            disease_type=DiseaseType.SPECIAL,
            counts_toward_limit=False,
            validity_months=0,
            review_mode="immediate",
            icd10_prefixes=["N18"],
            min_physician_title=3,
            **common,
        ),
        renal=DiseaseFactory(
            code="M07800",
            name="慢性肾功能不全（非透析治疗）",
            disease_type=DiseaseType.SPECIAL,
            counts_toward_limit=False,
            icd10_prefixes=["N18"],
            min_physician_title=3,
            **common,
        ),
    )
    w.dialysis.exclusive_with.add(w.renal)
    return w


@pytest.fixture
def today() -> dt.date:
    from django.utils import timezone

    return timezone.localdate()
