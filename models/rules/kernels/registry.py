"""The kernel registry: rule id -> the Python function that gives the rows of the rule's SQL for one visit."""

from __future__ import annotations

from typing import Any, Callable

from models.rules.kernels.claims import Claims
from models.rules.kernels.hits import RuleRow

__all__ = ["Kernel", "KERNELS", "kernel"]

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
