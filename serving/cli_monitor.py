"""``yibao monitor`` (监测): rule hit rates, evasion at price caps and model drift, each finding in Chinese."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from serving.cli import JSON_OPT, WAREHOUSE_OPT, _emit, _existing_warehouse, _fail, console
from serving.cli_inspection import BUNDLE_OPT

__all__ = ["monitor_command"]


def monitor_command(
    warehouse: Optional[Path] = WAREHOUSE_OPT,
    bundle: Optional[Path] = BUNDLE_OPT,
    alpha: float = typer.Option(0.01, help="Family-wise false-alarm probability of each family of tests."),
    band: float = typer.Option(0.05, help="'Just under / just over' a price cap: within this share of it."),
    notices: bool = typer.Option(False, "--notices", help="Print the notices (rises in hit rates) as well."),
    as_json: bool = JSON_OPT,
) -> None:
    """监测: per rule and institution, hits per 1,000 settlements by month with a change-point test; prices
    bunching just under a cap; feature and score drift (PSI) of the latest month (docs/monitoring.md)."""
    from models.monitoring import MonitorConfig, monitor

    s = _existing_warehouse(warehouse)
    model = None
    if bundle is not None:
        from models.bundle import ScorerBundle

        if not bundle.is_file():
            _fail(f"模型文件不存在 (bundle not found): {bundle}")
        model = ScorerBundle.load(bundle)
    if not 0 < alpha < 1 or not 0 < band < 1:
        _fail("alpha and band must be between 0 and 1")
    report = monitor(s.warehouse, config=MonitorConfig(alpha=alpha, band=band), bundle=model)
    if as_json:
        return _emit(report.to_dict(), True)
    shown = [f for f in report.findings if notices or f.level == "alarm"]
    months = f"{report.months[0]}–{report.months[-1]}" if report.months else "无完整月份"
    t = Table(title=f"监测 monitoring ({months}; 报警 {len(report.alarms)}, 提示 "
                    f"{len(report.findings) - len(report.alarms)})")
    for c in ("级别", "类别", "发现"):
        t.add_column(c, overflow="fold")
    kinds = {"rule_rate": "规则命中率", "rule_institution": "机构规则命中率", "evasion": "规避限价", "evasion_frequency": "规避限定频次", "unknown_codes": "编码改写",
             "feature_drift": "特征漂移", "score_drift": "评分漂移"}
    for f in shown:
        t.add_row("报警" if f.level == "alarm" else "提示", kinds.get(f.kind, f.kind), f.message_zh)
    console.print(t)
    console.print("检验数 (tests per family): " + ", ".join(f"{k} {v}" for k, v in report.tests.items()))
