"""The kernel registry: rule id -> the Python function that gives the rows of the rule's SQL for one visit."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from models.rules.config import SQL_DIR
from models.rules.kernels.claims import Claims
from models.rules.kernels.hits import RuleRow

__all__ = ["Kernel", "KERNELS", "kernel", "kernel_for"]

# A kernel: (the rule's params from rules.yaml, the visit's claim views) -> the rows the rule's SQL returns.
Kernel = Callable[[dict[str, Any], Claims], list[RuleRow]]
KERNELS: dict[str, Kernel] = {}


def kernel(rule_id: str) -> Callable[[Kernel], Kernel]:
    """Register the decorated function as the kernel of *rule_id* (one per rule)."""
    def register(fn: Kernel) -> Kernel:
        if rule_id in KERNELS:
            raise ValueError(f"two kernels for rule {rule_id}")
        KERNELS[rule_id] = fn
        return fn
    return register


def kernel_for(rule: Any) -> Kernel | None:
    """The kernel of *rule*, or None: none registered, or the rule's config points it at another SQL file
    than the ``<rule id>.sql`` its kernel re-implements (a rule with its own SQL runs that SQL)."""
    fn = KERNELS.get(rule.id)
    if fn is None or Path(rule.sql_path).name != f"{rule.id}.sql" or Path(rule.sql_path).parent != SQL_DIR:
        return None
    return fn
