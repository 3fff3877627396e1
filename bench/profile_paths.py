"""Profile the three hot HTTP paths of bench.http_paths in-process: cProfile and SQL query counts.

    DATABASE_URL=postgres://…/bench .venv/bin/python -m bench.profile_paths [--requests 300] [--top 12]

Each path (product and bare baseline) is asked ``--requests`` times through Django's test client with
the token header (the whole middleware and DRF stack; no socket, no gunicorn), under cProfile, after a
warm-up. Printed per path: the server CPU per request in this process, the SQL statements per request,
and the top entries by cumulative time split into our own code (enrollment/, reviews/, kernel/,
interop/, nhsa/, config/) and the framework (Django, DRF, psycopg, the standard library). Writes
nothing to the docs; docs/benchmarks.md quotes a run by hand. The rows it adds are removed.

py-spy gives the same picture from a running gunicorn (it reads the workers' stacks from outside)::

    py-spy record -f raw -o var/queue.txt -d 15 -p <worker pid>   # while bench.http_paths drives it
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time
from pathlib import Path
from typing import Any

from bench import common

OURS = ("enrollment/", "reviews/", "kernel/", "interop/", "nhsa/", "config/")
# Entries that only wrap everything below them (they would head every list and say nothing).
# Every middleware's __call__ holds the whole request below it, as do the view wrappers.
WRAPPERS = (
    ":__call__",
    "django/core/handlers/",
    "django/utils/deprecation.py",
    "django/test/client.py",
    "django/views/decorators/csrf.py",
    "django/views/generic/base.py",
    "rest_framework/viewsets.py:view",
    "rest_framework/views.py:dispatch",
    "<built-in method builtins.exec>",
    "cProfile",
)


def _where(key: tuple[str, int, str]) -> str:
    filename, line, function = key
    path = filename
    root = str(common.ROOT) + "/"
    if "site-packages/" in path:
        path = path.split("site-packages/", 1)[1]
    elif path.startswith(root):
        path = path[len(root) :]
    elif "/lib/python" in path:
        path = "stdlib/" + path.split("/lib/python", 1)[1].split("/", 1)[1]
    return f"{path}:{function}" if line else function


def top_entries(stats: pstats.Stats, requests: int, top: int) -> tuple[list[str], list[str]]:
    """(our functions, framework functions) by cumulative ms per request, ``top`` each."""
    ours, framework = [], []
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    for key, (_cc, calls, _tt, cumulative, _callers) in sorted(raw.items(), key=lambda kv: -kv[1][3]):
        where = _where(key)
        if any(w in where for w in WRAPPERS):
            continue
        line = f"{cumulative * 1000 / requests:7.2f} ms  {calls / requests:6.1f}×  {where}"
        target = ours if where.startswith(OURS) else framework
        if where.startswith("bench/"):
            continue
        if len(target) < top:
            target.append(line)
        if len(ours) >= top and len(framework) >= top:
            break
    return ours, framework


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--top", type=int, default=12)
    parser.add_argument("--paths", default="queue,filing,coverage")
    parser.add_argument("--dump", default="", help="directory to write the .pstats files to")
    args = parser.parse_args()
    import os

    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.http_settings"
    common.setup_django()
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.utils import timezone

    from bench import batch, http_paths
    from enrollment.models import Region
    from enrollment.periods import period_key
    from enrollment.services import api_token_issue, get_system_user

    users = get_user_model().objects
    reviewer = users.filter(username__startswith="bench-reviewer-").order_by("username").first()
    mark = {**batch.marks(), "enrollment_personaldataaccess": common.max_id("enrollment_personaldataaccess")}
    try:
        # Only the profiled reviewer's city is assembled: the page reads one scope through its index.
        city = set(Region.objects.filter(parent_id=reviewer.profile.region_id).values_list("pk", flat=True))
        batch.run_product(
            regions=[region for region in batch._regions() if region in city],
            period=period_key(timezone.localdate()),
            cutoff=timezone.now(),
            actor=get_system_user(),
            chunk_size=1000,
        )
        common.vacuum_analyze("reviews_reviewitem", "enrollment_application")
        reviewer_token = api_token_issue(user=reviewer, name="bench").key
        clinic = users.get(username="bench-clinic")
        clinic_token = api_token_issue(user=clinic, name="bench").key
        hospital = clinic.profile.institution.region.institutions.get(code__endswith="-H").code
        today = timezone.localdate().isoformat()
        warm = 30
        numbers = iter(http_paths.filing_persons(2 * (args.requests + warm + 1)))
        sample = http_paths.covered_sample(args.requests + warm)
        client = Client(HTTP_HOST="localhost")

        def call(path: http_paths.BenchPath, endpoint: http_paths.Endpoint, index: int) -> Any:
            if path.name == "queue":
                return client.get(endpoint.path, HTTP_AUTHORIZATION=f"Token {reviewer_token}")
            if path.name == "filing":
                body = {"id_number": next(numbers), "disease": "M03900", "treating_institution": hospital}
            else:
                number, code = sample[index % len(sample)]
                body = {"id_number": number, "disease": code, "date": today}
            return client.post(
                endpoint.path, body, content_type="application/json", HTTP_AUTHORIZATION=f"Token {clinic_token}"
            )

        for path in http_paths.PATHS:
            if path.name not in args.paths.split(","):
                continue
            for side in ("product", "baseline"):
                endpoint = getattr(path, side)
                for index in range(warm):
                    response = call(path, endpoint, index)
                    assert response.status_code == path.expect, (endpoint.path, response.content[:300])
                statements: list[str] = []

                def record(
                    execute: Any, sql: str, params: Any, many: bool, context: Any, statements: list[str] = statements
                ) -> Any:
                    statements.append(sql)
                    return execute(sql, params, many, context)

                # Not CaptureQueriesContext: request_started clears connection.queries_log.
                with connection.execute_wrapper(record):
                    call(path, endpoint, warm)
                profiler = cProfile.Profile()
                cpu0, wall0 = time.process_time(), time.perf_counter()
                profiler.enable()
                for index in range(args.requests):
                    call(path, endpoint, warm + 1 + index)
                profiler.disable()
                cpu_ms = (time.process_time() - cpu0) * 1000 / args.requests
                wall_ms = (time.perf_counter() - wall0) * 1000 / args.requests
                stats = pstats.Stats(profiler)
                if args.dump:
                    Path(args.dump).mkdir(parents=True, exist_ok=True)
                    stats.dump_stats(str(Path(args.dump) / f"{path.name}-{side}.pstats"))
                ours, framework = top_entries(stats, args.requests, args.top)
                print(f"\n### {path.label}, {side}: {endpoint.method} {endpoint.path}")
                print(
                    f"{len(statements)} SQL statements per request; under cProfile "
                    f"{cpu_ms:.1f} ms CPU / {wall_ms:.1f} ms wall per request ({args.requests} requests)"
                )
                for number, sql in enumerate(statements, 1):
                    print(f"  q{number}: {sql[:160]}")
                print("  our code (cumulative ms per request, calls per request):")
                print("\n".join(f"    {line}" for line in ours))
                print("  framework:")
                print("\n".join(f"    {line}" for line in framework))
    finally:
        batch.reset(mark, vacuum=False)
        http_paths.reset(mark)


if __name__ == "__main__":
    main()
