"""``yibao clues ...``, ``yibao users ...``, ``yibao labels ...``: the clue store (线索库) at a terminal.

Which store: ``--db URL`` when given, else ``Settings.clue_db`` (env ``YIBAO_CLUE_DB`` or ``clue_db`` in
``yibao.toml``), else ``sqlite:///<warehouse folder>/clues.db``. Who acts: ``--user NAME`` acts as that
account (its role and region apply); without it the terminal's operator acts as ``cli:<login>`` with
the admin role, since whoever can run this command can open the database anyway. Every read and move is
audited under that name.
"""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Optional

import click
import typer
from rich.console import Console
from rich.table import Table

from serving.cli import JSON_OPT, WAREHOUSE_OPT, _emit, _fail, _settings
from serving.cli import console as _narrow
from serving.clues.models import RISK_LEVELS

console = _narrow if _narrow.is_terminal else Console(stderr=True, width=200)

__all__ = ["clues_app", "users_app", "labels_app"]

clues_app = typer.Typer(help="线索库 clue store: list, show, move, comment, statistics, overdue.", no_args_is_help=True)
users_app = typer.Typer(help="用户 users of the clue store and service (roles, regions, tokens).", no_args_is_help=True)
labels_app = typer.Typer(help="标签 labels from verified clues, for retraining.", no_args_is_help=True)

DB_OPT = typer.Option(None, "--db", help="Clue store URL (sqlite:///path or postgresql+psycopg://...). Default: "
                      "YIBAO_CLUE_DB, else clues.db beside the warehouse.")
USER_OPT = typer.Option(None, "--user", "-u", help="Act as this user (role and region apply). Default: the terminal "
                        "operator as admin.")
RISK_STYLE = {"high": "red", "medium": "yellow", "low": "green"}


