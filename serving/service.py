"""The BentoML service (筛查服务): pre-check of one visit, batch scoring, the clue API and the investigator page.

Thin on purpose: it loads what training and the batch jobs produced (:func:`serving.runtime.load_runtime`:
the champion bundle, the rule checker, the clue store) and calls functions from :mod:`serving.scoring`,
:mod:`serving.api` and :mod:`models`.

- ``POST /precheck``: one visit with its fee lines → rule hits, risk score, top reasons in Chinese,
  for 事前提醒 (``mode: "pre"``) or 事中审核 (``mode: "during"``).
- ``POST /score``: settlements by id or as feature rows → P(fraud); adaptive batching merges
  concurrent requests into one model call.
- ``/api/...``: the clue API (:mod:`serving.api`); ``/api/openapi.json``, and ``/docs.json`` for all routes.
- ``/ui``: the investigator page.

Every route but ``/ui`` and the health probes needs ``Authorization: Bearer <token>``
(:mod:`serving.auth`). Run it with ``yibao serve`` or ``bentoml serve serving.service:Screening``.

Configuration, read once here: the settings of :func:`features.config.load_settings` (warehouse, clue
store URL, MLflow tracking URI), ``YIBAO_BUNDLE`` (a scorer bundle file instead of the registered
champion), ``YIBAO_MODEL_REF`` (registry alias or version, default ``champion``), ``YIBAO_SERVE_WORKERS``
and ``YIBAO_SERVE_THREADS`` (processes, and request threads per process), and for background work
(:mod:`serving.jobs`) ``YIBAO_JOB_DIR`` (default ``evidence_jobs`` beside the warehouse),
``YIBAO_JOB_PROCESSES`` (per worker, default 1), ``YIBAO_JOB_PER_USER`` (2) and ``YIBAO_JOB_MAX_LIVE`` (16).
The service refuses to start with the public development pseudonym key unless ``YIBAO_DEV=1`` (what
``yibao serve --dev`` sets; simulated data only).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Annotated, Any, Literal

# One thread per native pool (OpenMP: LightGBM, scikit-learn; OpenBLAS: numpy, scipy), set before any of them
# is loaded. A request scores one row and requests already run side by side; a team of threads per call
# made each request wait for a second core (its p99 rose on a busy machine) and kept threads spinning
# after it (2 workers at 30 req/s: 48 ms of CPU per request with OMP_WAIT_POLICY=ACTIVE, 19 ms with one
# thread). Set in the environment of the launch to override.
for _pool in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_pool, "1")

import bentoml
from bentoml.exceptions import ServiceUnavailable
from bentoml.validators import ContentType

from features.config import load_settings, public_key_refusal
from models.rules.precheck import VisitError
from serving.api import create_clue_api, create_ui_app
from serving.auth import BearerAuth
from serving.errors import InvalidRequest
from serving.errors import install as install_error_answers
from serving.jobs import JobLimits, JobPool
from serving.runtime import Runtime, freeze_heap, install_log_redaction, load_runtime
from serving.schemas import Diagnoses, FeeLines, ScoreItems, Settlement, VisitRow, implausible_visit
from serving.scoring import precheck_visit, score_settlements, visit_error_problem
from serving.timeout import install as install_request_timeout

__all__ = ["Screening", "Precheck"]

log = logging.getLogger("yibao.serving")


def _refuse_the_public_key() -> None:
    # as `yibao serve` does without --dev (a warehouse pseudonymised with the public key is reversible);
    # here at import, so that `bentoml serve` stops before it starts a worker instead of restarting it
    settings = load_settings()
    if settings.using_dev_key and os.environ.get("YIBAO_DEV") != "1":
        log.error("%s", public_key_refusal(settings, dev_switch="YIBAO_DEV=1 (yibao serve --dev)"))
        raise SystemExit(2)


_refuse_the_public_key()
install_request_timeout()  # before BentoML builds the app: see serving.timeout
install_error_answers()  # BentoML's routes answer refusals with our bodies, documented: see serving.errors

# An answer in JSON. Saying so up front spares BentoML working the media type out from the answer's JSON
# schema on every response (a tenth of the service's CPU per pre-check when it did).
JSONAnswer = Annotated[dict[str, Any], ContentType("application/json")]
JSONAnswers = Annotated[list[dict[str, Any]], ContentType("application/json")]


# Limits of background work (serving.jobs.JobLimits) from the environment.
_JOB_ENV = {"processes": "YIBAO_JOB_PROCESSES", "per_user": "YIBAO_JOB_PER_USER", "max_live": "YIBAO_JOB_MAX_LIVE"}


def _runtime() -> Runtime | None:
    try:
        return bentoml.get_current_service().runtime
    except Exception:  # not instantiated yet (start-up) or torn down
        return None


def _authenticator():
    rt = _runtime()
    return None if rt is None else (rt.store.authenticate, rt.store.engine.dialect.name == "sqlite")


clue_api = create_clue_api(_runtime)
ui_app = create_ui_app()


def _load(*, jobs: bool) -> Runtime:
    """What a service process serves with; ``jobs``: also the pool of background evidence exports."""
    install_log_redaction()
    niceness = int(os.environ.get("YIBAO_SERVE_NICE") or 0)
    if niceness > 0:  # behind the pre-check's own processes on a shared machine (yibao serve --nice)
        os.nice(niceness)
    bundle = os.environ.get("YIBAO_BUNDLE")
    runtime = load_runtime(load_settings(), bundle_path=Path(bundle) if bundle else None,
                           model_ref=os.environ.get("YIBAO_MODEL_REF", "champion"))
    if jobs and runtime.checker is not None:  # evidence packages read the warehouse
        folder = os.environ.get("YIBAO_JOB_DIR") or runtime.settings.warehouse.parent / "evidence_jobs"
        limits = JobLimits(**{k: int(os.environ[v]) for k, v in _JOB_ENV.items() if os.environ.get(v)})
        runtime.jobs = JobPool(db_url=runtime.settings.clue_db_url, settings=runtime.settings,
                               folder=Path(folder), limits=limits, model_version=runtime.model_source)
        runtime.jobs.start(wait=False)  # the service is ready meanwhile
    runtime.setup_seconds["freeze_heap"] = freeze_heap()
    log.info("yibao service ready: %s", {k: v for k, v in runtime.status().items() if k != "notes"})
    return runtime


# The routes of both services below, written once: each class makes its own BentoML method of them. A
# method's name is its function's, so these keep the route's name.


def precheck(self, setl: Settlement, lines: FeeLines | None = None,  # type: ignore[valid-type]
              diagnoses: Diagnoses | None = None, mdtrt: VisitRow | None = None,  # type: ignore[valid-type]
              mode: Literal["pre", "during"] = "pre") -> JSONAnswer:
    """预审 one visit: settlement, fee lines, diagnoses (contract field names) → hits, score, reasons.

    Each field is typed and bounded (:mod:`serving.schemas`); a visit that cannot be true (negative
    amounts on a settlement that is not a refund, a line amount that is not cnt × pric) is a 422 too.
    """
    rt = self.runtime
    if rt.checker is None:
        raise ServiceUnavailable(rt.notes.get("warehouse", "pre-check not available"))
    lines, diagnoses = lines or [], diagnoses or []
    problems = implausible_visit(setl, lines)
    if problems:
        raise InvalidRequest(problems)
    visit = {"setl": setl.model_dump(exclude_none=True), "lines": [x.model_dump(exclude_none=True) for x in lines],
             "diagnoses": [x.model_dump(exclude_none=True) for x in diagnoses]}
    if mdtrt is not None:
        visit["mdtrt"] = mdtrt.model_dump(exclude_none=True)
    try:
        return precheck_visit(visit, checker=rt.checker, bundle=rt.bundle, features=rt.features,
                              online=rt.online, mode=mode, model_note=rt.notes.get("model") or rt.notes.get("features"))
    except VisitError as e:
        raise InvalidRequest([visit_error_problem(e)]) from None


def score(self, settlements: ScoreItems) -> JSONAnswers:  # type: ignore[valid-type]
    """评分 settlements: ``{"setl_id": ...}`` or ``{"features": {...}}`` each → P(fraud), in order.

    Concurrent requests are merged into one model call (adaptive batching). The latency cap is
    generous: BentoML drops (503) a queued request whose estimated wait exceeds it, and a batch
    reading older settlements from the warehouse can take a second on a busy machine.
    """
    rt = self.runtime
    if rt.bundle is None or "setl" not in rt.bundle.scorers:
        raise ServiceUnavailable(rt.notes.get("model", "no settlement model loaded"))
    items = [x.model_dump(exclude_none=True) if hasattr(x, "model_dump") else x for x in settlements]
    return score_settlements(items, bundle=rt.bundle, features=rt.features)


def close(self) -> None:
    self.runtime.close()


_SCORE_ROUTE = {"route": "/score", "batchable": True, "max_batch_size": 1000, "max_latency_ms": 20_000}
_SERVICE = {"workers": int(os.environ.get("YIBAO_SERVE_WORKERS", "1")),
            "threads": int(os.environ.get("YIBAO_SERVE_THREADS", "4")), "traffic": {"timeout": 60}}


@bentoml.asgi_app(clue_api, path="/api", name="clue_api")
@bentoml.asgi_app(ui_app, path="/ui", name="ui")
@bentoml.service(name="yibao_screening", **_SERVICE)
class Screening:
    """医保基金反欺诈筛查服务: pre-check, scoring, clues (see the module docstring)."""

    def __init__(self) -> None:
        self.runtime = _load(jobs=True)

    precheck = bentoml.api(route="/precheck")(precheck)
    score = bentoml.api(**_SCORE_ROUTE)(score)
    close = bentoml.on_shutdown(close)


@bentoml.service(name="yibao_precheck", **_SERVICE)
class Precheck:
    """预审接口 the hospitals' interface alone: ``POST /precheck`` and ``POST /score``, nothing else.

    The same routes and answers as :class:`Screening`'s, in processes of their own: the clue desk's
    requests, its store writes and its evidence exports do not share a process (an interpreter lock, a
    thread pool) with the pre-check, and the desk can run at a lower CPU priority
    (``yibao serve --nice``) so that on a shared machine the pre-check is served first. Run it with
    ``yibao serve --precheck-only`` (``bentoml serve serving.service:Precheck``) beside the desk.
    """

    def __init__(self) -> None:
        self.runtime = _load(jobs=False)

    precheck = bentoml.api(route="/precheck")(precheck)
    score = bentoml.api(**_SCORE_ROUTE)(score)
    close = bentoml.on_shutdown(close)


Screening.add_asgi_middleware(BearerAuth, authenticate=_authenticator)
Precheck.add_asgi_middleware(BearerAuth, authenticate=_authenticator)

CLUE_THREADS = 6  # the clue routes' threads per process (ClueThreads below)


class ClueThreads:
    """ASGI middleware: the clue routes' threads per service process (``YIBAO_CLUE_THREADS``, default
    :data:`CLUE_THREADS`), set once from the event loop on the first request.

    FastAPI runs the clue API's routes in anyio's default thread pool, 40 threads. On SQLite their
    transactions take the store's write lock one at a time (every read writes its audit entry), so 40
    threads do not serve more; under load they queued for the lock and took the interpreter from the
    pre-check's threads in turn. Soak with 8 exports at 100 req/s, 2 workers (docs/benchmarks.md): 40
    threads → 6, clue routes p99 9.9–10.5 s → 1.6–3.0 s, pre-check p99 during the exports 379 → 231–273
    ms, outside them 104 → 61–84 ms (two runs). The pre-check keeps its own threads (``YIBAO_SERVE_THREADS``).
    """

    def __init__(self, app, *, threads: int | None = None) -> None:
        self.app = app
        self.threads = threads if threads is not None else int(os.environ.get("YIBAO_CLUE_THREADS") or CLUE_THREADS)
        self._set = False

    async def __call__(self, scope, receive, send) -> None:
        if not self._set:
            import anyio.to_thread

            anyio.to_thread.current_default_thread_limiter().total_tokens = max(1, self.threads)
            self._set = True
        await self.app(scope, receive, send)


Screening.add_asgi_middleware(ClueThreads)
