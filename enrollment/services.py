"""Every write of the enrollment app (门诊慢特病 备案).

Each service: keyword-only, one ``transaction.atomic()``, ``select_for_update()`` on what it
changes, exactly one audit row per state change written inside the transaction, side effects
in ``transaction.on_commit``. ``actor`` is always required (the system user for beat jobs).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django_fsm import can_proceed, has_transition_perm

from enrollment import roles, selectors
from enrollment.errors import InvalidInput, NotPermitted, RuleViolation, TransitionRefused
from enrollment.idnumbers import parse_id_number
from enrollment.models import (
    ACTIVE_STATES,
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
    Region,
    State,
    SupportCategory,
    TerminationReason,
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
    *, application: Application, transition: str, from_state: str, to_state: str, actor: Any, fields: AuditFields
) -> AuditEntry:
    """An unsaved audit row; per-row paths save it, bulk paths bulk_create many."""
    system = roles.is_system(actor)
    return AuditEntry(
        application_id=application.pk,
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
        application=application,
        transition=name,
        from_state=from_state,
        to_state=application.state,
        actor=actor,
        fields=audit,
    ).save()
    return application


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
    insurance_type: str = InsuranceType.RESIDENT,
    insurance_number: str = "",
    phone: str = "",
    support_categories: Sequence[str] = (),
) -> Person:
    """Create a person, or update the contact details of the one with this ID number.

    Sex and birth date always come from the number itself.
    """
    parsed = parse_id_number(id_number)
    name = (name or "").strip()
    if not name:
        raise InvalidInput(_("Enter the person's name."), code="invalid", details={"field": "name"})
    unknown = sorted(set(support_categories) - set(SupportCategory.values))
    if unknown:
        raise InvalidInput(
            _("Unknown support category: %(values)s.") % {"values": ", ".join(unknown)},
            details={"field": "support_categories"},
        )
    if insurance_type not in InsuranceType.values:
        raise InvalidInput(_("Insurance type must be 310 or 390."), details={"field": "insurance_type"})
    values = {
        "name": name,
        "sex": parsed.sex,
        "birth_date": parsed.birth_date,
        "insured_region": insured_region,
        "insurance_type": insurance_type,
        "insurance_number": insurance_number.strip(),
        "phone": phone.strip(),
        "support_categories": list(support_categories),
    }
    with transaction.atomic():
        person, _created = Person.objects.select_for_update().update_or_create(id_number=parsed.number, defaults=values)
    return person


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
    with StoredFiles() as files, transaction.atomic():
        locked_person = Person.objects.select_for_update().select_related("insured_region").get(pk=person.pk)
        _raise_first_failure(
            selectors.eligibility_checks(person=locked_person, disease=disease, kind=kind, renews=renews)
        )
        application = Application(
            person=locked_person,
            disease=disease,
            kind=kind,
            renews=renews,
            filing_institution=institution,
            treating_institution=treating_institution,
            region=locked_person.insured_region,
            filed_by=actor,
        )
        try:
            with transaction.atomic():
                application.save()
        except IntegrityError:
            # The partial unique index caught a race the checks could not see.
            raise RuleViolation(
                _("The person already has an active application for %(disease)s.") % {"disease": disease},
                code="duplicate_disease",
            )
        audit_entry(
            application=application,
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
    if roles.has_any_role(actor, roles.ADMIN):
        return
    institution = selectors.user_institution(actor)
    if institution is None or institution.pk not in (
        application.filing_institution_id,
        application.treating_institution_id,
    ):
        raise NotPermitted(_("Only staff of the filing institution may do this."))


def application_withdraw(*, application_id: int, actor: Any, reason: str = "") -> Application:
    with transaction.atomic():
        application = lock_application(application_id)
        _ensure_filing_side(application, actor)
        return run_transition(application=application, name="withdraw", actor=actor, audit=AuditFields(reason=reason))


def application_resubmit(
    *, application_id: int, actor: Any, note: str = "", documents: Sequence[tuple[str, UploadedFile]] = ()
) -> Application:
    """A returned application comes back, with what was missing, to wait for the next batch."""
    prepared = [_prepare_document(doc_type, upload) for doc_type, upload in documents]
    with StoredFiles() as files, transaction.atomic():
        application = lock_application(application_id)
        _ensure_filing_side(application, actor)
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
        application = lock_application(application_id)
        if application.valid_from and ended_on < application.valid_from:
            raise InvalidInput(_("The end date is before the enrollment started."), details={"field": "ended_on"})
        if application.valid_until and ended_on > application.valid_until:
            ended_on = application.valid_until
        return run_transition(
            application=application,
            name="terminate",
            actor=actor,
            audit=AuditFields(reason_code=reason, reason=note, details={"ended_on": ended_on.isoformat()}),
            reason=reason,
            ended_on=ended_on,
        )


# ---------------------------------------------------------------------------
# Approval and its validity period (§6)
# ---------------------------------------------------------------------------


def validity_for(*, application: Application, decided_on: dt.date) -> tuple[dt.date, dt.date | None]:
    """The period an approval gives.

    A renewal continues the enrollment it renews: it starts the day after the old one ends,
    whatever day it is approved (no gap, no overlap). Otherwise the region's policy decides
    between the decision date and the first day of the next month.
    """
    previous = application.renews
    if (
        previous is not None
        and previous.valid_until is not None
        and previous.state
        in (
            State.APPROVED,
            State.EXPIRING,
        )
    ):
        valid_from = previous.valid_until + dt.timedelta(days=1)
    else:
        policy = selectors.policy_for_region(application.region)
        valid_from = (
            decided_on if policy.benefit_start == BenefitStart.DECISION_DATE else first_of_next_month(decided_on)
        )
    return valid_from, period_end(valid_from, application.disease.validity_months)


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
                "catalogue_version": version,
            }
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
