"""Every write of the enrollment app (门诊慢特病 备案).

Each service: keyword-only, one ``transaction.atomic()``, ``select_for_update()`` on what it
changes, exactly one audit row per state change written inside the transaction, side effects
in ``transaction.on_commit``. ``actor`` is always required (the system user for beat jobs).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import UploadedFile
from django.core.mail import send_mail
from django.db import IntegrityError, connection, transaction
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone
from django.utils.translation import gettext as _
from django_fsm import can_proceed, has_transition_perm

from enrollment import notifications, roles, selectors
from enrollment.errors import InvalidInput, NotPermitted, RuleViolation, TransitionRefused
from enrollment.idnumbers import parse_id_number
from enrollment.models import (
    ACTIVE_STATES,
    COVERING_STATES,
    Application,
    ApplicationKind,
    AuditEntry,
    BenefitStart,
    Disease,
    Document,
    DocumentType,
    Institution,
    InsuranceType,
    Person,
    Physician,
    Policy,
    Region,
    Reminder,
    ReminderChannel,
    ReminderStatus,
    StaffProfile,
    State,
    SupportCategory,
    TerminationReason,
    mask_id_number,
)
from enrollment.periods import first_of_next_month, period_end

User = get_user_model()


# ---------------------------------------------------------------------------
# The system actor and the audit trail
# ---------------------------------------------------------------------------


def get_system_user() -> Any:
    """The actor of beat jobs: an inactive account that cannot log in."""
    user, created = User.objects.get_or_create(
        username=settings.SYSTEM_USERNAME, defaults={"is_active": False, "first_name": "system"}
    )
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    return user


@dataclass(frozen=True)
class AuditFields:
    reason_code: str = ""
    reason: str = ""
    batch_id: int | None = None
    stage: str = ""
    details: dict[str, Any] | None = None


def audit_entry(
    *, application_id: int, transition: str, from_state: str, to_state: str, actor: Any, fields: AuditFields
) -> AuditEntry:
    """An unsaved audit row; per-row paths save it, bulk paths bulk_create many (ids only, no instances)."""
    system = roles.is_system(actor)
    return AuditEntry(
        application_id=application_id,
        transition=transition,
        from_state=from_state,
        to_state=to_state,
        actor=actor,
        is_system=system,
        at=timezone.now(),
        reason_code=fields.reason_code,
        reason=fields.reason,
        batch_id=fields.batch_id,
        stage=fields.stage,
        details=fields.details or {},
    )


def sql_in(column: str, ids: Sequence[int]) -> tuple[str, list[Any]]:
    """``column IN (…)`` for a chunk of ids: one array parameter on PostgreSQL, one placeholder each on SQLite."""
    if connection.vendor == "postgresql":
        return f"{column} = ANY(%s)", [list(ids)]
    if not ids:
        return "1 = 0", []
    return f"{column} IN ({', '.join(['%s'] * len(ids))})", list(ids)


def audit_rows_insert(
    *,
    source: str,
    params: Sequence[Any],
    transition: str,
    from_state: str,
    to_state: str,
    actor: Any,
    fields: AuditFields,
    per_row: dict[str, str],
) -> int:
    """Bulk paths: one audit row per row of ``source`` (``FROM … WHERE …``) in one ``INSERT … SELECT``.

    Every value but the ``per_row`` columns (SQL expressions over ``source``, by attname; at least
    ``application_id``) comes from an ``audit_entry`` prototype, so a bulk row is exactly the row the
    per-row path writes. The caller holds the transaction.
    """
    prototype = audit_entry(
        application_id=0, transition=transition, from_state=from_state, to_state=to_state, actor=actor, fields=fields
    )
    columns: list[str] = []
    values: list[str] = []
    constants: list[Any] = []
    for model_field in AuditEntry._meta.concrete_fields:
        if model_field.primary_key:
            continue
        columns.append(connection.ops.quote_name(model_field.column))
        if model_field.attname in per_row:
            values.append(per_row[model_field.attname])
        else:
            values.append("%s")
            constants.append(model_field.get_db_prep_save(getattr(prototype, model_field.attname), connection))
    sql = (
        f"INSERT INTO {AuditEntry._meta.db_table} ({', '.join(columns)}) "  # noqa: S608 - names from the model
        f"SELECT {', '.join(values)} {source}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*constants, *params])
        return cursor.rowcount


def run_transition(
    *,
    application: Application,
    name: str,
    actor: Any,
    audit: AuditFields = AuditFields(),
    **kwargs: Any,
) -> Application:
    """Call transition ``name`` on a locked application, save it and write its one audit row.

    The caller holds the transaction and the row lock.
    """
    method = getattr(application, name)
    from_state = application.state
    if not can_proceed(method):
        raise TransitionRefused(
            _("This application is %(state)s; “%(action)s” is not possible now.")
            % {"state": application.get_state_display(), "action": name.replace("_", " ")},
            details={"state": from_state, "transition": name},
        )
    if not roles.is_system(actor) and not has_transition_perm(method, actor):
        raise NotPermitted(
            _("Your role may not %(action)s an application.") % {"action": name.replace("_", " ")},
            details={"transition": name},
        )
    method(**kwargs)
    application.save()
    audit_entry(
        application_id=application.pk,
        transition=name,
        from_state=from_state,
        to_state=application.state,
        actor=actor,
        fields=audit,
    ).save()
    for hook in TRANSITION_HOOKS:
        hook(application=application, transition=name, from_state=from_state, actor=actor)
    return application


# Called inside the transaction of every per-row transition, after its audit row: apps above this one
# (the national platform link's outbox) register here in their AppConfig.ready, so that enrollment never
# imports them and their rows commit or roll back with the change.
TRANSITION_HOOKS: list[Any] = []


def lock_application(application_id: int) -> Application:
    try:
        return (
            Application.objects.select_for_update(of=("self",))
            .select_related("person", "disease", "region", "filing_institution", "treating_institution")
            .get(pk=application_id)
        )
    except Application.DoesNotExist:
        raise InvalidInput(_("Application #%(id)s does not exist.") % {"id": application_id}, code="not_found")


# ---------------------------------------------------------------------------
# Persons
# ---------------------------------------------------------------------------


def person_register(
    *,
    id_number: str,
    name: str,
    insured_region: Region,
    actor: Any,
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
    from enrollment import person_services

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
            person_services.person_audit(
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
                person_services.person_audit(
                    person=person,
                    action="person_changed",
                    actor=actor,
                    details={"changes": _person_changes(before, {key: values[key] for key in changed})},
                )
        if support_categories is not None:
            # Dated: the categories given hold from today and replace the ones held, never merge.
            person_services.person_categories_replace(
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


# ---------------------------------------------------------------------------
# Filing
# ---------------------------------------------------------------------------


def _raise_first_failure(checks: Iterable[selectors.EligibilityCheck]) -> None:
    for check in checks:
        if not check.passed:
            status = InvalidInput if check.code == "invalid_id_number" else RuleViolation
            raise status(check.message, code=check.code, details=check.details)


def application_submit(
    *,
    person: Person,
    disease: Disease,
    treating_institution: Institution,
    actor: Any,
    documents: Sequence[tuple[str, UploadedFile]] = (),
    kind: str = ApplicationKind.NEW,
    renews: Application | None = None,
) -> Application:
    """File an application. The person's row is locked so that concurrent filings for the same
    person are serialised and the concurrent limit holds (DESIGN §4)."""
    institution = selectors.user_institution(actor)
    if not roles.has_any_role(actor, roles.CLINIC_STAFF, roles.ADMIN) and not roles.is_system(actor):
        raise NotPermitted(_("Only clinic staff file applications."))
    if institution is None:
        if not roles.has_any_role(actor, roles.ADMIN):
            raise NotPermitted(_("Your account is not attached to an institution."))
        institution = treating_institution
    # Validate uploads before any row is written.
    prepared = [_prepare_document(doc_type, upload) for doc_type, upload in documents]
    # Called inside a caller's transaction (renewal, 两病 enrollment, roster commit) the insert needs
    # its own savepoint so that a caught IntegrityError leaves that transaction usable; as the
    # outermost block it does not (the error rolls the whole filing back), which saves two round trips.
    nested = transaction.get_connection().in_atomic_block
    with StoredFiles() as files, transaction.atomic():
        locked_person = (
            Person.objects.select_for_update(of=("self",)).select_related("insured_region").get(pk=person.pk)
        )
        _raise_first_failure(
            selectors.eligibility_checks(
                person=locked_person,
                disease=disease,
                kind=kind,
                renews=renews,
                treating_institution=treating_institution,
                filing_institution=institution,
                viewer=actor,
            )
        )
        application = Application(
            person=locked_person,
            disease=disease,
            kind=kind,
            renews=renews,
            filing_institution=institution,
            treating_institution=treating_institution,
            # Whose batch and reviewers handle it: a delegated township's own, else the county's (审核权限下放).
            region=selectors.review_region_for(locked_person.insured_region),
            filed_by=actor,
        )
        try:
            with transaction.atomic(savepoint=nested):
                application.save()
        except IntegrityError:
            # The partial unique index caught a race the checks could not see.
            raise RuleViolation(
                _("The person already has an active application for %(disease)s.") % {"disease": disease},
                code="duplicate_disease",
            )
        audit_entry(
            application_id=application.pk,
            transition="submit",
            from_state="",
            to_state=application.state,
            actor=actor,
            fields=AuditFields(details={"kind": kind, "renews": renews.pk if renews else None}),
        ).save()
        for doc in prepared:
            _store_document(application=application, prepared=doc, actor=actor, files=files)
    return application


# ---------------------------------------------------------------------------
# Diagnosis
# ---------------------------------------------------------------------------


def application_diagnose(
    *,
    application_id: int,
    actor: Any,
    icd10_code: str,
    diagnosis_date: dt.date,
    physician: Physician | None = None,
    documents: Sequence[tuple[str, UploadedFile]] = (),
) -> Application:
    """A physician of a may-diagnose institution records the diagnosis the application rests on."""
    physician = physician or getattr(actor, "physician", None)
    if physician is None:
        raise NotPermitted(_("Only a registered physician records a diagnosis."), code="physician_not_qualified")
    if diagnosis_date > timezone.localdate():
        raise InvalidInput(_("The diagnosis date cannot be in the future."), details={"field": "diagnosis_date"})
    prepared = [_prepare_document(doc_type, upload) for doc_type, upload in documents]
    with StoredFiles() as files, transaction.atomic():
        application = lock_application(application_id)
        disease = application.disease
        institution = physician.institution
        if diagnosis_date < application.person.birth_date:
            raise InvalidInput(
                _("The diagnosis date is before the person's birth."), details={"field": "diagnosis_date"}
            )
        if physician.user_id and physician.user_id != actor.pk and not roles.has_any_role(actor, roles.ADMIN):
            raise NotPermitted(_("A physician records only their own diagnoses."))
        if institution.pk not in (application.treating_institution_id, application.filing_institution_id):
            raise NotPermitted(_("The physician does not work at the treating institution of this application."))
        if not institution.may_diagnose or institution.level < disease.min_institution_level:
            raise RuleViolation(
                _(
                    "%(inst)s (level %(level)s) may not diagnose %(disease)s: "
                    "level %(min)s or above with diagnosing rights is required."
                )
                % {
                    "inst": institution.name,
                    "level": institution.level,
                    "disease": disease,
                    "min": disease.min_institution_level,
                },
                code="institution_not_qualified",
            )
        if physician.title < disease.min_physician_title:
            raise RuleViolation(
                _("%(disease)s must be diagnosed by a %(title)s or above; %(name)s is a %(has)s.")
                % {
                    "disease": disease,
                    "title": disease.get_min_physician_title_display(),
                    "name": physician.name,
                    "has": physician.get_title_display(),
                },
                code="physician_not_qualified",
            )
        if not disease.supports_icd10(icd10_code):
            raise RuleViolation(
                _("ICD-10 code %(code)s does not support %(disease)s (expected a code starting with %(prefixes)s).")
                % {"code": icd10_code, "disease": disease, "prefixes": ", ".join(disease.icd10_prefixes)},
                code="diagnosis_mismatch",
            )
        for doc in prepared:
            _store_document(application=application, prepared=doc, actor=actor, files=files)
        present = set(application.documents.values_list("doc_type", flat=True))
        missing = [d for d in disease.required_documents if d not in present]
        if missing:
            labels = ", ".join(str(DocumentType(d).label) if d in DocumentType.values else d for d in missing)
            raise RuleViolation(
                _("Documents missing for %(disease)s: %(missing)s.") % {"disease": disease, "missing": labels},
                code="documents_missing",
                details={"missing": missing},
            )
        run_transition(
            application=application,
            name="diagnose",
            actor=actor,
            audit=AuditFields(details={"icd10_code": icd10_code.strip().upper(), "physician": physician.pk}),
            physician=physician,
            icd10_code=icd10_code,
            diagnosis_date=diagnosis_date,
            recorded_by=actor,
        )
    return application


# ---------------------------------------------------------------------------
# Withdraw, resubmit, terminate
# ---------------------------------------------------------------------------


def _ensure_filing_side(application: Application, actor: Any) -> None:
    """Staff of the filing or the treating institution (or an administrator): adding documents."""
    if roles.has_any_role(actor, roles.ADMIN):
        return
    institution = selectors.user_institution(actor)
    if institution is None or institution.pk not in (
        application.filing_institution_id,
        application.treating_institution_id,
    ):
        raise NotPermitted(_("Only staff of the filing institution may do this."))


def _ensure_filing_institution(application: Application, actor: Any) -> None:
    """Withdrawing and resubmitting are the applicant's requests, held by the institution that filed them:
    its staff (and administrators) act on them; a treating hospital that did not file adds documents and
    diagnoses, but does not withdraw or resubmit another institution's filing (issue 18 item 11)."""
    if not selectors.on_filing_institution(actor, application):
        raise NotPermitted(
            _("Only staff of the institution that filed this application (or an administrator) may do this.")
        )


