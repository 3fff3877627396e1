"""factory_boy factories: synthetic people and places only."""

from __future__ import annotations

import datetime as dt
import itertools

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from enrollment.idnumbers import make_id_number
from enrollment.models import (
    Application,
    Disease,
    DiseaseType,
    Institution,
    Person,
    Physician,
    PhysicianTitle,
    Policy,
    Region,
    StaffProfile,
)
from kernel import roles

_id_sequence = itertools.count(1)


def synthetic_id_number(birth_date: dt.date = dt.date(1960, 5, 17), sex: str = "1") -> str:
    """A checksum-valid 身份证号 for a made-up person (birthplace code 530124, valid in every year)."""
    n = next(_id_sequence)
    day = birth_date + dt.timedelta(days=n // 400)
    return make_id_number("530124", day, n % 400 * 2 + (1 if sex == "1" else 0), sex=sex)


class RegionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Region
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"{530100 + n * 10 + 1:06d}")
    name = factory.Sequence(lambda n: f"测试区{n}")
    parent = None


class PolicyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Policy

    region = factory.SubFactory(RegionFactory)


class InstitutionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Institution

    code = factory.Sequence(lambda n: f"H{n:08d}")
    name = factory.Sequence(lambda n: f"测试医院{n}")
    level = 2
    region = factory.SubFactory(RegionFactory)
    may_diagnose = True


class DiseaseFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Disease
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"M9{n:04d}")
    name = factory.Sequence(lambda n: f"测试病种{n}")
    disease_type = DiseaseType.CHRONIC
    validity_months = 36
    counts_toward_limit = True
    min_institution_level = 1
    min_physician_title = PhysicianTitle.ATTENDING
    required_documents = factory.LazyFunction(lambda: ["diagnosis_certificate"])
    icd10_prefixes = factory.LazyFunction(lambda: ["I10"])


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.PostGenerationMethodCall("set_password", "pw-for-tests-2026")

    @factory.post_generation
    def role(self, create: bool, extracted: str | None, **kwargs: object) -> None:
        if extracted:
            # get_or_create: transactional tests flush the groups the data migration made.
            self.groups.add(Group.objects.get_or_create(name=extracted)[0])
        if create:
            self.save()


def staff_user(
    role: str,
    *,
    institution: Institution | None = None,
    region: Region | None = None,
    stages: list[str] | None = None,
    username: str | None = None,
):
    kwargs = {"role": role}
    if username:
        kwargs["username"] = username
    user = UserFactory(**kwargs)
    StaffProfile.objects.update_or_create(
        user=user, defaults={"institution": institution, "region": region, "review_stages": stages or []}
    )
    return user


class PhysicianFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Physician

    licence_number = factory.Sequence(lambda n: f"DR{n:08d}")
    name = factory.Sequence(lambda n: f"医生{n}")
    institution = factory.SubFactory(InstitutionFactory)
    title = PhysicianTitle.ASSOCIATE_CHIEF


class PersonFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Person

    id_number = factory.LazyFunction(synthetic_id_number)
    name = factory.Sequence(lambda n: f"参保人{n}")
    sex = factory.LazyAttribute(lambda o: "1" if int(o.id_number[16]) % 2 else "2")
    birth_date = factory.LazyAttribute(
        lambda o: dt.date(int(o.id_number[6:10]), int(o.id_number[10:12]), int(o.id_number[12:14]))
    )
    insured_region = factory.SubFactory(RegionFactory)
    insurance_type = "390"


__all__ = [
    "Application",
    "DiseaseFactory",
    "InstitutionFactory",
    "PersonFactory",
    "PhysicianFactory",
    "PolicyFactory",
    "RegionFactory",
    "UserFactory",
    "roles",
    "staff_user",
    "synthetic_id_number",
]
