"""The report in Chinese (案件报告): HTML with the graph drawn (PNG by matplotlib), and PDF by headless Chromium.

The PDF needs Debian's ``chromium`` and a CJK font (``fonts-noto-cjk`` or ``fonts-wqy-zenhei``); without
Chromium :func:`render_pdf` returns why it was skipped and the package keeps the HTML only (the manifest
says so).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import networkx as nx
from jinja2 import Environment, select_autoescape

from models.charts import cjk_font

__all__ = ["draw_graph", "node_label", "labelled_nodes", "write_html", "render_pdf", "chromium_path",
           "NODE_COLOURS", "NODE_ZH"]

NODE_COLOURS = {"person": "#d62728", "doctor": "#1f77b4", "institution": "#2ca02c", "pharmacy": "#ff7f0e"}
NODE_ZH = {"person": "参保人", "doctor": "医师", "institution": "医疗机构", "pharmacy": "零售药店"}
_FONTS = '"Noto Sans CJK SC", "WenQuanYi Zen Hei", "Microsoft YaHei", sans-serif'


def draw_graph(g: nx.MultiDiGraph, path: Path, *, seed: int = 0, max_labels: int = 30) -> Path:
    """The case graph as a PNG: nodes coloured by type (:data:`NODE_COLOURS`), seeds outlined and larger,
    co-visit ties in purple, nodes named by :func:`node_label`.

    A graph of more than ``max_labels`` nodes labels only the seeds and then the most connected nodes, up
    to ``max_labels``; a label that would overlap one already drawn is moved beside its node or left out.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    family = cjk_font()
    simple = nx.Graph(g.to_undirected())
    n = simple.number_of_nodes()
    fig, ax = plt.subplots(figsize=(9, 7), dpi=130)  # printed ~18 cm wide on A4: labels stay legible
    if n:
        pos = nx.spring_layout(simple, seed=seed, k=2.0 / max(n, 1) ** 0.5, iterations=100)
        for t, colour in NODE_COLOURS.items():
            nodes = [v for v, d in g.nodes(data=True) if d.get("node_type") == t]
            if not nodes:
                continue
            nx.draw_networkx_nodes(simple, pos, nodelist=nodes, node_color=colour, ax=ax,
                                   node_size=[220 if g.nodes[v].get("seed") else 70 for v in nodes],
                                   edgecolors=["black" if g.nodes[v].get("seed") else colour for v in nodes],
                                   linewidths=[1.6 if g.nodes[v].get("seed") else 0.5 for v in nodes],
                                   label=NODE_ZH[t] if family else t)
        ties = [(u, v) for u, v, d in g.edges(data=True) if d.get("rel_type") in ("CO_VISITS", "CO_PURCHASES",
                                                                                   "CO_SWIPES")]
        tie_set = set(ties)
        other = [(u, v) for u, v in g.edges() if (u, v) not in tie_set]
        nx.draw_networkx_edges(simple, pos, edgelist=other, ax=ax, alpha=0.2, width=0.6)
        nx.draw_networkx_edges(simple, pos, edgelist=ties, ax=ax, alpha=0.7, width=1.4, edge_color="#9467bd")
        ax.legend(loc="upper left", fontsize=9, prop={"family": family, "size": 9} if family else None,
                  markerscale=0.8, framealpha=0.85)
    title = "案件关系图" if family else "case graph"
    ax.set_title(f"{title}（{n} 个节点，{g.number_of_edges()} 条关系）" if family
                 else f"{title} ({n} nodes, {g.number_of_edges()} edges)", fontfamily=family or "DejaVu Sans")
    ax.axis("off")
    fig.tight_layout()
    if n:  # after the layout, so that the overlap test sees the labels where they are printed
        _draw_labels(ax, fig, pos, {v: node_label(g.nodes[v]) for v in labelled_nodes(g, max_labels)},
                     family or "DejaVu Sans")
    fig.savefig(path, format="png", metadata={"Software": None})
    plt.close(fig)
    return path


