"""The log filter that keeps 身份证号 out of log files.

Imported by the LOGGING configuration before the app registry is ready, so it imports no models.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import unquote_plus

# 6-digit birthplace, 8-digit birth date, 3-digit sequence, check character; not part of a longer number.
_ID_NUMBER = re.compile(r"(?<![0-9])([1-9][0-9]{2})[0-9]{11}([0-9]{3}[0-9Xx])(?![0-9A-Za-z])")


def redact_id_numbers(text: str) -> str:
    return _ID_NUMBER.sub(lambda m: m.group(1) + "*" * 11 + m.group(2), text)


# Query parameters whose value is an ID number whatever it looks like (a mistyped one is still personal data):
# the API's id_number and the national platform's certno.
SENSITIVE_PARAMETERS = frozenset({"id_number", "certno"})
# In a query string any value shaped like a 身份证号 is masked too: 18 characters (17 digits and a check
# character) or the old 15-digit form.
_ID_NUMBER_LIKE = re.compile(r"[0-9]{17}[0-9Xx]|[0-9]{15}")
_QUERY_STRING = re.compile(r"\?([^\s\"'#]*)")
MASK = "***"


def redact_query_string(query: str) -> str:
    """``id_number=530124196005170031&disease=M03900`` → ``id_number=***&disease=M03900``.

    The value of every ``id_number`` / ``certno`` parameter, and every value that looks like an ID number
    (percent-encoded or not, anywhere in it), is replaced; everything else is kept as it was sent.
    """
    parts = []
    for part in query.split("&"):
        key, equals, value = part.partition("=")
        name = unquote_plus(key).strip().lower()
        if equals and (name in SENSITIVE_PARAMETERS or _ID_NUMBER_LIKE.search(unquote_plus(value))):
            value = MASK
        elif not equals and _ID_NUMBER_LIKE.search(unquote_plus(key)):
            key = MASK
        parts.append(f"{key}{equals}{value}")
    return "&".join(parts)


def redact_urls(text: str) -> str:
    """Every query string in ``text`` (a request line, a Referer, a log message) through ``redact_query_string``."""
    if "?" not in text:
        return text
    return _QUERY_STRING.sub(lambda m: "?" + redact_query_string(m.group(1)), text)


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
        if request is not None and hasattr(request, "get_full_path"):
            # django.request / django.security attach the live request, whose repr and GET data carry the
            # query string (?id_number=…) into any handler that renders it (error mails, JSON log shippers).
            record.request = f"<{request.method} {request.path}>"
        message = record.getMessage()
        # runserver's access log (django.server) writes the request line: mask its query string too.
        redacted = redact_id_numbers(redact_urls(message))
        if redacted != message:
            record.msg, record.args = redacted, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_id_numbers(record.exc_text)
        return True
