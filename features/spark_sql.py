"""DuckDB SQL → Spark SQL (方言转换): the feature and rule SQL is written once, in DuckDB's dialect.

:func:`to_spark` transpiles one SELECT with sqlglot's Spark dialect, corrected where sqlglot's output
would run but mean something else on Spark, or not run at all. Each correction is a general fact about
the two engines, never about one query:

| DuckDB | Spark | why sqlglot's own output is not used |
|---|---|---|
| ``list(x ORDER BY k)`` | the values sorted by their keys | sqlglot drops the ORDER BY (``collect_list`` has none) |
| ``list(...)`` over no rows | NULL | ``collect_list`` gives ``[]`` and drops NULL values |
| ``list(DISTINCT x ORDER BY x)`` | the sorted values, each once, NULL kept | ``collect_set`` drops NULL and has no order |
| ``first(x ORDER BY k)`` | the first of the sorted values | no ordered aggregate in Spark |
| ``sum``/``avg``/``stddev``/``var`` ``(x ORDER BY k)`` | the aggregate without the order | DuckDB adds in that order, the same run after run (``features/sql/_stage.sql``); Spark has no ordered aggregate: it adds in its own order, the last bits may differ |
| ``x[a:b]`` | ``slice(x, a, b - a + 1)`` | Spark has no slice syntax |
| ``a / b`` | ``CAST(a AS DOUBLE) / CAST(b AS DOUBLE)`` | DuckDB divides in DOUBLE; Spark keeps DECIMAL |
| ``isodow(t)`` | Monday 1 … Sunday 7 | sqlglot's ``(dayofweek % 7) + 1`` makes Sunday 2 |
| ``len(<list>)`` | ``size`` | ``length`` is for strings on Spark |
| ``list_bool_or(l)`` / ``list_bool_and(l)`` | ``array_max(l)`` / ``array_min(l)`` | no such function |
| ``date_sub('year', a, b)`` | full years by ``months_between`` | Spark's ``date_sub`` subtracts days |
| ``to_hours(n)`` | ``make_dt_interval(0, n, 0, 0)`` | no such function |
| ``OVER (w ROWS …)`` | the named window written out | Spark cannot extend a named window |
| ``CAST(t AS TIME)`` | ``date_format(t, 'HH:mm:ss.SSSSSS')`` | sqlglot casts to TIMESTAMP: the date stays in |
| ``regexp_full_match(x, p)`` | ``x RLIKE`` the pattern anchored: ``^(?:p)\\z`` | no such function; ``$`` would also match before a final line break |
| ``isfinite(x)`` | ``abs(x) < infinity`` (NaN sorts above it; NULL stays NULL) | no such function |
| ``try_strptime(t, '%Y-%m-%d')`` | ``try_to_timestamp(t, 'yyyy-M-d')`` | no such function |
| ``ord(c)`` | ``ascii(c)`` (the first character's code point) | no such function |
| ``list_extract(l, i)`` | ``try_element_at(l, i)`` | no such function (NULL out of range, as DuckDB) |
| ``json_object(k, v, …)`` | ``to_json(named_struct(k, v, …))`` keeping NULL fields, times as ``yyyy-MM-dd HH:mm:ss`` | sqlglot writes ``JSON_OBJECT(k: v)``, which Spark lacks |
| ``WITH x AS MATERIALIZED (…)`` | ``WITH x AS (…)`` | a DuckDB planning hint Spark does not parse |

Anything else is sqlglot's Spark output as is; the equality tests (``tests/features/test_build_spark.py``,
``tests/serving/test_pipeline_spark.py``) run the whole SQL on both engines and compare the tables.

>>> print(to_spark("SELECT DATE_DIFF('day', a, b) AS d FROM t"))
SELECT DATEDIFF(DAY, a, b) AS d FROM t
>>> print(to_spark("SELECT x[2:3], isodow(t) FROM u"))
SELECT SLICE(x, 2, 2), (DAYOFWEEK(t) + 5) % 7 + 1 FROM u
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlglot import exp, parse_one
from sqlglot.dialects.spark import Spark

__all__ = ["to_spark", "to_spark_expr", "to_spark_steps", "SparkStep", "SparkFromDuckDB"]


def to_spark(sql: str) -> str:
    """Transpile one DuckDB SELECT to Spark SQL."""
    tree = _parsed(sql)
    return tree.sql(dialect=SparkFromDuckDB)


def to_spark_expr(expr: str) -> str:
    """Transpile one DuckDB expression (a condition, a value) to Spark SQL.

    >>> print(to_spark_expr("regexp_full_match(x, '[0-9]+') AND isfinite(y)"))
    (x RLIKE CONCAT('^(?:', '[0-9]+', ')\\\\z')) AND (ABS(y) < CAST('Infinity' AS DOUBLE))
    """
    return _parsed(f"SELECT {expr}").expressions[0].sql(dialect=SparkFromDuckDB)


@dataclass(frozen=True)
class SparkStep:
    """One common table expression of a query as its own Spark SELECT (:func:`to_spark_steps`)."""

    name: str  # the CTE's name in the DuckDB text
    view: str  # the temp view it becomes (``prefix`` + name)
    sql: str  # Spark SQL; earlier steps are read by their views
    uses: int  # how many times the later steps and the final SELECT read it


def to_spark_steps(sql: str, prefix: str) -> tuple[list[SparkStep], str]:
    """Transpile one DuckDB SELECT to Spark SQL as steps: each top-level common table expression (``WITH
    name AS (…)``) becomes its own SELECT, to be registered as the temp view ``prefix + name``, and the
    final SELECT reads the views. Spark inlines a CTE at every place it is read, so a chain of CTEs each
    read twice plans (and runs) the first one 2^n times; run as steps, a step read more than once
    (``SparkStep.uses``) can be materialised once (``features.spark.stepwise``). A reference keeps the CTE's
    name as its alias, so qualified columns (``visit.mdtrt_id``) still resolve.

    >>> steps, final = to_spark_steps("WITH a AS (SELECT 1 AS x), b AS (SELECT a.x FROM a JOIN a a2 ON a.x = a2.x) "
    ...                               "SELECT * FROM b", "r_")
    >>> [(s.view, s.uses) for s in steps], final
    ([('r_a', 2), ('r_b', 1)], 'SELECT * FROM r_b AS b')
    >>> steps[1].sql
    'SELECT a.x FROM r_a AS a JOIN r_a AS a2 ON a.x = a2.x'
    """
    tree = _parsed(sql)
    with_ = tree.args.get("with_")
    if with_ is None or with_.args.get("recursive"):
        return [], tree.sql(dialect=SparkFromDuckDB)
    names = [cte.alias for cte in with_.expressions]
    bodies = [cte.this.copy() for cte in with_.expressions]
    tree = tree.copy()
    tree.set("with_", None)
    uses = dict.fromkeys(names, 0)

    def rename(node: exp.Expression, visible: set[str]) -> exp.Expression:
        def swap(n: exp.Expression) -> exp.Expression:
            if isinstance(n, exp.Table) and not n.args.get("db") and n.name in visible:
                uses[n.name] += 1
                return exp.Table(this=exp.to_identifier(prefix + n.name),
                                 alias=n.args.get("alias") or exp.TableAlias(this=exp.to_identifier(n.name)))
            return n
        return node.transform(swap)

    steps = []
    for i, (name, body) in enumerate(zip(names, bodies)):
        steps.append((name, rename(body, set(names[:i]))))
    final = rename(tree, set(names)).sql(dialect=SparkFromDuckDB)
    return [SparkStep(n, prefix + n, b.sql(dialect=SparkFromDuckDB), uses[n]) for n, b in steps], final


def _parsed(sql: str) -> exp.Expression:
    """The DuckDB text as a tree, with the corrections that rewrite the tree rather than one node's text."""
    return (parse_one(sql, read="duckdb").transform(_inline_windows).transform(_unordered_sums)
            .transform(_unmaterialized))


