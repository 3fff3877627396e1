"""Outbound notifications: pluggable SMS backends and the Chinese texts of expiry reminders (到期提醒).

``settings.SMS_BACKEND`` names the backend class, like Django's ``EMAIL_BACKEND``:

- ``enrollment.notifications.LogSMSBackend`` (default): logs that a message went to a masked number;
  the text itself names a diagnosis and never goes to the log;
- ``enrollment.notifications.ConsoleSMSBackend``: prints the whole message (development only);
- ``enrollment.notifications.LocmemSMSBackend``: keeps messages in ``LocmemSMSBackend.outbox`` (tests);
- ``enrollment.notifications.HttpGatewaySMSBackend``: POSTs JSON to ``SMS_GATEWAY_URL``.

A backend's ``send`` returns on delivery to the gateway and raises :class:`DeliveryError` otherwise.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass

from django.conf import settings
from django.utils.module_loading import import_string

logger = logging.getLogger(__name__)


class DeliveryError(Exception):
    """The message was not accepted; the caller may retry later."""


@dataclass(frozen=True)
class SMSMessage:
    to: str
    text: str
    reference: str  # stable per reminder, so that a gateway that deduplicates can do so


def mask_phone(phone: str) -> str:
    digits = phone.strip()
    if len(digits) < 7:
        return "*" * len(digits)
    return digits[:3] + "*" * (len(digits) - 7) + digits[-4:]


class BaseSMSBackend:
    def send(self, message: SMSMessage) -> None:
        raise NotImplementedError


class LogSMSBackend(BaseSMSBackend):
    def send(self, message: SMSMessage) -> None:
        logger.info("SMS %s to %s (%d characters)", message.reference, mask_phone(message.to), len(message.text))


class ConsoleSMSBackend(BaseSMSBackend):
    def send(self, message: SMSMessage) -> None:
        sys.stdout.write(f"--- SMS {message.reference} to {message.to}\n{message.text}\n")
        sys.stdout.flush()


class LocmemSMSBackend(BaseSMSBackend):
    outbox: list[SMSMessage] = []
    _lock = threading.Lock()

    def send(self, message: SMSMessage) -> None:
        with self._lock:
            LocmemSMSBackend.outbox.append(message)


class HttpGatewaySMSBackend(BaseSMSBackend):
    """POST ``{"to", "text", "reference"}`` as JSON, with ``Authorization: Bearer <SMS_GATEWAY_TOKEN>``.

    Any 2xx answer is delivery to the gateway; anything else (status, timeout, refused connection)
    raises :class:`DeliveryError` so that the send is retried with back-off.
    """

    def __init__(self, url: str | None = None, token: str | None = None, timeout: float | None = None) -> None:
        self.url = url if url is not None else settings.SMS_GATEWAY_URL
        self.token = token if token is not None else settings.SMS_GATEWAY_TOKEN
        self.timeout = timeout if timeout is not None else settings.SMS_GATEWAY_TIMEOUT
        if not self.url:
            raise DeliveryError("SMS_GATEWAY_URL is not set")

    def send(self, message: SMSMessage) -> None:
        body = json.dumps({"to": message.to, "text": message.text, "reference": message.reference}).encode()
        headers = {"Content-Type": "application/json; charset=utf-8", "Idempotency-Key": message.reference}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310 - URL from settings
                status = response.status
        except urllib.error.HTTPError as exc:
            raise DeliveryError(f"SMS gateway answered HTTP {exc.code}")
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise DeliveryError(f"SMS gateway unreachable: {type(exc).__name__}")
        if not 200 <= status < 300:
            raise DeliveryError(f"SMS gateway answered HTTP {status}")


def get_sms_backend() -> BaseSMSBackend:
    return import_string(settings.SMS_BACKEND)()


# ---------------------------------------------------------------------------
# Reminder texts. Written in Chinese as data: they go to patients by SMS, whatever the staff's UI language.
# ---------------------------------------------------------------------------


def chinese_date(day: dt.date) -> str:
    return f"{day.year}年{day.month}月{day.day}日"


def _days_phrase(days_left: int) -> str:
    if days_left > 0:
        return f"还有{days_left}天到期"
    if days_left == 0:
        return "今天到期"
    return "已经到期"


def sms_text(*, disease_name: str, valid_until: dt.date, clinic_name: str, days_left: int) -> str:
    """The patient's SMS: the disease, the end date, what to do, and what happens if nothing is done."""
    return (
        f"【医保门诊慢特病】尊敬的参保人：您的“{disease_name}”门诊慢特病待遇有效期至"
        f"{chinese_date(valid_until)}，{_days_phrase(days_left)}。"
        f"请携带身份证和近期诊断证明、检查报告到{clinic_name}或其他定点医疗机构申请复审（续期），"
        f"复审期间待遇照常享受；到期未申请复审的，待遇将停止。"
    )


def clinic_subject(*, disease_name: str, masked_id_number: str, valid_until: dt.date) -> str:
    return f"门诊慢特病到期提醒：{masked_id_number} {disease_name}将于{chinese_date(valid_until)}到期"


def clinic_text(
    *,
    application_id: int,
    person_name: str,
    masked_id_number: str,
    disease_name: str,
    valid_until: dt.date,
    days_left: int,
) -> str:
    return (
        f"贵机构申报的门诊慢特病备案即将到期：\n"
        f"参保人：{person_name}（{masked_id_number}）\n"
        f"病种：{disease_name}\n"
        f"有效期至：{chinese_date(valid_until)}（{_days_phrase(days_left)}）\n"
        f"备案编号：{application_id}\n\n"
        f"请联系参保人，由医师重新确认诊断后在系统中提交复审（续期）申请。"
        f"复审获批后，新的有效期从原有效期结束的次日起算，不会出现待遇中断。"
    )
