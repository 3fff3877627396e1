"""gunicorn settings for serving the application: ``gunicorn -c config/gunicorn.conf.py config.wsgi:application``.

The access log keeps gunicorn's usual ("combined") format, but every query string in it — in the request
line, ``%(q)s`` and the Referer — has the values of ``id_number`` / ``certno`` and anything shaped like an
ID number replaced by ``***`` (config.redaction.redact_query_string): the deprecated GET look-ups
(``/api/v1/persons/?id_number=…``, ``/api/v1/coverage/?id_number=…``) must not leave a person's number in a
log file (issue 18 item 10). Other settings (workers, bind, timeouts) come from the command line or
``GUNICORN_CMD_ARGS`` as usual.
"""

from __future__ import annotations

from typing import Any

from gunicorn.glogging import Logger

from config.redaction import redact_id_numbers, redact_query_string, redact_urls

# %(q)s and %({query_string}e)s: a query string without its "?".
BARE_QUERY_STRINGS = frozenset({"q", "{query_string}e"})
accesslog = "-"  # the access log to standard output, next to the application's log; "--access-logfile" overrides


class RedactingLogger(Logger):
    """gunicorn's logger with personal data masked out of every access-log field before formatting."""

    def atoms(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> dict[str, Any]:
        atoms = super().atoms(resp, req, environ, request_time)
        for key, value in atoms.items():
            if isinstance(value, str):
                if key in BARE_QUERY_STRINGS:
                    value = redact_query_string(value)
                atoms[key] = redact_id_numbers(redact_urls(value))
        return atoms


logger_class = RedactingLogger