def node_label(node: dict, *, width: int = 10) -> str:
    """A short name for a node of the graph drawing (节点标注).

    Persons by their label (the pseudonym P001…, or the name in a clear package), institutions and
    pharmacies by name, doctors (no names in the extract) by 医师 and the last four digits of the code;
    a name longer than ``width`` characters loses its middle (the district in front and the branch or
    number at the end tell institutions apart).

    >>> node_label({"node_type": "doctor", "code": "D2201020000213", "label": "医师 D2201020000213"})
    '医师·0213'
    >>> node_label({"node_type": "institution", "code": "H1", "label": "南关区社区卫生服务中心10"})
    '南关区社区…中心10'
    >>> node_label({"node_type": "person", "code": "P003", "label": "P003"})
    'P003'
    """
    t, code = node.get("node_type"), str(node.get("code") or "")
    if t == "doctor":
        return f"医师·{code[-4:]}" if code else "医师"
    text = str(node.get("label") or node.get("name") or code)
    if len(text) <= width:
        return text
    tail = (width - 1) // 2
    return text[:width - 1 - tail] + "…" + text[-tail:]


def labelled_nodes(g: nx.MultiDiGraph, max_labels: int) -> list[str]:
    """The nodes that get a label: every node of a small graph; else the seeds, then the most connected."""
    degree = nx.Graph(g.to_undirected()).degree()
    ranked = sorted(g.nodes, key=lambda v: (not g.nodes[v].get("seed"), -degree[v], str(v)))
    if len(ranked) <= max_labels:
        return ranked
    seeds = [v for v in ranked if g.nodes[v].get("seed")]
    return ranked[:max(max_labels, len(seeds))]


def _draw_labels(ax, fig, pos: dict, labels: dict[str, str], family: str) -> None:
    """Draw ``labels`` in order, each at the first place beside its node (right, above, left, below) where it
    overlaps no label drawn before; a label with no free place is left out."""
    renderer = fig.canvas.get_renderer()
    placed = [ax.get_legend().get_window_extent(renderer)] if ax.get_legend() else []
    offsets = ((6, 0, "left", "center"), (0, 7, "center", "bottom"), (-6, 0, "right", "center"),
               (0, -7, "center", "top"))
    for v, text in labels.items():
        for dx, dy, ha, va in offsets:
            artist = ax.annotate(text, pos[v], xytext=(dx, dy), textcoords="offset points", ha=ha, va=va,
                                 fontsize=8.5, fontfamily=family, zorder=5,
                                 bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.75})
            box = artist.get_window_extent(renderer).expanded(1.05, 1.1)
            if not any(box.overlaps(other) for other in placed):
                placed.append(box)
                break
            artist.remove()


