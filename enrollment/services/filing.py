"""Filing an application (备案申请): the eligibility checks, the person lock that holds the concurrent limit."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _

from enrollment import policies, selectors
from enrollment.models import (
    Application,
    ApplicationKind,
    AuditEntry,
    Disease,
    Institution,
    Person,
    Region,
)
from enrollment.services.audit import AuditFields, audit_entry
from enrollment.services.documents import StoredFiles, prepare_document, store_document
from enrollment.services.persons import person_register
from kernel import roles
from kernel.errors import InvalidInput, RuleViolation

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
    actor: roles.Actor,
    documents: Sequence[tuple[str, UploadedFile]] = (),
    kind: str = ApplicationKind.NEW,
    renews: Application | None = None,
) -> Application:
    """File an application. The person's row is locked so that concurrent filings for the same
    person are serialised and the concurrent limit holds (DESIGN §4)."""

    def locked() -> Person:
        return Person.objects.select_for_update(of=("self",)).select_related("insured_region").get(pk=person.pk)

    return _file(
        lock_person=locked,
        disease=disease,
        treating_institution=treating_institution,
        actor=actor,
        documents=documents,
        kind=kind,
        renews=renews,
        check_first=True,
    )


def application_submit_by_id_number(
    *, id_number: str, disease: Disease, treating_institution: Institution, actor: roles.Actor
) -> Application:
    """The API's filing: the person found by (normalised) ID number in ``actor``'s scope and locked in
    the same query, then ``application_submit``'s rules and rows. An unknown number: ``person_not_found``."""

    def locked() -> Person:
        person = selectors.persons_visible_to(actor).select_for_update(of=("self",)).filter(id_number=id_number).first()
        if person is None:
            raise InvalidInput(
                _("No person with this ID number is registered; register the person first (POST /api/v1/persons/)."),
                code="person_not_found",
                details={"field": "id_number"},
            )
        return person

    return _file(
        lock_person=locked,
        disease=disease,
        treating_institution=treating_institution,
        actor=actor,
        documents=(),
        kind=ApplicationKind.NEW,
        renews=None,
        check_first=False,
    )


def application_insert(
    *, application: Application, actor: roles.Actor, fields: AuditFields, duplicate_message: str, savepoint: bool = True
) -> AuditEntry:
    """Insert a new application (``submitted``) with its ``submit`` audit row, returned: the one way an
    application row is created (filing here, the 两病 enrollment a rejection opens in reviews). The partial unique
    index refuses a second active application of the person for the disease, a race the callers' checks could not
    see: that is a RuleViolation ``duplicate_disease``. Inside a caller's transaction the insert needs its own
    savepoint so that the caught IntegrityError leaves that transaction usable; the caller holds the transaction."""
    try:
        with transaction.atomic(savepoint=savepoint):
            application.save()
    except IntegrityError:
        raise RuleViolation(duplicate_message, code="duplicate_disease")
    entry = audit_entry(
        application_id=application.pk,
        transition="submit",
        from_state="",
        to_state=application.state,
        actor=actor,
        fields=fields,
    )
    entry.save()
    return entry


def _file(
    *,
    lock_person: Callable[[], Person],
    disease: Disease,
    treating_institution: Institution,
    actor: roles.Actor,
    documents: Sequence[tuple[str, UploadedFile]],
    kind: str,
    renews: Application | None,
    check_first: bool,
) -> Application:
    """``check_first``: may the actor file here, checked before the person is looked up (else after: the
    API answers an unknown person first, as it always has)."""
    if check_first:
        institution = policies.ensure_may_file(actor, treating_institution)
    # Validate uploads before any row is written.
    prepared = [prepare_document(doc_type, upload) for doc_type, upload in documents]
    # Called inside a caller's transaction (renewal, 两病 enrollment, roster commit) the insert needs
    # its own savepoint so that a caught IntegrityError leaves that transaction usable; as the
    # outermost block it does not (the error rolls the whole filing back), which saves two round trips.
    nested = transaction.get_connection().in_atomic_block
    with StoredFiles() as files, transaction.atomic():
        locked_person = lock_person()
        if not check_first:
            institution = policies.ensure_may_file(actor, treating_institution)
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
        entry = application_insert(
            application=application,
            actor=actor,
            fields=AuditFields(details={"kind": kind, "renews": renews.pk if renews else None}),
            duplicate_message=_("The person already has an active application for %(disease)s.") % {"disease": disease},
            savepoint=nested,
        )
        stored = [store_document(application=application, prepared=doc, actor=actor, files=files) for doc in prepared]
        # A new application's documents and timeline are exactly the rows just written: its answer (API
        # detail) needs no read-back.
        selectors.hold_as_prefetched(application, documents=stored, audit_entries=[entry])
    return application


@dataclass(frozen=True)
class PersonDetails:
    """What the filing page knows of the person: registered or corrected with the filing (person_register's
    arguments; None keeps what is on record)."""

    id_number: str
    name: str
    insured_region: Region
    insurance_type: str | None = None
    insurance_number: str | None = None
    phone: str | None = None


def application_file_with_person(
    *,
    person: Person | None,
    person_details: PersonDetails | None,
    disease: Disease,
    treating_institution: Institution,
    actor: roles.Actor,
    documents: Sequence[tuple[str, UploadedFile]] = (),
) -> Application:
    """The filing page's one write: register (or correct) the person and file the application in one
    transaction, so that a refused filing leaves the person as it was. Without ``person_details`` the
    registered ``person`` is filed for as is."""
    with transaction.atomic():
        if person_details is not None:
            person = person_register(
                id_number=person_details.id_number,
                name=person_details.name,
                insured_region=person_details.insured_region,
                insurance_type=person_details.insurance_type,
                insurance_number=person_details.insurance_number,
                phone=person_details.phone,
                actor=actor,
            )
        if person is None:
            raise InvalidInput(_("Enter the person's details."), details={"field": "id_number"})
        return application_submit(
            person=person,
            disease=disease,
            treating_institution=treating_institution,
            actor=actor,
            documents=documents,
        )
