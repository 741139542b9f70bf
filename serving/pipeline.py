"""The batch pipeline as one declared thing (批处理流水线): stages, the tables they write, run in order.

Every batch job of the system — the demo, the test fixtures, the transfer evaluation, the benchmarks —
runs the same stages through :func:`run_pipeline`:

| stage | reads | writes |
|---|---|---|
| ``ingest`` | the extract folder (on Spark: a Parquet lake) | the contract tables, ``quarantine``, ``ingest_log`` |
| ``rules`` | claim tables, ``rule_pack``, ``rule_exemptions`` | ``rule_hits``, ``rule_hits_exempted``, ``rule_runs`` |
| ``graph`` | claim tables, ``rule_hits`` | ``graph_*``, ``ring_candidates`` |
| ``features`` | claim tables, ``rule_hits``, ``graph_*`` | ``feat_*`` |
| ``screen`` | ``feat_*``, ``graph_*``, ``rule_hits`` and a model | ``setl_scores``, the clue list (clue store) |

Engines: ``duckdb`` runs every stage on the warehouse file. ``spark`` runs on Spark what has a Spark path
(``Stage.on_spark``: the ingest's checks of a Parquet lake's first load, the rule SQL, the graph's inputs
and projection pairs and the feature SQL, transpiled from the same DuckDB text, over one set of Parquet
exports of the warehouse, and the settlement and entity scores in ``mapInPandas``; results written back
into the warehouse) and the rest on DuckDB or the driver; each stage's report names the engine that ran it (``docs/scale.md``). A Spark session passed as ``spark`` (a standalone cluster's,
say) is used and left running; otherwise a local one is started for the stages that need it and stopped.

An incremental run (``since``: a date, or ``"auto"``) judges only the settlements from then on in the stages
that can (``Stage.since`` says how): the rules judge them (reading history as they need) and replace their
hits, the feature build replaces their ``feat_setl`` rows and builds the entity tables whole, the screen
scores them and screens every entity; the graph is built whole. Each stage remembers the last ingest run
it saw (``pipeline_state.batch_no``) and moves ``since`` back to the earliest settlement any later ingest
run touched (:func:`features.warehouse.settlements_loaded_after`), so that no settlement is left
unscreened: ``"auto"`` is exactly that moment. A stage that never ran on the warehouse runs whole.

A stage is skipped when it is up to date: what it read (the state of the stages before it, the extract's
files for ``ingest``, the rule config and pack for ``rules``, the model for ``screen``) has not changed since
it last ran and its tables are there (``pipeline_state`` in the warehouse); ``force=True`` runs it anyway.
For each table written the report gives the row count and an order-independent content fingerprint, so two
runs or two engines can be compared without reading the tables.

>>> [s.name for s in STAGES]
['ingest', 'rules', 'graph', 'features', 'screen']
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

import duckdb

from features.config import Settings
from features.contract import TABLES
from features.warehouse import connect, latest_batch

__all__ = ["Stage", "STAGES", "STAGE_NAMES", "ENGINES", "StageReport", "PipelineReport", "run_pipeline", "fingerprint",
           "PipelineError"]

Progress = Callable[[str, int, int], None]


class PipelineError(RuntimeError):
    """A stage that cannot run: names the stage and the reason."""


@dataclass(frozen=True)
class Stage:
    name: str
    zh: str
    writes: tuple[str, ...]  # tables (a trailing * matches a prefix) the stage produces
    after: tuple[str, ...]  # stages whose output it reads
    on_spark: str = ""  # with --engine spark: what of the stage runs on Spark ("" = all of it on DuckDB)
    since: str = ""  # in an incremental run (since): what the stage does ("" = it runs whole)


STAGES: tuple[Stage, ...] = (
    Stage("ingest", "导入", tuple(TABLES) + ("quarantine",), (),
          "validation of a Parquet lake's first load (every one-row check, duplicate keys, parents, settlement "
          "totals, refunds), code dialects, pseudonyms and quarantine, written to the warehouse's lake folder and "
          "taken into the warehouse file by DuckDB; CSV sources and later loads run on DuckDB (the report says why)"),
    Stage("rules", "规则", ("rule_hits", "rule_hits_exempted"), ("ingest",),
          "the rule SQL (base views and every rule); hit ids, messages, exemptions and code coverage on DuckDB",
          "the settlements from then on are judged (history before it read where a rule needs it); their hits "
          "replace the ones they had"),
    Stage("graph", "关系图", ("graph_*", "ring_candidates"), ("ingest", "rules"),
          "the graph's inputs from the claims (visits, drug purchases, edges), the projection's pair counts "
          "(co-visit, same-counter and co-purchase self-joins with their null models), the communities and the "
          "members' betweenness (blocks of whole components of the projection in applyInPandas), graph_edges, "
          "the node numbering and folds of PageRank and the node features (SQL on the edges where Spark holds "
          "them); pair scores, the components, community stats and PageRank's walk on the driver (the walk on "
          "numbers only: 16 bytes an edge)"),
    Stage("features", "特征", ("feat_*",), ("ingest", "rules", "graph"),
          "the feature SQL (staging, every level, rule-hit and graph joins)",
          "feat_setl's rows of the settlements from then on are replaced (earlier rows kept as they were "
          "screened); the entity tables are built whole"),
    Stage("screen", "筛查", ("setl_scores",), ("features", "graph", "rules"),
          "settlement and entity scores (the model in mapInPandas; persons, doctors, institutions and pharmacies "
          "with their region percentiles) and the choice of the clue list's entities; their reasons (SHAP), "
          "evidence, the rings and the clue store on the driver",
          "the settlements from then on are scored (earlier scores kept); every entity is screened"),
)
STAGE_NAMES = tuple(s.name for s in STAGES)
ENGINES = ("duckdb", "spark")
_BY_NAME = {s.name: s for s in STAGES}


@dataclass
class StageReport:
    stage: str
    status: str  # ran | skipped (up to date) | failed
    seconds: float = 0.0
    tables: dict[str, dict] = field(default_factory=dict)  # table -> {rows, fingerprint}
    summary: dict = field(default_factory=dict)
    inputs: str = ""
    engine: str = ""  # the engine that ran it: duckdb | spark (and what on Spark: on_spark); "" when skipped
    on_spark: str = ""


@dataclass
class PipelineReport:
    warehouse: str
    engine: str
    stages: list[StageReport]
    seconds: float

    def stage(self, name: str) -> StageReport:
        return next(s for s in self.stages if s.stage == name)

    def to_dict(self) -> dict:
        return asdict(self)


def run_pipeline(settings: Settings, *, source: Path | None = None, stages: Iterable[str] = STAGE_NAMES,
                 engine: str = "duckdb", rules_config=None, bundle_path: Path | None = None,
                 model_ref: str = "champion", tracking_uri: str | None = None, force: bool = False,
                 graph_config=None, feature_tables: Iterable[str] | None = None, fingerprints: bool = True,
                 progress: Progress | None = None, spark=None, since: str | datetime | None = None) -> PipelineReport:
    """Run ``stages`` (in pipeline order, whatever order they are given in) on ``settings.warehouse``.

    ``fingerprints=False`` gives row counts only (a content fingerprint reads every table written).
    ``source`` is the extract folder (needed by ``ingest``); ``rules_config`` a :class:`RuleConfig` (default:
    the user copy or the committed one); ``bundle_path`` a scorer bundle for ``screen`` instead of the
    registered ``model_ref``; ``feature_tables`` the feature tables to build (default: every level's).
    ``progress(description, done, total)`` is called as stages and their steps go.
    ``engine`` is ``duckdb`` or ``spark`` (then ``spark`` may be a running SparkSession to use).
    ``since``: an incremental run (a date or timestamp, or ``"auto"``: what was loaded since each stage last
    ran); see the module's docstring.
    """
    if engine not in ENGINES:
        raise PipelineError(f"未知引擎 (unknown engine) {engine!r}; 可选: {', '.join(ENGINES)}")
    wanted = set(stages)
    unknown = wanted - set(STAGE_NAMES)
    if unknown:
        raise PipelineError(f"未知阶段 (unknown stage) {sorted(unknown)}; 可选: {', '.join(STAGE_NAMES)}")
    since = _since_request(since)
    if "ingest" in wanted and source is None:
        raise PipelineError("ingest: 需要数据目录 --source (the extract folder is required)")
    if "screen" in wanted and bundle_path is None:  # the registry's server, before the stages that come first
        from models.bundle import require_tracking_server

        require_tracking_server(tracking_uri or settings.tracking_uri)
    tick = progress or (lambda *_: None)
    t0 = time.perf_counter()
    reports = []
    order = [s for s in STAGES if s.name in wanted]
    on_spark = _SparkRun(spark) if engine == "spark" else None
    try:
        _run_stages(order, reports, settings, source=source, rules_config=rules_config, bundle_path=bundle_path,
                    model_ref=model_ref, tracking_uri=tracking_uri, graph_config=graph_config,
                    feature_tables=tuple(feature_tables) if feature_tables else None, force=force,
                    fingerprints=fingerprints, tick=tick, on_spark=on_spark, since=since)
    finally:
        if on_spark:
            on_spark.close()
    tick("完成 done", len(order), len(order))
    return PipelineReport(str(settings.warehouse), engine, reports, round(time.perf_counter() - t0, 1))


def _run_stages(order: list[Stage], reports: list[StageReport], settings: Settings, *, source, rules_config,
                bundle_path, model_ref, tracking_uri, graph_config, feature_tables, force, fingerprints, tick,
                on_spark: _SparkRun | None, since: str | datetime | None = None) -> None:
    for i, stage in enumerate(order):
        tick(f"{i + 1}/{len(order)} {stage.zh} {stage.name}", i, len(order))
        inputs = _inputs(stage, settings, source=source, rules_config=rules_config, bundle_path=bundle_path,
                         model_ref=model_ref, feature_tables=feature_tables)
        if not force and _up_to_date(settings.warehouse, stage, inputs):
            reports.append(StageReport(stage.name, "skipped", inputs=inputs,
                                       tables=_tables_of(settings.warehouse, stage, fingerprints=fingerprints)))
            continue
        s0 = time.perf_counter()

        def step(desc: str, done: int, total: int, _name=f"{i + 1}/{len(order)} {stage.zh}") -> None:
            tick(f"{_name} {desc}".strip(), done, total)

        spark_stage = on_spark is not None and bool(stage.on_spark)
        stage_since, note = _stage_since(settings.warehouse, stage, since)
        summary = _RUNNERS[stage.name](settings, source=source, rules_config=rules_config, bundle_path=bundle_path,
                                       model_ref=model_ref, tracking_uri=tracking_uri, graph_config=graph_config,
                                       feature_tables=feature_tables, progress=step, since=stage_since,
                                       exports=on_spark.exports() if spark_stage else None)
        if since is not None and stage.since:
            summary = summary | {"since": stage_since.isoformat(sep=" ") if stage_since else None,
                                 "since_note": note}
        spark_stage = spark_stage and not summary.get("spark_declined")  # the stage ran on DuckDB after all
        if spark_stage and on_spark.exports().from_lake:  # contract tables read from the Spark ingest's lake
            summary = summary | {"lake_tables": sorted(on_spark.exports().from_lake)}
        report = StageReport(stage.name, "ran", round(time.perf_counter() - s0, 1),
                             _tables_of(settings.warehouse, stage, fingerprints=fingerprints), summary, inputs,
                             "spark" if spark_stage else "duckdb", stage.on_spark if spark_stage else "")
        _record(settings.warehouse, report)
        reports.append(report)


# Columns that say when or in which run a row was written, not what it holds: left out of fingerprints.
RUN_COLUMNS = frozenset({"_ingest_batch", "run_id", "hit_time", "exempted_at", "built_at", "batch_id", "ingested_at",
                         "seconds"})


def fingerprint(con: duckdb.DuckDBPyConnection, table: str) -> tuple[int, str]:
    """Row count and an order-independent fingerprint of a table's content (the sum of its rows' hashes,
    modulo 2^64, as 16 hex digits; the columns of :data:`RUN_COLUMNS` left out). Floating-point values are
    rounded to 9 significant digits first (:func:`_significant`): a sum over the same values in another order
    (a parallel sum, another engine) may differ in its last bits, and what the last bits are worth grows
    with the value — 1e-16 of a share, 1e-5 of a sum of squares of ten billion — so the rounding is
    relative. Nine digits keep every amount under ten million yuan to the fen."""
    cols = [(c, t) for c, t in con.execute(
        "SELECT column_name, data_type FROM duckdb_columns() WHERE database_name = current_database() "
        "AND schema_name = 'main' AND table_name = ? ORDER BY column_index", [table]).fetchall()
        if c not in RUN_COLUMNS]  # main only: ingest keeps held rows in held.<table>, with columns of their own
    if not cols:
        return 0, ""
    row = ", ".join(_significant(f'"{c}"') if t in ("DOUBLE", "FLOAT") else f'"{c}"' for c, t in cols)
    n, total = con.execute(f'SELECT count(*), coalesce(sum(hash({row})::HUGEINT), 0) % 18446744073709551616 '
                           f'FROM "{table}"').fetchone()
    return int(n), f"{int(total):016x}"


def _significant(x: str, digits: int = 9) -> str:
    """SQL of ``x`` (a DOUBLE) cut to ``digits`` significant digits; 0, NULL, NaN and infinities as they are.

    The cut between two neighbouring results is not half way between them (``+ 0.5``) but a little below
    (``+ 0.5137``): exact binary fractions sit exactly half way — 95/128 = 0.7421875 at the 6th decimal,
    729/2048 = 0.35595703125 at the 10th digit — so that one engine's 0.3559570312499997 and the other's
    0.35595703125 would round apart; no binary fraction sits on the cut used here. A value nearer a cut
    than its difference between the engines still falls apart, with a probability below d × 10^digits for a
    relative difference d (a z-score off by 1e-13: one in ten thousand)."""
    scale = f"pow(10, {digits - 1} - floor(log10(abs({x}))))"
    return f"CASE WHEN {x} = 0 OR NOT isfinite({x}) THEN {x} ELSE floor({x} * {scale} + 0.5137) / {scale} END"


def clue_fingerprint(clues: list[dict]) -> str:
    """A fingerprint of a clue list as ranked (16 hex digits of the SHA-256 of its canonical JSON): every
    field of every clue, its rank included, so two engines or two runs that list the same clues in the same
    order with the same scores, reasons and evidence have the same one."""
    text = json.dumps(clues, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


# -- stages -----------------------------------------------------------------------------------------


def _ingest(settings: Settings, *, source, progress, exports, **_) -> dict:
    """On Spark when asked and the extract allows it (``features.ingest_spark``); otherwise on DuckDB, and
    with ``--engine spark`` the summary's ``spark_declined`` says why."""
    from features.ingest import ingest

    declined = None
    if exports is not None:
        from features.ingest_spark import ingest_spark, spark_ingest_blocker

        declined = spark_ingest_blocker(Path(source), settings)
        if declined is None:
            return ingest_spark(Path(source), settings, exports.spark,
                                progress=lambda t, d, n: progress(t, d, n)).to_dict()
    report = ingest(Path(source), settings, progress=lambda t, d, n: progress(t, d, n))
    return report.to_dict() | ({"spark_declined": declined} if declined else {})


