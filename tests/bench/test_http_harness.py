"""The pieces of the wrk harness (bench/http_paths.py, bench/wrk/): request files, wrk's summary line,
CPU readings, medians and ratios, the targets. Pure Python and no database; the one test that runs wrk
against a local server needs Debian's wrk (``make bench-tools``) and says so when it is missing."""

from __future__ import annotations

import http.server
import json
import os
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

from bench import http_paths
from enrollment.idnumbers import parse_id_number

WRK_OUTPUT = """Running 2s test @ http://127.0.0.1:8761
  1 threads and 8 connections
Requests/sec:    908.67
BENCH_JSON {"requests": 1800, "duration_us": 2000000, "bytes": 1, "connect_errors": 0, "read_errors": 1, \
"write_errors": 0, "status_errors": 4, "timeouts": 2, "p50_us": 1534, "p95_us": 7691, "p99_us": 10598, \
"mean_us": 2568.0, "max_us": 18130}
"""


def test_the_summary_line_of_the_wrk_scripts_is_read_in_requests_per_second_and_milliseconds() -> None:
    result = http_paths.parse_wrk_output(WRK_OUTPUT)
    assert result["requests"] == 1800
    assert result["rps"] == pytest.approx(900.0)
    assert (result["p50"], result["p95"], result["p99"]) == pytest.approx((1.534, 7.691, 10.598))
    assert result["errors"] == 7 and result["status_errors"] == 4
    with pytest.raises(ValueError, match="BENCH_JSON"):
        http_paths.parse_wrk_output("Requests/sec: 908.67\n")


def test_a_request_line_carries_method_path_token_and_a_compact_json_body() -> None:
    line = http_paths.request_line("POST", "/api/v1/coverage/", "abc", {"id_number": "x", "disease": "M03900"})
    method, path, token, body = line.split("\t")
    assert (method, path, token) == ("POST", "/api/v1/coverage/", "abc")
    assert json.loads(body) == {"id_number": "x", "disease": "M03900"}
    assert http_paths.request_line("GET", "/api/v1/queue/?limit=50", "t") == "GET\t/api/v1/queue/?limit=50\tt"
    # JSON escapes a tab inside the body; a raw one in the path or token would split the line.
    assert "\t" not in http_paths.request_line("POST", "/x/", "t", {"name": "a\tb"}).split("\t", 3)[3]
    with pytest.raises(ValueError):
        http_paths.request_line("GET", "/x/", "t\tu")


def _rounds(product_rps: list[float], baseline_rps: list[float]) -> list[dict]:
    return [
        {
            "coverage": {
                "product": {"rps": p, "p50": 10.0, "p95": 20.0, "p99": 30.0 + i, "server_cpu_ms": 8.0, "db_cpu_ms": 1},
                "baseline": {"rps": b, "p50": 5.0, "p95": 9.0, "p99": 20.0, "server_cpu_ms": 3.0, "db_cpu_ms": 0.5},
            }
        }
        for i, (p, b) in enumerate(zip(product_rps, baseline_rps, strict=True))
    ]


def test_the_ratio_is_the_median_of_the_per_round_ratios_not_the_ratio_of_medians() -> None:
    # Round 2 ran on a busy machine: both sides slow. Per-round ratios 0.5, 0.6, 0.4 → median 0.5.
    summary = http_paths.summarise(_rounds([50, 12, 40], [100, 20, 100]))["coverage"]
    assert summary["ratios"] == pytest.approx([0.5, 0.6, 0.4])
    assert summary["ratio"] == pytest.approx(0.5)
    assert summary["product"]["rps"] == 40 and summary["baseline"]["rps"] == 100
    assert summary["p99_ratio"] == pytest.approx(31 / 20)
    assert summary["product"]["server_cpu_ms"] == 8.0


def test_the_coverage_target_needs_the_rate_and_the_p99() -> None:
    coverage = next(p for p in http_paths.PATHS if p.name == "coverage")
    queue = next(p for p in http_paths.PATHS if p.name == "queue")
    good = http_paths.summarise(_rounds([60, 60, 60], [100, 100, 100]))["coverage"]
    assert http_paths.verdict(coverage, good)[0]
    assert not http_paths.verdict(queue, good)[0]  # the queue page needs 0.8×
    slow_tail = {**good, "p99_ratio": 2.5}
    assert not http_paths.verdict(coverage, slow_tail)[0]
    lines = http_paths.report({"coverage": good}, 3)
    assert any("**0.60×**" in line and "**yes**" in line for line in lines)


