"""A person's claim history as columns (参保人历史索引): what the precheck kernels read instead of SQL.

:class:`HistoryIndex` is built once, when a :class:`~models.rules.precheck.Prechecker` starts, from the
checker's history store (the DuckDB copy of the claim tables): per table, the columns the kernels read,
sorted by person and, within a person, by settlement time, plus an array of offsets — person *i*'s rows
are ``offsets[i]:offsets[i + 1]``. Text that repeats (institution, catalogue code and name, list type,
doctor, a line's settlement ...) is dictionary-encoded, and amounts and quantities take 4 bytes where
the data allows (the values read back are the same): 83 MB on ``small``, 1.3 GB on ``city``. A lookup is
a dict probe, two binary searches on the settlement times (the look-back window) and the conversion of
the person's rows into Python tuples — numpy slices, text through lists of shared strings, times, dates
and amounts through caches: a few hundred µs for a long history, against ~1 ms per table for a lookup
in the DuckDB store.

The index holds what the SQL path's contract views hold for a person (``precheck._HISTORY``):
settlements, their fee lines and diagnoses (each line and diagnosis carries its settlement's time, so
the window is a range of rows), every visit row of the person, and the person's register row.

>>> import duckdb
>>> db = duckdb.connect()
>>> _ = db.execute("CREATE TABLE s AS SELECT 'P1' AS psn_no, 'S1' AS setl_id, TIMESTAMP '2025-01-02' AS setl_time")
>>> index = HistoryIndex.from_tables(db, {"setl_d": ("s", ("setl_id", "setl_time"), "setl_time")})
>>> index.rows("setl_d", "P1")
[('S1', datetime.datetime(2025, 1, 2, 0, 0))]
>>> index.rows("setl_d", "P2"), index.rows("setl_d", "P1", since=datetime(2025, 2, 1))
([], [])
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Any, Callable, Mapping

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["HistoryIndex", "STORE_COLUMNS"]

# What the kernels read of each claim table (contract names), and the column that orders a person's rows
# and bounds the look-back (a line or a diagnosis takes its settlement's time; visits and the register
# have none: all of a person's rows are read, as the SQL path reads them).
STORE_COLUMNS: dict[str, tuple[tuple[str, ...], str | None]] = {
    "setl_d": (("setl_id", "mdtrt_id", "fixmedins_code", "med_type", "insutype", "setl_time", "medfee_sumamt",
                "fund_pay_sumamt", "hifp_pay", "begndate", "enddate", "hosp_lv", "refd_setl_flag",
                "init_setl_id"), "setl_time"),
    "fee_list_d": (("bkkp_sn", "setl_id", "mdtrt_id", "fixmedins_code", "fee_ocur_time", "hilist_code",
                    "hilist_name", "list_type", "med_chrgitm_type", "cnt", "pric", "det_item_fee_sumamt",
                    "pric_uplmt_amt", "bilg_dr_code", "prd_days"), "setl_time"),
    "setl_list_diag_d": (("setl_id", "mdtrt_id", "maindiag_flag", "diag_code", "diag_name"), "setl_time"),
    "mdtrt_d": (("mdtrt_id", "fixmedins_code", "med_type", "begntime", "endtime", "dscg_maindiag_code",
                 "chfpdr_code"), None),
    "psn_info": (("gend", "brdy", "die_date"), None),
}

# Rows per query while the index is built (bounds the memory of the build).
_BUILD_ROWS = 1_000_000
# Keys unique per row (or nearly): not worth trying to dictionary-encode.
_UNIQUE = {"setl_d": ("setl_id",), "fee_list_d": ("bkkp_sn",), "mdtrt_d": ("mdtrt_id",),
           "setl_list_diag_d": ("setl_id", "mdtrt_id")}


@dataclass(frozen=True)
class _Table:
    columns: tuple["_Column", ...]  # the kernel columns, sorted by (person, time)
    times: np.ndarray | None        # the ordering time in µs since the epoch (int64), or None
    offsets: np.ndarray             # person i's rows: offsets[i]:offsets[i + 1]


class HistoryIndex:
    """Per person, the rows of the claim tables as Python tuples (in :data:`STORE_COLUMNS` order)."""

    def __init__(self, persons: Mapping[str, int], tables: Mapping[str, _Table]):
        self._persons, self._tables = persons, dict(tables)

    @classmethod
    def from_store(cls, db: duckdb.DuckDBPyConnection, schema: str = "store") -> "HistoryIndex":
        """Build the index from the checker's store (``{schema}.hist_<table>``, see ``precheck._load_store``:
        rows ordered by ``_psn_key``, a hash of ``psn_no``, which the build reads range by range)."""
        sources = {}
        for table, (columns, time_column) in STORE_COLUMNS.items():
            if time_column is None or table == "setl_d":
                sources[table] = (f"(SELECT * FROM {schema}.hist_{table} WHERE _psn_key BETWEEN {{lo}} AND {{hi}})",
                                  columns, time_column)
            else:  # a line or diagnosis is in the window with its settlement: carry its time
                cols = ", ".join(f"t.{c}" for c in columns)
                sources[table] = (
                    f"(SELECT t._psn_key, t.psn_no, {cols}, s.setl_time FROM {schema}.hist_{table} t "
                    f"LEFT JOIN (SELECT setl_id, setl_time FROM {schema}.hist_setl_d WHERE _psn_key BETWEEN {{lo}} "
                    f"AND {{hi}}) s ON s.setl_id = t.setl_id WHERE t._psn_key BETWEEN {{lo}} AND {{hi}})",
                    columns, "setl_time")
        return cls.from_tables(db, sources, key="_psn_key")

    @classmethod
    def from_tables(cls, db: duckdb.DuckDBPyConnection,
                    sources: Mapping[str, tuple[str, tuple[str, ...], str | None]], *,
                    key: str | None = None) -> "HistoryIndex":
        """Build the index from *sources*: per table, (a relation with ``psn_no``, its columns, the time column).

        With *key*, a column of every relation that orders its rows by person (the store's hash of
        ``psn_no``), persons are numbered in key order and each relation may hold ``{lo}`` and ``{hi}``:
        the build reads it one range of keys at a time (each range a small slice of the store).
        """
        order_persons = f"{key}, psn_no" if key else "psn_no"
        everyone = {"lo": 0, "hi": 2**64 - 1}
        union = " UNION ".join(f"SELECT {order_persons} FROM {rel.format(**everyone)}"
                               for rel, _, _ in sources.values())
        db.execute(f"CREATE OR REPLACE TEMP TABLE _index_persons AS SELECT {order_persons}, "
                   f"CAST(row_number() OVER (ORDER BY {order_persons}) - 1 AS INTEGER) AS _i FROM ({union}) "
                   f"WHERE psn_no IS NOT NULL")
        listed = db.sql(f"SELECT psn_no{', ' + key if key else ''} FROM _index_persons ORDER BY _i").to_arrow_table()
        names = listed.column(0).to_pylist()
        keys = listed.column(1).to_pylist() if key else None
        persons = {p: i for i, p in enumerate(names)}
        tables = {}
        for table, (rel, columns, time_column) in sources.items():
            order = f"_i, {time_column} NULLS FIRST" if time_column else "_i"
            keep = [*columns, time_column] if time_column and time_column not in columns else list(columns)
            (rows,), = db.execute(f"SELECT count(*) FROM {rel.format(**everyone)} t "
                                  f"WHERE psn_no IS NOT NULL").fetchall()
            # a few queries over ranges of persons, each compacted before the next: the build's memory stays
            # near one range's rows in full width, not the whole table's
            bounds = np.linspace(0, len(names), max(1, -(-rows // _BUILD_ROWS)) + 1).astype(np.int64)
            parts, person, times, limits = [], [], [], {}
            for lo, hi in zip(bounds, bounds[1:]):
                if hi <= lo:
                    continue
                span = {"lo": keys[lo], "hi": keys[hi - 1]} if keys else everyone
                data = db.sql(f"SELECT p._i, {', '.join('t.' + c for c in keep)} FROM {rel.format(**span)} t "
                              f"JOIN _index_persons p ON p.psn_no = t.psn_no WHERE p._i >= {lo} AND p._i < {hi} "
                              f"ORDER BY {order}").to_arrow_table()
                person.append(data.column("_i").to_numpy())
                if time_column:
                    times.append(_micros(data.column(time_column)))
                parts.append(_stage(data.select(list(columns)), limits, plain=_UNIQUE.get(table, ())))
                del data
            offsets = np.searchsorted(np.concatenate(person), np.arange(len(names) + 1), "left").astype(np.int64)
            compact = _compact(parts, list(columns), limits)
            tables[table] = _Table(tuple(_Column.of(c) for c in compact.columns),
                                   np.concatenate(times) if time_column else None, offsets)
            del parts, person, times
        db.execute("DROP TABLE _index_persons")
        return cls(persons, tables)

    def rows(self, table: str, psn_no: str, *, since: datetime | None = None,
             until: datetime | None = None) -> list[tuple]:
        """The person's rows of *table*; for a timed table only those with ``since <= time < until``."""
        i = self._persons.get(psn_no)
        if i is None:
            return []
        t = self._tables[table]
        start, stop = int(t.offsets[i]), int(t.offsets[i + 1])
        if t.times is not None and (since is not None or until is not None):
            times = t.times[start:stop]
            lo = 0 if since is None else int(np.searchsorted(times, _us(since), "left"))
            hi = len(times) if until is None else int(np.searchsorted(times, _us(until), "left"))
            start, stop = start + lo, start + max(lo, hi)
        if stop <= start:
            return []
        return list(zip(*(column.read(start, stop) for column in t.columns)))

    @property
    def nbytes(self) -> int:
        """Memory the index holds (columns, time and offset arrays; not the person dict)."""
        return sum(sum(c.nbytes for c in t.columns) + (t.times.nbytes if t.times is not None else 0)
                   + t.offsets.nbytes for t in self._tables.values())

    def __len__(self) -> int:
        return len(self._persons)


