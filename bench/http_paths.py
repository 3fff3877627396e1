"""Benchmark: the three hot HTTP paths against their bare-DRF baselines, driven by wrk (issue 17).

    make bench-tools     # Debian's wrk
    DATABASE_URL=postgres://…/bench .venv/bin/python -m bench.http_paths [--seconds 15] [--rounds 3]

Paths, each against a bare baseline on the same server in the same round (bench.http_urls):

- queue: ``GET /api/v1/queue/?limit=50`` as each city's reviewer, against ``GET /bench/bare-queue/``
  (same table and scope, plain ModelSerializer);
- filing: ``POST /api/v1/applications/`` with a distinct 身份证号 per request, against
  ``POST /bench/bare-filing/`` (a ModelSerializer creating one application row, token auth);
- coverage: ``POST /api/v1/coverage/`` about persons covered today, against ``POST /bench/bare-coverage/``
  (one SQL statement behind a bare APIView).

The server is gunicorn with the project's config (``config/gunicorn.conf.py``, 2 workers × 4 threads,
DEBUG off) on ``bench.http_settings``, pinned with ``taskset`` to the last core; wrk (one thread,
8 connections, Lua scripts in bench/wrk/) is pinned to core 0, so the load generator takes little CPU
and none of the server's core. PostgreSQL is not pinned. For every run: requests/s, wrk's latency
p50/p95/p99, the server's CPU per request (utime + stime of the gunicorn master and workers from
/proc/<pid>/stat, delta / requests) and the database's (the same for the PostgreSQL backends whose
``application_name`` is ``bench-http``), and the ratio to the baseline of the same round. Medians of
the rounds go into docs/benchmarks.md. The queue is filled by the product batch assembly and the
filings are removed again afterwards, as are the persons made for them and the coverage access-log rows.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import common

WRK_DIR = Path(__file__).resolve().parent / "wrk"
FILING_NAME = "新参保人"  # persons made for the filing runs (removed afterwards)
CONNECTIONS = 8


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str


@dataclass(frozen=True)
class BenchPath:
    name: str
    label: str
    product: Endpoint
    baseline: Endpoint
    script: str
    expect: int
    # Targets of issue 17: product req/s ≥ ratio × baseline; p99 under p99_factor × the baseline's p99.
    min_ratio: float
    p99_factor: float | None = None


PATHS = (
    BenchPath(
        "queue",
        "reviewer queue page",
        Endpoint("GET", "/api/v1/queue/?limit=50"),
        Endpoint("GET", "/bench/bare-queue/"),
        "queue.lua",
        200,
        0.8,
    ),
    BenchPath(
        "filing",
        "filing",
        Endpoint("POST", "/api/v1/applications/"),
        Endpoint("POST", "/bench/bare-filing/"),
        "filing.lua",
        201,
        0.5,
    ),
    BenchPath(
        "coverage",
        "coverage answer",
        Endpoint("POST", "/api/v1/coverage/"),
        Endpoint("POST", "/bench/bare-coverage/"),
        "coverage.lua",
        200,
        0.5,
        2.0,
    ),
)


# ---- pure helpers (tests/bench/test_http_harness.py) ----


def request_line(method: str, path: str, token: str, body: dict[str, Any] | None = None) -> str:
    """One line of a wrk request file (bench/wrk/common.lua): METHOD, path, token [, JSON body], tab-separated."""
    fields = [method, path, token] + ([json.dumps(body, ensure_ascii=False, separators=(",", ":"))] if body else [])
    for field in fields:
        if "\t" in field or "\n" in field:
            raise ValueError(f"a request field may not hold a tab or a newline: {field!r}")
    return "\t".join(fields)


def parse_wrk_output(text: str) -> dict[str, Any]:
    """The ``BENCH_JSON`` line printed by the scripts' done(), in requests/s and milliseconds."""
    for line in text.splitlines():
        if line.startswith("BENCH_JSON "):
            raw = json.loads(line[len("BENCH_JSON ") :])
            break
    else:
        raise ValueError("no BENCH_JSON line in wrk's output (was the script one of bench/wrk/?)")
    seconds = raw["duration_us"] / 1e6
    errors = sum(raw[key] for key in ("connect_errors", "read_errors", "write_errors", "status_errors", "timeouts"))
    return {
        "requests": raw["requests"],
        "seconds": seconds,
        "rps": raw["requests"] / seconds if seconds else 0.0,
        "errors": errors,
        "status_errors": raw["status_errors"],
        "p50": raw["p50_us"] / 1000,
        "p95": raw["p95_us"] / 1000,
        "p99": raw["p99_us"] / 1000,
        "max": raw["max_us"] / 1000,
    }