def _rules(settings: Settings, *, rules_config, progress, exports, since=None, **_) -> dict:
    from models.rules.engine import run_rules

    from features.contract import FRAUD_TYPES

    report = run_rules(settings.warehouse, _rule_config(settings, rules_config),
                       progress=lambda r, d, n: progress(r, d, n), engine="spark" if exports else "duckdb",
                       exports=exports, since=since)
    typologies: dict[str, dict] = {}
    for r in report.rules:
        t = typologies.setdefault(r.typology_id, {"typology_zh": FRAUD_TYPES[r.typology_id][0], "hits": 0,
                                                  "amount_at_risk": 0.0, "rules": []})
        t["hits"] += r.hits
        t["amount_at_risk"] = round(t["amount_at_risk"] + float(r.amount_at_risk), 2)
        t["rules"].append(r.rule_id)
    return {"run_id": report.run_id, "pack_version": report.pack_version, "hits": report.hits,
            "amount_at_risk": float(report.amount_at_risk), "exempted": report.exempted, "typologies": typologies,
            "shared_seconds": report.shared_seconds,
            "silent_rules": [r.message_zh for r in report.silent_rules if r.level == "warning"]}


def _graph(settings: Settings, *, graph_config, progress, exports, **_) -> dict:
    from features.graph.build import GraphConfig, build_graph

    report = build_graph(settings.warehouse, graph_config or GraphConfig(), progress=progress, exports=exports)
    return {"method": report.method, "counts": report.counts}


