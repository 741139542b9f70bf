"""Damage a clean region the way real extracts are damaged, and say exactly what was damaged.

``damage_region`` reads a region written as Parquet (``<table>/part-*.parquet`` or ``<table>.parquet``),
breaks a few rows per bad-input kind of the data contract, and writes every table as CSV (UTF-8 with a
header), because only text can carry a float-looking code or invalid UTF-8 bytes. It returns, per table,
the ``(row_key, field, reason_code)`` the ingest must put in quarantine.

Each damage is chosen so that it does not spill onto other rows: a broken fee line keeps its
settlement's total right, a missing parent is given to a row nothing else points at, rows that the
sum checks compare are changed together, and no row is damaged twice. So after ingest the quarantined
rows are exactly the damaged ones.

>>> # expected = damage_region(Path("data/tiny"), Path("data/tiny-damaged"), seed=1)
>>> # expected["fee_list_d"][0]
>>> # ('FL00000000000003', 'hilist_code', 'code_as_float')
"""

from __future__ import annotations

import random
from collections import defaultdict
from pathlib import Path

import duckdb
import pandas as pd

from features.contract import TABLES

__all__ = ["damage_region", "BAD_BYTES"]

BAD_BYTES = b"\xff\xfe"  # never valid in UTF-8
Expected = dict[str, list[tuple[str, str, str]]]


def damage_region(src: Path, dst: Path, *, seed: int, per_kind: int = 2, fmt: str = "csv") -> Expected:
    """Copy the region in ``src`` to ``dst`` as CSV, with about ``per_kind`` damaged rows per kind.

    Returns table -> [(row_key, field, reason_code)] of what ingest must quarantine. A kind that the
    region cannot express (no refund settlement, no resident IDs, ...) is skipped. ``fmt="parquet"``
    writes Parquet files of text columns instead (as a lake that lands everything as strings would),
    without the bytes that are not UTF-8, which Parquet text cannot hold.
    """
    with duckdb.connect() as con:
        tables = {name: df for name in TABLES if (df := _read(con, Path(src), name)) is not None}
    d = _Damager(tables, random.Random(seed))
    for _ in range(per_kind):
        d.missing_required()
        d.bad_type()
        d.code_as_float()
        d.missing_parent()
        d.sum_fund()
        d.sum_price()
        d.sum_lines()
        d.negative_line()
        d.future_date()
        d.unknown_code()
        d.mojibake()
        if fmt == "csv":
            d.invalid_bytes()
        d.bad_certno()
        d.duplicate_key()
    d.negative_settlement()
    for name, rows in d.extra_rows.items():  # duplicates go last: the original is the first occurrence
        d.tables[name] = pd.concat([d.tables[name], d.tables[name].loc[rows]], ignore_index=True)
    with duckdb.connect() as con:
        _write(con, d.tables, d.raw_bytes, Path(dst), fmt=fmt)
    return {t: v for t, v in d.expected.items() if v}


