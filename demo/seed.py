"""Demo data: a small province with every kind of institution, user and application state.

Synthetic only: ID numbers are generated with valid checksums for made-up people.
"""

from __future__ import annotations

import datetime as dt
import random
from typing import Any, TypedDict

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.utils import timezone

from enrollment import services
from enrollment.idnumbers import make_id_number
from enrollment.models import Disease, Institution, Physician, Policy, Region, ReviewLevel, StaffProfile
from kernel import roles

User = get_user_model()

REGIONS = [
    ("530000", "云南省", None),
    ("530100", "昆明市", "530000"),
    ("530124", "富民县", "530100"),
    ("530181", "安宁市", "530100"),
    ("530300", "曲靖市", "530000"),
    ("530302", "麒麟区", "530300"),
    # Townships (乡镇/街道): 9 digits extending their county's code (demo codes).
    ("530124001", "永定街道", "530124"),
    ("530302102", "越州镇", "530302"),
]


class DemoPolicy(TypedDict):
    review_level: ReviewLevel
    immediate: list[str]  # disease codes approved immediately


# Policies of their own (the others inherit the province's defaults):
# - 富民县 keeps review at the county, and its chronic-disease centre approves hypertension and diabetes
#   on the spot (即时办结), on top of dialysis, which the catalogue marks immediate everywhere;
# - 麒麟区 delegates review to its township health centres (审核权限下放): a filing of a person insured in
#   越州镇 is reviewed by the 越州镇 health centre, in a monthly batch of its own.
POLICIES: dict[str, DemoPolicy] = {
    "530124": {"review_level": ReviewLevel.COUNTY, "immediate": ["M03900", "M01600"]},
    "530302": {"review_level": ReviewLevel.TOWNSHIP, "immediate": []},
}
INSTITUTIONS = [
    ("H53010001", "昆明市第一人民医院", 3, "530100", True),
    ("H53012401", "富民县人民医院（慢病中心）", 2, "530124", True),
    ("H53012402", "富民县永定街道卫生院", 1, "530124001", True),
    ("H53018101", "安宁市人民医院", 2, "530181", True),
    ("H53030201", "麒麟区人民医院", 2, "530302", True),
    ("H53030202", "麒麟区越州镇卫生院", 1, "530302102", False),
]
PHYSICIANS = [
    ("DR530100001", "李主任", "H53010001", 4),
    ("DR530124001", "王副主任", "H53012401", 3),
    ("DR530124002", "赵主治", "H53012402", 2),
    ("DR530124003", "钱住院", "H53012402", 1),
    ("DR530302001", "孙副主任", "H53030201", 3),
]
# username, role, institution code, region code, physician licence, review stages
USERS = [
    ("clinic", roles.CLINIC_STAFF, "H53012402", None, None, []),
    ("clinic_county", roles.CLINIC_STAFF, "H53012401", None, None, []),
    ("clinic_qujing", roles.CLINIC_STAFF, "H53030201", None, None, []),
    ("doctor", roles.PHYSICIAN, "H53012401", None, "DR530124001", []),
    ("doctor_township", roles.PHYSICIAN, "H53012402", None, "DR530124002", []),
    ("doctor_city", roles.PHYSICIAN, "H53010001", None, "DR530100001", []),
    ("reviewer", roles.REVIEWER, None, "530100", None, ["initial_review"]),
    ("rechecker", roles.REVIEWER, None, "530100", None, ["recheck"]),
    ("approver", roles.REVIEWER, None, "530100", None, ["approval"]),
    ("reviewer_qujing", roles.REVIEWER, None, "530300", None, ["initial_review", "recheck", "approval"]),
    # A reviewer of the 越州镇 health centre: sees and decides 越州镇's items only.
    ("reviewer_yuezhou", roles.REVIEWER, "H53030202", None, None, ["initial_review", "recheck", "approval"]),
    ("officer", roles.CENTER_OFFICER, "H53012401", None, None, []),
    ("admin", roles.ADMIN, None, "530000", None, []),
]
NAMES = "张伟 王芳 李娜 刘洋 陈静 杨磊 黄敏 赵强 周丽 吴军 徐涛 孙燕 马超 朱琳 胡斌 郭红 何勇 高霞 林峰 罗梅".split()
PDF = b"%PDF-1.4\n% demo certificate\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"


def demo_pdf(name: str = "certificate.pdf") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, PDF, content_type="application/pdf")


