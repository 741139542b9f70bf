"""From a kernel's rows to hits: what the engine's hit SELECT (:func:`~models.rules.engine.hit_select`) does.

A kernel returns :class:`RuleRow` s — the columns a rule's SQL returns (:data:`~models.rules.engine.RULE_OUTPUT`),
``detail`` holding values of the types the SQL gives them (``Decimal`` for DECIMAL, ``float`` for DOUBLE,
``int`` for integers, ``str`` for text and dates cast to text). :func:`hit_values` wraps one the way the
SQL wrapper does: the hit id (MD5 of rule id, entity and the sorted evidence), the rule's version,
typology, severity, the policy basis and message filled from ``detail`` as DuckDB casts each value to
text (:func:`~models.rules.kernels.duck.duck_text`), ``detail`` as its JSON round trip.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Mapping

from models.rules.kernels.duck import cents, duck_text

__all__ = ["RuleRow", "hit_values", "line_row"]

_PLACEHOLDER = re.compile(r"\{([a-z][a-z0-9_]*)\}")


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


def line_row(ln: Any, detail: dict[str, Any]) -> RuleRow:
    """A hit on one fee line: evidence and amount at risk = the line."""
    return RuleRow("line", ln.bkkp_sn, ln.setl_id, ln.mdtrt_id, ln.psn_no, ln.fixmedins_code, ln.bilg_dr_code,
                   (ln.bkkp_sn,), ln.det_item_fee_sumamt, ln.setl.setl_time, detail)


def _render(template: str, detail: Mapping[str, Any]) -> str:
    return _PLACEHOLDER.sub(lambda m: duck_text(detail.get(m.group(1))), template)


def _json(value: Any) -> Any:
    """The value as ``json.loads(to_json(value))`` gives it back."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, (list, tuple)):
        return [_json(v) for v in value]
    return value
