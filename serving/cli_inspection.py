"""``yibao credit`` (信用评价) and ``yibao inspection plan|lift`` (飞行检查抽查方案)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Optional

import pandas as pd
import typer
from rich.table import Table

from serving.cli import JSON_OPT, WAREHOUSE_OPT, _emit, _existing_warehouse, _fail, console

__all__ = ["credit_command", "inspection_app", "load_inputs"]

inspection_app = typer.Typer(help="飞行检查抽查方案 (flight-inspection planning).", no_args_is_help=True)

BUNDLE_OPT = typer.Option(None, "--bundle", help="A scorer bundle file (scorer_bundle.joblib) for model risk; "
                          "default: none (the model factor then costs nothing).")
CREDIT_CONFIG_OPT = typer.Option(None, "--credit-config", help="Credit weights (default models/credit.yaml).")
CONFIG_OPT = typer.Option(None, "--config", help="Sampling config (default models/inspection.yaml).")
CLUES_OPT = typer.Option(True, "--clues/--no-clues", help="Read confirmed and open clues from the clue store "
                         "(skipped when its SQLite file does not exist).")


def load_inputs(settings, *, bundle: Optional[Path], credit_config: Optional[Path], use_clues: bool = True):
    """Institutions with fund usage, rule amounts, P(fraud), the suspicion index (``risk``, ``risk_zh``),
    credit ratings, and the clue outcomes."""
    from models.credit import clue_outcomes, institutions_from_warehouse, load_credit_config, rate_institutions
    from models.inspection import institution_risk, risk_signals_from_warehouse

    model = None
    if bundle is not None:
        from models.bundle import ScorerBundle

        if not bundle.is_file():
            _fail(f"模型文件不存在 (bundle not found): {bundle}")
        model = ScorerBundle.load(bundle)
    inst = institutions_from_warehouse(settings.warehouse, model)
    _warn_missing_inputs(settings.warehouse)
    risk = institution_risk(risk_signals_from_warehouse(settings.warehouse))
    inst = inst.merge(risk[["fixmedins_code", "risk", "risk_zh"]], on="fixmedins_code", how="left")
    clues = None
    url = settings.clue_db_url
    if use_clues and not (url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file()):
        from serving.clues.store import SYSTEM, open_store

        store = open_store(url)
        try:
            clues = clue_outcomes(store, SYSTEM)
        finally:
            store.close()
    cfg = load_credit_config(credit_config)
    ratings = rate_institutions(inst, clues, config=cfg)
    return inst.merge(ratings[["fixmedins_code", "score", "grade"]], on="fixmedins_code"), ratings, clues, cfg


def _warn_missing_inputs(warehouse: Path) -> None:
    """Say on stderr which warehouse tables the suspicion index and the fund ranking lack (they then count
    as no signal, and a risk-weighted draw degrades towards a uniform one)."""
    import duckdb

    with duckdb.connect(str(warehouse), read_only=True) as con:
        present = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    missing = [t for t in ("rule_hits", "feat_fixmedins", "feat_pharmacy") if t not in present]
    if missing:
        typer.echo(f"警告 (warning): 数据仓库缺少 {', '.join(missing)} — 基金用量与疑点风险指数不完整 "
                   "(fund usage and the suspicion index are incomplete); run `yibao rules run` and "
                   "`yibao features build` first", err=True)


def credit_command(
    warehouse: Optional[Path] = WAREHOUSE_OPT,
    bundle: Optional[Path] = BUNDLE_OPT,
    credit_config: Optional[Path] = CREDIT_CONFIG_OPT,
    use_clues: bool = CLUES_OPT,
    save: bool = typer.Option(True, "--save/--no-save", help="Append the ratings to the table credit_ratings."),
    limit: int = typer.Option(20, help="How many ratings to print (lowest score first)."),
    as_json: bool = JSON_OPT,
) -> None:
    """信用评价: rate every designated institution and pharmacy A/B/C/D with a 0–100 score, explained."""
    s = _existing_warehouse(warehouse)
    try:
        _, ratings, clues, _ = load_inputs(s, bundle=bundle, credit_config=credit_config, use_clues=use_clues)
    except (FileNotFoundError, ValueError) as e:
        _fail(str(e))
    if save:
        from models.credit import save_ratings

        ratings = save_ratings(s.warehouse, ratings)
    else:
        ratings = ratings.assign(previous_score=None, previous_grade=None)
    by_grade = {g: int((ratings["grade"] == g).sum()) for g in "ABCD"}
    changed = ratings[ratings["previous_grade"].notna() & (ratings["previous_grade"] != ratings["grade"])]
    if as_json:
        return _emit({"institutions": len(ratings), "by_grade": by_grade, "changed": len(changed),
                      "clues": 0 if clues is None else len(clues), "saved": save,
                      "ratings": json.loads(ratings.to_json(orient="records", force_ascii=False))}, True)
    t = Table(title=f"信用评价 credit ratings ({len(ratings)} 家; 最低分前 {min(limit, len(ratings))} 家)")
    for c in ("机构编码", "名称", "类型", "评分", "等级", "上次", "扣分原因"):
        t.add_column(c, overflow="fold", justify="right" if c in ("评分",) else "left")
    for r in ratings.sort_values(["score", "fixmedins_code"]).head(limit).itertuples(index=False):
        t.add_row(r.fixmedins_code, r.fixmedins_name or "", r.fixmedins_type, f"{r.score:.1f}",
                  f"{r.grade} {r.grade_zh}", r.previous_grade or "—", r.explanation_zh.split(": ", 1)[-1])
    console.print(t)
    console.print("等级分布: " + ", ".join(f"{g} {n} 家" for g, n in by_grade.items())
                  + f"; 等级变化 {len(changed)} 家" + ("; 已写入 credit_ratings" if save else ""))


@inspection_app.command("plan")
def plan_command(
    warehouse: Optional[Path] = WAREHOUSE_OPT,
    seed: int = typer.Option(..., "--seed", help="The published random seed (公开的随机种子)."),
    exclude: Optional[Path] = typer.Option(None, "--exclude", help="Institutions inspected recently (除外): a CSV "
                                           "with fixmedins_code or one code a line."),
    lookback_from: Optional[Path] = typer.Option(None, "--lookback-from", help="Institutions inspected in "
                                                 "earlier years (回头看 pool), same format."),
    designate: Optional[Path] = typer.Option(None, "--designate", help="Extra designated targets, same format."),
    max_designated: int = typer.Option(5, help="Designate at most this many open high-risk clues (0: none)."),
    weighting: Optional[str] = typer.Option(None, help="none, credit or risk (default: the config's)."),
    since: Optional[str] = typer.Option(None, help="Fund usage period start (YYYY-MM-DD); default: all data."),
    until: Optional[str] = typer.Option(None, help="Fund usage period end, exclusive (YYYY-MM-DD)."),
    bundle: Optional[Path] = BUNDLE_OPT,
    config: Optional[Path] = CONFIG_OPT,
    credit_config: Optional[Path] = CREDIT_CONFIG_OPT,
    use_clues: bool = CLUES_OPT,
    out: Path = typer.Option(Path("data/inspection"), "--out", help="Folder for plan-<seed>.csv and .html."),
    as_json: bool = JSON_OPT,
) -> None:
    """抽查方案: rank by fund usage, draw per region, 2 of the top-10 pharmacies, 回头看, designated, exclusions."""
    from models.credit import load_credit_config
    from models.inspection import load_inspection_config, plan_html, plan_inspection, read_code_list

    s = _existing_warehouse(warehouse)
    try:
        cfg = load_inspection_config(config, credit_config=load_credit_config(credit_config), weighting=weighting)
        inst, ratings, clues, _ = load_inputs(s, bundle=bundle, credit_config=credit_config, use_clues=use_clues)
        inst = inst.drop(columns="fund_amt").merge(_fund_usage(s.warehouse, since, until), on="fixmedins_code",
                                                   how="left").fillna({"fund_amt": 0.0})
        designated = _designated_from_clues(clues, max_designated)
        for code in read_code_list(designate) if designate else []:
            designated.setdefault(code, "指定检查名单")
        plan = plan_inspection(inst, seed=seed, config=cfg,
                               inspected_recently=read_code_list(exclude) if exclude else [],
                               previously_inspected=read_code_list(lookback_from) if lookback_from else [],
                               designated=designated)
    except (FileNotFoundError, ValueError) as e:
        _fail(str(e))
    targets = (plan.targets.merge(ratings[["fixmedins_code", "score", "grade"]], on="fixmedins_code", how="left")
               .merge(inst[["fixmedins_code", "risk", "risk_zh"]], on="fixmedins_code", how="left"))
    out.mkdir(parents=True, exist_ok=True)
    csv_path, html_path = out / f"plan-{seed}.csv", out / f"plan-{seed}.html"
    targets.assign(seed=seed, weighting=cfg.weighting).to_csv(csv_path, index=False, encoding="utf-8")
    html_path.write_text(plan_html(plan), encoding="utf-8")
    summary = plan.summary() | {"csv": str(csv_path), "html": str(html_path),
                                "period": {"since": since, "until": until}}
    if as_json:
        return _emit(summary | {"targets": json.loads(targets.to_json(orient="records", force_ascii=False))}, True)
    t = Table(title=f"飞行检查抽查名单 (种子 {seed}, {cfg.weighting})")
    for c in ("序号", "机构编码", "名称", "统筹区", "基金用量(元)", "信用", "抽取方式", "理由"):
        t.add_column(c, overflow="fold")
    for r in targets.itertuples(index=False):
        t.add_row(str(r.order), r.fixmedins_code, r.fixmedins_name or "", r.region, f"{r.fund_amt:,.0f}",
                  str(r.grade), r.selection_zh, r.reason_zh)
    console.print(t)
    console.print(f"→ {csv_path}, {html_path}")


@inspection_app.command("lift")
def lift_command(
    warehouse: Optional[Path] = WAREHOUSE_OPT,
    seeds: int = typer.Option(100, "--seeds", help="Number of seeds (plans per weighting)."),
    bundle: Optional[Path] = BUNDLE_OPT,
    config: Optional[Path] = CONFIG_OPT,
    credit_config: Optional[Path] = CREDIT_CONFIG_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """效果: fraud institutions (simulator ground truth) found by risk-weighted vs purely random plans.

    The risk weighting draws by the suspicion index, which uses no label, so the comparison is not
    flattered by a model that saw the labels; ``credit`` includes the model factor when ``--bundle`` is
    given (a bundle trained on these labels makes that row in-sample), ``credit_rules_only`` does not."""
    import duckdb

    from models.credit import load_credit_config, rate_institutions
    from models.inspection import inspection_lift, load_inspection_config

    s = _existing_warehouse(warehouse)
    try:
        ccfg = load_credit_config(credit_config)
        cfg = load_inspection_config(config, credit_config=ccfg, weighting="none")
        inst, _, _, _ = load_inputs(s, bundle=bundle, credit_config=credit_config, use_clues=False)
    except (FileNotFoundError, ValueError) as e:
        _fail(str(e))
    con = duckdb.connect(str(s.warehouse), read_only=True)
    try:
        fraud = con.sql("SELECT DISTINCT entity_id FROM labels WHERE entity_type = 'fixmedins' AND label = 1"
                        ).df()["entity_id"].tolist()
    finally:
        con.close()
    result = inspection_lift(inst, fraud, seeds=seeds, config=cfg, weightings=["risk", "credit"])
    # The same draw with credit rated from rules and clues only: no model trained on these labels.
    rules_only = rate_institutions(inst.drop(columns=["p_fraud", "score", "grade"]), None, config=ccfg)
    inst_rules = inst.drop(columns=["score", "grade"]).merge(rules_only[["fixmedins_code", "grade"]],
                                                             on="fixmedins_code")
    extra = inspection_lift(inst_rules, fraud, seeds=seeds, config=cfg, weightings=["credit"])
    result["plans"]["credit_rules_only"] = extra["plans"]["credit"] | {"weighting_zh": "按信用等级加权 (不含模型)"}
    result["bundle"] = str(bundle) if bundle else None
    if as_json:
        return _emit(result, True)
    t = Table(title=f"抽查效果 lift: {result['seeds']} 个种子, 每个方案 {result['plan_size']} 家, "
                    f"{result['fraud_institutions']}/{result['institutions']} 家为违规机构 (模拟真值)")
    for c in ("抽取方式", "平均查到违规机构", "标准差", "最少", "最多", "倍数", "多于/少于同种子随机"):
        t.add_column(c)
    for w, p in result["plans"].items():
        paired = f"{p['share_more']:.0%} / {p['share_fewer']:.0%}" if "share_more" in p else "—"
        t.add_row(f"{w} {p['weighting_zh']}", f"{p['mean_found']:.2f}", f"{p['std_found']:.2f}",
                  str(p["min_found"]), str(p["max_found"]), str(p.get("lift", "—")), paired)
    console.print(t)


# -- private helpers ------------------------------------------------------------------------------


def _fund_usage(warehouse: Path, since: Optional[str], until: Optional[str]) -> pd.DataFrame:
    """Fund usage (统筹基金支付, 元) per institution from the settlements over [since, until)."""
    import duckdb

    for d in (since, until):
        if d:
            datetime.strptime(d, "%Y-%m-%d")  # a bad date is a ValueError for the caller
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return con.execute("""SELECT fixmedins_code, sum(fund_pay_sumamt)::DOUBLE AS fund_amt FROM setl_d
                              WHERE (?::DATE IS NULL OR setl_time >= ?::DATE) AND (?::DATE IS NULL OR setl_time < ?::DATE)
                              GROUP BY 1""", [since, since, until, until]).df()
    finally:
        con.close()


def _designated_from_clues(clues: Optional[pd.DataFrame], n: int) -> dict[str, str]:
    if clues is None or clues.empty or n <= 0:
        return {}
    open_high = clues[clues["state"].isin(("new", "assigned", "verifying")) & (clues["risk_level"] == "high")]
    top = open_high.sort_values(["priority", "id"], ascending=[False, True]).drop_duplicates("entity_id").head(n)
    return {str(r.entity_id): f"大数据筛查高风险线索 #{r.id} (P(欺诈)={r.p_fraud:.2f}, 涉嫌金额 {r.amount_at_risk:,.0f} 元)"
            for r in top.itertuples(index=False)}