@transaction.atomic
def seed_reference() -> None:
    regions: dict[str, Region] = {}
    for code, name, parent in REGIONS:
        regions[code], _ = Region.objects.update_or_create(
            code=code, defaults={"name": name, "parent": regions.get(parent) if parent else None}
        )
    Policy.objects.get_or_create(region=regions["530000"])
    for code, rules in POLICIES.items():
        policy, _ = Policy.objects.update_or_create(
            region=regions[code], defaults={"review_level": rules["review_level"]}
        )
        policy.immediate_diseases.set(Disease.objects.filter(code__in=rules["immediate"]))
    for code, name, level, region, may_diagnose in INSTITUTIONS:
        Institution.objects.update_or_create(
            code=code, defaults={"name": name, "level": level, "region": regions[region], "may_diagnose": may_diagnose}
        )
    for licence, name, inst, title in PHYSICIANS:
        Physician.objects.update_or_create(
            licence_number=licence,
            defaults={"name": name, "institution": Institution.objects.get(code=inst), "title": title},
        )


@transaction.atomic
def seed_users(password: str) -> list[tuple[str, str, str]]:
    created = []
    for username, role, inst, region, licence, stages in USERS:
        user, _ = User.objects.get_or_create(username=username)
        user.set_password(password)
        user.is_staff = role == roles.ADMIN
        user.is_superuser = role == roles.ADMIN
        user.save()
        user.groups.set([Group.objects.get(name=role)])
        StaffProfile.objects.update_or_create(
            user=user,
            defaults={
                "institution": Institution.objects.get(code=inst) if inst else None,
                "region": Region.objects.get(code=region) if region else None,
                "review_stages": stages,
            },
        )
        if licence:
            Physician.objects.filter(user=user).exclude(licence_number=licence).update(user=None)
            Physician.objects.filter(licence_number=licence).update(user=user)
        place = inst or region or ""
        created.append((username, role, place))
    return created


def seed_applications(count: int = 36, seed: int = 7) -> int:
    """File, diagnose, batch and decide applications through the services.

    By ``i % 6``: submitted, withdrawn, diagnosed after the batch (waiting for next month), and three
    fates inside this month's review batch of 富民县: still pending (special diseases past their initial
    review, waiting at re-check), and decided at the initial review (approved, returned, rejected).
    """
    from reviews import services as review_services

    rng = random.Random(seed)
    clerk = User.objects.get(username="clinic_county")
    doctor = User.objects.get(username="doctor")
    reviewer = User.objects.get(username="reviewer")
    system = services.get_system_user()
    county_hospital = Institution.objects.get(code="H53012401")
    fumin = Region.objects.get(code="530124")
    chronic = list(Disease.objects.filter(disease_type="11", active=True, min_physician_title__lte=3))
    special = list(
        Disease.objects.filter(disease_type="12", active=True, min_institution_level__lte=2, min_physician_title__lte=3)
    )
    made = 0
    today = timezone.localdate()
    after_batch: list[tuple[Any, Disease]] = []
    in_batch: dict[int, int] = {}  # application id -> i
    for i in range(count):
        birth = dt.date(1940 + rng.randrange(50), rng.randrange(1, 13), rng.randrange(1, 28))
        person = services.person_register(
            id_number=make_id_number("530124", birth, 100 + i, sex=rng.choice("12")),
            name=NAMES[i % len(NAMES)] + ("" if i < len(NAMES) else str(i)),
            insured_region=fumin,
            insurance_type=rng.choice(["310", "390"]),
            phone=f"138{rng.randrange(10**8):08d}",
            actor=clerk,
        )
        disease = rng.choice(special if i % 4 == 0 else chronic)
        application = services.application_submit(
            person=person, disease=disease, treating_institution=county_hospital, actor=clerk
        )
        made += 1
        fate = i % 6
        if fate == 0:
            continue  # stays submitted
        if fate == 1:
            services.application_withdraw(application_id=application.pk, actor=clerk, reason="申请人自愿撤回")
            continue
        if fate in (2, 3):
            after_batch.append((application, disease))  # diagnosed after the batch: waits for next month
            continue
        _diagnose(application, disease, doctor, today - dt.timedelta(days=rng.randrange(3, 60)))
        in_batch[application.pk] = i

    if in_batch:
        # This month's batch, cut off now so that the applications diagnosed above are in it.
        batch = review_services.batch_assemble(
            region_id=fumin.pk, period=f"{today:%Y-%m}", actor=system, cutoff=timezone.now()
        )
        _decide_demo_batch(batch, in_batch, reviewer)
    for application, disease in after_batch:
        _diagnose(application, disease, doctor, today - dt.timedelta(days=rng.randrange(1, 20)))
    return made