def test_cpu_time_is_read_from_proc_stat_for_a_process_tree(tmp_path: Path) -> None:
    tick = os.sysconf("SC_CLK_TCK")
    for pid, children, utime, stime in ((10, "11 12", 100, 50), (11, "", 30, 20), (12, "", 0, 0)):
        task = tmp_path / str(pid) / "task" / str(pid)
        task.mkdir(parents=True)
        (task / "children").write_text(children)
        fields = ["S"] + ["0"] * 10 + [str(utime), str(stime)] + ["0"] * 5
        (tmp_path / str(pid) / "stat").write_text(f"{pid} (gunicorn: worker [a b]) " + " ".join(fields))
    assert sorted(http_paths.process_tree(10, proc=tmp_path)) == [10, 11, 12]
    assert http_paths.cpu_seconds_of([10, 11, 12, 99], proc=tmp_path) == pytest.approx(200 / tick)
    # Per process: a worker that started between the readings counts from zero, one that ended is gone.
    assert http_paths.cpu_delta({1: 5.0, 2: 3.0}, {1: 6.5, 3: 0.25}) == pytest.approx(1.75)
    # Our own process, for real: the reading grows with work done.
    before = http_paths.cpu_seconds_of([os.getpid()])
    sum(i * i for i in range(2_000_000))
    assert http_paths.cpu_seconds_of([os.getpid()]) > before


def test_the_lua_scripts_share_one_reader_and_the_filing_script_never_repeats_a_line() -> None:
    for name in ("queue.lua", "filing.lua", "coverage.lua"):
        text = (http_paths.WRK_DIR / name).read_text(encoding="utf-8")
        assert 'dofile(dir .. "common.lua")' in text
    assert "install(true)" in (http_paths.WRK_DIR / "filing.lua").read_text(encoding="utf-8")
    common = (http_paths.WRK_DIR / "common.lua").read_text(encoding="utf-8")
    assert "BENCH_JSON" in common and "latency:percentile(99)" in common
    assert {p.script for p in http_paths.PATHS} == {"queue.lua", "filing.lua", "coverage.lua"}


def test_filing_numbers_are_distinct_valid_id_numbers() -> None:
    # The same formula bench.http_paths.filing_persons uses, over 3 rounds' worth.
    import datetime as dt

    from enrollment.idnumbers import make_id_number

    birth = dt.date(1925, 1, 1)
    numbers = [make_id_number("530124", birth + dt.timedelta(days=n // 500), (n % 500) * 2 + 1) for n in range(20_000)]
    assert len(set(numbers)) == len(numbers)
    assert all(parse_id_number(number).number == number for number in numbers[::997])


class _Echo(http.server.BaseHTTPRequestHandler):
    seen: list[tuple[str, str, str, str]] = []

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        _Echo.seen.append((self.command, self.path, self.headers.get("Authorization", ""), body))
        status = 201 if self.command == "POST" else 200
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    do_GET = do_POST = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed (`make bench-tools` installs it)")
def test_wrk_runs_the_filing_script_with_token_headers_and_distinct_bodies(tmp_path: Path) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Echo.seen = []
    lines = [
        http_paths.request_line("POST", "/api/v1/applications/", "tok", {"id_number": f"N{n}"}) for n in range(5000)
    ]
    try:
        result = http_paths.run_wrk(
            wrk=shutil.which("wrk"),
            pin=[],
            port=server.server_address[1],
            script="filing.lua",
            lines=lines,
            seconds=1,
            workdir=tmp_path,
        )
    finally:
        server.shutdown()
    assert result["requests"] > 0 and result["errors"] == 0
    assert all(method == "POST" and auth == "Token tok" for method, _p, auth, _b in _Echo.seen)
    bodies = [json.loads(body)["id_number"] for *_x, body in _Echo.seen]
    assert len(bodies) == len(set(bodies))  # never the same 身份证号 twice while lines remain
    assert subprocess.run(["wrk", "--version"], capture_output=True, check=False).stdout is not None
