"""The report in Chinese (案件报告): HTML with the graph drawn (PNG by matplotlib), and PDF by headless Chromium.

The PDF needs Debian's ``chromium`` and a CJK font (``fonts-noto-cjk`` or ``fonts-wqy-zenhei``); without
Chromium :func:`render_pdf` returns why it was skipped and the package keeps the HTML only (the manifest
says so).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import networkx as nx
from jinja2 import Environment, select_autoescape

__all__ = ["draw_graph", "write_html", "render_pdf", "chromium_path"]

NODE_COLOURS = {"person": "#d62728", "doctor": "#1f77b4", "institution": "#2ca02c", "pharmacy": "#ff7f0e"}
NODE_ZH = {"person": "参保人", "doctor": "医师", "institution": "医疗机构", "pharmacy": "零售药店"}
_CJK_FONTS = ("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
              "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
              "/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc")


def _cjk_font() -> str | None:
    """The family name of an installed CJK font, registered with matplotlib; None when there is none."""
    from matplotlib import font_manager

    candidates = list(_CJK_FONTS) + sorted(glob.glob("/usr/share/fonts/**/*CJK*.tt[cf]", recursive=True))
    for path in candidates:
        if os.path.isfile(path):
            try:
                font_manager.fontManager.addfont(path)
                return font_manager.FontProperties(fname=path).get_name()
            except (RuntimeError, OSError, ValueError):
                continue
    return None


def draw_graph(g: nx.MultiDiGraph, path: Path, *, seed: int = 0) -> Path:
    """The case graph as a PNG: nodes coloured by type, seeds outlined, persons labelled by their id."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    family = _cjk_font()
    simple = nx.Graph(g.to_undirected())
    n = simple.number_of_nodes()
    fig, ax = plt.subplots(figsize=(11, 8), dpi=110)
    if n:
        pos = nx.spring_layout(simple, seed=seed, k=1.5 / max(n, 1) ** 0.5)
        for t, colour in NODE_COLOURS.items():
            nodes = [v for v, d in g.nodes(data=True) if d.get("node_type") == t]
            if not nodes:
                continue
            nx.draw_networkx_nodes(simple, pos, nodelist=nodes, node_color=colour, ax=ax,
                                   node_size=[160 if g.nodes[v].get("seed") else 60 for v in nodes],
                                   edgecolors=["black" if g.nodes[v].get("seed") else colour for v in nodes],
                                   label=f"{NODE_ZH[t]} {t}" if family else t)
        covisit = [(u, v) for u, v, d in g.edges(data=True) if d.get("rel_type") in ("CO_VISITS", "CO_PURCHASES")]
        other = [(u, v) for u, v, d in g.edges(data=True) if (u, v) not in set(covisit)]
        nx.draw_networkx_edges(simple, pos, edgelist=other, ax=ax, alpha=0.25, width=0.6)
        nx.draw_networkx_edges(simple, pos, edgelist=covisit, ax=ax, alpha=0.8, width=1.6, edge_color="#9467bd")
        if n <= 80:
            labels = {v: (d.get("code") or v.split(":", 1)[-1]) for v, d in g.nodes(data=True)}
        else:
            labels = {v: d.get("code", "") for v, d in g.nodes(data=True) if d.get("seed")}
        nx.draw_networkx_labels(simple, pos, labels=labels, font_size=6, ax=ax,
                                font_family=family or "DejaVu Sans")
        ax.legend(loc="upper left", fontsize=8, prop={"family": family} if family else None)
    title = "案件关系图 case graph" if family else "case graph"
    ax.set_title(f"{title} ({n} nodes, {g.number_of_edges()} edges)", fontfamily=family or "DejaVu Sans")
    ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, format="png", metadata={"Software": None})
    plt.close(fig)
    return path