def _unmaterialized(node: exp.Expression) -> exp.Expression:
    if isinstance(node, exp.CTE) and node.args.get("materialized") is not None:
        node.set("materialized", None)
    return node


# Aggregates whose value does not depend on the order of their inputs but for a DOUBLE's last bits.
_ORDER_FREE = (exp.Sum, exp.Avg, exp.Stddev, exp.StddevPop, exp.StddevSamp, exp.Variance, exp.VariancePop)


def _unordered_sums(node: exp.Expression) -> exp.Expression:
    """``sum(x ORDER BY k)`` (and avg, stddev, var): DuckDB adds in the order given; Spark has no ordered
    aggregate, so the order goes.

    >>> print(to_spark("SELECT g, AVG(x / y ORDER BY k) AS a, VAR_POP(x ORDER BY k, j) AS v FROM t GROUP BY g"))
    SELECT g, AVG(CAST(x AS DOUBLE) / CAST(y AS DOUBLE)) AS a, VAR_POP(x) AS v FROM t GROUP BY g
    """
    if isinstance(node, _ORDER_FREE) and isinstance(node.this, exp.Order):
        node.set("this", node.this.this)
    return node


def _inline_windows(node: exp.Expression) -> exp.Expression:
    """``OVER (w ROWS …)`` extends the named window ``w``; Spark cannot: write each window out in full."""
    if not isinstance(node, exp.Select) or not node.args.get("windows"):
        return node
    named = {w.this.name: w for w in node.args["windows"]}
    for over in list(node.find_all(exp.Window)):
        alias = over.args.get("alias")
        if over.parent_select is not node or alias is None or alias.name not in named:
            continue
        base = named[alias.name]
        for key in ("partition_by", "order", "spec"):
            if not over.args.get(key) and base.args.get(key):
                over.set(key, base.args[key].copy() if isinstance(base.args[key], exp.Expression)
                         else [x.copy() for x in base.args[key]])
        over.set("alias", None)
    node.set("windows", None)
    return node