def _stage(table: pa.Table, limits: dict[str, list], *, plain: tuple[str, ...] = ()) -> pa.Table:
    """A range of rows made smaller before the next is read: text dictionary-encoded (but *plain*),
    amounts as 64-bit decimals (their smallest and largest value kept in *limits*)."""
    columns = []
    for name, column in zip(table.column_names, table.columns):
        column = column.combine_chunks()
        kind = column.type
        if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind):
            column = column.cast(pa.string())
            if name not in plain:
                column = pc.dictionary_encode(column)
        elif pa.types.is_decimal(kind) and kind.precision <= 18:
            extremes = pc.min_max(column)
            seen = limits.setdefault(name, [])
            seen += [v for v in (extremes["min"].as_py(), extremes["max"].as_py()) if v is not None]
            column = column.cast(pa.decimal64(kind.precision, kind.scale))
        columns.append(column)
    return pa.table(columns, names=table.column_names)


def _compact(parts: list[pa.Table], names: list[str], limits: dict[str, list]) -> pa.Table:
    """The staged ranges as one table, one chunk per column, each in the smallest type that gives back the
    same Python values: text that repeats dictionary-encoded (the narrowest index; text that hardly
    repeats plain), amounts as 32-bit decimals when they fit, numbers as 32-bit floats when no value
    changes."""
    columns = []
    for name in names:
        chunks = pa.chunked_array([c for part in parts for c in part.column(name).chunks],
                                  type=parts[0].column(name).type)
        kind = chunks.type
        if pa.types.is_dictionary(kind):
            column = chunks.unify_dictionaries().combine_chunks()
            size = len(column.dictionary)
            if size * 2 < len(column):
                width = next(t for t in (pa.int8(), pa.int16(), pa.int32()) if size < 2 ** (t.bit_width - 1))
                column = column.cast(pa.dictionary(width, pa.string()))
            else:
                column = column.cast(pa.string())
        else:
            column = chunks.combine_chunks()
        if pa.types.is_decimal(kind) and kind.scale == 2:
            if all(-10_000_000 < v < 10_000_000 for v in limits.get(name, ())):
                column = column.cast(pa.decimal32(9, 2))
        elif pa.types.is_float64(kind):
            single = column.cast(pa.float32(), safe=False)
            same = pc.or_kleene(pc.equal(single.cast(pa.float64()), column), pc.is_nan(column))
            if pc.all(same).as_py() in (True, None):
                column = single
        columns.append(column)
    return pa.table(columns, names=names)


