"""Session fixtures for the rule-engine tests: the hand-built case warehouse and the tiny region's warehouse."""

from __future__ import annotations
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from rules_mini import case_region
from features.warehouse import copy_warehouse


@pytest.fixture(scope="session")
def case_region_rows():
    """The hand-built rule cases (rules_mini.case_region)."""
    return case_region()


@pytest.fixture(scope="session")
def case_warehouse(tmp_path_factory, case_region_rows) -> Path:
    """The cases written to a warehouse, the committed rules run once over it (read it, do not write it)."""
    from models.rules.engine import run_rules

    path = case_region_rows.write(tmp_path_factory.mktemp("rules") / "cases.duckdb")
    run_rules(path)
    return path


@pytest.fixture(scope="session")
def case_hits(case_warehouse) -> pd.DataFrame:
    with duckdb.connect(str(case_warehouse), read_only=True) as con:
        return con.execute("SELECT * FROM rule_hits ORDER BY rule_id, hit_id").df()


@pytest.fixture()
def case_copy(case_warehouse, tmp_path) -> Path:
    """A private copy of the case warehouse, for tests that write."""
    target = tmp_path / "cases.duckdb"
    copy_warehouse(case_warehouse, target)
    return target


@pytest.fixture(scope="session")
def tiny_warehouse(tiny_region, tmp_path_factory) -> Path:
    """The tiny region (tests/conftest.py) ingested into a warehouse, the committed rules run over it."""
    from features.config import Settings
    from models.rules.config import DEFAULT_CONFIG, load_config
    from serving.pipeline import run_pipeline

    path = tmp_path_factory.mktemp("tiny_wh") / "tiny.duckdb"
    run_pipeline(Settings(warehouse=path), source=tiny_region, stages=("ingest", "rules"),
                 rules_config=load_config(DEFAULT_CONFIG), fingerprints=False)
    return path