class _Damager:
    def __init__(self, tables: dict[str, pd.DataFrame], rng: random.Random) -> None:
        self.tables = tables
        self.rng = rng
        self.expected: Expected = defaultdict(list)
        self.touched: dict[str, set[int]] = defaultdict(set)
        self.raw_bytes: dict[str, dict[tuple[int, str], bytes]] = defaultdict(dict)
        self.extra_rows: dict[str, list[dict]] = defaultdict(list)
        fee = tables.get("fee_list_d")
        self._lines: dict[str, list[int]] = {}
        if fee is not None:
            for i, s in zip(fee.index, fee["setl_id"]):
                self._lines.setdefault(s, []).append(i)

    # -- the kinds ----------------------------------------------------------------------------------

    def missing_required(self) -> None:
        pick = self._pick_field([("setl_d", "insutype"), ("mdtrt_d", "begntime"), ("fee_list_d", "hilist_name"),
                                 ("psn_info", "brdy"), ("fee_list_d", "list_type"), ("hilist", "hilist_name")])
        if pick:
            table, i, f = pick
            self._set(table, i, f, None, "missing_required")

    def bad_type(self) -> None:
        pick = self._pick_field([("setl_d", "setl_time"), ("fee_list_d", "fee_ocur_time"), ("psn_info", "brdy"),
                                 ("mdtrt_d", "begntime")])
        if pick:
            table, i, f = pick
            self._set(table, i, f, self._get(table, i, f).replace("-", "."), "bad_type")

    def code_as_float(self) -> None:
        pick = self._pick_field([("fee_list_d", "hilist_code"), ("fee_list_d", "med_chrgitm_type"),
                                 ("setl_d", "insutype"), ("mdtrt_d", "med_type"), ("psn_info", "insu_admdvs")],
                                when=lambda v: v.isdigit())
        if pick:
            table, i, f = pick
            v = int(self._get(table, i, f))
            self._set(table, i, f, f"{v:.4e}" if v >= 10**7 else f"{v}.0", "code_as_float")

    def missing_parent(self) -> None:
        cands = [(t, f) for t, f, parent in (("fee_list_d", "mdtrt_id", "mdtrt_d"),
                                             ("setl_list_diag_d", "setl_id", "setl_d"),
                                             ("setl_d", "psn_no", "psn_info"),
                                             ("practitioner", "fixmedins_code", "fixmedins"))
                 if parent in self.tables]
        pick = self._pick_field(cands)
        if pick:
            table, i, f = pick
            self._set(table, i, f, "ZZ" + self._get(table, i, f) + "-MISSING", "missing_parent")

    def sum_fund(self) -> None:
        """setl_d: fund + personal no longer add up to the total."""
        i = self._pick_setl(with_lines=False)
        if i is not None:
            self._lock_setl(i)
            self._set("setl_d", i, "fund_pay_sumamt", _money(_num(self._get("setl_d", i, "fund_pay_sumamt")) + 5),
                      "sum_mismatch", field="medfee_sumamt")

    def sum_price(self) -> None:
        """fee_list_d: count × price no longer gives the line amount (the amount itself is kept)."""
        i = self._pick_row("fee_list_d", lambda r: abs(_num(r["cnt"])) >= 0.02 and r["pric"] is not None)
        if i is not None:
            self._set("fee_list_d", i, "pric", _money(_num(self._get("fee_list_d", i, "pric")) + 1),
                      "sum_mismatch", field="det_item_fee_sumamt")

    def sum_lines(self) -> None:
        """setl_d: total and personal part both up by 10: consistent in itself, not with its fee lines."""
        i = self._pick_setl(with_lines=True)
        if i is not None:
            self._lock_setl(i)
            for f in ("medfee_sumamt", "psn_pay"):
                self.tables["setl_d"].at[i, f] = _money(_num(self._get("setl_d", i, f)) + 10)
            self._expect("setl_d", i, "medfee_sumamt", "sum_mismatch")

    def negative_line(self) -> None:
        """A fee line turned negative in a normal settlement; the settlement is adjusted to stay balanced."""
        if "setl_d" not in self.tables or "fee_list_d" not in self.tables:
            return
        setl, fee = self.tables["setl_d"], self.tables["fee_list_d"]
        for i in self._shuffled(setl.index):
            if i in self.touched["setl_d"] or setl.at[i, "refd_setl_flag"] == "1":
                continue
            lines = self._lines.get(setl.at[i, "setl_id"], [])
            if not lines or any(j in self.touched["fee_list_d"] for j in lines):
                continue
            j = lines[0]
            amt, cnt = _num(fee.at[j, "det_item_fee_sumamt"]), _num(fee.at[j, "cnt"])
            part = next((f for f in ("psn_pay", "fund_pay_sumamt") if _num(setl.at[i, f]) >= 2 * amt), None)
            if amt <= 0 or cnt <= 0 or part is None:
                continue
            self._lock_setl(i)
            fee.at[j, "cnt"] = _plain(-cnt)
            fee.at[j, "det_item_fee_sumamt"] = _money(-amt)
            for f in ("medfee_sumamt", part):
                setl.at[i, f] = _money(_num(setl.at[i, f]) - 2 * amt)
            self._expect("fee_list_d", j, "cnt", "negative_outside_refund")
            self._expect("fee_list_d", j, "det_item_fee_sumamt", "negative_outside_refund")
            return

    def negative_settlement(self) -> None:
        """A refund settlement that lost its refund flag: it and its negative lines are out of place."""
        if "setl_d" not in self.tables:
            return
        setl = self.tables["setl_d"]
        for i in self._shuffled(setl.index):
            if (i in self.touched["setl_d"] or setl.at[i, "refd_setl_flag"] != "1"
                    or _num(setl.at[i, "medfee_sumamt"]) >= 0):
                continue
            lines = self._lines.get(setl.at[i, "setl_id"], [])
            if any(j in self.touched["fee_list_d"] for j in lines):
                continue
            self._lock_setl(i)
            setl.at[i, "refd_setl_flag"] = "0"
            self._expect("setl_d", i, "medfee_sumamt", "negative_outside_refund")
            fee = self.tables.get("fee_list_d")
            for j in lines:
                for f in ("cnt", "det_item_fee_sumamt"):
                    if _num(fee.at[j, f]) < 0:
                        self._expect("fee_list_d", j, f, "negative_outside_refund")
            return

    def future_date(self) -> None:
        pick = self._pick_field([("fee_list_d", "fee_ocur_time"), ("setl_d", "setl_time"), ("mdtrt_d", "endtime")])
        if pick:
            table, i, f = pick
            self._set(table, i, f, "2099-01-01 08:00:00", "future_date")

    def unknown_code(self) -> None:
        bad = {"med_type": "99", "list_type": "999", "gend": "9", "fixmedins_type": "hospitall"}
        pick = self._pick_field([("setl_d", "med_type"), ("fee_list_d", "list_type"), ("psn_info", "gend"),
                                 ("fixmedins", "fixmedins_type")])
        if pick:
            table, i, f = pick
            self._set(table, i, f, bad[f], "unknown_code")

    def mojibake(self) -> None:
        """UTF-8 text that went through a Windows-1252 reader: valid bytes, garbled words."""
        pick = self._pick_field([("fee_list_d", "hilist_name"), ("mdtrt_d", "dscg_maindiag_name"),
                                 ("setl_d", "dise_name")], when=lambda v: not v.isascii())
        if pick:
            table, i, f = pick
            garbled = self._get(table, i, f).encode("utf-8").decode("cp1252", errors="replace")
            self._set(table, i, f, garbled, "broken_encoding")

    def invalid_bytes(self) -> None:
        """Bytes that are not UTF-8 at all, in a table nothing else points at (the whole line is unreadable)."""
        pick = self._pick_field([("setl_list_diag_d", "diag_name"), ("hilist", "hilist_name"),
                                 ("practitioner", "title")])
        if pick:
            table, i, f = pick
            marker = f"@@BAD{len(self.raw_bytes[table])}@@"
            self.raw_bytes[table][(i, f)] = marker.encode()
            self._set(table, i, f, self._get(table, i, f) + marker, "broken_encoding")

    def bad_certno(self) -> None:
        pick = self._pick_field([("psn_info", "certno")], when=lambda v: len(v) == 18)
        if pick:
            table, i, f = pick
            v = self._get(table, i, f)
            wrong = next(c for c in "0123456789" if c != v[-1].upper())
            self._set(table, i, f, v[:-1] + wrong, "bad_certno")

    def duplicate_key(self) -> None:
        names = [t for t in ("fee_list_d", "setl_list_diag_d", "psn_info", "mdtrt_d") if t in self.tables]
        if not names:
            return
        table = self.rng.choice(names)
        i = self._pick_row(table, lambda r: True)
        if i is None:
            return
        if table == "fee_list_d":  # its settlement's total must stay as it is: leave it alone
            self._lock_setl_of_line(i)
        self.touched[table].add(i)
        self.extra_rows[table].append(i)
        spec = TABLES[table]
        self.expected[table].append((self._key(table, i), "|".join(spec.key), "duplicate_key"))

    # -- helpers ------------------------------------------------------------------------------------

    def _shuffled(self, index):
        """Every element of ``index`` in random order; a few random draws come first (cheap on big tables)."""
        n = len(index)
        for _ in range(min(n, 64)):
            yield index[self.rng.randrange(n)]
        items = list(index)
        self.rng.shuffle(items)
        yield from items

    def _pick_row(self, table: str, ok) -> int | None:
        df = self.tables.get(table)
        if df is None:
            return None
        for i in self._shuffled(df.index):
            if i not in self.touched[table] and ok(df.loc[i]):
                return i
        return None

    def _pick_field(self, candidates: list[tuple[str, str]], when=lambda v: True) -> tuple[str, int, str] | None:
        cands = [(t, f) for t, f in candidates if t in self.tables and f in self.tables[t].columns]
        self.rng.shuffle(cands)
        for t, f in cands:
            i = self._pick_row(t, lambda r: r[f] is not None and when(r[f]))
            if i is not None:
                return t, i, f
        return None

    def _pick_setl(self, *, with_lines: bool) -> int | None:
        if "setl_d" not in self.tables:
            return None

        def ok(r) -> bool:
            lines = self._lines.get(r["setl_id"], [])
            if with_lines and not lines:
                return False
            return not any(j in self.touched["fee_list_d"] for j in lines)

        return self._pick_row("setl_d", ok)

    def _lock_setl(self, i: int) -> None:
        self.touched["setl_d"].add(i)
        self.touched["fee_list_d"].update(self._lines.get(self.tables["setl_d"].at[i, "setl_id"], []))

    def _lock_setl_of_line(self, j: int) -> None:
        setl = self.tables.get("setl_d")
        sid = self.tables["fee_list_d"].at[j, "setl_id"]
        if setl is not None:
            self.touched["setl_d"].update(setl.index[setl["setl_id"] == sid])
        self.touched["fee_list_d"].update(self._lines.get(sid, []))

    def _get(self, table: str, i: int, f: str) -> str:
        return self.tables[table].at[i, f]

    def _set(self, table: str, i: int, f: str, value: str | None, reason: str, *, field: str | None = None) -> None:
        if table == "fee_list_d" and f in ("cnt", "pric", "det_item_fee_sumamt"):
            self._lock_setl_of_line(i)
        self.tables[table].at[i, f] = value
        self._expect(table, i, field or f, reason)

    def _expect(self, table: str, i: int, f: str, reason: str) -> None:
        self.touched[table].add(i)
        self.expected[table].append((self._key(table, i), f, reason))

    def _key(self, table: str, i: int) -> str:
        df = self.tables[table]
        return "|".join((df.at[i, k] or "").strip() for k in TABLES[table].key)


