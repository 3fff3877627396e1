"""The national platform's HTTP client (docs/platform.md), driven by the PLATFORM_* settings.

``PlatformClient.call`` sends one message and either returns the platform's ``Answer`` (success, a refusal,
or "already done") or raises ``PlatformUnavailable`` when there is no answer to act on: timeout, connection
refused, an HTTP status other than 200, an answer that is not JSON, not signed by the platform or does not
decrypt. The caller retries those with the SAME msgid, so the platform can recognise a repeat.

Stdlib urllib, no HTTP proxy (the platform sits on the medical-insurance private network).
"""

from __future__ import annotations

import http.client
import itertools
import json
import logging
import secrets
import socket
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from nhsa import envelope
from nhsa.envelope import LONG_TERM_ENDDATE, Answer, PlatformConfig

__all__ = [
    "LONG_TERM_ENDDATE",
    "Answer",
    "PlatformClient",
    "PlatformNotConfigured",
    "PlatformUnavailable",
    "forget_sign_in",
    "platform_enabled",
]

logger = logging.getLogger(__name__)

MAX_ANSWER_BYTES = 10 * 1024 * 1024


class PlatformUnavailable(Exception):
    """No usable answer (timeout, refused connection, HTTP error, unreadable or unsigned answer): retry later.

    Whether the platform acted on the message is unknown; send it again with the same msgid.
    """

    def __init__(self, message: str, *, infno: str = "", msgid: str = "", status: int | None = None) -> None:
        super().__init__(message)
        self.infno = infno
        self.msgid = msgid
        self.status = status


class PlatformNotConfigured(ImproperlyConfigured):
    """PLATFORM_URL is empty or the PLATFORM_* settings do not make a usable configuration."""


def platform_enabled() -> bool:
    """The loop is on when PLATFORM_URL is set; with it empty nothing is queued or sent."""
    return bool(getattr(settings, "PLATFORM_URL", ""))


# Sign-in numbers (9001), one per platform, sender and operator, kept for the day (Asia/Shanghai) per process.
_sign_ins: dict[tuple[str, str, str], tuple[str, str]] = {}
_sign_in_lock = threading.Lock()
# Sequence numbers of the msgids the client makes itself (1101, 5301, 9001): a random start per process makes
# two processes unlikely to make the same msgid within a second. Writes use the outbox's stored msgid.
_sequence = itertools.count(secrets.randbelow(10000))
_sequence_lock = threading.Lock()


def forget_sign_in() -> None:
    """Drop every kept sign-in number (the next call signs in again)."""
    with _sign_in_lock:
        _sign_ins.clear()


def _local_address() -> tuple[str, str]:
    node = uuid.getnode()
    mac = "-".join(f"{(node >> shift) & 0xFF:02X}" for shift in range(40, -1, -8))
    try:
        ip = socket.gethostbyname(socket.gethostname())
    except OSError:
        ip = "127.0.0.1"
    return mac, ip