def _ordered_values(self, value: exp.Expression, order: list[exp.Ordered], where: exp.Expression | None) -> str:
    """The values of ``value`` in the order of ``order``, NULL values kept (each value rides in a struct
    with its sort keys: ``collect_list`` drops NULLs, not structs holding one)."""
    keys = ", ".join(f"{self.sql(o, 'this')} AS _k{i}" for i, o in enumerate(order))
    filt = f" FILTER(WHERE {self.sql(where)})" if where is not None else ""
    collected = f"COLLECT_LIST(STRUCT({keys}, {self.sql(value)} AS _v)){filt}"
    compare = []
    for i, o in enumerate(order):
        desc, nulls_first = bool(o.args.get("desc")), bool(o.args.get("nulls_first"))
        a, b = f"_a._k{i}", f"_b._k{i}"
        compare.append(f"NULLIF(CASE WHEN {a} IS NULL AND {b} IS NULL THEN 0 "
                       f"WHEN {a} IS NULL THEN {-1 if nulls_first else 1} WHEN {b} IS NULL THEN {1 if nulls_first else -1} "
                       f"WHEN {a} < {b} THEN {1 if desc else -1} WHEN {a} > {b} THEN {-1 if desc else 1} ELSE 0 END, 0)")
    compare = f"COALESCE({', '.join(compare + ['0'])})"
    return f"TRANSFORM(ARRAY_SORT({collected}, (_a, _b) -> {compare}), _s -> _s._v)"


def _list_sql(self, agg: exp.ArrayAgg, where: exp.Expression | None = None) -> str:
    inner = agg.this
    if isinstance(inner, exp.Order):
        order = list(inner.expressions)
        value = inner.this
        if isinstance(value, exp.Distinct):  # sorted, then the first of each value kept (one NULL too)
            if len(value.expressions) != 1:
                raise ValueError(f"list(DISTINCT …) of several values is not translated: {agg.sql()}")
            listed = f"ARRAY_DISTINCT({_ordered_values(self, value.expressions[0], order, where)})"
        else:
            listed = _ordered_values(self, value, order, where)
    elif isinstance(inner, exp.Distinct):
        raise ValueError(f"list(DISTINCT …) without ORDER BY has no defined order; add one: {agg.sql()}")
    else:
        listed = _ordered_values(self, inner, [], where)
    return f"NULLIF({listed}, ARRAY())"  # DuckDB's list() over no rows is NULL


def _filter_sql(self, e: exp.Filter) -> str:
    if isinstance(e.this, exp.ArrayAgg):
        return _list_sql(self, e.this, e.expression.this)
    return f"{self.sql(e, 'this')} FILTER({self.sql(e, 'expression')})"


def _first_sql(self, e: exp.First) -> str:
    if isinstance(e.this, exp.Order):
        return f"TRY_ELEMENT_AT({_ordered_values(self, e.this.this, list(e.this.expressions), None)}, 1)"
    return Spark.Generator.TRANSFORMS.get(exp.First, lambda s, x: s.function_fallback_sql(x))(self, e)


def _bracket_sql(self, e: exp.Bracket) -> str:
    (index,) = e.expressions if len(e.expressions) == 1 else (None,)
    if isinstance(index, exp.Slice):
        start, end = self.sql(index, "this") or "1", self.sql(index, "expression")
        if not end:
            raise ValueError(f"an open-ended slice is not translated: {e.sql()}")
        return f"SLICE({self.sql(e, 'this')}, {start}, {end} - {start} + 1)" if not (
            start.isdigit() and end.isdigit()) else f"SLICE({self.sql(e, 'this')}, {start}, {int(end) - int(start) + 1})"
    return Spark.Generator.bracket_sql(self, e)


def _length_sql(self, e: exp.Length) -> str:
    if isinstance(e.this, (exp.ArrayFilter, exp.Array, exp.ArrayAgg, exp.Transform, exp.Filter)):
        return f"SIZE({self.sql(e, 'this')})"
    return f"LENGTH({self.sql(e, 'this')})"


