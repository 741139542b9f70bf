"""Session fixtures shared across the suite: a tiny simulated region, built once."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture(scope="session")
def tiny_region(tmp_path_factory) -> Path:
    """A `tiny` region (seed 7) as Parquet, one folder per table."""
    from training.simulator import simulate

    out = tmp_path_factory.mktemp("tiny") / "region"
    simulate("tiny", seed=7, out=out)
    return out
