"""What the service loads once at start-up (服务运行时): settings, clue store, champion model, rule checker.

:func:`load_runtime` reads nothing from the environment itself: the service passes the settings
(:func:`features.config.load_settings`) and, for tests, a bundle file. Whatever cannot be loaded is
named in ``Runtime.notes`` and the service runs without it: without a model the pre-check gives rule
hits only (``model_score_available: false``) and ``/score`` answers 503; without a warehouse the
pre-check answers 503; the clue API needs only the store.

Start-up ends with :func:`freeze_heap`: what was loaded stays for the life of the worker, and the
garbage collector need not walk it again (on ``small`` a full collection over it took about 100 ms, a
pause every request in flight waited out).

Logging: :func:`install_log_redaction` adds a filter to the log handlers that masks resident IDs and
drops bearer tokens from every record, whoever logs it.
"""

from __future__ import annotations

import gc
import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

from features.config import Settings
from models.bundle import ScorerBundle
from models.rules.precheck import Prechecker
from serving.clues.access import contains_resident_id, mask_id
from serving.clues.store import ClueStore, store_for
from serving.jobs import JobPool
from serving.online import OnlineSettlementFeatures
from serving.scoring import SettlementFeatures

__all__ = ["Runtime", "load_runtime", "freeze_heap", "install_log_redaction", "redact"]

log = logging.getLogger("yibao.serving")


@dataclass
class Runtime:
    """Everything a request needs; built once per worker process."""

    settings: Settings
    store: ClueStore
    bundle: ScorerBundle | None = None
    model_source: str | None = None
    checker: Prechecker | None = None
    features: SettlementFeatures | None = None
    online: OnlineSettlementFeatures | None = None  # feat_setl of a visit the warehouse has not seen
    notes: dict[str, str] = field(default_factory=dict)
    setup_seconds: dict[str, float] = field(default_factory=dict)
    jobs: JobPool | None = None  # background work (evidence packages); set by the service

    def status(self) -> dict:
        """What is loaded, for ``GET /api/status`` (no paths with secrets, no tokens)."""
        return {
            "model": self.model_source, "model_levels": self.bundle.levels if self.bundle else [],
            "model_meta": {k: v for k, v in (self.bundle.meta if self.bundle else {}).items()
                           if k in ("trained_at", "rule_pack_version", "seed", "eval_window")},
            "precheck": self.checker is not None,
            "rules_realtime": len(self.checker.rules) if self.checker else 0,
            "settlement_features": None if self.features is None else {
                "as_of": self.features.as_of, "rows_in_memory": self.features.hot_rows},
            "online_features": None if self.online is None else {"peer_stats_as_of": self.online.as_of},
            "clue_store": self.store.engine.dialect.name, "notes": self.notes, "setup_seconds": self.setup_seconds,
            "jobs": None if self.jobs is None else self.jobs.status(),
        }

    def close(self) -> None:
        if self.jobs is not None:
            self.jobs.close()
        if self.checker is not None:
            self.checker.close()
        self.store.close()


def freeze_heap() -> float:
    """Collect once, then move every live object out of the collector's reach (:func:`gc.freeze`).

    Called when start-up is done. The runtime holds the rule history, features and models as hundreds of
    thousands of long-lived objects; without this every full collection walks them all while the worker
    holds the GIL. Objects made later (per request) are collected as usual. Returns the seconds taken.
    """
    started = time.perf_counter()
    gc.collect()
    gc.freeze()
    return round(time.perf_counter() - started, 3)