_TEMPLATE = """<!DOCTYPE html>
<html lang="zh-CN"><head><meta charset="utf-8">
<title>证据包 线索 #{{ clue.id }}</title>
<style>
@page {
  size: A4; margin: 16mm 14mm 18mm 14mm;
  @bottom-left { content: "医保基金欺诈线索证据包 · 线索 #{{ clue.id }}"; font: 8pt {{ fonts | safe }}; color: #666; }
  @bottom-center { content: "第 " counter(page) " 页 / 共 " counter(pages) " 页"; font: 9pt {{ fonts | safe }}; }
  @bottom-right { content: "{{ redaction_zh }}"; font: 8pt {{ fonts | safe }}; color: #666; }
}
body { font-family: {{ fonts | safe }}; margin: 0; font-size: 10.5pt; color: #222; }
h1 { font-size: 16pt; margin: 0 0 4pt; } h2 { font-size: 12.5pt; border-bottom: 1px solid #888; margin-top: 16pt;
  break-after: avoid; }
table { border-collapse: collapse; margin: 4pt 0; width: 100%; } td, th { border: 1px solid #bbb; padding: 2pt 5pt; }
thead { display: table-header-group; } tr { break-inside: avoid; }
th { background: #eee; font-weight: normal; text-align: left; } td.num { text-align: right; white-space: nowrap; }
.note { color: #555; } img { max-width: 100%; } figure { margin: 0; break-inside: avoid; }
</style></head><body>
<h1>医保基金欺诈线索证据包 · 线索 #{{ clue.id }}</h1>
<p class="note">导出时间 {{ created_at }} · 导出人 {{ user.username }}（{{ role_zh }}）·
身份信息：{{ "明文（移送公安，联络员导出）" if clear else "已脱敏（化名 P001…）" }} · 关系深度 {{ depth }} 跳</p>

<h2>一、案件概况</h2>
<table>
<tr><th>线索</th><td>{{ entity_key }}</td><th>对象类型</th><td>{{ clue.entity_type_zh }}</td></tr>
<tr><th>名称</th><td>{{ entity_name }}</td><th>地区</th><td>{{ clue.region or "" }}</td></tr>
<tr><th>状态</th><td>{{ clue.state_zh }}</td><th>风险等级</th><td>{{ clue.risk_level_zh }}</td></tr>
<tr><th>违规类型</th><td>{{ clue.typologies_zh | join("、") }}</td><th>线索来源</th><td>{{ clue.sources_zh | join("、") }}</td></tr>
<tr><th>欺诈概率</th><td class="num">{{ p_fraud }}</td>
    <th>涉及金额（元）</th><td class="num">{{ amount_at_risk }}</td></tr>
</table>

<h2>二、关键数据</h2>
<table>
{% for k, v in figures %}<tr><th>{{ k }}</th><td class="num">{{ v }}</td></tr>
{% endfor %}</table>

<h2>三、时间线</h2>
<table><thead><tr><th>月份</th><th>结算笔数</th><th>医疗费用（元）</th><th>基金支付（元）</th></tr></thead>
{% for m in months %}<tr><td>{{ m.month }}</td><td class="num">{{ m.n }}</td>
<td class="num">{{ m.medfee }}</td><td class="num">{{ m.fund }}</td></tr>
{% endfor %}</table>
{% if transitions %}<table><thead><tr><th>时间（北京时间）</th><th>流转</th><th>经办</th><th>理由</th></tr></thead>
{% for t in transitions %}<tr><td>{{ t.at }}</td><td>{{ t.to }}</td><td>{{ t.actor }}</td><td>{{ t.reason }}</td></tr>
{% endfor %}</table>{% endif %}

<h2>四、关系图</h2>
<figure><img src="{{ graph_png }}" alt="案件关系图">
<figcaption class="note">红：参保人；蓝：医师；绿：医疗机构；橙：零售药店；紫线：结伴就医/共同购药/同柜台刷卡；黑框大点：线索对象。
参保人以{{ "姓名" if clear else "化名" }}标注，医师以编码末四位标注；节点多时只标注线索对象和关联最多的节点。
完整图见 case_graph.graphml / case_graph.gexf / neo4j/ / i2_links.csv。{% if truncated %}
<b>节点数已达上限，图已截断。</b>{% endif %}</figcaption></figure>
{% if person_ties %}<p>主要结伴关系（按显著性排序，前 {{ person_ties | length }} 对；日期为双方共同就医/购药的首次与末次日期）：</p>
<table><thead><tr><th>人员甲</th><th>人员乙</th><th>关系</th><th>共同次数</th><th>共同天数</th><th>首次日期</th><th>末次日期</th></tr></thead>
{% for t in person_ties %}<tr><td>{{ t.a }}</td><td>{{ t.b }}</td><td>{{ t.type_zh }}</td><td class="num">{{ t.n_events }}</td>
<td class="num">{{ t.shared_days }}</td><td>{{ t.first_date }}</td><td>{{ t.last_date }}</td></tr>
{% endfor %}</table>{% endif %}

<h2>五、涉案人员</h2>
<table><thead><tr><th>编号</th>{% if clear %}<th>姓名</th><th>身份证号</th>{% endif %}<th>性别</th><th>参保地</th>
<th>社区</th><th>就医次数</th><th>金额（元）</th></tr></thead>
{% for p in persons %}<tr><td>{{ p.code }}</td>{% if clear %}<td>{{ p.name }}</td><td>{{ p.certno }}</td>{% endif %}
<td>{{ p.gender }}</td><td>{{ p.region }}</td><td>{{ p.community_id }}</td><td class="num">{{ p.n_events }}</td>
<td class="num">{{ p.amount }}</td></tr>
{% endfor %}</table>

<h2>六、规则命中与政策依据</h2>
{% if rule_hits %}<table><thead><tr><th>规则</th><th>违规类型</th><th>命中次数</th><th>涉及金额（元）</th><th>政策依据</th></tr></thead>
{% for h in rule_hits %}<tr><td>{{ h.name }}</td><td>{{ h.typology }}</td><td class="num">{{ h.hits }}</td>
<td class="num">{{ h.amount }}</td><td>{{ h.basis }}</td></tr>
{% endfor %}</table>{% else %}<p>无规则命中。</p>{% endif %}

<h2>七、模型判断依据</h2>
{% if reasons %}<table><thead><tr><th>原因</th><th>取值</th><th>同类中位数</th><th>贡献</th></tr></thead>
{% for r in reasons %}<tr><td>{{ r.text }}</td><td class="num">{{ r.value }}</td><td class="num">{{ r.peer }}</td>
<td class="num">{{ r.contribution }}</td></tr>
{% endfor %}</table>{% else %}<p>无模型原因。</p>{% endif %}

<h2>八、文件与完整性</h2>
<p>结算明细 settlements.csv，费用明细 fee_lines.csv。每个文件的 SHA-256 列于 manifest.json，清单由医保部门以
Ed25519 签名（manifest.sig），可用公钥执行 <code>yibao evidence verify 目录 --public-key 公钥文件</code> 校验。</p>
<p class="note">代码版本 {{ code_version }} · 规则版本 {{ rule_version }} · 模型版本 {{ model_version }} ·
筛查批次 {{ screening_run }}</p>
</body></html>
"""


