"""Ingest on Spark (Spark 入库): a lake's Parquet tables validated, quarantined and loaded by Spark.

With ``yibao run --engine spark`` the ingest stage reads the contract tables where a province lands them
(Parquet part files, in partition folders ``<table>/month=…/region=…/``) and runs on Spark the checks the
DuckDB ingest (``features.ingest``) runs, from the same SQL generated from the data contract
(``features.validate``) and transpiled (``features.spark_sql``):

- the code dialects put in canonical form: each code field's distinct values (a few thousand) go to the
  driver, are mapped there by the same ``features.codes`` as on DuckDB, and the map is joined back;
- every one-row check (required, type, code lists, encodings, future dates, amounts adding up): as on
  DuckDB, one pass finds the suspicious rows (codes, flags and names judged on their distinct values), and
  every check then runs on those rows alone;
- duplicate keys, parents (a child's parent looked up among the rows this run loaded; a parent quarantined
  makes its children ``parent_held``), settlement totals against their fee lines, negative lines outside
  refunds;
- resident IDs keyed to pseudonyms in the executors (the key travels inside the function, never in SQL
  text, a plan or a log);
- the quarantine rows with the same ids, reasons and masked raw copies as the DuckDB ingest writes.

Spark writes the loaded rows, the held rows and the quarantine rows to Parquet under the warehouse's lake
folder (``features.spark.lake_folder``: ``<warehouse>.lake/<table>/``, ``quarantine/<table>/``,
``held/<table>/``). The warehouse file then takes them in (DuckDB reads the Parquet; no row passes through
Python), so the stages after ingest, and ``yibao quarantine``, find them as after a DuckDB ingest; the Spark
stages after it read the lake's tables themselves (``features.spark.current_lake``) instead of exports of
the warehouse, as long as no other ingest run has changed the warehouse since. The clear resident IDs,
names and birth dates go to the identity vault only, through a folder readable by the owner alone that is
removed at once.

Not on Spark yet — the stage then runs on DuckDB and its report says why (:func:`spark_ingest_blocker`):
CSV sources (encodings, broken lines: read by DuckDB's CSV reader) and a warehouse that already holds rows
(a later extract: corrections, rows held by earlier runs released, the quarantine's memory of earlier runs).
So on Spark the ingest is the first load of a lake into a new warehouse.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

import duckdb
import pandas as pd

from features import warehouse
from features.codes import CodeMap
from features.config import Settings
from features.contract import TABLES
from features.ingest import (
    PARENT_TABLES,
    IngestError,
    IngestReport,
    Progress,
    TableReport,
    begin_run,
    staged_columns,
    connect_warehouse,
    count_source_rows,
    finish_run,
    first_line,
    load_tables,
    IngestRun,
    StagedTable,
    start_run,
    TableError,
    canonical_companions_sql,
    code_fields,
    code_plan,
    distinct_codes_sql,
    held_rows_sql,
    find_sources,
    parquet_layout,
    quarantined_keys_sql,
)
from features.pseudonym import pseudonymise
from features.spark import LAKE_BATCH, lake_folder
from features.spark_sql import to_spark, to_spark_expr
from features.validate import (
    HELD_REASONS,
    ISSUE_COLUMNS,
    checked_by_value,
    duplicate_key_sql,
    missing_parent_values_sql,
    negative_fee_sql,
    quote_ident,
    row_checks,
    settlement_lines_sql,
    settlement_total_sql,
    sql_str,
)

__all__ = ["ingest_spark", "spark_ingest_blocker"]


def spark_ingest_blocker(source: Path, settings: Settings) -> str | None:
    """Why the extract in ``source`` cannot be ingested on Spark (yet), in words for the stage report; None
    when it can."""
    sources, _, _ = find_sources(Path(source)) if Path(source).is_dir() else ({}, {}, [])
    csv = sorted(n for n, s in sources.items() if s.fmt != "parquet")
    if csv:
        return (f"CSV 源表 ({', '.join(csv)}) 由 DuckDB 入库：Spark 入库只读 Parquet 湖 "
                f"(CSV tables are ingested by DuckDB; Spark reads Parquet)")
    wh = Path(settings.warehouse)
    if wh.is_file():
        with warehouse.connect(wh, read_only=True) as con:
            names = [t for t in (*TABLES, "quarantine") if _has_rows(con, "main", t)]
            names += [f"held.{t}" for t in warehouse.HELD_TABLES if _has_rows(con, "held", t)]
        if names:
            return (f"仓库已有数据 ({', '.join(names[:3])}{' …' if len(names) > 3 else ''})：后续批次的入库"
                    f"（更正、暂存释放）尚在 DuckDB 上 (a warehouse with data: later loads run on DuckDB)")
    return None


def ingest_spark(source: Path, settings: Settings, spark, *, progress: Progress | None = None) -> IngestReport:
    """Validate and load the Parquet extract in ``source`` into ``settings.warehouse`` on Spark (see the
    module's docstring); the same report as :func:`features.ingest.ingest`, by the same steps
    (``features.ingest.load_tables``). Raises :class:`IngestError` where that does, and when
    :func:`spark_ingest_blocker` names a reason."""
    start = start_run(source, settings)
    why = spark_ingest_blocker(source, settings)
    if why:
        raise IngestError(why)
    lake = lake_folder(settings.warehouse)
    shutil.rmtree(lake, ignore_errors=True)  # a first load: nothing of an earlier one belongs here
    with connect_warehouse(settings) as con, duckdb.connect() as footers:
        begin_run(con, start.run, start.source_name, start.started)  # the vault's statement runs on con too
        job = _SparkIngest(spark, start.run, lake, footers)
        try:
            reports = load_tables(job, start.sources, start.source_errors, progress)
        finally:
            job.close()
        lake.mkdir(parents=True, exist_ok=True)
        (lake / LAKE_BATCH).write_text(str(start.run.batch_no))  # the lake holds what this run loaded
        report = finish_run(con, start, reports)
    return report


try:  # what a failing Spark query or warehouse write raises: the table is refused, the run goes on
    from py4j.protocol import Py4JJavaError
    from pyspark.errors import PySparkException

    _SPARK_ERRORS: tuple[type[BaseException], ...] = (PySparkException, Py4JJavaError, duckdb.Error)
except ImportError:  # pyspark not installed: nothing here can run anyway
    _SPARK_ERRORS = (duckdb.Error,)


class _SparkIngest:
    """How ``features.ingest.load_tables`` stages, checks and loads a table on Spark: the staged tables as
    temp views, what each table left for the next (``footers``: a DuckDB connection reading the Parquet
    files' footers)."""

    errors = _SPARK_ERRORS

    def __init__(self, spark, run: IngestRun, lake: Path, footers: duckdb.DuckDBPyConnection) -> None:
        self.spark, self.run, self.lake, self.footers = spark, run, lake, footers
        self.views: list[str] = []
        self.kept: list = []
        self.loaded: dict[str, int] = {}  # table -> rows loaded (its rows are in the view wh_<table>)
        self._known: frozenset[str] | None = None
        self._duplicates: dict[str, int] = {}
        self._view("known_quarantine", spark.sql(
            "SELECT CAST(NULL AS STRING) AS quarantine_id, CAST(NULL AS STRING) AS table_name, "
            "CAST(NULL AS BIGINT) AS released_batch WHERE 1 = 0"))

    def forget(self, name: str) -> None:
        """What a refused table left in the lake (the warehouse rolled its part back): its rows are not
        there for the children's parent check, nor for the stages after."""
        self.loaded.pop(name, None)
        for folder in (self.lake / name, self.lake / "quarantine" / name, self.lake / "held" / name):
            shutil.rmtree(folder, ignore_errors=True)

    # -- Spark helpers

    def sql(self, duckdb_sql: str):
        return self.spark.sql(to_spark(duckdb_sql))

    def _view(self, name: str, df, *, keep: bool = False) -> int | None:
        """Register ``df`` as the temp view ``name``; ``keep``: computed once now (and its rows counted)."""
        if keep:
            df = df.localCheckpoint(eager=True)
            self.kept.append(df)
        df.createOrReplaceTempView(name)
        self.views.append(name)
        return df.count() if keep else None

    def close(self) -> None:
        for name in self.views:
            self.spark.catalog.dropTempView(name)
        for df in self.kept:
            df.unpersist()

    # -- staging

    def count_rows(self, src) -> int | None:
        return count_source_rows(self.footers, src)

    def before_load(self) -> None:
        """Nothing: Spark keeps no insertion order."""

    def release(self, name: str) -> int:
        """Nothing is held from earlier runs in a first load."""
        return 0

    def stage(self, src) -> StagedTable:
        spec, footers = TABLES[src.table], self.footers
        empty = [str(p) for p in src.files if p.stat().st_size == 0]
        if empty:
            raise TableError(f"文件为空 (empty file): {', '.join(empty)}")
        layout = parquet_layout(footers, spec, src.files)
        select, source_columns = layout.renames
        # Spark names each row's file by its qualified URI: the files' numbers and first rows by that name.
        jvm = self.spark._jvm
        conf = self.spark._jsc.hadoopConfiguration()
        uris = []
        for p in layout.paths:
            path = jvm.org.apache.hadoop.fs.Path(p)
            uri = path.getFileSystem(conf).makeQualified(path).toUri().toString()
            uris.append("file:/" + uri[len("file:///"):] if uri.startswith("file:///") else uri)  # Spark's spelling
        files = self.spark.createDataFrame(
            [(u, i, off) for i, (u, off) in enumerate(zip(uris, layout.offsets))],
            "_yb_uri STRING, _yb_file INT, _yb_offset BIGINT")
        name = spec.name
        self._view(f"files_{name}", files)
        raw = (self.spark.read.option("mergeSchema", "true").parquet(*layout.paths)
               .selectExpr("*", "_metadata.file_path AS _yb_uri", "_metadata.row_index AS _yb_index"))
        self._view(f"src_{name}", raw)
        staged = self.sql(f"""
            SELECT f._yb_offset + s._yb_index + 1 AS _row, f._yb_file AS _file, {select}
            FROM src_{name} s JOIN files_{name} f ON f._yb_uri = s._yb_uri""").cache()
        self._view(f"stg_{name}", staged)
        self.kept.append(staged)
        columns = staged_columns(spec, footers, "", list(layout.described), never_null=set(layout.never_null))
        # Every text column trimmed: on DuckDB only those the first pass finds padded (the same values).
        columns = {k: replace(c, trim=True) for k, c in columns.items()}
        return StagedTable(spec, f"stg_{name}", src.files, source_columns, columns, layout.rows)

    def canonicalise(self, name: str) -> None:
        """As :meth:`features.ingest.IngestRun.canonicalise`: codes mapped on the driver, the map joined back."""
        st = self.run.staged[name]
        fields = code_fields(st)
        if not fields:
            return
        rows = [tuple(r) for r in self.sql(distinct_codes_sql(st, fields)).collect()]
        changed = code_plan(st, fields, rows, self._catalogue_codes)
        if not changed:
            return
        joins, replaced, extra = [], {}, []
        for i, f, pairs in changed:
            cmap, col = f"cmap_{name}_{i}", quote_ident(f.name)
            self._view(cmap, self.spark.createDataFrame(pairs, "raw STRING, code STRING, suffix STRING"))
            joins.append(f"LEFT JOIN {cmap} m{i} ON m{i}.raw = CAST(s.{col} AS VARCHAR)")
            replaced[f.name] = f"coalesce(m{i}.code, CAST(s.{col} AS VARCHAR)) AS {col}"
            extra.extend(canonical_companions_sql(f, f"m{i}"))
        items = ["s._row", "s._file"] + [replaced.get(c, f"s.{quote_ident(c)}") for c in st.source_columns] + extra
        self._view(f"cstg_{name}", self.sql(f"SELECT {', '.join(items)} FROM {st.relation} s {' '.join(joins)}"),
                   keep=True)
        self.spark.table(st.relation).unpersist()  # the rows as read: held once, in their canonical form
        st.relation = f"cstg_{name}"

    def _catalogue_codes(self) -> frozenset[str]:
        if self._known is None:
            known: set[str] = set()
            if "hilist" in self.run.staged:
                codes = CodeMap("list")
                known |= {codes(r[0]) for r in self.sql(
                    f"SELECT DISTINCT CAST(hilist_code AS VARCHAR) FROM {self.run.staged['hilist'].relation}").collect()}
            self._known = frozenset(c for c in known if c)
        return self._known

    # -- checks

    def issues(self, st: StagedTable) -> tuple[str, int]:
        """The temp view of every issue row of ``st`` (``ISSUE_COLUMNS``) and their number."""
        spec, name = st.spec, st.spec.name
        parts = [f"SELECT * FROM {self.duplicates(st)[0]}"]
        for fld, parent, parent_field in spec.parents:
            sql = self._parent_sql(st, fld, parent, parent_field)
            if sql:
                parts.append(sql)
        if name == "setl_d" and "fee_list_d" in self.run.staged:
            fee = self.run.staged["fee_list_d"]
            fee_dup, n_fee_dup = self.duplicates(fee)
            self._view(f"fs_{name}", self.sql(settlement_lines_sql(
                st.relation, st.columns, fee.relation, fee.columns, fee_duplicates=fee_dup if n_fee_dup else None)),
                keep=True)
            parts.append(settlement_total_sql(f"fs_{name}"))
        if name == "fee_list_d":
            setl = self.run.staged.get("setl_d")
            if setl is not None or self.loaded.get("setl_d"):
                parts.append(negative_fee_sql(
                    st.relation, st.columns, setl_relation=setl.relation if setl else None,
                    setl_columns=setl.columns if setl else None,
                    setl_warehouse="wh_setl_d" if self.loaded.get("setl_d") else None))
        cols = ", ".join(ISSUE_COLUMNS)
        others = self.sql(" UNION ALL ".join(f"SELECT {cols} FROM ({p})" for p in parts))
        issues = self._row_checks(st).unionByName(others.selectExpr(
            "CAST(_row AS BIGINT) AS _row", "CAST(field AS STRING) AS field", "reason_code", "check_id",
            "CAST(value AS STRING) AS value", "CAST(detail AS STRING) AS detail"))
        n = self._view(f"iss_{name}", issues, keep=True)
        return f"iss_{name}", int(n)

    def _row_checks(self, st: StagedTable):
        """Every one-row check of ``st``, as issue rows. As on DuckDB (``features.ingest.IngestRun.scan``), one pass
        finds the suspicious rows first: the checks of codes, flags and names (``checked_by_value``) run on
        their distinct values, a few thousand, and rows are matched to the bad ones; the other checks are
        conditions of that pass. Then every check is evaluated on the suspicious rows alone."""
        name = st.spec.name
        checks = row_checks(st.spec, st.columns, as_of=self.run.as_of)
        if not checks:
            return self.spark.sql("SELECT CAST(NULL AS BIGINT) AS _row, CAST(NULL AS STRING) AS field, "
                                  "CAST(NULL AS STRING) AS reason_code, CAST(NULL AS STRING) AS check_id, "
                                  "CAST(NULL AS STRING) AS value, CAST(NULL AS STRING) AS detail WHERE 1 = 0")
        by_value = {n: c for n, c in st.columns.items() if checked_by_value(c)}
        conds = [to_spark_expr(f"({c.when})") for c in checks if not (c.value_only and c.field in by_value)]
        bad_parts = []
        for n, c in by_value.items():
            when = [to_spark_expr(f"({k.when})") for k in checks if k.value_only and k.field == n]
            if c.field.required and c.nullable:
                conds.append(f"({to_spark_expr(c.ref)} IS NULL)")  # NULL is no distinct value to judge
            if when:
                ref = to_spark_expr(c.ref)
                bad_parts.append(f"SELECT {to_spark_expr(sql_str(n))} AS col, {ref} AS v "
                                 f"FROM (SELECT DISTINCT {ref} FROM {st.relation}) WHERE {' OR '.join(when)}")
        if bad_parts:
            self._view(f"bad_{name}", self.spark.sql(" UNION ALL ".join(bad_parts)), keep=True)
            for (col,) in self.spark.sql(f"SELECT DISTINCT col FROM bad_{name}").collect():
                conds.append(f"({to_spark_expr(st.columns[col].ref)} IN "
                             f"(SELECT v FROM bad_{name} WHERE col = {to_spark_expr(sql_str(col))}))")
        suspicious = f"sus_{name}"
        self._view(suspicious, self.spark.sql(
            f"SELECT * FROM {st.relation} WHERE {' OR '.join(conds) or 'false'}"), keep=True)
        found = ", ".join(
            f"IF({to_spark_expr(c.when)}, NAMED_STRUCT('field', {to_spark_expr(sql_str(c.field))}, "
            f"'reason_code', {to_spark_expr(sql_str(c.reason_code))}, 'check_id', {to_spark_expr(sql_str(c.check_id))}, "
            f"'value', CAST({to_spark_expr(c.value)} AS STRING), 'detail', CAST({to_spark_expr(c.detail)} AS STRING)), "
            f"NULL)" for c in checks)
        return self.spark.sql(f"""
            SELECT _row, e.field, e.reason_code, e.check_id, e.value, e.detail
            FROM (SELECT _row, EXPLODE(FILTER(ARRAY({found}), x -> x IS NOT NULL)) AS e FROM {suspicious})""")

    def duplicates(self, st: StagedTable) -> tuple[str, int]:
        """The view of ``st``'s duplicate-key issue rows and their number (worked out once: the settlements'
        checks read the fee lines')."""
        view = f"dup_{st.spec.name}"
        if view not in self._duplicates:
            self._duplicates[view] = int(self._view(
                view, self.sql(duplicate_key_sql(st.spec, st.relation, st.columns)), keep=True))
        return view, self._duplicates[view]

    def _parent_sql(self, st: StagedTable, fld: str, parent: str, parent_field: str) -> str | None:
        """As :meth:`features.ingest.IngestRun._parent_sql` for a first load: the parent's rows are those this
        run loaded, its quarantined keys those this run quarantined."""
        c = st.columns[fld]
        lookups = [(f"wh_{parent}", f"p.{quote_ident(parent_field)}")] if self.loaded.get(parent) else []
        refused = self.run.refused.get(parent)
        held = f"qk_{parent}" if refused is None and f"qk_{parent}" in self.views else None
        missing = f"mp_{st.spec.name}_{fld}"
        n = self._view(missing, self.sql(missing_parent_values_sql(
            c, f"SELECT {c.key_text} AS v FROM {st.relation}", lookups)), keep=True)
        if not n:
            return None
        return held_rows_sql(st, fld, parent, missing, refused=refused, held=held,
                             nowhere=not lookups and parent not in self.run.processed)

    # -- load

    def process(self, name: str) -> TableReport:
        st = self.run.staged[name]
        issues, n_issues = self.issues(st)
        run, spec = self.run, st.spec
        issue_rows = self.spark.sql(f"SELECT count(DISTINCT _row) FROM {issues}").first()[0] if n_issues else 0
        new_rows, reasons = 0, ()
        quarantine = self.lake / "quarantine" / name
        if issue_rows:
            cand = self.sql(run._quarantine_sql(st, issues, known="known_quarantine"))
            self._view(f"qc_{name}", cand, keep=True)
            new_rows = self.spark.sql(f"SELECT count(DISTINCT _row) FROM qc_{name} WHERE is_new").first()[0]
            reasons = tuple((r[0], int(r[1])) for r in self.spark.sql(
                f"SELECT reason_code, count(DISTINCT _row) FROM qc_{name} WHERE is_new GROUP BY 1 ORDER BY 1").collect())
            qcols = ", ".join(c for c, _ in warehouse.QUARANTINE_COLUMNS)
            self.spark.sql(f"SELECT {qcols} FROM qc_{name} WHERE is_new").write.parquet(str(quarantine))
        relation = self._with_pseudonyms(st, issues if n_issues else None)
        good = f"s._row NOT IN (SELECT _row FROM {issues})" if n_issues else "true"
        values = ", ".join(f"{v} AS {quote_ident(c)}" for v, c in zip(run._values(st), spec.warehouse_columns))
        batch = int(run.batch_no)
        table = self.lake / name
        self.sql(f"SELECT {values}, {batch} AS _ingest_batch FROM {relation} s WHERE {good}").write.parquet(str(table))
        loaded_df = self.spark.read.parquet(str(table))
        self._view(f"wh_{name}", loaded_df)
        loaded = self.loaded[name] = loaded_df.count()
        held = 0
        held_folder = self.lake / "held" / name
        if issue_rows and name in warehouse.HELD_TABLES:
            reasons_held = ", ".join(sql_str(r) for r in HELD_REASONS)
            picked = (f"s._row IN (SELECT _row FROM {issues} GROUP BY _row "
                      f"HAVING bool_and(reason_code IN ({reasons_held})))")
            df = self.sql(f"SELECT {values}, {batch} AS _held_batch, s._row AS _held_row FROM {relation} s "
                          f"WHERE {picked}")
            df.write.parquet(str(held_folder))
            held = self.spark.read.parquet(str(held_folder)).count()
        if name in PARENT_TABLES:
            sql = quarantined_keys_sql(st, issues if n_issues else None)
            if sql:
                self._view(f"qk_{name}", self.sql(sql), keep=True)
        self._take_in(st, table, quarantine if issue_rows else None, held_folder if held else None)
        if name == "psn_info":
            try:
                self._write_identities(st, relation, good)
            except duckdb.Error as exc:  # the rows are in; the vault catches up on the next ingest
                st.notes.append(f"身份库未写入 (identity vault not written): {first_line(exc)}")
        run.processed.add(name)
        return TableReport(name, "ok", files=st.file_names, notes=tuple(st.notes), code_rewrites=st.code_rewrites,
                           code_unresolved=st.code_unresolved, rows_in=st.rows, loaded=int(loaded), corrected=0,
                           quarantined=int(new_rows), unchanged=int(issue_rows) - int(new_rows), held=int(held),
                           reasons=reasons)

    def _take_in(self, st: StagedTable, table: Path, quarantine: Path | None, held: Path | None) -> None:
        """The warehouse file takes in what Spark wrote for ``st``'s table, in one transaction."""
        con, spec = self.run.con, st.spec
        names = ", ".join(quote_ident(n) for n in spec.warehouse_columns)
        con.execute("BEGIN TRANSACTION")
        try:
            if quarantine is not None:
                qcols = ", ".join(c for c, _ in warehouse.QUARANTINE_COLUMNS)
                con.execute(f"INSERT INTO quarantine ({qcols}) SELECT {qcols} FROM {_parquet(quarantine)}")
            if self.loaded[spec.name]:
                con.execute(f"INSERT INTO main.{quote_ident(spec.name)} ({names}, _ingest_batch) "
                            f"SELECT {names}, _ingest_batch FROM {_parquet(table)}")
            if held is not None:
                con.execute(f"INSERT INTO held.{quote_ident(spec.name)} ({names}, _held_batch, _held_row) "
                            f"SELECT {names}, _held_batch, _held_row FROM {_parquet(held)}")
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise

    def _with_pseudonyms(self, st: StagedTable, issues: str | None) -> str:
        """``st``'s staged rows as a view, with the keyed pseudonym of the resident ID (``_certno_pseudonym``,
        computed in the executors) when the table has one."""
        cert = st.columns.get("certno") if st.spec.name == "psn_info" else None
        if cert is None:
            return st.relation
        from pyspark.sql import functions as F

        udf = _pseudonym_udf(self.run.settings.pseudonym_key)
        df = self.spark.table(st.relation).withColumn("_certno_pseudonym", udf(F.expr(to_spark_expr(cert.text))))
        view = f"pst_{st.spec.name}"
        self._view(view, df, keep=True)
        return view

    def _write_identities(self, st: StagedTable, relation: str, good: str) -> None:
        """The loaded persons' clear identities to the vault, by the DuckDB ingest's own statement, from a
        copy of their rows in a folder only the owner can read, removed at once."""
        wanted = [c for c in ("psn_no", "certno", "psn_name", "brdy") if c in st.source_columns]
        if not {"certno", "psn_name", "brdy"} & set(wanted):
            return
        folder = Path(tempfile.mkdtemp(prefix="yibao-vault-"))  # mode 0700
        con = self.run.con
        try:
            pseud = ", s._certno_pseudonym AS certno_pseudonym" if relation != st.relation else ""
            cols = ", ".join(f"s.{quote_ident(c)}" for c in wanted)
            self.sql(f"SELECT s._row, {cols}{pseud} FROM {relation} s WHERE {good}").write.parquet(str(folder / "rows"))
            con.execute(f"CREATE OR REPLACE TEMP VIEW vault_rows AS SELECT * FROM {_parquet(folder / 'rows')}")
            con.execute("CREATE OR REPLACE TEMP TABLE vault_no_issues (_row BIGINT)")
            pseudonyms = None
            if pseud:
                con.execute("CREATE OR REPLACE TEMP VIEW vault_pseudonyms AS SELECT _row, certno_pseudonym FROM vault_rows")
                pseudonyms = "vault_pseudonyms"
            self.run._write_identities(replace(st, relation="vault_rows"), "vault_no_issues", pseudonyms)
        finally:
            for obj in ("VIEW vault_pseudonyms", "TABLE vault_no_issues", "VIEW vault_rows"):
                kind, name = obj.split()
                con.execute(f"DROP {kind} IF EXISTS {name}")
            shutil.rmtree(folder, ignore_errors=True)


def _pseudonym_udf(key: str):
    """A pandas UDF computing :func:`features.pseudonym.pseudonymise` under ``key`` (held in its closure,
    shipped to the executors with the function: never part of a SQL text or a plan)."""
    from pyspark.sql.functions import pandas_udf

    @pandas_udf("string")
    def certno_pseudonym(ids: pd.Series) -> pd.Series:
        return pd.Series(pseudonymise(ids.astype(object).where(ids.notna(), None).tolist(), key), dtype=object)

    return certno_pseudonym


def _parquet(folder: Path) -> str:
    return f"read_parquet({sql_str(str(folder / '*.parquet'))})"


def _has_rows(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    if not con.execute("SELECT 1 FROM duckdb_tables() WHERE schema_name = ? AND table_name = ?",
                       [schema, table]).fetchall():
        return False
    return bool(con.execute(f"SELECT 1 FROM {schema}.{quote_ident(table)} LIMIT 1").fetchall())

