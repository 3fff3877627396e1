"""Settings of the HTTP benchmark server: the project's own, plus the bare comparison endpoint."""

from config.settings import *  # noqa: F403

ROOT_URLCONF = "bench.http_urls"
