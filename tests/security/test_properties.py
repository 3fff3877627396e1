"""Property-based tests (hypothesis) for the 身份证号 parser and the validity-period arithmetic."""

from __future__ import annotations

import calendar
import datetime as dt
from functools import cache
from pathlib import Path

import pytest
import stdnum.cn
from django.utils import translation
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from stdnum.cn import ric

from enrollment.idnumbers import make_id_number, parse_id_number
from enrollment.periods import add_months, period_end
from kernel.errors import InvalidInput

TODAY = dt.date(2026, 1, 1)
PROPERTY_SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@cache
def birthplace_codes() -> list[tuple[str, int, int]]:
    """County codes in python-stdnum's table with the years they were in use: (code, first, last)."""
    codes = []
    province = ""
    for line in (Path(stdnum.cn.__file__).parent / "loc.dat").read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        if not line.startswith(" "):
            province = line.split()[0]
            continue
        code, _space, props = line.strip().partition(" ")
        if code == "0000" or len(province + code) != 6 or 'county="' not in props:
            continue
        county = props.split('county="', 1)[1].split(",")[0]
        first, last = 1900, TODAY.year
        if county.startswith("["):
            years = county[1:].split("]")[0].split("-")
            first = max(first, int(years[0])) if years[0] else first
            last = min(last, int(years[1])) if years[1] else last
        if first <= last:
            codes.append((province + code, first, last))
    return codes


def place_and_birth(entry: tuple[str, int, int]) -> st.SearchStrategy[tuple[str, dt.date]]:
    code, first, last = entry
    latest = min(dt.date(last, 12, 31), TODAY)
    return st.tuples(st.just(code), st.dates(min_value=dt.date(first, 1, 1), max_value=latest))


places_and_births = st.sampled_from(birthplace_codes()).flatmap(place_and_birth)
sexes = st.sampled_from(["1", "2"])


@pytest.fixture(autouse=True)
def _fixed_today(time_machine):
    time_machine.move_to(dt.datetime(2026, 1, 1, 12, 0), tick=False)


# ---------------------------------------------------------------------------
# 身份证号
# ---------------------------------------------------------------------------


def test_the_birthplace_table_is_not_empty():
    codes = {code for code, _first, _last in birthplace_codes()}
    assert len(codes) > 2000 and "530124" in codes


@PROPERTY_SETTINGS
@given(place=places_and_births, sequence=st.integers(0, 999), sex=sexes)
def test_numbers_built_from_components_parse_back_to_them(place, sequence, sex):
    region, born = place
    number = make_id_number(region, born, sequence, sex=sex)
    parsed = parse_id_number(number)
    assert parsed.number == number
    assert parsed.number[:6] == region
    assert parsed.birth_date == born
    assert parsed.sex == sex
    # Surrounding blanks and a lower-case check character normalise to the same number.
    assert parse_id_number(f"  {number.lower()}\t").number == number


@PROPERTY_SETTINGS
@given(
    place=places_and_births,
    sequence=st.integers(0, 999),
    position=st.integers(0, 17),
    replacement=st.sampled_from("0123456789Xx"),
)
def test_any_single_character_change_is_rejected_or_still_checksum_valid(place, sequence, position, replacement):
    region, born = place
    number = make_id_number(region, born, sequence)
    changed = number[:position] + replacement + number[position + 1 :]
    assume(changed.upper() != number)
    try:
        parsed = parse_id_number(changed)
    except InvalidInput as exc:
        assert exc.code == "invalid_id_number" and str(exc.message)
        return
    # Accepted: then it is a different, fully valid number — never a silently "corrected" one.
    assert parsed.number == changed.upper()
    assert ric.calc_check_digit(parsed.number) == parsed.number[-1]
    assert parsed.number != number


@PROPERTY_SETTINGS
@given(place=places_and_births, sequence=st.integers(0, 999))
def test_a_wrong_check_character_is_always_caught(place, sequence):
    region, born = place
    number = make_id_number(region, born, sequence)
    for wrong in "0123456789X":
        if wrong != number[-1]:
            with translation.override("en"), pytest.raises(InvalidInput, match="check digit"):
                parse_id_number(number[:-1] + wrong)


