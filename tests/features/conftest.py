"""A hand-written mini region (two institutions, three persons, five settlements) for the ingest tests.

``mini_region()`` returns the rows as text, exactly as a CSV would carry them; ``write_region`` writes
them as CSV or as typed Parquet (amounts as DOUBLE, times as TIMESTAMP, as the simulator does), one
file or one folder of part files per table. Tests change a few rows and check what ingest makes of it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from features.config import Settings
from features.contract import LOAD_ORDER, TABLES

Region = dict[str, list[dict[str, str | None]]]

AS_OF = "2024-12-31"
KEY = "test-pseudonym-key"

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def with_check_digit(first17: str) -> str:
    """A resident ID: 17 digits plus the GB 11643 check character."""
    return first17 + "10X98765432"[sum(int(d) * w for d, w in zip(first17, _WEIGHTS)) % 11]


CERTNOS = {
    "PSN001": with_check_digit("22010219800101001"),
    "PSN002": with_check_digit("22010219920315002"),
    "PSN003": with_check_digit("22010220150720003"),
}


def _rows(header: str, *lines: str) -> list[dict[str, str | None]]:
    names = header.split(",")
    out = []
    for line in lines:
        values = line.split(",")
        assert len(values) == len(names), line
        out.append({n: (v if v != "" else None) for n, v in zip(names, values)})
    return out


def mini_region() -> Region:
    """A small consistent region: every sum adds up, every parent exists, every code is known."""
    fee = "bkkp_sn,setl_id,mdtrt_id,psn_no,fixmedins_code,fee_ocur_time,hilist_code,hilist_name,list_type," \
          "med_chrgitm_type,cnt,pric,det_item_fee_sumamt,chrgitm_lv,bilg_dr_code"
    drug, bed, lab = ("XA01AAA012A001,阿莫西林胶囊,101,09", "001102000010000,床位费,201,01",
                      "110200000001,血常规,201,04")
    setl = "setl_id,mdtrt_id,psn_no,fixmedins_code,med_type,insutype,setl_time,medfee_sumamt,fund_pay_sumamt," \
           "hifp_pay,psn_pay,acct_pay,insu_admdvs,refd_setl_flag,begndate,enddate,hosp_lv,gend,brdy,age,init_setl_id"
    return {
        "fixmedins": _rows(
            "fixmedins_code,fixmedins_name,fixmedins_type,admdvs,hosp_lv,beds,specialties",
            "H001,长春市第一医院,hospital,220102,05,300,内科",
            "H002,康民大药房,pharmacy,220102,,,",
        ),
        "practitioner": _rows(
            "prac_code,fixmedins_code,dept_codg,caty,title",
            "D001,H001,A03,内科,主治医师",
            "D002,H001,A03,内科,住院医师",
            "R001,H002,,药学,药师",
        ),
        "hilist": _rows(
            "hilist_code,hilist_name,list_type,chrgitm_lv,pric_uplmt_amt,generic_name,med_chrgitm_type",
            "XA01AAA012A001,阿莫西林胶囊,101,01,15.00,阿莫西林,09",
            "001102000010000,床位费,201,01,50.00,,01",
            "110200000001,血常规,201,01,35.00,,04",
        ),
        "psn_info": _rows(
            "psn_no,gend,brdy,insutype,insu_admdvs,die_date,psn_type,certno,psn_name",
            f"PSN001,1,1980-01-01,310,220102,,11,{CERTNOS['PSN001']},张三",
            f"PSN002,2,1992-03-15,390,220102,,15,{CERTNOS['PSN002']},李四",
            f"PSN003,1,2015-07-20,390,220102,,1403,{CERTNOS['PSN003']},王小五",
        ),
        "mdtrt_d": _rows(
            "mdtrt_id,psn_no,fixmedins_code,med_type,begntime,endtime,dscg_maindiag_code,dscg_maindiag_name,"
            "chfpdr_code,ipt_days",
            "M001,PSN001,H001,21,2024-05-01 08:00:00,2024-05-05 10:00:00,J18.900,肺炎,D001,4",
            "M002,PSN002,H001,11,2024-05-03 09:00:00,2024-05-03 09:30:00,J06.900,急性上呼吸道感染,D002,0",
            "M003,PSN003,H002,41,2024-05-06 15:00:00,2024-05-06 15:05:00,,,,0",
            "M004,PSN001,H001,11,2024-06-01 10:00:00,2024-06-01 10:20:00,I10.x00,高血压,D001,0",
        ),
        "setl_d": _rows(
            setl,
            "S001,M001,PSN001,H001,21,310,2024-05-05 10:30:00,215.00,150.50,150.50,64.50,20.00,220102,0,"
            "2024-05-01,2024-05-05,05,1,1980-01-01,44,",
            "S002,M002,PSN002,H001,11,390,2024-05-03 09:40:00,42.50,20.00,20.00,22.50,0.00,220102,0,"
            "2024-05-03,2024-05-03,05,2,1992-03-15,32,",
            "S003,M003,PSN003,H002,41,390,2024-05-06 15:06:00,37.50,0.00,0.00,37.50,0.00,220102,0,"
            "2024-05-06,2024-05-06,,1,2015-07-20,8,",
            "S004,M002,PSN002,H001,11,390,2024-05-04 11:00:00,-42.50,-20.00,-20.00,-22.50,0.00,220102,1,"
            "2024-05-03,2024-05-03,05,2,1992-03-15,32,S002",
            "S005,M004,PSN001,H001,11,310,2024-06-01 10:30:00,85.00,50.00,50.00,35.00,10.00,220102,0,"
            "2024-06-01,2024-06-01,05,1,1980-01-01,44,",
        ),
        "fee_list_d": _rows(
            fee,
            f"F0001,S001,M001,PSN001,H001,2024-05-01 09:00:00,{drug},2,12.50,25.00,01,D001",
            f"F0002,S001,M001,PSN001,H001,2024-05-01 09:05:00,{bed},4,40.00,160.00,01,D001",
            f"F0003,S001,M001,PSN001,H001,2024-05-01 09:10:00,{lab},1,30.00,30.00,01,D001",
            f"F0004,S002,M002,PSN002,H001,2024-05-03 09:10:00,{lab},1,30.00,30.00,01,D002",
            f"F0005,S002,M002,PSN002,H001,2024-05-03 09:12:00,{drug},1,12.50,12.50,01,D002",
            f"F0006,S003,M003,PSN003,H002,2024-05-06 15:01:00,{drug},3,12.50,37.50,01,",
            f"F0007,S004,M002,PSN002,H001,2024-05-04 10:50:00,{lab},-1,30.00,-30.00,01,D002",
            f"F0008,S004,M002,PSN002,H001,2024-05-04 10:51:00,{drug},-1,12.50,-12.50,01,D002",
            f"F0009,S005,M004,PSN001,H001,2024-06-01 10:05:00,{lab},2,30.00,60.00,01,D001",
            f"F0010,S005,M004,PSN001,H001,2024-06-01 10:06:00,{drug},2,12.50,25.00,01,D001",
        ),
        "setl_list_diag_d": _rows(
            "setl_id,mdtrt_id,psn_no,maindiag_flag,diag_code,diag_type,diag_name",
            "S001,M001,PSN001,1,J18.900,1,肺炎",
            "S001,M001,PSN001,0,I10.x00,1,高血压",
            "S002,M002,PSN002,1,J06.900,1,急性上呼吸道感染",
            "S003,M003,PSN003,1,J06.900,1,急性上呼吸道感染",
            "S005,M004,PSN001,1,I10.x00,1,高血压",
        ),
        "stock_moves": _rows(
            "fixmedins_code,hilist_code,month,opening_qty,in_qty,out_qty,closing_qty",
            "H002,XA01AAA012A001,2024-05,100,50,30,120",
            "H002,XA01AAA012A001,2024-06,120,0,10,110",
        ),
        "labels": _rows(
            "entity_type,entity_id,label,fraud_type,amount,source,decided_at",
            "setl,S001,0,price_over_cap,0.00,inspection,2024-07-01 09:00:00",
            "fixmedins,H002,1,phantom_purchase,37.50,simulated,2024-07-01 09:00:00",
        ),
    }


def held_children(region: Region, bad: set[tuple[str, str, str, str]]) -> set[tuple[str, str, str, str]]:
    """The ``parent_held`` quarantine entries (table, key, field, reason) that the ingest adds to ``bad``:
    a row pointing at a parent key that does not reach the warehouse is held, and its own children with
    it. A repeated key's first row loads, so its repeats hold nothing back."""
    kept_out: dict[str, set[str]] = defaultdict(set)
    for table, key, _, reason in bad:
        if reason != "duplicate_key":
            kept_out[table].add(key)
    held = set()
    for table in LOAD_ORDER:
        spec = TABLES[table]
        for row in region.get(table, []):
            key = "|".join((row.get(k) or "").strip() for k in spec.key)
            for fld, parent, _ in spec.parents:
                if (row.get(fld) or "").strip() in kept_out[parent]:
                    held.add((table, key, fld, "parent_held"))
                    kept_out[table].add(key)
    return held