def _features(settings: Settings, *, rules_config, progress, exports, feature_tables=None, since=None, **_) -> dict:
    from features.build import build_features

    report = build_features(settings.warehouse, progress=progress, engine="spark" if exports else "duckdb",
                            exports=exports, tables=feature_tables, since=since,
                            rule_config=_rule_config(settings, rules_config))  # the rules' code sets
    return {"tables": {t.table: {"rows": t.rows, "columns": t.columns} for t in report.tables}}


def _screen(settings: Settings, *, bundle_path, model_ref, tracking_uri, progress, exports, since=None, **_) -> dict:
    import serving.cli  # noqa: F401 - first: it imports cli_screen, which imports it (a cycle met half-way otherwise)
    from models.settlement_scores import score_settlements, score_settlements_spark
    from serving.cli_screen import load_bundle, run_screening

    bundle = load_bundle(settings, bundle_path=bundle_path, model_ref=model_ref, tracking_uri=tracking_uri)
    progress("结算单评分 settlement scores", 0, 1)
    with connect(settings.warehouse) as con:
        scored = (score_settlements_spark(con, bundle, exports, since=since) if exports
                  else score_settlements(con, bundle, since=since))
    summary, clues = run_screening(settings, bundle=bundle, bundle_path=bundle_path, model_ref=model_ref,
                                   progress=progress, exports=exports)
    return summary | {"settlements_scored": scored, "clue_fingerprint": clue_fingerprint(clues),
                      "clue_list": clues}  # the whole list, for the caller to show (left out of the JSON report)


