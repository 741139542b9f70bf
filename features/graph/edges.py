"""Edges of the patient–doctor–institution–pharmacy graph (就医关系图), read from the warehouse with SQL.

Two tables come out of the warehouse, both without refunds (退费: the reversal settlement with
``refd_setl_flag = '1'`` and the original it cancels are both left out):

``visits``
    one row per encounter (就诊, ``mdtrt_d``): ``psn_no``, ``hub_type`` (``fixmedins`` for a visit to a
    hospital or clinic, ``pharmacy`` for a purchase at a retail pharmacy, 药店购药), ``hub_id`` (the
    institution), ``prac_code`` (the attending doctor, 主诊医师 ``chfpdr_code``; null at pharmacies),
    ``dept_id`` (``fixmedins_code/adm_dept_codg``), ``fixmedins_code``, ``visit_date``, ``amount`` (yuan,
    医疗费总额), ``fund_amount`` (yuan, 基金支付), ``visit_sec`` (seconds after midnight of ``begntime``; -1 when the extract gives no time
    of day, i.e. the time is exactly midnight), ``basket`` (at a pharmacy: the sorted set of catalogue codes
    bought, joined by spaces, so two swipes with the same basket have the same key; ``''`` elsewhere). The
    co-visit projection (``features.graph.projection``) is built from it.
``drug purchases`` (``read_drug_purchases``)
    one row per person, pharmacy, day and catalogue item (``drug``) for the persons who spent at least
    ``min_spend`` yuan on that item at pharmacies: ``cnt``, ``amount`` and ``supply`` (days supply,
    ``fee_list_d.prd_days``; where a line has none, its count times the item's median days per unit;
    items that never carry a days supply are left out). The co-purchase layer (倒卖医保药品) reads it,
    with ``read_drug_shops``: per item and pharmacy, the number of persons who bought it there (all
    buyers, for the layer's null model).
``edges``
    the heterogeneous graph, one row per linked pair of nodes and kind of link: ``src_type``,
    ``src_id``, ``dst_type``, ``dst_id``, ``kind`` (``visit`` person–doctor, ``billing`` person–doctor
    through fee lines billed by another doctor than the attending one, ``care`` person–institution,
    ``purchase`` person–pharmacy, ``works_at`` doctor–institution), ``n_events``, ``amount``,
    ``first_date``, ``last_date``.

Money and quantities are summed as DECIMAL (a visit's amount is a DECIMAL sum made DOUBLE, and goes back
exactly), so that the sums are the same whatever order a parallel engine adds in.

Each table is one SELECT in DuckDB's dialect (:func:`graph_inputs_sql`): the ``read_*`` functions run it on
the warehouse; with ``--engine spark`` Spark runs it, transpiled (``features.graph.spark``), over Parquet
exports of the same tables, and DuckDB reads Spark's output back.

Node types are ``psn`` (参保人), ``prac`` (医师/药师), ``fixmedins`` (hospital or clinic, 医疗机构) and
``pharmacy`` (零售药店); node ids are the contract codes (``psn_no``, ``prac_code``, ``fixmedins_code``).

>>> import duckdb
>>> con = duckdb.connect()
>>> _ = con.execute(_DEMO_SQL)
>>> v = read_visits(con)
>>> v[["psn_no", "hub_type", "hub_id", "amount", "fund_amount"]].values.tolist()
[['P1', 'fixmedins', 'H1', 100.0, 70.0], ['P2', 'pharmacy', 'S1', 30.0, 0.0]]
>>> e = read_edges(con)
>>> sorted(e["kind"])
['care', 'purchase', 'visit', 'works_at']
>>> v["visit_sec"].tolist(), v["basket"].tolist()
([32400, 36000], ['', 'XA1'])
>>> read_drug_purchases(con, min_spend=20)[["psn_no", "drug", "cnt", "supply"]].values.tolist()
[['P2', 'XA1', 2.0, 14.0]]
>>> read_drug_shops(con).values.tolist()
[['XA1', 'S1', 1]]
"""

from __future__ import annotations

import zlib

import duckdb
import pandas as pd

__all__ = ["NODE_TYPES", "read_visits", "read_edges", "read_drug_purchases", "read_drug_shops", "graph_inputs_sql",
           "typed_input", "INPUT_ORDER", "WarehouseGraphInputs"]

NODE_TYPES = ("psn", "prac", "fixmedins", "pharmacy")

