"""Benchmark: the reviewer queue page over HTTP (gunicorn, 8 connections) against a bare DRF endpoint.

    DATABASE_URL=postgres://…/bench .venv/bin/python -m bench.http_queue --gunicorn PATH [--seconds 20]

Assembles this month's batches (the product path) so the queue holds items, starts gunicorn
(2 workers × 4 threads, DEBUG off) on ``bench.http_settings``, and drives it from 8 threads, each
with one keep-alive ``http.client`` connection and the token of its city's reviewer:

- product: ``GET /api/v1/queue/?limit=50`` (scope, separation of duties, lease filter, related rows);
- baseline: ``GET /bench/bare-queue/`` (same table, same region scope, 50 rows, plain serializer).

It reports requests/s, latency percentiles and the server's peak RSS (sum of its processes), then
puts the database back as it was.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from bench import common


def _tree_rss_mb(pid: int) -> float:
    total, stack = 0.0, [pid]
    while stack:
        current = stack.pop()
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) / 1024
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        stack.extend(int(child) for child in children)
    return total


def _tree_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its children so far (gunicorn master and workers)."""
    total, stack, tick = 0.0, [pid], os.sysconf("SC_CLK_TCK")
    while stack:
        current = stack.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime (fields 14, 15 of stat)
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        stack.extend(int(child) for child in children)
    return total


def _machine_busy_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    tick = os.sysconf("SC_CLK_TCK")
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return (sum(values) - idle) / tick, sum(values) / tick


def measured(server_pid: int, run: Any) -> dict[str, Any]:
    """``run()``'s result plus the server's CPU milliseconds per request and how busy the machine was."""
    cpu_before, (busy_before, total_before) = _tree_cpu_seconds(server_pid), _machine_busy_seconds()
    result = run()
    cpu_after, (busy_after, total_after) = _tree_cpu_seconds(server_pid), _machine_busy_seconds()
    requests = max(result["requests"], 1)
    result["server_cpu_ms_per_request"] = (cpu_after - cpu_before) * 1000 / requests
    result["machine_busy_pct"] = 100 * (busy_after - busy_before) / max(total_after - total_before, 1e-9)
    return result


Request = tuple[str, str, bytes | None, dict[str, str]]


def drive(
    *,
    port: int,
    paths_tokens: list[tuple[str, str]] | None = None,
    seconds: float,
    connections: int = 8,
    next_request: Any = None,
    expect: int = 200,
) -> dict[str, Any]:
    """Run ``connections`` threads for ``seconds``; ``next_request(index)`` gives (method, path, body,
    headers) or None when there is nothing left to send."""
    if next_request is None:
        assert paths_tokens

        def next_request(index: int) -> Request:
            path, token = paths_tokens[index % len(paths_tokens)]
            return "GET", path, None, {"Authorization": f"Token {token}"}

    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def worker(index: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine: list[float] = []
        bad = 0
        while time.perf_counter() < deadline:
            request = next_request(index)
            if request is None:
                break
            method, path, body, headers = request
            t0 = time.perf_counter()
            conn.request(method, path, body=body, headers={**headers, "Host": "localhost"})
            response = conn.getresponse()
            content = response.read()
            mine.append((time.perf_counter() - t0) * 1000)
            if response.status != expect:
                bad += 1
                if bad == 1:
                    print("unexpected response", response.status, content[:300])
        conn.close()
        with lock:
            latencies.extend(mine)
            errors[0] += bad

    started = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(n,)) for n in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    return {
        "requests": len(latencies),
        "rps": len(latencies) / elapsed,
        "errors": errors[0],
        **common.percentiles(latencies),
    }


