"""``damage_region`` against the ingest: what it breaks is exactly what lands in quarantine."""

from __future__ import annotations

import csv
from pathlib import Path

from features.config import Settings
from features.ingest import ingest, list_quarantine
from features.validate import REASONS

from conftest import KEY, Region, held_children, mini_region, write_region
from damage import BAD_BYTES, damage_region

# Every reason one damaged extract can carry; a correction (changed_after_load) needs an earlier load and
# has its own test in test_ingest.py; what damage_region breaks makes no control characters (own test in
# test_ingest_integrity.py); parent_held follows from the rest (what points at a damaged row is held).
KINDS = set(REASONS) - {"malformed_line", "changed_after_load", "control_character", "parent_held"}


def _roundtrip(src, tmp_path, *, seed: int, per_kind: int = 2) -> set[str]:
    expected = damage_region(src, tmp_path / "damaged", seed=seed, per_kind=per_kind)
    settings = Settings(warehouse=tmp_path / "w.duckdb", pseudonym_key=KEY)
    report = ingest(tmp_path / "damaged", settings)
    q = list_quarantine(settings.warehouse, limit=None)
    got = {(r.table_name, r.row_key, r.field, r.reason_code) for r in q.itertuples()}
    want = {(t, *e) for t, entries in expected.items() for e in entries}
    want |= held_children(_rows(tmp_path / "damaged"), want)
    assert want <= got, f"not quarantined: {want - got}"
    assert {g[:2] for g in got} == {w[:2] for w in want}, "rows quarantined that were not damaged"
    for t in report.tables:
        assert t.status == "ok" and t.rows_in == t.loaded + t.quarantined + t.unchanged
    return {code for _, _, _, code in want} - {"parent_held"}


def _rows(folder: Path) -> Region:
    """The damaged extract's rows as text, but for the lines with bytes that are not UTF-8: the ingest
    cannot read those, so it checks no parent of theirs (they are quarantined as broken_encoding)."""
    out = {}
    for path in folder.glob("*.csv"):
        lines = [line for line in path.read_bytes().split(b"\n") if BAD_BYTES not in line]
        text = b"\n".join(lines).decode("utf-8").splitlines()
        out[path.stem] = [{k: v or None for k, v in row.items()} for row in csv.DictReader(text)]
    return out


def test_damaged_mini_region(tmp_path):
    src = write_region(mini_region(), tmp_path / "clean", fmt="parquet", folder=True, parts=2)
    kinds = _roundtrip(src, tmp_path, seed=3, per_kind=1)
    assert len(kinds) >= 9, kinds


def test_damaged_simulated_region(tiny_region, tmp_path):
    assert _roundtrip(tiny_region, tmp_path, seed=11) == KINDS
    # re-ingesting the same damaged extract changes nothing: no new rows, no new quarantine entries
    settings = Settings(warehouse=tmp_path / "w.duckdb", pseudonym_key=KEY)
    before = len(list_quarantine(settings.warehouse, limit=None))
    again = ingest(tmp_path / "damaged", settings)
    assert len(list_quarantine(settings.warehouse, limit=None)) == before
    for t in again.tables:
        assert t.loaded == 0 and t.rows_in == t.unchanged + t.quarantined, t


def test_same_seed_same_damage(tmp_path):
    src = write_region(mini_region(), tmp_path / "clean", fmt="parquet", folder=True)
    a = damage_region(src, tmp_path / "a", seed=5, per_kind=1)
    b = damage_region(src, tmp_path / "b", seed=5, per_kind=1)
    assert a == b
    assert (tmp_path / "a" / "fee_list_d.csv").read_bytes() == (tmp_path / "b" / "fee_list_d.csv").read_bytes()