# Settlements that count: not a reversal, not reversed by one.
_LIVE_SETL = """
    SELECT s.mdtrt_id, sum(s.medfee_sumamt)::DOUBLE AS amount, sum(s.fund_pay_sumamt)::DOUBLE AS fund_amount
    FROM setl_d s
    WHERE s.refd_setl_flag IS DISTINCT FROM '1'
      AND s.setl_id NOT IN (SELECT init_setl_id FROM setl_d WHERE refd_setl_flag = '1' AND init_setl_id IS NOT NULL)
    GROUP BY s.mdtrt_id
"""

_IS_PHARMACY = "(coalesce(f.fixmedins_type, '') = 'pharmacy' OR m.med_type = '41')"

# The basket of a pharmacy swipe: the set of items bought, as their sorted codes (a key both engines spell
# alike; a hash would differ between DuckDB and Spark).
_BASKETS = f"""
    SELECT fl.mdtrt_id, array_to_string(list(DISTINCT fl.hilist_code ORDER BY fl.hilist_code), ' ') AS basket
    FROM fee_list_d fl JOIN mdtrt_d m USING (mdtrt_id) LEFT JOIN fixmedins f ON f.fixmedins_code = m.fixmedins_code
    WHERE {_IS_PHARMACY}
    GROUP BY fl.mdtrt_id
"""

_VISITS_SQL = f"""
    WITH live AS ({_LIVE_SETL}),
    baskets AS ({_BASKETS})
    SELECT m.psn_no,
           CASE WHEN {_IS_PHARMACY} THEN 'pharmacy' ELSE 'fixmedins' END AS hub_type,
           m.fixmedins_code AS hub_id,
           CASE WHEN {_IS_PHARMACY} THEN NULL ELSE m.chfpdr_code END AS prac_code,
           CASE WHEN {_IS_PHARMACY} THEN NULL ELSE m.fixmedins_code || '/' || coalesce(m.adm_dept_codg, '') END
               AS dept_id,
           m.fixmedins_code,
           CAST(m.begntime AS DATE) AS visit_date,
           live.amount,
           live.fund_amount,
           CASE WHEN m.begntime IS NULL OR hour(m.begntime) * 3600 + minute(m.begntime) * 60 + second(m.begntime) = 0
                THEN -1 ELSE hour(m.begntime) * 3600 + minute(m.begntime) * 60 + second(m.begntime) END AS visit_sec,
           coalesce(baskets.basket, '') AS basket
    FROM mdtrt_d m
    JOIN live USING (mdtrt_id)
    LEFT JOIN baskets USING (mdtrt_id)
    LEFT JOIN fixmedins f USING (fixmedins_code)
"""


# The tables above, each one SELECT in DuckDB's dialect (Spark runs it transpiled: ``graph_inputs_sql``),
# with the order a reader sorts them in.
_DRUG_SHOPS_SQL = f"""
    WITH live AS ({_LIVE_SETL})
    SELECT fl.hilist_code AS drug, m.fixmedins_code AS hub_id, count(DISTINCT m.psn_no) AS buyers
    FROM fee_list_d fl JOIN mdtrt_d m USING (mdtrt_id) JOIN live USING (mdtrt_id)
    LEFT JOIN fixmedins f ON f.fixmedins_code = m.fixmedins_code
    WHERE {_IS_PHARMACY} AND fl.hilist_code IS NOT NULL
    GROUP BY ALL
"""

_EDGES_SQL = f"""
    WITH v AS ({_VISITS_SQL}),
    billing AS (
        SELECT fl.psn_no, fl.bilg_dr_code AS prac_code, count(DISTINCT fl.mdtrt_id) AS n_events,
               sum(fl.det_item_fee_sumamt)::DOUBLE AS amount, min(CAST(fl.fee_ocur_time AS DATE)) AS first_date,
               max(CAST(fl.fee_ocur_time AS DATE)) AS last_date
        FROM fee_list_d fl JOIN mdtrt_d m USING (mdtrt_id)
        WHERE fl.bilg_dr_code IS NOT NULL AND fl.bilg_dr_code IS DISTINCT FROM m.chfpdr_code
          AND m.med_type <> '41'
          AND fl.mdtrt_id IN (SELECT mdtrt_id FROM ({_LIVE_SETL}) live_ids)
        GROUP BY ALL
    )
    SELECT 'psn' AS src_type, psn_no AS src_id, 'prac' AS dst_type, prac_code AS dst_id, 'visit' AS kind,
           count(*) AS n_events, sum(CAST(amount AS DECIMAL(18, 2)))::DOUBLE AS amount, min(visit_date) AS first_date,
           max(visit_date) AS last_date
    FROM v WHERE prac_code IS NOT NULL GROUP BY ALL
    UNION ALL
    SELECT 'psn', psn_no, 'prac', prac_code, 'billing', n_events, amount, first_date, last_date FROM billing
    UNION ALL
    SELECT 'psn', psn_no, hub_type, fixmedins_code, CASE WHEN hub_type = 'pharmacy' THEN 'purchase' ELSE 'care' END,
           count(*), sum(CAST(amount AS DECIMAL(18, 2)))::DOUBLE, min(visit_date), max(visit_date)
    FROM v GROUP BY ALL
    UNION ALL
    SELECT 'prac', prac_code, 'fixmedins', fixmedins_code, 'works_at', count(*),
           sum(CAST(amount AS DECIMAL(18, 2)))::DOUBLE, min(visit_date), max(visit_date)
    FROM v WHERE prac_code IS NOT NULL GROUP BY ALL
"""

