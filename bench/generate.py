"""Generate a province-sized data set on PostgreSQL with COPY: persons, applications, audit rows.

    DATABASE_URL=postgres://…/bench .venv/bin/python -m bench.generate --applications 100000

Load the catalogue first (``manage.py load_catalogue``). The mix: one province, ``--cities`` cities
of ``--counties`` counties each, a diagnosing county hospital and a clinic per county, a city
hospital per city; persons hold one to three applications of distinct diseases (so the partial
unique constraint "one active application per person, disease and kind" always holds), in a mix of
states with the audit rows of the transitions that reached them, validity dates spread over three
years around today, diagnoses over the last two months (the next monthly batch). Ids are assigned
here and the sequences moved past them, so running it again appends.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from bench import common

# State of an application → the transitions that reached it, in order (from "" = filed).
PATHS: dict[str, list[tuple[str, str, str]]] = {
    "submitted": [("submit", "", "submitted")],
    "withdrawn": [("submit", "", "submitted"), ("withdraw", "submitted", "withdrawn")],
    "diagnosed": [("submit", "", "submitted"), ("diagnose", "submitted", "diagnosed")],
}
_REVIEWED = PATHS["diagnosed"] + [("enqueue", "diagnosed", "in_review")]
PATHS["rejected"] = _REVIEWED + [("reject", "in_review", "rejected")]
PATHS["approved"] = _REVIEWED + [("approve", "in_review", "approved")]
PATHS["expiring"] = PATHS["approved"] + [("mark_expiring", "approved", "expiring")]
PATHS["expired"] = PATHS["approved"] + [("expire", "approved", "expired")]
PATHS["renewed"] = PATHS["approved"] + [("supersede", "approved", "renewed")]
PATHS["terminated"] = PATHS["approved"] + [("terminate", "approved", "terminated")]

# Share of each state (sums to 1): ~30% diagnosed = the monthly batch (docs/design.md: Reviews; issue 6).
STATE_MIX: dict[str, float] = {
    "diagnosed": 0.30,
    "approved": 0.36,
    "expiring": 0.06,
    "submitted": 0.06,
    "expired": 0.10,
    "rejected": 0.04,
    "withdrawn": 0.03,
    "renewed": 0.02,
    "terminated": 0.03,
}

BENCH_PASSWORD = "bench-password-not-secret"

PERSON_COLUMNS = (
    "id, id_number, name, sex, birth_date, insurance_number, insurance_type, phone, support_categories, "
    "created_at, updated_at, insured_region_id"
)
APPLICATION_COLUMNS = (
    "id, kind, state, filed_at, icd10_code, diagnosis_date, diagnosed_at, decided_at, valid_from, valid_until, "
    "decision_reason_code, decision_reason, termination_reason, ended_on, updated_at, diagnosed_by_id, filed_by_id, "
    "renews_id, disease_id, filing_institution_id, treating_institution_id, person_id, physician_id, region_id"
)
AUDIT_COLUMNS = (
    "transition, from_state, to_state, is_system, at, reason_code, reason, stage, details, actor_id, "
    "application_id, batch_id"
)


@dataclass
class World:
    """The reference rows the generated data points at."""

    counties: list[Any]
    cities: list[Any]
    hospital_of: dict[int, int]  # county id → diagnosing hospital id
    clinic_of: dict[int, int]  # county id → clinic id
    physician_of: dict[int, tuple[int, int]]  # hospital id → (physician id, its user id)
    diseases: list[tuple[int, str, int, str]]  # (id, type, validity months, ICD-10 code)
    clinic_user_id: int
    reviewer_ids: list[int] = field(default_factory=list)


@dataclass
class Generated:
    persons: int = 0
    applications: int = 0
    audit_rows: int = 0
    by_state: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def _group(name: str) -> Any:
    from django.contrib.auth.models import Group

    return Group.objects.get_or_create(name=name)[0]


def _user(username: str, role: str, *, login: bool = False, **profile: Any) -> Any:
    from django.contrib.auth import get_user_model

    from enrollment.models import StaffProfile

    user, created = get_user_model().objects.get_or_create(username=username)
    if created:
        # Only the accounts the HTTP benchmarks log in with pay for a real password hash.
        if login:
            user.set_password(BENCH_PASSWORD)
        else:
            user.set_unusable_password()
        user.save(update_fields=["password"])
    user.groups.add(_group(role))
    StaffProfile.objects.update_or_create(user=user, defaults=profile)
    return user


def build_world(*, cities: int = 4, counties: int = 4) -> World:
    """Regions, institutions, physicians and staff (idempotent; a few hundred ORM rows)."""
    from enrollment.models import Disease, Institution, Physician, Region
    from kernel import roles

    diseases = [
        (d.pk, d.disease_type, d.validity_months, (d.icd10_prefixes or ["I10"])[0])
        for d in Disease.objects.filter(active=True).order_by("code")
    ]
    if not diseases:
        raise SystemExit("No diseases: run `manage.py load_catalogue` first.")
    province, _c = Region.objects.get_or_create(code="530000", defaults={"name": "云南省"})
    city_rows, county_rows = [], []
    hospital_of, clinic_of, physician_of = {}, {}, {}
    reviewer_ids = []
    clinic_user = None
    for c in range(cities):
        city, _c = Region.objects.get_or_create(
            code=f"53{c + 1:02d}00", defaults={"name": f"测试市{c + 1}", "parent": province}
        )
        city_rows.append(city)
        Institution.objects.get_or_create(
            code=f"BENCH-{city.code}-H3",
            defaults={"name": f"{city.name}人民医院", "level": 3, "region": city, "may_diagnose": True},
        )
        reviewer = _user(
            f"bench-reviewer-{city.code}",
            roles.REVIEWER,
            login=True,
            region=city,
            institution=None,
            review_stages=["initial_review", "recheck", "approval"],
        )
        reviewer_ids.append(reviewer.pk)
        for k in range(counties):
            county, _c = Region.objects.get_or_create(
                code=f"53{c + 1:02d}{k + 1:02d}", defaults={"name": f"测试县{c + 1}-{k + 1}", "parent": city}
            )
            county_rows.append(county)
            hospital, _c = Institution.objects.get_or_create(
                code=f"BENCH-{county.code}-H",
                defaults={"name": f"{county.name}医院", "level": 2, "region": county, "may_diagnose": True},
            )
            clinic, _c = Institution.objects.get_or_create(
                code=f"BENCH-{county.code}-C",
                defaults={"name": f"{county.name}卫生院", "level": 1, "region": county},
            )
            doctor_user = _user(f"bench-doctor-{county.code}", roles.PHYSICIAN, institution=hospital)
            physician, _c = Physician.objects.get_or_create(
                licence_number=f"BENCH-{county.code}",
                defaults={"name": "医生", "institution": hospital, "title": 3, "user": doctor_user},
            )
            hospital_of[county.pk], clinic_of[county.pk] = hospital.pk, clinic.pk
            physician_of[hospital.pk] = (physician.pk, doctor_user.pk)
            if clinic_user is None:
                clinic_user = _user("bench-clinic", roles.CLINIC_STAFF, login=True, institution=clinic)
    return World(
        counties=county_rows,
        cities=city_rows,
        hospital_of=hospital_of,
        clinic_of=clinic_of,
        physician_of=physician_of,
        diseases=diseases,
        clinic_user_id=clinic_user.pk,
        reviewer_ids=reviewer_ids,
    )


def _next_id(cursor: Any, table: str) -> int:
    cursor.execute(f"select coalesce(max(id), 0) + 1 from {table}")
    return cursor.fetchone()[0]


def _add_months(day: dt.date, months: int) -> dt.date:
    month = day.month - 1 + months
    year, month = day.year + month // 12, month % 12 + 1
    return dt.date(year, month, min(day.day, 28))


def _rows(
    world: World,
    applications: int,
    rng: random.Random,
    today: dt.date,
    now: dt.datetime,
    first_person: int,
    first_application: int,
    result: Generated,
) -> Iterator[tuple[tuple[Any, ...], tuple[Any, ...] | None, list[tuple[Any, ...]]]]:
    """Yield (application row, person row or None, audit rows), person by person."""
    from enrollment.idnumbers import make_id_number

    states, weights = list(STATE_MIX), list(STATE_MIX.values())
    person_id, application_id = first_person - 1, first_application
    made = 0
    while made < applications:
        person_id += 1
        n = person_id  # globally unique, so a second run appends new people
        county = world.counties[n % len(world.counties)]
        birth = dt.date(1940, 1, 1) + dt.timedelta(days=n // 500)
        person = (
            person_id,
            # A real division code (富民县) so the numbers pass the API's checks; unique by (birth, sequence).
            make_id_number("530124", birth, (n % 500) * 2 + 1),
            f"参保人{n}",
            "1",
            birth,
            f"INS{n:010d}",
            "390",
            f"138{n % 10**8:08d}" if rng.random() < 0.8 else "",
            "[]",
            now,
            now,
            county.pk,
        )
        result.persons += 1
        hospital = world.hospital_of[county.pk]
        physician, doctor_user = world.physician_of[hospital]
        count = min(rng.choices((1, 2, 3), (0.5, 0.35, 0.15))[0], applications - made)
        for index, disease in enumerate(rng.sample(world.diseases, count)):
            disease_id, _type, months, icd10 = disease
            state = rng.choices(states, weights)[0]
            path = PATHS[state]
            filed_at = now - dt.timedelta(days=rng.randint(60, 1200), seconds=rng.randint(0, 86399))
            diagnosed_at = diagnosis_date = decided_at = valid_from = valid_until = ended_on = None
            if state == "diagnosed":
                filed_at = now - dt.timedelta(days=rng.randint(2, 70), seconds=rng.randint(0, 86399))
            if len(path) >= 2 and path[1][0] == "diagnose":
                diagnosed_at = filed_at + dt.timedelta(days=1)
                diagnosis_date = diagnosed_at.date()
            termination = ""
            if state in ("approved", "expiring", "expired", "renewed", "terminated"):
                # Some covering rows are past their end by more than the default 60 grace days (the sweep's
                # expiry work) and some inside the grace (still expiring).
                if state == "approved":
                    valid_until = today + dt.timedelta(days=rng.randint(-120, 1095))
                elif state == "expiring":
                    valid_until = today + dt.timedelta(days=rng.randint(-90, 180))
                else:
                    valid_until = today - dt.timedelta(days=rng.randint(1, 900))
                valid_from = _add_months(valid_until, -(months or 36))
                if months == 0 and state in ("approved", "expiring"):
                    valid_until = None  # long-term (长期)
                if state in ("expired", "renewed"):
                    ended_on = valid_until
                elif state == "terminated":
                    ended_on = valid_from + dt.timedelta(days=rng.randint(30, 300))
                    termination = "moved_out"
                filed_at = dt.datetime.combine(valid_from, dt.time(8), tzinfo=dt.UTC) - dt.timedelta(days=40)
                diagnosed_at = filed_at + dt.timedelta(days=1)
                diagnosis_date = diagnosed_at.date()
                decided_at = dt.datetime.combine(valid_from, dt.time(9), tzinfo=dt.UTC)
            elif state == "rejected":
                decided_at = filed_at + dt.timedelta(days=30)
            elif state == "withdrawn":
                decided_at = filed_at + dt.timedelta(days=3)
            diagnosed = diagnosed_at is not None
            application = (
                application_id,
                "new",
                state,
                filed_at,
                icd10 if diagnosed else "",
                diagnosis_date,
                diagnosed_at,
                decided_at,
                valid_from,
                valid_until,
                "criteria_not_met" if state == "rejected" else "",
                "",
                termination,
                ended_on,
                now,
                doctor_user if diagnosed else None,
                world.clinic_user_id,
                None,
                disease_id,
                world.clinic_of[county.pk],
                hospital,
                person_id,
                physician if diagnosed else None,
                county.pk,
            )
            audit = []
            at = filed_at
            for step, (transition, source, target) in enumerate(path):
                at = {1: diagnosed_at, 3: decided_at}.get(step, at) or at
                if transition in ("mark_expiring", "expire", "supersede", "terminate"):
                    at = now - dt.timedelta(days=1)
                system = transition in ("enqueue", "mark_expiring", "expire")
                actor = None if system else (doctor_user if transition == "diagnose" else world.clinic_user_id)
                audit.append((transition, source, target, system, at, "", "", "", "{}", actor, application_id, None))
            result.by_state[state] = result.by_state.get(state, 0) + 1
            result.audit_rows += len(audit)
            yield application, (person if index == 0 else None), audit
            application_id += 1
            made += 1
        result.applications = made


def generate(
    *,
    applications: int,
    seed: int = 6,
    cities: int = 4,
    counties: int = 4,
    today: dt.date | None = None,
    world: World | None = None,
) -> Generated:
    """COPY ``applications`` applications (and their persons and audit rows) into the database."""
    from django.db import connection, transaction
    from django.utils import timezone

    started = time.perf_counter()
    world = world or build_world(cities=cities, counties=counties)
    today = today or timezone.localdate()
    now = timezone.now()
    rng = random.Random(seed)
    result = Generated()
    with transaction.atomic(), connection.cursor() as cursor:
        first_person = _next_id(cursor, "enrollment_person")
        first_application = _next_id(cursor, "enrollment_application")
        # One COPY per table and slice: a connection runs one COPY at a time, and slicing keeps the
        # generator's memory flat in N.
        slice_rows: tuple[list[Any], list[Any], list[Any]] = ([], [], [])
        for application, person, audit in _rows(
            world, applications, rng, today, now, first_person, first_application, result
        ):
            if person is not None:
                slice_rows[0].append(person)
            slice_rows[1].append(application)
            slice_rows[2].extend(audit)
            if len(slice_rows[1]) >= 50_000 and person is not None:
                _copy_slice(cursor, slice_rows)
        _copy_slice(cursor, slice_rows)
        for table in ("enrollment_person", "enrollment_application", "enrollment_auditentry"):
            cursor.execute(
                f"select setval(pg_get_serial_sequence('{table}', 'id'), (select coalesce(max(id), 1) from {table}))"
            )
    if not connection.in_atomic_block:
        common.vacuum_analyze("enrollment_person", "enrollment_application", "enrollment_auditentry")
    result.seconds = time.perf_counter() - started
    return result


def _copy_slice(cursor: Any, slice_rows: tuple[list[Any], list[Any], list[Any]]) -> None:
    persons, applications, audit = slice_rows
    for table, columns, rows in (
        ("enrollment_person", PERSON_COLUMNS, persons),
        ("enrollment_application", APPLICATION_COLUMNS, applications),
        ("enrollment_auditentry", AUDIT_COLUMNS, audit),
    ):
        if rows:
            with cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        rows.clear()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--applications", type=int, default=100_000)
    parser.add_argument("--cities", type=int, default=4)
    parser.add_argument("--counties", type=int, default=4, help="counties per city")
    parser.add_argument("--seed", type=int, default=6)
    args = parser.parse_args()
    common.setup_django()
    result = generate(applications=args.applications, seed=args.seed, cities=args.cities, counties=args.counties)
    print(
        json.dumps(
            {
                "persons": result.persons,
                "applications": result.applications,
                "audit_rows": result.audit_rows,
                "by_state": result.by_state,
                "seconds": round(result.seconds, 1),
                "applications_per_second": round(result.applications / result.seconds),
                "peak_rss_mb": round(common.peak_rss_mb()),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
