"""``export_package``: one clue's evidence package (证据包) for public security, signed.

See ``docs/evidence.md`` for the files, their schema, redaction and signing.
"""

from __future__ import annotations

import io
import subprocess
import zipfile
from datetime import datetime
from pathlib import Path

import duckdb

from serving.clues.access import User
from serving.clues.models import ROLES
from serving.evidence_export import formats, report
from serving.evidence_export.display import BEIJING, beijing_time, count, signed, yuan
from serving.evidence_export.graph import PERSON_TIES, case_graph, seeds_of
from serving.evidence_export.redact import Redactor, clear_allowed, read_identities
from serving.evidence_export.signing import (MANIFEST, SIGNATURE, key_fingerprint, load_private_key, sha256_file,
                                             sign_manifest)

__all__ = ["export_package", "model_version_of", "FORMAT", "MAX_SETTLEMENTS", "MAX_FEE_LINES"]

FORMAT = "yibao-evidence/1"
MAX_SETTLEMENTS = 2000
MAX_FEE_LINES = 20000
TOP_PERSON_TIES = 15  # the strongest co-visit / co-purchase pairs listed in the report
PROJECT_ROOT = Path(__file__).resolve().parents[2]

SETTLEMENT_COLUMNS = ["setl_id", "mdtrt_id", "psn", "fixmedins_code", "fixmedins_name", "med_type", "setl_time",
                      "begndate", "enddate", "prac_code", "diagnosis", "medfee_sumamt", "fund_pay_sumamt", "psn_pay",
                      "refd_setl_flag", "in_clue_evidence", "rule_ids"]
FEE_COLUMNS = ["bkkp_sn", "setl_id", "psn", "fixmedins_code", "fee_ocur_time", "hilist_code", "hilist_name",
               "list_type", "med_chrgitm_type", "cnt", "pric", "det_item_fee_sumamt", "inscp_amt", "bilg_dr_code"]
RULE_HIT_COLUMNS = ["hit_id", "rule_id", "rule_version", "typology_id", "entity_type", "entity_id", "setl_id", "psn",
                    "fixmedins_code", "prac_code", "amount_at_risk", "severity", "event_time", "message_zh",
                    "basis_zh"]


