"""Real processes for the fault tests: Celery workers and a private redis-server, each owned by the test.

A test starts what it disturbs and stops it in a ``finally``: workers are killed by their own pid,
and a restarted Redis is always a private ``redis-server`` on a free port, never the shared one.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]
CELERY = Path(sys.executable).with_name("celery")


def database_url() -> str:
    """The committed test database, for worker processes (``django_db(transaction=True)`` tests)."""
    db = connection.settings_dict
    auth = quote(db["USER"] or "", safe="")
    if db.get("PASSWORD"):
        auth += ":" + quote(db["PASSWORD"], safe="")
    return f"postgres://{auth}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"


def tail(log: Path, size: int = 3000) -> str:
    return log.read_text(errors="replace")[-size:] if log.exists() else "(no log)"


def start_worker(
    log: Path,
    *,
    redis_url: str,
    queues: Sequence[str] = ("batch",),
    env: dict[str, str] | None = None,
    purge: bool = False,
) -> subprocess.Popen:
    """A real ``celery worker`` (solo pool) on ``redis_url`` against the test database; returns once ready."""
    environment = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "REDIS_URL": redis_url,
        "CELERY_TASK_ALWAYS_EAGER": "false",
        # Keep the worker's database connection between tasks (a new one per task costs ~40 ms here).
        "DB_CONN_MAX_AGE": "60",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")])),
        **(env or {}),
    }
    args = [str(CELERY), "-A", "config", "worker", "-Q", ",".join(queues), "--pool", "solo", "--loglevel", "INFO"]
    args += ["--without-gossip", "--without-mingle", "--without-heartbeat", "-n", f"fault-{uuid.uuid4().hex[:8]}@%h"]
    if purge:
        args.append("--purge")
    start = log.stat().st_size if log.exists() else 0
    with log.open("a") as out:
        process = subprocess.Popen(args, cwd=ROOT, env=environment, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while "ready." not in log.read_text(errors="replace")[start:]:
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"worker did not start:\n{tail(log)}")
        time.sleep(0.1)
    return process


def kill(process: subprocess.Popen) -> None:
    """SIGKILL by pid (no-op if it already ended) and reap it."""
    if process.poll() is None:
        os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


def stop(process: subprocess.Popen) -> None:
    """Warm shutdown (SIGTERM), SIGKILL if it does not end within 30 s."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            kill(process)


def wait_until(condition: Any, timeout: float, what: str, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}:\n{tail(log) if log else ''}")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class RedisServer:
    """A private ``redis-server`` on a free port, in its own directory, that the test may kill and restart.

    ``appendonly=True`` is the production set-up for the broker (AOF, ``appendfsync everysec``): queued
    messages survive a restart. ``appendonly=False`` with ``save ""`` keeps nothing, like a cache-style
    Redis: a restart empties every queue.
    """

    def __init__(self, directory: Path, *, appendonly: bool) -> None:
        self.directory = directory
        self.appendonly = appendonly
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        self.log = directory / "redis.log"
        directory.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed: the service pass needs it to restart a private Redis")
        args = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory)]
        args += ["--save", "", "--logfile", str(self.log), "--protected-mode", "yes"]
        args += ["--appendonly", "yes", "--appendfsync", "everysec"] if self.appendonly else ["--appendonly", "no"]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        wait_until(self.answers, 20, f"redis-server on port {self.port}", self.log)

    def answers(self) -> bool:
        import redis

        try:
            return bool(redis.Redis.from_url(self.url, socket_connect_timeout=0.5, socket_timeout=0.5).ping())
        except redis.RedisError:
            return False

    def kill(self) -> None:
        """SIGKILL: no shutdown save, no goodbye to clients (a crash, an OOM kill, a lost container)."""
        if self.process is not None:
            kill(self.process)
            self.process = None

    def queued(self, queue: str) -> int:
        import redis

        return int(redis.Redis.from_url(self.url).llen(queue))


@contextmanager
def redis_server(directory: Path, *, appendonly: bool) -> Iterator[RedisServer]:
    server = RedisServer(directory, appendonly=appendonly)
    server.start()
    try:
        yield server
    finally:
        server.kill()


@contextmanager
def broker(url: str) -> Iterator[None]:
    """Point this process's Celery app (``.delay()`` from services) at ``url``, then back."""
    from config.celery import app

    previous = app.conf.broker_url
    key = "CELERY_BROKER_URL"  # the app reads Django settings with the CELERY_ namespace: the key carries it

    def reset() -> None:
        # The app caches its connection and producer pools (kombu keeps one per broker URL): forget them,
        # so that the next publish picks the pool of the broker now configured.
        app._pool = None
        app.amqp._producer_pool = None

    reset()
    app.conf[key] = url
    assert app.conf.broker_write_url == url
    try:
        yield
    finally:
        reset()
        app.conf[key] = previous
