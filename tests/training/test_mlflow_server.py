"""Retraining and screening against a real MLflow tracking server (what a 医保局 runs for several analysts),
not only the embedded SQLite store: the run, the model and its artifacts go over HTTP to the server, the
champion alias is set there, and `yibao screen` with ``MLFLOW_TRACKING_URI`` pointing at it downloads the
champion and writes clues."""

from __future__ import annotations

import json
import shutil

import mlflow
import pytest
from mlflow_server import MlflowServer
from ports import free_port
from typer.testing import CliRunner

from models.bundle import MODEL_NAME, load_registered
from training.promote import promote
from training.train import TrainConfig, train

pytestmark = pytest.mark.slow


def test_train_promote_and_screen_through_a_tracking_server(tiny_warehouse, tmp_path, monkeypatch):
    from features.config import identity_vault_path
    from serving.cli import app

    monkeypatch.chdir(tmp_path)  # nothing may land in a local ./mlruns
    with MlflowServer(tmp_path / "server") as server:
        result = train(tiny_warehouse, TrainConfig(seed=0, levels=("setl", "psn")), tracking_uri=server.uri,
                       out_dir=tmp_path / "report")
        client = mlflow.MlflowClient(tracking_uri=server.uri, registry_uri=server.uri)
        run = client.get_run(result.run_id)
        assert run.info.artifact_uri.startswith("mlflow-artifacts:")  # proxied by the server, not a local path
        stored = {p.name for p in server.artifacts.rglob("*") if p.is_file()}
        assert {"report.html", "report.json"} <= stored and any(n.endswith(".joblib") for n in stored)

        promote(server.uri, result.model_version, reason="first model on the server")
        assert str(client.get_model_version_by_alias(MODEL_NAME, "champion").version) == result.model_version
        assert load_registered(server.uri, "champion").levels == result.bundle.levels

        work = tmp_path / "work"
        work.mkdir()
        warehouse = work / "warehouse.duckdb"
        shutil.copy(tiny_warehouse, warehouse)
        vault = identity_vault_path(tiny_warehouse)
        if vault.is_file():
            shutil.copy(vault, identity_vault_path(warehouse))
        out = CliRunner().invoke(app, ["screen", "--warehouse", str(warehouse), "--json"],
                                 env={"MLFLOW_TRACKING_URI": server.uri})
        assert out.exit_code == 0, out.output
        summary = json.loads(out.stdout)
        assert summary["clues"] > 0 and summary["upsert"]["new"] == summary["clues"]
        assert summary["model"] == "champion" and (work / "clues.db").is_file()
    assert not (tmp_path / "mlruns").exists()


def test_a_server_that_is_down_is_a_clear_error_at_once(tiny_warehouse, tmp_path):
    """MLflow's client alone retries a refused connection for about four minutes, then blames the request; the
    commands check the server first and name it, without the password of the URI."""
    import time

    from serving.cli import app

    port = free_port()  # nothing listens there
    uri = f"http://ana:s3cret@127.0.0.1:{port}"
    for args in (["screen", "--warehouse", str(tiny_warehouse)],
                 ["train", "--warehouse", str(tiny_warehouse), "--out-dir", str(tmp_path / "rep")],
                 ["run", "--out", str(tiny_warehouse.parent), "--stages", "screen"]):
        t0 = time.monotonic()
        out = CliRunner().invoke(app, args, env={"MLFLOW_TRACKING_URI": uri})
        assert out.exit_code == 2, (args, out.output)  # _fail: a usage or setup error
        assert time.monotonic() - t0 < 60, args
        text = " ".join(out.output.split())
        assert "tracking server unreachable" in text and f"http://127.0.0.1:{port}" in text, (args, text)
        assert "s3cret" not in out.output


def test_docstring_examples():
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module("models.bundle"), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0