def application_withdraw(*, application_id: int, actor: Any, reason: str = "") -> Application:
    with transaction.atomic():
        application = lock_application(application_id)
        _ensure_filing_institution(application, actor)
        run_transition(application=application, name="withdraw", actor=actor, audit=AuditFields(reason=reason))
        renewal_closed(renewal=application, actor=actor)
        return application


# Called with the application after the system closed it (status events): the reviews app registers
# one that takes a closed application's pending review item off the queue (reviews/apps.py).
APPLICATION_CLOSED_HOOKS: list[Any] = []


def application_close(
    *, application_id: int, actor: Any, reason_code: str, reason: str = "", details: dict[str, Any] | None = None
) -> Application:
    """The system closes a pending application the person can no longer hold (death, insurance ended)."""
    if not roles.is_system(actor):
        raise NotPermitted(_("Only the system closes applications."))
    with transaction.atomic():
        application = lock_application(application_id)
        from_state = application.state
        run_transition(
            application=application,
            name="close",
            actor=actor,
            audit=AuditFields(reason_code=reason_code, reason=reason, details={**(details or {}), "from": from_state}),
        )
        for hook in APPLICATION_CLOSED_HOOKS:
            hook(application=application, from_state=from_state)
        renewal_closed(renewal=application, actor=actor)
    return application


