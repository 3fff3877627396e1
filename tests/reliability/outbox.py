"""Durable outboxes for the fault tests: every SMS and e-mail a worker process sends is appended to a file.

Workers run in their own processes and some are killed with SIGKILL, so an in-memory outbox
(``LocmemSMSBackend``, Django's locmem e-mail backend) cannot count sends across them. These backends
append one JSON line per message under ``RELIABILITY_OUTBOX_DIR`` with ``O_APPEND`` under an exclusive
``flock`` before ``send`` returns: a message counts as sent exactly when a gateway would have accepted it,
and the line is in the kernel's hands, so it survives the sender's SIGKILL a microsecond later (no
``fsync``: the tests kill processes, not the machine).

Worker environment: ``SMS_BACKEND=tests.reliability.outbox.FileSMSBackend``,
``EMAIL_BACKEND=tests.reliability.outbox.FileEmailBackend``, ``RELIABILITY_OUTBOX_DIR=<dir>``.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from django.core.mail.backends.base import BaseEmailBackend
from django.core.mail.message import EmailMessage

from enrollment.notifications import BaseSMSBackend, SMSMessage

SMS_FILE = "sms.jsonl"
EMAIL_FILE = "email.jsonl"
# The clinic e-mail names the enrollment: "备案编号：<application id>" (enrollment.notifications.clinic_text).
APPLICATION_IN_EMAIL = re.compile(r"备案编号：(\d+)")


def _append(name: str, record: dict[str, Any]) -> None:
    path = Path(os.environ["RELIABILITY_OUTBOX_DIR"]) / name
    line = (json.dumps(record, ensure_ascii=False) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, line)
    finally:
        os.close(fd)  # closing releases the lock


class FileSMSBackend(BaseSMSBackend):
    def send(self, message: SMSMessage) -> None:
        _append(SMS_FILE, {"reference": message.reference, "to": message.to, "pid": os.getpid()})


class FileEmailBackend(BaseEmailBackend):
    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        for message in email_messages:
            found = APPLICATION_IN_EMAIL.search(message.body)
            _append(
                EMAIL_FILE,
                {"application": int(found.group(1)) if found else None, "to": message.to, "pid": os.getpid()},
            )
        return len(email_messages)


def worker_env(directory: Path) -> dict[str, str]:
    return {
        "SMS_BACKEND": "tests.reliability.outbox.FileSMSBackend",
        "EMAIL_BACKEND": "tests.reliability.outbox.FileEmailBackend",
        "RELIABILITY_OUTBOX_DIR": str(directory),
    }


def _read(directory: Path, name: str) -> list[dict[str, Any]]:
    path = directory / name
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def sms_sends(directory: Path) -> Counter[int]:
    """How many times each reminder id went out by SMS (reference ``reminder-<id>``)."""
    return Counter(int(record["reference"].removeprefix("reminder-")) for record in _read(directory, SMS_FILE))


def email_sends(directory: Path) -> Counter[int]:
    """How many clinic e-mails went out per application id."""
    return Counter(record["application"] for record in _read(directory, EMAIL_FILE))