def filing_persons(count: int) -> list[str]:
    """Persons with no application yet, in the clinic's county, for the filing benchmark."""
    import datetime as dt_

    from django.contrib.auth import get_user_model

    from enrollment.idnumbers import make_id_number
    from enrollment.models import Person

    clinic = get_user_model().objects.get(username="bench-clinic")
    region = clinic.profile.institution.region
    numbers = [
        make_id_number("530124", dt_.date(1925, 1, 1) + dt_.timedelta(days=n // 500), (n % 500) * 2 + 1)
        for n in range(count)
    ]
    existing = set(Person.objects.filter(id_number__in=numbers).values_list("id_number", flat=True))
    Person.objects.bulk_create(
        [
            Person(id_number=number, name="新参保人", sex="1", birth_date=dt_.date(1925, 1, 1), insured_region=region)
            for number in numbers
            if number not in existing
        ],
        batch_size=5000,
    )
    return numbers


def wait_ready(port: int, timeout: float = 30) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/health/", headers={"Host": "localhost"})
            conn.getresponse().read()
            return
        except OSError:
            time.sleep(0.3)
    raise SystemExit("gunicorn did not start")


def reset_filings(mark: dict[str, int]) -> None:
    """Remove the filing benchmark's applications, their audit rows and its persons."""
    common.run_sql_without_triggers(
        [
            (
                "DELETE FROM enrollment_auditentry WHERE id > %s AND transition = 'submit'",
                [mark["enrollment_auditentry"]],
            ),
            (
                "DELETE FROM enrollment_application a USING enrollment_person p "
                "WHERE a.person_id = p.id AND p.name = '新参保人'",
                [],
            ),
            ("DELETE FROM enrollment_person WHERE name = '新参保人'", []),
        ]
    )
    common.vacuum_analyze("enrollment_application", "enrollment_auditentry", "reviews_reviewitem", "enrollment_person")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gunicorn", default="gunicorn", help="the gunicorn executable")
    parser.add_argument("--port", type=int, default=8761)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--filing-persons", type=int, default=12000, help="0: skip the filing benchmark")
    parser.add_argument("--no-docs", action="store_true")
    parser.add_argument("--label", default="")
    args = parser.parse_args()
    common.setup_django()
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from bench import batch
    from enrollment.periods import period_key
    from enrollment.services import get_system_user
    from enrollment.services.api_tokens import api_token_issue

    counts = common.table_counts()
    mark = batch.marks()
    product_batch = batch.run_product(
        regions=batch._regions(),
        period=period_key(timezone.localdate()),
        cutoff=timezone.now(),
        actor=get_system_user(),
        chunk_size=1000,
    )
    common.vacuum_analyze("reviews_reviewitem", "enrollment_application")
    reviewers = get_user_model().objects.filter(username__startswith="bench-reviewer-").order_by("username")
    tokens = [api_token_issue(user=user, name="bench").key for user in reviewers]
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "bench.http_settings", "DEBUG": "0", "LOG_LEVEL": "WARNING"}
    env.setdefault("DB_CONN_MAX_AGE", "60")
    server = subprocess.Popen(
        [
            args.gunicorn,
            "config.wsgi:application",
            "--workers",
            "2",
            "--threads",
            "4",
            "--worker-class",
            "gthread",
            "--bind",
            f"127.0.0.1:{args.port}",
            "--log-level",
            "warning",
            "--chdir",
            str(common.ROOT),
        ],
        env=env,
    )
    results: dict[str, Any] = {}
    try:
        wait_ready(args.port)
        peak = [0.0]
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                peak[0] = max(peak[0], _tree_rss_mb(server.pid))
                stop.wait(0.2)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        for name, path in (("product", "/api/v1/queue/?limit=50"), ("baseline", "/bench/bare-queue/")):
            drive(port=args.port, paths_tokens=[(path, t) for t in tokens], seconds=3)  # warm-up
            results[name] = measured(
                server.pid,
                lambda path=path: drive(port=args.port, paths_tokens=[(path, t) for t in tokens], seconds=args.seconds),
            )
        if args.filing_persons:
            clinic = get_user_model().objects.get(username="bench-clinic")
            clinic_token = api_token_issue(user=clinic, name="bench").key
            hospital = clinic.profile.institution.region.institutions.get(code__endswith="-H").code
            numbers = iter(filing_persons(args.filing_persons))
            counter_lock = threading.Lock()

            def next_filing(index: int) -> Request | None:
                with counter_lock:
                    number = next(numbers, None)
                if number is None:
                    return None
                body = json.dumps({"id_number": number, "disease": "M03900", "treating_institution": hospital})
                headers = {"Authorization": f"Token {clinic_token}", "Content-Type": "application/json"}
                return "POST", "/api/v1/applications/", body.encode(), headers

            drive(port=args.port, seconds=2, next_request=next_filing, expect=201)  # warm-up
            results["filing"] = measured(
                server.pid, lambda: drive(port=args.port, seconds=args.seconds, next_request=next_filing, expect=201)
            )
        stop.set()
        sampler.join()
        results["server_peak_rss_mb"] = peak[0]
    finally:
        server.terminate()
        server.wait(timeout=30)
        batch.reset(mark, vacuum=False)
        reset_filings(mark)
    print(json.dumps(results, indent=1))
    size = counts["enrollment_application"]
    product, baseline = results["product"], results["baseline"]

    def row(label: str, r: dict[str, Any]) -> str:
        return (
            f"| {label} | {r['requests']:,} | {r['errors']} | {r['rps']:,.0f} | {r['p50']:.1f} | {r['p95']:.1f} | "
            f"{r['p99']:.1f} | {r['server_cpu_ms_per_request']:.1f} | {r['machine_busy_pct']:.0f}% |"
        )

    text = "\n".join(
        [
            f"## Reviewer queue page over HTTP, {size:,} applications ({product_batch.rows:,} items queued)",
            "",
            "| | requests | errors | req/s | p50 ms | p95 ms | p99 ms | server CPU ms/request | machine CPU busy |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
            row("product `GET /api/v1/queue/?limit=50`", product),
            row("baseline bare DRF endpoint, same table and scope", baseline),
            *(
                [row("filing `POST /api/v1/applications/` (new person, M03900)", results["filing"])]
                if "filing" in results
                else []
            ),
            "",
            f"**Ratio product/baseline: {common.ratio(product['rps'], baseline['rps']):.2f}×** requests/s "
            "(target ≥ 0.5×; p99 under 50 ms). Filing target: ≥ 300 req/s, p99 under 100 ms. "
            "Server peak RSS (master + 2 workers): "
            f"{results['server_peak_rss_mb']:.0f} MB. Server CPU ms/request: user + system time of the gunicorn "
            "processes per request answered (PostgreSQL and the load driver not included); machine CPU busy: "
            "all processes on both cores during the run.",
            "",
            "```",
            f"$ DATABASE_URL=postgres://…/bench .venv/bin/python -m bench.http_queue --gunicorn …/gunicorn "
            f"--seconds {args.seconds:g}",
            "```",
            "",
            f"- gunicorn, 2 workers × 4 threads (gthread), DEBUG off, DB_CONN_MAX_AGE={env['DB_CONN_MAX_AGE']}; "
            f"8 client threads with keep-alive connections and token auth, {args.seconds:g} s each after a 3 s "
            f"warm-up, client on the same 2 cores",
            f"- data: {counts['enrollment_person']:,} persons, {size:,} applications; queue filled by the product "
            "batch assembly (reverted afterwards)",
            *[f"- {fact}" for fact in common.machine_lines()],
            f"- measured {dt.date.today().isoformat()}",
        ]
    )
    print(text)
    if not args.no_docs:
        common.write_section(f"bench_http_queue_{args.label or f'{size // 1000}k'}", text)


if __name__ == "__main__":
    main()
