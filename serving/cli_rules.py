"""``yibao rules ...``: the 两库 rule pack and the rule engine (build, list, run, evaluate, backtest)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from serving.cli import JSON_OPT, _emit, _fail, console

__all__ = ["rules_app"]

rules_app = typer.Typer(help="两库 rule pack and rule engine (knowledge base / rule base).", no_args_is_help=True)


@rules_app.command("build-pack")
def rules_build_pack(
    source: Path = typer.Option(Path("../shared/reference/liangku"), help="Folder with the 14 两库 spreadsheets."),
    effective_from: str = typer.Option("2024-01-01", help="Effective-from date stamped on every knowledge point."),
    as_json: bool = JSON_OPT,
) -> None:
    """重建两库规则包: rebuild the committed rule pack from the national rule-batch spreadsheets."""
    from models.rules.pack import DEFAULT_PACK, build_pack

    if not source.is_dir():
        _fail(f"两库目录不存在 (rule spreadsheets not found): {source}")
    info = build_pack(source, DEFAULT_PACK, effective_from=effective_from)
    if as_json:
        return _emit(info.to_dict(), True)
    console.print(f"规则包 rule pack {info.version} → {info.path}")
    t = Table(title="知识点 knowledge points per rule kind")
    t.add_column("rule_kind")
    t.add_column("points", justify="right")
    for k, v in info.points_per_rule_kind.items():
        t.add_row(k, f"{v:,}")
    console.print(t)
