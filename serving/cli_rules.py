"""``yibao rules ...``: the 两库 rule pack and the rule engine (build, list, run, evaluate, backtest, switch).

Which rule config is used: ``--config PATH`` when given, else the user's copy (``Settings.rules_config``,
default ``data/rules.yaml``, env ``YIBAO_RULES_CONFIG``) when it exists, else the committed
``models/rules/rules.yaml``. ``yibao rules enable/disable`` write the user's copy (made from the committed
file the first time), never the committed file.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from serving.cli import JSON_OPT, WAREHOUSE_OPT, _emit, _fail, _progress, _settings, print_unmatched_codes
from serving.cli import console as _narrow

# Rule tables are wide (Chinese basis and messages): give them room when stderr is not a terminal.
console = _narrow if _narrow.is_terminal else Console(stderr=True, width=200)

__all__ = ["rules_app", "effective_config_path", "read_clue_store"]

rules_app = typer.Typer(help="两库 rule pack and rule engine (knowledge base / rule base).", no_args_is_help=True)

CONFIG_OPT = typer.Option(None, "--config", "-c", help="Rule config (YAML). Default: the user copy "
                          "(data/rules.yaml or YIBAO_RULES_CONFIG) if it exists, else models/rules/rules.yaml.")
SEVERITY_ZH = {"high": "高", "medium": "中", "low": "低"}
STATUS_ZH = {"same": "未变", "changed": "修改", "added": "新增", "removed": "删除", "enabled": "启用", "disabled": "停用"}


def effective_config_path(option: Optional[Path], user_copy: Path) -> Path:
    """The rule config a command uses (see the module docstring)."""
    from models.rules.config import DEFAULT_CONFIG

    if option is not None:
        return option
    return user_copy if user_copy.is_file() else DEFAULT_CONFIG


def _load_config(path: Path):
    from models.rules.config import RuleConfigError, load_config

    try:
        return load_config(path)
    except RuleConfigError as e:
        _fail(f"规则配置错误 (rule config error): {e}")


def _require_warehouse(path: Path) -> None:
    if not path.is_file():
        _fail(f"仓库不存在 (warehouse not found): {path}; run `yibao ingest` first")


@rules_app.command("build-pack")
def rules_build_pack(
    source: Path = typer.Option(Path("../shared/reference/liangku"), help="Folder with the 14 两库 spreadsheets."),
    effective_from: str = typer.Option("2024-01-01", help="Effective-from date stamped on every knowledge point."),
    out: Optional[Path] = typer.Option(None, help="Where to write the pack (default: the committed pack file)."),
    keep_going: bool = typer.Option(False, "--keep-going", help="Write the pack even when rows are malformed."),
    as_json: bool = JSON_OPT,
) -> None:
    """重建两库规则包: rebuild the rule pack from the national rule-batch spreadsheets.

    A malformed data row (a value the pack cannot read) is an error naming file, sheet, row and field;
    blank rows and total/footnote rows are reported and left out.
    """
    from models.rules.pack import DEFAULT_PACK, MalformedSpreadsheet, build_pack

    if not source.is_dir():
        _fail(f"两库目录不存在 (rule spreadsheets not found): {source}")
    try:
        info = build_pack(source, out or DEFAULT_PACK, effective_from=effective_from, strict=not keep_going)
    except MalformedSpreadsheet as e:
        if as_json:
            _emit({"error": "malformed rows", "rows": [_skip_dict(r) for r in e.rows]}, True)
        for r in e.rows[:50]:
            console.print(f"[red]错误 error[/red] 文件 file {r.file} 工作表 sheet {r.sheet} 第 {r.row} 行 row "
                          f"字段 field {r.field or '-'}: {r.reason}")
        console.print(f"{len(e.rows)} 行无法读取, 规则包未写入 (pack not written); --keep-going writes it without them")
        raise typer.Exit(1)
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        _fail(f"两库表格错误 (spreadsheet error): {e}")
    if as_json:
        return _emit(info.to_dict(), True)
    console.print(f"规则包 rule pack {info.version} → {info.path}")
    t = Table(title="知识点 knowledge points per rule kind")
    t.add_column("rule_kind")
    t.add_column("points", justify="right")
    for k, v in info.points_per_rule_kind.items():
        t.add_row(k, f"{v:,}")
    console.print(t)
    for s in info.skipped:
        console.print(f"[yellow]跳过 skipped[/yellow] 文件 {s.file} 工作表 {s.sheet} 第 {s.row} 行 "
                      f"字段 {s.field or '-'}: {s.reason}")


@rules_app.command("list")
def rules_list(
    summary: bool = typer.Option(False, "--summary", help="Knowledge points per 两库 batch and file instead."),
    config: Optional[Path] = CONFIG_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """规则清单: the rules (id, typology, policy basis, enabled, thresholds), or with --summary the 两库 pack."""
    from models.rules.pack import pack_version

    if summary:
        from models.rules.summary import pack_summary

        rows = pack_summary()
        total = sum(r.points for r in rows)
        if as_json:
            return _emit({"pack_version": pack_version(), "points": total, "files": [r.to_dict() for r in rows]}, True)
        t = Table(title=f"两库知识点 knowledge points per batch — pack {pack_version()}")
        for c in ("批次 batch", "文件 file", "知识点 points", "README", "说明 note"):
            t.add_column(c, justify="right" if c.startswith(("知识点", "README")) else "left",
                         overflow="fold")
        for r in rows:
            t.add_row(r.batch, f"{r.title_zh}\n{r.file}", f"{r.points:,}",
                      f"{r.published:,}" if r.published is not None else "-",
                      r.explanation or ("一致 equal" if r.matches else ""))
        t.add_row("", "合计 total", f"{total:,}", f"{sum(r.published or 0 for r in rows):,}", "")
        console.print(t)
        return
    s = _settings(None)
    path = effective_config_path(config, s.rules_config)
    cfg = _load_config(path)
    views = _rule_outcomes(s)
    outcomes = None if views is None else views["rule"]
    if as_json:
        by_view = {} if views is None else {f"outcomes_by_{v}": {k: o.to_dict() for k, o in views[v].items()}
                                            for v in ("typology", "level")}
        return _emit({"config": str(cfg.path), "config_version": cfg.config_version, "pack_version": pack_version(),
                      "rules": [r.to_dict() | ({} if outcomes is None else {"outcomes": (
                          outcomes[r.id].to_dict() if r.id in outcomes else None)}) for r in cfg.rules]} | by_view,
                     True)
    from features.contract import FRAUD_TYPES

    t = Table(title=f"规则 rules — {cfg.path} (config {cfg.config_version}, pack {pack_version()})")
    columns = ["规则 rule", "违规类型 typology", "政策依据 basis", "启用 on", "版本 v", "风险 sev", "阈值 thresholds"]
    for c in columns + ([] if outcomes is None else ["查实率 confirmed"]):
        t.add_column(c, overflow="fold")
    for r in cfg.rules:
        params = "\n".join(f"{k}={v}" for k, v in r.params.items()) or "-"
        basis = r.basis_zh.replace("{point_id}", "〈每条命中的知识点 per hit〉")
        row = [f"{r.id}\n{r.name_zh}", f"{r.typology_id}\n{FRAUD_TYPES[r.typology_id][0]}", basis,
               ("是" if r.enabled else "[red]否[/red]") + ("" if r.realtime else "\n(仅批量)"), r.version,
               SEVERITY_ZH[r.severity], params]
        if outcomes is not None:
            row.append(outcomes[r.id].text_zh if r.id in outcomes else "无已结论线索")
        t.add_row(*row)
    console.print(t)
    if views is not None:
        console.print("查实率: 已结论线索中含该规则命中者被查实的比例, 95% 置信区间; 区间整体低于全部已结论线索的查实率时"
                      "建议复核 (confirmed share of the decided clues holding the rule's hits)")
        _print_outcome_views(views)


def _print_outcome_views(views) -> None:
    """查实率 by typology and by model level (the clue's entity type), when clues have been decided."""
    from features.contract import FRAUD_TYPES
    from models.ranking import ENTITY_ZH
    from models.rules.outcomes import OUTCOME_VIEWS

    for view, names in (("typology", {k: v[0] for k, v in FRAUD_TYPES.items()}), ("level", ENTITY_ZH)):
        if not views[view]:
            continue
        t = Table(title=f"查实率 按{OUTCOME_VIEWS[view]} (confirmation rate by {view})")
        for c in (OUTCOME_VIEWS[view], "已结论 decided", "查实率 confirmed [95%]"):
            t.add_column(c, justify="right" if c.startswith("已结论") else "left", overflow="fold")
        for key, o in sorted(views[view].items(), key=lambda kv: -kv[1].decided):
            t.add_row(f"{names.get(key, key)} {key}", f"{o.decided:,}", o.text_zh)
        console.print(t)


def _rule_outcomes(settings):
    """Confirmation rates per rule, typology and model level from the clue store (``outcome_rates``), or None
    when there is no store to read."""
    from models.rules.outcomes import outcome_rates

    return read_clue_store(settings, lambda store: outcome_rates(store.decided_clues()), "不显示查实率")


def read_clue_store(settings, read, without: str):
    """``read(store)`` on the clue store, or None (with a warning saying ``without``) when there is none."""
    url = settings.clue_db_url
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
        return None
    from serving.clues.store import open_store

    try:
        store = open_store(url)
    except Exception as e:  # noqa: BLE001 - the rule commands do not depend on the clue store being up
        typer.echo(f"警告 (warning): 线索库不可用, {without} (clue store not available): {type(e).__name__}", err=True)
        return None
    try:
        return read(store)
    finally:
        store.close()


@rules_app.command("run")
def rules_run(
    warehouse: Optional[Path] = WAREHOUSE_OPT,
    since: Optional[str] = typer.Option(None, help="Judge settlements from this date on (YYYY-MM-DD); "
                                        "history before it is still read. Replaces those rules' hits from then on."),
    rule: Optional[list[str]] = typer.Option(None, "--rule", help="Only this rule (repeatable)."),
    config: Optional[Path] = CONFIG_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """规则筛查: run all enabled rules over the warehouse (set-based SQL) and write the hit table rule_hits."""
    from models.rules.engine import RuleSqlError, run_rules

    s = _settings(warehouse)
    _require_warehouse(s.warehouse)
    cfg = _load_config(effective_config_path(config, s.rules_config))
    with _progress(as_json) as bar:
        task = bar.add_task("规则 rules", total=len(cfg.enabled_rules))

        def tick(rule_id: str, done: int, total: int) -> None:
            bar.update(task, completed=done, total=total, description=f"规则 {rule_id}" if rule_id else "规则 rules")

        try:
            report = run_rules(s.warehouse, cfg, since=since, rule_ids=rule or None, progress=tick)
        except (RuleSqlError, ValueError, KeyError, FileNotFoundError) as e:
            _fail(str(e))
    if as_json:
        return _emit(report.to_dict(), True)
    _print_run(report)


def _print_run(report) -> None:
    from features.contract import FRAUD_TYPES

    t = Table(title=f"规则命中 rule hits → {report.warehouse} (run {report.run_id}"
                    + (f", since {report.since}" if report.since else "") + ")")
    for c in ("规则 rule", "违规类型 typology", "命中 hits", "涉及金额 at risk (元)", "用时 s"):
        t.add_column(c, justify="right" if c.startswith(("命中", "涉及", "用时")) else "left")
    for r in report.rules:
        t.add_row(r.rule_id, f"{r.typology_id} {FRAUD_TYPES[r.typology_id][0]}", f"{r.hits:,}",
                  f"{r.amount_at_risk:,.2f}", f"{r.seconds:.2f}")
    t.add_row("共享视图 shared views", "各规则共读 read by all", "", "", f"{report.shared_seconds:.2f}")
    t.add_row("合计 total", "", f"{report.hits:,}", f"{report.amount_at_risk:,.2f}", f"{report.seconds:.1f}")
    console.print(t)
    console.print(f"两库版本 pack {report.pack_version}; 配置 config {report.config_path} ({report.config_version})")
    if report.removed_rules:
        console.print(f"已移除停用规则的命中 removed hits of rules no longer enabled: {', '.join(report.removed_rules)}")
    if report.exempted:
        console.print(f"白名单: {report.exempted:,} 条命中由有效豁免覆盖，已移至 rule_hits_exempted "
                      "(hits covered by exemptions in force; `yibao rules exempt list`)")
    for sh in report.shadows:
        if sh.error:
            console.print(f"[red]影子运行未执行[/red] shadow {sh.shadow_id} ({sh.rule_id}): {sh.error}")
        else:
            console.print(f"影子运行 shadow {sh.shadow_id}: 规则 {sh.rule_id} 的拟用版本命中 {sh.hits:,} 条 "
                          "(不生成线索; `yibao rules shadow report`)")
    print_unmatched_codes([c.to_dict() for c in report.unmatched_codes])
    for r in report.silent_rules:
        colour = "red" if r.level == "warning" else "yellow"
        console.print(f"[{colour}]{'警告' if r.level == 'warning' else '提示'}:[/{colour}] {r.message_zh}")


@rules_app.command("eval")
def rules_eval(
    warehouse: Optional[Path] = WAREHOUSE_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """规则评估: precision and recall per typology id of the hits in rule_hits against the labels."""
    from models.rules.evaluate import evaluate

    s = _settings(warehouse)
    _require_warehouse(s.warehouse)
    try:
        report = evaluate(s.warehouse)
    except ValueError as e:
        _fail(str(e))
    if as_json:
        return _emit(report.to_dict(), True)
    console.print(_eval_table(report, f"规则评估 rule evaluation — {s.warehouse}"))
    console.print("层级 level: * = the rules' own level (the figure the targets apply to); others are roll-ups. "
                  "其他违规 other fraud = hit entities positive for another typology.")


def _eval_table(report, title: str) -> Table:
    from features.contract import FRAUD_TYPES

    t = Table(title=title)
    for c in ("违规类型 typology", "层级 level", "命中 hits", "正确 TP", "其他违规 other", "阳性 positives",
              "精确率 P", "召回率 R", "涉及金额 at risk", "查获金额 caught", "标签金额 labelled"):
        t.add_column(c, justify="left" if c.startswith(("违规", "层级")) else "right")
    for sc in report.scores:
        fmt = lambda x: "-" if x is None else f"{x:.3f}"  # noqa: E731
        style = None if sc.headline else "dim"
        t.add_row(f"{sc.typology_id} {FRAUD_TYPES[sc.typology_id][0]}", sc.level + ("*" if sc.headline else ""),
                  f"{sc.hits:,}", f"{sc.true_positives:,}", f"{sc.other_fraud:,}", f"{sc.positives:,}",
                  fmt(sc.precision), fmt(sc.recall), f"{sc.amount_at_risk:,.2f}", f"{sc.amount_caught:,.2f}",
                  f"{sc.amount_labelled:,.2f}", style=style)
    return t


@rules_app.command("backtest")
def rules_backtest(
    proposed: Path = typer.Option(..., "--config", "-c", help="The proposed rule config to compare."),
    warehouse: Optional[Path] = WAREHOUSE_OPT,
    current: Optional[Path] = typer.Option(None, help="The current config (default: the one in use)."),
    since: Optional[str] = typer.Option(None, help="Only settlements from this date on."),
    as_json: bool = JSON_OPT,
) -> None:
    """规则回测: hits and amounts per rule under the current and a proposed config, before switching."""
    from models.rules.backtest import backtest
    from models.rules.engine import RuleSqlError

    s = _settings(warehouse)
    _require_warehouse(s.warehouse)
    cur = _load_config(effective_config_path(current, s.rules_config))
    new = _load_config(proposed)
    with _progress(as_json) as bar:
        task = bar.add_task("回测 backtest", total=None)

        def tick(label: str, done: int, total: int) -> None:
            bar.update(task, completed=done, total=total, description=f"回测 {label}")

        try:
            report = backtest(s.warehouse, cur, new, since=since, progress=tick)
        except (RuleSqlError, ValueError) as e:
            _fail(str(e))
    if as_json:
        return _emit(report.to_dict(), True)
    t = Table(title=f"规则回测 backtest — 现行 {report.current_config} vs 拟用 {report.proposed_config}")
    for c in ("规则 rule", "变化 change", "现行命中 hits now", "拟用命中 hits new", "新增 new only", "消失 dropped",
              "现行金额 amount now", "拟用金额 amount new", "金额变化 Δ"):
        t.add_column(c, justify="left" if c.startswith(("规则", "变化")) else "right", overflow="fold")
    for d in report.rules:
        change = STATUS_ZH[d.status]
        if d.param_changes:
            change += "\n" + "\n".join(f"{k}: {a} → {b}" for k, (a, b) in d.param_changes.items())
        if d.current_version != d.proposed_version and d.current_version and d.proposed_version:
            change += f"\nv{d.current_version} → v{d.proposed_version}"
        t.add_row(d.rule_id, change, f"{d.current_hits:,}", f"{d.proposed_hits:,}", f"{d.only_proposed:,}",
                  f"{d.only_current:,}", f"{d.current_amount:,.2f}", f"{d.proposed_amount:,.2f}",
                  f"{d.amount_delta:+,.2f}")
    console.print(t)
    if report.current_eval and report.proposed_eval:
        console.print(_eval_table(report.current_eval, "现行配置评估 current config vs labels"))
        console.print(_eval_table(report.proposed_eval, "拟用配置评估 proposed config vs labels"))


@rules_app.command("conformance")
def rules_conformance(
    sample: Optional[int] = typer.Option(None, "--sample", "-n", min=1,
                                         help="Points per batch (a seeded sample); default: every point."),
    batch: Optional[list[str]] = typer.Option(None, "--batch", "-b", help="Only this batch (1, 2 … 8-4; repeatable)."),
    engine: str = typer.Option("both", "--engine", help="sql (batch run) | precheck (kernels) | both."),
    form: str = typer.Option("both", "--form", help="Code form of the claims: canonical | raw | both."),
    seed: int = typer.Option(20250310, help="Seed of the sample."),
    lookback_days: Optional[int] = typer.Option(None, "--lookback-days", min=1, help="Pre-check look-back "
                                                "(default: the service's, 180 days)."),
    workdir: Optional[Path] = typer.Option(None, help="Keep the extract and warehouse here (default: a "
                                           "temporary folder, removed)."),
    config: Optional[Path] = CONFIG_OPT,
    show: int = typer.Option(40, help="Failing claims to list (all with --json)."),
    as_json: bool = JSON_OPT,
) -> None:
    """两库一致性测试: a violating and a compliant test claim per knowledge point, through both engines.

    Exits 1 when any expected verdict is missed (the failing points are listed with the reason).
    """
    from models.rules.conformance import ENGINES, FORMS, run_conformance

    engines = ENGINES if engine == "both" else (engine,)
    forms = FORMS if form == "both" else (form,)
    if not set(engines) <= set(ENGINES):
        _fail(f"--engine must be sql, precheck or both, not {engine!r}")
    if not set(forms) <= set(FORMS):
        _fail(f"--form must be canonical, raw or both, not {form!r}")
    s = _settings(None)
    cfg = _load_config(effective_config_path(config, s.rules_config))
    with _progress(as_json) as bar:
        task = bar.add_task("一致性测试 conformance", total=None)

        def tick(label: str, done: int, total: int) -> None:
            bar.update(task, completed=done, total=total, description=f"一致性测试 {label}")

        try:
            report = run_conformance(config=cfg, sample=sample, seed=seed, batches=batch or None, engines=engines,
                                     forms=forms, lookback_days=lookback_days, workdir=workdir, progress=tick)
        except ValueError as e:
            _fail(str(e))
    if as_json:
        _emit(report.to_dict(), True)
    else:
        _print_conformance(report, show)
    if not report.ok:
        raise typer.Exit(1)


def _print_conformance(report, show: int) -> None:
    title = (f"两库一致性测试 conformance — pack {report.pack_version}, "
             + (f"{report.sample} points per batch (seed {report.seed})" if report.sample else "every point")
             + f", pre-check look-back {report.lookback_days} days, {report.seconds.get('total', 0):.1f} s")
    t = Table(title=title)
    t.add_column("批次 batch")
    t.add_column("知识点 points", justify="right")
    t.add_column("覆盖 covered", justify="right")
    t.add_column("附注 caveat", justify="right")
    for e in report.engines:
        for f in report.forms:
            t.add_column(f"{e} {f}\n判定达成 met / claims", justify="right")
    for e in report.engines:
        t.add_column(f"{e}\n知识点全过 points passed", justify="right")
    totals = {"points": 0, "covered": 0, "with_caveat": 0}
    for b in report.batches:
        cells = [b.batch, f"{b.points:,}", f"{b.covered:,}", f"{b.with_caveat:,}"]
        for e in report.engines:
            for f in report.forms:
                met, n = b.met[e].get(f, 0), b.claims.get(f, 0)
                cells.append(("" if met == n else "[red]") + f"{met:,} / {n:,}")
        cells += [f"{b.points_passed[e]:,}" for e in report.engines]
        t.add_row(*cells)
        totals["points"] += b.points
        totals["covered"] += b.covered
        totals["with_caveat"] += b.with_caveat
    total_cells = ["合计 total", f"{totals['points']:,}", f"{totals['covered']:,}", f"{totals['with_caveat']:,}"]
    for e in report.engines:
        for f in report.forms:
            total_cells.append(f"{sum(b.met[e].get(f, 0) for b in report.batches):,} / "
                               f"{sum(b.claims.get(f, 0) for b in report.batches):,}")
    total_cells += [f"{sum(b.points_passed[e] for b in report.batches):,}" for e in report.engines]
    t.add_row(*total_cells)
    console.print(t)
    console.print("用时 seconds: " + ", ".join(f"{k} {v}" for k, v in report.seconds.items()))
    if report.quarantined:
        console.print("入库隔离 quarantined by the ingest: " + ", ".join(f"{k} {v}" for k, v in report.quarantined.items()))
    for u in report.uncovered:
        console.print(f"[yellow]未覆盖 not covered[/yellow] {u.point_id} ({u.rule_id}): {u.reason}")
    warnings: dict[str, list[str]] = {}
    for c in report.caveats:
        warnings.setdefault(c.warning, []).append(c.point_id)
    for text, ids in warnings.items():
        console.print(f"[yellow]附注 caveat[/yellow] {len(ids)} point(s) {ids[0]}{' …' if len(ids) > 1 else ''}: "
                      f"only the encoded part is tested — {text}")
    if report.failures:
        console.print(f"[red]{report.missed:,} 项预期判定未达成 expected verdicts missed[/red] "
                      f"({len({(f.engine, f.point_id) for f in report.failures}):,} point/engine pairs); first {show}:")
        for f in report.failures[:show]:
            console.print(f"  {f.engine:8} {f.point_id} {f.verdict} {f.form} — {f.boundary}: {f.reason}")
    else:
        console.print("[green]全部预期判定达成 every expected verdict met[/green]")


def _switch(rule_id: str, enabled: bool, config: Optional[Path], as_json: bool) -> None:
    from models.rules.config import DEFAULT_CONFIG, RuleConfigError, set_enabled

    s = _settings(None)
    target = config or s.rules_config
    created = False
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(DEFAULT_CONFIG, target)
        created = True
    try:
        cfg = set_enabled(target, rule_id, enabled)
    except KeyError as e:
        _fail(str(e.args[0]))
    except RuleConfigError as e:
        _fail(f"规则配置错误 (rule config error): {e}")
    payload = {"config": str(target), "created": created, "rule_id": rule_id, "enabled": cfg.rule(rule_id).enabled}
    if as_json:
        return _emit(payload, True)
    state = "启用 enabled" if enabled else "停用 disabled"
    console.print(f"规则 {rule_id} 已{state} in {target}" + (" (copied from the committed rules.yaml)" if created else ""))
    console.print("生效 takes effect on the next `yibao rules run`; compare first with `yibao rules backtest`.")


@rules_app.command("enable")
def rules_enable(rule_id: str = typer.Argument(..., help="Rule id, see `yibao rules list`."),
                 config: Optional[Path] = typer.Option(None, "--config", "-c", help="Config file to edit "
                                                       "(default: the user copy, Settings.rules_config)."),
                 as_json: bool = JSON_OPT) -> None:
    """启用规则: switch a rule on in the user's rule config copy."""
    _switch(rule_id, True, config, as_json)


@rules_app.command("disable")
def rules_disable(rule_id: str = typer.Argument(..., help="Rule id, see `yibao rules list`."),
                  config: Optional[Path] = typer.Option(None, "--config", "-c", help="Config file to edit "
                                                        "(default: the user copy, Settings.rules_config)."),
                  as_json: bool = JSON_OPT) -> None:
    """停用规则: switch a rule off in the user's rule config copy."""
    _switch(rule_id, False, config, as_json)


def _skip_dict(s) -> dict:
    return {"file": s.file, "sheet": s.sheet, "row": s.row, "field": s.field, "reason": s.reason}
