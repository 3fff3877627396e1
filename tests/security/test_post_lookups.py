"""ID numbers out of URLs and access logs (issue 18 item 10).

``GET /api/v1/persons/?id_number=…`` and ``GET /api/v1/coverage/?id_number=…`` put a person's number into the
URL, which every web server and proxy writes to its access log. The same look-ups are now POSTs with the number
in the body (same answers, same code path, same access-log rows); the GETs stay for old clients, marked
deprecated in the schema; and the access log the app ships (gunicorn with config/gunicorn.conf.py, and
runserver's ``django.server`` log) masks the query-string values of ``id_number`` / ``certno`` and anything
shaped like an ID number.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import logging
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.test import Client
from rest_framework.test import APIClient

from enrollment.models import PersonalDataAccess
from tests.enrollment.validity_helpers import enrol
from tests.factories import synthetic_id_number

ROOT = Path(django_settings.BASE_DIR)


def client_for(user: Any) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def same_answer(get: Any, post: Any) -> None:
    assert (post.status_code, post.json()) == (get.status_code, get.json())


# ---------------------------------------------------------------------------
# The POST look-ups answer as the GETs
# ---------------------------------------------------------------------------


def test_person_lookup_by_post_answers_as_the_get_and_is_access_logged(world):
    client = client_for(world.clerk)
    person = world.person()
    get = client.get("/api/v1/persons/", {"id_number": person.id_number, "reason": "filing"})
    post = client.post("/api/v1/persons/lookup/", {"id_number": person.id_number, "reason": "filing"}, format="json")
    assert post.status_code == 200 and post.json()["id_number"] == person.id_number
    same_answer(get, post)
    rows = PersonalDataAccess.objects.filter(person=person, purpose="person_lookup")
    assert [row.reason for row in rows] == ["filing", "filing"]


@pytest.mark.parametrize(
    "id_number",
    [synthetic_id_number(dt.date(1950, 7, 1), sex="2"), "110101199001011234", "12345", " "],
    ids=["not-registered", "bad-checksum", "too-short", "blank"],
)
def test_person_lookup_by_post_refuses_as_the_get(world, id_number):
    client = client_for(world.clerk)
    get = client.get("/api/v1/persons/", {"id_number": id_number})
    post = client.post("/api/v1/persons/lookup/", {"id_number": id_number}, format="json")
    assert post.status_code in (400, 404)
    if id_number.strip():
        same_answer(get, post)
    else:  # the GET's message names its query parameter; both are 400 about id_number
        assert get.status_code == post.status_code == 400 and "id_number" in str(post.json())


def test_person_lookup_by_post_needs_a_login(world):
    person = world.person()
    response = APIClient().post("/api/v1/persons/lookup/", {"id_number": person.id_number}, format="json")
    assert response.status_code in (401, 403)


def test_coverage_by_post_answers_as_the_get(world):
    enrollment = enrol(world, on=dt.date(2026, 3, 15))
    client = client_for(world.clerk)
    for query in (
        {"id_number": enrollment.person.id_number, "disease": "M03900", "date": "2027-01-10"},
        {"id_number": enrollment.person.id_number, "disease": "M03900", "date": "2026-03-14"},
        {"id_number": synthetic_id_number(), "disease": "M03900", "date": "2027-01-10"},
        {"id_number": enrollment.person.id_number, "disease": "M99999"},
        {"id_number": "110101199001011234", "disease": "M03900"},
        {"id_number": enrollment.person.id_number, "disease": "M03900", "date": "2027-13-01"},
    ):
        get = client.get("/api/v1/coverage/", query)
        post = client.post("/api/v1/coverage/", query, format="json")
        same_answer(get, post)
    covered = client.post(
        "/api/v1/coverage/",
        {"id_number": enrollment.person.id_number, "disease": "M03900", "date": "2027-01-10"},
        format="json",
    ).json()
    assert covered["covered"] is True and covered["enrollment"]["id"] == enrollment.pk
    assert covered["person"]["id_number"] == enrollment.person.masked_id_number


def test_the_schema_deprecates_the_gets_and_offers_the_posts(db):
    paths = Client().get("/api/schema/", HTTP_ACCEPT="application/json").json()["paths"]
    assert paths["/api/v1/persons/"]["get"]["deprecated"] is True
    assert paths["/api/v1/coverage/"]["get"]["deprecated"] is True
    assert "POST /api/v1/persons/lookup/" in paths["/api/v1/persons/"]["get"]["description"]
    assert not paths["/api/v1/persons/lookup/"]["post"].get("deprecated")
    assert not paths["/api/v1/coverage/"]["post"].get("deprecated")
    body = paths["/api/v1/coverage/"]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert body.endswith("/CoverageQueryRequest")


# ---------------------------------------------------------------------------
# The access logs the app ships
# ---------------------------------------------------------------------------


def load_gunicorn_config() -> Any:
    spec = importlib.util.spec_from_file_location("gunicorn_conf", ROOT / "config" / "gunicorn.conf.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def gunicorn_access_line(path: str, query: str, referer: str = "-") -> str:
    """The line gunicorn's access log writes for this request, through the shipped logger class."""
    from gunicorn.config import Config

    module = load_gunicorn_config()
    config = Config()
    config.set("accesslog", module.accesslog)
    config.set("logger_class", module.logger_class)
    logger = config.logger_class(config)
    environ = {
        "REQUEST_METHOD": "GET",
        "RAW_URI": f"{path}?{query}",
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "10.0.0.7",
        "HTTP_REFERER": referer,
        "HTTP_USER_AGENT": "clinic-client/1.0",
    }
    response = SimpleNamespace(status="200 OK", sent=512, headers=[])
    request = SimpleNamespace(headers=[("REFERER", referer)])
    atoms = logger.atoms(response, request, environ, dt.timedelta(milliseconds=12))
    # Every atom, also those a custom --access-logformat might use (%(U)s, %(q)s, %({referer}i)s …).
    return config.access_log_format % logger.atoms_wrapper_class(atoms) + " " + " ".join(map(str, atoms.values()))


