"""The rule SQL on Spark (规则引擎 on Spark): the same rule files, transpiled as the feature SQL is.

With ``run_rules(..., engine="spark")`` the views of ``sql/_base.sql`` and each rule's own SELECT run on
Spark over the Parquet exports of the warehouse (:class:`features.spark.ParquetExports`, shared with the
feature stage of a pipeline run). Each rule's rows (the :data:`models.rules.engine.RULE_OUTPUT` columns,
one per hit) are written by Spark to Parquet; the engine then wraps those rows in DuckDB exactly as it wraps
the rows of its own SQL (:func:`models.rules.engine.hit_select` with ``rows``: hit id, rule metadata, the
rendered Chinese message, the detail as JSON) and stores them in ``rule_hits``. So the scan of the claims —
the part that grows with the province — is Spark's, and a hit's text is made by one piece of code.

A rule's common table expressions run as steps (``features.spark_sql.to_spark_steps``), and a step that
later steps read more than once is computed once (``localCheckpoint``): Spark would otherwise inline it at
every read, and ``over_examination``'s chain of fourteen planned and ran its first steps thousands of times
(on ``small``: out of heap with 2 GB, 550 s with broadcasts off; DuckDB: under a second).

The rule parameters become SQL literals (Spark has no ``$name`` parameters); a float is cast to DOUBLE,
as DuckDB binds a Python float.

>>> sql_literal(["41", "42"]), sql_literal(0.01), sql_literal(True), sql_literal("it's")
("['41', '42']", 'CAST(0.01 AS DOUBLE)', 'TRUE', "'it''s'")
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Iterable

import duckdb

from features.spark import ParquetExports, stepwise
from features.warehouse import BIRTH_DATES
from features.spark_sql import to_spark
from models.rules.config import Rule, RuleConfig
from models.rules.engine import BATCH_MATERIALIZED, RuleSqlError, base_statements, rule_body, rule_window

__all__ = ["RULE_SOURCE_TABLES", "SparkRules", "sql_literal"]

# Contract tables the rule SQL reads (``sql/_base.sql`` and the rules' own joins).
RULE_SOURCE_TABLES = ("setl_d", "mdtrt_d", "fee_list_d", "setl_list_diag_d", "psn_info", "fixmedins", "hilist",
                      "stock_moves")
# What a rule's rows are written as (Parquet has no type for a column that is NULL in every row).
_OUTPUT = ("CAST(entity_type AS STRING) AS entity_type, CAST(entity_id AS STRING) AS entity_id, "
           "CAST(setl_id AS STRING) AS setl_id, CAST(mdtrt_id AS STRING) AS mdtrt_id, "
           "CAST(psn_no AS STRING) AS psn_no, CAST(fixmedins_code AS STRING) AS fixmedins_code, "
           "CAST(prac_code AS STRING) AS prac_code, CAST(evidence AS ARRAY<STRING>) AS evidence, amount_at_risk, "
           "CAST(event_time AS TIMESTAMP) AS event_time, detail")
_PARAM = re.compile(r"\$([a-z][a-z0-9_]*)")
# Base views Spark keeps once computed (memory, spilling to disk) for the whole rule run: those the DuckDB run
# materialises, plus the fee lines joined to their settlement and person (``claim_line``, read by most
# rules) and the stock books per month (``stock_backing``, a pass over the fee lines of its own). DuckDB
# streams ``claim_line`` from the tables at each rule; a Spark view is re-planned and re-read from the
# Parquet exports at each rule instead (on a third of a city, 1 core: 30-80 s per rule).
SPARK_CACHED = BATCH_MATERIALIZED + ("claim_line", "stock_backing")


class SparkRules:
    """The base views of one rule run on Spark; :meth:`rows` runs one rule there."""

    def __init__(self, con: duckdb.DuckDBPyConnection, config: RuleConfig, exports: ParquetExports, *,
                 since: datetime | None = None, rules: Iterable[Rule] | None = None) -> None:
        """The base views on Spark. ``rules``: those the run will judge; the cached views any of them reads
        are computed now, so that their time is not the first rule's (``RunReport.shared_seconds``)."""
        self.exports = exports
        spark = exports.spark
        exports.contract(con, RULE_SOURCE_TABLES)
        # the exact birth dates for the age rules: the vault's view of the DuckDB session (prepare_session);
        # the Parquet copy lives in the exports' folder, removed with it
        exports.export(con, BIRTH_DATES, f"SELECT psn_no, brdy FROM {BIRTH_DATES}", fresh=True)
        exports.export(con, "rule_pack", fresh=True)
        codes = [f"({sql_literal(s)}, {sql_literal(c)}, {sql_literal(v)})" for s, c, v in config.code_rows()]
        spark.sql(to_spark(f"SELECT * FROM (VALUES {', '.join(codes) or '(NULL, NULL, NULL)'}) t(code_set, code, value)"
                           + ("" if codes else " WHERE 1 = 0"))).createOrReplaceTempView("rule_codes")
        scope_from, history_from = rule_window(config, since)
        spark.sql(f"SELECT TIMESTAMP_NTZ '{scope_from:%Y-%m-%d %H:%M:%S}' AS since, "
                  f"TIMESTAMP_NTZ '{history_from:%Y-%m-%d %H:%M:%S}' AS history_from").createOrReplaceTempView("rule_window")
        self.views = ["rule_codes", "rule_window"]
        for name, select in base_statements():
            df = spark.sql(to_spark(select))
            if name in SPARK_CACHED:  # read by many rules: computed once
                df = df.cache()
            df.createOrReplaceTempView(name)
            self.views.append(name)
        read = [r.sql for r in rules or ()]
        for name in dict.fromkeys(SPARK_CACHED):  # claim_setl first: the other views read it
            if any(re.search(rf"\b{name}\b", text) for text in read):
                spark.table(name).count()

    def rows(self, rule: Rule) -> str:
        """Run ``rule``'s SQL on Spark into Parquet; return a DuckDB SELECT of its rows for ``hit_select``."""
        body, params = rule_body(rule)
        body = _PARAM.sub(lambda m: sql_literal(params[m.group(1)]), body)
        out = self.exports.out("rules", rule.id)
        spark = self.exports.spark
        try:
            with stepwise(spark, body, f"rule_{rule.id}__") as final:
                spark.sql(f"SELECT {_OUTPUT} FROM ({final}) h").write.mode("overwrite").parquet(str(out))
        except Exception as e:  # an AnalysisException: name the file and the rule, as on DuckDB
            raise RuleSqlError(f"{rule.sql_path}: rule {rule.id} on Spark: {_spark_cause(e)}") from None
        return f"SELECT * FROM read_parquet('{out}/*.parquet')"

    def close(self) -> None:
        spark = self.exports.spark
        for name in self.views:
            if name in SPARK_CACHED:
                spark.catalog.uncacheTable(name)
            spark.catalog.dropTempView(name)
        self.views = []


def sql_literal(value: Any) -> str:
    """A rule parameter as a DuckDB literal of the type DuckDB would bind it with."""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"CAST({value!r} AS DOUBLE)"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(sql_literal(v) for v in value) + "]"
    if value is None:
        return "NULL"
    raise TypeError(f"a rule parameter of type {type(value).__name__} has no SQL literal: {value!r}")


def _spark_cause(e: Exception) -> str:
    """The first line of a Spark error and, for a failure inside the JVM (Py4J's "An error occurred while
    calling …", which says nothing), the innermost Java cause's first line."""
    first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    java = getattr(e, "java_exception", None)
    while java is not None and java.getCause() is not None:
        java = java.getCause()
    if java is not None:
        first += f" — {str(java.toString()).splitlines()[0]}"
    return first
