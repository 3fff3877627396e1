"""The national platform's message envelope (docs/platform.md, "Envelope").

Pure functions and small value types, no Django and no I/O: ``build_request`` makes the request JSON,
``seal``/``unseal`` apply the optional SM4 encryption and SM2 signature, ``parse_answer`` reads an answer
into an ``Answer``. ``nhsa.client`` sends what these produce and ``nhsa.simulator`` answers with the same
functions, so the two sides cannot drift apart.

Request: ``{infno, msgid, mdtrtarea_admvs, insuplc_admdvs, recer_sys_code, dev_no, dev_safe_info, cainfo,
signtype, infver, opter_type, opter, opter_name, inf_time, fixmedins_code, fixmedins_name, sign_no, input}``.
Answer: ``{infcode, inf_refmsgid, refmsg_time, respond_time, err_msg, output}`` (plus ``cainfo``/``signtype``
when signed). ``infcode`` 0 is success, a negative one a refusal with ``err_msg``.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from gmssl import sm2, sm4

from enrollment.periods import PLATFORM_OPEN_END

PLATFORM_TZ = ZoneInfo("Asia/Shanghai")

# Interfaces (交易编号) this service uses.
PERSON_LOOKUP = "1101"  # 人员信息获取
FILE = "2503"  # 人员慢特病备案
CANCEL = "2504"  # 人员慢特病备案撤销
QUERY = "5301"  # 人员慢特病备案查询
SIGN_IN = "9001"  # 签到
INTERFACES = (PERSON_LOOKUP, FILE, CANCEL, QUERY, SIGN_IN)
WRITES = (FILE, CANCEL)

INFCODE_OK = 0
INFCODE_ERROR = -1

CRYPTO_NONE = "none"
CRYPTO_SM4SM2 = "sm4sm2"
CRYPTO_CHOICES = (CRYPTO_NONE, CRYPTO_SM4SM2)
SIGNTYPE = "SM2"  # SM3withSM2 over the canonical body, user ID 1234567812345678

# 长期 (a long-term enrollment, validity 0 months) has no end here; the platform's enddate is required, and
# HIS code and the interface documents use this open end for "no end" (docs/platform.md).
LONG_TERM_ENDDATE = PLATFORM_OPEN_END  # one definition, shared with the national-shape export

# A refusal that says the work is already done: the caller treats it as success (docs/platform.md).
ALREADY_DONE_MARKERS = {
    FILE: ("已备案", "重复备案"),
    CANCEL: ("已撤销", "重复撤销"),
}
# A refusal because the sign-in number is missing, unknown or from another day: sign in again, send again.
SIGN_IN_MARKER = "重新签到"

# The 2503 input fields, in the interface's order.
FILING_FIELDS = (
    "psn_no",
    "insutype",
    "opsp_dise_code",
    "opsp_dise_name",
    "tel",
    "addr",
    "insu_optins",
    "ide_fixmedins_no",
    "ide_fixmedins_name",
    "hosp_ide_date",
    "diag_dr_codg",
    "diag_dr_name",
    "begndate",
    "enddate",
)

_SM2_N = int(sm2.default_ecc_table["n"], 16)
_NO_PADDING = -1  # neither of gmssl's padding modes (PKCS7 = 0, ZERO = 1)


class EnvelopeError(ValueError):
    """A message that cannot be read: not JSON, no infcode, bad base64, undecryptable, wrong shape."""


class SignatureError(EnvelopeError):
    """``cainfo`` is missing or is not the sender's signature over the message."""


