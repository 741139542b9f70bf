"""The examples in the rule modules' docstrings run."""

from __future__ import annotations

import doctest
import importlib

import pytest


@pytest.mark.parametrize("module", ["config", "engine", "evaluate", "backtest", "summary", "precheck", "history",
                                    "kernels.duck", "outcomes"])
def test_docstring_examples(module):
    mod = importlib.import_module(f"models.rules.{module}")
    result = doctest.testmod(mod, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0
