"""Filing an application (备案申请): the eligibility checks, the person lock that holds the concurrent limit."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _

from enrollment import selectors
from enrollment.models import (
    Application,
    ApplicationKind,
    Disease,
    Institution,
    Person,
)
from enrollment.services.audit import AuditFields, audit_entry
from enrollment.services.documents import StoredFiles, prepare_document, store_document
from kernel import roles
from kernel.errors import InvalidInput, NotPermitted, RuleViolation

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
    prepared = [prepare_document(doc_type, upload) for doc_type, upload in documents]
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
            store_document(application=application, prepared=doc, actor=actor, files=files)
    return application