def test_gunicorn_access_log_masks_id_numbers_in_query_strings():
    number = synthetic_id_number()
    legacy = "530124600517003"  # the old 15-digit form
    line = gunicorn_access_line(
        "/api/v1/coverage/",
        f"id_number={number}&disease=M03900&date=2027-01-10&other={legacy}",
        referer=f"https://enrol.example/api/docs/?certno={number[:10]}",
    )
    assert number not in line and number[:14] not in line and legacy not in line
    assert "id_number=***&disease=M03900&date=2027-01-10&other=***" in line
    assert "certno=***" in line


def test_gunicorn_masks_a_mistyped_or_encoded_number_too():
    line = gunicorn_access_line("/api/v1/persons/", "id_number=53012419600517003%58&reason=x")
    assert "53012419600517003" not in line and "id_number=***&reason=x" in line


def test_runserver_access_log_masks_id_numbers(caplog):
    """``make run`` serves with runserver, whose request lines go through the django.server logger's filter."""
    number = synthetic_id_number()
    with caplog.at_level(logging.INFO, logger="django.server"):
        logging.getLogger("django.server").warning(
            '"%s" %s %s', f"GET /api/v1/coverage/?id_number={number[:-1]}&disease=M03900 HTTP/1.1", "404", "58"
        )
    assert caplog.records
    for record in caplog.records:
        assert number[:-1] not in record.getMessage()
        assert "id_number=***&disease=M03900" in record.getMessage()


@pytest.mark.skipif(shutil.which("gunicorn", path=str(Path(sys.executable).parent)) is None, reason="no gunicorn")
def test_the_logged_line_of_a_real_gunicorn_holds_no_id_number(tmp_path):
    """End to end: gunicorn started with the shipped config, a GET look-up sent to it, its access log read."""
    number = synthetic_id_number()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = tmp_path / "access.log"
    args = [str(Path(sys.executable).parent / "gunicorn"), "-c", "config/gunicorn.conf.py", "config.wsgi:application"]
    args += ["--bind", f"127.0.0.1:{port}", "--workers", "1", "--access-logfile", str(log)]
    process = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}/api/v1/coverage/?id_number={number}&disease=M03900"
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(url, timeout=2)
            except urllib.error.HTTPError as refused:
                assert refused.code in (401, 403)  # no login: the request is logged all the same
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("gunicorn did not start")
                time.sleep(0.2)
        deadline = time.monotonic() + 10
        while "coverage" not in (log.read_text() if log.exists() else "") and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        process.terminate()
        process.wait(timeout=10)
    lines = [line for line in log.read_text().splitlines() if "/api/v1/coverage/" in line]
    assert lines, log.read_text()
    assert all(number not in line and "id_number=***&disease=M03900" in line for line in lines), lines
