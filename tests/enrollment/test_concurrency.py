"""The limit holds when many clinics file for the same person at the same instant (docs/design.md: Filing rules).

Real threads, each with its own PostgreSQL connection, released together by a barrier.
"""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from django.db import connection, connections

from enrollment import services
from enrollment.models import ACTIVE_STATES, Application
from kernel.errors import DomainError
from tests.factories import DiseaseFactory, staff_user
from tests.locking import held_open, lock_timeout

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

FILINGS = 24


def fire_concurrently(jobs):
    barrier = threading.Barrier(len(jobs))
    outcomes: list[str] = []
    lock = threading.Lock()

    def run(job):
        try:
            barrier.wait(timeout=30)
            job()
            result = "ok"
        except DomainError as exc:
            result = exc.code
        except Exception as exc:  # noqa: BLE001 - any other failure is reported, and fails the test
            result = f"error:{type(exc).__name__}:{exc}"
        finally:
            connections.close_all()
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return Counter(outcomes)


def test_limit_never_exceeded_under_concurrent_filings(world):
    assert connection.vendor == "postgresql"
    person = world.person()
    diseases = [DiseaseFactory(code=f"M8{i:04d}") for i in range(FILINGS)]
    clerks = [staff_user("clinic_staff", institution=world.county if i % 2 else world.township) for i in range(4)]

    def filing(i):
        return lambda: services.application_submit(
            person=person, disease=diseases[i], treating_institution=world.county, actor=clerks[i % len(clerks)]
        )

    outcomes = fire_concurrently([filing(i) for i in range(FILINGS)])
    assert outcomes["ok"] == 2, outcomes
    assert outcomes["limit_reached"] == FILINGS - 2, outcomes
    held = Application.objects.filter(person=person, state__in=ACTIVE_STATES)
    assert held.count() == 2
    assert set(held.values_list("audit_entries__transition", flat=True)) == {"submit"}


def test_one_active_application_per_disease_under_concurrent_filings(world):
    person = world.person()
    clerks = [staff_user("clinic_staff", institution=world.county) for _ in range(3)]

    def filing(i):
        return lambda: services.application_submit(
            person=person, disease=world.hypertension, treating_institution=world.county, actor=clerks[i % 3]
        )

    outcomes = fire_concurrently([filing(i) for i in range(20)])
    assert outcomes == Counter({"ok": 1, "duplicate_disease": 19}), outcomes
    assert Application.objects.filter(person=person).count() == 1


def test_a_filing_in_progress_does_not_hold_up_another_persons_filing_in_the_same_region(world):
    """The person lock must not spread to joined rows (it once locked the insured region too, so every
    filing in a region waited for the one before it)."""
    first_person, second_person = world.person(), world.person()
    assert first_person.insured_region_id == second_person.insured_region_id

    def file_for(person):
        return services.application_submit(
            person=person, disease=world.hypertension, treating_institution=world.county, actor=world.clerk
        )

    with held_open(lambda: file_for(first_person)):
        with lock_timeout(3):
            second = file_for(second_person)
        assert Application.objects.filter(pk=second.pk).exists()
    assert Application.objects.filter(person=first_person).count() == 1