def renewal_closed(*, renewal: Application, actor: Any) -> Application | None:
    """A renewal was rejected, withdrawn or closed: provisional coverage already given is honoured.

    Before the old enrollment's end nothing changes (the sweep expires it on time). After it, the old
    enrollment ends on the decision date, never retroactively, but not past the provisional bound fixed
    when the renewal was filed (复审期间待遇照常). The caller holds the transaction.
    """
    if renewal.kind != ApplicationKind.RENEWAL or renewal.renews_id is None:
        return None
    previous = Application.objects.select_for_update().get(pk=renewal.renews_id)
    today = timezone.localdate()
    if previous.state not in COVERING_STATES or previous.valid_until is None or today <= previous.valid_until:
        return None
    bound = renewal.provisional_until or previous.valid_until
    ended_on = min(today, bound)
    return run_transition(
        application=previous,
        name="expire",
        actor=get_system_user(),
        audit=AuditFields(
            reason_code="renewal_" + renewal.state,
            details={"ended_on": ended_on.isoformat(), "renewal": renewal.pk, "provisional_until": bound.isoformat()},
        ),
        ended_on=ended_on,
    )


def application_resubmit(
    *, application_id: int, actor: Any, note: str = "", documents: Sequence[tuple[str, UploadedFile]] = ()
) -> Application:
    """A returned application comes back, with what was missing, to wait for the next batch."""
    prepared = [_prepare_document(doc_type, upload) for doc_type, upload in documents]
    with StoredFiles() as files, transaction.atomic():
        application = lock_application(application_id)
        _ensure_filing_institution(application, actor)
        for doc in prepared:
            _store_document(application=application, prepared=doc, actor=actor, files=files)
        return run_transition(application=application, name="resubmit", actor=actor, audit=AuditFields(reason=note))


def application_terminate(
    *, application_id: int, actor: Any, reason: str, note: str = "", ended_on: dt.date | None = None
) -> Application:
    """End an enrollment early (death, loss of coverage, moved out, cured, disease removed)."""
    if reason not in TerminationReason.values:
        raise InvalidInput(
            _("Choose a termination reason: %(choices)s.") % {"choices": ", ".join(TerminationReason.values)},
            code="invalid_reason",
            details={"field": "reason"},
        )
    ended_on = ended_on or timezone.localdate()
    with transaction.atomic():
        # Renewals first, then the enrollment: the order approving a renewal takes its locks in.
        renewals = list(
            Application.objects.select_for_update(of=("self",))
            .filter(renews_id=application_id, state__in=RENEWAL_WITHDRAWN_ON_TERMINATION)
            .order_by("pk")
        )
        application = lock_application(application_id)
        if application.valid_from and ended_on < application.valid_from:
            raise InvalidInput(_("The end date is before the enrollment started."), details={"field": "ended_on"})
        if application.valid_until and ended_on > application.valid_until:
            ended_on = application.valid_until
        run_transition(
            application=application,
            name="terminate",
            actor=actor,
            audit=AuditFields(reason_code=reason, reason=note, details={"ended_on": ended_on.isoformat()}),
            reason=reason,
            ended_on=ended_on,
        )
        # There is nothing left to continue: a pending renewal is withdrawn with it (one a reviewer is
        # already deciding cannot be approved — see validity_for).
        for renewal in renewals:
            run_transition(
                application=renewal,
                name="withdraw",
                actor=get_system_user(),
                audit=AuditFields(
                    reason_code="enrollment_terminated",
                    reason=_("The enrollment this renewal continues was terminated."),
                    details={"terminated": application.pk, "by": getattr(actor, "pk", None)},
                ),
            )
        return application


# States of a pending renewal that terminating its enrollment withdraws (the withdraw transition's sources).
RENEWAL_WITHDRAWN_ON_TERMINATION = (State.SUBMITTED, State.DIAGNOSED, State.RETURNED)


# ---------------------------------------------------------------------------
# Approval and its validity period (§6)
# ---------------------------------------------------------------------------


def validity_for(*, application: Application, decided_on: dt.date) -> tuple[dt.date, dt.date | None]:
    """The period an approval gives (docs/entitlement.md).

    A renewal continues the enrollment it renews: it starts the day after the old one ends, whatever
    day it is approved (no gap, no overlap). Otherwise the region's policy decides where the period
    starts: the filing date (default: the monthly batch costs the patient nothing), the diagnosis date
    (never before filing), the decision date or the first day of the next month. 两病 medication
    coverage has the policy's own validity (0: no fixed end while resident-insured).
    """
    previous = application.renews
    policy = selectors.policy_for_region(application.region)
    if previous is not None and previous.valid_until is not None and previous.state in COVERING_STATES:
        valid_from = previous.valid_until + dt.timedelta(days=1)
    else:
        filed_on = timezone.localtime(application.filed_at).date()
        rule = policy.benefit_start
        if rule == BenefitStart.FILING_DATE:
            valid_from = filed_on
        elif rule == BenefitStart.DIAGNOSIS_DATE:
            valid_from = max(application.diagnosis_date or filed_on, filed_on)
        elif rule == BenefitStart.NEXT_MONTH:
            valid_from = first_of_next_month(decided_on)
        else:
            valid_from = decided_on
    if application.kind == ApplicationKind.TWO_DISEASES:
        return valid_from, period_end(valid_from, policy.two_diseases_validity_months)
    return valid_from, period_end(valid_from, application.disease.validity_months)


def _refuse_renewal_of_terminated(application: Application) -> None:
    """A renewal continues its enrollment; once that was terminated there is nothing to approve."""
    previous = application.renews
    if previous is not None and previous.state == State.TERMINATED:
        raise RuleViolation(
            _(
                "The enrollment this renewal continues (application #%(id)s) was terminated on %(date)s; "
                "reject the renewal instead."
            )
            % {"id": previous.pk, "date": previous.ended_on.isoformat() if previous.ended_on else "?"},
            code="renewed_enrollment_terminated",
            details={"application": previous.pk},
        )


def approval_side_effects(application: Application, actor: Any, audit: AuditFields) -> None:
    """After an approval: a renewal supersedes the enrollment it renews (same transaction)."""
    previous_id = application.renews_id
    if previous_id is None:
        return
    previous = Application.objects.select_for_update().get(pk=previous_id)
    if previous.state in (State.APPROVED, State.EXPIRING):
        run_transition(
            application=previous,
            name="supersede",
            actor=actor,
            audit=AuditFields(batch_id=audit.batch_id, details={"renewed_by": application.pk}),
        )


def application_approve(
    *, application_id: int, actor: Any, audit: AuditFields = AuditFields(), immediate: bool = False
) -> Application:
    """The final approval: sets the validity period. Reviews call this for the last stage."""
    with transaction.atomic():
        application = lock_application(application_id)
        _refuse_renewal_of_terminated(application)
        valid_from, valid_until = validity_for(application=application, decided_on=timezone.localdate())
        run_transition(
            application=application,
            name="approve_immediately" if immediate else "approve",
            actor=actor,
            audit=AuditFields(
                reason_code=audit.reason_code,
                reason=audit.reason,
                batch_id=audit.batch_id,
                stage=audit.stage,
                details={
                    **(audit.details or {}),
                    "valid_from": valid_from.isoformat(),
                    "valid_until": valid_until.isoformat() if valid_until else None,
                },
            ),
            valid_from=valid_from,
            valid_until=valid_until,
        )
        approval_side_effects(application, actor, audit)
    return application


# ---------------------------------------------------------------------------
# Documents
# ---------------------------------------------------------------------------

# Django itself truncates uploaded names to 255 characters; anything this long is not a real scan's name.
MAX_FILENAME_LENGTH = 200
ALLOWED_DOCUMENT_TYPES: dict[str, tuple[str, ...]] = {
    # extension: (content type, magic prefixes)
    ".pdf": ("application/pdf", b"%PDF-"),
    ".jpg": ("image/jpeg", b"\xff\xd8\xff"),
    ".jpeg": ("image/jpeg", b"\xff\xd8\xff"),
    ".png": ("image/png", b"\x89PNG\r\n\x1a\n"),
}