class PlatformClient:
    def __init__(self, config: PlatformConfig | None = None) -> None:
        self.config = config or PlatformConfig.from_settings(settings)
        problems = self.config.problems()
        if problems:
            raise PlatformNotConfigured("; ".join(problems))
        self._crypto = envelope.client_crypto(self.config)
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        self._sign_key = (self.config.url, self.config.fixmedins_code, self.config.opter)

    # -- message ids ---------------------------------------------------------------------------------

    def new_msgid(self) -> str:
        with _sequence_lock:
            sequence = next(_sequence)
        return envelope.new_msgid(self.config.fixmedins_code, envelope.platform_time(), sequence)

    # -- the one call ---------------------------------------------------------------------------------

    def call(self, infno: str, input: Mapping[str, Any], *, msgid: str) -> Answer:  # noqa: A002
        """Send one message; signs in first when PLATFORM_SIGNIN_REQUIRED and none is kept for today."""
        if not self.config.signin_required or infno == envelope.SIGN_IN:
            return self._send(infno, input, msgid=msgid)
        answer = self._send(infno, input, msgid=msgid, sign_no=self._sign_no())
        if envelope.needs_sign_in(answer):
            # The platform no longer knows our number (restarted, or it expired early): sign in once more and send
            # the same message again. A refused sign-in number means the message was not acted on.
            self._forget_sign_no()
            answer = self._send(infno, input, msgid=msgid, sign_no=self._sign_no())
        return answer

    def _send(self, infno: str, input: Mapping[str, Any], *, msgid: str, sign_no: str = "") -> Answer:  # noqa: A002
        request = envelope.build_request(infno, input, msgid, self.config, sign_no=sign_no)
        body = json.dumps(envelope.seal(request, "input", self._crypto), ensure_ascii=False).encode("utf-8")
        http_request = urllib.request.Request(
            self.config.url,
            data=body,
            method="POST",
            headers={"Content-Type": "application/json;charset=utf-8", "Accept": "application/json"},
        )
        started = time.monotonic()

        def unavailable(reason: str, status: int | None = None) -> PlatformUnavailable:
            elapsed = (time.monotonic() - started) * 1000
            logger.warning("platform %s %s unavailable after %.0f ms: %s", infno, msgid, elapsed, reason)
            return PlatformUnavailable(reason, infno=infno, msgid=msgid, status=status)

        try:
            with self._opener.open(http_request, timeout=self.config.timeout) as response:
                status = response.status
                raw = response.read(MAX_ANSWER_BYTES + 1)
        except urllib.error.HTTPError as exc:
            exc.close()
            raise unavailable(f"HTTP {exc.code} from the platform", exc.code)
        except TimeoutError:
            raise unavailable(f"no answer within {self.config.timeout:g} s")
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, TimeoutError):
                raise unavailable(f"no answer within {self.config.timeout:g} s")
            raise unavailable(f"cannot reach the platform: {exc.reason}")
        except (OSError, http.client.HTTPException) as exc:
            raise unavailable(f"connection failed: {exc.__class__.__name__}: {exc}")
        if status != 200:
            raise unavailable(f"HTTP {status} from the platform", status)
        if len(raw) > MAX_ANSWER_BYTES:
            raise unavailable("the answer is too large")
        try:
            document = json.loads(raw.decode("utf-8"))
            answer = envelope.parse_answer(envelope.unseal(document, "output", self._crypto), infno=infno, msgid=msgid)
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise unavailable("the answer is not JSON")
        except envelope.EnvelopeError as exc:
            raise unavailable(f"unusable answer: {exc}")
        logger.info(
            "platform %s %s: infcode %s%s (%.0f ms)",
            infno,
            msgid,
            answer.code,
            " (already done)" if answer.already_done else "",
            (time.monotonic() - started) * 1000,
        )
        return answer

    # -- sign-in (9001) ---------------------------------------------------------------------------------

    def sign_in(self) -> Answer:
        """9001: a new sign-in number, kept for today when the platform gives one."""
        mac, ip = _local_address()
        answer = self._send(
            envelope.SIGN_IN, {"signIn": {"opter_no": self.config.opter, "mac": mac, "ip": ip}}, msgid=self.new_msgid()
        )
        sign_no = str((answer.output.get("signinoutb") or {}).get("sign_no") or "") if answer.ok else ""
        if sign_no:
            with _sign_in_lock:
                _sign_ins[self._sign_key] = (envelope.platform_time().date().isoformat(), sign_no)
        return answer

    def _sign_no(self) -> str:
        today = envelope.platform_time().date().isoformat()
        with _sign_in_lock:
            kept = _sign_ins.get(self._sign_key)
        if kept and kept[0] == today:
            return kept[1]
        answer = self.sign_in()
        if not answer.ok:
            raise PlatformUnavailable(f"sign-in (9001) refused: {answer.code} {answer.message}", infno="9001")
        with _sign_in_lock:
            kept = _sign_ins.get(self._sign_key)
        if not kept:
            raise PlatformUnavailable("sign-in (9001) answered without a sign_no", infno="9001")
        return kept[1]

    def _forget_sign_no(self) -> None:
        with _sign_in_lock:
            _sign_ins.pop(self._sign_key, None)

    # -- the interfaces ---------------------------------------------------------------------------------

    def person_lookup(self, certno: str, psn_name: str | None = None, *, msgid: str | None = None) -> Answer:
        """1101 by 身份证号: output ``baseinfo`` {psn_no, psn_name, gend, brdy, certno, …} and ``insuinfo`` [...]."""
        data = {
            "mdtrt_cert_type": "02",  # 居民身份证
            "mdtrt_cert_no": certno,
            "card_sn": "",
            "begntime": "",
            "psn_cert_type": "01",
            "certno": certno,
            "psn_name": psn_name or "",
        }
        return self.call(envelope.PERSON_LOOKUP, {"data": data}, msgid=msgid or self.new_msgid())

    def file_enrollment(self, data: Mapping[str, Any], msgid: str) -> Answer:
        """2503: output ``{"result": {"trt_dcla_detl_sn": …}}``; dates may be date objects, no enddate = long-term."""
        return self.call(envelope.FILE, envelope.filing_input(data), msgid=msgid)

    def cancel_enrollment(self, trt_dcla_detl_sn: str, psn_no: str, memo: str, msgid: str) -> Answer:
        """2504: cancel the filing with that serial; "already cancelled" comes back as ``already_done``."""
        data = {"trt_dcla_detl_sn": trt_dcla_detl_sn, "psn_no": psn_no, "memo": memo or ""}
        return self.call(envelope.CANCEL, {"data": data}, msgid=msgid)

    def query_enrollments(self, psn_no: str, *, msgid: str | None = None) -> Answer:
        """5301: output ``{"feedetail": [...]}``, the person's filings with their serial and vali_flag."""
        return self.call(envelope.QUERY, {"data": {"psn_no": psn_no}}, msgid=msgid or self.new_msgid())
