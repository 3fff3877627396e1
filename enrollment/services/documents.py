"""Documents attached to an application: type and size checks, content-addressed storage."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.utils.translation import gettext as _

from enrollment import policies
from enrollment.models import (
    ACTIVE_STATES,
    Application,
    Document,
    DocumentType,
)
from enrollment.services.audit import lock_application
from kernel import roles
from kernel.errors import InvalidInput, TransitionRefused

# ---------------------------------------------------------------------------
# Documents
# ---------------------------------------------------------------------------

# Django itself truncates uploaded names to 255 characters; anything this long is not a real scan's name.
MAX_FILENAME_LENGTH = 200
ALLOWED_DOCUMENT_TYPES: dict[str, tuple[str, bytes]] = {
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


def prepare_document(doc_type: str, upload: UploadedFile) -> PreparedDocument:
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


def store_document(
    *, application: Application, prepared: PreparedDocument, actor: roles.Actor, files: StoredFiles
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
    assert document.file.name is not None  # save() named the stored file
    files.names.append((document.file.storage, document.file.name))
    document.save()
    return document


def document_attach(*, application_id: int, actor: roles.Actor, doc_type: str, upload: UploadedFile) -> Document:
    prepared = prepare_document(doc_type, upload)
    with StoredFiles() as files, transaction.atomic():
        application = lock_application(application_id)
        if not roles.has_any_role(actor, roles.PHYSICIAN):
            policies.ensure_filing_side(application, actor)
        if application.state not in ACTIVE_STATES:
            raise TransitionRefused(
                _("Documents cannot be added to a %(state)s application.") % {"state": application.get_state_display()}
            )
        return store_document(application=application, prepared=prepared, actor=actor, files=files)
