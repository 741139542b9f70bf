"""The evaluation report (模型评估报告) as files: ``report.json``, ``report.html`` and PNG plots.

Plots: precision and amount-weighted recall against the number of clues for the combined ranking and
both baselines, recall per typology at the largest capacity, and the calibration curves per level. Plot
labels are in English (the machine may have no CJK font); the HTML page carries the Chinese labels.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from jinja2 import Environment, select_autoescape  # noqa: E402

from features.contract import FRAUD_TYPES  # noqa: E402
from models.ranking import ENTITY_ZH  # noqa: E402

__all__ = ["write_report", "PLOTS"]

PLOTS = ("precision_at_k.png", "amount_recall_at_k.png", "typology_recall.png", "calibration.png")
RANKING_ZH = {"combined": "综合排序 (模型+规则+图)", "rules_alone": "仅规则", "amount_ranking": "按金额排序"}


def write_report(report: dict, clues: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Write the report files into ``out_dir``; returns their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [_curve(clues, out_dir / PLOTS[0], "precision"), _curve(clues, out_dir / PLOTS[1], "amount"),
             _typology(report, out_dir / PLOTS[2]), _calibration(report, out_dir / PLOTS[3])]
    (out_dir / "report.json").write_text(json.dumps(report, ensure_ascii=False, indent=1), encoding="utf-8")
    html = _ENV.from_string(_TEMPLATE).render(r=report, ranking_zh=RANKING_ZH, entity_zh=ENTITY_ZH,
                                              fraud_zh={k: v[0] for k, v in FRAUD_TYPES.items()}, plots=PLOTS)
    (out_dir / "report.html").write_text(html, encoding="utf-8")
    return [out_dir / "report.json", out_dir / "report.html", *paths]


def _curve(clues: pd.DataFrame, path: Path, what: str) -> Path:
    fig, ax = plt.subplots(figsize=(6, 4))
    ks = np.unique(np.clip(np.geomspace(10, max(len(clues), 11), 40).astype(int), 1, len(clues)))
    rankings = {"combined": clues,
                "rules alone": clues.sort_values(["rule_amount", "entity_type", "entity_id"],
                                                 ascending=[False, True, True], kind="mergesort"),
                "amount ranking": clues.sort_values(["exposure", "entity_type", "entity_id"],
                                                    ascending=[False, True, True], kind="mergesort")}
    for name, r in rankings.items():
        y = r["label"].to_numpy()
        if what == "precision":
            vals = [y[:k].mean() for k in ks]
        else:
            money = r["label_amount"].to_numpy()
            total = money.sum() or 1.0
            vals = [money[:k].sum() / total for k in ks]
        ax.plot(ks, vals, label=name)
    ax.set_xscale("log")
    ax.set_xlabel("clues verified (k)")
    ax.set_ylabel("precision@k" if what == "precision" else "labelled fraud amount in top k (share)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _typology(report: dict, path: Path) -> Path:
    k = str(max(int(x) for x in report["rankings"]["combined"]["at"]))
    rec = {n: report["rankings"][n]["at"][k]["typology_amount_recall"] for n in report["rankings"]}
    types = sorted(rec["combined"])
    fig, ax = plt.subplots(figsize=(7, max(3, 0.28 * len(types))))
    yy = np.arange(len(types))
    for i, n in enumerate(rec):
        ax.barh(yy + i * 0.27, [rec[n].get(t, 0) for t in types], height=0.27, label=n)
    ax.set_yticks(yy + 0.27, types, fontsize=7)
    ax.set_xlabel(f"amount-weighted recall at {k} clues")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _calibration(report: dict, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=1)
    for level, rep in report["levels"].items():
        cal = rep.get("calibration") or []
        if cal:
            ax.plot([c["mean_predicted"] for c in cal], [c["observed"] for c in cal], marker="o", label=level)
    ax.set_xlabel("mean predicted P(fraud)")
    ax.set_ylabel("observed fraud rate")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


_ENV = Environment(autoescape=select_autoescape(default=True, default_for_string=True))
_TEMPLATE = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>模型评估报告 {{ r.generated_at }}</title>
<style>body{font-family:sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse;margin:1em 0}
td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}th{background:#f3f3f3}td.l,th.l{text-align:left}
img{max-width:48%;margin:4px}</style></head><body>
<h1>医保反欺诈模型评估报告</h1>
<p>生成时间 {{ r.generated_at }} · 随机种子 {{ r.config.seed }} · 规则库版本 {{ r.rule_pack_version }}
{% if r.run_id %} · MLflow run {{ r.run_id }}{% endif %}</p>
<h2>线索清单效果 (clue list at investigator capacity)</h2>
<table><tr><th class="l">排序方式</th>{% for k in r.rankings.combined.at %}<th>精确率@{{k}}</th><th>召回率@{{k}}</th>
<th>金额召回@{{k}}</th>{% endfor %}</tr>
{% for name, ev in r.rankings.items() %}<tr><td class="l">{{ ranking_zh[name] }}</td>
{% for k, a in ev.at.items() %}<td>{{ "%.3f"|format(a.precision) }}</td><td>{{ "%.3f"|format(a.recall) }}</td>
<td>{{ "%.3f"|format(a.amount_recall) }}</td>{% endfor %}</tr>{% endfor %}</table>
<p>欺诈金额合计 {{ "{:,.2f}".format(r.rankings.combined.fraud_money) }} 元；候选对象 {{ r.rankings.combined.n_candidates }} 个，
其中已标注欺诈 {{ r.rankings.combined.n_fraud_entities }} 个。</p>
<h3>提升 (lift of the combined ranking)</h3>
<table><tr><th class="l">相对于</th>{% for k in r.rankings.combined.at %}<th>精确率@{{k}}</th><th>金额召回@{{k}}</th>{% endfor %}</tr>
{% for base, l in r.lift.items() %}<tr><td class="l">{{ ranking_zh[base] }}</td>{% for k, v in l.items() %}
<td>{{ v.precision }}</td><td>{{ v.amount_recall }}</td>{% endfor %}</tr>{% endfor %}</table>
{% for p in plots %}<img src="{{ p }}" alt="{{ p }}">{% endfor %}
<h2>各层级模型 (per level)</h2>
<table><tr><th class="l">层级</th><th class="l">方式</th><th>标注欺诈</th><th>ROC-AUC</th><th>PR-AUC</th>
<th class="l">校准</th><th class="l">评估方法</th></tr>
{% for lv, rep in r.levels.items() %}<tr><td class="l">{{ entity_zh.get(lv, lv) }} ({{ lv }})</td>
<td class="l">{{ "监督 LightGBM" if rep.mode.mode == "supervised" else "无监督 IsolationForest (标注不足)" }}</td>
<td>{{ rep.mode.n_positives }}</td><td>{{ rep.metrics.roc_auc }}</td><td>{{ rep.metrics.pr_auc }}</td>
<td class="l">{{ rep.mode.calibration }}</td><td class="l">{{ rep.evaluation }}</td></tr>{% endfor %}</table>
<h2>各违规类型金额召回 (recall per typology)</h2>
{% set kmax = (r.rankings.combined.at|list)[-1] %}
<table><tr><th class="l">类型</th>{% for name in r.rankings %}<th>{{ ranking_zh[name] }} @{{ kmax }}</th>{% endfor %}</tr>
{% for t, v in r.rankings.combined.at[kmax].typology_amount_recall.items() %}<tr><td class="l">{{ fraud_zh.get(t, t) }} ({{ t }})</td>
{% for name in r.rankings %}<td>{{ "%.3f"|format(r.rankings[name].at[kmax].typology_amount_recall.get(t, 0)) }}</td>{% endfor %}
</tr>{% endfor %}</table>
<h2>排名靠前的线索及原因 (top clues and their reasons)</h2>
<table><tr><th>名次</th><th class="l">对象</th><th>P(欺诈)</th><th>涉嫌金额(元)</th><th>期望追回(元)</th><th>标注</th>
<th class="l">主要原因</th></tr>
{% for c in r.top_clues %}<tr><td>{{ c.rank }}</td><td class="l">{{ entity_zh.get(c.entity_type) }} {{ c.entity_id }}</td>
<td>{{ "%.3f"|format(c.p_fraud) }}</td><td>{{ "{:,.2f}".format(c.amount_at_risk) }}</td>
<td>{{ "{:,.2f}".format(c.priority) }}</td><td>{{ "欺诈" if c.label else "—" }}</td>
<td class="l">{{ c.reasons|join("；") }}</td></tr>{% endfor %}</table>
</body></html>
"""