def cpu_seconds_of(pids: list[int], proc: Path = Path("/proc")) -> float:
    """utime + stime of these processes so far, in seconds (fields 14 and 15 of /proc/<pid>/stat)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = (proc / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone: its time is lost to both readings alike
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def process_tree(pid: int, proc: Path = Path("/proc")) -> list[int]:
    """``pid`` and its descendants (the gunicorn master and its workers)."""
    found, stack = [], [pid]
    while stack:
        current = stack.pop()
        found.append(current)
        try:
            stack.extend(int(c) for c in (proc / str(current) / "task" / str(current) / "children").read_text().split())
        except OSError:
            continue
    return found


def summarise(rounds: list[dict[str, dict[str, dict[str, float]]]]) -> dict[str, dict[str, Any]]:
    """Per path: the median over rounds of each side's figures and of the per-round ratios.

    ``rounds[i][path]["product" | "baseline"]`` holds rps, p50, p95, p99, server_cpu_ms, db_cpu_ms.
    The ratio of a round is product rps / baseline rps of that round (same load on the machine);
    ``p99_ratio`` is product p99 / baseline p99.
    """
    result: dict[str, dict[str, Any]] = {}
    for name in rounds[0]:
        sides = {
            side: {
                key: statistics.median(r[name][side][key] for r in rounds)
                for key in rounds[0][name][side]
                if isinstance(rounds[0][name][side][key], int | float)
            }
            for side in ("product", "baseline")
        }
        ratios = [common.ratio(r[name]["product"]["rps"], r[name]["baseline"]["rps"]) for r in rounds]
        p99_ratios = [common.ratio(r[name]["product"]["p99"], r[name]["baseline"]["p99"]) for r in rounds]
        result[name] = {
            **sides,
            "ratio": statistics.median(ratios),
            "ratios": ratios,
            "p99_ratio": statistics.median(p99_ratios),
        }
    return result


def verdict(path: BenchPath, figures: dict[str, Any]) -> tuple[bool, str]:
    """Whether the median figures meet the path's issue-17 target, and the target in words."""
    ok = figures["ratio"] >= path.min_ratio
    words = f"≥ {path.min_ratio:g}× req/s"
    if path.p99_factor is not None:
        ok = ok and figures["p99_ratio"] < path.p99_factor
        words += f", p99 < {path.p99_factor:g}× bare p99"
    return ok, words


def report(summary: dict[str, dict[str, Any]], rounds: int) -> list[str]:
    lines = [
        "| path | side | req/s | p50 ms | p95 ms | p99 ms | server CPU ms/req | DB CPU ms/req "
        "| ratio (req/s, median) | per round | target | met |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---|---|",
    ]
    for path in PATHS:
        if path.name not in summary:
            continue
        figures = summary[path.name]
        ok, words = verdict(path, figures)
        for side, endpoint in (("product", path.product), ("baseline", path.baseline)):
            f = figures[side]
            tail = (
                f"**{figures['ratio']:.2f}×** (p99 {figures['p99_ratio']:.1f}×) | "
                f"{', '.join(f'{r:.2f}' for r in figures['ratios'])} | {words} | {'**yes**' if ok else '**no**'} |"
                if side == "product"
                else "| | | |"
            )
            lines.append(
                f"| {path.label} | {side} `{endpoint.method} {endpoint.path}` | {f['rps']:,.0f} | {f['p50']:.1f} | "
                f"{f['p95']:.1f} | {f['p99']:.1f} | {f['server_cpu_ms']:.1f} | {f['db_cpu_ms']:.1f} | {tail}"
            )
    lines.append("")
    lines.append(f"Medians of {rounds} round(s); each ratio is taken within its round.")
    return lines


