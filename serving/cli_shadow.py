"""``yibao rules shadow ...``: a changed rule run beside the live one on new data, raising no clue.

See ``models/rules/shadow.py``. ``start`` registers the change; every ``yibao rules run`` then runs it into
``rule_hits_shadow``; ``report`` compares it with the live rule (and, from the clue store, the decided
clues it would drop); ``stop`` ends it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from serving.cli import JSON_OPT, WAREHOUSE_OPT, _emit, _fail, _settings, console

__all__ = ["shadow_app"]

shadow_app = typer.Typer(help="影子运行 shadow runs: a changed rule beside the live one on new data, no clues.",
                         no_args_is_help=True)


def _warehouse(warehouse: Optional[Path]):
    s = _settings(warehouse)
    if not s.warehouse.is_file():
        _fail(f"仓库不存在 (warehouse not found): {s.warehouse}; run `yibao ingest` first")
    return s


@shadow_app.command("start")
def shadow_start(
    rule_id: str = typer.Argument(..., help="The rule to shadow (its id in both configs)."),
    config: Path = typer.Option(..., "--config", "-c", help="The proposed rule config holding the changed rule."),
    by: str = typer.Option(..., "--by", help="Who registers it (登记人)."),
    days: int = typer.Option(30, help="Observation period: days of settlements to judge before deciding."),
    since: Optional[str] = typer.Option(None, help="First settlement date it judges (default: the day after the "
                                                   "latest settlement in the warehouse, i.e. data still to come)."),
    note: str = typer.Option("", help="What changes and why (变更说明)."),
    warehouse: Optional[Path] = WAREHOUSE_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """登记影子运行: from the next `yibao rules run` on, the changed rule runs beside the live one."""
    from models.rules.config import RuleConfigError, load_config
    from models.rules.shadow import ShadowError, start_shadow

    s = _warehouse(warehouse)
    try:
        shadow = start_shadow(s.warehouse, load_config(config), rule_id, created_by=by, days=days, data_from=since,
                              note=note)
    except (ShadowError, RuleConfigError) as e:
        _fail(str(e))
    if as_json:
        return _emit(shadow.to_dict(), True)
    console.print(f"已登记影子运行 shadow {shadow.shadow_id}: 规则 {rule_id}（{config}），自 {shadow.data_from:%Y-%m-%d} "
                  f"起的结算, 观察 {days} 天。每次 `yibao rules run` 同时运行, 命中写入 rule_hits_shadow, 不生成线索。"
                  f"仓库 {s.warehouse}")


@shadow_app.command("stop")
def shadow_stop(
    rule_id: str = typer.Argument(..., help="The rule whose shadow ends."),
    by: str = typer.Option(..., "--by", help="Who stops it."),
    reason: str = typer.Option("", help="Why (e.g. 已上线 / 不采用)."),
    warehouse: Optional[Path] = WAREHOUSE_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """停止影子运行 (its hits stay for the record)."""
    from models.rules.shadow import ShadowError, stop_shadow

    s = _warehouse(warehouse)
    try:
        shadow = stop_shadow(s.warehouse, rule_id, by=by, reason=reason)
    except ShadowError as e:
        _fail(str(e))
    if as_json:
        return _emit(shadow.to_dict(), True)
    console.print(f"已停止影子运行 shadow {shadow.shadow_id} ({rule_id})。仓库 {s.warehouse}")


@shadow_app.command("report")
def shadow_report_cmd(
    rule_id: Optional[str] = typer.Argument(None, help="Only this rule's shadow."),
    all_: bool = typer.Option(False, "--all", help="Also stopped shadows."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="The live rule config (default: the one "
                                                                      "in use, as `yibao rules run`)."),
    warehouse: Optional[Path] = WAREHOUSE_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """影子运行报告: live rule and shadow over the same new settlements; decided clues it would drop."""
    from models.rules.shadow import shadow_report
    from serving.cli_rules import _load_config, effective_config_path, read_clue_store

    s = _warehouse(warehouse)
    live = _load_config(effective_config_path(config, s.rules_config))
    decided = read_clue_store(s, lambda store: store.decided_clues(), "不显示线索结论")
    reports = shadow_report(s.warehouse, live, rule_id, include_stopped=all_, decided=decided)
    if as_json:
        return _emit({"warehouse": str(s.warehouse), "shadows": [r.to_dict() for r in reports]}, True)
    if not reports:
        console.print(f"没有影子运行 (no shadow{' of ' + rule_id if rule_id else ''}); `yibao rules shadow start`")
        return
    for r in reports:
        sh = r.shadow
        t = Table(title=f"影子运行 {sh.shadow_id} — 规则 {sh.rule_id}：{r.status_zh}，"
                        f"已观察 {r.days_observed}/{sh.days} 天（自 {sh.data_from:%Y-%m-%d}）")
        for c in ("", "现行 live", "拟用 shadow"):
            t.add_column(c, justify="left" if not c else "right")
        t.add_row("命中 hits", f"{r.live_hits:,}", f"{r.shadow_hits:,}")
        t.add_row("涉及金额 元", f"{r.live_amount:,.2f}", f"{r.shadow_amount:,.2f}")
        t.add_row("仅一方命中 only here", f"{r.only_live:,}", f"{r.only_shadow:,}")
        t.add_row("双方命中 both", f"{r.both:,}", f"{r.both:,}")
        console.print(t)
        if r.param_changes:
            console.print("参数变化: " + "；".join(f"{k} {a} → {b}" for k, (a, b) in r.param_changes.items()))
        if r.decided_clues is None:
            console.print("未读取线索库, 未统计已结论线索 (no clue store found: YIBAO_CLUE_DB or data/clues.db)")
        else:
            console.print(f"已结论线索中含该规则命中者 {r.decided_clues} 条；改用拟用版本后不再含其命中者 "
                          f"{r.decided_dropped} 条，其中已查实 {r.confirmed_dropped} 条"
                          + ("（请慎重：拟用版本会漏掉已查实的线索）" if r.confirmed_dropped else ""))
        console.print(f"登记 {sh.created_by} {sh.created_at:%Y-%m-%d %H:%M}；配置 {sh.config_path}"
                      + (f"；说明 {sh.note}" if sh.note else ""))
