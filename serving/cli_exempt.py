"""``yibao rules exempt ...``: exemptions (白名单) of known false matches, with reason, approver and expiry.

See ``models/rules/exemptions.py``: hits an exemption covers are set aside (``rule_hits_exempted``) at every
rule run while it is in force; every change is logged in ``rule_exemption_log``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from serving.cli import JSON_OPT, WAREHOUSE_OPT, _emit, _fail, _settings, console

__all__ = ["exempt_app"]

exempt_app = typer.Typer(help="白名单 exemptions: known false matches set aside with reason, approver, expiry.",
                         no_args_is_help=True)


def _warehouse(warehouse: Optional[Path]) -> Path:
    s = _settings(warehouse)
    if not s.warehouse.is_file():
        _fail(f"仓库不存在 (warehouse not found): {s.warehouse}; run `yibao ingest` first")
    return s.warehouse


@exempt_app.command("add")
def exempt_add(
    scope: str = typer.Option(..., help="psn_no | fixmedins_code | prac_code | setl_id | mdtrt_id | bkkp_sn | "
                                        "hilist_code: what is exempted."),
    value: str = typer.Option(..., help="The person, institution, doctor, settlement, visit, fee line or code."),
    reason: str = typer.Option(..., help="Why this is not a violation (核实结论)."),
    by: str = typer.Option(..., "--by", help="Who asks for it (申请人)."),
    approver: str = typer.Option(..., help="Who approved it (审批人; another person)."),
    expires: str = typer.Option(..., help="Last day it is in force, YYYY-MM-DD."),
    rule: Optional[str] = typer.Option(None, help="Only this rule (with --scope fixmedins_code: a rule × "
                                                  "institution pair). Default: every rule."),
    warehouse: Optional[Path] = WAREHOUSE_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """登记豁免: exempt an entity, a code or a rule × institution pair until a date."""
    from models.rules.config import load_config
    from models.rules.exemptions import ExemptionError, add_exemption

    wh = _warehouse(warehouse)
    try:
        e = add_exemption(wh, scope=scope, value=value, reason=reason, created_by=by, approved_by=approver,
                          expires_on=expires, rule_id=rule, known_rules={r.id for r in load_config().rules})
    except ExemptionError as exc:
        _fail(str(exc))
    if as_json:
        return _emit(e.to_dict(), True)
    console.print(f"已登记豁免 exemption {e.exemption_id}: 规则 {e.rule_id or '全部'}，{e.to_dict()['scope_zh']} "
                  f"{e.value}，至 {e.expires_on}（审批 {e.approved_by}）。下次 `yibao rules run` 起生效。仓库 {wh}")


@exempt_app.command("list")
def exempt_list(
    all_: bool = typer.Option(False, "--all", help="Also the expired and revoked ones."),
    warehouse: Optional[Path] = WAREHOUSE_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """豁免清单: the exemptions in force (with --all: every one ever recorded)."""
    from models.rules.exemptions import list_exemptions

    wh = _warehouse(warehouse)
    items = list_exemptions(wh, include_ended=all_)
    if as_json:
        return _emit({"warehouse": str(wh), "exemptions": [e.to_dict() for e in items]}, True)
    t = Table(title=f"豁免 exemptions — {wh}")
    for c in ("编号 id", "规则 rule", "对象 scope", "到期 expires", "理由 reason"):
        t.add_column(c)
    for e in items:
        state = f"{e.expires_on}" + (" 已撤销" if e.revoked_at else "")
        t.add_row(e.exemption_id, e.rule_id or "全部", f"{e.to_dict()['scope_zh']} {e.value}", state,
                  f"{e.reason}（{e.created_by}/{e.approved_by}）")
    console.print(t)


@exempt_app.command("revoke")
def exempt_revoke(
    exemption_id: str = typer.Argument(..., help="The exemption's id (yibao rules exempt list)."),
    by: str = typer.Option(..., "--by", help="Who revokes it."),
    reason: str = typer.Option(..., help="Why."),
    warehouse: Optional[Path] = WAREHOUSE_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """撤销豁免: end an exemption now; the next rule run finds its hits again."""
    from models.rules.exemptions import ExemptionError, revoke_exemption

    wh = _warehouse(warehouse)
    try:
        e = revoke_exemption(wh, exemption_id, revoked_by=by, reason=reason)
    except ExemptionError as exc:
        _fail(str(exc))
    if as_json:
        return _emit(e.to_dict(), True)
    console.print(f"已撤销豁免 {e.exemption_id}（{e.revoked_by}，{e.revoked_at}）。仓库 {wh}")
