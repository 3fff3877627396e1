import datetime as dt

import pytest
import time_machine
from django.utils import translation

from enrollment.idnumbers import make_id_number, parse_id_number
from enrollment.models import mask_id_number
from kernel.errors import InvalidInput


@pytest.fixture(autouse=True)
def _english_messages():
    """Messages are asserted in their English source form; zh-hans is the default language."""
    with translation.override("en"):
        yield


def _with_check_digit(body: str) -> str:
    from stdnum.cn import ric

    return body + ric.calc_check_digit(body + "0")


GOOD = make_id_number("530124", dt.date(1958, 2, 28), 123, sex="1")


def test_valid_number_is_normalised_and_sex_birth_date_derived():
    parsed = parse_id_number(f"  {GOOD[:-1]}{GOOD[-1].lower()} ")
    assert parsed.number == GOOD
    assert parsed.birth_date == dt.date(1958, 2, 28)
    assert parsed.sex == "1"


def test_female_when_17th_digit_even():
    number = make_id_number("530124", dt.date(1970, 1, 1), 124, sex="2")
    assert int(number[16]) % 2 == 0
    assert parse_id_number(number).sex == "2"


def test_x_check_digit_is_accepted_uppercased():
    # find a synthetic number whose check digit is X
    number = next(
        n for n in (make_id_number("530124", dt.date(1966, 6, 6), s) for s in range(1, 999, 2)) if n.endswith("X")
    )
    assert parse_id_number(number.lower()).number == number


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (GOOD[:-1] + ("0" if GOOD[-1] != "0" else "1"), "check digit"),
        (GOOD[:17], "18 characters"),
        ("53012419580228A23X", "digits"),
        (_with_check_digit("53012419580230123"), "birth date"),
        ("", "18 characters"),
    ],
)
def test_invalid_numbers_give_invalid_id_number_with_reason(raw, fragment):
    with pytest.raises(InvalidInput) as info:
        parse_id_number(raw)
    assert info.value.code == "invalid_id_number"
    assert fragment in str(info.value.message)


def test_unknown_birth_place_is_rejected():
    body = "999999" + "19600101" + "123"
    from stdnum.cn import ric

    with pytest.raises(InvalidInput) as info:
        parse_id_number(body + ric.calc_check_digit(body + "0"))
    assert info.value.code == "invalid_id_number"


@time_machine.travel(dt.datetime(2026, 1, 1, 12, 0))
def test_birth_date_in_future_is_rejected():
    number = make_id_number("530124", dt.date(2026, 6, 1), 11)
    with pytest.raises(InvalidInput, match="future"):
        parse_id_number(number)


def test_mask_keeps_first_three_and_last_four():
    assert mask_id_number("11010519491231002X") == "110***********002X"
    assert len(mask_id_number(GOOD)) == 18