# ---------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PlatformConfig:
    """Who sends, where to and how: read from the PLATFORM_* settings by ``from_settings``."""

    url: str
    fixmedins_code: str
    fixmedins_name: str = ""
    opter: str = ""
    opter_name: str = ""
    opter_type: str = "1"  # 1 经办人, 2 自助终端, 3 移动终端
    insu_admdvs: str = ""
    infver: str = "V1.0"
    recer_sys_code: str = "MBS_LOCAL"
    timeout: float = 30.0
    signin_required: bool = False
    crypto: str = CRYPTO_NONE
    sm4_key: str = ""
    sm2_private_key: str = ""
    sm2_public_key: str = ""
    sm2_platform_public_key: str = field(default="", repr=False)

    @classmethod
    def from_settings(cls, settings: Any) -> PlatformConfig:
        """From a settings-like object (``django.conf.settings``): its PLATFORM_* attributes."""

        def get(name: str, default: Any = "") -> Any:
            value = getattr(settings, name, default)
            return default if value is None else value

        return cls(
            url=str(get("PLATFORM_URL")),
            fixmedins_code=str(get("PLATFORM_FIXMEDINS_CODE")),
            fixmedins_name=str(get("PLATFORM_FIXMEDINS_NAME")),
            opter=str(get("PLATFORM_OPTER")),
            opter_name=str(get("PLATFORM_OPTER_NAME")),
            insu_admdvs=str(get("PLATFORM_INSU_ADMDVS")),
            infver=str(get("PLATFORM_INFVER", "V1.0") or "V1.0"),
            recer_sys_code=str(get("PLATFORM_RECER_SYS_CODE", "MBS_LOCAL") or "MBS_LOCAL"),
            timeout=float(get("PLATFORM_TIMEOUT", 30) or 30),
            signin_required=bool(get("PLATFORM_SIGNIN_REQUIRED", False)),
            crypto=str(get("PLATFORM_CRYPTO", CRYPTO_NONE) or CRYPTO_NONE).lower(),
            sm4_key=str(get("PLATFORM_SM4_KEY")),
            sm2_private_key=str(get("PLATFORM_SM2_PRIVATE_KEY")),
            sm2_public_key=str(get("PLATFORM_SM2_PUBLIC_KEY")),
            sm2_platform_public_key=str(get("PLATFORM_SM2_PLATFORM_PUBLIC_KEY")),
        )

    def problems(self) -> list[str]:
        """What keeps this configuration from working (empty when it is usable)."""
        found = []
        if not self.url:
            found.append("PLATFORM_URL is empty (the platform link is off)")
        if not self.fixmedins_code:
            found.append("PLATFORM_FIXMEDINS_CODE is required")
        if self.timeout <= 0:
            found.append("PLATFORM_TIMEOUT must be positive")
        if self.crypto not in CRYPTO_CHOICES:
            found.append(f"PLATFORM_CRYPTO must be one of {', '.join(CRYPTO_CHOICES)}")
        if self.crypto == CRYPTO_SM4SM2:
            for name, value, check in (
                ("PLATFORM_SM4_KEY", self.sm4_key, _check_sm4_key),
                ("PLATFORM_SM2_PRIVATE_KEY", self.sm2_private_key, _check_private_key),
                ("PLATFORM_SM2_PUBLIC_KEY", self.sm2_public_key, normalize_public_key),
                ("PLATFORM_SM2_PLATFORM_PUBLIC_KEY", self.sm2_platform_public_key, normalize_public_key),
            ):
                try:
                    check(value)
                except ValueError as exc:
                    found.append(f"{name}: {exc}")
        return found


# ---------------------------------------------------------------------------
# Message ids, times and dates
# ---------------------------------------------------------------------------


def platform_time(now: dt.datetime | None = None) -> dt.datetime:
    """``now`` on the platform's clock (Asia/Shanghai); a naive datetime is taken as already local."""
    if now is None:
        return dt.datetime.now(PLATFORM_TZ)
    if now.tzinfo is None:
        return now
    return now.astimezone(PLATFORM_TZ)


def new_msgid(fixmedins_code: str, now: dt.datetime, sequence: int) -> str:
    """发送方报文ID: the sender's code (12) + yyyyMMddHHmmss (14) + a 4-digit sequence = 30 characters.

    ``sequence`` is taken modulo 10000; a sender must not use the same one twice within a second. The outbox
    stores the msgid with its row and sends every retry with the same one, so the platform can recognise it.
    """
    stamp = platform_time(now).strftime("%Y%m%d%H%M%S")
    return f"{fixmedins_code}{stamp}{int(sequence) % 10000:04d}"


def format_inf_time(now: dt.datetime | None = None) -> str:
    """交易时间 / sign_time: ``yyyy-MM-dd HH:mm:ss`` on the platform's clock."""
    return platform_time(now).strftime("%Y-%m-%d %H:%M:%S")


