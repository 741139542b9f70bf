"""How the report shows values to its reader (报告显示格式): Beijing time, 元, counts, ratios.

Every figure a liaison reads in the report goes through one of these: no scientific notation, amounts in
元 with thousands separators and two decimals, counts as whole numbers with separators, times in Beijing
time (Asia/Shanghai, UTC+8) whatever the zone of the server that exported.

>>> yuan(203500.0), count(12345), ratio(0.87654), plain(2.035e5), plain(0.000123456)
('203,500.00', '12,345', '87.7%', '203,500', '0.0001235')
>>> beijing_time("2026-12-06T09:55:00+00:00")
'2026-12-06 17:55:00（北京时间）'
"""

from __future__ import annotations

import math
from datetime import datetime
from zoneinfo import ZoneInfo

__all__ = ["BEIJING", "beijing_time", "beijing_date_time", "yuan", "count", "ratio", "plain", "signed"]

BEIJING = ZoneInfo("Asia/Shanghai")


def beijing_date_time(value: datetime | str | None) -> datetime | None:
    """``value`` as an aware datetime in Beijing time. A naive value is the exporting machine's local time
    (the clue store writes ``datetime.now()``), an ISO string is parsed first."""
    if value is None or value == "":
        return None
    when = datetime.fromisoformat(value) if isinstance(value, str) else value
    if when.tzinfo is None:
        when = when.astimezone()  # naive: the local time of this machine
    return when.astimezone(BEIJING)


def beijing_time(value: datetime | str | None) -> str:
    """``2026-12-06 17:55:00（北京时间）``; empty for no time.

    >>> beijing_time("2026-01-01T16:00:00+00:00")
    '2026-01-02 00:00:00（北京时间）'
    """
    when = beijing_date_time(value)
    return "" if when is None else f"{when:%Y-%m-%d %H:%M:%S}（北京时间）"


def yuan(value) -> str:
    """An amount in 元: ``1,234.50`` (empty for none)."""
    return "" if _missing(value) else f"{float(value):,.2f}"


def count(value) -> str:
    """A count: ``12,345`` (empty for none)."""
    return "" if _missing(value) else f"{round(float(value)):,d}"


def ratio(value, digits: int = 1) -> str:
    """A share as a percentage: ``87.7%``."""
    return "" if _missing(value) else f"{float(value) * 100:.{digits}f}%"


def plain(value, significant: int = 4) -> str:
    """A number of unknown unit, rounded to ``significant`` digits, never in scientific notation:
    thousands separated from 1,000 up, no trailing zeros.

    >>> plain(1234567.891), plain(12.5), plain(-0.5), plain(3.0), plain(None)
    ('1,234,568', '12.5', '-0.5', '3', '')
    """
    if _missing(value):
        return ""
    x = float(value)
    if x == 0 or not math.isfinite(x):
        return "0" if x == 0 else str(x)
    if abs(x) >= 1000:
        return f"{round(x):,d}"
    decimals = max(0, significant - 1 - math.floor(math.log10(abs(x))))
    text = f"{x:.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def signed(value, decimals: int = 3) -> str:
    """A model contribution (SHAP, log-odds) with its sign: ``+0.412``."""
    return "" if _missing(value) else f"{float(value):+.{decimals}f}"


def _missing(value) -> bool:
    if value is None or value == "":
        return True
    try:
        return math.isnan(float(value))
    except (TypeError, ValueError):
        return True
