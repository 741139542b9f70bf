"""The evaluation report (模型评估报告) as files: ``report.json``, ``report.html`` and PNG plots.

Plots: precision and amount-weighted recall against the number of clues for the combined ranking and
both baselines, recall per typology at the largest capacity, and the calibration curves per level. Labels
are in Chinese with a CJK font (:func:`models.charts.cjk_font`), in English on a machine without one. The
HTML page carries the plots inside it (data URIs), so that it shows them wherever it is opened: MLflow's
artifact view renders an HTML artifact on its own, without the files beside it. Proportions carry their
95 % Wilson interval and ROC-AUCs Hanley and McNeil's: with a handful of labelled positives they are wide.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from jinja2 import Environment, select_autoescape  # noqa: E402

from features.contract import FRAUD_TYPES  # noqa: E402
from models.charts import cjk_font  # noqa: E402
from models.ranking import ENTITY_ZH  # noqa: E402

__all__ = ["write_report", "PLOTS"]

PLOTS = ("precision_at_k.png", "amount_recall_at_k.png", "typology_recall.png", "calibration.png")
RANKING_ZH = {"combined": "综合排序 (模型+规则+图)", "rules_alone": "仅规则", "amount_ranking": "按金额排序"}
_RANKING_EN = {"combined": "combined", "rules_alone": "rules alone", "amount_ranking": "amount ranking"}
FRAUD_ZH = {k: v[0] for k, v in FRAUD_TYPES.items()}


def write_report(report: dict, clues: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Write the report files into ``out_dir``; returns their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    family = cjk_font()
    fonts = {"font.family": [family, "DejaVu Sans"], "axes.unicode_minus": False} if family else {}
    with plt.rc_context(fonts):  # before any figure exists: an axes takes its labels' font when it is made
        paths = [_curve(clues, out_dir / PLOTS[0], "precision"), _curve(clues, out_dir / PLOTS[1], "amount"),
                 _typology(report, out_dir / PLOTS[2]), _calibration(report, out_dir / PLOTS[3])]
    (out_dir / "report.json").write_text(json.dumps(report, ensure_ascii=False, indent=1), encoding="utf-8")
    images = {p.name: "data:image/png;base64," + base64.b64encode(p.read_bytes()).decode("ascii") for p in paths}
    html = _ENV.from_string(_TEMPLATE).render(r=report, ranking_zh=RANKING_ZH, entity_zh=ENTITY_ZH,
                                              fraud_zh=FRAUD_ZH, plots=PLOTS, images=images)
    (out_dir / "report.html").write_text(html, encoding="utf-8")
    return [out_dir / "report.json", out_dir / "report.html", *paths]


def _labels(zh: str, en: str) -> str:
    """A plot label in Chinese where a CJK font is installed (:func:`write_report` draws with it), else in
    English."""
    return en if cjk_font() is None else zh


def _ranking_name(name: str) -> str:
    return _labels(RANKING_ZH[name], _RANKING_EN[name])


def _curve(clues: pd.DataFrame, path: Path, what: str) -> Path:
    fig, ax = plt.subplots(figsize=(6, 4))
    ks = np.unique(np.clip(np.geomspace(10, max(len(clues), 11), 40).astype(int), 1, len(clues)))
    rankings = {"combined": clues,
                "rules_alone": clues.sort_values(["rule_amount", "entity_type", "entity_id"],
                                                 ascending=[False, True, True], kind="mergesort"),
                "amount_ranking": clues.sort_values(["exposure", "entity_type", "entity_id"],
                                                    ascending=[False, True, True], kind="mergesort")}
    for name, r in rankings.items():
        y = r["label"].to_numpy()
        if what == "precision":
            vals = [y[:k].mean() for k in ks]
        else:
            money = r["label_amount"].to_numpy()
            total = money.sum() or 1.0
            vals = [money[:k].sum() / total for k in ks]
        ax.plot(ks, vals, label=_ranking_name(name))
    ax.set_xscale("log")
    ax.set_xlabel(_labels("核查的线索数 k", "clues verified (k)"))
    ax.set_ylabel(_labels("精确率@k", "precision@k") if what == "precision"
                  else _labels("前 k 条线索覆盖的欺诈金额占比", "labelled fraud amount in top k (share)"))
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
        ax.barh(yy + i * 0.27, [rec[n].get(t, 0) for t in types], height=0.27, label=_ranking_name(n))
    ax.set_yticks(yy + 0.27, [_labels(FRAUD_ZH.get(t, t), t) for t in types], fontsize=7)
    ax.set_xlabel(_labels(f"前 {k} 条线索的金额召回", f"amount-weighted recall at {k} clues"))
    ax.legend(fontsize=7, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=3, frameon=False)  # above the bars
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _calibration(report: dict, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=1)
    plotted = False
    for level, rep in report["levels"].items():
        cal = rep.get("calibration") or []
        if cal:
            ax.plot([c["mean_predicted"] for c in cal], [c["observed"] for c in cal], marker="o",
                    label=_labels(ENTITY_ZH.get(level, level), level))
            plotted = True
    ax.set_xlabel(_labels("预测的欺诈概率（分箱均值）", "mean predicted P(fraud)"))
    ax.set_ylabel(_labels("实际欺诈比例", "observed fraud rate"))
    if plotted:  # a region without labels has no calibration to show
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
img{max-width:48%;margin:4px}.n{color:#555;font-size:90%}</style></head><body>
<h1>医保反欺诈模型评估报告</h1>
<p>生成时间 {{ r.generated_at }} · 随机种子 {{ r.config.seed }} · 规则库版本 {{ r.rule_pack_version }}
{% if r.run_id %} · MLflow 运行 {{ r.run_id }}{% endif %}</p>
{% macro ci(v) %}{% if v %}<br><small>[{{ "%.2f"|format(v[0]) }}, {{ "%.2f"|format(v[1]) }}]</small>{% endif %}{% endmacro %}
<h2>线索清单效果（按核查能力取前 k 条）</h2>
{% if not r.rankings.combined.n_fraud_entities and not r.rankings.combined.fraud_money %}
<p><b>本地区没有标注的欺诈（labels 表缺失或为空）：下表无从评估，数字不代表效果。</b>各层级为无监督模型（异常度），
概率未校准；核实线索后用 yibao calibrate 校准，或用其他地区训练的模型筛查。</p>{% endif %}
<p class="n">方括号内为 95% 置信区间（Wilson）：标注的欺诈对象少时区间很宽，数字只能粗看。</p>
<table><tr><th class="l">排序方式</th>{% for k in r.rankings.combined.at %}<th>精确率@{{k}}</th><th>召回率@{{k}}</th>
<th>金额召回@{{k}}</th>{% endfor %}</tr>
{% for name, ev in r.rankings.items() %}<tr><td class="l">{{ ranking_zh[name] }}</td>
{% for k, a in ev.at.items() %}<td>{{ "%.3f"|format(a.precision) }}{{ ci(a.precision_ci) }}</td>
<td>{{ "%.3f"|format(a.recall) }}{{ ci(a.recall_ci) }}</td>
<td>{{ "%.3f"|format(a.amount_recall) }}</td>{% endfor %}</tr>{% endfor %}</table>
<p>欺诈金额合计 {{ "{:,.2f}".format(r.rankings.combined.fraud_money) }} 元；候选对象 {{ r.rankings.combined.n_candidates }} 个，
其中已标注欺诈 {{ r.rankings.combined.n_fraud_entities }} 个。</p>
<h3>综合排序的提升倍数</h3>
<table><tr><th class="l">相对于</th>{% for k in r.rankings.combined.at %}<th>精确率@{{k}}</th><th>金额召回@{{k}}</th>{% endfor %}</tr>
{% for base, l in r.lift.items() %}<tr><td class="l">{{ ranking_zh[base] }}</td>{% for k, v in l.items() %}
<td>{{ v.precision }}</td><td>{{ v.amount_recall }}</td>{% endfor %}</tr>{% endfor %}</table>
{% for p in plots %}<img src="{{ images[p] }}" alt="{{ p }}">{% endfor %}
<h2>各层级模型</h2>
<table><tr><th class="l">层级</th><th class="l">方式</th><th>训练标注欺诈</th><th>评估集标注欺诈</th><th>ROC-AUC [95% 区间]</th><th>PR-AUC</th>
<th class="l">校准</th><th class="l">评估方法</th></tr>
{% for lv, rep in r.levels.items() %}<tr><td class="l">{{ entity_zh.get(lv, lv) }}</td>
<td class="l">{{ "监督 LightGBM" if rep.mode.mode == "supervised" else "无监督 IsolationForest (标注不足)" }}</td>
<td>{{ rep.mode.n_positives }}</td><td>{{ rep.metrics.positives }}</td><td>{{ rep.metrics.roc_auc }}{{ ci(rep.metrics.roc_auc_ci) }}</td>
<td>{{ rep.metrics.pr_auc }}</td>
<td class="l">{{ rep.mode.calibration }}</td><td class="l">{{ rep.evaluation }}</td></tr>{% endfor %}
{% for lv, why in (r.skipped_levels or {}).items() %}<tr><td class="l">{{ entity_zh.get(lv, lv) }}</td>
<td class="l">未训练</td><td colspan="6" class="l">{{ why }}</td></tr>{% endfor %}</table>
<h2>各违规类型的金额召回（前 k 条线索覆盖的该类欺诈金额占比）</h2>
{% set kmax = (r.rankings.combined.at|list)[-1] %}
<table><tr><th class="l" rowspan="2">违规类型</th>{% for name in r.rankings %}
<th colspan="{{ r.rankings[name].at|length }}">{{ ranking_zh[name] }}</th>{% endfor %}</tr>
<tr>{% for name in r.rankings %}{% for k in r.rankings[name].at %}<th>@{{ k }}</th>{% endfor %}{% endfor %}</tr>
{% for t in r.rankings.combined.at[kmax].typology_amount_recall %}<tr><td class="l">{{ fraud_zh.get(t, t) }}</td>
{% for name in r.rankings %}{% for k, a in r.rankings[name].at.items() %}
<td>{{ "%.3f"|format(a.typology_amount_recall.get(t, 0)) }}</td>{% endfor %}{% endfor %}
</tr>{% endfor %}</table>
<h2>排名靠前的线索及原因</h2>
<p class="n">此处的 P(欺诈) 是交叉拟合的分数：每个对象由没有见过它的标注的模型打分，用来诚实地评估排序。
线索页上的 P(欺诈) 来自用全部标注训练的最终模型对同一数据的筛查（yibao screen），因此同一对象的两个数字可以不同。</p>
<table><tr><th>名次</th><th class="l">对象</th><th>P(欺诈)</th><th>涉嫌金额(元)</th><th>期望追回(元)</th><th>标注</th>
<th class="l">主要原因</th></tr>
{% for c in r.top_clues %}<tr><td>{{ c.rank }}</td><td class="l">{{ entity_zh.get(c.entity_type) }} {{ c.entity_id }}</td>
<td>{{ "%.3f"|format(c.p_fraud) }}</td><td>{{ "{:,.2f}".format(c.amount_at_risk) }}</td>
<td>{{ "{:,.2f}".format(c.priority) }}</td><td>{{ "欺诈" if c.label else "—" }}</td>
<td class="l">{{ c.reasons|join("；") }}</td></tr>{% endfor %}</table>
</body></html>
"""
