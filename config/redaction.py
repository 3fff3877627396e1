"""The log filter that keeps 身份证号 out of log files.

Imported by the LOGGING configuration before the app registry is ready, so it imports no models.
"""

from __future__ import annotations

import logging
import re

# 6-digit birthplace, 8-digit birth date, 3-digit sequence, check character; not part of a longer number.
_ID_NUMBER = re.compile(r"(?<![0-9])([1-9][0-9]{2})[0-9]{11}([0-9]{3}[0-9Xx])(?![0-9A-Za-z])")


def redact_id_numbers(text: str) -> str:
    return _ID_NUMBER.sub(lambda m: m.group(1) + "*" * 11 + m.group(2), text)


class RedactPersonalData(logging.Filter):
    """Masks anything shaped like a 身份证号 in a log record (message and traceback) and replaces an attached
    request by its method and path, before any handler sees the record.

    A refused request (4xx) is the client's mistake, not the server's: Django attaches the traceback of the
    ``PermissionDenied`` / ``Http404`` it caught, which buries real errors in the log. Those records keep their
    one-line message and lose the traceback; 5xx records keep theirs.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "django.request" and getattr(record, "status_code", 500) < 500:
            record.exc_info, record.exc_text = None, None
        request = getattr(record, "request", None)
        if hasattr(request, "get_full_path"):
            # django.request / django.security attach the live request, whose repr and GET data carry the
            # query string (?id_number=…) into any handler that renders it (error mails, JSON log shippers).
            record.request = f"<{request.method} {request.path}>"
        message = record.getMessage()
        redacted = redact_id_numbers(message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_id_numbers(record.exc_text)
        return True