@dataclass(frozen=True)
class PreparedDocument:
    doc_type: str
    upload: UploadedFile
    original_name: str
    extension: str
    content_type: str
    size: int
    sha256: str


def _prepare_document(doc_type: str, upload: UploadedFile) -> PreparedDocument:
    """Check type, size and content before anything is stored; the message says what to do."""
    if doc_type not in DocumentType.values:
        raise InvalidInput(
            _("Unknown document type “%(type)s”; choose one of %(choices)s.")
            % {"type": doc_type, "choices": ", ".join(DocumentType.values)},
            code="invalid_document",
            details={"field": "doc_type"},
        )
    original = (upload.name or "").replace("\\", "/").rsplit("/", 1)[-1]
    if not original or len(original) > MAX_FILENAME_LENGTH:
        raise InvalidInput(
            _("The file name is empty or longer than %(max)d characters; rename the file and upload it again.")
            % {"max": MAX_FILENAME_LENGTH},
            code="invalid_document",
            details={"field": "file"},
        )
    extension = ("." + original.rsplit(".", 1)[-1].lower()) if "." in original else ""
    if extension not in ALLOWED_DOCUMENT_TYPES:
        raise InvalidInput(
            _("“%(name)s” is not accepted: upload a PDF, JPEG or PNG file.") % {"name": original},
            code="invalid_document",
            details={"field": "file"},
        )
    size = upload.size or 0
    if size == 0:
        raise InvalidInput(_("“%(name)s” is empty.") % {"name": original}, code="invalid_document")
    if size > settings.DOCUMENT_MAX_BYTES:
        raise InvalidInput(
            _("“%(name)s” is %(size).1f MB; the limit is %(max).0f MB. Scan at a lower resolution.")
            % {"name": original, "size": size / 1048576, "max": settings.DOCUMENT_MAX_BYTES / 1048576},
            code="invalid_document",
            details={"field": "file"},
        )
    content_type, magic = ALLOWED_DOCUMENT_TYPES[extension]
    upload.seek(0)
    head = upload.read(16)
    if not head.startswith(magic):
        raise InvalidInput(
            _("“%(name)s” does not contain what its name says (%(ext)s). Upload the original file.")
            % {"name": original, "ext": extension},
            code="invalid_document",
            details={"field": "file"},
        )
    digest = hashlib.sha256()
    upload.seek(0)
    for chunk in upload.chunks():
        digest.update(chunk)
    upload.seek(0)
    return PreparedDocument(doc_type, upload, original, extension, content_type, size, digest.hexdigest())


class StoredFiles:
    """Files written during a service call, deleted again if its transaction does not commit.

    Django has no on-rollback hook; the service wraps its transaction in ``with StoredFiles() as files``.
    """

    def __init__(self) -> None:
        self.names: list[tuple[Any, str]] = []

    def __enter__(self) -> StoredFiles:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None:
            for storage, name in self.names:
                storage.delete(name)


def _store_document(
    *, application: Application, prepared: PreparedDocument, actor: Any, files: StoredFiles
) -> Document:
    document = Document(
        application=application,
        doc_type=prepared.doc_type,
        original_name=prepared.original_name,
        content_type=prepared.content_type,
        extension=prepared.extension,
        size=prepared.size,
        sha256=prepared.sha256,
        uploaded_by=actor,
    )
    document.file.save(prepared.original_name, prepared.upload, save=False)
    files.names.append((document.file.storage, document.file.name))
    document.save()
    return document


def document_attach(*, application_id: int, actor: Any, doc_type: str, upload: UploadedFile) -> Document:
    prepared = _prepare_document(doc_type, upload)
    with StoredFiles() as files, transaction.atomic():
        application = lock_application(application_id)
        if not roles.has_any_role(actor, roles.PHYSICIAN):
            _ensure_filing_side(application, actor)
        if application.state not in ACTIVE_STATES:
            raise TransitionRefused(
                _("Documents cannot be added to a %(state)s application.") % {"state": application.get_state_display()}
            )
        return _store_document(application=application, prepared=prepared, actor=actor, files=files)


# ---------------------------------------------------------------------------
# Catalogue
# ---------------------------------------------------------------------------


def catalogue_aliases(raw: Any, *, name: str = "") -> list[str]:
    """A catalogue entry's ``aliases``: a list of other names (default none), stripped, each once, without
    the disease's own name. Anything but a list of strings is a ValueError."""
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(isinstance(alias, str) for alias in raw):
        raise ValueError("aliases must be a list of names")
    return [alias for alias in dict.fromkeys(a.strip() for a in raw) if alias and alias != name.strip()]


def catalogue_load(*, data: dict[str, Any], actor: Any) -> dict[str, int]:
    """Create or update diseases from a catalogue document (enrollment/data/catalogue.json shape).

    Diseases missing from the document are left alone here; retiring them is a reviewed step.
    """
    from django.core.exceptions import ValidationError

    version = str(data.get("version", "1"))
    entries = data.get("diseases") or []
    if not entries:
        raise InvalidInput(_("The catalogue file lists no diseases."), code="invalid_catalogue")
    created = updated = 0
    with transaction.atomic():
        by_code: dict[str, Disease] = {}
        for entry in entries:
            values = {
                "name": entry["name"],
                "disease_type": str(entry["type"]),
                "validity_months": int(entry.get("validity_months", 36)),
                "counts_toward_limit": bool(entry.get("counts_toward_limit", str(entry["type"]) == "11")),
                "min_institution_level": int(entry.get("min_institution_level", 1)),
                "min_physician_title": int(entry.get("min_physician_title", 2)),
                "required_documents": list(entry.get("required_documents", ["diagnosis_certificate"])),
                "review_mode": entry.get("review_mode", "batch"),
                "icd10_prefixes": list(entry.get("icd10_prefixes", [])),
                "active": bool(entry.get("active", True)),
                "cross_province_settlement": bool(entry.get("cross_province_settlement", False)),
                "catalogue_version": version,
            }
            try:
                values["aliases"] = catalogue_aliases(entry.get("aliases"), name=entry["name"])
            except ValueError:
                raise InvalidInput(
                    _("Catalogue entry %(code)s is invalid: %(errors)s")
                    % {"code": entry.get("code"), "errors": [_("aliases must be a list of names")]},
                    code="invalid_catalogue",
                )
            disease = Disease(code=entry["code"], **values)
            try:
                disease.full_clean(validate_unique=False, validate_constraints=False)
            except ValidationError as exc:
                raise InvalidInput(
                    _("Catalogue entry %(code)s is invalid: %(errors)s")
                    % {"code": entry.get("code"), "errors": exc.messages},
                    code="invalid_catalogue",
                )
            disease, was_created = Disease.objects.update_or_create(code=entry["code"], defaults=values)
            by_code[disease.code] = disease
            created += was_created
            updated += not was_created
        for left, right in data.get("exclusive_pairs", []):
            first = by_code.get(left) or Disease.objects.get(code=left)
            first.exclusive_with.add(by_code.get(right) or Disease.objects.get(code=right))
    return {"created": created, "updated": updated, "version": version}


# ---------------------------------------------------------------------------
# Personal-data access log (§10)
# ---------------------------------------------------------------------------

ACCESS_REASON_MAX_LENGTH = 500