def orphans(warehouse: Path) -> dict[tuple[str, str], int]:
    """Rows of the warehouse whose parent is not in it, per (table, field): what must never happen."""
    import duckdb

    out = {}
    with duckdb.connect(str(warehouse), read_only=True) as con:
        for table, spec in TABLES.items():
            for fld, parent, parent_field in spec.parents:
                (n,) = con.execute(f"SELECT count(*) FROM main.{table} c WHERE NOT EXISTS "
                                   f"(SELECT 1 FROM main.{parent} p WHERE p.{parent_field} = c.{fld})").fetchone()
                if n:
                    out[(table, fld)] = n
    return out


def row_count(region: Region) -> dict[str, int]:
    return {t: len(rows) for t, rows in region.items()}


def write_region(region: Region, dst: Path, *, fmt: str = "csv", folder: bool = False, parts: int = 1) -> Path:
    """Write ``region`` to ``dst``: ``<table>.<fmt>``, or ``<table>/part-NNNNN.<fmt>`` when ``folder``.

    CSV cells are written as given; a cell that is ``bytes`` is written raw (to damage the encoding).
    Parquet columns are typed by the contract kind (DOUBLE amounts, TIMESTAMP times, DATE dates).
    """
    dst.mkdir(parents=True, exist_ok=True)
    for table, rows in region.items():
        chunks = [rows]
        if folder:
            # Keep the source order across part files: part 0 holds the first rows, and so on.
            size = -(-len(rows) // parts) if rows else 0
            chunks = [rows[i * size:(i + 1) * size] for i in range(parts)]
            (dst / table).mkdir(exist_ok=True)
        for i, chunk in enumerate(chunks):
            path = dst / table / f"part-{i:05d}.{fmt}" if folder else dst / f"{table}.{fmt}"
            names = list(rows[0]) if rows else list(TABLES[table].names)
            if fmt == "csv":
                _write_csv(path, names, chunk)
            else:
                pq.write_table(_arrow(table, names, chunk), path)
    return dst


def _write_csv(path: Path, names: list[str], rows: list[dict]) -> None:
    with path.open("wb") as fh:
        fh.write((",".join(names) + "\n").encode("utf-8"))
        for row in rows:
            cells = []
            for n in names:
                v = row.get(n)
                if v is None:
                    cells.append(b"")
                elif isinstance(v, bytes):
                    cells.append(v)
                else:
                    text = str(v)
                    if any(ch in text for ch in ',"\n'):
                        text = '"' + text.replace('"', '""') + '"'
                    cells.append(text.encode("utf-8"))
            fh.write(b",".join(cells) + b"\n")


def _arrow(table: str, names: list[str], rows: list[dict]) -> pa.Table:
    spec = TABLES[table]
    arrays = {}
    for n in names:
        kind = spec.field(n).kind if n in spec.names else "text"
        values = [r.get(n) for r in rows]
        if kind in ("amount", "number"):
            arrays[n] = pa.array([None if v is None else float(v) for v in values], pa.float64())
        elif kind == "int":
            arrays[n] = pa.array([None if v is None else int(v) for v in values], pa.int64())
        elif kind == "datetime":
            arrays[n] = pa.array([None if v is None else datetime.fromisoformat(v) for v in values],
                                 pa.timestamp("us"))
        elif kind == "date":
            arrays[n] = pa.array([None if v is None else date.fromisoformat(v) for v in values], pa.date32())
        else:
            arrays[n] = pa.array(values, pa.string())
    return pa.table(arrays)


@pytest.fixture
def region() -> Region:
    """A fresh copy of the mini region, free to change."""
    return mini_region()


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(warehouse=tmp_path / "wh" / "warehouse.duckdb", pseudonym_key=KEY, as_of=AS_OF)


@pytest.fixture
def write(tmp_path) -> Callable[..., Path]:
    """``write(region, fmt='csv', folder=False, parts=1, name='src')`` → the source folder."""

    def _write(region: Region, *, fmt: str = "csv", folder: bool = False, parts: int = 1, name: str = "src") -> Path:
        return write_region(region, tmp_path / name, fmt=fmt, folder=folder, parts=parts)

    return _write


def set_row(region: Region, table: str, key: str, **values) -> dict:
    """Change the row of ``table`` whose key fields (joined with ``|``) are ``key``; returns the row."""
    spec = TABLES[table]
    for row in region[table]:
        if "|".join(row[k] or "" for k in spec.key) == key:
            row.update(values)
            return row
    raise KeyError(key)