@PROPERTY_SETTINGS
@given(raw=st.one_of(st.text(max_size=40), st.from_regex(r"\A[0-9Xx \-]{0,25}\Z"), st.binary(max_size=30).map(repr)))
@example(raw="")
@example(raw="１１０１０１１９９００３０７７８７５")  # full-width digits
@example(raw="11010119900230787X")  # 30 February
@example(raw="000000199003077875")
@example(raw="\x00" * 18)
def test_any_input_gives_a_parse_or_invalid_input_never_another_exception(raw):
    try:
        parsed = parse_id_number(raw)
    except InvalidInput as exc:
        assert exc.code == "invalid_id_number" and exc.details == {"field": "id_number"}
        return
    assert len(parsed.number) == 18 and ric.is_valid(parsed.number)
    assert parsed.birth_date <= TODAY


@PROPERTY_SETTINGS
@given(
    region=st.sampled_from(["530124", "110101", "440305"]),
    born=st.dates(min_value=dt.date(2026, 1, 2), max_value=dt.date(2099, 12, 31)),
)
def test_birth_dates_in_the_future_are_rejected(region, born):
    with translation.override("en"), pytest.raises(InvalidInput, match="future"):
        parse_id_number(make_id_number(region, born, 1))


# ---------------------------------------------------------------------------
# Validity periods (docs/design.md: Validity, renewal and reminders)
# ---------------------------------------------------------------------------

valid_froms = st.dates(min_value=dt.date(2000, 1, 1), max_value=dt.date(2100, 12, 31))
month_counts = st.integers(min_value=1, max_value=240)


def last_day_of_month(day: dt.date) -> dt.date:
    return day.replace(day=calendar.monthrange(day.year, day.month)[1])


@PROPERTY_SETTINGS
@given(valid_from=valid_froms, months=month_counts)
def test_period_end_is_the_day_before_the_corresponding_day_or_the_month_end(valid_from, months):
    end = period_end(valid_from, months)
    corresponding = add_months(valid_from, months)
    assert end is not None and end >= valid_from
    if corresponding.day == valid_from.day:
        assert end == corresponding - dt.timedelta(days=1)
    else:
        # No corresponding day (31st, 29 Feb): the period ends on that month's last day.
        assert end == corresponding == last_day_of_month(corresponding)
    days = (end - valid_from).days + 1
    assert 28 * months - 3 <= days <= 31 * months


@PROPERTY_SETTINGS
@given(valid_from=valid_froms, months=month_counts, more=st.integers(1, 60))
def test_period_end_grows_with_the_months(valid_from, months, more):
    assert period_end(valid_from, months) < period_end(valid_from, months + more)


@PROPERTY_SETTINGS
@given(first=valid_froms, gap=st.integers(0, 400), months=month_counts)
def test_period_end_never_decreases_with_a_later_start(first, gap, months):
    later = first + dt.timedelta(days=gap)
    assert period_end(first, months) <= period_end(later, months)


@PROPERTY_SETTINGS
@given(valid_from=valid_froms, terms=st.lists(st.sampled_from([12, 24, 36, 60]), min_size=1, max_size=5))
def test_renewals_chain_without_gap_or_overlap(valid_from, terms):
    start = valid_from
    for months in terms:
        end = period_end(start, months)
        assert end >= start
        # The renewal starts the day after (docs/design.md: Validity, renewal and reminders).
        start = end + dt.timedelta(days=1)
    assert start > valid_from


@pytest.mark.parametrize(
    ("valid_from", "months", "expected"),
    [
        (dt.date(2024, 1, 31), 1, dt.date(2024, 2, 29)),
        (dt.date(2023, 1, 31), 1, dt.date(2023, 2, 28)),
        (dt.date(2023, 1, 28), 1, dt.date(2023, 2, 27)),
        (dt.date(2024, 2, 29), 12, dt.date(2025, 2, 28)),
        (dt.date(2024, 2, 29), 36, dt.date(2027, 2, 28)),
        (dt.date(2024, 2, 29), 48, dt.date(2028, 2, 28)),
        (dt.date(2026, 3, 1), 36, dt.date(2029, 2, 28)),
        (dt.date(2026, 1, 15), 36, dt.date(2029, 1, 14)),
        (dt.date(2026, 12, 31), 36, dt.date(2029, 12, 30)),
        (dt.date(2026, 5, 31), 1, dt.date(2026, 6, 30)),
    ],
)
def test_month_end_and_leap_day_cases(valid_from, months, expected):
    assert period_end(valid_from, months) == expected


def test_long_term_has_no_end():
    assert period_end(dt.date(2024, 2, 29), 0) is None
