"""DuckDB's semantics in Python, where the rule kernels need them to give the SQL's very values.

``round(DOUBLE, n)`` (the scaled value rounded half away from zero, not Python's correctly rounded
``round``), ``CAST(... AS VARCHAR)`` and ``CAST(... AS DECIMAL(18, 2))``, ``date_sub('year', ...)``
(a month ending early counts as complete), three-valued logic (``list_contains`` of a NULL is unknown,
and ``NOT unknown`` does not hold) and ``min`` ignoring NULLs.

>>> duck_round(2.675, 2), round(2.675, 2)   # DuckDB rounds the scaled double half away from zero
(2.68, 2.67)
>>> duck_text(Decimal("4.00")), duck_text(2.0), duck_text(None), duck_text(["a", "b"])
('4.00', '2.0', '', '[a, b]')
>>> sql_and(True, contains(["51"], None)), sql_or(True, None), sql_min([None, "b", "a"])
(None, True, 'a')
"""

from __future__ import annotations

import calendar
import math
from datetime import date, datetime
from decimal import Decimal
from typing import Any

__all__ = ["duck_round", "duck_text", "cents", "full_years", "no_dot_zero", "contains", "sql_or", "sql_and",
           "sql_min"]

CENT = Decimal("0.01")


def cents(value: Decimal | float | int | None) -> Decimal | None:
    """``CAST(value AS DECIMAL(18, 2))``."""
    if value is None:
        return None
    if isinstance(value, float):
        value = Decimal(repr(value))
    return Decimal(value).quantize(CENT)


def duck_round(x: float | None, digits: int = 0) -> float | None:
    """DuckDB's ``round(DOUBLE, digits)``: the value times 10^digits rounded half away from zero."""
    if x is None:
        return None
    scale = 10.0 ** digits
    y = x * scale
    r = math.floor(abs(y))
    if abs(y) - r >= 0.5:
        r += 1
    out = math.copysign(r, y) / scale
    return x if math.isinf(out) or math.isnan(out) else out


def duck_text(value: Any) -> str:
    """``coalesce(CAST(value AS VARCHAR), '')`` for the types a rule's detail holds."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, Decimal)):
        return str(value)
    if isinstance(value, float):
        return repr(value)  # DuckDB prints the shortest text that reads back the same double, as repr does
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join("NULL" if v is None else duck_text(v) for v in value) + "]"
    if isinstance(value, (date, datetime)):
        return value.isoformat(sep=" ") if isinstance(value, datetime) else value.isoformat()
    raise TypeError(f"no text form for {type(value).__name__}")


def full_years(born: date, on: date) -> int:
    """DuckDB's ``date_sub('year', born, on)``: whole years, a month ending early counting as complete.

    >>> full_years(date(1996, 2, 29), date(2023, 2, 28)), full_years(date(2000, 5, 2), date(2010, 5, 1))
    (27, 9)
    """
    if born > on:
        return -full_years(on, born)
    months = (on.year - born.year) * 12 + on.month - born.month
    if on.day < born.day and on.day != calendar.monthrange(on.year, on.month)[1]:
        months -= 1
    return months // 12


def no_dot_zero(x: float) -> str:
    """``regexp_replace(CAST(x AS VARCHAR), '\\.0$', '')``."""
    text = duck_text(x)
    return text[:-2] if text.endswith(".0") else text


def contains(values: Any, value: Any) -> bool | None:
    """``list_contains(values, value)``: unknown (None) for a NULL value."""
    return None if value is None else value in values


def sql_or(a: bool | None, b: bool | None) -> bool | None:
    if a is True or b is True:
        return True
    return None if a is None or b is None else False


def sql_and(a: bool | None, b: bool | None) -> bool | None:
    if a is False or b is False:
        return False
    return None if a is None or b is None else True


def sql_min(values: Any) -> Any:
    """SQL ``min``: NULLs ignored, NULL when none is left."""
    return min((v for v in values if v is not None), default=None)
