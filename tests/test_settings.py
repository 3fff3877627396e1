"""Settings come from the environment; production refuses insecure defaults."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_check(**env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "DJANGO_ENV", "DEBUG", "ALLOWED_HOSTS"}}
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_production_refuses_to_start_without_secret_key():
    result = run_check(DJANGO_ENV="production", ALLOWED_HOSTS="example.org")
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_production_refuses_the_development_key():
    result = run_check(DJANGO_ENV="production", SECRET_KEY="django-insecure-" + "x" * 60)
    assert result.returncode != 0 and "SECRET_KEY" in result.stderr


def test_production_starts_with_a_real_key():
    result = run_check(DJANGO_ENV="production", SECRET_KEY="k" * 30 + "Zq9!" * 10, ALLOWED_HOSTS="example.org")
    assert result.returncode == 0, result.stderr


def test_bad_boolean_is_a_clear_error():
    result = run_check(DEBUG="maybe")
    assert result.returncode != 0 and "DEBUG must be a boolean" in result.stderr


def test_time_zone_and_languages(settings):
    assert settings.TIME_ZONE == "Asia/Shanghai" and settings.USE_TZ
    assert settings.LANGUAGE_CODE == "zh-hans"
    assert "en" in dict(settings.LANGUAGES)


def test_embedded_broker_without_redis_url():
    code = "from django.conf import settings; print(settings.CELERY_BROKER_URL)"
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import django,os;os.environ.setdefault('DJANGO_SETTINGS_MODULE','config.settings');django.setup();{code}",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.stdout.strip() == "filesystem://localhost/", result.stderr


# What a worker's and beat's start-up banners and every queued task do with the broker connection.
BROKER_CONNECTIONS = """
import logging, os
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
import django
django.setup()
from config.celery import app

messages = []
handler = logging.Handler()
handler.emit = lambda record: messages.append(record.getMessage())
logging.getLogger().addHandler(handler)
logging.getLogger().setLevel(logging.DEBUG)

def connect():
    for connection in (app.connection_for_write(), app.connection_for_read()):
        connection.as_uri()
        connection.clone().as_uri()
    return sum("No hostname was supplied" in message for message in messages)

print(connect())
# The form kombu warns about, to show that the check would see the warning.
app.conf.update(broker_url="filesystem://", broker_read_url="filesystem://", broker_write_url="filesystem://")
print(connect())
"""


def test_embedded_broker_connections_log_no_hostname_warning():
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    result = subprocess.run(
        [sys.executable, "-c", BROKER_CONNECTIONS], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    ours, without_host = (int(line) for line in result.stdout.split())
    assert ours == 0
    assert without_host > 0