def export_package(warehouse: Path, store, clue_id: int, user: User, out_dir: Path, *, depth: int = 1,
                   signing_key=None, settings=None, max_nodes: int = 400, model_version: str | None = None,
                   pdf: bool = True) -> Path:
    """Write the evidence package of clue ``clue_id`` as seen by ``user`` into ``out_dir``; returns it.

    ``out_dir`` must not exist or be empty. ``model_version``: see :func:`model_version_of` (None: the
    registry's champion in ``settings.tracking_uri``, the model screening uses). ``signing_key``: an Ed25519 private key, a PEM path, or None
    for the path in ``settings.evidence_key`` / env ``YIBAO_EVIDENCE_KEY``. The export is refused when
    ``user`` may not see the clue, and audited in the clue store (``export_evidence``) with the package
    hash (SHA-256 of ``manifest.json``).
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise FileExistsError(f"输出目录非空 (output folder not empty): {out_dir}")
    key = load_private_key(signing_key if signing_key is not None else getattr(settings, "evidence_key", None))
    clue = store.get(clue_id, user)  # refuses (and audits) a clue the user may not see
    clear = clear_allowed(clue, user.role)
    created_at = datetime.now(BEIJING).replace(microsecond=0).isoformat()  # ISO 8601, +08:00
    model_version = model_version_of(model_version, getattr(settings, "tracking_uri", None))

    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        seeds = seeds_of(clue)
        g = case_graph(con, seeds, depth=depth, max_nodes=max_nodes)
        setl = _settlements(con, clue, seeds)
        fees = _fee_lines(con, [s["setl_id"] for s in setl])
        hits = _rule_hits(con, clue, seeds, [s["setl_id"] for s in setl])
        rule_run = _rule_run(con)
    finally:
        con.close()

    persons = sorted(set(g.persons()) | {s["psn_no"] for s in setl if s["psn_no"]}
                     | {h["psn_no"] for h in hits if h["psn_no"]})
    vault = getattr(store, "identity_vault", None) or (settings.identity_vault if settings is not None else None)
    r = Redactor(persons, clear=clear, identities=read_identities(vault, persons) if clear else None)

    out_dir.mkdir(parents=True, exist_ok=True)
    nxg = formats.to_networkx(g, r)
    formats.write_graphml(nxg, out_dir / "case_graph.graphml")
    formats.write_gexf(nxg, out_dir / "case_graph.gexf")
    formats.write_neo4j(nxg, out_dir / "neo4j")
    formats.write_i2(nxg, out_dir / "i2_links.csv")
    evidence_ids = set((clue.get("evidence") or {}).get("setl_id") or [])
    hit_rules: dict[str, set] = {}
    for h in hits:
        if h["setl_id"]:
            hit_rules.setdefault(h["setl_id"], set()).add(h["rule_id"])
    formats.write_csv(out_dir / "settlements.csv", SETTLEMENT_COLUMNS, (
        [_fmt(s.get(c)) for c in SETTLEMENT_COLUMNS[:2]] + [r.person(s["psn_no"])]
        + [_fmt(s.get(c)) for c in SETTLEMENT_COLUMNS[3:-2]]
        + [str(s["setl_id"] in evidence_ids).lower(), ";".join(sorted(hit_rules.get(s["setl_id"], ())))]
        for s in setl))
    formats.write_csv(out_dir / "fee_lines.csv", FEE_COLUMNS, (
        [_fmt(f.get(c)) if c != "psn" else r.person(f["psn_no"]) for c in FEE_COLUMNS]
        for f in fees))
    formats.write_csv(out_dir / "rule_hits.csv", RULE_HIT_COLUMNS, (
        [_rule_cell(h, c, r) for c in RULE_HIT_COLUMNS] for h in hits))

    report.draw_graph(nxg, out_dir / "graph.png")
    context = _report_context(clue, user, r, nxg, g, setl, hits, rule_run, created_at, depth, model_version,
                              settings)
    report.write_html(out_dir / "report.html", context)
    pdf_status = (report.render_pdf(out_dir / "report.html", out_dir / "report.pdf") if pdf
                  else {"status": "skipped", "reason": "PDF 未请求 (pdf=False)"})

    files = sorted(p for p in out_dir.rglob("*") if p.is_file() and p.name not in (MANIFEST, SIGNATURE))
    manifest = {
        "format": FORMAT,
        "created_at": created_at,
        "exported_by": {"username": user.username, "role": user.role, "region": user.region},
        "clue_id": clue["id"],
        "clue_key": r.text(f"{clue['entity_type']}:{r.person(clue['entity_id']) if clue['entity_type'] == 'psn' else clue['entity_id']}"),
        "clue_state": clue["state"],
        "redaction": r.mode,
        "depth": depth,
        "graph": {"nodes": nxg.number_of_nodes(), "edges": nxg.number_of_edges(), "truncated": g.truncated,
                  "max_nodes": max_nodes},
        "counts": {"settlements": len(setl), "fee_lines": len(fees), "rule_hits": len(hits), "persons": len(r.alias)},
        "rule_pack": rule_run,
        "model": {"version": model_version, "screening_run": clue.get("last_seen_run")},
        "code_version": _code_version(),
        "pdf": pdf_status,
        "signing_key_sha256": key_fingerprint(key.public_key()),
        "files": [{"path": p.relative_to(out_dir).as_posix(), "sha256": sha256_file(p), "bytes": p.stat().st_size}
                  for p in files],
    }
    package_hash = sign_manifest(out_dir, manifest, key)
    store.record_export(clue["id"], user, {
        "package_sha256": package_hash, "folder": out_dir.name, "redaction": r.mode, "depth": depth,
        "files": len(files), "nodes": manifest["graph"]["nodes"], "edges": manifest["graph"]["edges"],
        "pdf": pdf_status["status"], "created_at": created_at,
        # clear packages name who was revealed (person numbers only, never IDs), as resolve_identity does
        **({"psn_no_revealed": sorted(r.identities)} if clear else {})})
    return out_dir


def zip_package(folder: Path) -> bytes:
    """The package in ``folder`` as one zip archive (what the service hands a liaison to download).

    Every file sits under a top folder named like ``folder``; unzipped, the folder verifies with
    ``yibao evidence verify`` exactly as the original (the zip adds nothing to the package).
    """
    folder = Path(folder)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            zf.write(path, f"{folder.name}/{path.relative_to(folder).as_posix()}")
    return buf.getvalue()


# -- reading the warehouse --------------------------------------------------------------------------


def _settlements(con, clue: dict, seeds: list[str]) -> list[dict]:
    """The clue's evidence settlements, and every settlement of the persons it is about (person, ring)."""
    ids = [str(s) for s in (clue.get("evidence") or {}).get("setl_id") or []]
    persons = [k.split(":", 1)[1] for k in seeds if k.startswith("psn:")]
    cur = con.execute(f"""
        SELECT s.setl_id, s.mdtrt_id, s.psn_no, s.fixmedins_code, i.fixmedins_name, s.med_type,
               strftime(s.setl_time, '%Y-%m-%d %H:%M:%S') AS setl_time, strftime(s.begndate, '%Y-%m-%d') AS begndate,
               strftime(s.enddate, '%Y-%m-%d') AS enddate, m.chfpdr_code AS prac_code,
               coalesce(m.dscg_maindiag_name, s.dise_name) AS diagnosis,
               CAST(s.medfee_sumamt AS DOUBLE) AS medfee_sumamt, CAST(s.fund_pay_sumamt AS DOUBLE) AS fund_pay_sumamt,
               CAST(s.psn_pay AS DOUBLE) AS psn_pay, s.refd_setl_flag
        FROM setl_d s LEFT JOIN fixmedins i USING (fixmedins_code) LEFT JOIN mdtrt_d m USING (mdtrt_id)
        WHERE s.setl_id IN (SELECT unnest($ids)) OR s.psn_no IN (SELECT unnest($persons))
        ORDER BY (s.setl_id IN (SELECT unnest($ids))) DESC, s.fund_pay_sumamt DESC, s.setl_id
        LIMIT {MAX_SETTLEMENTS}""", {"ids": ids, "persons": persons})
    cols = [d[0] for d in cur.description]
    rows = [dict(zip(cols, row)) for row in cur.fetchall()]
    return sorted(rows, key=lambda s: (s["setl_time"] or "", s["setl_id"]))


