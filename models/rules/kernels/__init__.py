"""Rule kernels (规则内核): the real-time rules as small Python functions, a second implementation of their SQL.

Precheck's SQL path (``models.rules.precheck``) runs each rule's own SQL on one visit; DuckDB plans that
SQL anew for every visit, and planning — not reading one person's rows — is most of its cost (~7 ms for
the shared claim views, 1.5–5 ms per rule). A *kernel* computes, for one visit and the person's
history, exactly the rows the rule's SQL returns, in Python:

* :class:`~models.rules.history.HistoryIndex` — the person's claim rows as columns, built once from the
  checker's store;
* :class:`Lookups` — the knowledge points (the SQL's own subqueries over the 两库 pack, run once) and the
  code lists of the config, as dicts;
* :class:`Claims` — the shared views of ``sql/_base.sql`` (settlements, lines, visits and diagnoses that
  count, refunds left out, the visit's settlement the only one in scope), computed on first use;
* :data:`KERNELS` — rule id → kernel (``liangku.py``: the 两库 rules; ``typology.py``: the others), each
  returning :class:`RuleRow` s that :func:`kernel_hits` wraps into hits as the engine's hit SELECT does;
* ``duck.py`` — DuckDB's semantics where the SQL's values depend on them (``round``, casts to text and
  DECIMAL, ``date_sub``, three-valued logic, ``min`` ignoring NULLs).

The SQL stays the reference: a rule without a kernel runs its SQL, and ``tests/models/test_rules_kernels.py``
checks that every kernel gives the same hits as the SQL (ids, evidence, amounts, messages, detail) on the
hand-built cases and on visits sampled from the ``tiny`` region. A change to a rule's SQL must be made
to its kernel too — the test fails until it is.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from models.rules.kernels import liangku, typology  # noqa: F401  (the kernels register themselves)
from models.rules.kernels.claims import Claims
from models.rules.kernels.hits import RuleRow, hit_values
from models.rules.kernels.lookups import Lookups
from models.rules.kernels.registry import KERNELS, Kernel, kernel_for

__all__ = ["KERNELS", "Kernel", "Claims", "Lookups", "RuleRow", "kernel_for", "kernel_hits"]


def kernel_hits(rule, claims: Claims, *, pack_version: str, run_id: str = "precheck",
                hit_time: datetime | None = None) -> list[dict[str, Any]]:
    """The hits of *rule* on the visit of *claims*, by its kernel: ``rule_hits`` columns, one per hit id."""
    fn = kernel_for(rule)
    if fn is None:
        raise KeyError(f"no kernel for rule {rule.id} (its SQL: {rule.sql_path.name})")
    rows = fn(dict(rule.params), claims)
    if not rows:
        return []
    hit_time = hit_time or datetime.now()
    out: dict[str, dict[str, Any]] = {}
    for row in rows:
        values = hit_values(rule, row, pack_version=pack_version, run_id=run_id, hit_time=hit_time)
        out.setdefault(values["hit_id"], values)  # the SQL keeps one row per hit id too
    return list(out.values())