# Each order is total (rows equal in it are equal): what reads them back from several files, or from a
# parallel query, sees the same order every time (the burst evidence breaks ties by order).
INPUT_ORDER = {"visits": "psn_no, visit_date, hub_id, prac_code, visit_sec, dept_id, hub_type, fixmedins_code, amount, "
                         "fund_amount, basket",
               "drug_purchases": "psn_no, drug, visit_date, hub_id", "drug_shops": "drug, hub_id",
               "edges": "kind, src_id, dst_id"}


def graph_inputs_sql(*, min_spend: float = 1000.0) -> dict[str, str]:
    """The SELECT of each table the graph reads from the claims (``visits``, ``drug_purchases``,
    ``drug_shops``, ``edges``; unordered, see :data:`INPUT_ORDER`), in DuckDB's dialect over the contract
    tables ``setl_d``, ``mdtrt_d``, ``fee_list_d`` and ``fixmedins``. The ``read_*`` functions run them on
    DuckDB; ``features.graph.spark`` runs them on Spark.

    >>> sorted(graph_inputs_sql())
    ['drug_purchases', 'drug_shops', 'edges', 'visits']
    """
    return {"visits": _VISITS_SQL, "drug_purchases": _drug_purchases_sql(min_spend), "drug_shops": _DRUG_SHOPS_SQL,
            "edges": _EDGES_SQL}


def typed_input(name: str, df: pd.DataFrame) -> pd.DataFrame:
    """The column types the graph code expects of input table ``name`` as read by DuckDB (in place)."""
    if "visit_date" in df.columns:
        df["visit_date"] = pd.to_datetime(df["visit_date"])
    if name == "visits":
        df["visit_sec"] = df["visit_sec"].astype("int32")
    elif name == "drug_shops":
        df["buyers"] = df["buyers"].astype("int64")
    elif name == "edges":
        df["n_events"] = df["n_events"].astype("int64")
    return df