def format_date(value: Any) -> str:
    """A date field: ``yyyy-MM-dd``; a string is passed on as it is, None becomes empty."""
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return platform_time(value).date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


# ---------------------------------------------------------------------------
# Requests and answers
# ---------------------------------------------------------------------------


def build_request(
    infno: str,
    input: Mapping[str, Any],  # noqa: A002 - the platform's name for it
    msgid: str,
    config: PlatformConfig,
    *,
    sign_no: str = "",
    insuplc_admdvs: str | None = None,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """The request envelope, unsealed (``seal`` encrypts and signs it when the province asks for that)."""
    return {
        "infno": infno,
        "msgid": msgid,
        "mdtrtarea_admvs": config.insu_admdvs,
        "insuplc_admdvs": config.insu_admdvs if insuplc_admdvs is None else insuplc_admdvs,
        "recer_sys_code": config.recer_sys_code,
        "dev_no": "",
        "dev_safe_info": "",
        "cainfo": "",
        "signtype": "",
        "infver": config.infver,
        "opter_type": config.opter_type,
        "opter": config.opter,
        "opter_name": config.opter_name,
        "inf_time": format_inf_time(now),
        "fixmedins_code": config.fixmedins_code,
        "fixmedins_name": config.fixmedins_name,
        "sign_no": sign_no,
        "input": dict(input),
    }


def build_answer(
    infcode: int,
    *,
    err_msg: str = "",
    output: Mapping[str, Any] | None = None,
    refmsgid: str = "",
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """An answer envelope as the platform sends it (used by the simulator), unsealed."""
    stamp = platform_time(now).strftime("%Y%m%d%H%M%S%f")[:17]
    return {
        "infcode": infcode,
        "inf_refmsgid": refmsgid,
        "refmsg_time": stamp,
        "respond_time": stamp,
        "err_msg": err_msg,
        "warn_msg": "",
        "cainfo": "",
        "signtype": "",
        "output": dict(output or {}),
    }


def filing_input(data: Mapping[str, Any]) -> dict[str, Any]:
    """The 2503 input ``{"data": {...}}``: dates as ``yyyy-MM-dd``, a missing enddate as the long-term end."""
    row = {name: format_date(data.get(name)) for name in FILING_FIELDS}
    for name, value in data.items():  # fields a province adds are passed on
        row.setdefault(name, format_date(value))
    if not row["enddate"]:
        row["enddate"] = LONG_TERM_ENDDATE.isoformat()
    return {"data": row}


@dataclass(frozen=True)
class Answer:
    """What the platform answered.

    ``ok``: infcode 0. ``code``: the infcode. ``message``: err_msg. ``output``: the decrypted output.
    ``msgid``: the msgid of the request this answers. ``already_done``: a refusal saying the filing or the
    cancellation is already there (the caller treats it as success; ``output`` then carries the existing
    serial when the platform gives it). ``refmsgid``: the platform's own id of its answer (inf_refmsgid).
    """

    ok: bool
    code: int
    message: str
    output: dict[str, Any]
    msgid: str
    already_done: bool = False
    refmsgid: str = ""

    @property
    def trt_dcla_detl_sn(self) -> str:
        """The 待遇申报明细流水号 a 2503 answer carries (new or, when already filed, the existing one)."""
        result = self.output.get("result") if isinstance(self.output, dict) else None
        if isinstance(result, dict):
            return str(result.get("trt_dcla_detl_sn") or "")
        return ""


def is_already_done(infno: str, code: int, message: str) -> bool:
    markers = ALREADY_DONE_MARKERS.get(infno, ())
    return code != INFCODE_OK and any(marker in message for marker in markers)


def needs_sign_in(answer: Answer) -> bool:
    return not answer.ok and SIGN_IN_MARKER in answer.message


def parse_answer(answer: Any, *, infno: str = "", msgid: str = "") -> Answer:
    """Read an (unsealed) answer; ``EnvelopeError`` when it is not one."""
    if not isinstance(answer, Mapping):
        raise EnvelopeError("the answer is not a JSON object")
    raw_code = answer.get("infcode")
    try:
        code = int(str(raw_code).strip())
    except (TypeError, ValueError):
        raise EnvelopeError(f"the answer has no readable infcode ({raw_code!r})")
    output = answer.get("output")
    if output in (None, ""):
        output = {}
    if not isinstance(output, dict):
        raise EnvelopeError("the answer's output is not a JSON object")
    message = str(answer.get("err_msg") or "")
    return Answer(
        ok=code == INFCODE_OK,
        code=code,
        message=message,
        output=output,
        msgid=msgid,
        already_done=is_already_done(infno, code, message),
        refmsgid=str(answer.get("inf_refmsgid") or ""),
    )


# ---------------------------------------------------------------------------
# SM4 encryption and SM2 signature (gmssl)
# ---------------------------------------------------------------------------


def canonical_body(message: Mapping[str, Any]) -> bytes:
    """What is signed: the message without ``cainfo``, as compact JSON with sorted keys, UTF-8."""
    body = {key: value for key, value in message.items() if key != "cainfo"}
    return json.dumps(body, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode("utf-8")


def _hex(value: str, length: int, what: str) -> str:
    value = (value or "").strip().lower()
    if len(value) != length:
        raise ValueError(f"{what} must be {length} hexadecimal characters")
    try:
        bytes.fromhex(value)
    except ValueError:
        raise ValueError(f"{what} must be hexadecimal")
    return value


def _check_sm4_key(value: str) -> str:
    return _hex(value, 32, "an SM4 key (16 bytes)")


def _check_private_key(value: str) -> str:
    key = _hex(value, 64, "an SM2 private key (32 bytes)")
    if not 0 < int(key, 16) < _SM2_N - 1:
        raise ValueError("an SM2 private key must lie in [1, n-2]")
    return key


def normalize_public_key(value: str) -> str:
    """An SM2 public key as 128 hex characters (x‖y); an uncompressed ``04`` prefix is dropped."""
    value = (value or "").strip().lower()
    if len(value) == 130 and value.startswith("04"):
        value = value[2:]
    return _hex(value, 128, "an SM2 public key (x‖y, 64 bytes, optionally 04-prefixed)")


def _sm2(private_key: str, public_key: str) -> sm2.CryptSM2:
    engine = sm2.CryptSM2(private_key=private_key, public_key="")
    # gmssl strips a leading "04" with str.lstrip, which also eats a key whose x starts with 0 or 4: set it here.
    engine.public_key = public_key
    return engine


def sm2_public_key(private_key: str) -> str:
    """The public key (128 hex) of an SM2 private key: d·G on the SM2 curve, with gmssl's point arithmetic."""
    key = _check_private_key(private_key)
    engine = _sm2(key, "")
    return engine._kg(int(key, 16), sm2.default_ecc_table["g"])  # noqa: SLF001 - gmssl has no key generation


def sm2_generate_keypair() -> tuple[str, str]:
    """(private, public) hex: a private key from ``secrets`` in [1, n-2] and its public key."""
    private_key = f"{secrets.randbelow(_SM2_N - 2) + 1:064x}"
    return private_key, sm2_public_key(private_key)


def sm2_sign(private_key: str, public_key: str, data: bytes) -> str:
    """SM3withSM2 signature of ``data`` (default user ID), base64 of r‖s (64 bytes)."""
    engine = _sm2(_check_private_key(private_key), normalize_public_key(public_key))
    while True:  # k from secrets (gmssl's default uses the random module); a rare unusable k is drawn again
        k = f"{secrets.randbelow(_SM2_N - 1) + 1:064x}"
        signature = engine.sign_with_sm3(data, k)
        if signature:
            return base64.b64encode(bytes.fromhex(signature)).decode("ascii")


def sm2_verify(public_key: str, signature: str, data: bytes) -> bool:
    try:
        raw = base64.b64decode(signature or "", validate=True)
    except (binascii.Error, ValueError):
        return False
    if len(raw) != 64:
        return False
    r, s = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
    if not (0 < r < _SM2_N and 0 < s < _SM2_N):
        return False
    try:
        return bool(_sm2("", normalize_public_key(public_key)).verify_with_sm3(raw.hex(), data))
    except Exception:  # noqa: BLE001 - a malformed key or point is a failed verification, not a crash
        return False


def sm4_encrypt(key: str, plaintext: bytes) -> bytes:
    """SM4-ECB with PKCS#7 padding (docs/platform.md: ECB, as the provinces' gateways use it)."""
    engine = sm4.CryptSM4()
    engine.set_key(bytes.fromhex(_check_sm4_key(key)), sm4.SM4_ENCRYPT)
    return bytes(engine.crypt_ecb(plaintext))


def sm4_decrypt(key: str, ciphertext: bytes) -> bytes:
    if not ciphertext or len(ciphertext) % 16:
        raise EnvelopeError("the encrypted field is not a whole number of SM4 blocks")
    # No padding mode in gmssl (its PKCS#7 unpadding checks nothing): the padding is checked here.
    engine = sm4.CryptSM4(padding_mode=_NO_PADDING)
    engine.set_key(bytes.fromhex(_check_sm4_key(key)), sm4.SM4_DECRYPT)
    plain = bytes(engine.crypt_ecb(ciphertext))
    padding = plain[-1]
    if not 1 <= padding <= 16 or plain[-padding:] != bytes([padding]) * padding:
        raise EnvelopeError("the encrypted field has bad padding (wrong SM4 key?)")
    return plain[:-padding]


@dataclass(frozen=True)
class Sm4Sm2:
    """One side's keys: the shared SM4 key, its own SM2 key pair (to sign) and the other side's public key."""

    sm4_key: str
    private_key: str
    public_key: str
    peer_public_key: str

    def seal(self, message: Mapping[str, Any], field: str) -> dict[str, Any]:
        """Encrypt ``message[field]`` (JSON → SM4 → base64) and sign the whole in ``cainfo``."""
        sealed = dict(message)
        plain = json.dumps(sealed.get(field) or {}, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        sealed[field] = base64.b64encode(sm4_encrypt(self.sm4_key, plain)).decode("ascii")
        sealed["signtype"] = SIGNTYPE
        sealed["cainfo"] = ""
        sealed["cainfo"] = sm2_sign(self.private_key, self.public_key, canonical_body(sealed))
        return sealed

    def unseal(self, message: Mapping[str, Any], field: str) -> dict[str, Any]:
        """Verify ``cainfo`` with the peer's key, then decrypt ``message[field]``."""
        signature = message.get("cainfo")
        if not signature or not isinstance(signature, str):
            raise SignatureError("the message carries no signature (cainfo)")
        if not sm2_verify(self.peer_public_key, signature, canonical_body(message)):
            raise SignatureError("the signature (cainfo) does not match the message")
        opened = dict(message)
        encrypted = message.get(field)
        if not isinstance(encrypted, str):
            raise EnvelopeError(f"{field} is not encrypted")
        try:
            ciphertext = base64.b64decode(encrypted, validate=True)
        except (binascii.Error, ValueError):
            raise EnvelopeError(f"{field} is not base64")
        try:
            opened[field] = json.loads(sm4_decrypt(self.sm4_key, ciphertext).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise EnvelopeError(f"{field} does not decrypt to JSON (wrong SM4 key?)")
        if not isinstance(opened[field], dict):
            raise EnvelopeError(f"{field} is not a JSON object")
        return opened


def client_crypto(config: PlatformConfig) -> Sm4Sm2 | None:
    """The client's side of the crypto (None when PLATFORM_CRYPTO is "none")."""
    if config.crypto != CRYPTO_SM4SM2:
        return None
    return Sm4Sm2(
        sm4_key=_check_sm4_key(config.sm4_key),
        private_key=_check_private_key(config.sm2_private_key),
        public_key=normalize_public_key(config.sm2_public_key),
        peer_public_key=normalize_public_key(config.sm2_platform_public_key),
    )


def seal(message: Mapping[str, Any], field: str, crypto: Sm4Sm2 | None) -> dict[str, Any]:
    """``field`` is "input" for a request, "output" for an answer; no crypto leaves the message as it is."""
    return dict(message) if crypto is None else crypto.seal(message, field)


def unseal(message: Mapping[str, Any], field: str, crypto: Sm4Sm2 | None) -> dict[str, Any]:
    if not isinstance(message, Mapping):
        raise EnvelopeError("the message is not a JSON object")
    return dict(message) if crypto is None else crypto.unseal(message, field)