def _diagnose(application: Any, disease: Disease, doctor: Any, day: dt.date) -> None:
    documents = [(doc, demo_pdf(f"{doc}.pdf")) for doc in disease.required_documents]
    services.application_diagnose(
        application_id=application.pk,
        actor=doctor,
        icd10_code=_icd_for(disease),
        diagnosis_date=day,
        documents=documents,
    )


def _decide_demo_batch(batch: Any, in_batch: dict[int, int], reviewer: Any) -> None:
    from django.conf import settings

    from reviews import services as review_services
    from reviews.models import ReviewItem

    review_services.queue_claim(actor=reviewer, count=200, stage="initial_review")
    outcomes = ["approve", "return", "reject", "approve"]
    decided = 0
    for item in ReviewItem.objects.filter(batch=batch).select_related("application__disease").order_by("id"):
        i = in_batch[item.application_id]
        if len(item.stages) > 1:
            # Special diseases: initial review passed, waiting for the re-check (rechecker).
            review_services.review_decide(item_id=item.pk, actor=reviewer, decision="approve", reason="材料齐全")
            continue
        if i % 6 == 4:
            continue  # pending at the initial review
        decision = outcomes[decided % len(outcomes)]
        decided += 1
        if decision == "approve":
            review_services.review_decide(item_id=item.pk, actor=reviewer, decision="approve", reason="符合认定标准")
        elif decision == "return":
            review_services.review_decide(
                item_id=item.pk, actor=reviewer, decision="return", reason="请补充近三个月的检查报告"
            )
        else:
            # 两病 medication coverage is a resident-insurance benefit (390 only).
            two_diseases = (
                item.application.disease.code in settings.TWO_DISEASES_CODES
                and item.application.person.insurance_type == "390"
            )
            review_services.review_decide(
                item_id=item.pk,
                actor=reviewer,
                decision="reject",
                reason_code="criteria_not_met",
                reason="未达到门诊慢性病认定标准",
                two_diseases=two_diseases,
            )
    review_services.queue_release(actor=reviewer)


def _icd_for(disease: Disease) -> str:
    prefix = disease.icd10_prefixes[0]
    return prefix if len(prefix.replace(".", "")) >= 3 else prefix + "34.9"


def seed_all(*, password: str, applications: int = 36) -> dict[str, Any]:
    seed_reference()
    users = seed_users(password)
    made = 0
    from enrollment.models import Application

    if not Application.objects.exists():
        made = seed_applications(applications)
        seed_status_history()
    seed_costs()
    return {"users": users, "applications": made}


def seed_costs() -> None:
    """Last month's settlements of a few persons, the ones holding a support category first, so that the
    assistance pages show a settlement, a statement and one high-cost alert (safe to run twice)."""
    from assistance.demo import seed_assistance
    from enrollment.models import Person

    today = timezone.localdate()
    holding = list(
        Person.objects.filter(categories__valid_from__lte=today)
        .exclude(categories__valid_until__lt=today)
        .distinct()
        .order_by("pk")[:2]
    )
    others = list(Person.objects.exclude(pk__in=[p.pk for p in holding]).order_by("pk")[: 4 - len(holding)])
    if holding or others:
        seed_assistance(persons=holding + others)


def seed_status_history() -> None:
    """A few dated status events, so that the coverage answer's status and categories show something:
    a suspension already resumed, and a household that left poverty (categories continue 12 months)."""
    from enrollment.models import Person, StatusEventKind
    from enrollment.services import person_status

    officer = User.objects.get(username="officer")
    today = timezone.localdate()
    approved = list(Person.objects.filter(applications__state="approved").distinct().order_by("pk")[:2])
    others = list(Person.objects.exclude(pk__in=[p.pk for p in approved]).order_by("pk")[:2])
    persons = (approved + others)[:2]
    if len(persons) < 2:
        return
    suspended, poor = persons
    for kind, day, ref in (
        (StatusEventKind.INSURANCE_SUSPENDED, today - dt.timedelta(days=60), "demo-suspend-1"),
        (StatusEventKind.INSURANCE_RESUMED, today - dt.timedelta(days=45), "demo-resume-1"),
    ):
        person_status.status_event_record(
            person=suspended, kind=kind, effective_date=day, source="demo", reference=ref, actor=officer
        )
    person_status.status_event_record(
        person=poor,
        kind=StatusEventKind.CATEGORIES_SET,
        effective_date=today - dt.timedelta(days=400),
        source="demo",
        reference="demo-categories-1",
        categories=["monitored", "minimum_living"],
        actor=officer,
    )
    person_status.status_event_record(
        person=poor,
        kind=StatusEventKind.POVERTY_EXITED,
        effective_date=today - dt.timedelta(days=90),
        source="demo",
        reference="demo-poverty-exit-1",
        actor=officer,
    )