class _Column:
    """One column of the index, and how a range of it is read back as Python values.

    Arrow's own conversion (``to_pylist``) makes a new object per value — 1–3 µs for a dictionary
    entry, a timestamp or a decimal; a person's history is hundreds of values per column. So text from a
    small dictionary is kept as codes into a list of the (shared) strings, and times, dates and amounts
    as numbers turned into Python values through a cache (a person's rows repeat them)."""

    __slots__ = ("data", "nulls", "values", "convert", "arrow")

    def __init__(self, data: np.ndarray | None = None, *, nulls: np.ndarray | None = None,
                 values: list | None = None, convert: Callable[[Any], Any] | None = None,
                 arrow: pa.Array | None = None):
        self.data, self.nulls, self.values, self.convert, self.arrow = data, nulls, values, convert, arrow

    @classmethod
    def of(cls, arr: pa.Array | pa.ChunkedArray) -> "_Column":
        if isinstance(arr, pa.ChunkedArray):
            arr = arr.combine_chunks()
        kind = arr.type
        nulls = arr.is_null().to_numpy(zero_copy_only=False) if arr.null_count else None
        if pa.types.is_dictionary(kind):
            if len(arr.dictionary) > _LISTED_VALUES:  # e.g. a line's settlement: decoded by Arrow
                return cls(arrow=arr)
            codes = arr.indices.fill_null(-1).to_numpy(zero_copy_only=False)
            return cls(codes, values=[*arr.dictionary.to_pylist(), None])  # code -1 (null) reads None
        if pa.types.is_string(kind) or pa.types.is_large_string(kind):
            return cls(arrow=arr)
        if pa.types.is_timestamp(kind):
            return cls(_filled(arr.cast(pa.timestamp("us")).cast(pa.int64())), nulls=nulls, convert=_datetime)
        if pa.types.is_date32(kind):
            return cls(_filled(arr.cast(pa.int32())), nulls=nulls, convert=_date)
        if pa.types.is_decimal(kind):
            if kind.scale != 2:
                return cls(arrow=arr)
            width = pa.int32() if kind.bit_width == 32 else pa.int64() if kind.bit_width == 64 else None
            if width is None:
                return cls(arrow=arr)
            return cls(_filled(arr.view(width)), nulls=nulls, convert=_cents)
        if pa.types.is_floating(kind) or pa.types.is_integer(kind):
            return cls(_filled(arr), nulls=nulls)
        return cls(arrow=arr)

    def read(self, start: int, stop: int) -> list:
        if self.arrow is not None:
            part = self.arrow.slice(start, stop - start)
            if pa.types.is_dictionary(part.type):
                part = part.dictionary.take(part.indices)
            return part.to_pylist()
        raw = self.data[start:stop].tolist()
        if self.values is not None:
            values = self.values
            return [values[i] for i in raw]
        if self.convert is not None:
            raw = list(map(self.convert, raw))
        if self.nulls is not None:
            mask = self.nulls[start:stop]
            if mask.any():
                return [None if n else v for v, n in zip(raw, mask.tolist())]
        return raw

    @property
    def nbytes(self) -> int:
        if self.arrow is not None:
            return self.arrow.nbytes
        return self.data.nbytes + (self.nulls.nbytes if self.nulls is not None else 0)