def _cast_sql(self, e: exp.Cast, safe_prefix=None) -> str:
    if e.to.is_type(exp.DataType.Type.TIME):
        return f"DATE_FORMAT({self.sql(e, 'this')}, 'HH:mm:ss.SSSSSS')"
    return Spark.Generator.cast_sql(self, e, safe_prefix)


# strptime's fields as Spark's datetime pattern letters; a single letter parses one or two digits, as
# DuckDB's %m, %d, %H, %M, %S do.
_STRPTIME = {"%Y": "yyyy", "%m": "M", "%d": "d", "%H": "H", "%M": "m", "%S": "s"}


def _anonymous_sql(self, e: exp.Anonymous) -> str:
    name = str(e.this).lower()
    args = e.expressions
    if name in ("list_bool_or", "list_bool_and") and len(args) == 1:
        return f"{'ARRAY_MAX' if name == 'list_bool_or' else 'ARRAY_MIN'}({self.sql(args[0])})"
    if name == "to_hours" and len(args) == 1:
        return f"MAKE_DT_INTERVAL(0, {self.sql(args[0])}, 0, 0)"
    if name == "try_strptime" and len(args) == 2 and isinstance(args[1], exp.Literal):
        fmt = args[1].name
        for c, java in _STRPTIME.items():
            fmt = fmt.replace(c, java)
        if "%" in fmt:
            raise ValueError(f"try_strptime format not translated: {e.sql()}")
        return f"TRY_TO_TIMESTAMP({self.sql(args[0])}, '{fmt}')"
    if name == "ord" and len(args) == 1:
        return f"ASCII({self.sql(args[0])})"
    if name == "isfinite" and len(args) == 1:
        return f"(ABS({self.sql(args[0])}) < CAST('Infinity' AS DOUBLE))"
    if name == "list_extract" and len(args) == 2:
        return f"TRY_ELEMENT_AT({self.sql(args[0])}, {self.sql(args[1])})"
    if name in ("date_sub", "datesub") and len(args) == 3 and isinstance(args[0], exp.Literal):
        part = args[0].name.lower()
        if part in ("year", "years", "y", "yr", "yrs"):  # complete years: DuckDB and months_between agree on month ends
            return f"CAST(MONTHS_BETWEEN({self.sql(args[2])}, {self.sql(args[1])}) / 12 AS INT)"
        raise ValueError(f"date_sub('{part}', …) is not translated (only 'year'): {e.sql()}")
    return Spark.Generator.anonymous_sql(self, e)


def _json_object_sql(self, e: exp.JSONObject) -> str:
    pairs = ", ".join(f"{self.sql(kv, 'this')}, {self.sql(kv, 'expression')}" for kv in e.expressions)
    return (f"TO_JSON(NAMED_STRUCT({pairs}), MAP('ignoreNullFields', 'false', "
            f"'timestampNTZFormat', 'yyyy-MM-dd HH:mm:ss', 'timestampFormat', 'yyyy-MM-dd HH:mm:ss'))")


class SparkFromDuckDB(Spark):
    """sqlglot's Spark dialect with the corrections of this module for SQL read as DuckDB."""

    class Generator(Spark.Generator):
        RESERVED_KEYWORDS = Spark.Generator.RESERVED_KEYWORDS | {"from", "to", "date", "window", "month", "year"}
        TRANSFORMS = {
            **Spark.Generator.TRANSFORMS,
            exp.ArrayAgg: _list_sql,
            exp.Filter: _filter_sql,
            exp.First: _first_sql,
            exp.Length: _length_sql,
            exp.RegexpFullMatch: lambda self, e: (f"({self.sql(e, 'this')} RLIKE CONCAT('^(?:', "
                                                  f"{self.sql(e, 'expression')}, ')\\\\z'))"),
            exp.JSONObject: _json_object_sql,
            exp.DayOfWeekIso: lambda self, e: f"(DAYOFWEEK({self.sql(e, 'this')}) + 5) % 7 + 1",
            exp.Div: lambda self, e: (f"CAST({self.sql(e, 'this')} AS DOUBLE) / "
                                      f"CAST({self.sql(e, 'expression')} AS DOUBLE)"),
        }

        def bracket_sql(self, expression: exp.Bracket) -> str:
            return _bracket_sql(self, expression)

        def cast_sql(self, expression: exp.Cast, safe_prefix=None) -> str:
            return _cast_sql(self, expression, safe_prefix)

        def anonymous_sql(self, expression: exp.Anonymous) -> str:
            return _anonymous_sql(self, expression)