def _fee_lines(con, setl_ids: list[str]) -> list[dict]:
    cur = con.execute(f"""
        SELECT bkkp_sn, setl_id, psn_no, fixmedins_code, strftime(fee_ocur_time, '%Y-%m-%d %H:%M:%S') AS fee_ocur_time,
               hilist_code, hilist_name, list_type, med_chrgitm_type, CAST(cnt AS DOUBLE) AS cnt,
               CAST(pric AS DOUBLE) AS pric, CAST(det_item_fee_sumamt AS DOUBLE) AS det_item_fee_sumamt,
               CAST(inscp_amt AS DOUBLE) AS inscp_amt, bilg_dr_code
        FROM fee_list_d WHERE setl_id IN (SELECT unnest($ids))
        ORDER BY setl_id, fee_ocur_time, bkkp_sn LIMIT {MAX_FEE_LINES}""", {"ids": setl_ids})
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, row)) for row in cur.fetchall()]


def _rule_hits(con, clue: dict, seeds: list[str], setl_ids: list[str]) -> list[dict]:
    """Rule hits on the package's settlements and on the clue's own entity (institution-level rules)."""
    if not con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'rule_hits'").fetchone()[0]:
        return []
    entity = [(clue["entity_type"], str(clue["entity_id"]))] + [tuple(k.split(":", 1)) for k in seeds]
    cur = con.execute("""
        SELECT hit_id, rule_id, rule_version, typology_id, entity_type, entity_id, setl_id, psn_no, fixmedins_code,
               prac_code, CAST(amount_at_risk AS DOUBLE) AS amount_at_risk, severity,
               strftime(event_time, '%Y-%m-%d %H:%M:%S') AS event_time, message_zh, basis_zh
        FROM rule_hits
        WHERE setl_id IN (SELECT unnest($ids))
           OR (entity_type || ':' || entity_id) IN (SELECT unnest($ents))
        ORDER BY event_time, hit_id LIMIT 5000""",
                      {"ids": setl_ids, "ents": [f"{t}:{i}" for t, i in entity]})
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, row)) for row in cur.fetchall()]


def _rule_run(con) -> dict:
    """Versions of the rule config and 两库 pack of the newest rule run (``rule_runs``)."""
    if not con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'rule_runs'").fetchone()[0]:
        return {"config_version": None, "pack_version": None, "config_sha256": None, "run_id": None}
    row = con.execute("SELECT run_id, config_version, pack_version, config_sha256 FROM rule_runs "
                      "ORDER BY started_at DESC LIMIT 1").fetchone()
    if row is None:
        return {"config_version": None, "pack_version": None, "config_sha256": None, "run_id": None}
    return {"run_id": row[0], "config_version": row[1], "pack_version": row[2], "config_sha256": row[3]}


# -- the report's content ---------------------------------------------------------------------------


