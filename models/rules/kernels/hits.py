"""From a kernel's rows to hits: what the engine's hit SELECT (:func:`~models.rules.engine.hit_select`) does.

A kernel returns :class:`RuleRow` s — the columns a rule's SQL returns (:data:`~models.rules.engine.RULE_OUTPUT`),
``detail`` holding values of the types the SQL gives them (``Decimal`` for DECIMAL, ``float`` for DOUBLE,
``int`` for integers, ``str`` for text and dates cast to text). :func:`hit_values` wraps one the way the
SQL wrapper does: the hit id (MD5 of rule id, entity and the sorted evidence), the rule's version,
typology, severity, the policy basis and message filled from ``detail`` as DuckDB casts each value to
text, ``detail`` as its JSON round trip. :func:`duck_round` and :func:`duck_text` are DuckDB's
``round(DOUBLE, n)`` and ``CAST(... AS VARCHAR)``, which the kernels use where the SQL does.

>>> duck_round(2.675, 2), round(2.675, 2)   # DuckDB rounds the scaled double half away from zero
(2.68, 2.67)
>>> duck_text(Decimal("4.00")), duck_text(2.0), duck_text(None), duck_text(["a", "b"])
('4.00', '2.0', '', '[a, b]')
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Mapping

__all__ = ["RuleRow", "hit_values", "duck_round", "duck_text", "cents"]

_PLACEHOLDER = re.compile(r"\{([a-z][a-z0-9_]*)\}")
CENT = Decimal("0.01")


@dataclass(frozen=True)
class RuleRow:
    """One row a rule returns (the rule SQL's output columns)."""

    entity_type: str
    entity_id: str
    setl_id: str | None
    mdtrt_id: str | None
    psn_no: str | None
    fixmedins_code: str | None
    prac_code: str | None
    evidence: tuple[str, ...]
    amount_at_risk: Decimal | None
    event_time: datetime | None
    detail: Mapping[str, Any] = field(default_factory=dict)


def hit_values(rule, row: RuleRow, *, pack_version: str, run_id: str, hit_time: datetime) -> dict[str, Any]:
    """The ``rule_hits`` columns of *row* (keyword arguments of ``precheck.Hit``)."""
    evidence = tuple(row.evidence)
    key = "|".join((rule.id, row.entity_type, row.entity_id, ",".join(sorted(evidence))))
    return {
        "hit_id": hashlib.md5(key.encode("utf-8")).hexdigest(), "run_id": run_id, "rule_id": rule.id,
        "rule_version": rule.version, "pack_version": pack_version, "typology_id": rule.typology_id,
        "basis_zh": _render(rule.basis_zh, row.detail), "entity_type": row.entity_type,
        "entity_id": row.entity_id, "setl_id": row.setl_id, "mdtrt_id": row.mdtrt_id, "psn_no": row.psn_no,
        "fixmedins_code": row.fixmedins_code, "prac_code": row.prac_code, "evidence": evidence,
        "amount_at_risk": cents(row.amount_at_risk), "severity": rule.severity,
        "message_zh": _render(rule.message_zh, row.detail), "event_time": row.event_time, "hit_time": hit_time,
        "detail": {k: _json(v) for k, v in row.detail.items()},
    }


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


def _render(template: str, detail: Mapping[str, Any]) -> str:
    return _PLACEHOLDER.sub(lambda m: duck_text(detail.get(m.group(1))), template)


def _json(value: Any) -> Any:
    """The value as ``json.loads(to_json(value))`` gives it back."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, (list, tuple)):
        return [_json(v) for v in value]
    return value