_RUNNERS = {"ingest": _ingest, "rules": _rules, "graph": _graph, "features": _features, "screen": _screen}


class _SparkRun:
    """The Spark session and the Parquet exports of one pipeline run, made when a stage first needs them
    (after ingest, so the exports hold what was loaded)."""

    def __init__(self, spark=None) -> None:
        self.spark, self.own_session = spark, spark is None
        self._exports = None

    def exports(self):
        if self._exports is None:
            from features.spark import ParquetExports, spark_session

            if self.spark is None:
                self.spark = spark_session(app_name="yibao-pipeline")
            self._exports = ParquetExports(self.spark)
        return self._exports

    def close(self) -> None:
        if self._exports is not None:
            self._exports.close()
        if self.own_session and self.spark is not None:
            self.spark.stop()


# -- state ------------------------------------------------------------------------------------------


def _rule_config(settings: Settings, config):
    from models.rules.config import active_config

    return config if config is not None else active_config(settings)


def _inputs(stage: Stage, settings: Settings, *, source, rules_config, bundle_path, model_ref,
            feature_tables=None) -> str:
    """A digest of what the stage reads: the states of the stages it follows plus its own inputs."""
    parts = [stage.name]
    state = _state(settings.warehouse)
    parts += [f"{s}={state.get(s, {}).get('finished', '')}" for s in stage.after]
    if stage.name == "ingest":
        files = sorted(p for p in Path(source).rglob("*") if p.is_file())
        parts += [f"{p.relative_to(source)}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in files]
    elif stage.name == "rules":
        from models.rules.pack import DEFAULT_PACK, pack_version

        cfg = _rule_config(settings, rules_config)
        parts += [cfg.sha256, pack_version(DEFAULT_PACK), _exemptions_digest(settings.warehouse)]
    elif stage.name == "features" and feature_tables:  # some tables only: not what a full run would find
        parts.append("tables=" + ",".join(sorted(feature_tables)))
    elif stage.name == "screen":
        parts.append(str(bundle_path) if bundle_path else f"registry:{model_ref}")
        if bundle_path:
            parts.append(str(Path(bundle_path).stat().st_mtime_ns))
        else:  # the registry's alias may move: a screening with a registered model always runs
            parts.append(datetime.now().isoformat())
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def _exemptions_digest(warehouse: Path) -> str:
    if not Path(warehouse).is_file():
        return ""
    with connect(warehouse, read_only=True) as con:
        if not _has(con, "rule_exemptions"):
            return ""
        (d,) = con.execute("SELECT string_agg(exemption_id || coalesce(CAST(revoked_at AS VARCHAR), '') "
                           "|| CAST(expires_on AS VARCHAR), ',' ORDER BY exemption_id) || current_date "
                           "FROM rule_exemptions").fetchone()  # the date: an exemption ends with a day
    return d or ""


def _state(warehouse: Path) -> dict[str, dict]:
    if not Path(warehouse).is_file():
        return {}
    with connect(warehouse, read_only=True) as con:
        if not _has(con, "pipeline_state"):
            return {}
        batch = "batch_no" if con.execute("SELECT 1 FROM duckdb_columns() WHERE table_name = 'pipeline_state' "
                                          "AND column_name = 'batch_no'").fetchall() else "NULL"
        return {s: {"inputs": i, "finished": str(f), "batch_no": b} for s, i, f, b in con.execute(
            f"SELECT stage, inputs, finished_at, {batch} FROM pipeline_state").fetchall()}


def _since_request(since: str | datetime | None) -> str | datetime | None:
    if since is None or since == "auto":
        return since
    from models.rules.engine import since_timestamp

    try:
        return since_timestamp(since)
    except ValueError:
        raise PipelineError(f"--since 应为日期 (a date like 2025-06-01) 或 auto, 而不是 {since!r}") from None


def _stage_since(warehouse: Path, stage: Stage, requested: str | datetime | None) -> tuple[datetime | None, str]:
    """The moment ``stage`` judges from in an incremental run, and a note when it is not the one asked for."""
    if requested is None or not stage.since:
        return None, ""
    seen = _state(warehouse).get(stage.name, {}).get("batch_no")
    if seen is None:
        return None, ("该阶段无运行记录, 全量 (no record of what the stage last saw — its first run, or a warehouse "
                      "from before incremental runs: all settlements)")
    from features.warehouse import settlements_loaded_after

    with connect(warehouse, read_only=True) as con:
        unseen = settlements_loaded_after(con, seen)
    if requested == "auto":
        if unseen is None:
            return None, "无新导入的结算, 全量 (no settlement was loaded since the stage last ran: all settlements)"
        return unseen, "自上次运行以来导入的最早结算 (the earliest settlement loaded since the stage last ran)"
    if unseen is not None and unseen < requested:
        return unseen, (f"提前到 {unseen:%Y-%m-%d %H:%M:%S}: 上次运行以来导入了更早的结算 (moved back: earlier "
                        "settlements were loaded since the stage last ran)")
    return requested, ""


def _up_to_date(warehouse: Path, stage: Stage, inputs: str) -> bool:
    state = _state(warehouse).get(stage.name)
    if not state or state["inputs"] != inputs:
        return False
    return stage.name != "screen" and bool(_tables_of(warehouse, stage, fingerprints=False))


def _record(warehouse: Path, report: StageReport) -> None:
    with connect(warehouse) as con:
        con.execute("CREATE TABLE IF NOT EXISTS pipeline_state (stage VARCHAR PRIMARY KEY, inputs VARCHAR, "
                    "finished_at TIMESTAMP, seconds DOUBLE, tables VARCHAR)")
        # the last ingest run the stage saw: an incremental run judges what later runs loaded
        con.execute("ALTER TABLE pipeline_state ADD COLUMN IF NOT EXISTS batch_no BIGINT")
        con.execute("INSERT OR REPLACE INTO pipeline_state (stage, inputs, finished_at, seconds, tables, batch_no) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    [report.stage, report.inputs, datetime.now(), report.seconds,
                     json.dumps(report.tables, ensure_ascii=False), latest_batch(con)])


def _tables_of(warehouse: Path, stage: Stage, *, fingerprints: bool = True) -> dict[str, dict]:
    """Row count (and fingerprint) of every table the stage writes that exists."""
    if not stage.writes or not Path(warehouse).is_file():
        return {}
    with connect(warehouse, read_only=True) as con:
        names = [t for (t,) in con.execute("SELECT table_name FROM duckdb_tables() WHERE database_name = "
                                           "current_database() AND schema_name = 'main' ORDER BY 1").fetchall()]
        out = {}
        for name in names:
            if any(name == w or (w.endswith("*") and name.startswith(w[:-1])) for w in stage.writes):
                if fingerprints:
                    n, fp = fingerprint(con, name)
                    out[name] = {"rows": n, "fingerprint": fp}
                else:
                    out[name] = {"rows": con.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0]}
    return out


def _has(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    return bool(con.execute("SELECT 1 FROM duckdb_tables() WHERE database_name = current_database() "
                            "AND schema_name = 'main' AND table_name = ?", [table]).fetchall())
