"""A stand-in for the national platform's node: 1101, 2503, 2504, 5301 and 9001 (docs/platform.md, "Simulator").

A small threaded HTTP server (stdlib ``http.server``) with its own SQLite store (stdlib ``sqlite3``, not Django
models), speaking the same envelope as ``nhsa.client`` (``nhsa.envelope``; with crypto on it verifies the
SM2 signature and decrypts the SM4 input, and signs and encrypts its answers). It behaves like the real node
where the outbox depends on it:

- unknown person → infcode -1 "未查询到人员信息" (unless ``auto_persons``: an unknown 身份证号 gets a psn_no
  derived from it);
- 2503 for a disease the person already holds (valid, overlapping dates) → an "already filed" refusal
  carrying the existing ``trt_dcla_detl_sn``;
- a 2503/2504 msgid it has answered before → the same answer again (idempotent per msgid);
- 2504 of an unknown serial → refusal; of a serial already cancelled → "already cancelled" refusal;
- 5301 lists a person's filings with their ``vali_flag``;
- with ``signin_required``, any message but 9001 needs today's sign_no.

Faults are injected by options and at runtime through ``POST /__control`` (or ``Simulator.control``):
``fail_next`` (HTTP 500, nothing done), ``timeout_next`` (sleeps ``timeout_seconds`` — past the client's
timeout — then does the work: the answer is lost), ``lose_answer_next`` (does the work, answers HTTP 500),
``garbage_next`` (HTTP 200 with a non-JSON body, nothing done), ``duplicate_next`` (does the work, answers as
if it were a repeat: "already filed/cancelled"), and the rates ``fail_rate``/``duplicate_rate`` plus
``latency_ms``.

In tests: ``sim = Simulator(tmp_path / "platform.sqlite3"); url = sim.start(); …; sim.stop()``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import random
import sqlite3
import threading
import uuid
from collections.abc import Iterable, Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from nhsa import envelope
from nhsa.envelope import (
    CANCEL,
    CRYPTO_CHOICES,
    CRYPTO_SM4SM2,
    FILE,
    INFCODE_ERROR,
    INFCODE_OK,
    INTERFACES,
    PERSON_LOOKUP,
    QUERY,
    SIGN_IN,
    WRITES,
    EnvelopeError,
    SignatureError,
    Sm4Sm2,
)

logger = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 10 * 1024 * 1024

# The platform's refusals (err_msg with infcode -1), as docs/platform.md lists them.
UNKNOWN_PERSON = "未查询到人员信息"
SIGNATURE_FAILED = "数字签名验证失败"
DECRYPTION_FAILED = "报文解密失败"
NOT_JSON = "报文格式错误：不是JSON对象"
SIGN_IN_INVALID = "签到编号无效或已过期，请重新签到"

_COUNTERS = ("fail_next", "timeout_next", "lose_answer_next", "garbage_next", "duplicate_next")
_RATES = ("fail_rate", "duplicate_rate")
_FLAGS = ("auto_persons", "signin_required")


class ControlError(ValueError):
    """A /__control request with an unknown key or a value out of range."""


# ---------------------------------------------------------------------------
# The store
# ---------------------------------------------------------------------------

_SCHEMA = """
CREATE TABLE IF NOT EXISTS persons (
    certno TEXT PRIMARY KEY,
    psn_no TEXT NOT NULL UNIQUE,
    psn_name TEXT NOT NULL DEFAULT '',
    gend TEXT NOT NULL DEFAULT '',
    brdy TEXT NOT NULL DEFAULT '',
    insutype TEXT NOT NULL DEFAULT '390',
    insuplc_admdvs TEXT NOT NULL DEFAULT '',
    psn_type TEXT NOT NULL DEFAULT '',
    psn_insu_date TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS filings (
    trt_dcla_detl_sn TEXT PRIMARY KEY,
    psn_no TEXT NOT NULL,
    insutype TEXT NOT NULL,
    opsp_dise_code TEXT NOT NULL,
    opsp_dise_name TEXT NOT NULL,
    begndate TEXT NOT NULL,
    enddate TEXT NOT NULL,
    vali_flag TEXT NOT NULL DEFAULT '1',
    data TEXT NOT NULL,
    fixmedins_code TEXT NOT NULL DEFAULT '',
    msgid TEXT NOT NULL DEFAULT '',
    filed_at TEXT NOT NULL,
    cancelled_at TEXT NOT NULL DEFAULT '',
    cancel_msgid TEXT NOT NULL DEFAULT '',
    cancel_memo TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS filings_person_disease ON filings (psn_no, opsp_dise_code);
CREATE TABLE IF NOT EXISTS answers (
    msgid TEXT PRIMARY KEY,
    infno TEXT NOT NULL,
    answer TEXT NOT NULL,
    answered_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sign_ins (
    sign_no TEXT PRIMARY KEY,
    opter TEXT NOT NULL DEFAULT '',
    sign_date TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
"""


class _Store:
    """One SQLite connection, used under a lock; every change in an IMMEDIATE transaction."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.lock = threading.RLock()
        self._connection = sqlite3.connect(str(self.path), timeout=30, isolation_level=None, check_same_thread=False)
        self._connection.row_factory = sqlite3.Row
        self._connection.executescript(_SCHEMA)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self.lock:
            self._connection.execute("BEGIN IMMEDIATE")
            try:
                yield self._connection
            except BaseException:
                self._connection.execute("ROLLBACK")
                raise
            self._connection.execute("COMMIT")

    def query(self, sql: str, parameters: Iterable[Any] = ()) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(row) for row in self._connection.execute(sql, tuple(parameters)).fetchall()]

    def close(self) -> None:
        with self.lock:
            self._connection.close()


def _today() -> dt.date:
    return envelope.platform_time().date()


def _parse_date(value: Any) -> dt.date | None:
    try:
        return dt.date.fromisoformat(str(value)[:10])
    except ValueError:
        return None


def _derived_psn_no(certno: str, admdvs: str) -> str:
    """人员编号 for ``auto_persons``: the area (6) and 14 digits from the 身份证号's hash, always the same."""
    digest = int(hashlib.sha256(certno.encode("utf-8")).hexdigest(), 16) % 10**14
    return f"{(admdvs or '000000')[:6]:0<6}{digest:014d}"


def _birth_and_sex(certno: str) -> tuple[str, str]:
    if len(certno) == 18 and certno[:17].isdigit():
        birth = _parse_date(f"{certno[6:10]}-{certno[10:12]}-{certno[12:14]}")
        return (birth.isoformat() if birth else "", "1" if int(certno[16]) % 2 else "2")
    return "", "9"


# ---------------------------------------------------------------------------
# The simulator
# ---------------------------------------------------------------------------


class Simulator:
    def __init__(
        self,
        store_path: str | Path,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        latency_ms: int = 0,
        fail_rate: float = 0.0,
        duplicate_rate: float = 0.0,
        timeout_seconds: float = 65.0,
        auto_persons: bool = False,
        signin_required: bool = False,
        crypto: str = envelope.CRYPTO_NONE,
        sm4_key: str = "",
        client_public_key: str = "",
        private_key: str = "",
        seed: int | None = None,
    ) -> None:
        if crypto not in CRYPTO_CHOICES:
            raise ValueError(f"crypto must be one of {', '.join(CRYPTO_CHOICES)}")
        self.store = _Store(store_path)
        self.host = host
        self.port = port
        self.crypto = crypto
        self.public_key = ""
        self._crypto: Sm4Sm2 | None = None
        if crypto == CRYPTO_SM4SM2:
            private_key = private_key or envelope.sm2_generate_keypair()[0]
            self.public_key = envelope.sm2_public_key(private_key)
            self._crypto = Sm4Sm2(
                sm4_key=sm4_key,
                private_key=private_key,
                public_key=self.public_key,
                peer_public_key=envelope.normalize_public_key(client_public_key),
            )
            envelope.sm4_encrypt(sm4_key, b"")  # checks the key now, not at the first message
        self._control_lock = threading.Lock()
        self._defaults = {
            "latency_ms": 0,
            "fail_rate": 0.0,
            "duplicate_rate": 0.0,
            **dict.fromkeys(_COUNTERS, 0),
            "timeout_seconds": 65.0,
        }
        self._control: dict[str, Any] = {**self._defaults, "auto_persons": False, "signin_required": False}
        self.control(
            latency_ms=latency_ms,
            fail_rate=fail_rate,
            duplicate_rate=duplicate_rate,
            timeout_seconds=timeout_seconds,
            auto_persons=auto_persons,
            signin_required=signin_required,
        )
        self._random = random.Random(seed)
        self._received: list[dict[str, Any]] = []
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- life cycle ------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the simulator is not running")
        return f"http://{self.host}:{self._server.server_address[1]}/"

    def start(self) -> str:
        """Listen (port 0: an ephemeral one) in a background thread; returns the base URL."""
        if self._server is None:
            self._stopping.clear()
            self._server = _Server((self.host, self.port), self)
            self._thread = threading.Thread(
                target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, name="platform-simulator", daemon=True
            )
            self._thread.start()
        return self.url

    def stop(self) -> None:
        """Stop listening; requests still sleeping (latency, timeouts) are dropped without an answer."""
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self.store.close()

    def request_stop(self) -> None:
        """Make ``serve_forever`` return (safe from a signal handler)."""
        self._stopping.set()

    def serve_forever(self) -> None:
        self.start()
        try:
            while not self._stopping.wait(1):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    def __enter__(self) -> Simulator:
        self.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    # -- control ---------------------------------------------------------------------------------------

    def control(self, **changes: Any) -> dict[str, Any]:
        """Change the injected faults (the keys of POST /__control); returns the whole state."""
        checked: dict[str, Any] = {}
        for key, value in changes.items():
            try:
                if key == "reset":
                    if value:
                        checked.update(self._defaults)
                elif key in _COUNTERS or key == "latency_ms":
                    checked[key] = int(value)
                    if checked[key] < 0:
                        raise ValueError
                elif key in _RATES:
                    checked[key] = float(value)
                    if not 0.0 <= checked[key] <= 1.0:
                        raise ValueError
                elif key == "timeout_seconds":
                    checked[key] = float(value)
                    if checked[key] <= 0:
                        raise ValueError
                elif key in _FLAGS:
                    if not isinstance(value, bool):
                        raise ValueError
                    checked[key] = value
                else:
                    raise ControlError(f"unknown control key: {key}")
            except (TypeError, ValueError) as exc:
                if isinstance(exc, ControlError):
                    raise
                raise ControlError(f"bad value for {key}: {value!r}")
        with self._control_lock:
            self._control.update(checked)
            return dict(self._control)

    def _take_fault(self, infno: str) -> tuple[str, bool, float, float]:
        """(fault, duplicate, latency seconds, timeout seconds) for one message, counters counted down.

        ``duplicate`` concerns writes (2503, 2504) only: other messages leave ``duplicate_next`` as it is.
        """
        with self._control_lock:
            state = self._control
            fault = ""
            for counter, name in (
                ("fail_next", "fail"),
                ("timeout_next", "timeout"),
                ("lose_answer_next", "lose_answer"),
                ("garbage_next", "garbage"),
            ):
                if state[counter] > 0:
                    state[counter] -= 1
                    fault = name
                    break
            if not fault and state["fail_rate"] and self._random.random() < state["fail_rate"]:
                fault = "fail"
            duplicate = False
            if infno not in WRITES:
                pass
            elif state["duplicate_next"] > 0:
                state["duplicate_next"] -= 1
                duplicate = True
            elif state["duplicate_rate"] and self._random.random() < state["duplicate_rate"]:
                duplicate = True
            return fault, duplicate, state["latency_ms"] / 1000, state["timeout_seconds"]

    def _flag(self, name: str) -> bool:
        with self._control_lock:
            return bool(self._control[name])

    # -- persons, filings, what arrived ----------------------------------------------------------------

    def add_person(
        self,
        certno: str,
        psn_no: str | None = None,
        psn_name: str = "",
        insutype: str = "390",
        insuplc_admdvs: str = "",
        *,
        gend: str | None = None,
        brdy: str | None = None,
        psn_type: str = "",
        psn_insu_date: str = "",
    ) -> dict[str, Any]:
        """Tell the simulator about a person (replaces what it knew of that 身份证号); returns the record."""
        if not certno:
            raise ValueError("certno is required")
        birth, sex = _birth_and_sex(certno)
        row = {
            "certno": certno,
            "psn_no": psn_no or _derived_psn_no(certno, insuplc_admdvs),
            "psn_name": psn_name or "",
            "gend": gend or sex,
            "brdy": brdy or birth,
            "insutype": str(insutype or "390"),
            "insuplc_admdvs": insuplc_admdvs or "",
            "psn_type": psn_type or "",
            "psn_insu_date": psn_insu_date or "",
        }
        with self.store.transaction() as db:
            db.execute("DELETE FROM persons WHERE certno = ? OR psn_no = ?", (row["certno"], row["psn_no"]))
            db.execute(
                f"INSERT INTO persons ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", tuple(row.values())
            )
        return row

    def load_persons(self, source: str | Path | Iterable[Mapping[str, Any]]) -> int:
        """Seed persons from a JSON file (a list of {certno, psn_no, psn_name, insutype, insuplc_admdvs}) or a list."""
        entries: Any = (
            json.loads(Path(source).read_text(encoding="utf-8")) if isinstance(source, str | Path) else source
        )
        if isinstance(entries, Mapping):
            entries = entries.get("persons", [])
        if isinstance(entries, str | bytes) or not isinstance(entries, Iterable):
            raise ValueError("persons must be a JSON list")
        entries = list(entries)
        allowed = {"certno", "psn_no", "psn_name", "insutype", "insuplc_admdvs", "gend", "brdy", "psn_type"}
        for entry in entries:
            if not isinstance(entry, Mapping) or not entry.get("certno"):
                raise ValueError("every person needs a certno")
            self.add_person(
                **{key: "" if value is None else str(value) for key, value in entry.items() if key in allowed}
            )
        return len(entries)

    def persons(self) -> list[dict[str, Any]]:
        return self.store.query("SELECT * FROM persons ORDER BY psn_no")

    def filings(self, psn_no: str | None = None) -> list[dict[str, Any]]:
        """What the simulator holds, oldest first; ``data`` is the 2503 input as received."""
        sql = "SELECT * FROM filings" + (" WHERE psn_no = ?" if psn_no else "") + " ORDER BY filed_at, rowid"
        rows = self.store.query(sql, (psn_no,) if psn_no else ())
        for row in rows:
            row["data"] = json.loads(row["data"])
        return rows

    def received(self, infno: str | None = None) -> list[dict[str, Any]]:
        """Every platform message that reached the simulator (also those answered with a fault), in order."""
        with self._control_lock:
            return [dict(item) for item in self._received if infno is None or item["infno"] == infno]

    # -- one message -----------------------------------------------------------------------------------

    def respond(self, raw: bytes) -> tuple[int, bytes] | None:
        """The HTTP status and body for one request body; None: drop the connection without an answer."""
        item = self._note(raw)
        fault, duplicate, latency, timeout = self._take_fault(item["infno"])
        with self._control_lock:
            item.update(fault=fault, duplicate=duplicate)
        if latency and self._stopping.wait(latency):
            return None
        if fault == "fail":
            return 500, b'{"error": "simulated platform failure"}'
        if fault == "garbage":
            return 200, b"<html><body>502 Bad Gateway</body></html>"
        if fault == "timeout" and self._stopping.wait(timeout):
            return None
        if self._stopping.is_set():
            return None
        answer = self._answer(raw, duplicate=duplicate)
        if fault == "lose_answer":
            return 500, b'{"error": "simulated failure after the work was done"}'
        return 200, json.dumps(answer, ensure_ascii=False).encode("utf-8")

    def _note(self, raw: bytes) -> dict[str, Any]:
        """Record what arrived: infno, msgid, sign_no, whether the input was encrypted."""
        try:
            message = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            message = {}
        if not isinstance(message, dict):
            message = {}
        item = {
            "infno": str(message.get("infno") or ""),
            "msgid": str(message.get("msgid") or ""),
            "sign_no": str(message.get("sign_no") or ""),
            "sealed": isinstance(message.get("input"), str),
            "fault": "",
            "duplicate": False,
        }
        with self._control_lock:
            self._received.append(item)
        return item

    def _seal(self, answer: dict[str, Any]) -> dict[str, Any]:
        return envelope.seal(answer, "output", self._crypto)

    def _refuse(self, message: str, output: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return envelope.build_answer(INFCODE_ERROR, err_msg=message, output=output, refmsgid=self._refmsgid())

    def _ok(self, output: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return envelope.build_answer(INFCODE_OK, output=output, refmsgid=self._refmsgid())

    @staticmethod
    def _refmsgid() -> str:
        return "SIM" + uuid.uuid4().hex[:27]

    def _answer(self, raw: bytes, *, duplicate: bool) -> dict[str, Any]:
        try:
            message = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            message = None
        if not isinstance(message, dict):
            return self._seal(self._refuse(NOT_JSON))
        try:
            opened = envelope.unseal(message, "input", self._crypto)
        except SignatureError:
            return self._seal(self._refuse(SIGNATURE_FAILED))
        except EnvelopeError:
            return self._seal(self._refuse(DECRYPTION_FAILED))
        infno = str(opened.get("infno") or "")
        msgid = str(opened.get("msgid") or "")
        problem = self._envelope_problem(opened, infno, msgid)
        if problem:
            return self._seal(self._refuse(problem))
        try:
            with self.store.transaction() as db:
                if infno in WRITES:
                    stored = db.execute("SELECT infno, answer FROM answers WHERE msgid = ?", (msgid,)).fetchone()
                    if stored is not None:
                        if stored["infno"] != infno:
                            return self._seal(self._refuse(f"发送方报文ID[{msgid}]重复"))
                        return self._seal(json.loads(stored["answer"]))
                answer, repeat = self._dispatch(db, infno, opened)
                if infno in WRITES:
                    db.execute(
                        "INSERT INTO answers (msgid, infno, answer, answered_at) VALUES (?, ?, ?, ?)",
                        (msgid, infno, json.dumps(answer, ensure_ascii=False), envelope.format_inf_time()),
                    )
        except sqlite3.Error:
            logger.exception("platform simulator: store error")
            return self._seal(self._refuse("系统内部错误"))
        logger.info("platform simulator: %s %s -> infcode %s", infno, msgid, answer["infcode"])
        if duplicate and answer["infcode"] == INFCODE_OK and repeat is not None:
            return self._seal(repeat)
        return self._seal(answer)

    def _envelope_problem(self, opened: Mapping[str, Any], infno: str, msgid: str) -> str:
        if infno not in INTERFACES:
            return f"交易编号[{infno}]不存在或未开通"
        code = str(opened.get("fixmedins_code") or "")
        if not code:
            return "定点医药机构编号[fixmedins_code]不能为空"
        tail = msgid[len(code) :]
        if not msgid.startswith(code) or len(tail) != 18 or not tail.isdigit():
            return f"发送方报文ID[{msgid}]格式错误：应为定点医药机构编号+yyyyMMddHHmmss+4位顺序号"
        if not opened.get("infver"):
            return "接口版本号[infver]不能为空"
        if not isinstance(opened.get("input"), dict):
            return "交易输入[input]格式错误"
        if infno != SIGN_IN and self._flag("signin_required"):
            sign_no = str(opened.get("sign_no") or "")
            valid = self.store.query(
                "SELECT 1 FROM sign_ins WHERE sign_no = ? AND sign_date = ?", (sign_no, _today().isoformat())
            )
            if not sign_no or not valid:
                return SIGN_IN_INVALID
        return ""

    def _dispatch(
        self, db: sqlite3.Connection, infno: str, opened: Mapping[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """(answer, the answer a repeat of this write would get) for one valid message."""
        if infno == PERSON_LOOKUP:
            return self._person_lookup(db, opened), None
        if infno == FILE:
            return self._file(db, opened)
        if infno == CANCEL:
            return self._cancel(db, opened)
        if infno == QUERY:
            return self._query(db, opened), None
        return self._sign_in(db, opened), None

    # -- the interfaces --------------------------------------------------------------------------------

    @staticmethod
    def _data(opened: Mapping[str, Any]) -> dict[str, Any]:
        data = opened["input"].get("data")
        return {key: "" if value is None else value for key, value in data.items()} if isinstance(data, dict) else {}

    def _person_lookup(self, db: sqlite3.Connection, opened: Mapping[str, Any]) -> dict[str, Any]:
        data = self._data(opened)
        certno = str(data.get("certno") or data.get("mdtrt_cert_no") or "")
        if not certno:
            return self._refuse("证件号码[certno]不能为空")
        person = db.execute("SELECT * FROM persons WHERE certno = ?", (certno,)).fetchone()
        if person is None and self._flag("auto_persons"):
            admdvs = str(opened.get("insuplc_admdvs") or "")
            birth, sex = _birth_and_sex(certno)
            db.execute(
                "INSERT OR IGNORE INTO persons (certno, psn_no, psn_name, gend, brdy, insutype, insuplc_admdvs) "
                "VALUES (?, ?, ?, ?, ?, '390', ?)",
                (certno, _derived_psn_no(certno, admdvs), str(data.get("psn_name") or ""), sex, birth, admdvs),
            )
            person = db.execute("SELECT * FROM persons WHERE certno = ?", (certno,)).fetchone()
        if person is None:
            return self._refuse(UNKNOWN_PERSON)
        born = _parse_date(person["brdy"])
        today = _today()
        age = today.year - born.year - ((today.month, today.day) < (born.month, born.day)) if born else ""
        return self._ok(
            {
                "baseinfo": {
                    "psn_no": person["psn_no"],
                    "psn_cert_type": "01",
                    "certno": person["certno"],
                    "psn_name": person["psn_name"],
                    "gend": person["gend"],
                    "naty": "01",
                    "brdy": person["brdy"],
                    "age": age,
                },
                "insuinfo": [
                    {
                        "balc": 0,
                        "insutype": person["insutype"],
                        "psn_type": person["psn_type"],
                        "psn_insu_stas": "1",
                        "psn_insu_date": person["psn_insu_date"],
                        "paus_insu_date": None,
                        "cvlserv_flag": "0",
                        "insuplc_admdvs": person["insuplc_admdvs"],
                        "emp_name": "",
                    }
                ],
                "idetinfo": [],
            }
        )

    def _already_filed(self, filing: Mapping[str, Any]) -> dict[str, Any]:
        return self._refuse(
            f"该人员已备案门慢门特病种[{filing['opsp_dise_code']}]，存在有效期重叠的有效备案，不能重复备案",
            {
                "result": {
                    "trt_dcla_detl_sn": filing["trt_dcla_detl_sn"],
                    "begndate": filing["begndate"],
                    "enddate": filing["enddate"],
                }
            },
        )

    def _file(self, db: sqlite3.Connection, opened: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None]:
        data = self._data(opened)
        for name in ("psn_no", "insutype", "opsp_dise_code", "opsp_dise_name", "begndate", "enddate"):
            if not str(data.get(name) or "").strip():
                return self._refuse(f"必填项[{name}]不能为空"), None
        person = db.execute("SELECT * FROM persons WHERE psn_no = ?", (str(data["psn_no"]),)).fetchone()
        if person is None:
            return self._refuse(UNKNOWN_PERSON), None
        insutype = str(data["insutype"])
        if insutype not in ("310", "390") or (insutype != person["insutype"] and not self._flag("auto_persons")):
            return self._refuse(f"该人员无险种类型[{insutype}]的有效参保信息"), None
        begin, end = _parse_date(data["begndate"]), _parse_date(data["enddate"])
        if begin is None or end is None:
            return self._refuse("开始日期或结束日期格式错误，应为yyyy-MM-dd"), None
        if end < begin:
            return self._refuse("结束日期不能早于开始日期"), None
        existing = db.execute(
            "SELECT * FROM filings WHERE psn_no = ? AND opsp_dise_code = ? AND vali_flag = '1' "
            "AND begndate <= ? AND enddate >= ? ORDER BY filed_at LIMIT 1",
            (person["psn_no"], str(data["opsp_dise_code"]), end.isoformat(), begin.isoformat()),
        ).fetchone()
        if existing is not None:
            return self._already_filed(existing), None
        serial = self._next_serial(db, str(data.get("insu_optins") or opened.get("insuplc_admdvs") or ""))
        row = {
            "trt_dcla_detl_sn": serial,
            "psn_no": person["psn_no"],
            "insutype": insutype,
            "opsp_dise_code": str(data["opsp_dise_code"]),
            "opsp_dise_name": str(data["opsp_dise_name"]),
            "begndate": begin.isoformat(),
            "enddate": end.isoformat(),
            "vali_flag": "1",
            "data": json.dumps(data, ensure_ascii=False),
            "fixmedins_code": str(opened.get("fixmedins_code") or ""),
            "msgid": str(opened.get("msgid") or ""),
            "filed_at": envelope.format_inf_time(),
        }
        db.execute(f"INSERT INTO filings ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", tuple(row.values()))
        return self._ok({"result": {"trt_dcla_detl_sn": serial}}), self._already_filed(row)

    def _next_serial(self, db: sqlite3.Connection, admdvs: str) -> str:
        db.execute(
            "INSERT INTO counters (name, value) VALUES ('serial', 1) ON CONFLICT (name) DO UPDATE SET value = value + 1"
        )
        value = db.execute("SELECT value FROM counters WHERE name = 'serial'").fetchone()["value"]
        area = "".join(ch for ch in admdvs if ch.isdigit())[:6] or "000000"
        return f"{area:0<6}{_today():%Y%m%d}{value:08d}"

    def _cancel(
        self, db: sqlite3.Connection, opened: Mapping[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any] | None]:
        data = self._data(opened)
        for name in ("trt_dcla_detl_sn", "psn_no"):
            if not str(data.get(name) or "").strip():
                return self._refuse(f"必填项[{name}]不能为空"), None
        serial = str(data["trt_dcla_detl_sn"])
        filing = db.execute("SELECT * FROM filings WHERE trt_dcla_detl_sn = ?", (serial,)).fetchone()
        if filing is None:
            return self._refuse(f"未查询到待遇申报明细流水号[{serial}]对应的备案信息"), None
        if filing["psn_no"] != str(data["psn_no"]):
            return self._refuse("待遇申报明细流水号与人员编号不匹配"), None
        already = self._refuse(f"待遇申报明细流水号[{serial}]的备案已撤销，不能重复撤销")
        if filing["vali_flag"] != "1":
            return already, None
        db.execute(
            "UPDATE filings SET vali_flag = '0', cancelled_at = ?, cancel_msgid = ?, cancel_memo = ? "
            "WHERE trt_dcla_detl_sn = ?",
            (envelope.format_inf_time(), str(opened.get("msgid") or ""), str(data.get("memo") or ""), serial),
        )
        return self._ok({}), already

    def _query(self, db: sqlite3.Connection, opened: Mapping[str, Any]) -> dict[str, Any]:
        psn_no = str(self._data(opened).get("psn_no") or "")
        if not psn_no:
            return self._refuse("必填项[psn_no]不能为空")
        if db.execute("SELECT 1 FROM persons WHERE psn_no = ?", (psn_no,)).fetchone() is None:
            return self._refuse(UNKNOWN_PERSON)
        rows = db.execute("SELECT * FROM filings WHERE psn_no = ? ORDER BY filed_at, rowid", (psn_no,)).fetchall()
        feedetail = []
        for row in rows:
            data = json.loads(row["data"])
            feedetail.append(
                {
                    "psn_no": row["psn_no"],
                    "insutype": row["insutype"],
                    "opsp_dise_code": row["opsp_dise_code"],
                    "opsp_dise_name": row["opsp_dise_name"],
                    "begndate": row["begndate"],
                    "enddate": row["enddate"],
                    "trt_dcla_detl_sn": row["trt_dcla_detl_sn"],
                    "vali_flag": row["vali_flag"],
                    "ide_fixmedins_no": data.get("ide_fixmedins_no", ""),
                    "ide_fixmedins_name": data.get("ide_fixmedins_name", ""),
                    "hosp_ide_date": data.get("hosp_ide_date", ""),
                    "diag_dr_codg": data.get("diag_dr_codg", ""),
                    "diag_dr_name": data.get("diag_dr_name", ""),
                    "insu_optins": data.get("insu_optins", ""),
                }
            )
        return self._ok({"feedetail": feedetail})

    def _sign_in(self, db: sqlite3.Connection, opened: Mapping[str, Any]) -> dict[str, Any]:
        sign_in = opened["input"].get("signIn")
        opter = str(sign_in.get("opter_no") or "") if isinstance(sign_in, dict) else ""
        if not opter:
            return self._refuse("签到经办人[opter_no]不能为空")
        sign_no = uuid.uuid4().hex
        db.execute(
            "INSERT INTO sign_ins (sign_no, opter, sign_date) VALUES (?, ?, ?)", (sign_no, opter, _today().isoformat())
        )
        return self._ok({"signinoutb": {"sign_time": envelope.format_inf_time(), "sign_no": sign_no}})

    def forget_sign_ins(self) -> None:
        """Drop every sign-in number (as a restarted node would): the next message is refused until 9001."""
        with self.store.transaction() as db:
            db.execute("DELETE FROM sign_ins")


# ---------------------------------------------------------------------------
# HTTP
# ---------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], simulator: Simulator) -> None:
        self.simulator = simulator
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "PlatformSimulator/1.0"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's signature
        logger.debug("platform simulator: " + format, *args)

    def _reply(self, status: int, body: bytes, content_type: str = "application/json;charset=utf-8") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, value: Any) -> None:
        self._reply(status, json.dumps(value, ensure_ascii=False).encode("utf-8"))

    def _body(self) -> bytes | None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_REQUEST_BYTES:
            self._json(413, {"error": "request body missing or too large"})
            return None
        return self.rfile.read(length)

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        simulator = self.server.simulator
        parts = urlsplit(self.path)
        if parts.path == "/__control":
            self._json(200, simulator.control())
        elif parts.path == "/__filings":
            psn_nos = parse_qs(parts.query).get("psn_no")
            psn_no = psn_nos[0] if psn_nos else None
            self._json(200, simulator.filings(psn_no))
        elif parts.path == "/__received":
            self._json(200, simulator.received())
        else:
            self._json(200, {"simulator": "national medical-insurance platform", "interfaces": list(INTERFACES)})

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        simulator = self.server.simulator
        body = self._body()
        if body is None:
            return
        path = urlsplit(self.path).path
        try:
            if path == "/__control":
                changes = json.loads(body.decode("utf-8") or "{}")
                if not isinstance(changes, dict):
                    raise ControlError("a JSON object is expected")
                self._json(200, simulator.control(**changes))
                return
            if path == "/__persons":
                self._json(200, {"persons": simulator.load_persons(json.loads(body.decode("utf-8")))})
                return
        except (ValueError, TypeError) as exc:  # ControlError, JSON errors, bad persons
            self._json(400, {"error": str(exc)})
            return
        try:
            outcome = simulator.respond(body)
        except sqlite3.ProgrammingError:  # the store closed under a request during stop()
            outcome = None
        if outcome is None:
            self.close_connection = True
            return
        status, payload = outcome
        with contextlib.suppress(OSError):  # the client gave up (timeouts): nobody to answer
            self._reply(status, payload)