@clues_app.command("list")
def clues_list(
    state: Optional[str] = typer.Option(None, help="Only this state: new, assigned, verifying, confirmed, dismissed, "
                                        "transferred_police, transferred_discipline, transferred_health, closed."),
    entity_type: Optional[str] = typer.Option(None, "--type", help="Only this entity type: psn, prac, fixmedins, "
                                              "pharmacy, ring."),
    typology: Optional[str] = typer.Option(None, help="Only clues of this typology id (e.g. fake_treatment)."),
    source: Optional[str] = typer.Option(None, help="Only clues from this source: model, rule, graph, report, referral."),
    region: Optional[str] = typer.Option(None, help="Only this region (admdvs prefix)."),
    min_priority: Optional[float] = typer.Option(None, help="Only clues with priority at least this (元)."),
    overdue: bool = typer.Option(False, "--overdue", help="Only clues still open past their deadline (核查期限)."),
    risk: Optional[str] = typer.Option(None, "--risk", help="Only this risk level: high, medium, low."),
    min_amount: Optional[float] = typer.Option(None, help="Only clues with an amount at risk of at least this (元)."),
    max_amount: Optional[float] = typer.Option(None, help="Only clues with an amount at risk of at most this (元)."),
    assignee: Optional[str] = typer.Option(None, help="Only clues assigned to this user (我的线索: your own)."),
    search: Optional[str] = typer.Option(None, "--search", "-q", help="Part of the entity code or name."),
    sort: str = typer.Option("priority", help="priority (default), age (oldest first), amount, p_fraud, due, region, "
                             "state, assignee or id."),
    order: Optional[str] = typer.Option(None, help="asc or desc (default: the sort's natural order)."),
    limit: int = typer.Option(20, help="How many clues."),
    offset: int = typer.Option(0, help="Skip this many first (paging)."),
    db: Optional[str] = DB_OPT,
    user: Optional[str] = USER_OPT,
    warehouse: Optional[Path] = WAREHOUSE_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """线索清单: the ranked clue list (priority = P(fraud) × amount at risk), with filters."""
    store, actor = _open(db, warehouse, user)
    page = _call(store.list, actor, state=state, entity_type=entity_type, typology=typology, source=source,
                 region=region, min_priority=min_priority, overdue=True if overdue else None, risk_level=risk,
                 min_amount=min_amount, max_amount=max_amount, assignee=assignee, q=search, sort=sort, order=order,
                 limit=limit, offset=offset)
    if as_json:
        return _emit(page, True)
    t = Table(title=f"线索清单 clues ({len(page['items'])} / {page['total']})")
    for c in ("编号 ID", "优先级 priority", "实体 entity", "名称 name", "地区 region", "风险 risk", "违规类型 typology",
              "来源 source", "状态 state", "承办人 assignee", "涉及金额 at risk (元)", "天数 age"):
        t.add_column(c, justify="right" if c.startswith(("编号", "优先级", "涉及", "天数")) else "left",
                     overflow="fold")
    for c in page["items"]:
        risk = f"[{RISK_STYLE[c['risk_level']]}]{c['risk_level_zh']}[/]" + (" [red]逾期[/]" if c["overdue"] else "")
        t.add_row(str(c["id"]), f"{c['priority']:,.2f}", c["clue_key"], c["entity_name"] or "", c["region"] or "",
                  risk, "、".join(c["typologies_zh"]), "、".join(c["sources_zh"]), c["state_zh"], c["assignee"] or "",
                  f"{c['amount_at_risk']:,.2f}", str(c["age_days"]))
    console.print(t)


@clues_app.command("show")
def clues_show(
    clue_id: int = typer.Argument(..., help="Clue number (编号)."),
    db: Optional[str] = DB_OPT,
    user: Optional[str] = USER_OPT,
    warehouse: Optional[Path] = WAREHOUSE_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """线索详情: one clue with its reasons, rule hits, evidence, history and comments (audited)."""
    store, actor = _open(db, warehouse, user)
    c = _call(store.get, clue_id, actor)
    if as_json:
        return _emit(c, True)
    _print_detail(c)


@clues_app.command("move")
def clues_move(
    clue_id: int = typer.Argument(..., help="Clue number (编号)."),
    state: str = typer.Argument(..., help="Target state (e.g. assigned, verifying, confirmed, dismissed, "
                                "transferred_police, closed)."),
    reason: Optional[str] = typer.Option(None, "--reason", "-r", help="Why (理由); required to dismiss."),
    amount: Optional[float] = typer.Option(None, "--amount", help="Confirmed amount (查实金额, 元); required to confirm."),
    recovered: Optional[float] = typer.Option(None, "--recovered", help="Recovered amount (追回金额, 元)."),
    assignee: Optional[str] = typer.Option(None, "--assignee", help="Investigator to assign (default: the acting user)."),
    db: Optional[str] = DB_OPT,
    user: Optional[str] = USER_OPT,
    warehouse: Optional[Path] = WAREHOUSE_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """流转: move a clue to another workflow state, recording who, when and why."""
    store, actor = _open(db, warehouse, user)
    c = _call(store.transition, clue_id, state, actor, reason, confirmed_amount=amount, recovered_amount=recovered,
              assignee=assignee)
    if as_json:
        return _emit(c, True)
    last = c["transitions"][-1]
    console.print(f"线索 #{c['id']} ({c['clue_key']}): {_state_zh(last['from_state'])} → [bold]{c['state_zh']}[/bold] "
                  f"({last['actor']}, {last['at']})")
    if c["allowed_transitions"]:
        console.print("下一步可转到 next: " + ", ".join(f"{m['state_zh']} {m['state']}" for m in c["allowed_transitions"]))


@clues_app.command("comment")
def clues_comment(
    clue_id: int = typer.Argument(..., help="Clue number (编号)."),
    text: str = typer.Argument(..., help="The comment (核查意见); resident IDs in it are masked."),
    db: Optional[str] = DB_OPT,
    user: Optional[str] = USER_OPT,
    warehouse: Optional[Path] = WAREHOUSE_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """评论: add a comment to a clue."""
    store, actor = _open(db, warehouse, user)
    row = _call(store.comment, clue_id, actor, text)
    if as_json:
        return _emit(row, True)
    console.print(f"已添加评论 comment #{row['id']} on clue #{clue_id}")


@clues_app.command("outcome")
def clues_outcome(
    clue_id: int = typer.Argument(..., help="Clue number (编号) of a clue transferred to public security."),
    outcome: str = typer.Argument(..., help="accepted (受理), filed (立案), not_filed (不立案) or returned (退回)."),
    on: str = typer.Option(..., "--date", help="Date of public security's decision, YYYY-MM-DD."),
    doc_no: str = typer.Option(..., "--doc", help="Its document number (文书号)."),
    note: Optional[str] = typer.Option(None, "--note", help="A note (说明)."),
    db: Optional[str] = DB_OPT,
    user: Optional[str] = USER_OPT,
    warehouse: Optional[Path] = WAREHOUSE_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """公安反馈: record what public security did with a transferred clue (liaison or admin; audited)."""
    from datetime import date

    try:
        when = date.fromisoformat(on)
    except ValueError:
        _fail(f"--date 须为 YYYY-MM-DD 格式的日期 (not a date): {on!r}")
    store, actor = _open(db, warehouse, user)
    c = _call(store.record_referral_outcome, clue_id, actor, outcome, when, doc_no, note)
    if as_json:
        return _emit(c, True)
    console.print(f"线索 #{c['id']} ({c['clue_key']}): 公安反馈 [bold]{c['referral_outcome_zh']}[/bold] "
                  f"{c['referral_outcome_date']} {c['referral_doc_no']}")


@clues_app.command("stats")
def clues_stats(
    db: Optional[str] = DB_OPT,
    user: Optional[str] = USER_OPT,
    warehouse: Optional[Path] = WAREHOUSE_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """统计: clues and amounts by state, source, typology, region and age; 清仓见底 progress."""
    store, actor = _open(db, warehouse, user)
    st = _call(store.statistics, actor)
    if as_json:
        return _emit(st, True)
    share = "—" if st["share_cleared"] is None else f"{st['share_cleared']:.1%}"
    console.print(f"线索 {st['total']:,} 条, 未办 open {st['open']:,}, 已清 cleared {st['cleared']:,} "
                  f"(清仓见底 {share}), 逾期 overdue {st['overdue']:,}; 涉及金额 {st['amount_at_risk']:,.2f} 元, "
                  f"查实 {st['confirmed_amount']:,.2f} 元, 追回 {st['recovered_amount']:,.2f} 元")
    referral = ", ".join(f"{b['label_zh']} {b['count']}" for b in st["by_referral_outcome"].values())
    console.print(f"移送公安反馈 police outcomes: {referral} (待最终反馈 awaiting a final outcome "
                  f"{st['awaiting_referral_outcome']})")
    groups = (("按状态 by state", "by_state", True), ("按来源 by source", "by_source", True),
              ("按违规类型 by typology", "by_typology", True), ("按地区 by region", "by_region", False),
              ("按线索天数 by age (days)", "by_age", False))
    for title, key, has_label in groups:
        rows = {k: v for k, v in st[key].items() if v["count"] or key == "by_age"}
        if not rows:
            continue
        t = Table(title=title)
        cols = ["分组 group"] + (["中文"] if has_label else []) + ["线索 clues", "涉及金额 at risk", "查实 confirmed",
                                                                   "追回 recovered"]
        cols += ["未办 open"] if key == "by_age" else []
        for c in cols:
            t.add_column(c, justify="left" if c in ("分组 group", "中文") else "right")
        for k, v in rows.items():
            cells = [k or "—"] + ([v["label_zh"]] if has_label else []) + [
                f"{v['count']:,}", f"{v['amount_at_risk']:,.2f}", f"{v['confirmed_amount']:,.2f}",
                f"{v['recovered_amount']:,.2f}"]
            cells += [f"{v['open']:,}"] if key == "by_age" else []
            t.add_row(*cells)
        console.print(t)


@clues_app.command("overdue")
def clues_overdue(
    db: Optional[str] = DB_OPT,
    user: Optional[str] = USER_OPT,
    warehouse: Optional[Path] = WAREHOUSE_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """逾期线索: clues not verified within their deadline (核查期限, per risk level), each with a cross-checker
    (交叉检查) to offer."""
    store, actor = _open(db, warehouse, user)
    late = _call(store.overdue, actor)
    if as_json:
        return _emit({"sla_days": store.sla_days, "sla_days_by_risk": store.sla_days_by_risk, "overdue": late}, True)
    days = ", ".join(f"{RISK_LEVELS[k]} {v}" for k, v in store.sla_days_by_risk.items())
    t = Table(title=f"逾期线索 overdue clues (核查期限 天: {days}): {len(late)}")
    for c in ("编号 ID", "实体 entity", "地区 region", "风险 risk", "状态 state", "承办人 assignee", "逾期天数 days late",
              "建议交叉检查 cross-check by"):
        t.add_column(c, justify="right" if c.startswith(("编号", "逾期")) else "left")
    for c in late:
        x = c["cross_check"]
        t.add_row(str(c["id"]), c["clue_key"], c["region"] or "", c["risk_level_zh"], c["state_zh"], c["assignee"] or "",
                  str(c["overdue_days"]), "—" if x is None else f"{x['username']} ({x['region']})")
    console.print(t)


@users_app.command("add")
def users_add(
    name: str = typer.Argument(..., help="Username."),
    role: str = typer.Option(..., "--role", help="analyst (分析员), investigator (核查人员), liaison (公安联络员) or admin."),
    region: str = typer.Option("", "--region", help="admdvs prefix the user works in (required for investigators)."),
    db: Optional[str] = DB_OPT,
    user: Optional[str] = USER_OPT,
    warehouse: Optional[Path] = WAREHOUSE_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """新增用户: create an account and print its token once (only a hash of it is kept). Creates the clue store
    if it does not exist yet, and says which store it wrote to."""
    store, actor = _open(db, warehouse, user, create=True)
    token = _call(store.create_user, name, role, region, actor)
    if as_json:
        return _emit({"username": name, "role": role, "region": region, "token": token}, True)
    console.print(f"已创建用户 user created: {name} ({role}, region {region or 'all'})")
    console.print("令牌只显示这一次, 请妥善保存 (the token is shown once; keep it safe):")
    typer.echo(token)


@users_app.command("disable")
def users_disable(
    name: str = typer.Argument(..., help="Username."),
    db: Optional[str] = DB_OPT,
    user: Optional[str] = USER_OPT,
    warehouse: Optional[Path] = WAREHOUSE_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """停用用户: the account's token is refused from its next request on (audited)."""
    _set_active(name, False, db, user, warehouse, as_json,
                f"已停用用户 user disabled: {name} (其令牌立即失效 its token is refused at once)")


@users_app.command("enable")
def users_enable(
    name: str = typer.Argument(..., help="Username."),
    db: Optional[str] = DB_OPT,
    user: Optional[str] = USER_OPT,
    warehouse: Optional[Path] = WAREHOUSE_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """启用用户: a disabled account works again with the token it had (audited)."""
    _set_active(name, True, db, user, warehouse, as_json, f"已启用用户 user enabled: {name}")


def _set_active(name: str, active: bool, db, user, warehouse, as_json: bool, said: str) -> None:
    store, actor = _open(db, warehouse, user)
    _call(store.set_active, name, active, actor)
    if as_json:
        return _emit({"username": name, "active": active}, True)
    console.print(said)


@users_app.command("rotate-token")
def users_rotate_token(
    name: str = typer.Argument(..., help="Username."),
    db: Optional[str] = DB_OPT,
    user: Optional[str] = USER_OPT,
    warehouse: Optional[Path] = WAREHOUSE_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """更换令牌: a new token, printed once; the old one is refused from its next request on (audited)."""
    store, actor = _open(db, warehouse, user)
    token = _call(store.reset_token, name, actor)
    if as_json:
        return _emit({"username": name, "token": token}, True)
    console.print(f"已更换令牌 token rotated: {name}; 旧令牌立即失效 (the old token is refused at once)")
    console.print("新令牌只显示这一次, 请妥善保存 (the new token is shown once; keep it safe):")
    typer.echo(token)


@users_app.command("list")
def users_list(
    db: Optional[str] = DB_OPT,
    user: Optional[str] = USER_OPT,
    warehouse: Optional[Path] = WAREHOUSE_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """用户列表: accounts with role, region and whether active (never tokens); for admins, audited."""
    store, actor = _open(db, warehouse, user)
    users = _call(store.list_users, actor)
    if as_json:
        return _emit({"users": users}, True)
    t = Table(title="用户 users")
    for c in ("用户名 username", "角色 role", "中文", "地区 region", "启用 active", "创建 created"):
        t.add_column(c)
    for u in users:
        t.add_row(u["username"], u["role"], u["role_zh"], u["region"] or "全部 all", "是" if u["active"] else "否",
                  u["created_at"])
    console.print(t)


@labels_app.command("export")
def labels_export(
    out: Path = typer.Option(..., "--out", "-o", help="A .csv or .parquet file, or a folder (gets labels.parquet). "
                             "Load it with `yibao ingest FOLDER`."),
    db: Optional[str] = DB_OPT,
    user: Optional[str] = USER_OPT,
    warehouse: Optional[Path] = WAREHOUSE_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """导出标签: verified clue outcomes (查实 1 / 排除 0) as rows of the labels table, for retraining."""
    store, actor = _open(db, warehouse, user)
    summary = _call(store.export_labels, out, actor)
    if as_json:
        return _emit(summary, True)
    console.print(f"已导出标签 labels exported: {summary['rows']:,} 行 (阳性 positives {summary['positives']:,}, "
                  f"阴性 negatives {summary['negatives']:,}) from {summary['clues']:,} clues → {summary['path']}")
    if summary["skipped_without_typology"]:
        console.print(f"[yellow]注意:[/yellow] {summary['skipped_without_typology']} 条线索没有违规类型, 未导出 "
                      "(clues without a typology cannot be labels)")
    folder = Path(summary["path"]).parent
    console.print(f"重新训练前导入 load before retraining: yibao ingest {folder}")


# -- private ----------------------------------------------------------------------------------------


def _state_zh(state: str) -> str:
    from serving.clues.workflow import STATES

    return STATES.get(state, state)


def _open(db: Optional[str], warehouse: Optional[Path], username: Optional[str], *, create: bool = False):
    """The store and the acting user, or a clear error. Says which store it opened (on stderr). A SQLite
    store that does not exist is an error (a mistyped path must not make an empty store and an empty
    answer) unless ``create`` (``yibao users add``: the first users come before the first screening)."""
    from sqlalchemy.exc import SQLAlchemyError
    from sqlalchemy.engine import make_url

    from serving.clues.access import User
    from serving.clues.store import open_store

    s = _settings(warehouse)
    url = db or s.clue_db_url
    try:
        parsed = make_url(url)
        shown = parsed.render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001  (any unparsable URL)
        _fail(f"线索库地址无效 (invalid clue store URL): {url!r}")
    sqlite_file = parsed.database if parsed.get_backend_name() == "sqlite" else None
    if sqlite_file and sqlite_file != ":memory:" and not Path(sqlite_file).is_file() and not create:
        _fail(f"线索库不存在 (no clue store): {sqlite_file} — 请先运行 yibao screen 或 yibao demo，或用 --db / "
              "YIBAO_CLUE_DB 指向服务所用的线索库 (run `yibao screen` first, or point --db at the service's store)")
    console.print(f"[dim]线索库 clue store: {shown}[/dim]")
    try:
        store = open_store(url, sla_days=s.clue_sla_days_by_risk, identity_vault=Path(s.identity_vault))
    except (SQLAlchemyError, OSError) as e:
        _fail(f"无法打开线索库 (cannot open clue store) {shown}: {str(e).splitlines()[0]}")
    ctx = click.get_current_context(silent=True)
    if ctx is not None:
        ctx.call_on_close(store.close)
    if username is None:
        return store, User(f"cli:{_login()}", "admin")
    actor = store.user(username)
    if actor is None:
        _fail(f"用户不存在或已停用 (no such active user): {username}")
    return store, actor


def _call(fn, *args, **kwargs):
    """Run a store method; turn the store's refusals into clear errors."""
    from serving.clues import AccessDenied, ClueNotFound, IllegalTransition, UserError

    try:
        return fn(*args, **kwargs)
    except (IllegalTransition, ClueNotFound, AccessDenied, UserError, ValueError, FileNotFoundError) as e:
        _fail(str(e))


def _login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _print_detail(c: dict) -> None:
    t = Table(title=f"线索 #{c['id']} {c['clue_key']}", show_header=False)
    t.add_column("字段", style="bold")
    t.add_column("值", overflow="fold")
    overdue = " [red]逾期 overdue[/red]" if c["overdue"] else ""
    rows = [
        ("实体 entity", f"{c['entity_type_zh']} {c['entity_id']} {c['entity_name'] or ''}"),
        ("地区 region", c["region"] or ""),
        ("状态 state", f"{c['state_zh']} ({c['state']})" + overdue),
        ("承办人 assignee", c["assignee"] or ""),
        ("优先级 priority", f"{c['priority']:,.2f} = P(fraud) {c['p_fraud']:.3f} × 涉及金额 {c['amount_at_risk']:,.2f} 元"),
        ("风险 risk", c["risk_level_zh"]),
        ("违规类型 typologies", "、".join(f"{zh} ({t})" for zh, t in zip(c["typologies_zh"], c["typologies"]))),
        ("来源 sources", "、".join(c["sources_zh"])),
        ("查实金额 confirmed", "" if c["confirmed_amount"] is None else f"{c['confirmed_amount']:,.2f}"),
        ("追回金额 recovered", "" if c["recovered_amount"] is None else f"{c['recovered_amount']:,.2f}"),
        ("时间 dates", f"创建 {c['created_at']}, 更新 {c['updated_at']}, 期限 due {c['due_at'] or '—'}"),
        ("筛查批次 runs", f"{c['first_seen_run']} … {c['last_seen_run']}"),
    ]
    for k, v in rows:
        t.add_row(k, v)
    console.print(t)
    if c["reasons"]:
        t = Table(title="原因 reasons")
        for col in ("说明 reason", "特征 feature", "值 value", "同类 peers", "贡献 contribution"):
            t.add_column(col, overflow="fold")
        for r in c["reasons"]:
            t.add_row(str(r.get("text_zh", "")), str(r.get("feature", "")), str(r.get("value", "")),
                      str(r.get("peer_value", "")), str(r.get("contribution", "")))
        console.print(t)
    if c["rule_hits"]:
        t = Table(title="规则命中 rule hits")
        keys = list(dict.fromkeys(k for h in c["rule_hits"] for k in h))
        for k in keys:
            t.add_column(k, overflow="fold")
        for h in c["rule_hits"]:
            t.add_row(*[str(h.get(k, "")) for k in keys])
        console.print(t)
    if c["evidence"]:
        console.print("证据 evidence: " + "; ".join(
            f"{k} ({len(v)}): {', '.join(map(str, v[:10]))}{' …' if len(v) > 10 else ''}" if isinstance(v, list)
            else f"{k}: {v}" for k, v in c["evidence"].items()))
    if c["transitions"]:
        t = Table(title="流转记录 history")
        for col in ("时间 at", "从 from", "到 to", "操作人 actor", "理由 reason", "金额 amounts"):
            t.add_column(col, overflow="fold")
        for x in c["transitions"]:
            amounts = ", ".join(f"{k} {x[k]:,.2f}" for k in ("confirmed_amount", "recovered_amount") if k in x)
            t.add_row(x["at"], _state_zh(x["from_state"]), x["to_state_zh"], f"{x['actor']} ({x['role']})",
                      x["reason"] or "", amounts)
        console.print(t)
    for m in c["comments"]:
        console.print(f"[bold]{m['actor']}[/bold] {m['at']}: {m['text']}")
    if c["allowed_transitions"]:
        console.print("可转到 next: " + ", ".join(f"{m['state_zh']} {m['state']}" for m in c["allowed_transitions"]))
