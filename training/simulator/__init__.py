"""Simulated pooling region (模拟统筹区) with labelled fraud, written in the tables of the data contract.

>>> from training.simulator import simulate
>>> # simulate("tiny", seed=7, out=Path("data/tiny"))  # ~2k persons, a few seconds

The region is built region-wide first (institutions, practitioners, catalogue, institution-level fraud),
then persons in chunks (``Preset.chunk_persons``), each chunk written as its own part file so that a
province never has to fit in memory. Same seed and scenario file give byte-identical Parquet files.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from features.contract import FRAUD_TYPES, TABLES

from .config import DEFAULT_SCENARIOS, PRESETS, REGION_KEYS, Preset, ScenarioConfig, load_scenarios, randomised
from .dialect import DIALECTS, DialectPlan, plan_dialect, rewrite
from .world import World, build_world

__all__ = ["simulate", "SimulationReport", "PRESETS", "DIALECTS", "load_scenarios"]


@dataclass(frozen=True)
class SimulationReport:
    out: str
    preset: str
    seed: int
    fmt: str
    rows: dict[str, int] = field(default_factory=dict)
    positives: dict[str, int] = field(default_factory=dict)  # fraud_type -> positive label rows
    negatives: dict[str, int] = field(default_factory=dict)
    amount_at_stake: dict[str, float] = field(default_factory=dict)
    dialect: str = "national"  # how codes and files are written (training.simulator.dialect)
    dialect_plan: dict = field(default_factory=dict)  # the dialect's styles and, for CSV, file encodings
    scenario: dict = field(default_factory=dict)  # the scenario config in force: file, randomisation, rates, mix
    layout: str = "folders"  # folders | lake (partitioned by settlement month and insured region)
    partitions: dict[str, int] = field(default_factory=dict)  # lake: table -> partition folders written

    def to_dict(self) -> dict:
        return asdict(self)


LAYOUTS = ("folders", "lake")


def simulate(preset: str | Preset, *, seed: int, out: Path, fmt: str = "parquet",
             scenarios: Path | ScenarioConfig | None = None, n_persons: int | None = None,
             dialect: str = "national", randomise: int | None = None, layout: str | None = None,
             progress: Callable[[str, int, int], None] | None = None) -> SimulationReport:
    """Write a simulated region to ``out/<table>/part-NNNNN.<fmt>`` and return counts.

    ``layout="lake"`` (the ``province`` preset's default; Parquet only) writes the claim tables and
    ``psn_info`` the way a province lands them in its data lake instead: one folder per settlement month
    and insured region, ``out/<table>/month=YYYY-MM/region=<insu_admdvs>/part-00000.parquet`` (``psn_info``
    per region only), each chunk of persons appended to the partitions' files as row groups, a new file
    every 8 chunks (:class:`_LakeWriter`), so the claim rows in memory are one chunk's (the stock is summed per pharmacy,
    drug and month as the chunks come; the labels and clean samples kept for the end still grow with the
    persons, about 9.5 MB per 40,000); reference tables and labels as in ``folders``. A visit's fee lines and diagnoses sit in its settlement's partition.

    ``n_persons`` overrides the preset's size (for tests and benchmarks). ``dialect`` (:data:`DIALECTS`)
    writes the same region with codes, and for ``mixed`` CSV also encodings, line ends and dates, the way
    a 医保局's own extract writes them (``training.simulator.dialect``). ``randomise`` draws the scenario
    config's rates, intensities, look-alikes and institution mix around their values with that seed
    (:func:`training.simulator.config.randomised`: domain randomisation for training a model that transfers).
    """
    if fmt not in ("parquet", "csv"):
        raise ValueError(f"format must be parquet or csv, not {fmt!r}")
    if dialect not in DIALECTS:
        raise ValueError(f"unknown dialect {dialect!r}; choose one of {', '.join(DIALECTS)}")
    if isinstance(preset, str):
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
        preset = PRESETS[preset]
    layout = layout or ("lake" if preset.name == "province" and fmt == "parquet" else "folders")
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    if layout == "lake" and fmt != "parquet":
        raise ValueError("a lake is written in Parquet (--format parquet)")
    if n_persons:
        preset = Preset(**{**asdict(preset), "n_persons": int(n_persons)})
    sc = scenarios if isinstance(scenarios, ScenarioConfig) else load_scenarios(scenarios)
    if randomise is not None:
        sc = randomised(sc, randomise)
    preset = sc.applied_to(preset)
    scenario_summary = {"file": None if isinstance(scenarios, ScenarioConfig) else str(scenarios or DEFAULT_SCENARIOS),
                        "randomise": randomise, "region": dict(sc.region),
                        "institution_mix": {k: getattr(preset, k) for k in REGION_KEYS},
                        "rates": {k: v.rate for k, v in sorted(sc.scenarios.items())}}
    from models.rules.pack import load_pack
    from .care import simulate_chunk
    from .monitoring import apply_code_change

    out = Path(out)
    if out.exists():
        for t in TABLES:
            shutil.rmtree(out / t, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    pack = load_pack()
    world = build_world(preset, sc, pack, seed)
    pack_codes = frozenset(pack["hilist_code"].dropna()) | frozenset(pack["related_code"].dropna()) \
        if sc.monitoring.code_change is not None else frozenset()
    if sc.monitoring.enabled:  # which institutions changed, and from which month (the monitor's ground truth)
        scenario_summary["monitoring"] = {
            name: {"from_month": int(getattr(sc.monitoring, name).from_month),
                   "fixmedins_code": world.inst.loc[world.inst[column] > 0, "fixmedins_code"].tolist()}
            for name, column in (("evasion", "evade_from"), ("code_change", "code_change_from"))
            if getattr(sc.monitoring, name) is not None}
    plan = plan_dialect(dialect, institutions=world.inst[["fixmedins_code", "fixmedins_type"]],
                        catalogue=world.cat["hilist_code"], seed=seed, tables=TABLES if fmt == "csv" else ())
    writer = _LakeWriter(out, fmt, plan) if layout == "lake" else _Writer(out, fmt, plan)
    n_chunks = -(-preset.n_persons // preset.chunk_persons)
    labels, stock, clean = [], None, {}
    for c in range(n_chunks):
        lo = c * preset.chunk_persons
        n = min(preset.chunk_persons, preset.n_persons - lo)
        chunk = simulate_chunk(world, sc, c, lo, n)
        tables = apply_code_change(chunk.tables, world, pack_codes) if pack_codes else chunk.tables
        writer.write_chunk(rewrite(tables, plan), c)
        labels.append(chunk.labels)
        stock = _stock_so_far(stock, chunk.stock)
        for k, v in chunk.clean.items():
            clean.setdefault(k, []).append(v)
        if progress:
            progress("simulate", c + 1, n_chunks)
    reference = {"fixmedins": _fixmedins_table(world), "practitioner": _practitioner_table(world),
                 "hilist": _hilist_table(world),
                 "stock_moves": _stock_moves(world, stock, seed)}
    for name, df in rewrite(reference, plan).items():
        writer.write(name, df, 0)
    lab = _finish_labels(world, sc, preset, labels, clean, seed)
    writer.write("labels", lab, 0)
    writer.close()
    pos = lab[lab["label"] == 1].groupby("fraud_type").size()
    neg = lab[lab["label"] == 0].groupby("fraud_type").size()
    # amount at stake counted once, at the level the typology names (line, visit, person, institution, ring)
    primary = lab["fraud_type"].map({k: v[1] for k, v in FRAUD_TYPES.items()})
    stake = lab[(lab["label"] == 1) & (lab["entity_type"] == primary)].groupby("fraud_type")["amount"].sum()
    report = SimulationReport(
        out=str(out), preset=preset.name, seed=seed, fmt=fmt, rows=writer.rows,
        positives={k: int(pos.get(k, 0)) for k in FRAUD_TYPES}, negatives={k: int(neg.get(k, 0)) for k in FRAUD_TYPES},
        amount_at_stake={k: round(float(stake.get(k, 0.0)), 2) for k in FRAUD_TYPES},
        dialect=dialect, dialect_plan=plan.summary() | writer.files_summary(), scenario=scenario_summary,
        layout=layout, partitions=writer.partitions())
    (out / "simulation.json").write_text(json.dumps(report.to_dict(), ensure_ascii=False, indent=1, sort_keys=True),
                                         encoding="utf-8")
    return report


class _Writer:
    """Writes contract tables with contract types; one part file per chunk.

    CSV files are UTF-8 with LF line ends and ISO times, unless the dialect ``plan`` gives the table an
    encoding (then also CRLF and its date style).
    """

    def __init__(self, out: Path, fmt: str, plan: DialectPlan | None = None):
        self.out, self.fmt = out, fmt
        self.plan = plan
        self.rows: dict[str, int] = {}
        self.encodings: dict[str, set[str]] = {}  # table -> encodings its CSV files were written in

    def write(self, name: str, df: pd.DataFrame, part: int) -> None:
        table = _arrow_table(name, df)
        folder = self.out / name
        folder.mkdir(exist_ok=True)
        path = folder / f"part-{part:05d}.{self.fmt}"
        encoding = self.plan.encodings.get(name) if self.plan is not None else None
        if self.fmt == "parquet":
            pq.write_table(table, path, compression="zstd", row_group_size=1_000_000)
        elif encoding is None:
            pacsv.write_csv(_stringify(table), path)
        else:
            self.encodings.setdefault(name, set()).add(
                _write_local_csv(_stringify(table, dates=self.plan.dates.get(name)), path, encoding,
                                 crlf=self.plan.crlf))
        self.rows[name] = self.rows.get(name, 0) + table.num_rows

    def write_chunk(self, tables: dict[str, pd.DataFrame], part: int) -> None:
        for name, df in tables.items():
            self.write(name, df, part)

    def close(self) -> None:
        """Nothing is left open: each part is written whole."""

    def partitions(self) -> dict[str, int]:
        return {}

    def files_summary(self) -> dict:
        """Encodings the CSV files were written in, per table (only when a dialect chose them)."""
        if not self.encodings:
            return {}
        return {"encodings": {t: "/".join(sorted(e)) for t, e in sorted(self.encodings.items())}}


class _LakeWriter(_Writer):
    """The claim tables and ``psn_info`` in a lake's partition folders (``simulate(layout="lake")``): per
    table and partition one Parquet file for every ``FILE_CHUNKS`` chunks (``part-00000.parquet``,
    ``part-00001.parquet``, …), each chunk's rows of the partition appended to it as a row group; the other
    tables as :class:`_Writer` writes them. A file is closed after its chunks: an open Parquet writer keeps
    the metadata of every row group it wrote (about 0.8 kB per column and row group), and a province has
    about 3,000 partitions, so files open for the whole run would grow the memory with every chunk."""

    # the tables in partition folders (by their settlement's month and insured region; psn_info by region)
    PARTITIONED = ("setl_d", "mdtrt_d", "fee_list_d", "setl_list_diag_d", "psn_info")
    FILE_CHUNKS = 8

    def __init__(self, out: Path, fmt: str, plan: DialectPlan | None = None):
        super().__init__(out, fmt, plan)
        self._open: dict[tuple[str, str], pq.ParquetWriter] = {}
        self._partitions: set[tuple[str, str]] = set()
        self._file_no = 0

    def write_chunk(self, tables: dict[str, pd.DataFrame], part: int) -> None:
        if part // self.FILE_CHUNKS != self._file_no:  # the files of the last FILE_CHUNKS chunks are done
            self.close()
            self._open = {}
            self._file_no = part // self.FILE_CHUNKS
        setl = tables.get("setl_d")
        by_setl = by_visit = None
        if setl is not None:
            keys = _partition_keys(setl["setl_time"], setl["insu_admdvs"])
            by_setl = pd.Series(keys.to_numpy(), index=setl["setl_id"].to_numpy())
            by_visit = pd.Series(keys.to_numpy(), index=setl["mdtrt_id"].to_numpy())
            by_visit = by_visit[~by_visit.index.duplicated()]
        for name, df in tables.items():
            if name not in self.PARTITIONED:
                self.write(name, df, part)
                continue
            if name == "psn_info":
                keys = "region=" + df["insu_admdvs"].fillna("unknown").astype(str)
            elif name == "setl_d":
                keys = pd.Series(by_setl.reindex(df["setl_id"]).to_numpy(), index=df.index)
            elif name == "mdtrt_d":  # its settlement's partition; a visit not settled by its own month
                own = _partition_keys(df["begntime"], df["insu_admdvs"])
                keys = pd.Series(by_visit.reindex(df["mdtrt_id"]).to_numpy(), index=df.index).fillna(own)
            else:  # fee lines and diagnoses: their settlement's
                keys = pd.Series(by_setl.reindex(df["setl_id"]).to_numpy(), index=df.index)
                if name == "fee_list_d":
                    keys = keys.fillna(pd.Series(by_visit.reindex(df["mdtrt_id"]).to_numpy(), index=df.index))
                keys = keys.fillna("month=unknown/region=unknown")
            for key, rows in df.groupby(keys.to_numpy(), sort=True):
                self._append(name, str(key), rows)

    def _append(self, name: str, key: str, df: pd.DataFrame) -> None:
        table = _arrow_table(name, df)
        writer = self._open.get((name, key))
        if writer is None:
            folder = self.out / name / key
            folder.mkdir(parents=True, exist_ok=True)
            writer = pq.ParquetWriter(folder / f"part-{self._file_no:05d}.parquet", table.schema, compression="zstd")
            self._open[(name, key)] = writer
            self._partitions.add((name, key))
        writer.write_table(table.cast(writer.schema), row_group_size=1_000_000)
        self.rows[name] = self.rows.get(name, 0) + table.num_rows

    def close(self) -> None:
        for writer in self._open.values():
            writer.close()

    def partitions(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for name, _ in self._partitions:
            counts[name] = counts.get(name, 0) + 1
        return dict(sorted(counts.items()))


def _arrow_table(name: str, df: pd.DataFrame) -> pa.Table:
    """The rows of contract table ``name`` with its contract types."""
    return pa.table({f.name: _arrow_column(df[f.name], f.kind) for f in TABLES[name].fields if f.name in df})


def _partition_keys(times: pd.Series, region: pd.Series) -> pd.Series:
    """``month=YYYY-MM/region=<code>`` per row (``unknown`` where a value is missing)."""
    month = pd.to_datetime(times).dt.strftime("%Y-%m").fillna("unknown")
    return "month=" + month + "/region=" + region.fillna("unknown").astype(str)


def _arrow_column(s: pd.Series, kind: str) -> pa.Array:
    if kind in ("datetime",):
        return pa.array(pd.to_datetime(s).to_numpy().astype("datetime64[s]"), type=pa.timestamp("s"))
    if kind == "date":
        return pa.array(pd.to_datetime(s).to_numpy().astype("datetime64[D]"), type=pa.date32())
    if kind in ("amount", "number"):
        return pa.array(pd.to_numeric(s).to_numpy(dtype=float), type=pa.float64(), from_pandas=True)
    if kind == "int":
        return pa.array(s.to_numpy(), type=pa.int32())
    vals = s.to_numpy(dtype=object)
    return pa.array([None if v is None or (isinstance(v, float) and np.isnan(v)) else str(v) for v in vals],
                    type=pa.string()) if s.dtype == object and s.isna().any() else pa.array(s.astype(str).to_numpy(), type=pa.string())


def _stringify(table: pa.Table, *, dates: str | None = None) -> pa.Table:
    """CSV the contract way: times 'YYYY-MM-DD HH:MM:SS', amounts with two decimals.

    ``dates`` (a dialect's date style) writes times and dates with slashes instead: ``slash``
    '2024/01/05 08:30:00', ``slash_short`` '2024/1/5 08:30:00'.
    """
    cols = {}
    for name in table.column_names:
        col = table[name]
        if pa.types.is_timestamp(col.type):
            cols[name] = pa.array(_format_times(col, dates, with_time=True))
        elif pa.types.is_date(col.type) and dates:
            cols[name] = pa.array(_format_times(col, dates, with_time=False), type=pa.string())
        else:
            cols[name] = col
    return pa.table(cols)


def _format_times(col: pa.ChunkedArray, dates: str | None, *, with_time: bool) -> np.ndarray:
    s = pd.Series(pd.to_datetime(col.to_pandas()))
    if dates is None:
        return s.dt.strftime("%Y-%m-%d %H:%M:%S").to_numpy(dtype=object)
    if dates == "slash":
        text = s.dt.strftime("%Y/%m/%d %H:%M:%S" if with_time else "%Y/%m/%d")
    elif dates == "slash_short":
        text = (s.dt.year.astype("Int64").astype(str) + "/" + s.dt.month.astype("Int64").astype(str) + "/"
                + s.dt.day.astype("Int64").astype(str) + (s.dt.strftime(" %H:%M:%S") if with_time else ""))
    else:
        raise ValueError(f"unknown date style {dates!r}")
    return text.where(s.notna(), None).to_numpy(dtype=object)


def _write_local_csv(table: pa.Table, path: Path, encoding: str, *, crlf: bool) -> str:
    """Write ``table`` as CSV in ``encoding`` (CRLF line ends if ``crlf``); returns the encoding used:
    GB18030 when the text has characters GBK cannot encode."""
    buffer = pa.BufferOutputStream()
    pacsv.write_csv(table, buffer)
    text = buffer.getvalue().to_pybytes().decode("utf-8")
    if crlf:
        if "\r" in text or text.count("\n") != table.num_rows + 1:
            raise ValueError(f"{path.name}: a value holds a line break; cannot write CRLF line ends")
        text = text.replace("\n", "\r\n")
    try:
        data = text.encode(encoding)
    except UnicodeEncodeError:
        encoding = "gb18030"
        data = text.encode(encoding)
    path.write_bytes(data)
    return encoding


def _fixmedins_table(world: World) -> pd.DataFrame:
    i = world.inst
    return pd.DataFrame({"fixmedins_code": i["fixmedins_code"], "fixmedins_name": i["fixmedins_name"],
                         "fixmedins_type": i["fixmedins_type"], "admdvs": i["admdvs"], "hosp_lv": i["hosp_lv"],
                         "beds": i["beds"].astype("int32"), "specialties": i["specialties"]})


def _practitioner_table(world: World) -> pd.DataFrame:
    return world.prac[["prac_code", "fixmedins_code", "dept_codg", "caty", "title"]].copy()


def _hilist_table(world: World) -> pd.DataFrame:
    c = world.cat
    return pd.DataFrame({"hilist_code": c["hilist_code"], "hilist_name": c["hilist_name"], "list_type": c["list_type"],
                         "chrgitm_lv": c["chrgitm_lv"], "pric_uplmt_amt": c["pric_uplmt_amt"],
                         "generic_name": c["generic_name"], "vbp_flag": c["vbp_flag"], "vbp_group": c["vbp_group"],
                         "med_chrgitm_type": c["med_chrgitm_type"]})


_STOCK_KEYS = ["inst", "item", "month"]


def _stock_so_far(total: pd.DataFrame | None, chunk: pd.DataFrame) -> pd.DataFrame:
    """The dispensing of the chunks so far, summed per pharmacy, drug and month as the chunks come, so that
    memory holds one row per key and not one per chunk and key (whole quantities: the sums are exact in any
    order, and the region is the same as when the chunks were summed at the end)."""
    part = chunk.groupby(_STOCK_KEYS, as_index=False).sum()
    if total is None:
        return part
    return pd.concat([total, part], ignore_index=True).groupby(_STOCK_KEYS, as_index=False).sum()


def _stock_moves(world: World, stock: pd.DataFrame, seed: int) -> pd.DataFrame:
    """进销存 per pharmacy, drug and month: honest in-flow covers what was really dispensed."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 3]))
    s = stock.groupby(_STOCK_KEYS, as_index=False).sum()
    months = np.arange(world.start.astype("datetime64[M]").astype(int),
                       world.start.astype("datetime64[M]").astype(int) + world.preset.months)
    keys = s[["inst", "item"]].drop_duplicates().sort_values(["inst", "item"])
    full = keys.merge(pd.DataFrame({"month": months}), how="cross")
    full = full.merge(s, on=["inst", "item", "month"], how="left").fillna({"billed": 0.0, "dispensed": 0.0})
    full = full.sort_values(["inst", "item", "month"]).reset_index(drop=True)
    out_q = full["dispensed"].to_numpy()
    n = len(full)
    restock = np.round(out_q * rng.uniform(0.9, 1.25, n))
    first = full.groupby(["inst", "item"]).cumcount().to_numpy() == 0
    opening0 = np.round(np.where(first, full.groupby(["inst", "item"])["dispensed"].transform("mean").to_numpy()
                                 * rng.uniform(0.5, 1.5, n), 0))
    opening = np.zeros(n)
    closing = np.zeros(n)
    in_q = restock.copy()
    for j in range(n):  # carried over month to month; n is pharmacies x drugs x 12, small
        opening[j] = opening0[j] if first[j] else closing[j - 1]
        if opening[j] + in_q[j] < out_q[j]:
            in_q[j] = out_q[j] - opening[j]
        closing[j] = opening[j] + in_q[j] - out_q[j]
    # honest bookkeeping lags (a look-alike of 进销存不符): some receipts and stock-outs are booked a month late
    in_q, out_q = _booked_late(in_q, out_q, first, np.random.default_rng(np.random.SeedSequence([seed, 3, 9])))
    for j in range(n):
        opening[j] = opening0[j] if first[j] else closing[j - 1]
        closing[j] = opening[j] + in_q[j] - out_q[j]  # may dip below zero until the late receipt (负库存)
    return pd.DataFrame({
        "fixmedins_code": world.inst["fixmedins_code"].to_numpy()[full["inst"]],
        "hilist_code": world.cat["hilist_code"].to_numpy()[full["item"]],
        "month": pd.to_datetime(full["month"].to_numpy().astype("datetime64[M]")).strftime("%Y-%m"),
        "opening_qty": opening, "in_qty": in_q, "out_qty": out_q, "closing_qty": closing,
    })


def _booked_late(in_q: np.ndarray, out_q: np.ndarray, first: np.ndarray, rng: np.random.Generator,
                 share: float = 0.06) -> tuple[np.ndarray, np.ndarray]:
    """Honest lags of the stock books: goods that arrive at a month's end are booked as received the next
    month, and a month-end batch of sales is booked out the next month — ``share`` of the months each,
    30-80 % of the month's quantity moved to the next month of the same pharmacy and drug."""
    in_q, out_q = in_q.copy(), out_q.copy()
    last = np.r_[first[1:], True]
    for q in (in_q, out_q):
        j = np.flatnonzero(~last & (q > 0) & (rng.random(len(q)) < share))
        moved = np.round(q[j] * rng.uniform(0.3, 0.8, len(j)))
        q[j] -= moved
        q[j + 1] += moved
    return in_q, out_q


def _finish_labels(world: World, sc: ScenarioConfig, preset: Preset, labels, clean, seed) -> pd.DataFrame:
    rng = np.random.default_rng(np.random.SeedSequence([seed, 4]))
    lab = pd.concat(labels, ignore_index=True)
    # institution and doctor amounts were summed per chunk: add them up
    agg = lab[lab["entity_type"].isin(["fixmedins", "prac"])]
    rest = lab[~lab["entity_type"].isin(["fixmedins", "prac"])]
    agg = (agg.groupby(["entity_type", "entity_id", "fraud_type"], as_index=False, dropna=False)
           .agg(label=("label", "max"), amount=("amount", "sum"), ring_id=("ring_id", "first"), role=("role", "first")))
    lab = pd.concat([rest, agg], ignore_index=True)
    # ground truth for ring members who are also offenders in their own right stays: one row per type
    lab = lab.drop_duplicates(["entity_type", "entity_id", "fraud_type"])
    # clean, checked entities: label 0 at each type's level
    k = sc.clean_checked * (1 + preset.n_persons // 20_000)
    pools = {kk: np.concatenate(v) for kk, v in clean.items() if not kk.startswith("_")}
    bad_inst = set(lab.loc[lab["entity_type"] == "fixmedins", "entity_id"])
    bad_prac = set(lab.loc[lab["entity_type"] == "prac", "entity_id"])
    pools["fixmedins"] = np.array([c for c in world.inst["fixmedins_code"] if c not in bad_inst])
    pools["prac"] = np.array([c for c in world.prac["prac_code"] if c not in bad_prac])
    rows = []
    levels = lab.loc[lab["label"] == 1, ["fraud_type", "entity_type"]].drop_duplicates()
    for t, lvl in sorted(levels.itertuples(index=False, name=None)):
        if lvl == "ring" or (lvl == "psn" and t in ("drug_resale", "collusive_ring")):
            continue  # clean groups are households, below
        pool = pools.get(lvl, np.array([]))
        if len(pool) == 0:
            continue
        ids = pool[np.sort(rng.choice(len(pool), min(k, len(pool)), replace=False))]
        rows.append(pd.DataFrame({"entity_type": lvl, "entity_id": ids, "label": 0, "fraud_type": t, "amount": 0.0}))
    # clean groups for the ring types: households that visit together (families), with their members
    hh_psn = clean.get("_hh_psn", [])
    hh = clean.get("_hh", [])
    for t in ("drug_resale", "collusive_ring"):
        for c, (psns, hhs) in enumerate(zip(hh_psn, hh)):
            sizes = np.bincount(hhs)
            big = np.flatnonzero(sizes >= 3)
            pick = big[np.sort(rng.choice(len(big), min(len(big), max(2, k // 4 // max(len(hh_psn), 1))), replace=False))] if len(big) else []
            for h in pick:
                gid = f"F{c:04d}{h:06d}"
                members = psns[hhs == h]
                rows.append(pd.DataFrame({"entity_type": "ring", "entity_id": [gid], "label": 0, "fraud_type": t,
                                          "amount": 0.0, "ring_id": gid, "role": "ring"}))
                rows.append(pd.DataFrame({"entity_type": "psn", "entity_id": members, "label": 0, "fraud_type": t,
                                          "amount": 0.0, "ring_id": gid, "role": "member"}))
    lab = pd.concat([lab] + rows, ignore_index=True)
    # a clean pick must not collide with a positive of the same type and entity
    lab = lab.sort_values("label", ascending=False, kind="stable").drop_duplicates(
        ["entity_type", "entity_id", "fraud_type"])
    end = world.start.astype("datetime64[M]") + np.timedelta64(world.preset.months, "M")
    lab["decided_at"] = pd.Timestamp(str(end.astype("datetime64[D]"))) + pd.Timedelta(days=45)
    lab["source"] = "simulated"
    lab["label"] = lab["label"].astype("int32")
    order = {e: i for i, e in enumerate(["ring", "fixmedins", "prac", "psn", "mdtrt", "setl", "line"])}
    lab["_o"] = lab["entity_type"].map(order)
    lab = lab.sort_values(["_o", "fraud_type", "entity_id"], kind="stable").drop(columns="_o").reset_index(drop=True)
    return lab
