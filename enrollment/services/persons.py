"""Registering and correcting a person (参保人) and the person-change audit."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from enrollment import notifications, policies, selectors
from enrollment.idnumbers import parse_id_number
from enrollment.models import (
    InsuranceType,
    Person,
    Region,
    SupportCategory,
    mask_id_number,
)
from kernel import roles
from kernel.errors import InvalidInput, NotPermitted

# ---------------------------------------------------------------------------
# Persons
# ---------------------------------------------------------------------------


def person_register(
    *,
    id_number: str,
    name: str,
    insured_region: Region,
    actor: roles.Actor,
    insurance_type: str | None = None,
    insurance_number: str | None = None,
    phone: str | None = None,
    support_categories: Sequence[str] | None = None,
) -> Person:
    """Create a person, or update the one with this ID number.

    Sex and birth date always come from the number itself. An optional detail left as ``None``
    keeps what is stored (a new person gets resident insurance and empty details), so a caller
    that only knows the name and region never wipes an insurance number or phone on record.
    """
    policies.ensure_may_register_person(actor)
    parsed = parse_id_number(id_number)
    name = (name or "").strip()
    if not name:
        raise InvalidInput(_("Enter the person's name."), code="invalid", details={"field": "name"})
    # Length and readable characters: the rule the roster dry run reports with (selectors).
    problem = selectors.person_details_problem(name=name, phone=(phone or "").strip())
    if problem is not None:
        raise InvalidInput(problem[2], code=problem[0], details={"field": problem[1]})
    unknown = sorted(set(support_categories or ()) - set(SupportCategory.values))
    if unknown:
        raise InvalidInput(
            _("Unknown support category: %(values)s.") % {"values": ", ".join(unknown)},
            details={"field": "support_categories"},
        )
    if insurance_type is not None and insurance_type not in InsuranceType.values:
        raise InvalidInput(_("Insurance type must be 310 or 390."), details={"field": "insurance_type"})
    given = {
        "insurance_type": insurance_type,
        "insurance_number": insurance_number.strip() if insurance_number is not None else None,
        "phone": phone.strip() if phone is not None else None,
    }
    values = {
        "name": name,
        "sex": parsed.sex,
        "birth_date": parsed.birth_date,
        "insured_region": insured_region,
        **{key: value for key, value in given.items() if value is not None},
    }
    from enrollment.services import person_status

    with transaction.atomic():
        person = Person.objects.select_for_update().filter(id_number=parsed.number).first()
        if person is None:
            refused = selectors.person_fields_refused(
                actor, None, set(values), categories=support_categories is not None
            )
            if refused:
                raise NotPermitted(
                    _("Your role may not set %(fields)s; the insurance office records them.")
                    % {"fields": ", ".join(sorted(refused))},
                    code="person_change_not_permitted",
                    details={"fields": sorted(refused)},
                )
            person = Person.objects.create(id_number=parsed.number, **values)
            person_status.person_audit(
                person=person,
                action="person_registered",
                actor=actor,
                details={"changes": _person_changes({}, values)},
            )
        else:
            before = {key: getattr(person, key) for key in values}
            changed = {key for key, value in values.items() if before[key] != value}
            categories_change = support_categories is not None and sorted(set(support_categories)) != sorted(
                person.support_categories or []
            )
            refused = selectors.person_fields_refused(actor, person, changed, categories=categories_change)
            if refused:
                raise NotPermitted(
                    _(
                        "Your role may not change %(fields)s of a registered person: the insurance office does "
                        "(status events and corrections). Contact details are changed by a clinic that holds "
                        "an application of the person."
                    )
                    % {"fields": ", ".join(sorted(refused))},
                    code="person_change_not_permitted",
                    details={"fields": sorted(refused)},
                )
            if changed:
                for key in changed:
                    setattr(person, key, values[key])
                person.save(update_fields=[*sorted(changed), "updated_at"])
                person_status.person_audit(
                    person=person,
                    action="person_changed",
                    actor=actor,
                    details={"changes": _person_changes(before, {key: values[key] for key in changed})},
                )
        if support_categories is not None:
            # Dated: the categories given hold from today and replace the ones held, never merge.
            person_status.person_categories_replace(
                person=person,
                categories=support_categories,
                as_of=timezone.localdate(),
                source="register",
                reference=f"user:{getattr(actor, 'pk', '')}",
                actor=actor,
            )
            person.refresh_from_db()
    return person


def _masked_person_value(key: str, value: Any) -> Any:
    """Values for the person's audit trail: personal ones masked (readable enough to see a change)."""
    if value in (None, ""):
        return value
    if key == "name":
        text = str(value)
        return text[:1] + "*" * (len(text) - 1)
    if key == "phone":
        return notifications.mask_phone(str(value))
    if key == "insurance_number":
        return mask_id_number(str(value))
    if key == "insured_region":
        return value.code if isinstance(value, Region) else value
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def _person_changes(before: dict[str, Any], after: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        key: {"from": _masked_person_value(key, before.get(key)), "to": _masked_person_value(key, value)}
        for key, value in sorted(after.items())
        if key not in ("sex", "birth_date")
    }