def _filled(arr: pa.Array) -> np.ndarray:
    """The values as numpy (a null as 0: the null mask says which)."""
    return arr.fill_null(0).to_numpy(zero_copy_only=False) if arr.null_count else arr.to_numpy(zero_copy_only=False)


@lru_cache(maxsize=1 << 16)
def _datetime(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


@lru_cache(maxsize=1 << 14)
def _date(days: int) -> date:
    return _EPOCH_DATE + timedelta(days=days)


@lru_cache(maxsize=1 << 16)
def _cents(cents: int) -> Decimal:
    """An amount in cents as DECIMAL(18, 2) reads back (always two decimals: ``Decimal('0.00')``)."""
    return (Decimal(cents) / 100).quantize(_CENT)


def _micros(column: pa.ChunkedArray) -> np.ndarray:
    """Timestamps as µs since the epoch (a missing time sorts first and is never in a window)."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    arr = arr.cast(pa.timestamp("us")).cast(pa.int64()).fill_null(np.iinfo(np.int64).min)
    return arr.to_numpy(zero_copy_only=False)


_EPOCH = datetime(1970, 1, 1)
_EPOCH_DATE = date(1970, 1, 1)
_CENT = Decimal("0.01")
_LISTED_VALUES = 1 << 16  # a dictionary this small is kept as a list of Python strings


def _us(t: datetime) -> int:
    d = t - _EPOCH
    return (d.days * 86_400 + d.seconds) * 1_000_000 + d.microseconds

