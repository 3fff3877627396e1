"""Recording the diagnosis an application rests on: institution, physician title and ICD-10 checks."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from enrollment import policies
from enrollment.models import (
    Application,
    DocumentType,
    Physician,
)
from enrollment.services.audit import AuditFields, lock_application, run_transition
from enrollment.services.documents import StoredFiles, prepare_document, store_document
from kernel import roles
from kernel.errors import InvalidInput, RuleViolation

# ---------------------------------------------------------------------------
# Diagnosis
# ---------------------------------------------------------------------------


def application_diagnose(
    *,
    application_id: int,
    actor: roles.Actor,
    icd10_code: str,
    diagnosis_date: dt.date,
    physician: Physician | None = None,
    documents: Sequence[tuple[str, UploadedFile]] = (),
) -> Application:
    """A physician of a may-diagnose institution records the diagnosis the application rests on."""
    physician = policies.diagnosing_physician(actor, physician)
    if diagnosis_date > timezone.localdate():
        raise InvalidInput(_("The diagnosis date cannot be in the future."), details={"field": "diagnosis_date"})
    prepared = [prepare_document(doc_type, upload) for doc_type, upload in documents]
    with StoredFiles() as files, transaction.atomic():
        application = lock_application(application_id)
        disease = application.disease
        if diagnosis_date < application.person.birth_date:
            raise InvalidInput(
                _("The diagnosis date is before the person's birth."), details={"field": "diagnosis_date"}
            )
        policies.ensure_physician_may_diagnose(application, actor, physician)
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