def _report_context(clue, user, r: Redactor, nxg, g, setl, hits, rule_run, created_at, depth, model_version,
                    settings) -> dict:
    """What the report shows, every figure already as the text the reader sees (:mod:`.display`)."""
    months: dict[str, dict] = {}
    for s in setl:
        m = months.setdefault((s["setl_time"] or "")[:7], {"month": (s["setl_time"] or "")[:7], "n": 0, "medfee": 0.0,
                                                           "fund": 0.0})
        m["n"] += 1
        m["medfee"] += s["medfee_sumamt"] or 0.0
        m["fund"] += s["fund_pay_sumamt"] or 0.0
    month_rows = [{"month": m["month"], "n": count(m["n"]), "medfee": yuan(m["medfee"]), "fund": yuan(m["fund"])}
                  for m in sorted(months.values(), key=lambda m: m["month"])]
    types = [d["node_type"] for _, d in nxg.nodes(data=True)]
    dates = [s["setl_time"] for s in setl if s["setl_time"]]
    figures = [
        ("涉案人员（人）", count(types.count("person"))), ("医师（人）", count(types.count("doctor"))),
        ("医疗机构（家）", count(types.count("institution"))), ("零售药店（家）", count(types.count("pharmacy"))),
        ("关系（条）", count(nxg.number_of_edges())),
        ("结伴就医/共同购药/同柜台刷卡关系（条）", count(sum(1 for *_, d in nxg.edges(data=True)
                                             if d["kind"] in PERSON_TIES))),
        ("结算（笔）", count(len(setl))),
        ("医疗费用合计（元）", yuan(sum(s["medfee_sumamt"] or 0 for s in setl))),
        ("基金支付合计（元）", yuan(sum(s["fund_pay_sumamt"] or 0 for s in setl))),
        ("规则命中（次）", count(len(hits))),
        ("规则涉及金额（元）", yuan(sum(h["amount_at_risk"] or 0 for h in hits))),
        ("时间范围", f"{min(dates)[:10]} 至 {max(dates)[:10]}" if dates else "—"),
    ]
    persons = [d for _, d in nxg.nodes(data=True) if d["node_type"] == "person"]
    persons.sort(key=lambda d: (not d["seed"], -d["amount"], d["code"]))
    person_rows = [d | {"n_events": count(d["n_events"]), "amount": yuan(d["amount"])} for d in persons]
    names, bases = _rule_names(settings), {}
    for h in hits:
        if h.get("basis_zh"):
            bases.setdefault(h["rule_id"], h["basis_zh"])
    rule_rows = []
    for h in clue.get("rule_hits") or []:
        rid = h.get("rule_id", "")
        name, basis = names.get(rid, (rid, ""))
        rule_rows.append({"name": f"{name}（{rid}）" if name != rid else rid,
                          "typology": _typology_zh(h.get("typology")), "hits": count(h.get("hits")),
                          "amount": yuan(h.get("amount_at_risk") or 0.0), "basis": bases.get(rid) or basis})
    reasons = [{"text": r.text(x.get("text_zh")), "value": _feature_value(x.get("feature"), x.get("value")),
                "peer": _feature_value(x.get("feature"), x.get("peer_value")),
                "contribution": signed(x.get("contribution"))} for x in clue.get("reasons") or []]
    transitions = [{"at": beijing_time(t.get("at")),
                    "to": f"{_state_zh(t.get('from_state'))} → {t.get('to_state_zh')}",
                    "actor": t.get("actor"), "reason": r.text(t.get("reason"))} for t in clue.get("transitions") or []]
    eid = r.person(clue["entity_id"]) if clue["entity_type"] == "psn" else clue["entity_id"]
    entity_name = (r.name(clue["entity_id"]) or f"参保人 {eid}") if clue["entity_type"] == "psn" \
        else r.text(clue.get("entity_name") or "")
    code = _code_version()
    screening = clue.get("last_seen_run") or "未知"
    return {"clue": clue, "user": user, "role_zh": ROLES.get(user.role, user.role), "clear": r.clear,
            "created_at": beijing_time(created_at), "depth": depth, "entity_key": f"{clue['entity_type']}:{eid}",
            "entity_name": entity_name, "p_fraud": f"{float(clue.get('p_fraud') or 0):.3f}",
            "amount_at_risk": yuan(clue.get("amount_at_risk") or 0), "figures": figures, "months": month_rows,
            "transitions": transitions, "graph_png": "graph.png", "truncated": g.truncated, "persons": person_rows,
            "person_ties": _person_tie_rows(nxg), "rule_hits": rule_rows, "reasons": reasons,
            "code_version": code["commit"],
            "rule_version": f"{rule_run.get('config_version')} / {rule_run.get('pack_version')}",
            "model_version": model_version or "未知", "screening_run": screening}


