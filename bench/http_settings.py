"""Settings of the HTTP benchmark server: the project's own, plus the bare comparison endpoints.

The database connections carry ``application_name = bench-http`` so that bench.http_paths can find the
PostgreSQL backends serving this server and add their CPU time to the report (database CPU per request).
"""

from config.settings import *  # noqa: F403
from config.settings import DATABASES

ROOT_URLCONF = "bench.http_urls"

if DATABASES["default"]["ENGINE"].startswith("django.db.backends.postgresql"):
    DATABASES["default"].setdefault("OPTIONS", {})["application_name"] = "bench-http"
