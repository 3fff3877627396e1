"""Superseded by bench.http_paths (issue 17): wrk drives a pinned gunicorn, against bare baselines.

    DATABASE_URL=postgres://…/bench .venv/bin/python -m bench.http_queue [bench.http_paths options]

runs bench.http_paths for the reviewer queue page and the filing only (the two paths this module
measured with a Python load driver before issue 17).
"""

from __future__ import annotations

import sys

from bench import http_paths


def main() -> None:
    sys.argv = [sys.argv[0], "--paths", "queue,filing", *sys.argv[1:]]
    http_paths.main()


if __name__ == "__main__":
    main()