def read_visits(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Encounters without refunds (see the module docstring), ordered by person, date and hub."""
    return _read(con, "visits", _VISITS_SQL)


def read_drug_purchases(con: duckdb.DuckDBPyConnection, *, min_spend: float = 1000.0) -> pd.DataFrame:
    """Pharmacy purchases per person, shop, day and item, for the persons who spent ``min_spend`` yuan or
    more on the item (see the module docstring), ordered by person, item and day."""
    return _read(con, "drug_purchases", _drug_purchases_sql(min_spend))


def read_drug_shops(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Per item and pharmacy, the persons who bought it there (``drug, hub_id, buyers``), refunds left out."""
    return _read(con, "drug_shops", _DRUG_SHOPS_SQL)


def read_edges(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """The heterogeneous graph's weighted, dated edges (see the module docstring)."""
    return _read(con, "edges", _EDGES_SQL)


class WarehouseGraphInputs:
    """The graph's inputs as temporary tables of the warehouse itself (``--engine duckdb``), with the same
    interface as ``features.graph.spark.SparkGraphInputs``: ``table(name, persons=…)`` reads one into
    pandas (only some persons' rows), ``count(name)`` counts it, ``self(sql)`` runs one projection SELECT
    over them (a :data:`features.graph.projection.PairQuery`, pairs in order), ``close()`` drops them.

    The visits stay in DuckDB: the projection's self-joins run on them where they are, and only the
    visits of the projection's persons reach pandas (on ``city`` the 3.0 M visits took 7.6 s to read
    into pandas, their temporary table 3.1 s to write)."""

    prefix = "graph_in_"
    _KEPT = ("visits", "drug_purchases", "drug_shops", "edges")  # read more than once: kept as temporary tables

    def __init__(self, con: duckdb.DuckDBPyConnection, *, min_spend: float) -> None:
        self.con, self.sql, self.tables = con, graph_inputs_sql(min_spend=min_spend), []
        self._crc32 = _ensure_crc32(con)
        for name in self._KEPT:
            self.keep(self.prefix + name, self.sql[name])

    def table(self, name: str, *, persons: set[str] | None = None) -> pd.DataFrame:
        if persons is None:
            return _read(self.con, name, f"SELECT * FROM {self._relation(name)}")
        self.con.register(f"{self.prefix}persons", pd.DataFrame({"psn_no": sorted(persons)}, dtype=object))
        try:
            return _read(self.con, name, f"SELECT * FROM {self._relation(name)} "
                                         f"WHERE psn_no IN (SELECT psn_no FROM {self.prefix}persons)")
        finally:
            self.con.unregister(f"{self.prefix}persons")

    def count(self, name: str) -> int:
        return int(self.con.execute(f"SELECT count(*) FROM {self._relation(name)}").fetchone()[0])

    def map_blocks(self, frame: pd.DataFrame, fn, schema: str) -> pd.DataFrame:
        """``fn`` over the rows of each ``block`` of ``frame``, here, one after the other
        (``features.graph.communities.MapBlocks``)."""
        from features.graph.communities import map_here

        return map_here(frame, fn, schema)

    def __call__(self, sql: str) -> pd.DataFrame:
        return self.con.execute(f"SELECT * FROM ({sql}) ORDER BY psn_a, psn_b").df()

    # the verbs of features.graph.nodes: SQL where the edges are

    def keep(self, name: str, sql: str) -> None:
        """The SELECT ``sql`` computed once, as the temporary table ``name``."""
        self.con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS {sql}")
        self.tables.append(name)

    def number(self, name: str, sql: str, order: str) -> None:
        """The rows of the SELECT ``sql`` as the temporary table ``name``, numbered ``i`` from 0 in ``order``
        (NULLs last)."""
        keys = ", ".join(f"{k.strip()} NULLS LAST" for k in order.split(","))
        self.keep(name, f"SELECT *, row_number() OVER (ORDER BY {keys}) - 1 AS i FROM ({sql}) q")

    def frame(self, name: str, df: pd.DataFrame, schema: str) -> None:
        """The rows of ``df`` as the temporary table ``name`` with the columns of ``schema`` (Spark's
        ``name type, …``)."""
        cols = [c.split() for c in schema.split(", ")]
        self.con.execute(f"CREATE OR REPLACE TEMP TABLE {name} ("
                         + ", ".join(f"{c} {_DUCK_TYPES[t]}" for c, t in cols) + ")")
        self.tables.append(name)
        self.con.register("_graph_frame", df[[c for c, _ in cols]])
        try:
            self.con.execute(f"INSERT INTO {name} SELECT * FROM _graph_frame")
        finally:
            self.con.unregister("_graph_frame")

    def query(self, sql: str, *, order: str | None = None) -> pd.DataFrame:
        """The rows of the SELECT ``sql`` (in ``order`` when given)."""
        return self.con.execute(f"SELECT * FROM ({sql}) q" + (f" ORDER BY {order}" if order else "")).df()

    def store(self, table: str, sql: str, columns: tuple[tuple[str, str], ...]) -> None:
        """The rows of the SELECT ``sql`` as the warehouse table ``table`` (``columns``: names and types)."""
        self.con.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT "
                         + ", ".join(f"CAST({c} AS {t}) AS {c}" for c, t in columns) + f" FROM ({sql}) q")

    def close(self) -> None:
        for table in self.tables:
            self.con.execute(f"DROP TABLE IF EXISTS {table}")
        self.tables = []
        if self._crc32:
            self.con.remove_function("crc32")
            self._crc32 = False

    def _relation(self, name: str) -> str:
        return self.prefix + name if name in self._KEPT else f"({self.sql[name]})"


_DUCK_TYPES = {"string": "VARCHAR", "long": "BIGINT", "double": "DOUBLE", "boolean": "BOOLEAN", "int": "INTEGER"}


def _ensure_crc32(con: duckdb.DuckDBPyConnection) -> bool:
    """``crc32(BLOB)``, as Spark has it built in (the node folds of ``features.graph.nodes``); True when
    registered here (and to be removed)."""
    if con.execute("SELECT 1 FROM duckdb_functions() WHERE function_name = 'crc32'").fetchall():
        return False
    con.create_function("crc32", _crc32, [duckdb.sqltype("BLOB")], duckdb.sqltype("BIGINT"), side_effects=False)
    return True


def _crc32(data: bytes) -> int:
    return zlib.crc32(data)


def _read(con: duckdb.DuckDBPyConnection, name: str, sql: str) -> pd.DataFrame:
    return typed_input(name, con.execute(f"SELECT * FROM ({sql}) ORDER BY {INPUT_ORDER[name]}").df())


def _drug_purchases_sql(min_spend: float) -> str:
    return f"""
    WITH live AS ({_LIVE_SETL}),
    lines AS (
        SELECT m.psn_no, m.fixmedins_code AS hub_id, CAST(m.begntime AS DATE) AS visit_date,
               fl.hilist_code AS drug, fl.cnt, fl.det_item_fee_sumamt AS amount, fl.prd_days
        FROM fee_list_d fl JOIN mdtrt_d m USING (mdtrt_id) JOIN live USING (mdtrt_id)
        LEFT JOIN fixmedins f ON f.fixmedins_code = m.fixmedins_code
        WHERE {_IS_PHARMACY} AND fl.hilist_code IS NOT NULL),
    per_unit AS (
        SELECT drug, median(prd_days / cnt) AS days_per_unit FROM lines
        WHERE prd_days > 0 AND cnt > 0 GROUP BY drug),
    big AS (
        SELECT psn_no, drug FROM lines GROUP BY ALL HAVING sum(amount) >= {float(min_spend)!r})
    SELECT l.psn_no, l.hub_id, l.visit_date, l.drug, sum(TRY_CAST(l.cnt AS DECIMAL(18, 4)))::DOUBLE AS cnt,
           sum(l.amount)::DOUBLE AS amount,
           sum(TRY_CAST(coalesce(l.prd_days, l.cnt * u.days_per_unit) AS DECIMAL(18, 4)))::DOUBLE AS supply
    FROM lines l JOIN big USING (psn_no, drug) JOIN per_unit u USING (drug)
    GROUP BY ALL
"""


# A two-person region for the doctest: one visit to doctor D1 at hospital H1, one purchase at pharmacy S1,
# and a refunded visit that must not show up.
_DEMO_SQL = """
CREATE TABLE fixmedins AS SELECT * FROM (VALUES ('H1', 'hospital'), ('S1', 'pharmacy')) t(fixmedins_code, fixmedins_type);
CREATE TABLE mdtrt_d AS SELECT * FROM (VALUES
  ('M1', 'P1', 'H1', '11', TIMESTAMP '2024-03-01 09:00:00', 'D1'),
  ('M2', 'P2', 'S1', '41', TIMESTAMP '2024-03-02 10:00:00', 'R1'),
  ('M3', 'P2', 'H1', '11', TIMESTAMP '2024-03-03 10:00:00', 'D1'))
  t(mdtrt_id, psn_no, fixmedins_code, med_type, begntime, chfpdr_code);
ALTER TABLE mdtrt_d ADD COLUMN adm_dept_codg VARCHAR;
CREATE TABLE setl_d AS SELECT * FROM (VALUES
  ('S01', 'M1', 100.0, 70.0, '0', NULL), ('S02', 'M2', 30.0, 0.0, '0', NULL),
  ('S03', 'M3', 50.0, 35.0, '0', NULL), ('S04', 'M3', -50.0, -35.0, '1', 'S03'))
  t(setl_id, mdtrt_id, medfee_sumamt, fund_pay_sumamt, refd_setl_flag, init_setl_id);
CREATE TABLE fee_list_d AS SELECT * FROM (VALUES
  ('F1', 'M1', 'P1', 'D1', TIMESTAMP '2024-03-01 09:10:00', 100.0, 'SVC', 1.0, NULL),
  ('F2', 'M2', 'P2', NULL, TIMESTAMP '2024-03-02 10:00:00', 30.0, 'XA1', 2.0, 14.0))
  t(bkkp_sn, mdtrt_id, psn_no, bilg_dr_code, fee_ocur_time, det_item_fee_sumamt, hilist_code, cnt, prd_days);
"""
