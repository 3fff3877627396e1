"""The personal-data access log: full ID numbers and records seen, by whom and why."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.utils import timezone
from django.utils.translation import gettext as _

from enrollment.models import (
    Application,
    Person,
)
from kernel import roles
from kernel.errors import InvalidInput

# ---------------------------------------------------------------------------
# Personal-data access log (docs/design.md: Access and privacy)
# ---------------------------------------------------------------------------

ACCESS_REASON_MAX_LENGTH = 500


def personal_data_access_record(
    *, viewer: roles.Actor, person: Person, purpose: str, reason: str = "", application: Application | None = None
) -> Any:
    """Record that ``viewer`` was shown ``person``'s full, unmasked record: who, whose, when, why."""
    from enrollment.models import AccessPurpose, PersonalDataAccess

    if purpose not in AccessPurpose.values:
        raise ValueError(f"unknown access purpose {purpose!r}")
    reason = (reason or "").strip()
    if len(reason) > ACCESS_REASON_MAX_LENGTH:
        raise InvalidInput(
            _("The reason is longer than %(max)d characters.") % {"max": ACCESS_REASON_MAX_LENGTH},
            details={"field": "reason"},
        )
    return PersonalDataAccess.objects.create(
        viewer=viewer, person=person, application=application, purpose=purpose, reason=reason
    )


def personal_data_access_record_many(
    *, viewer: roles.Actor, person_ids: Sequence[int], purpose: str, reason: str = ""
) -> int:
    """Record that ``viewer`` was handed the full records of many persons at once (an export): one access-log
    row per person, written in one bulk insert. Returns the number of rows."""
    from enrollment.models import AccessPurpose, PersonalDataAccess

    if purpose not in AccessPurpose.values:
        raise ValueError(f"unknown access purpose {purpose!r}")
    reason = (reason or "").strip()[:ACCESS_REASON_MAX_LENGTH]
    now = timezone.now()
    rows = [
        PersonalDataAccess(viewer=viewer, person_id=person_id, purpose=purpose, reason=reason, at=now)
        for person_id in person_ids
    ]
    PersonalDataAccess.objects.bulk_create(rows, batch_size=1000)
    return len(rows)