def load_runtime(settings: Settings, *, bundle_path: Path | None = None, model_ref: str = "champion",
                 precheck_sessions: int = 2) -> Runtime:
    """Open the clue store, load the model (``bundle_path`` or the registered ``model_ref``), the rule
    checker and the settlement features of ``settings.warehouse``."""
    t0 = time.perf_counter()
    rt = Runtime(settings=settings, store=store_for(settings))
    rt.setup_seconds["store"] = round(time.perf_counter() - t0, 2)
    t0 = time.perf_counter()
    try:
        if bundle_path is not None:
            rt.bundle, rt.model_source = ScorerBundle.load(Path(bundle_path)), f"file:{Path(bundle_path).name}"
        else:
            from models.bundle import load_registered

            rt.bundle, rt.model_source = load_registered(settings.tracking_uri, model_ref), f"registry:{model_ref}"
        _single_threaded(rt.bundle)
    except Exception as e:  # the clue API and the rules work without a model
        rt.notes["model"] = f"未载入模型 (no model loaded): {type(e).__name__}: {mask_id(str(e))[:300]}"
        log.warning("no model loaded: %s", rt.notes["model"])
    rt.setup_seconds["model"] = round(time.perf_counter() - t0, 2)
    if not settings.warehouse.is_file():
        rt.notes["warehouse"] = f"仓库不存在 (warehouse not found): {settings.warehouse.name}"
        log.warning("%s", rt.notes["warehouse"])
        return rt
    t0 = time.perf_counter()
    from models.rules.config import DEFAULT_CONFIG, load_config

    config = load_config(settings.rules_config if settings.rules_config.is_file() else DEFAULT_CONFIG)
    rt.checker = Prechecker(settings.warehouse, config=config, sessions=precheck_sessions)
    rt.setup_seconds["precheck"] = round(time.perf_counter() - t0, 2)
    if rt.bundle is not None and "setl" in rt.bundle.scorers:
        t0 = time.perf_counter()
        try:
            rt.features = SettlementFeatures(settings.warehouse, rt.bundle.features["setl"])
        except (FileNotFoundError, ValueError) as e:
            rt.notes["features"] = f"未载入结算特征 (settlement features not loaded): {e}"
            log.warning("%s", rt.notes["features"])
        rt.setup_seconds["features"] = round(time.perf_counter() - t0, 2)
        t0 = time.perf_counter()
        try:
            rt.online = OnlineSettlementFeatures(settings.warehouse, rt.checker, rt.bundle.features["setl"])
        except (FileNotFoundError, ValueError) as e:
            rt.notes["online_features"] = f"未载入实时特征 (online features not loaded): {e}"
            log.warning("%s", rt.notes["online_features"])
        rt.setup_seconds["online_features"] = round(time.perf_counter() - t0, 2)
    return rt


def redact(text: str) -> str:
    """``text`` without bearer tokens and with resident IDs masked (what a log line may carry).

    An ID percent-encoded in a logged address (``/api/clues/%EF%BC%91...``, full-width digits) is found
    in the decoded text; the line is then logged decoded and masked.

    >>> redact("GET /api/clues/%EF%BC%91%EF%BC%91%EF%BC%90%EF%BC%91%EF%BC%90%EF%BC%95%EF%BC%91%EF%BC%99"
    ...        "%EF%BC%94%EF%BC%99%EF%BC%91%EF%BC%92%EF%BC%93%EF%BC%91%EF%BC%90%EF%BC%90%EF%BC%92X 404")
    'GET /api/clues/110105***********X 404'
    """
    clean = mask_id(_BEARER.sub(r"\1[redacted]", text))
    if "%" in clean:
        decoded = unquote(clean)
        if decoded != clean and contains_resident_id(decoded):
            clean = mask_id(decoded)
    return clean


class _RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: leave it to the handler
            return True
        clean = redact(message)
        if record.exc_info and record.exc_info[1] is not None:
            clean_exc = redact(str(record.exc_info[1]))
            if clean_exc != str(record.exc_info[1]):  # the traceback would repeat the clear value
                clean += f" [{type(record.exc_info[1]).__name__}: {clean_exc}]"
                record.exc_info, record.exc_text = None, None
        if clean != message:
            record.msg, record.args = clean, None
        return True


def install_log_redaction() -> None:
    """Add the redacting filter to every handler of every logger configured so far (once each)."""
    loggers = [logging.getLogger()] + [lg for lg in logging.root.manager.loggerDict.values()
                                       if isinstance(lg, logging.Logger)]
    for logger in loggers:
        for handler in logger.handlers:
            if not any(isinstance(f, _RedactingFilter) for f in handler.filters):
                handler.addFilter(_RedactingFilter())


# -- private ------------------------------------------------------------------------------------------

_BEARER = re.compile(r"((?:[Bb]earer|token=|Token:?)\s*)[A-Za-z0-9_\-.~+/=]{8,}")


def _single_threaded(bundle: ScorerBundle) -> None:
    # One request scores one row: LightGBM's thread fan-out per prediction costs ~15 ms on two busy
    # cores and saves nothing, and requests already run side by side.
    for scorer in bundle.scorers.values():
        if hasattr(scorer, "use_threads"):
            scorer.use_threads(1)