def personal_data_access_record(
    *, viewer: Any, person: Person, purpose: str, reason: str = "", application: Application | None = None
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


def personal_data_access_record_many(*, viewer: Any, person_ids: Sequence[int], purpose: str, reason: str = "") -> int:
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


# ---------------------------------------------------------------------------
# Renewal (复审), the daily validity sweep and expiry reminders (§6)
# ---------------------------------------------------------------------------


def application_renew(
    *, application_id: int, actor: Any, treating_institution: Institution | None = None
) -> Application:
    """File the renewal (复审) of an enrollment, from ``valid_until − renewal window`` on.

    The renewal is linked to the enrollment (``renews``) and carries its diagnosis forward for the
    physician to re-attest or update (``application_diagnose``); it does not count twice toward the
    limit, and while it is pending the old enrollment keeps covering and is not expired by the sweep.
    Once the old enrollment has lapsed (expired, or past ``valid_until + grace``) there is nothing
    left to continue: what is filed is a new application whose period starts on its approval.
    Filing cancels the old enrollment's reminders that have not gone out.
    """
    today = timezone.localdate()
    with transaction.atomic():
        previous = lock_application(application_id)
        if previous.state not in (State.APPROVED, State.EXPIRING, State.EXPIRED):
            raise TransitionRefused(
                _("Application #%(id)s is %(state)s; only an approved or expired enrollment can be renewed.")
                % {"id": previous.pk, "state": previous.get_state_display()},
                code="renewal_not_possible",
                details={"state": previous.state},
            )
        if previous.valid_until is None:
            raise RuleViolation(
                _("%(disease)s is approved long-term; it needs no renewal.") % {"disease": previous.disease},
                code="renewal_not_needed",
            )
        policy = selectors.policy_for_region(previous.region)
        opens_on = previous.valid_until - dt.timedelta(days=policy.renewal_window_days)
        if today < opens_on:
            raise RuleViolation(
                _("Renewal of application #%(id)s opens on %(date)s (%(days)d days before it ends on %(end)s).")
                % {
                    "id": previous.pk,
                    "date": opens_on.isoformat(),
                    "days": policy.renewal_window_days,
                    "end": previous.valid_until.isoformat(),
                },
                code="renewal_too_early",
                details={"opens_on": opens_on.isoformat(), "valid_until": previous.valid_until.isoformat()},
            )
        pending = previous.renewals.filter(state__in=ACTIVE_STATES).first()
        if pending is not None:
            raise RuleViolation(
                _("Renewal #%(renewal)s of application #%(id)s is already %(state)s.")
                % {"renewal": pending.pk, "id": previous.pk, "state": pending.get_state_display()},
                code="renewal_pending",
                details={"application": pending.pk},
            )
        lapsed = previous.state == State.EXPIRED or today > previous.valid_until + dt.timedelta(days=policy.grace_days)
        if lapsed and previous.state != State.EXPIRED:
            # The sweep has not reached it yet (a missed night): apply its rule to this row now, so
            # that the new filing does not collide with an enrollment that is over.
            run_transition(
                application=previous,
                name="expire",
                actor=get_system_user(),
                audit=AuditFields(details={"sweep_date": today.isoformat(), "on": "renewal filing"}),
            )
        renewal = application_submit(
            person=previous.person,
            disease=previous.disease,
            treating_institution=treating_institution or previous.treating_institution,
            actor=actor,
            kind=ApplicationKind.NEW if lapsed else ApplicationKind.RENEWAL,
            renews=None if lapsed else previous,
        )
        # The diagnosis the enrollment rests on, for the physician to re-attest or update; the
        # renewal stays "submitted" until they do (diagnosed_at/diagnosed_by stay empty). The provisional
        # bound is fixed now, so a later change of the policy's grace days cannot rewrite past answers.
        Application.objects.filter(pk=renewal.pk).update(
            icd10_code=previous.icd10_code,
            diagnosis_date=previous.diagnosis_date,
            physician=previous.physician_id,
            provisional_until=None if lapsed else previous.valid_until + dt.timedelta(days=policy.grace_days),
        )
        Reminder.objects.filter(
            application=previous, status__in=(ReminderStatus.PENDING, ReminderStatus.FAILED)
        ).update(status=ReminderStatus.CANCELLED, last_error="renewal filed", updated_at=timezone.now())
    renewal.refresh_from_db()
    return renewal


@dataclass
class SweepResult:
    day: dt.date
    expiring: int = 0
    expired: int = 0
    reminders_due: int = 0
    reminders_skipped: int = 0
    status_events_applied: int = 0
    categories_ended: int = 0
    renewals_warned: int = 0
    renewals_withdrawn: int = 0
    to_send: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class _SweepRules:
    renewal_window_days: int
    grace_days: int
    reminder_offsets: tuple[int, ...]  # descending
    two_diseases_reminders: bool = False
    renewal_diagnosis_limit_days: int = 90
    renewal_diagnosis_warning_days: int = 14


def _sweep_rule_groups() -> dict[_SweepRules, list[int]]:
    """Region ids grouped by the validity rules of their effective policy (own or nearest ancestor's).

    Regions and policies are few; walking the tree in memory keeps the sweep to a handful of queries.
    """
    parents = dict(Region.objects.values_list("pk", "parent_id"))
    policies = {p.region_id: p for p in Policy.objects.all()}
    default = Policy()
    groups: dict[_SweepRules, list[int]] = {}
    for region_id in parents:
        node: int | None = region_id
        policy = default
        for _depth in range(10):
            if node is None:
                break
            if node in policies:
                policy = policies[node]
                break
            node = parents.get(node)
        offsets = tuple(sorted({int(x) for x in (policy.reminder_offsets or [])}, reverse=True))
        rules = _SweepRules(
            policy.renewal_window_days,
            policy.grace_days,
            offsets,
            policy.two_diseases_reminders,
            policy.renewal_diagnosis_limit_days,
            policy.renewal_diagnosis_warning_days,
        )
        groups.setdefault(rules, []).append(region_id)
    return groups


def _with_renewal_pending() -> Exists:
    return Exists(Application.objects.filter(renews=OuterRef("pk"), state__in=ACTIVE_STATES))


def _candidate_ids(queryset: Any) -> array[int]:
    """The candidates' ids, read once in id order (8 bytes each): the chunks are cut from this list
    instead of re-reading and re-sorting the remaining candidates for every page."""
    return array("q", queryset.order_by("pk").values_list("pk", flat=True).iterator(chunk_size=10_000))


def _chunks(ids: array[int], size: int) -> Iterable[list[int]]:
    for start in range(0, len(ids), size):
        yield ids[start : start + size].tolist()


def _compiled(queryset: Any) -> tuple[str, tuple[Any, ...]]:
    return queryset.values("pk").query.get_compiler(connection=connection).as_sql()


def _db_value(model: Any, name: str, value: Any) -> Any:
    return model._meta.get_field(name).get_db_prep_save(value, connection)


def _sweep_transition(
    *,
    candidates: Any,
    sources: Sequence[str],
    transition: str,
    to_state: str,
    actor: Any,
    day: dt.date,
    chunk_size: int,
    set_ended_on: bool = False,
) -> int:
    """Move every candidate to ``to_state`` in chunks: one transaction per chunk, in which one
    ``UPDATE … RETURNING id`` per source state moves the rows that still qualify (the candidate
    conditions and the source state are re-checked on the locked rows, so a row changed meanwhile —
    a renewal approved, a termination — is left alone) and one ``INSERT … SELECT`` writes their audit
    rows. A crash loses at most the chunk in progress, which the next run picks up."""
    fields = AuditFields(details={"sweep_date": day.isoformat()})
    changed_total = 0
    for chunk in _chunks(_candidate_ids(candidates), chunk_size):
        with transaction.atomic():
            updated_at = _db_value(Application, "updated_at", timezone.now())
            for source in sources:
                subquery, sub_params = _compiled(candidates.filter(pk__in=chunk, state=source))
                ended_on = ", ended_on = valid_until" if set_ended_on else ""
                with connection.cursor() as cursor:
                    cursor.execute(
                        f"UPDATE enrollment_application SET state = %s, updated_at = %s{ended_on} "
                        f"WHERE state = %s AND id IN ({subquery}) RETURNING id",
                        [to_state, updated_at, source, *sub_params],
                    )
                    moved = [row[0] for row in cursor.fetchall()]
                if not moved:
                    continue
                where, params = sql_in("a.id", moved)
                audit_rows_insert(
                    source=f"FROM enrollment_application a WHERE {where}",
                    params=params,
                    transition=transition,
                    from_state=source,
                    to_state=to_state,
                    actor=actor,
                    fields=fields,
                    per_row={"application_id": "a.id"},
                )
                changed_total += len(moved)
    return changed_total


def validity_sweep(
    *, day: dt.date | None = None, actor: Any, chunk_size: int | None = None, enqueue: bool = True
) -> SweepResult:
    """The daily sweep (DESIGN §6), for ``day`` (default today, Asia/Shanghai).

    1. approved/expiring → expired once ``valid_until + grace`` has passed, unless a renewal is
       pending (benefits continue while it is);
    2. approved → expiring once ``day`` is inside the renewal window;
    3. reminder rows for every offset now due (see ``_create_due_reminders``).

    Everything is decided from the dates, never from "what happened yesterday": running it twice
    changes nothing the second time, and after missed days one run catches up.
    With ``enqueue`` the SMS and e-mail rows are handed to ``send_reminder`` tasks after commit;
    otherwise their ids are returned in ``to_send`` for the caller to deliver.
    """
    if not roles.is_system(actor):
        raise NotPermitted(_("Only the system runs the validity sweep."))
    from enrollment import person_services  # it calls back into these services

    day = day or timezone.localdate()
    chunk_size = chunk_size or settings.VALIDITY_SWEEP_CHUNK_SIZE
    result = SweepResult(day=day)
    # Status first: an enrollment a death ends is not reminded about.
    result.status_events_applied = len(person_services.status_events_apply_due(day=day, actor=actor))
    result.categories_ended = person_services.categories_lapse_sweep(day=day, actor=actor)
    for rules, region_ids in _sweep_rule_groups().items():
        _undiagnosed_renewals(region_ids=region_ids, rules=rules, day=day, actor=actor, result=result, enqueue=enqueue)
        covering = Application.objects.filter(
            region_id__in=region_ids, state__in=COVERING_STATES, valid_until__isnull=False
        )
        result.expired += _sweep_transition(
            candidates=covering.filter(valid_until__lt=day - dt.timedelta(days=rules.grace_days)).filter(
                ~_with_renewal_pending()
            ),
            sources=COVERING_STATES,
            transition="expire",
            to_state=State.EXPIRED,
            actor=actor,
            day=day,
            chunk_size=chunk_size,
            set_ended_on=True,
        )
        result.expiring += _sweep_transition(
            candidates=covering.filter(
                state=State.APPROVED, valid_until__lte=day + dt.timedelta(days=rules.renewal_window_days)
            ),
            sources=(State.APPROVED,),
            transition="mark_expiring",
            to_state=State.EXPIRING,
            actor=actor,
            day=day,
            chunk_size=chunk_size,
        )
        _create_due_reminders(
            covering=covering, rules=rules, day=day, chunk_size=chunk_size, result=result, enqueue=enqueue
        )
    # Rows whose send was never handed over (a crash between commit and enqueue) or whose retries
    # were lost: claimed atomically by the sender, so handing them over again cannot send twice.
    stale = timezone.now() - dt.timedelta(minutes=15)
    leftovers = list(
        Reminder.objects.filter(channel__in=(ReminderChannel.SMS, ReminderChannel.EMAIL))
        .filter(
            Q(status=ReminderStatus.PENDING, created_at__lt=stale)
            | Q(status=ReminderStatus.FAILED, attempts__lt=settings.REMINDER_MAX_ATTEMPTS, updated_at__lt=stale)
        )
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    _hand_over(leftovers, result, enqueue)
    return result


def _hand_over(reminder_ids: list[int], result: SweepResult, enqueue: bool) -> None:
    known = set(result.to_send)
    fresh = [pk for pk in reminder_ids if pk not in known]
    result.to_send.extend(fresh)
    if enqueue and fresh:
        transaction.on_commit(lambda: _enqueue_sends(fresh))


def _enqueue_sends(reminder_ids: list[int]) -> None:
    from enrollment import tasks  # tasks import services: imported late

    for reminder_id in reminder_ids:
        tasks.send_reminder.delay(reminder_id)


def _undiagnosed_renewals(
    *, region_ids: list[int], rules: _SweepRules, day: dt.date, actor: Any, result: SweepResult, enqueue: bool
) -> None:
    """A renewal nobody re-attested within the policy's limit is withdrawn (its provisional coverage
    is honoured up to that day); the filing clinic is told ``renewal_diagnosis_warning_days`` before.

    Renewals waiting for a diagnosis are few (a county's month of renewals at most), so this goes row
    by row through the same service as a clerk's withdrawal.
    """
    waiting = Application.objects.filter(region_id__in=region_ids, kind=ApplicationKind.RENEWAL, state=State.SUBMITTED)
    limit = dt.timedelta(days=rules.renewal_diagnosis_limit_days)
    # filed_at is a moment; the limit counts business days in Asia/Shanghai, so compare local dates.
    warn_before = _start_of_day(day - limit + dt.timedelta(days=rules.renewal_diagnosis_warning_days + 1))
    for renewal in waiting.filter(filed_at__lt=warn_before).select_related("person", "disease", "filing_institution"):
        filed_on = timezone.localtime(renewal.filed_at).date()
        withdraw_on = filed_on + limit
        if day >= withdraw_on:
            application_close(
                application_id=renewal.pk,
                actor=actor,
                reason_code="renewal_not_diagnosed",
                reason=_("No diagnosis was recorded within %(days)d days of filing the renewal.")
                % {"days": rules.renewal_diagnosis_limit_days},
                details={"sweep_date": day.isoformat(), "filed_on": filed_on.isoformat()},
            )
            result.renewals_withdrawn += 1
        elif rules.renewal_diagnosis_warning_days:
            warned, to_send = _renewal_warning_rows(renewal=renewal, withdraw_on=withdraw_on, rules=rules, day=day)
            result.renewals_warned += warned
            _hand_over(to_send, result, enqueue)


def _start_of_day(day: dt.date) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, dt.time.min))


