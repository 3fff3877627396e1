"""A Celery worker killed with SIGKILL while its 2503 is at the platform: exactly one filing after restart.

The test owns what it disturbs: the simulator (a thread here, with latency so that the kill lands while the
request is at the platform) and the workers (real ``celery worker`` processes on the real Redis broker against
the committed test database). The platform does the work of the request whose sender died; the next worker
sends the row again with the SAME msgid once it is stale, and the platform answers that msgid with the same
serial.
"""

from __future__ import annotations

import time

import pytest
from django.conf import settings as django_settings

from nhsa import tasks
from nhsa.models import MessageKind, MessageState, PlatformFiling, PlatformMessage
from tests.nhsa import outbox_helpers
from tests.nhsa.outbox_helpers import approved, looked_up
from tests.reliability.processes import kill, start_worker, stop, wait_until

platform = outbox_helpers.platform  # the simulator fixture

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_worker_killed_mid_send_leaves_exactly_one_filing(world, platform, settings, tmp_path):
    settings.PLATFORM_TIMEOUT = 30
    settings.PLATFORM_SENDING_STALE_SECONDS = 2
    log = tmp_path / "worker.log"
    env = {
        "PLATFORM_URL": settings.PLATFORM_URL,
        "PLATFORM_FIXMEDINS_CODE": settings.PLATFORM_FIXMEDINS_CODE,
        "PLATFORM_INSU_ADMDVS": settings.PLATFORM_INSU_ADMDVS,
        "PLATFORM_TIMEOUT": "30",
        "PLATFORM_SENDING_STALE_SECONDS": "2",
    }

    def worker(purge: bool = False):
        return start_worker(log, redis_url=django_settings.REDIS_URL, queues=("default",), env=env, purge=purge)

    person = world.person()
    looked_up(platform, person)  # 1101 done before: the kill lands on the 2503
    platform.control(latency_ms=4000)
    first = worker(purge=True)
    try:
        application = approved(world, person)  # commits: the deliver task goes to the worker
        message = PlatformMessage.objects.get(application=application, kind=MessageKind.FILE)
        wait_until(lambda: platform.received("2503"), 60, "the 2503 to reach the platform", log)
        message.refresh_from_db()
        assert message.state == MessageState.SENDING and message.transmitted
    finally:
        kill(first)
    # The platform finishes the work of the dead sender's request.
    wait_until(lambda: len(platform.filings()) == 1, 10, "the platform to file it")
    platform.control(latency_ms=0)
    message.refresh_from_db()
    assert message.state == MessageState.SENDING  # nobody wrote an outcome
    second = worker()
    try:
        time.sleep(2.5)  # stale now: beat's deliver_due hands it over again
        assert tasks.deliver_due() == 1

        def sent() -> bool:
            message.refresh_from_db()
            return message.state == MessageState.SENT

        wait_until(sent, 60, "the re-sent message to be answered", log)
    finally:
        stop(second)
    filings = platform.filings()
    assert len(filings) == 1
    assert PlatformFiling.objects.get(application=application).trt_dcla_detl_sn == filings[0]["trt_dcla_detl_sn"]
    assert {item["msgid"] for item in platform.received("2503")} == {message.msgid}
    assert len(platform.received("2503")) == 2 and message.attempts == 2