def write_html(path: Path, context: dict) -> Path:
    """The report as HTML (``context``: :func:`serving.evidence_export.package` builds it, every figure
    already as text). The page is A4 with 第 X 页 / 共 Y 页 in its footer (CSS page-margin boxes)."""
    env = Environment(autoescape=select_autoescape(default=True, default_for_string=True))
    page = {"fonts": _FONTS, "redaction_zh": "身份信息明文 · 仅限移送公安" if context.get("clear") else "已脱敏"}
    path.write_text(env.from_string(_TEMPLATE).render(**(page | context)), encoding="utf-8")
    return path


def chromium_path() -> str | None:
    """Debian's headless-capable Chromium, when installed."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if os.path.isfile("/usr/bin/chromium") else None


def render_pdf(html: Path, pdf: Path, *, timeout: float = 120) -> dict:
    """Print ``html`` to ``pdf`` with headless Chromium: ``{"status": "rendered"|"skipped"|"failed", ...}``."""
    exe = chromium_path()
    if exe is None:
        return {"status": "skipped", "reason": "未安装 Chromium, 未生成 PDF (chromium not installed: "
                "`apt-get install chromium fonts-noto-cjk` to get report.pdf); report.html is complete"}
    with tempfile.TemporaryDirectory(prefix="yibao-chromium-") as profile:
        argv = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--disable-background-networking", "--disable-extensions", "--no-pdf-header-footer",
                f"--user-data-dir={profile}", f"--print-to-pdf={pdf}", html.resolve().as_uri()]
        try:
            done = subprocess.run(argv, capture_output=True, timeout=timeout, env={**os.environ, "HOME": profile})
        except subprocess.TimeoutExpired:
            pdf.unlink(missing_ok=True)
            return {"status": "failed", "reason": f"Chromium 超时 (timed out after {timeout:.0f} s)"}
    if done.returncode != 0 or not pdf.is_file() or pdf.stat().st_size == 0:
        pdf.unlink(missing_ok=True)
        tail = done.stderr.decode("utf-8", "replace").strip().splitlines()[-3:]
        return {"status": "failed", "reason": f"Chromium 退出码 (exit) {done.returncode}: {' | '.join(tail)}"}
    return {"status": "rendered", "renderer": Path(exe).name}
