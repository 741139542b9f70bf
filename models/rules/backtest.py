"""Backtest a proposed rule config against the current one (规则回测) before anyone switches.

Both configs run over the same warehouse, read-only, into temporary hit tables; the report gives, per
rule, the hits and amounts at risk under each config, how many hits only one of them finds (by the
deterministic ``hit_id``), what changed in the rule (enabled, version, thresholds), and — where the
warehouse has labels — precision and recall per typology under each.

>>> diff = RuleDiff("split_admission", "split_admission", "changed", "1", "2", {"max_gap_days": (15, 10)},
...                 current_hits=17, proposed_hits=15, current_amount=100.0, proposed_amount=90.0,
...                 only_current=2, only_proposed=0)
>>> diff.hits_delta, diff.amount_delta
(-2, -10.0)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

from features.warehouse import connect
from models.rules.config import RuleConfig
from models.rules.engine import compute_hits
from models.rules.evaluate import EvalReport, evaluate

__all__ = ["RuleDiff", "BacktestReport", "backtest"]


@dataclass(frozen=True)
class RuleDiff:
    """One rule under the current and the proposed config."""

    rule_id: str
    typology_id: str
    status: str  # same | changed | added | removed | enabled | disabled
    current_version: str | None
    proposed_version: str | None
    param_changes: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    current_hits: int = 0
    proposed_hits: int = 0
    current_amount: float = 0.0
    proposed_amount: float = 0.0
    only_current: int = 0
    only_proposed: int = 0

    @property
    def hits_delta(self) -> int:
        return self.proposed_hits - self.current_hits

    @property
    def amount_delta(self) -> float:
        return round(self.proposed_amount - self.current_amount, 2)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["param_changes"] = {k: list(v) for k, v in self.param_changes.items()}
        return d | {"hits_delta": self.hits_delta, "amount_delta": self.amount_delta}


@dataclass(frozen=True)
class BacktestReport:
    warehouse: str
    current_config: str
    proposed_config: str
    since: str | None
    rules: tuple[RuleDiff, ...]
    current_eval: EvalReport | None = None
    proposed_eval: EvalReport | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"warehouse": self.warehouse, "current_config": self.current_config,
                "proposed_config": self.proposed_config, "since": self.since,
                "rules": [r.to_dict() for r in self.rules],
                "current_eval": self.current_eval.to_dict() if self.current_eval else None,
                "proposed_eval": self.proposed_eval.to_dict() if self.proposed_eval else None}


def backtest(warehouse: Path, current: RuleConfig, proposed: RuleConfig, *, since: datetime | str | None = None,
             progress: Callable[[str, int, int], None] | None = None) -> BacktestReport:
    """Run both configs over *warehouse* (read-only) and diff their hits and amounts per rule."""
    def phase(label: str):
        if progress is None:
            return None
        return lambda rule, done, total: progress(f"{label} {rule}".strip(), done, total)

    with connect(Path(warehouse), read_only=True) as con:
        compute_hits(con, current, "hits_current", since=since, run_id="backtest-current", progress=phase("现行"))
        compute_hits(con, proposed, "hits_proposed", since=since, run_id="backtest-proposed",
                     progress=phase("拟用"))
        counts = {rid: row for rid, *row in con.execute("""
            SELECT coalesce(c.rule_id, p.rule_id) AS rule_id,
                   count(c.hit_id), count(p.hit_id),
                   coalesce(sum(c.amount_at_risk), 0), coalesce(sum(p.amount_at_risk), 0),
                   count(*) FILTER (WHERE p.hit_id IS NULL), count(*) FILTER (WHERE c.hit_id IS NULL)
            FROM hits_current c FULL OUTER JOIN hits_proposed p ON p.hit_id = c.hit_id AND p.rule_id = c.rule_id
            GROUP BY 1""").fetchall()}
        has_labels = bool(con.execute("SELECT 1 FROM duckdb_tables() WHERE table_name = 'labels'").fetchall()) \
            and con.execute("SELECT count(*) FROM labels").fetchall()[0][0] > 0
        evals = (evaluate(warehouse, hits_table="hits_current", con=con),
                 evaluate(warehouse, hits_table="hits_proposed", con=con)) if has_labels else (None, None)
    diffs = []
    cur = {r.id: r for r in current.rules}
    new = {r.id: r for r in proposed.rules}
    for rule_id in list(cur) + [r for r in new if r not in cur]:
        a, b = cur.get(rule_id), new.get(rule_id)
        status = _status(a, b)
        params = {}
        if a and b:
            for k in sorted(set(a.params) | set(b.params)):
                if a.params.get(k) != b.params.get(k):
                    params[k] = (a.params.get(k), b.params.get(k))
        c_hits, p_hits, c_amt, p_amt, only_c, only_p = counts.get(rule_id, (0, 0, 0, 0, 0, 0))
        diffs.append(RuleDiff(
            rule_id=rule_id, typology_id=(b or a).typology_id, status=status,
            current_version=a.version if a else None, proposed_version=b.version if b else None,
            param_changes=params, current_hits=int(c_hits), proposed_hits=int(p_hits),
            current_amount=float(c_amt), proposed_amount=float(p_amt), only_current=int(only_c),
            only_proposed=int(only_p)))
    return BacktestReport(warehouse=str(warehouse), current_config=str(current.path),
                          proposed_config=str(proposed.path), since=str(since) if since else None,
                          rules=tuple(diffs), current_eval=evals[0], proposed_eval=evals[1])


def _status(a, b) -> str:
    if a is None:
        return "added"
    if b is None:
        return "removed"
    if a.enabled != b.enabled:
        return "enabled" if b.enabled else "disabled"
    same = (a.version, dict(a.params), a.severity, a.message_zh, a.basis_zh, a.sql_path, a.typology_id) == \
           (b.version, dict(b.params), b.severity, b.message_zh, b.basis_zh, b.sql_path, b.typology_id)
    return "same" if same else "changed"