def _renewal_warning_rows(
    *, renewal: Application, withdraw_on: dt.date, rules: _SweepRules, day: dt.date
) -> tuple[bool, list[int]]:
    """The in-app notice and e-mail to the filing clinic, once per renewal (the reminder table's unique
    constraint, with the warning's lead time as the offset); whether this run wrote them, and the new
    e-mail row to send."""
    emails: dict[int, str] = {}
    _clinic_emails([renewal.filing_institution_id], emails)
    recipient = emails[renewal.filing_institution_id]
    values = {
        "application": renewal.pk,
        "person": renewal.person.name,
        "masked_id": renewal.person.masked_id_number,
        "disease": renewal.disease.name,
        "filed_on": notifications.chinese_date(timezone.localtime(renewal.filed_at).date()),
        "withdraw_on": notifications.chinese_date(withdraw_on),
        "provisional_until": notifications.chinese_date(renewal.provisional_until or withdraw_on),
    }
    subject = notifications.RENEWAL_DIAGNOSIS_SUBJECT.format(**values)[:200]
    message = notifications.RENEWAL_DIAGNOSIS_TEXT.format(**values)
    now = timezone.now()
    created: list[int] = []
    wrote = False
    for channel in (ReminderChannel.IN_APP, ReminderChannel.EMAIL):
        in_app = channel == ReminderChannel.IN_APP
        status = ReminderStatus.SENT if in_app else (ReminderStatus.PENDING if recipient else ReminderStatus.SKIPPED)
        reminder, was_created = Reminder.objects.get_or_create(
            application=renewal,
            offset_days=rules.renewal_diagnosis_warning_days,
            channel=channel,
            defaults={
                "due_on": day,
                "valid_until": withdraw_on,
                "status": status,
                "institution_id": renewal.filing_institution_id,
                "recipient": "" if in_app else recipient,
                "subject": subject,
                "message": message,
                "last_error": "" if in_app or recipient else "no clinic staff e-mail address",
                "sent_at": now if in_app else None,
            },
        )
        wrote = wrote or was_created
        if was_created and reminder.status == ReminderStatus.PENDING:
            created.append(reminder.pk)
    return wrote, created


