"""The rules find the same hits whatever dialect the extract is written in (数据方言).

The same tiny region (seed 7) is written in every dialect of ``training.simulator.dialect``, as Parquet
and as CSV, ingested and screened; every hit (id, rule, entity, evidence, amount at risk) must be the one
the national Parquet extract gives. This is what keeps rule families from going silent on a 医保局's own
extract: 13-digit item codes, local suffixes, 9-digit price codes, full-width or lower-case codes,
``J18900``, GBK files, CRLF and ``2024/01/05`` dates.
"""

from __future__ import annotations

import duckdb
import pytest

from features.config import Settings
from features.ingest import ingest
from models.rules.config import DEFAULT_CONFIG, load_config
from models.rules.engine import run_rules
from training.simulator import DIALECTS, simulate

KEY = "test-pseudonym-key"
HIT_FIELDS = ("hit_id", "rule_id", "entity_id", "evidence", "amount_at_risk")


def screen(source, folder) -> tuple[set[tuple], object]:
    """Ingest ``source`` into a new warehouse in ``folder``, run the rules; (hits, ingest report)."""
    settings = Settings(warehouse=folder / "warehouse.duckdb", pseudonym_key=KEY)
    report = ingest(source, settings)
    run_rules(settings.warehouse, load_config(DEFAULT_CONFIG))
    with duckdb.connect(str(settings.warehouse), read_only=True) as con:
        rows = con.execute(f"SELECT {', '.join(HIT_FIELDS)} FROM rule_hits").fetchall()
    return {(h, r, e, tuple(ev), a) for h, r, e, ev, a in rows}, report


@pytest.fixture(scope="module")
def national_hits(tiny_region, tmp_path_factory) -> set[tuple]:
    hits, report = screen(tiny_region, tmp_path_factory.mktemp("national"))
    assert report.ok and not report.problems
    assert len({h[1] for h in hits}) >= 10  # enough rule families fire for the comparison to mean something
    return hits


@pytest.mark.slow
@pytest.mark.parametrize("dialect,fmt", [(d, f) for d in DIALECTS for f in ("parquet", "csv")
                                         if (d, f) != ("national", "parquet")])
def test_every_dialect_gives_the_same_rule_hits(national_hits, dialect, fmt, tmp_path):
    source = tmp_path / "region"
    simulate("tiny", seed=7, out=source, fmt=fmt, dialect=dialect)

    hits, report = screen(source, tmp_path)

    assert report.ok and not report.problems, report.problems
    assert report.total("quarantined") == 0
    missing, extra = national_hits - hits, hits - national_hits
    by_rule = sorted({h[1] for h in missing | extra})
    assert not missing and not extra, (f"{len(missing)} hits lost, {len(extra)} new, rules {by_rule}; "
                                       f"e.g. {sorted(missing)[:2]} {sorted(extra)[:2]}")