_TEMPLATE = """<!DOCTYPE html>
<html lang="zh-CN"><head><meta charset="utf-8">
<title>证据包 线索 #{{ clue.id }}</title>
<style>
body { font-family: "Noto Sans CJK SC", "WenQuanYi Zen Hei", "Microsoft YaHei", sans-serif; margin: 24px;
       font-size: 12px; color: #222; }
h1 { font-size: 20px; } h2 { font-size: 15px; border-bottom: 1px solid #888; margin-top: 22px; }
table { border-collapse: collapse; margin: 6px 0; } td, th { border: 1px solid #bbb; padding: 3px 6px; }
th { background: #eee; } td.num { text-align: right; } .note { color: #555; }
img { max-width: 100%; }
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
<tr><th>欺诈概率</th><td class="num">{{ "%.3f" | format(clue.p_fraud or 0) }}</td>
    <th>涉及金额（元）</th><td class="num">{{ "{:,.2f}".format(clue.amount_at_risk or 0) }}</td></tr>
</table>

<h2>二、关键数据</h2>
<table>
{% for k, v in figures %}<tr><th>{{ k }}</th><td class="num">{{ v }}</td></tr>
{% endfor %}</table>

<h2>三、时间线</h2>
<table><tr><th>月份</th><th>结算笔数</th><th>医疗费用（元）</th><th>基金支付（元）</th></tr>
{% for m in months %}<tr><td>{{ m.month }}</td><td class="num">{{ m.n }}</td>
<td class="num">{{ "{:,.2f}".format(m.medfee) }}</td><td class="num">{{ "{:,.2f}".format(m.fund) }}</td></tr>
{% endfor %}</table>
{% if transitions %}<table><tr><th>时间</th><th>流转</th><th>经办</th><th>理由</th></tr>
{% for t in transitions %}<tr><td>{{ t.at }}</td><td>{{ t.to }}</td><td>{{ t.actor }}</td><td>{{ t.reason }}</td></tr>
{% endfor %}</table>{% endif %}

<h2>四、关系图</h2>
<p class="note">红：参保人；蓝：医师；绿：医疗机构；橙：零售药店；紫线：结伴就医/共同购药；黑框：线索对象。
完整图见 case_graph.graphml / case_graph.gexf / neo4j/ / i2_links.csv。{% if truncated %}
<b>节点数已达上限，图已截断。</b>{% endif %}</p>
<img src="{{ graph_png }}" alt="案件关系图">

<h2>五、涉案人员</h2>
<table><tr><th>编号</th>{% if clear %}<th>姓名</th><th>身份证号</th>{% endif %}<th>性别</th><th>参保地</th>
<th>社区</th><th>就医次数</th><th>金额（元）</th></tr>
{% for p in persons %}<tr><td>{{ p.code }}</td>{% if clear %}<td>{{ p.name }}</td><td>{{ p.certno }}</td>{% endif %}
<td>{{ p.gender }}</td><td>{{ p.region }}</td><td>{{ p.community_id }}</td><td class="num">{{ p.n_events }}</td>
<td class="num">{{ "{:,.2f}".format(p.amount) }}</td></tr>
{% endfor %}</table>

<h2>六、规则命中与政策依据</h2>
{% if rule_hits %}<table><tr><th>规则</th><th>违规类型</th><th>命中次数</th><th>涉及金额（元）</th><th>政策依据</th></tr>
{% for h in rule_hits %}<tr><td>{{ h.name }}</td><td>{{ h.typology }}</td><td class="num">{{ h.hits }}</td>
<td class="num">{{ "{:,.2f}".format(h.amount) }}</td><td>{{ h.basis }}</td></tr>
{% endfor %}</table>{% else %}<p>无规则命中。</p>{% endif %}

<h2>七、模型判断依据</h2>
{% if reasons %}<table><tr><th>原因</th><th>取值</th><th>同类水平</th><th>贡献</th></tr>
{% for r in reasons %}<tr><td>{{ r.text }}</td><td class="num">{{ r.value }}</td><td class="num">{{ r.peer }}</td>
<td class="num">{{ r.contribution }}</td></tr>
{% endfor %}</table>{% else %}<p>无模型原因。</p>{% endif %}

<h2>八、文件与完整性</h2>
<p>结算明细 settlements.csv，费用明细 fee_lines.csv。每个文件的 SHA-256 列于 manifest.json，清单由医保部门以
Ed25519 签名（manifest.sig），可用公钥执行 <code>yibao evidence verify 目录 --public-key 公钥文件</code> 校验。</p>
<p class="note">代码版本 {{ code_version }} · 规则版本 {{ rule_version }} · 模型版本 {{ model_version }}</p>
</body></html>
"""


def write_html(path: Path, context: dict) -> Path:
    env = Environment(autoescape=select_autoescape(default=True, default_for_string=True))
    path.write_text(env.from_string(_TEMPLATE).render(**context), encoding="utf-8")
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