def _create_due_reminders(
    *, covering: Any, rules: _SweepRules, day: dt.date, chunk_size: int, result: SweepResult, enqueue: bool
) -> None:
    """Expiry reminders: 门慢门特 enrollments with their text; 两病 medication coverage with its own text,
    only where the policy asks for them."""
    _create_due_reminders_for(
        covering=covering.exclude(kind=ApplicationKind.TWO_DISEASES),
        templates=notifications.REMINDER_TEMPLATES["outpatient"],
        rules=rules,
        day=day,
        chunk_size=chunk_size,
        result=result,
        enqueue=enqueue,
    )
    if rules.two_diseases_reminders:
        _create_due_reminders_for(
            covering=covering.filter(kind=ApplicationKind.TWO_DISEASES),
            templates=notifications.REMINDER_TEMPLATES["two_diseases"],
            rules=rules,
            day=day,
            chunk_size=chunk_size,
            result=result,
            enqueue=enqueue,
        )


def _create_due_reminders_for(
    *,
    covering: Any,
    templates: tuple[Any, Any, Any],
    rules: _SweepRules,
    day: dt.date,
    chunk_size: int,
    result: SweepResult,
    enqueue: bool,
) -> None:
    """Create the reminder rows now due, three channels per (enrollment, offset).

    The reminder at offset ``o`` is due from ``valid_until − o`` until the next, smaller offset falls
    due: a day the sweep missed is made up late, but a patient who missed both the 30- and the 7-day
    reminder gets the 7-day one, and the 30-day rows are recorded as skipped. Enrollments with a
    renewal pending get none. ``ON CONFLICT DO NOTHING`` against the unique constraint is what keeps
    a second or concurrent run from creating anything twice.
    """
    eligible = covering.filter(~_with_renewal_pending())
    offsets = rules.reminder_offsets
    emails: dict[int, str] = {}  # filing institution → its clinic staff's addresses, for this sweep
    for index, offset in enumerate(offsets):
        later = offsets[index + 1] if index + 1 < len(offsets) else None
        missing = ~Exists(Reminder.objects.filter(application=OuterRef("pk"), offset_days=offset))
        due = eligible.filter(missing, valid_until__lte=day + dt.timedelta(days=offset))
        if later is not None:
            superseded = due.filter(valid_until__lte=day + dt.timedelta(days=later))
            skipped = _reminder_rows(
                candidates=superseded,
                offset=offset,
                day=day,
                chunk_size=chunk_size,
                emails=emails,
                skipped_for=later,
                templates=templates,
            )[0]
            result.reminders_skipped += skipped
            _refresh_reminder_statistics(inserted=3 * skipped)
            due = due.filter(valid_until__gt=day + dt.timedelta(days=later))
        created, chunks_to_send = _reminder_rows(
            candidates=due, offset=offset, day=day, chunk_size=chunk_size, emails=emails, templates=templates
        )
        result.reminders_due += created
        _refresh_reminder_statistics(inserted=3 * created)
        for ids in chunks_to_send:
            _hand_over(ids, result, enqueue)


def _refresh_reminder_statistics(*, inserted: int) -> None:
    """Let PostgreSQL's planner see the reminder rows this sweep has just written.

    The next candidate query anti-joins the reminder table. When the table's statistics still say "almost
    empty" (a first or catch-up sweep, or a day after a purge), the planner loops over a sequential scan of
    it for every candidate: 7 s instead of 40 ms at 300,000 applications. ``ANALYZE`` samples a bounded
    number of rows (a fraction of a second); a role that does not own the table gets a warning, not an error.
    """
    if connection.vendor == "postgresql" and inserted >= settings.REMINDER_ANALYZE_AFTER_ROWS:
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE enrollment_reminder")


def _clinic_emails(institution_ids: Iterable[int], known: dict[int, str]) -> None:
    """Fill ``known`` with the active clinic staff addresses of the institutions not in it yet."""
    wanted = {pk for pk in institution_ids if pk not in known}
    if not wanted:
        return
    found: dict[int, list[str]] = {}
    for institution_id, email in (
        StaffProfile.objects.filter(
            institution_id__in=wanted, user__is_active=True, user__groups__name=roles.CLINIC_STAFF
        )
        .exclude(user__email="")
        .order_by("user__email")
        .values_list("institution_id", "user__email")
    ):
        found.setdefault(institution_id, []).append(email)
    for pk in wanted:
        known[pk] = ",".join(found.get(pk, []))


def _reminder_dates_sql(day: dt.date, offset: int) -> tuple[str, list[Any]]:
    """The only database-specific part of the reminder SQL: ``valid_until`` as ``YYYY-MM-DD`` text,
    the days left until it and the due date of the offset, as columns of the enrollment ``a``."""
    if connection.vendor == "postgresql":
        sql = (
            "to_char(a.valid_until, 'YYYY-MM-DD') AS date_text, (a.valid_until - CAST(%s AS date)) AS days_left, "
            "(a.valid_until - CAST(%s AS integer)) AS due_on"
        )
    else:
        sql = (
            "a.valid_until AS date_text, CAST(julianday(a.valid_until) - julianday(%s) AS integer) AS days_left, "
            "date(a.valid_until, '-' || CAST(%s AS text) || ' days') AS due_on"
        )
    return sql, [day.isoformat(), offset]


def _reminder_text_slots() -> dict[notifications.Slot, str]:
    """SQL for every slot of the reminder templates (``notifications.render_sql``), over the columns of
    the enrollment row ``b`` built in ``_reminder_rows``: the SQL twin of ``chinese_date``,
    ``_days_phrase`` and ``mask_id_number`` (tests/enrollment/test_reminders.py holds them equal)."""
    number = "CAST(CAST(substr(b.date_text, {start}, {length}) AS integer) AS text)"
    return {
        notifications.Slot.DISEASE: "b.disease_name",
        notifications.Slot.CLINIC: "b.clinic_name",
        notifications.Slot.PERSON: "b.person_name",
        notifications.Slot.MASKED_ID: (
            "CASE WHEN length(b.id_number) <= 7 THEN substr('*******', 1, length(b.id_number)) "
            "ELSE substr(b.id_number, 1, 3) || substr('***********', 1, length(b.id_number) - 7) "
            "|| substr(b.id_number, length(b.id_number) - 3) END"
        ),
        notifications.Slot.APPLICATION: "CAST(b.application_id AS text)",
        notifications.Slot.VALID_UNTIL: (
            f"{number.format(start=1, length=4)} || '年' || {number.format(start=6, length=2)} || '月' || "
            f"{number.format(start=9, length=2)} || '日'"
        ),
        notifications.Slot.DAYS_PHRASE: (
            "CASE WHEN b.days_left > 0 THEN '还有' || CAST(b.days_left AS text) || '天到期' "
            "WHEN b.days_left = 0 THEN '今天到期' ELSE '已经到期' END"
        ),
    }


