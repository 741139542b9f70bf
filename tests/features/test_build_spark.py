"""The feature and rule SQL transpiles to Spark SQL, with DuckDB's meaning kept. That both engines then give
the same tables (rule hits, features, settlement scores) on the tiny region is checked by running the
pipeline on each: ``tests/serving/test_pipeline_spark.py``."""

from __future__ import annotations

import pytest

from features.build import feature_select, final_select, render, rule_hits_select, stage_blocks
from features.catalogue import TABLES
from models.rules.config import load_config


sqlglot = pytest.importorskip("sqlglot")


def test_every_block_transpiles_to_spark():
    from features.spark import to_spark

    sqls = [sql for _, sql in stage_blocks()] + [rule_hits_select("psn_no")]
    for t in TABLES.values():
        sqls += [feature_select(t, "TIMESTAMP '2024-01-01 00:00:00'"),
                 final_select(t, "c", "rh", None, [], "TIMESTAMP '2024-01-01 00:00:00'")]
    for sql in sqls:
        out = to_spark(render(sql, as_of="TIMESTAMP '2024-01-01 00:00:00'", **load_config().staging_values()))
        assert "DATEDIFF" in out or "DATE_DIFF" not in sql.upper()


def test_every_rule_transpiles_to_spark_with_its_order_kept():
    """The rule SQL (base views and every rule, parameters as literals) transpiles; no ordered list loses
    its order (sqlglot alone turns ``list(x ORDER BY k)`` into a bare ``COLLECT_LIST(x)``)."""
    import re

    from features.spark import to_spark
    from models.rules.config import load_config
    from models.rules.engine import base_statements, rule_body
    from models.rules.spark import sql_literal

    sqls = [sql for _, sql in base_statements()]
    for rule in load_config().rules:
        body, params = rule_body(rule)
        sqls.append(re.sub(r"\$([a-z][a-z0-9_]*)", lambda m: sql_literal(params[m.group(1)]), body))
    for sql in sqls:
        out = to_spark(sql)
        assert not re.search(r"\$[a-z]", out) and "LIST_BOOL_OR" not in out and "TO_HOURS" not in out
        ordered = out.count("COLLECT_LIST(STRUCT(")
        assert ordered >= len(re.findall(r"\blist\([^()]*ORDER BY", sql)), sql[:200]


def test_the_graph_sql_transpiles_to_spark():
    """The graph's inputs and each projection layer's counting (``features.graph.spark`` runs them on Spark):
    the basket keeps its item order, integer division and the weekday arithmetic stay integral."""
    from features.graph.edges import graph_inputs_sql
    from features.graph.projection import co_counter_sql, co_purchase_sql, co_visit_sql
    from features.spark import to_spark

    inputs = {name: to_spark(sql) for name, sql in graph_inputs_sql().items()}
    assert "ARRAY_JOIN(NULLIF(ARRAY_DISTINCT(TRANSFORM(ARRAY_SORT(COLLECT_LIST(STRUCT(" in inputs["visits"]
    assert "HASH(" not in inputs["visits"] and "TIME" not in inputs["visits"].replace("begntime", "")
    layers = [co_visit_sql(clinics_only=True), co_visit_sql(window_days=3, visit_hub="dept"), co_counter_sql(),
              co_purchase_sql()]
    for out in map(to_spark, layers):
        assert "DATEDIFF(DAY, CAST('1970-01-01' AS DATE), CAST(visit_date AS DATE))" in out and "//" not in out
    assert "sec DIV 600" in to_spark(co_counter_sql())
    assert "RANGE BETWEEN 2 PRECEDING AND 2 FOLLOWING" in to_spark(layers[1])


def test_the_corrections_to_sqlglot_keep_duckdb_meaning():
    from features.spark_sql import to_spark

    assert to_spark("SELECT a / b FROM t") == "SELECT CAST(a AS DOUBLE) / CAST(b AS DOUBLE) FROM t"
    assert "(DAYOFWEEK(t) + 5) % 7 + 1" in to_spark("SELECT isodow(t) FROM u")  # Sunday 7, Monday 1
    assert "SLICE(x, 3, 18)" in to_spark("SELECT x[3:20] FROM u")
    assert "DATE_FORMAT(t, 'HH:mm:ss.SSSSSS')" in to_spark("SELECT CAST(t AS TIME) FROM u")
    ordered = to_spark("SELECT list(x ORDER BY k DESC) FILTER (WHERE k > 0) FROM u")
    assert ordered.startswith("SELECT NULLIF(TRANSFORM(ARRAY_SORT(COLLECT_LIST(STRUCT(k AS _k0, x AS _v)) "
                              "FILTER(WHERE k > 0)")
    window = to_spark("SELECT sum(c) OVER (w ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) FROM t "
                      "WINDOW w AS (PARTITION BY a ORDER BY b)")
    assert "OVER (PARTITION BY a ORDER BY b NULLS LAST ROWS BETWEEN" in window and "WINDOW" not in window
    with pytest.raises(ValueError, match="no defined order"):
        to_spark("SELECT list(DISTINCT x) FROM u")


@pytest.mark.parametrize("module", ["features.spark_sql", "features.spark", "models.rules.spark",
                                    "features.graph.spark"])
def test_docstring_examples(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module))
    assert result.failed == 0 and result.attempted > 0
