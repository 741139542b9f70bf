"""Where the pseudonym key comes from, and the commands that refuse the public development key (issue 20)."""

from __future__ import annotations

import os
import stat

import pytest
from typer.testing import CliRunner

from features.config import DEV_PSEUDONYM_KEY, load_settings
from features.pseudonym import KeyFileError, create_key_file, read_key_file

from conftest import AS_OF, write_region, mini_region

runner = CliRunner()


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    """No key, key file or config from the developer's own environment."""
    for name in ("YIBAO_PSEUDONYM_KEY", "YIBAO_PSEUDONYM_KEY_FILE", "YIBAO_WAREHOUSE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("YIBAO_CONFIG", str(tmp_path / "no-such-yibao.toml"))
    return {"YIBAO_PSEUDONYM_KEY": None, "YIBAO_PSEUDONYM_KEY_FILE": None, "YIBAO_AS_OF": AS_OF}


def test_key_file_is_made_for_its_owner_only_and_never_overwritten(tmp_path):
    path = tmp_path / "keys" / "w.pseudonym.key"
    key = create_key_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and len(key) == 64 and int(key, 16) >= 0
    assert read_key_file(path) == key
    with pytest.raises(FileExistsError):
        create_key_file(path)
    assert create_key_file(tmp_path / "other.key") != key  # random, not derived from anything
    os.chmod(path, 0o644)
    with pytest.raises(KeyFileError, match="chmod 600"):
        read_key_file(path)
    empty = tmp_path / "empty.key"
    empty.write_text("\n")
    os.chmod(empty, 0o600)
    with pytest.raises(KeyFileError, match="为空"):
        read_key_file(empty)


def test_settings_take_the_key_from_env_then_key_file_then_the_file_beside_the_warehouse(clean_env, monkeypatch,
                                                                                          tmp_path):
    wh = tmp_path / "w.duckdb"
    assert load_settings(warehouse=wh).using_dev_key
    beside = create_key_file(tmp_path / "w.pseudonym.key")
    s = load_settings(warehouse=wh)
    assert s.pseudonym_key == beside and s.pseudonym_key_source == str(tmp_path / "w.pseudonym.key")
    named = create_key_file(tmp_path / "elsewhere.key")
    monkeypatch.setenv("YIBAO_PSEUDONYM_KEY_FILE", str(tmp_path / "elsewhere.key"))
    assert load_settings(warehouse=wh).pseudonym_key == named
    monkeypatch.setenv("YIBAO_PSEUDONYM_KEY", "from-the-environment")
    s = load_settings(warehouse=wh)
    assert s.pseudonym_key == "from-the-environment" and "from-the-environment" not in repr(s)
    monkeypatch.delenv("YIBAO_PSEUDONYM_KEY")
    os.chmod(tmp_path / "elsewhere.key", 0o640)
    with pytest.raises(ValueError, match="chmod 600"):
        load_settings(warehouse=wh)


def test_ingest_refuses_the_public_key_outside_dev(clean_env, tmp_path):
    from serving.cli import app

    src = write_region(mini_region(), tmp_path / "src")
    wh = tmp_path / "w.duckdb"
    r = runner.invoke(app, ["ingest", str(src), "--warehouse", str(wh)], env=clean_env)
    assert r.exit_code == 2 and not wh.exists()
    for words in ("拒绝使用公开的开发密钥", "YIBAO_PSEUDONYM_KEY", str(tmp_path / "w.pseudonym.key"), "--dev"):
        assert words in r.output.replace("\n", ""), words
    r = runner.invoke(app, ["ingest", str(src), "--warehouse", str(wh), "--dev", "--json"], env=clean_env)
    assert r.exit_code == 0 and wh.exists()
    # The public key given explicitly is still the public key.
    r = runner.invoke(app, ["ingest", str(src), "--warehouse", str(wh)],
                      env=clean_env | {"YIBAO_PSEUDONYM_KEY": DEV_PSEUDONYM_KEY})
    assert r.exit_code == 2


def test_serve_refuses_the_public_key_and_takes_the_key_file_beside_the_warehouse(clean_env, tmp_path):
    from serving.cli import app

    wh = tmp_path / "w.duckdb"
    r = runner.invoke(app, ["serve", "--warehouse", str(wh), "--dry-run"], env=clean_env)
    assert r.exit_code == 2 and "YIBAO_PSEUDONYM_KEY" in r.output and "bentoml" not in r.stdout
    r = runner.invoke(app, ["serve", "--warehouse", str(wh), "--dry-run", "--dev"], env=clean_env)
    assert r.exit_code == 0 and "bentoml" in r.stdout
    key = create_key_file(tmp_path / "w.pseudonym.key")
    r = runner.invoke(app, ["serve", "--warehouse", str(wh), "--dry-run"], env=clean_env)
    assert r.exit_code == 0 and key not in r.output


def test_bentoml_serve_by_hand_refuses_the_public_key_before_it_starts_a_worker(clean_env, tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    env = {k: v for k, v in os.environ.items() if not k.startswith("YIBAO_")}
    env |= {"YIBAO_WAREHOUSE": str(tmp_path / "w.duckdb"), "YIBAO_CONFIG": str(tmp_path / "none.toml"),
            "BENTOML_DO_NOT_TRACK": "true"}
    root = Path(__file__).resolve().parents[2]
    r = subprocess.run([sys.executable, "-m", "bentoml", "serve", "serving.service:Screening", "--port", "1",
                        "--working-dir", str(root)], env=env, cwd=tmp_path, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2, r.stdout[-2000:] + r.stderr[-2000:]
    assert "YIBAO_PSEUDONYM_KEY" in r.stdout + r.stderr and "YIBAO_DEV=1" in r.stdout + r.stderr


def test_demo_generates_its_key_once_and_reuses_it(clean_env, tmp_path):
    from serving.cli import _demo_key, _settings

    first = _demo_key(_settings(tmp_path / "demo" / "warehouse.duckdb"))
    path = tmp_path / "demo" / "warehouse.pseudonym.key"
    assert not first.using_dev_key and first.pseudonym_key_source == str(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = _demo_key(_settings(tmp_path / "demo" / "warehouse.duckdb"))
    assert again.pseudonym_key == first.pseudonym_key  # pseudonyms stay the same from one demo to the next