def _reminder_rows(
    *,
    candidates: Any,
    offset: int,
    day: dt.date,
    chunk_size: int,
    emails: dict[int, str],
    templates: tuple[Any, Any, Any],
    skipped_for: int | None = None,
) -> tuple[int, list[list[int]]]:
    """Per chunk of candidates, one transaction and one ``INSERT … SELECT … ON CONFLICT DO NOTHING
    RETURNING``: an SMS, an e-mail and an in-app row per enrollment, the texts rendered by the database
    from the templates of ``notifications``. Returns how many enrollments got rows, and per chunk the
    new SMS and e-mail rows to send (only what this run inserted: a concurrent run hands over its own)."""
    count = 0
    to_send: list[list[int]] = []
    slots = _reminder_text_slots()
    texts = [notifications.render_sql(template, slots) for template in templates]
    dates_sql, dates_params = _reminder_dates_sql(day, offset)
    sms, email, in_app = ReminderChannel.SMS, ReminderChannel.EMAIL, ReminderChannel.IN_APP
    for chunk in _chunks(_candidate_ids(candidates), chunk_size):
        institution_of = dict(Application.objects.filter(pk__in=chunk).values_list("pk", "filing_institution_id"))
        _clinic_emails(institution_of.values(), emails)
        with_emails = sorted({pk for pk in institution_of.values() if emails[pk]})
        if with_emails:
            emails_sql = f"CASE a.filing_institution_id {' '.join(['WHEN %s THEN %s'] * len(with_emails))} ELSE '' END"
        else:
            emails_sql = "''"
        emails_params = [value for pk in with_emails for value in (pk, emails[pk])]
        subquery, sub_params = _compiled(candidates.filter(pk__in=chunk))
        now = _db_value(Reminder, "created_at", timezone.now())
        if skipped_for is None:
            status = "CASE WHEN ch.channel = %s THEN %s WHEN ch.recipient = '' THEN %s ELSE %s END"
            status_params = [in_app, ReminderStatus.SENT, ReminderStatus.SKIPPED, ReminderStatus.PENDING]
            error, error_params = "CASE WHEN ch.channel = %s THEN '' ELSE ch.missing END", [in_app]
            sent_at, sent_at_params = "CASE WHEN ch.channel = %s THEN %s END", [in_app, now]
        else:
            status, status_params = "%s", [ReminderStatus.SKIPPED]
            error, error_params = "%s", [f"superseded by the {skipped_for}-day reminder"]
            sent_at, sent_at_params = "NULL", []
        # Placeholders in text order: outer select list, channel columns, texts, enrollment columns,
        # its WHERE, the channel list.
        sql = f"""
            INSERT INTO enrollment_reminder
                (application_id, offset_days, channel, due_on, valid_until, status, institution_id, recipient,
                 subject, message, attempts, last_error, created_at, updated_at, sent_at)
            SELECT ch.application_id, %s, ch.channel, ch.due_on, ch.valid_until, {status}, ch.institution_id,
                ch.recipient, ch.subject, ch.message, 0, {error}, %s, %s, {sent_at}
            FROM (
                SELECT t.application_id, t.valid_until, t.institution_id, t.due_on, c.channel,
                    CASE c.channel WHEN %s THEN t.phone WHEN %s THEN t.emails ELSE '' END AS recipient,
                    CASE c.channel WHEN %s THEN '' ELSE t.clinic_subject END AS subject,
                    CASE c.channel WHEN %s THEN t.sms ELSE t.body END AS message,
                    CASE WHEN c.channel = %s AND t.phone = '' THEN %s
                         WHEN c.channel = %s AND t.emails = '' THEN %s ELSE '' END AS missing
                FROM (
                    SELECT b.application_id, b.valid_until, b.institution_id, b.due_on, b.phone, b.emails,
                        {texts[0][0]} AS sms, {texts[1][0]} AS clinic_subject, {texts[2][0]} AS body
                    FROM (
                        SELECT a.id AS application_id, a.valid_until, a.filing_institution_id AS institution_id,
                            {dates_sql}, trim(p.phone) AS phone, {emails_sql} AS emails, d.name AS disease_name,
                            i.name AS clinic_name, p.name AS person_name, p.id_number
                        FROM enrollment_application a
                        JOIN enrollment_person p ON p.id = a.person_id
                        JOIN enrollment_disease d ON d.id = a.disease_id
                        JOIN enrollment_institution i ON i.id = a.filing_institution_id
                        WHERE a.id IN ({subquery})
                    ) b
                ) t
                CROSS JOIN (SELECT %s AS channel UNION ALL SELECT %s UNION ALL SELECT %s) c
            ) ch
            WHERE ch.application_id IS NOT NULL
            ON CONFLICT DO NOTHING
            RETURNING id, application_id, channel, status
        """  # noqa: S608 - table names and SQL fragments are ours; every value is a parameter
        params = [
            offset,
            *status_params,
            *error_params,
            now,
            now,
            *sent_at_params,
            sms,
            email,
            sms,
            sms,
            sms,
            "no mobile number on file",
            email,
            "no clinic staff e-mail address",
            *texts[0][1],
            *texts[1][1],
            *texts[2][1],
            *dates_params,
            *emails_params,
            *sub_params,
            sms,
            email,
            in_app,
        ]
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, params)
            inserted = cursor.fetchall()
        count += len({application_id for _pk, application_id, _channel, _status in inserted})
        if skipped_for is None:
            to_send.append(
                sorted(
                    pk
                    for pk, _application_id, channel, status in inserted
                    if status == ReminderStatus.PENDING and channel in (sms, email)
                )
            )
    return count, to_send


def reminder_deliver(*, reminder_id: int) -> Reminder:
    """Send one SMS or e-mail reminder, at most once.

    The conditional UPDATE pending/failed → sending is the claim: of two workers holding the same
    id, one gets it and the other sends nothing. A gateway error leaves the row ``failed`` for the
    task's retry with back-off; a reminder no longer due (renewal filed, enrollment ended) is cancelled.
    """
    claimed = Reminder.objects.filter(
        pk=reminder_id,
        status__in=(ReminderStatus.PENDING, ReminderStatus.FAILED),
        channel__in=(ReminderChannel.SMS, ReminderChannel.EMAIL),
        attempts__lt=settings.REMINDER_MAX_ATTEMPTS,
    ).update(status=ReminderStatus.SENDING, attempts=F("attempts") + 1, updated_at=timezone.now())
    reminder = Reminder.objects.select_related("application").get(pk=reminder_id)
    if not claimed:
        return reminder
    application = reminder.application
    if application.kind == ApplicationKind.RENEWAL and application.state != State.APPROVED:
        # The notice that an undiagnosed renewal will be withdrawn: due while it still waits for the diagnosis.
        if application.state != State.SUBMITTED:
            return _reminder_finish(reminder, ReminderStatus.CANCELLED, error="no longer due: diagnosis recorded")
    elif application.state not in COVERING_STATES or application.renewals.filter(state__in=ACTIVE_STATES).exists():
        return _reminder_finish(reminder, ReminderStatus.CANCELLED, error="no longer due: renewed or ended")
    try:
        if reminder.channel == ReminderChannel.SMS:
            notifications.get_sms_backend().send(
                notifications.SMSMessage(
                    to=reminder.recipient, text=reminder.message, reference=f"reminder-{reminder.pk}"
                )
            )
        else:
            send_mail(reminder.subject, reminder.message, None, reminder.recipient.split(","), fail_silently=False)
    except (notifications.DeliveryError, OSError) as exc:
        return _reminder_finish(reminder, ReminderStatus.FAILED, error=str(exc)[:500] or type(exc).__name__)
    return _reminder_finish(reminder, ReminderStatus.SENT)


def _reminder_finish(reminder: Reminder, status: str, *, error: str = "") -> Reminder:
    now = timezone.now()
    values: dict[str, Any] = {"status": status, "last_error": error, "updated_at": now}
    if status == ReminderStatus.SENT:
        values["sent_at"] = now
    Reminder.objects.filter(pk=reminder.pk, status=ReminderStatus.SENDING).update(**values)
    reminder.refresh_from_db()
    return reminder


def reminder_mark_read(*, reminder_id: int, actor: Any) -> Reminder:
    """A clinic acknowledges an in-app reminder of its own."""
    reminder = selectors.reminder_inbox(actor).filter(pk=reminder_id).first()
    if reminder is None:
        raise InvalidInput(_("Reminder #%(id)s does not exist.") % {"id": reminder_id}, code="not_found")
    if reminder.read_at is None:
        Reminder.objects.filter(pk=reminder.pk, read_at__isnull=True).update(read_at=timezone.now())
        reminder.refresh_from_db()
    return reminder