def _read(con: duckdb.DuckDBPyConnection, src: Path, table: str) -> pd.DataFrame | None:
    if (src / table).is_dir():
        files = sorted(str(p) for p in (src / table).glob("*.parquet"))
    elif (src / f"{table}.parquet").is_file():
        files = [str(src / f"{table}.parquet")]
    else:
        return None
    if not files:
        return None
    cols = [r[0] for r in con.execute("DESCRIBE SELECT * FROM read_parquet(?)", [files]).fetchall()]
    select = ", ".join(f'CAST("{c}" AS VARCHAR) AS "{c}"' for c in cols)
    df = con.execute(f"SELECT {select} FROM read_parquet(?)", [files]).df()
    return df.astype(object).where(df.notna(), None)


def _write(con: duckdb.DuckDBPyConnection, tables: dict[str, pd.DataFrame], raw_bytes: dict[str, dict],
           dst: Path, *, fmt: str = "csv") -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for name, df in tables.items():
        path = dst / f"{name}.{fmt}"
        con.register("t", df)
        options = "FORMAT parquet" if fmt == "parquet" else "HEADER, DELIMITER ','"
        con.execute(f"COPY (SELECT * FROM t) TO '{path}' ({options})")
        con.unregister("t")
        for marker in raw_bytes.get(name, {}).values():
            path.write_bytes(path.read_bytes().replace(marker, BAD_BYTES))


def _num(v: str | None) -> float:
    return float(v) if v not in (None, "") else 0.0


def _money(x: float) -> str:
    return f"{x:.2f}"


def _plain(x: float) -> str:
    return f"{x:g}"
