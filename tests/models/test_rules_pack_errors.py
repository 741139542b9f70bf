"""A malformed 两库 spreadsheet: ``yibao rules build-pack`` stops and names file, sheet, row and field."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import openpyxl
import pytest
from typer.testing import CliRunner

from models.rules.pack import MalformedSpreadsheet, build_pack
from serving.cli import app

LIANGKU = Path(__file__).resolve().parents[2].parent / "shared" / "reference" / "liangku"


@pytest.fixture()
def broken_source(tmp_path) -> Path:
    if not LIANGKU.is_dir():
        pytest.skip(f"the 两库 spreadsheets are not at {LIANGKU}")
    source = tmp_path / "liangku"
    shutil.copytree(LIANGKU, source)
    book = openpyxl.load_workbook(source / "batch1-drug-gender.xlsx")
    book["Sheet1"]["D3"] = "未知"  # 限定对象 of the second drug: neither 男 nor 女
    book.save(source / "batch1-drug-gender.xlsx")
    book = openpyxl.load_workbook(source / "batch8-4-item-period-frequency.xlsx")
    sheet = book.active
    column = [c.column_letter for c in sheet[1] if c.value == "疗程周期"][0]
    sheet[f"{column}4"] = "两周"
    book.save(source / "batch8-4-item-period-frequency.xlsx")
    return source


@pytest.mark.slow
def test_strict_build_names_file_sheet_row_and_field(broken_source, tmp_path):
    with pytest.raises(MalformedSpreadsheet) as err:
        build_pack(broken_source, tmp_path / "pack.parquet", strict=True)
    rows = {(r.file, r.sheet, r.row, r.field) for r in err.value.rows}
    assert ("batch1-drug-gender.xlsx", "Sheet1", 3, "限定对象") in rows
    assert ("batch8-4-item-period-frequency.xlsx", "“医疗服务项目周期超频次”规则对应知识点明细", 4, "疗程周期") in rows
    assert "batch1-drug-gender.xlsx / Sheet1 / row 3 / field 限定对象: unmapped 限定性别 '未知'" in str(err.value)
    assert not (tmp_path / "pack.parquet").exists()


@pytest.mark.slow
def test_cli_build_pack_refuses_malformed_rows(broken_source, tmp_path):
    out = tmp_path / "pack.parquet"
    res = CliRunner().invoke(app, ["rules", "build-pack", "--source", str(broken_source), "--out", str(out), "--json"])
    assert res.exit_code == 1
    payload = json.loads(res.stdout)
    assert payload["error"] == "malformed rows"
    first = next(r for r in payload["rows"] if r["file"] == "batch1-drug-gender.xlsx" and r["sheet"] == "Sheet1")
    assert (first["row"], first["field"]) == (3, "限定对象")
    assert not out.exists()
    res = CliRunner().invoke(app, ["rules", "build-pack", "--source", str(broken_source), "--out", str(out),
                                   "--keep-going", "--json"])
    assert res.exit_code == 0 and out.exists()
