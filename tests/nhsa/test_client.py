"""The platform client over real HTTP against the simulator on 127.0.0.1 (no mocks of the client).

Keys for the SM4/SM2 tests are made here: gmssl has no SM2 key generation, so ``sm2_generate_keypair`` draws
the private key with ``secrets`` and computes the public key with gmssl's curve arithmetic (d·G).
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from nhsa import envelope
from nhsa.client import PlatformClient, PlatformNotConfigured, PlatformUnavailable, forget_sign_in, platform_enabled
from nhsa.envelope import LONG_TERM_ENDDATE, PlatformConfig, new_msgid
from nhsa.simulator import Simulator

FIXMEDINS = "P53012400001"
CERTNO = "530124198001011234"
OTHER_CERTNO = "530124199002023456"

_sequence = iter(range(1, 10000))


def msgid() -> str:
    return new_msgid(FIXMEDINS, envelope.platform_time(), next(_sequence))


def filing(psn_no: str, **changes: Any) -> dict[str, Any]:
    return {
        "psn_no": psn_no,
        "insutype": "390",
        "opsp_dise_code": "M03900",
        "opsp_dise_name": "高血压病",
        "tel": "13800000000",
        "addr": "",
        "insu_optins": "530124",
        "ide_fixmedins_no": "H53012401",
        "ide_fixmedins_name": "富民县人民医院",
        "hosp_ide_date": dt.date(2026, 1, 5),
        "diag_dr_codg": "D530124000001",
        "diag_dr_name": "李医生",
        "begndate": dt.date(2026, 2, 1),
        "enddate": dt.date(2029, 1, 31),
        **changes,
    }


def configure(settings: Any, url: str, **changes: Any) -> None:
    settings.PLATFORM_URL = url
    settings.PLATFORM_FIXMEDINS_CODE = FIXMEDINS
    settings.PLATFORM_FIXMEDINS_NAME = "富民县医疗保障局"
    settings.PLATFORM_OPTER = "tester"
    settings.PLATFORM_OPTER_NAME = "测试经办人"
    settings.PLATFORM_INSU_ADMDVS = "530124"
    settings.PLATFORM_INFVER = "V1.0"
    settings.PLATFORM_TIMEOUT = 1
    settings.PLATFORM_SIGNIN_REQUIRED = False
    settings.PLATFORM_CRYPTO = "none"
    for name, value in changes.items():
        setattr(settings, f"PLATFORM_{name.upper()}", value)


@pytest.fixture(autouse=True)
def _no_kept_sign_in() -> Iterator[None]:
    forget_sign_in()
    yield
    forget_sign_in()


@pytest.fixture
def simulator(tmp_path: Any) -> Iterator[Simulator]:
    sim = Simulator(tmp_path / "platform.sqlite3", timeout_seconds=2.5)
    sim.start()
    sim.add_person(CERTNO, "530124000000000001", "张三", "390", "530124")
    yield sim
    sim.stop()


@pytest.fixture
def client(simulator: Simulator, settings: Any) -> PlatformClient:
    configure(settings, simulator.url)
    return PlatformClient()


# ---------------------------------------------------------------------------
# Settings and the envelope
# ---------------------------------------------------------------------------


def test_the_loop_is_off_without_a_url(settings):
    settings.PLATFORM_URL = ""
    assert platform_enabled() is False
    with pytest.raises(PlatformNotConfigured):
        PlatformClient()
    settings.PLATFORM_URL = "http://127.0.0.1:9/"
    assert platform_enabled() is True


def test_msgid_is_sender_time_and_sequence_on_the_platforms_clock():
    utc = dt.datetime(2026, 3, 15, 1, 30, 0, tzinfo=dt.UTC)  # 09:30 in Asia/Shanghai
    value = new_msgid(FIXMEDINS, utc, 12345)
    assert value == "P53012400001" + "20260315093000" + "2345"
    assert len(value) == 30


def test_request_envelope_has_every_field_the_platform_documents():
    config = PlatformConfig(
        url="http://x/", fixmedins_code=FIXMEDINS, fixmedins_name="局", opter="o", insu_admdvs="530124"
    )
    request = envelope.build_request("1101", {"data": {}}, "m" * 30, config, sign_no="s")
    assert set(request) == {
        "infno",
        "msgid",
        "mdtrtarea_admvs",
        "insuplc_admdvs",
        "recer_sys_code",
        "dev_no",
        "dev_safe_info",
        "cainfo",
        "signtype",
        "infver",
        "opter_type",
        "opter",
        "opter_name",
        "inf_time",
        "fixmedins_code",
        "fixmedins_name",
        "sign_no",
        "input",
    }
    assert request["infver"] == "V1.0" and request["sign_no"] == "s" and request["insuplc_admdvs"] == "530124"
    dt.datetime.strptime(request["inf_time"], "%Y-%m-%d %H:%M:%S")


def test_parse_answer_reads_codes_and_already_done_markers():
    repeat = {"infcode": "-1", "err_msg": "该人员已备案，不能重复备案", "output": None}
    done = envelope.parse_answer(repeat, infno="2503")
    assert (done.ok, done.code, done.already_done, done.output) == (False, -1, True, {})
    refused = envelope.parse_answer({"infcode": -1, "err_msg": "未查询到人员信息"}, infno="2503")
    assert (refused.ok, refused.already_done) == (False, False)
    assert envelope.parse_answer({"infcode": 0, "output": {"x": 1}}, infno="1101").ok
    with pytest.raises(envelope.EnvelopeError):
        envelope.parse_answer({"err_msg": "no code"})


# ---------------------------------------------------------------------------
# 1101, 2503, 2504, 5301 against the simulator
# ---------------------------------------------------------------------------


def test_person_lookup_found(client):
    answer = client.person_lookup(CERTNO, psn_name="张三")
    assert answer.ok and answer.code == 0 and not answer.already_done
    base = answer.output["baseinfo"]
    assert (base["psn_no"], base["psn_name"], base["certno"], base["gend"], base["brdy"]) == (
        "530124000000000001",
        "张三",
        CERTNO,
        "1",
        "1980-01-01",
    )
    assert answer.output["insuinfo"][0]["insutype"] == "390"
    assert answer.output["insuinfo"][0]["insuplc_admdvs"] == "530124"
    assert len(answer.msgid) == 30 and answer.msgid.startswith(FIXMEDINS)


def test_person_lookup_not_found(client):
    answer = client.person_lookup(OTHER_CERTNO)
    assert (answer.ok, answer.code, answer.message) == (False, -1, "未查询到人员信息")


def test_auto_persons_derive_a_stable_psn_no(client, simulator):
    simulator.control(auto_persons=True)
    first = client.person_lookup(OTHER_CERTNO, psn_name="李四")
    again = client.person_lookup(OTHER_CERTNO)
    assert first.ok and again.ok
    assert first.output["baseinfo"]["psn_no"] == again.output["baseinfo"]["psn_no"]
    assert first.output["baseinfo"]["psn_no"].startswith("530124")
    assert again.output["baseinfo"]["psn_name"] == "李四"


def test_filing_gives_a_serial_and_a_repeat_is_already_filed_with_the_same_serial(client, simulator):
    psn_no = "530124000000000001"
    first = client.file_enrollment(filing(psn_no), msgid=msgid())
    assert first.ok and not first.already_done
    serial = first.trt_dcla_detl_sn
    assert serial and first.output == {"result": {"trt_dcla_detl_sn": serial}}

    again = client.file_enrollment(filing(psn_no), msgid=msgid())  # a new message for the same filing
    assert (again.ok, again.already_done, again.code) == (False, True, -1)
    assert "已备案" in again.message
    assert again.trt_dcla_detl_sn == serial
    assert len(simulator.filings()) == 1


def test_the_same_msgid_replayed_gets_the_same_answer(client, simulator):
    psn_no = "530124000000000001"
    message_id = msgid()
    first = client.file_enrollment(filing(psn_no), msgid=message_id)
    replay = client.file_enrollment(filing(psn_no), msgid=message_id)
    assert first.ok and replay.ok and not replay.already_done
    assert replay.output == first.output and replay.refmsgid == first.refmsgid
    assert len(simulator.filings()) == 1
    assert [item["msgid"] for item in simulator.received("2503")] == [message_id, message_id]


def test_a_refused_filing_is_not_ok_and_not_already_done(client):
    answer = client.file_enrollment(filing("530124009999999999"), msgid=msgid())
    assert (answer.ok, answer.already_done, answer.message) == (False, False, "未查询到人员信息")
    wrong_type = client.file_enrollment(filing("530124000000000001", insutype="310"), msgid=msgid())
    assert not wrong_type.ok and "险种" in wrong_type.message


def test_long_term_filing_is_sent_with_the_open_end(client, simulator):
    answer = client.file_enrollment(filing("530124000000000001", enddate=None), msgid=msgid())
    assert answer.ok
    (held,) = simulator.filings()
    assert held["enddate"] == LONG_TERM_ENDDATE.isoformat() == "2099-12-31"
    assert held["data"]["hosp_ide_date"] == "2026-01-05" and held["data"]["diag_dr_codg"] == "D530124000001"


def test_cancel_then_cancel_again_is_already_done(client, simulator):
    psn_no = "530124000000000001"
    serial = client.file_enrollment(filing(psn_no), msgid=msgid()).trt_dcla_detl_sn
    cancelled = client.cancel_enrollment(serial, psn_no, "terminated", msgid=msgid())
    assert cancelled.ok and not cancelled.already_done
    again = client.cancel_enrollment(serial, psn_no, "terminated", msgid=msgid())
    assert (again.ok, again.already_done) == (False, True)
    assert "已撤销" in again.message
    (held,) = simulator.filings()
    assert held["vali_flag"] == "0" and held["cancel_memo"] == "terminated"
    unknown = client.cancel_enrollment("530124209900000000", psn_no, "x", msgid=msgid())
    assert (unknown.ok, unknown.already_done) == (False, False)
    assert "未查询到" in unknown.message


def test_a_cancelled_disease_can_be_filed_again(client):
    psn_no = "530124000000000001"
    serial = client.file_enrollment(filing(psn_no), msgid=msgid()).trt_dcla_detl_sn
    assert client.cancel_enrollment(serial, psn_no, "", msgid=msgid()).ok
    refiled = client.file_enrollment(filing(psn_no), msgid=msgid())
    assert refiled.ok and refiled.trt_dcla_detl_sn != serial


def test_query_lists_the_persons_filings_with_their_state(client):
    psn_no = "530124000000000001"
    kept = client.file_enrollment(filing(psn_no), msgid=msgid()).trt_dcla_detl_sn
    gone = client.file_enrollment(
        filing(psn_no, opsp_dise_code="M01600", opsp_dise_name="糖尿病", enddate=None), msgid=msgid()
    ).trt_dcla_detl_sn
    assert client.cancel_enrollment(gone, psn_no, "", msgid=msgid()).ok

    answer = client.query_enrollments(psn_no)
    assert answer.ok
    rows = {row["trt_dcla_detl_sn"]: row for row in answer.output["feedetail"]}
    assert set(rows) == {kept, gone}
    assert (rows[kept]["opsp_dise_code"], rows[kept]["begndate"], rows[kept]["enddate"], rows[kept]["vali_flag"]) == (
        "M03900",
        "2026-02-01",
        "2029-01-31",
        "1",
    )
    gone_row = rows[gone]
    assert (gone_row["opsp_dise_name"], gone_row["enddate"], gone_row["vali_flag"]) == ("糖尿病", "2099-12-31", "0")
    assert not client.query_enrollments("530124009999999999").ok


# ---------------------------------------------------------------------------
# Faults: the caller gets PlatformUnavailable and retries with the same msgid
# ---------------------------------------------------------------------------


def test_a_timeout_then_success(client, simulator):
    simulator.control(timeout_next=1)  # sleeps 2.5 s, past the client's 1 s, then files: the answer is lost
    message_id = msgid()
    started = time.monotonic()
    with pytest.raises(PlatformUnavailable) as raised:
        client.file_enrollment(filing("530124000000000001"), msgid=message_id)
    assert time.monotonic() - started < 2.4
    assert raised.value.msgid == message_id and "1 s" in str(raised.value)

    retried = client.file_enrollment(filing("530124000000000001"), msgid=message_id)
    assert retried.ok
    time.sleep(2)  # the first delivery wakes up and is answered from the msgid: still one filing
    assert len(simulator.filings()) == 1
    assert simulator.filings()[0]["trt_dcla_detl_sn"] == retried.trt_dcla_detl_sn


def test_a_5xx_storm_then_recovery(client, simulator):
    simulator.control(fail_next=3)
    message_id = msgid()
    for _ in range(3):
        with pytest.raises(PlatformUnavailable) as raised:
            client.file_enrollment(filing("530124000000000001"), msgid=message_id)
        assert raised.value.status == 500
    assert simulator.filings() == []  # a 500 did nothing
    recovered = client.file_enrollment(filing("530124000000000001"), msgid=message_id)
    assert recovered.ok and len(simulator.filings()) == 1
    assert [item["fault"] for item in simulator.received("2503")] == ["fail", "fail", "fail", ""]


def test_a_lost_answer_is_recovered_by_the_same_msgid(client, simulator):
    simulator.control(lose_answer_next=1)
    message_id = msgid()
    with pytest.raises(PlatformUnavailable):
        client.file_enrollment(filing("530124000000000001"), msgid=message_id)
    assert len(simulator.filings()) == 1  # the platform did file it
    again = client.file_enrollment(filing("530124000000000001"), msgid=message_id)
    assert again.ok and again.trt_dcla_detl_sn == simulator.filings()[0]["trt_dcla_detl_sn"]


def test_a_duplicate_answer_is_already_done_with_the_serial(client, simulator):
    simulator.control(duplicate_next=1)
    answer = client.file_enrollment(filing("530124000000000001"), msgid=msgid())
    assert answer.already_done and answer.trt_dcla_detl_sn == simulator.filings()[0]["trt_dcla_detl_sn"]


def test_unreadable_answers_and_refused_connections_are_unavailable(client, simulator, settings):
    simulator.control(garbage_next=1)
    with pytest.raises(PlatformUnavailable, match="not JSON"):
        client.person_lookup(CERTNO)
    assert client.person_lookup(CERTNO).ok

    url = simulator.url
    simulator.stop()
    settings.PLATFORM_URL = url
    with pytest.raises(PlatformUnavailable, match="cannot reach"):
        PlatformClient().person_lookup(CERTNO)


def test_the_control_endpoint_scripts_faults_over_http(client, simulator):
    def post(path: str, value: Any) -> tuple[int, Any]:
        request = urllib.request.Request(
            simulator.url + path, data=json.dumps(value).encode(), method="POST", headers={"Content-Type": "x"}
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - loopback
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    status, state = post("__control", {"fail_next": 2, "latency_ms": 0})
    assert status == 200 and state["fail_next"] == 2
    assert post("__control", {"nonsense": 1})[0] == 400
    assert post("__persons", [{"certno": OTHER_CERTNO, "psn_no": "530124000000000002", "psn_name": "李四"}]) == (
        200,
        {"persons": 1},
    )
    for _ in range(2):
        with pytest.raises(PlatformUnavailable):
            client.person_lookup(OTHER_CERTNO)
    assert client.person_lookup(OTHER_CERTNO).output["baseinfo"]["psn_no"] == "530124000000000002"


def test_persons_file_and_the_store_survive_a_restart(tmp_path, settings):
    persons = tmp_path / "persons.json"
    persons.write_text(
        json.dumps([{"certno": CERTNO, "psn_no": "530124000000000001", "psn_name": "张三", "insutype": "310"}]),
        encoding="utf-8",
    )
    store = tmp_path / "store.sqlite3"
    with Simulator(store) as first:
        assert first.load_persons(persons) == 1
        configure(settings, first.url)
        serial = PlatformClient().file_enrollment(filing("530124000000000001", insutype="310"), msgid=msgid())
        assert serial.ok
    with Simulator(store) as second:
        configure(settings, second.url)
        answer = PlatformClient().query_enrollments("530124000000000001")
        assert [row["trt_dcla_detl_sn"] for row in answer.output["feedetail"]] == [serial.trt_dcla_detl_sn]


# ---------------------------------------------------------------------------
# 9001 sign-in
# ---------------------------------------------------------------------------


def test_sign_in_when_required(simulator, settings):
    simulator.control(signin_required=True)
    configure(settings, simulator.url, signin_required=False)
    refused = PlatformClient().person_lookup(CERTNO)
    assert not refused.ok and "签到" in refused.message

    configure(settings, simulator.url, signin_required=True)
    client = PlatformClient()
    assert client.person_lookup(CERTNO).ok
    assert client.query_enrollments("530124000000000001").ok
    assert len(simulator.received("9001")) == 1  # kept for the day
    sign_no = simulator.received("1101")[-1]["sign_no"]
    assert len(sign_no) == 32 and simulator.received("5301")[-1]["sign_no"] == sign_no

    simulator.forget_sign_ins()  # the node restarted: the refusal makes the client sign in again, same msgid
    message_id = msgid()
    answer = client.file_enrollment(filing("530124000000000001"), msgid=message_id)
    assert answer.ok
    assert len(simulator.received("9001")) == 2
    assert [item["msgid"] for item in simulator.received("2503")] == [message_id, message_id]


def test_sign_in_answer_carries_the_number(client, simulator):
    answer = client.sign_in()
    assert answer.ok and len(answer.output["signinoutb"]["sign_no"]) == 32
    dt.datetime.strptime(answer.output["signinoutb"]["sign_time"], "%Y-%m-%d %H:%M:%S")


# ---------------------------------------------------------------------------
# SM4 + SM2
# ---------------------------------------------------------------------------


@pytest.fixture
def keys() -> dict[str, str]:
    ours_private, ours_public = envelope.sm2_generate_keypair()
    platform_private, platform_public = envelope.sm2_generate_keypair()
    return {
        "sm4": secrets.token_hex(16),
        "private": ours_private,
        "public": ours_public,
        "platform_private": platform_private,
        "platform_public": platform_public,
    }


@pytest.fixture
def sealed(tmp_path: Any, keys: dict[str, str], settings: Any) -> Iterator[tuple[Simulator, PlatformClient]]:
    sim = Simulator(
        tmp_path / "sealed.sqlite3",
        crypto="sm4sm2",
        sm4_key=keys["sm4"],
        client_public_key=keys["public"],
        private_key=keys["platform_private"],
    )
    sim.start()
    sim.add_person(CERTNO, "530124000000000001", "张三", "390", "530124")
    assert sim.public_key == keys["platform_public"]
    configure(
        settings,
        sim.url,
        crypto="sm4sm2",
        sm4_key=keys["sm4"],
        sm2_private_key=keys["private"],
        sm2_public_key="04" + keys["public"],  # the uncompressed form is accepted too
        sm2_platform_public_key=keys["platform_public"],
    )
    yield sim, PlatformClient()
    sim.stop()


def test_generated_keys_are_on_the_curve_and_sign(keys):
    from gmssl import sm2

    table = sm2.default_ecc_table
    p, a, b = (int(table[name], 16) for name in ("p", "a", "b"))
    x, y = int(keys["public"][:64], 16), int(keys["public"][64:], 16)
    assert (y * y - (x**3 + a * x + b)) % p == 0
    signature = envelope.sm2_sign(keys["private"], keys["public"], b"body")
    assert envelope.sm2_verify(keys["public"], signature, b"body")
    assert not envelope.sm2_verify(keys["public"], signature, b"bodY")
    assert not envelope.sm2_verify(keys["platform_public"], signature, b"body")


def test_sealed_message_hides_the_input_and_round_trips(keys):
    ours = envelope.Sm4Sm2(keys["sm4"], keys["private"], keys["public"], keys["platform_public"])
    theirs = envelope.Sm4Sm2(keys["sm4"], keys["platform_private"], keys["platform_public"], keys["public"])
    config = PlatformConfig(url="http://x/", fixmedins_code=FIXMEDINS)
    request = envelope.build_request("1101", {"data": {"certno": CERTNO}}, msgid(), config)
    on_the_wire = envelope.seal(request, "input", ours)
    assert isinstance(on_the_wire["input"], str) and CERTNO not in json.dumps(on_the_wire)
    assert on_the_wire["signtype"] == "SM2" and on_the_wire["cainfo"]
    assert envelope.unseal(on_the_wire, "input", theirs)["input"] == {"data": {"certno": CERTNO}}
    tampered = {**on_the_wire, "opter": "someone else"}
    with pytest.raises(envelope.SignatureError):
        envelope.unseal(tampered, "input", theirs)


def test_the_whole_loop_with_sm4_and_sm2(sealed):
    simulator, client = sealed
    person = client.person_lookup(CERTNO)
    assert person.ok and person.output["baseinfo"]["psn_no"] == "530124000000000001"
    filed = client.file_enrollment(filing("530124000000000001"), msgid=msgid())
    assert filed.ok and filed.trt_dcla_detl_sn
    again = client.file_enrollment(filing("530124000000000001"), msgid=msgid())
    assert again.already_done and again.trt_dcla_detl_sn == filed.trt_dcla_detl_sn
    listed = client.query_enrollments("530124000000000001")
    assert [row["trt_dcla_detl_sn"] for row in listed.output["feedetail"]] == [filed.trt_dcla_detl_sn]
    assert client.cancel_enrollment(filed.trt_dcla_detl_sn, "530124000000000001", "", msgid=msgid()).ok
    assert all(item["sealed"] for item in simulator.received())


def test_sign_in_with_sm4_and_sm2(sealed, settings):
    simulator, _ = sealed
    simulator.control(signin_required=True)
    settings.PLATFORM_SIGNIN_REQUIRED = True
    assert PlatformClient().person_lookup(CERTNO).ok
    assert len(simulator.received("9001")) == 1


def test_a_tampered_signature_is_refused_by_the_simulator(sealed, keys):
    simulator, client = sealed
    ours = envelope.Sm4Sm2(keys["sm4"], keys["private"], keys["public"], keys["platform_public"])
    request = envelope.seal(
        envelope.build_request("2503", envelope.filing_input(filing("530124000000000001")), msgid(), client.config),
        "input",
        ours,
    )
    request["inf_time"] = "2026-01-01 00:00:00"  # changed after signing
    raw = urllib.request.Request(simulator.url, data=json.dumps(request).encode(), method="POST")
    with urllib.request.urlopen(raw, timeout=5) as response:  # noqa: S310 - loopback
        answer = envelope.parse_answer(envelope.unseal(json.loads(response.read()), "output", ours))
    assert (answer.ok, answer.code, answer.message) == (False, -1, "数字签名验证失败")
    assert simulator.filings() == []


def test_a_client_signing_with_the_wrong_key_is_refused(sealed, settings):
    simulator, _ = sealed
    settings.PLATFORM_SM2_PRIVATE_KEY, _public = envelope.sm2_generate_keypair()
    answer = PlatformClient().file_enrollment(filing("530124000000000001"), msgid=msgid())
    assert (answer.ok, answer.already_done, answer.message) == (False, False, "数字签名验证失败")
    assert simulator.filings() == []


def test_an_answer_not_signed_by_the_platform_is_unavailable(sealed, settings):
    settings.PLATFORM_SM2_PLATFORM_PUBLIC_KEY = envelope.sm2_generate_keypair()[1]
    with pytest.raises(PlatformUnavailable, match="signature"):
        PlatformClient().person_lookup(CERTNO)


def test_crypto_settings_are_checked(settings, keys):
    configure(settings, "http://127.0.0.1:9/", crypto="sm4sm2", sm4_key="abc")
    with pytest.raises(PlatformNotConfigured, match="PLATFORM_SM4_KEY"):
        PlatformClient()
