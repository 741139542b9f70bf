"""``yibao screen``: champion models + rules + graph → ranked clues (线索) in the clue store."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from serving.cli import JSON_OPT, WAREHOUSE_OPT, _emit, _existing_warehouse, _fail, _progress, console

__all__ = ["screen_command", "run_screening", "load_bundle", "print_clues"]

_TYPE_ZH = {"psn": "参保人", "prac": "医师", "fixmedins": "医疗机构", "pharmacy": "药店", "ring": "团伙"}


def load_bundle(settings, *, bundle_path: Optional[Path] = None, model_ref: str = "champion",
                tracking_uri: Optional[str] = None):
    """The scorer bundle from a file, else the registry's ``model_ref``."""
    from models.bundle import ScorerBundle, load_registered

    if bundle_path is not None:
        return ScorerBundle.load(bundle_path)
    return load_registered(tracking_uri or settings.tracking_uri, model_ref)


def run_screening(settings, *, bundle_path: Optional[Path] = None, model_ref: str = "champion",
                  tracking_uri: Optional[str] = None, max_clues: int = 1000, min_p: float = 0.3,
                  progress=None, bundle=None, exports=None) -> tuple[dict, list[dict]]:
    """Screen the warehouse of ``settings`` and upsert the clues; returns (summary, clues). ``bundle``: one
    already loaded (else from ``bundle_path`` or the registry); ``exports``: score the entities on Spark
    (``models.screening.screen``)."""
    from models.calibration import CALIBRATION_FILE, RegionCalibration
    from models.screening import screen
    from serving.clues.store import open_store

    if bundle is None:
        bundle = load_bundle(settings, bundle_path=bundle_path, model_ref=model_ref, tracking_uri=tracking_uri)
    calibration = RegionCalibration.load(settings.warehouse.parent / CALIBRATION_FILE)
    result = screen(settings.warehouse, bundle, max_clues=max_clues, min_p=min_p, calibration=calibration,
                    progress=progress, exports=exports)
    store = open_store(settings.clue_db_url, sla_days=settings.clue_sla_days_by_risk, identity_vault=settings.identity_vault)
    try:
        counts = store.upsert_clues(result.run_id, result.clues)
    finally:
        store.close()
    return result.to_dict() | {"store": settings.clue_db_url.split("@")[-1], "upsert": counts.to_dict(),
                               "model": str(bundle_path) if bundle_path else model_ref}, result.clues


def print_clues(clues: list[dict], n: int = 15) -> None:
    """The top ``n`` clues as a table; on a terminal narrower than 120 columns the name goes under the entity,
    the amount at risk and the sources are left out (``yibao clues list`` shows them) and the reason gets the
    room, so that an 80-column terminal still reads a sentence per clue."""
    narrow = console.width < 120
    t = Table(title=f"线索清单 clue list (前 {min(n, len(clues))} 条 / 共 {len(clues)} 条, 按期望追回金额排序)")
    cols = (("名次", "对象 entity", "P(欺诈)", "期望追回(元)", "主要原因") if narrow else
            ("名次", "对象 entity", "名称", "P(欺诈)", "涉嫌金额(元)", "期望追回(元)", "来源", "主要原因"))
    for c in cols:
        t.add_column(c, justify="right" if c[0] in "名P涉期" and c != "名称" else "left", overflow="fold",
                     ratio=3 if (narrow and c == "主要原因") else None)
    for i, c in enumerate(clues[:n], 1):
        reason = c["reasons"][0]["text_zh"] if c["reasons"] else ""
        who = f"{_TYPE_ZH.get(c['entity_type'], c['entity_type'])} {c['entity_id']}"
        expected = f"{c['p_fraud'] * c['amount_at_risk']:,.0f}"
        if narrow:
            name = c.get("entity_name") or ""
            name = name.split(str(c["entity_id"]), 1)[1].strip() if str(c["entity_id"]) in name else name
            t.add_row(str(i), who + (f"\n{name}" if name else ""),
                      f"{c['p_fraud']:.2f}", expected, reason)
        else:
            t.add_row(str(i), who, c.get("entity_name") or "", f"{c['p_fraud']:.2f}",
                      f"{c['amount_at_risk']:,.0f}", expected, ",".join(c["sources"]), reason)
    console.print(t)


def screen_command(
    warehouse: Optional[Path] = WAREHOUSE_OPT,
    bundle: Optional[Path] = typer.Option(None, help="A scorer bundle file instead of the registered champion."),
    model: str = typer.Option("champion", help="Registered alias or version to use."),
    tracking_uri: Optional[str] = typer.Option(None, help="MLflow tracking URI of the registry (default: settings, "
                                               "sqlite:///mlruns/mlflow.db)."),
    max_clues: int = typer.Option(1000, help="Keep at most this many clues (highest expected recovery first)."),
    min_p: float = typer.Option(0.3, help="A model score at least this high raises a clue on its own."),
    as_json: bool = JSON_OPT,
) -> None:
    """筛查: score every entity with the champion models, gather rule hits and graph evidence, write clues."""
    s = _existing_warehouse(warehouse)
    with _progress(as_json) as bar:
        task = bar.add_task("筛查 screen", total=None)
        try:
            summary, clues = run_screening(s, bundle_path=bundle, model_ref=model, tracking_uri=tracking_uri,
                                           max_clues=max_clues, min_p=min_p,
                                           progress=lambda st, d, n: bar.update(task, completed=d, total=n,
                                                                                description=st))
        except (LookupError, FileNotFoundError, ValueError, ConnectionError) as e:  # LookupError: no such model
            _fail(f"{e}")
    if as_json:
        return _emit(summary, True)
    print_clues(clues)
    console.print(summary["calibration"])
    console.print(f"线索 clues: 新增 {summary['upsert']['new']}, 更新 {summary['upsert']['updated']}, "
                  f"未变 {summary['upsert']['unchanged']} → {summary['store']}  (用时 {summary['seconds']} s)")
    console.print("查看: yibao clues list / yibao clues show ID")
