"""Recording the diagnosis an application rests on: institution, physician title and ICD-10 checks."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from enrollment.models import (
    Application,
    DocumentType,
    Physician,
)
from enrollment.services.audit import AuditFields, lock_application, run_transition
from enrollment.services.documents import StoredFiles, prepare_document, store_document
from kernel import roles
from kernel.errors import InvalidInput, NotPermitted, RuleViolation

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
    prepared = [prepare_document(doc_type, upload) for doc_type, upload in documents]
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
            store_document(application=application, prepared=doc, actor=actor, files=files)
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
