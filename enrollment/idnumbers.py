"""居民身份证号: validation and normalisation through python-stdnum's ``stdnum.cn.ric``."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import lru_cache

from django.utils import timezone
from django.utils.translation import gettext as _
from stdnum import exceptions as stdnum_exceptions
from stdnum.cn import ric

from kernel.errors import InvalidInput


@dataclass(frozen=True)
class ParsedIdNumber:
    number: str
    birth_date: dt.date
    sex: str  # "1" male, "2" female (GB/T 2261.1)


def parse_id_number(raw: str) -> ParsedIdNumber:
    """Validate and normalise; raise InvalidInput(code="invalid_id_number") with the reason."""
    value = (raw or "").strip()
    try:
        number = ric.validate(value)
    except stdnum_exceptions.InvalidLength:
        raise _invalid(_("An ID number has 18 characters; this one has %(n)d.") % {"n": len(ric.compact(value))})
    except stdnum_exceptions.InvalidFormat:
        raise _invalid(_("The first 17 characters of an ID number must be digits."))
    except stdnum_exceptions.InvalidChecksum:
        raise _invalid(_("The check digit (last character) does not match: the number was probably mistyped."))
    except stdnum_exceptions.InvalidComponent:
        raise _invalid(_("The birth date or the region code inside the ID number does not exist."))
    except stdnum_exceptions.ValidationError:
        raise _invalid(_("This is not a valid ID number."))
    birth_date = ric.get_birth_date(number)
    if birth_date > timezone.localdate():
        raise _invalid(_("The birth date inside the ID number is in the future."))
    sex = "1" if int(number[16]) % 2 == 1 else "2"
    return ParsedIdNumber(number=number, birth_date=birth_date, sex=sex)


@lru_cache(maxsize=65536)
def _birth_place_known(prefix: str, year: int) -> bool:
    try:
        ric.get_birth_place(f"{prefix}{year:04d}0101" + "0000")
    except stdnum_exceptions.ValidationError:
        return False
    return True


def check_id_number(raw: str, today: dt.date) -> tuple[str, str]:
    """(normalised number, "") or (raw value, the reason it is refused): for files of many rows
    (rosters, settlements), where a refused number is a row's report, not an error.

    The same checks as parse_id_number (python-stdnum's ``cn.ric.validate``
    plus "not born in the future"), with the birth-place lookup — most of the cost — cached per
    place and year. Anything the fast path does not accept goes through parse_id_number itself,
    so refusals carry its exact message.
    """
    number = ric.compact(raw or "")
    if len(number) == 18 and number[:-1].isdigit() and number[-1] == ric.calc_check_digit(number):
        try:
            birth = dt.date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
        except ValueError:
            birth = None
        if birth is not None and birth <= today and _birth_place_known(number[:6], birth.year):
            return number, ""
    try:
        return parse_id_number(raw).number, ""
    except InvalidInput as exc:
        return raw, str(exc.message)


def _invalid(message: str) -> InvalidInput:
    return InvalidInput(message, code="invalid_id_number", details={"field": "id_number"})


def make_id_number(region_code: str, birth_date: dt.date, sequence: int, sex: str = "1") -> str:
    """Build a synthetic, checksum-valid number (demo data and tests; never a real person's)."""
    seq = sequence % 1000
    # The sequence's last digit carries the sex: odd male, even female.
    if (seq % 2 == 1) != (sex == "1"):
        seq = (seq + 1) % 1000
    body = f"{region_code}{birth_date:%Y%m%d}{seq:03d}"
    return body + ric.calc_check_digit(body + "0")