# ---- the run ----


def filing_persons(count: int, *, offset: int = 0) -> list[str]:
    """``count`` persons with no application, insured in the bench clinic's county (distinct 身份证号)."""
    from django.contrib.auth import get_user_model

    from enrollment.idnumbers import make_id_number
    from enrollment.models import Person

    clinic = get_user_model().objects.get(username="bench-clinic")
    region = clinic.profile.institution.region
    birth = dt.date(1925, 1, 1)
    numbers = [
        make_id_number("530124", birth + dt.timedelta(days=n // 500), (n % 500) * 2 + 1)
        for n in range(offset, offset + count)
    ]
    existing = set(Person.objects.filter(id_number__in=numbers).values_list("id_number", flat=True))
    from django.db import connection

    with connection.cursor() as cursor:  # rows COPYed with their ids (bench.generate) leave the sequence behind
        cursor.execute(
            "SELECT setval(pg_get_serial_sequence('enrollment_person', 'id'), "
            "(SELECT coalesce(max(id), 1) FROM enrollment_person))"
        )
    Person.objects.bulk_create(
        [
            Person(id_number=number, name=FILING_NAME, sex="1", birth_date=birth, insured_region=region)
            for number in numbers
            if number not in existing
        ],
        batch_size=5000,
    )
    return numbers


def covered_sample(count: int) -> list[tuple[str, str]]:
    """(身份证号, disease code) of enrollments that cover today: approved or expiring, started, not ended.

    The generator also makes approved rows past their end (the sweep's work); a coverage benchmark over
    those would measure the "ended" answer, so the sample is drawn from the covering rows only.
    """
    from django.db import connection
    from django.utils import timezone

    today = timezone.localdate()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT p.id_number, d.code FROM enrollment_application a TABLESAMPLE SYSTEM (10) REPEATABLE (17) "
            "JOIN enrollment_person p ON p.id = a.person_id JOIN enrollment_disease d ON d.id = a.disease_id "
            "WHERE a.state IN ('approved', 'expiring') AND a.valid_from <= %s "
            "AND (a.valid_until IS NULL OR a.valid_until >= %s) AND p.name <> %s LIMIT %s",
            [today, today, FILING_NAME, count],
        )
        return cursor.fetchall()


def reset(mark: dict[str, int]) -> None:
    """Remove the run's filings (both sides), their audit rows, the persons made for them and the
    coverage access-log rows; the review items go with bench.batch.reset."""
    common.run_sql_without_triggers(
        [
            (
                "DELETE FROM enrollment_auditentry e USING enrollment_application a, enrollment_person p "
                "WHERE e.id > %s AND e.application_id = a.id AND a.person_id = p.id AND p.name = %s",
                [mark["enrollment_auditentry"], FILING_NAME],
            ),
            ("DELETE FROM enrollment_personaldataaccess WHERE id > %s", [mark["enrollment_personaldataaccess"]]),
            (
                "DELETE FROM enrollment_application a USING enrollment_person p "
                "WHERE a.person_id = p.id AND p.name = %s",
                [FILING_NAME],
            ),
            ("DELETE FROM enrollment_person WHERE name = %s", [FILING_NAME]),
        ]
    )
    common.vacuum_analyze("enrollment_application", "enrollment_auditentry", "reviews_reviewitem", "enrollment_person")


def database_pids() -> list[int]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pid FROM pg_stat_activity WHERE application_name = 'bench-http'")
        return [row[0] for row in cursor.fetchall()]


def wait_ready(port: int, timeout: float = 60) -> None:
    import http.client

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


def pinning() -> tuple[list[str], list[str], str]:
    """taskset prefixes for (wrk, server) and a sentence saying what was done."""
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2 or not shutil.which("taskset"):
        return [], [], f"not pinned ({len(cores)} core(s) available)"
    wrk_core, server = cores[0], cores[1:]
    server_list = ",".join(str(c) for c in server)
    return (
        ["taskset", "-c", str(wrk_core)],
        ["taskset", "-c", server_list],
        f"wrk pinned to core {wrk_core}, gunicorn to core(s) {server_list}; PostgreSQL and other work unpinned",
    )


def run_wrk(
    *, wrk: str, pin: list[str], port: int, script: str, lines: list[str], seconds: float, workdir: Path
) -> dict[str, Any]:
    requests_file = workdir / "requests.tsv"
    requests_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    env = {**os.environ, "BENCH_REQUESTS": str(requests_file), "BENCH_THREADS": "1"}
    command = [
        *pin,
        wrk,
        "-t1",
        f"-c{CONNECTIONS}",
        f"-d{seconds:g}s",
        "--timeout",
        "10s",
        "-s",
        str(WRK_DIR / script),
        f"http://127.0.0.1:{port}",
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"wrk failed ({done.returncode}): {done.stderr.strip()[:500]}")
    return parse_wrk_output(done.stdout)


def cpu_by_pid(pids: list[int], proc: Path = Path("/proc")) -> dict[int, float]:
    return {pid: cpu_seconds_of([pid], proc=proc) for pid in pids}


def cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds spent between two readings by the processes alive at the second one (one that
    started in between counts from zero; one that ended in between is lost, so the server keeps its
    database connections for the whole run: DB_CONN_MAX_AGE)."""
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())


def measured(*, server_pid: int, run: Any) -> dict[str, Any]:
    before = cpu_by_pid(process_tree(server_pid)), cpu_by_pid(database_pids())
    result = run()
    after = cpu_by_pid(process_tree(server_pid)), cpu_by_pid(database_pids())
    requests = max(result["requests"], 1)
    result["server_cpu_ms"] = cpu_delta(before[0], after[0]) * 1000 / requests
    result["db_cpu_ms"] = cpu_delta(before[1], after[1]) * 1000 / requests
    return result


def probe(port: int, lines: list[str], expect: int) -> dict[str, int]:
    """Send these requests once each and count the answers by status (and, for coverage, by "covered");
    stop the run on an unexpected status: a benchmark of error pages measures nothing."""
    import http.client

    counts: dict[str, int] = {}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for line in lines:
        method, path, token, *body = line.split("\t")
        headers = {"Authorization": f"Token {token}", "Host": "localhost"}
        if body:
            headers["Content-Type"] = "application/json"
        conn.request(method, path, body=body[0].encode() if body else None, headers=headers)
        response = conn.getresponse()
        content = response.read()
        if response.status != expect:
            raise SystemExit(f"{method} {path} answered {response.status}: {content[:300]!r}")
        answer = json.loads(content or b"{}")
        key = f"{response.status}" + (f" covered={answer['covered']}" if "covered" in answer else "")
        counts[key] = counts.get(key, 0) + 1
    conn.close()
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gunicorn", default=str(common.ROOT / ".venv" / "bin" / "gunicorn"))
    parser.add_argument("--wrk", default="wrk")
    parser.add_argument("--port", type=int, default=8761)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--paths", default="queue,filing,coverage")
    parser.add_argument("--filing-per-run", type=int, default=8000, help="distinct persons per filing run")
    parser.add_argument("--coverage-sample", type=int, default=5000)
    parser.add_argument("--no-docs", action="store_true")
    parser.add_argument("--label", default="")
    args = parser.parse_args()
    wrk = shutil.which(args.wrk)
    if wrk is None:
        raise SystemExit("wrk not found: `make bench-tools` installs Debian's wrk")
    common.setup_django()
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from bench import batch
    from enrollment.periods import period_key
    from enrollment.services import api_token_issue, get_system_user

    chosen = [p for p in PATHS if p.name in args.paths.split(",")]
    counts = common.table_counts()
    mark = {**batch.marks(), "enrollment_personaldataaccess": common.max_id("enrollment_personaldataaccess")}
    pin_wrk, pin_server, pin_words = pinning()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bench.http_settings",
        "DEBUG": "0",
        "LOG_LEVEL": "WARNING",
    }
    # Connections kept for the whole run: the database CPU is read per backend (cpu_delta).
    env.setdefault("DB_CONN_MAX_AGE", "3600")
    server_command = [
        *pin_server,
        args.gunicorn,
        "-c",
        str(common.ROOT / "config" / "gunicorn.conf.py"),
        "config.wsgi:application",
        "--workers",
        str(args.workers),
        "--threads",
        str(args.threads),
        "--worker-class",
        "gthread",
        "--bind",
        f"127.0.0.1:{args.port}",
        "--log-level",
        "warning",
        "--chdir",
        str(common.ROOT),
    ]
    rounds: list[dict[str, dict[str, dict[str, Any]]]] = []
    answers: dict[str, int] = {}
    server = None
    try:
        product_batch = batch.run_product(
            regions=batch._regions(),
            period=period_key(timezone.localdate()),
            cutoff=timezone.now(),
            actor=get_system_user(),
            chunk_size=1000,
        )
        common.vacuum_analyze("reviews_reviewitem", "enrollment_application")
        users = get_user_model().objects
        reviewers = users.filter(username__startswith="bench-reviewer-").order_by("username")
        reviewer_tokens = [api_token_issue(user=user, name="bench").key for user in reviewers]
        clinic = users.get(username="bench-clinic")
        clinic_token = api_token_issue(user=clinic, name="bench").key
        hospital = clinic.profile.institution.region.institutions.get(code__endswith="-H").code
        today = timezone.localdate().isoformat()
        sample = covered_sample(args.coverage_sample)
        runs_per_round = 2  # product and baseline
        wants_filing = any(p.name == "filing" for p in chosen)
        filing_count = args.filing_per_run * runs_per_round * (args.rounds + 1)
        filing_numbers = filing_persons(filing_count) if wants_filing else []
        filing_slices = iter(
            filing_numbers[i : i + args.filing_per_run] for i in range(0, len(filing_numbers), args.filing_per_run)
        )

        def lines_for(path: BenchPath, endpoint: Endpoint) -> list[str]:
            if path.name == "queue":
                return [request_line(endpoint.method, endpoint.path, token) for token in reviewer_tokens]
            if path.name == "filing":
                return [
                    request_line(
                        endpoint.method,
                        endpoint.path,
                        clinic_token,
                        {"id_number": number, "disease": "M03900", "treating_institution": hospital},
                    )
                    for number in next(filing_slices)
                ]
            return [
                request_line(
                    endpoint.method, endpoint.path, clinic_token, {"id_number": number, "disease": code, "date": today}
                )
                for number, code in sample
            ]

        server = subprocess.Popen(server_command, env=env, stdout=subprocess.DEVNULL)
        load_before = os.getloadavg()
        wait_ready(args.port)
        if any(p.name == "coverage" for p in chosen):
            answers = probe(args.port, lines_for(PATHS[2], PATHS[2].product)[:200], 200)
        with tempfile.TemporaryDirectory() as tmp:
            workdir = Path(tmp)

            def one(path: BenchPath, endpoint: Endpoint, seconds: float) -> dict[str, Any]:
                lines = lines_for(path, endpoint)
                return measured(
                    server_pid=server.pid,
                    run=lambda: run_wrk(
                        wrk=wrk,
                        pin=pin_wrk,
                        port=args.port,
                        script=path.script,
                        lines=lines,
                        seconds=seconds,
                        workdir=workdir,
                    ),
                )

            for path in chosen:  # a probe of each endpoint, then a warm-up: connections, caches, code paths
                for endpoint in (path.product, path.baseline):
                    lines = lines_for(path, endpoint)
                    probe(args.port, lines[:3], path.expect)
                    measured(
                        server_pid=server.pid,
                        run=lambda path=path, lines=lines: run_wrk(
                            wrk=wrk,
                            pin=pin_wrk,
                            port=args.port,
                            script=path.script,
                            lines=lines,
                            seconds=args.warmup,
                            workdir=workdir,
                        ),
                    )
            for number in range(args.rounds):
                current: dict[str, dict[str, Any]] = {}
                for path in chosen:
                    # Alternate which side goes first, so a drift in the machine's load favours neither.
                    order = ("product", "baseline") if number % 2 == 0 else ("baseline", "product")
                    current[path.name] = {side: one(path, getattr(path, side), args.seconds) for side in order}
                    for side in order:
                        r = current[path.name][side]
                        print(
                            f"round {number + 1} {path.name:8} {side:8} {r['rps']:7.1f} req/s p99 {r['p99']:7.1f} ms "
                            f"server {r['server_cpu_ms']:5.1f} ms db {r['db_cpu_ms']:5.1f} ms errors {r['errors']}",
                            flush=True,
                        )
                rounds.append(current)
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        batch.reset(mark, vacuum=False)
        reset(mark)
    load_after = os.getloadavg()
    summary = summarise(rounds)
    errors = {
        f"{name} {side}": sum(r[name][side]["errors"] for r in rounds)
        for name in summary
        for side in ("product", "baseline")
    }
    print(json.dumps({"summary": summary, "errors": errors, "coverage_answers": answers}, indent=1, default=str))
    size = counts["enrollment_application"]
    text = "\n".join(
        [
            f"## Hot paths over HTTP with wrk, {size:,} applications (issue 17)",
            "",
            *report(summary, args.rounds),
            "",
            "```",
            f"$ DATABASE_URL=postgres://…/bench .venv/bin/python -m bench.http_paths --seconds {args.seconds:g} "
            f"--rounds {args.rounds}",
            "```",
            "",
            f"- server: gunicorn with config/gunicorn.conf.py (access log on, to /dev/null), {args.workers} workers × "
            f"{args.threads} threads (gthread), DEBUG off, DB_CONN_MAX_AGE={env['DB_CONN_MAX_AGE']}; {pin_words}",
            f"- load: wrk 1 thread, {CONNECTIONS} keep-alive connections, token auth (Lua scripts in bench/wrk/), "
            f"{args.seconds:g} s per side after a {args.warmup:g} s warm-up; product and baseline alternate which "
            "goes first",
            "- server CPU ms/req: utime + stime of the gunicorn master and workers (/proc/<pid>/stat) per answered "
            "request; DB CPU ms/req: the same for the PostgreSQL backends of those workers",
            "- errors (non-2xx, socket errors, timeouts) summed over the rounds: "
            + ", ".join(f"{k} {v}" for k, v in errors.items()),
            f"- queue: {product_batch.rows:,} items queued by the product batch assembly, {len(reviewer_tokens)} "
            "city reviewers' tokens in turn; filing: a distinct new person per request (M03900, the clinic's "
            f"county hospital); coverage: {len(sample):,} (person, disease) pairs covering today, "
            f"answers checked on 200 of them: {', '.join(f'{k}: {v}' for k, v in sorted(answers.items()))}",
            f"- data: {counts['enrollment_person']:,} persons, {size:,} applications, "
            f"{counts['enrollment_auditentry']:,} audit rows (bench.generate); every row the run added is removed",
            f"- load average before / after: {', '.join(f'{v:.1f}' for v in load_before)} / "
            f"{', '.join(f'{v:.1f}' for v in load_after)} (a shared machine: other work was running)",
            *[f"- {fact}" for fact in common.machine_lines()],
            f"- measured {dt.date.today().isoformat()}",
        ]
    )
    print(text)
    if not args.no_docs:
        common.write_section(f"bench_http_paths_{args.label or f'{size // 1000}k'}", text)


if __name__ == "__main__":
    main()