def _person_tie_rows(nxg) -> list[dict]:
    """The strongest person–person ties (结伴就医, 共同购药, 同柜台连续刷卡) with the dates they share, for the
    report: most significant first (surprise), then most shared events."""
    ties = sorted(((u, v, d) for u, v, d in nxg.edges(data=True) if d["kind"] in PERSON_TIES),
                  key=lambda t: (-t[2]["surprise"], -t[2]["n_events"], t[0], t[1]))
    return [{"a": _person_text(nxg.nodes[u]), "b": _person_text(nxg.nodes[v]), "type_zh": d["type_zh"],
             "n_events": count(d["n_events"]), "shared_days": count(d["shared_days"]),
             "first_date": d["first_date"] or "—", "last_date": d["last_date"] or "—"}
            for u, v, d in ties[:TOP_PERSON_TIES]]


def _person_text(node: dict) -> str:
    """A person as the report names them: the pseudonym, or in a clear package the name and psn_no."""
    label, code = node.get("label") or "", node.get("code") or ""
    return label if not code or label == code else f"{label}（{code}）"


def _feature_value(feature: str | None, value) -> str:
    """A model reason's value as its reason sentence writes it (shares in %, amounts in 元, counts whole)."""
    from models.explain import _fmt as feature_text  # the one place feature values get their unit

    if value is None or value == "":
        return ""
    return feature_text(feature or "", value)


def _rule_names(settings) -> dict[str, tuple[str, str]]:
    """rule id -> (中文名, 政策依据) from the rule config in use (the user's copy, else the committed one)."""
    try:
        from models.rules.config import DEFAULT_CONFIG, load_config

        path = getattr(settings, "rules_config", None)
        cfg = load_config(path if path is not None and Path(path).is_file() else DEFAULT_CONFIG)
        return {rule.id: (rule.name_zh, rule.basis_zh) for rule in cfg.rules}
    except Exception:  # noqa: BLE001 - the report still names the rule by its id
        return {}


def _typology_zh(typology: str | None) -> str:
    from features.contract import FRAUD_TYPES

    return FRAUD_TYPES.get(typology, (typology or "",))[0] if typology else ""


def _state_zh(state: str | None) -> str:
    from serving.clues.workflow import STATES

    return STATES.get(state, state or "") if state else ""


def model_version_of(source: str | None, tracking_uri: str | None) -> str | None:
    """The model version the report names (模型版本), or None when it cannot be known.

    ``source``: None for the registry's ``champion`` (what ``yibao screen`` and the service use by
    default); ``registry:<alias or version>`` (the service's model, ``Runtime.model_source``) resolved in
    the MLflow registry at ``tracking_uri``; ``file:<name>`` a bundle file; any other text is kept as the
    caller wrote it (``--model-version``). The registry is only read, never created: a SQLite registry that
    does not exist gives None.
    """
    if source is not None and not source.startswith("registry:"):
        return f"模型文件 {source[5:]}" if source.startswith("file:") else source
    ref = source[len("registry:"):] if source else "champion"
    if not tracking_uri or (tracking_uri.startswith("sqlite:///")
                            and not Path(tracking_uri[len("sqlite:///"):]).is_file()):
        return None
    try:
        import mlflow

        from models.bundle import MODEL_NAME

        client = mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        mv = (client.get_model_version(MODEL_NAME, ref) if ref.isdigit()
              else client.get_model_version_by_alias(MODEL_NAME, ref))
    except Exception:  # noqa: BLE001 - no registry, no such alias: the report says 未知
        return None
    alias = "" if ref.isdigit() else f"{ref}，"
    return f"{MODEL_NAME} v{mv.version}（{alias}MLflow run {str(mv.run_id)[:8]}）"


def _code_version() -> dict:
    """The git commit of the code that exported (and whether the working tree had changes)."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True,
                                timeout=10).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=PROJECT_ROOT,
                                    capture_output=True, text=True, timeout=30).stdout.strip())
    except (OSError, subprocess.SubprocessError):
        return {"commit": "unknown", "dirty": None}
    return {"commit": commit or "unknown", "dirty": dirty if commit else None}


def _fmt(value, float_format: str = ".2f") -> str:
    """A cell as text: None empty, floats by ``float_format`` (amounts: 2 decimals), the rest as str."""
    if value is None:
        return ""
    if isinstance(value, float):
        return format(value, float_format)
    return str(value)


def _rule_cell(h: dict, col: str, r: Redactor) -> str:
    if col == "psn":
        return r.person(h["psn_no"])
    if col == "entity_id":
        return r.person(h["entity_id"]) if h["entity_type"] == "psn" else _fmt(h["entity_id"])
    if col == "message_zh":
        return r.text(h["message_zh"])
    return _fmt(h.get(col))
