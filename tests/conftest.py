"""Session fixtures shared across the suite: a tiny simulated region, built once."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"

# Session fixtures too dear to build twice: scripts/test.sh runs two pytest-xdist workers with --dist loadgroup,
# and every test that uses one of these (directly or through another fixture) runs on the worker of its
# group, which builds it once. A test that takes one with request.getfixturevalue is marked by hand.
SHARED_FIXTURE_GROUPS = {"small_demo": "small_demo", "spark": "spark", "spark_test_conf": "spark",
                         "launched": "service", "served": "service"}


def pytest_itemcollected(item):
    """Mark the test with its group as it is collected, before any pytest_collection_modifyitems (where xdist
    reads the marks and suffixes the test's id with its group)."""
    names = set(getattr(item, "fixturenames", ()))
    group = next((g for f, g in SHARED_FIXTURE_GROUPS.items() if f in names), None)
    if group and not item.get_closest_marker("xdist_group"):
        item.add_marker(pytest.mark.xdist_group(group))


@pytest.fixture(scope="session")
def tiny_region(tmp_path_factory) -> Path:
    """A `tiny` region (seed 7) as Parquet, one folder per table."""
    from training.simulator import simulate

    out = tmp_path_factory.mktemp("tiny") / "region"
    simulate("tiny", seed=7, out=out)
    return out


@pytest.fixture(scope="session")
def tiny_warehouse(tiny_region, tmp_path_factory) -> Path:
    """The tiny region ingested, with rule hits, the graph and the feature tables built (read-only use)."""
    from features.config import load_settings
    from models.rules.config import DEFAULT_CONFIG, load_config
    from serving.pipeline import run_pipeline

    wh = tmp_path_factory.mktemp("tiny_wh") / "warehouse.duckdb"
    run_pipeline(load_settings(warehouse=wh), source=tiny_region, stages=("ingest", "rules", "graph", "features"),
                 rules_config=load_config(DEFAULT_CONFIG), fingerprints=False)
    return wh


@pytest.fixture(autouse=True)
def _mlflow_uris_restored():
    """MLflow's tracking and registry URIs as they were before the test. ``train`` and ``load_registered``
    point MLflow's process-wide URIs at their store; a test that trained against a tracking server that has
    stopped since left the next test on that worker pointing at it (``models:/`` URIs resolve through the
    process-wide registry), which then retried the dead port for four minutes and failed."""
    saved = _mlflow_uris()
    yield
    if saved is not None or "mlflow" in sys.modules:
        from mlflow.tracking._model_registry import utils as registry
        from mlflow.tracking._tracking_service import utils as tracking

        tracking._tracking_uri, registry._registry_uri = saved or (None, None)


def _mlflow_uris() -> tuple | None:
    if "mlflow" not in sys.modules:
        return None
    from mlflow.tracking._model_registry import utils as registry
    from mlflow.tracking._tracking_service import utils as tracking

    return tracking._tracking_uri, registry._registry_uri


@pytest.fixture(scope="session")
def tiny_trained(tiny_warehouse, tmp_path_factory):
    """Models trained on the tiny warehouse (seed 0), logged to a throwaway MLflow store and registered.

    Returns ``(tracking_uri, TrainResult)``."""
    from training.train import TrainConfig, train

    root = tmp_path_factory.mktemp("tiny_mlruns")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    result = train(tiny_warehouse, TrainConfig(seed=0), tracking_uri=uri, out_dir=root / "report")
    return uri, result


# Spark for tiny data: the cost is query planning and JIT warm-up, not data, so plan once (no adaptive
# re-planning), compile fast (C1 only) with room for the code (a full code cache stops the JIT), one
# shuffle partition.
SPARK_TEST_CONF = {
    "spark.sql.adaptive.enabled": "false",
    "spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC -XX:ReservedCodeCacheSize=256m",
    "spark.executor.extraJavaOptions": "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC -XX:ReservedCodeCacheSize=256m",
}


@pytest.fixture(scope="session")
def spark_test_conf() -> dict[str, str]:
    """The Spark settings of the tests (:data:`SPARK_TEST_CONF`), for a session started elsewhere."""
    return dict(SPARK_TEST_CONF)


@pytest.fixture(scope="session")
def spark():
    """One local Spark session (``local[2]``) for the test session; skipped without pyspark or Java."""
    pytest.importorskip("pyspark")
    if shutil.which("java") is None:
        pytest.skip("Spark needs Java 17 (Debian: apt-get install openjdk-17-jre-headless)")
    from features.spark import spark_session

    session = spark_session("local[2]", app_name="yibao-test", shuffle_partitions=1, conf=SPARK_TEST_CONF)
    yield session
    session.stop()
