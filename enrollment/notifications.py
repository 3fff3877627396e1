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
from enum import Enum

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


class Slot(Enum):
    """A per-reminder value in a text template, filled from Python values (``render``) or from SQL
    expressions (``render_sql``, the sweep's ``INSERT … SELECT``): the wording is defined once."""

    DISEASE = "disease_name"
    CLINIC = "clinic_name"
    PERSON = "person_name"
    MASKED_ID = "masked_id_number"
    APPLICATION = "application_id"
    VALID_UNTIL = "valid_until"  # as chinese_date()
    DAYS_PHRASE = "days_phrase"  # as _days_phrase()


Template = tuple["str | Slot", ...]

# The patient's SMS: the disease, the end date, what to do, and what happens if nothing is done.
SMS_TEXT: Template = (
    "【医保门诊慢特病】尊敬的参保人：您的“",
    Slot.DISEASE,
    "”门诊慢特病待遇有效期至",
    Slot.VALID_UNTIL,
    "，",
    Slot.DAYS_PHRASE,
    "。请携带身份证和近期诊断证明、检查报告到",
    Slot.CLINIC,
    "或其他定点医疗机构申请复审（续期），复审期间待遇照常享受；到期未申请复审的，待遇将停止。",
)
CLINIC_SUBJECT: Template = ("门诊慢特病到期提醒：", Slot.MASKED_ID, " ", Slot.DISEASE, "将于", Slot.VALID_UNTIL, "到期")
CLINIC_TEXT: Template = (
    "贵机构申报的门诊慢特病备案即将到期：\n参保人：",
    Slot.PERSON,
    "（",
    Slot.MASKED_ID,
    "）\n病种：",
    Slot.DISEASE,
    "\n有效期至：",
    Slot.VALID_UNTIL,
    "（",
    Slot.DAYS_PHRASE,
    "）\n备案编号：",
    Slot.APPLICATION,
    "\n\n请联系参保人，由医师重新确认诊断后在系统中提交复审（续期）申请。"
    "复审获批后，新的有效期从原有效期结束的次日起算，不会出现待遇中断。",
)


# 两病 medication coverage is its own benefit: its reminder names it and never asks for a 门慢 复审.
TWO_DISEASES_SMS_TEXT: Template = (
    "【医保两病用药保障】尊敬的参保人：您的“",
    Slot.DISEASE,
    "”两病（高血压、糖尿病）门诊用药保障有效期至",
    Slot.VALID_UNTIL,
    "，",
    Slot.DAYS_PHRASE,
    "。如需继续享受，请到",
    Slot.CLINIC,
    "或村卫生室、乡镇卫生院确认用药需求。",
)
TWO_DISEASES_CLINIC_SUBJECT: Template = (
    "两病用药保障到期提醒：",
    Slot.MASKED_ID,
    " ",
    Slot.DISEASE,
    "将于",
    Slot.VALID_UNTIL,
    "到期",
)
TWO_DISEASES_CLINIC_TEXT: Template = (
    "贵机构经办的两病门诊用药保障即将到期：\n参保人：",
    Slot.PERSON,
    "（",
    Slot.MASKED_ID,
    "）\n病种：",
    Slot.DISEASE,
    "\n有效期至：",
    Slot.VALID_UNTIL,
    "（",
    Slot.DAYS_PHRASE,
    "）\n编号：",
    Slot.APPLICATION,
    "\n\n这是两病用药保障，不是门诊慢特病待遇，无需申请门诊慢特病复审。",
)
REMINDER_TEMPLATES: dict[str, tuple[Template, Template, Template]] = {
    "outpatient": (SMS_TEXT, CLINIC_SUBJECT, CLINIC_TEXT),
    "two_diseases": (TWO_DISEASES_SMS_TEXT, TWO_DISEASES_CLINIC_SUBJECT, TWO_DISEASES_CLINIC_TEXT),
}

# The clinic's notice before an undiagnosed renewal is withdrawn by the sweep.
RENEWAL_DIAGNOSIS_SUBJECT = "复审申请待录入诊断：{masked_id} {disease}，将于{withdraw_on}自动撤回"
RENEWAL_DIAGNOSIS_TEXT = (
    "贵机构提交的门诊慢特病复审申请（编号{application}，参保人{person}，{masked_id}，病种{disease}）"
    "自{filed_on}提交以来尚未由医师录入复审诊断。\n"
    "如{withdraw_on}前仍未录入，系统将自动撤回该复审申请；原备案的临时待遇最长保留至{provisional_until}。"
)


def render(template: Template, values: dict[Slot, str]) -> str:
    return "".join(values[part] if isinstance(part, Slot) else part for part in template)


def render_sql(template: Template, expressions: dict[Slot, str]) -> tuple[str, list[str]]:
    """The template as one SQL string expression (``||`` works on PostgreSQL and SQLite alike);
    the literal text goes in as parameters."""
    sql: list[str] = []
    params: list[str] = []
    for part in template:
        if isinstance(part, Slot):
            sql.append(f"({expressions[part]})")
        else:
            sql.append("%s")
            params.append(part)
    return " || ".join(sql), params


def sms_text(*, disease_name: str, valid_until: dt.date, clinic_name: str, days_left: int) -> str:
    return render(
        SMS_TEXT,
        {
            Slot.DISEASE: disease_name,
            Slot.VALID_UNTIL: chinese_date(valid_until),
            Slot.DAYS_PHRASE: _days_phrase(days_left),
            Slot.CLINIC: clinic_name,
        },
    )


def clinic_subject(*, disease_name: str, masked_id_number: str, valid_until: dt.date) -> str:
    return render(
        CLINIC_SUBJECT,
        {Slot.DISEASE: disease_name, Slot.MASKED_ID: masked_id_number, Slot.VALID_UNTIL: chinese_date(valid_until)},
    )


def clinic_text(
    *,
    application_id: int,
    person_name: str,
    masked_id_number: str,
    disease_name: str,
    valid_until: dt.date,
    days_left: int,
) -> str:
    return render(
        CLINIC_TEXT,
        {
            Slot.PERSON: person_name,
            Slot.MASKED_ID: masked_id_number,
            Slot.DISEASE: disease_name,
            Slot.VALID_UNTIL: chinese_date(valid_until),
            Slot.DAYS_PHRASE: _days_phrase(days_left),
            Slot.APPLICATION: str(application_id),
        },
    )
