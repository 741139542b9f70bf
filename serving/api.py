"""The clue API (线索接口) and the investigator page, as ASGI apps the BentoML service mounts.

:func:`create_clue_api` returns a FastAPI app (mounted at ``/api``; its OpenAPI spec is
``/api/openapi.json`` and BentoML merges it into ``/docs.json``):

| route | what |
|---|---|
| ``GET /me`` | the signed-in user, role and what the role may do |
| ``GET /meta`` | states, transitions, typologies, sources, entity types, sorts (for forms) |
| ``GET /status`` | what the service loaded (model, rules, features, store) |
| ``GET /clues`` | the ranked clue list with filters and sorting (audited) |
| ``GET /clues/export.xlsx`` | the filtered list as an Excel workbook (导出清单; audited) |
| ``POST /clues/bulk-assign`` | assign several clues to one investigator (批量分派; each move audited) |
| ``GET /clues/{id}`` | one clue: reasons, rule hits, claims, graph neighbourhood, history (audited) |
| ``POST /clues/{id}/transitions`` | move a clue (assign, verify, confirm, dismiss, transfer, close) |
| ``POST /clues/{id}/comments`` | add a comment (核查意见) |
| ``POST /clues/{id}/attachments`` | attach a file (附件: 现场核查记录, 病历; the body is the file; kept with its SHA-256) |
| ``GET /clues/{id}/attachments/{attachment_id}`` | one attachment, checked against its hash (audited) |
| ``POST /clues/{id}/referral-outcome`` | record what public security did with a transferred clue (公安反馈; liaison) |
| ``POST /clues/{id}/evidence/jobs`` | start building the clue's evidence package in the background (202, a job) |
| ``GET /jobs``, ``GET /jobs/{job_id}`` | the user's background jobs; one job's state |
| ``GET /jobs/{job_id}/download`` | the finished package as a zip (证据包; redacted by role; audited) |
| ``POST /clues/{id}/evidence`` | the same package, the request waiting for the background pool |
| ``GET /clues/{id}/identities`` | clear resident IDs of the clue's persons (admin; liaison on police cases; audited) |
| ``GET /statistics`` | counts and amounts by state, source, typology, region, age, risk (the list's filters) |
| ``GET /overdue`` | clues past their 核查期限 with a cross-checker to offer |
| ``GET /assignees`` | investigators a clue can be assigned to |
| ``GET /monitoring`` | the monitor's findings (``yibao monitor``, ``models.monitoring``; analysts and admins) |
| ``GET /outcomes`` | 查实率: confirmation rates of the decided clues per rule, typology and model level (analysts, admins) |

Who may do what is decided by the store (:mod:`serving.clues.access`); this module only maps its
refusals to HTTP: ``AccessDenied`` → 403; a clue the user may not see → 403 for the roles that see only
part of the list (investigator, liaison: the same answer whether the clue exists or not, so nothing
leaks), 404 for the roles that see every clue; an illegal move → 409; bad input → 422 naming each field
(:mod:`serving.errors`); too many background jobs → 429. Every value taken is typed and bounded
(:mod:`serving.schemas`), every answer has a declared type, and every refusal the body ``ErrorBody``.
A transition, comment, attachment or 公安反馈 with an ``Idempotency-Key`` header is done once: a retry gets
the first answer.

:func:`create_ui_app` serves ``serving/ui/index.html`` (plain HTML and JavaScript, Chinese labels) and the
libraries it loads from ``/ui/vendor/`` (Cytoscape.js for the case graph, installed by ``scripts/setup.sh``).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import threading
from datetime import datetime
from collections.abc import Callable
from pathlib import Path as FilePath
from typing import Annotated, Any, Literal
from urllib.parse import quote

import anyio
from fastapi import Depends, FastAPI, Header, HTTPException, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from features.contract import FRAUD_TYPES, code_values
from serving import evidence
from serving.auth import USER_KEY, bearer_token
from serving.clues import access
from serving.clues.access import AccessDenied, User
from serving.clues.attachments import ATTACHMENT_KINDS, MAX_BYTES, MEDIA_TYPES
from serving.clues.models import CLUE_ENTITY_TYPES, CLUE_SOURCES, RISK_LEVELS, ROLES
from serving.clues.export import XLSX_MEDIA_TYPE, clue_list_xlsx
from serving.clues.store import (SORT_ORDERS, SORTS, AttachmentCorrupted, ClueInputError, ClueNotFound,
                                 IdempotencyConflict, JobNotFound, Replayed, StoreBusy, TooManyJobs, UserError)
from serving.clues.workflow import (REFERRAL_OUTCOMES, REQUIREMENTS, STATES, TRANSITIONS, IllegalTransition,
                                    UnknownState)
from serving.errors import CatchUnexpected, error_response, field_problems, invalid_response
from serving.runtime import Runtime
from serving.schemas import (MAX_ID, AssigneeList, AttachmentOut, BulkAssignIn, BulkAssignOut, ClueDetail, ClueExportQuery,
                             ClueFilters, ClueList, ClueListQuery, ClueRecord, CommentIn, CommentOut, ErrorBody,
                             Identities, IdempotencyKeyText, JobList, JobOut, Me, Meta, MonitorReportOut, OutcomesOut, OverdueList,
                             ReferralOutcomeIn, ServiceStatus, Statistics, TransitionIn)
from serving.scoring import masked
from serving.ui.assets import VENDOR_DIR, VENDOR_FILES

__all__ = ["create_clue_api", "create_ui_app", "UI_FILE"]

UI_FILE = FilePath(__file__).parent / "ui" / "index.html"
# Roles that see only part of the clue list: for them "not visible" and "does not exist" are one answer.
_PARTIAL_VIEW_ROLES = frozenset({"investigator", "liaison"})
# Every route may answer these: no or a wrong token (the middleware), a bug, starting up, too slow.
_ALWAYS = (401, 500, 503, 504)
_WHY = {401: "缺少或无效的令牌 (missing or invalid token)", 403: "无权 (not allowed)",
        404: "不存在 (not found)", 409: "状态不允许 (conflict with the current state)",
        410: "已过期删除 (expired)", 413: "文件过大 (file too large)", 422: "请求无效, 逐字段说明 (invalid request, field by field)",
        429: "任务过多, 稍后再试 (too many jobs; try later)", 500: "服务内部错误 (internal error)",
        503: "服务启动中或依赖不可用 (starting, or a dependency unavailable)", 504: "超时 (timed out)"}
_ZIP = {"content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}},
        "description": "the package folder as a zip; header X-Package-SHA256"}

ClueIdPath = Annotated[int, Path(ge=1, le=MAX_ID, description="线索编号 clue id (1..2^63-1)")]
AttachmentIdPath = Annotated[int, Path(ge=1, le=MAX_ID, description="附件编号 attachment id")]
AttachmentKind = Literal[tuple(ATTACHMENT_KINDS)]  # type: ignore[valid-type]
_FILE_BODY = {"requestBody": {"required": True, "description": "the file's bytes (PDF, JPEG, PNG or TIFF)",
                              "content": {"application/octet-stream": {"schema": {"type": "string",
                                                                                  "format": "binary"}}}}}
_FILE = {"content": {t: {"schema": {"type": "string", "format": "binary"}} for t in MEDIA_TYPES},
         "description": "the attachment's bytes, as stored, in its own format; header X-Content-SHA256"}
JobIdPath = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$", description="任务编号 job id")]
IdempotencyHeader = Annotated[IdempotencyKeyText | None, Header(
    alias="Idempotency-Key", description="重试键: the same key again returns the first answer and writes nothing")]
_XLSX = {"content": {XLSX_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}}},
         "description": "the filtered clue list as an .xlsx workbook (Chinese headers, amounts as numbers)"}


async def _body_at_most(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 past ``limit`` bytes (before reading it when it says its length)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"文件过大 (file too large): {int(declared):,} 字节 > {limit:,}")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise HTTPException(413, f"文件过大 (file too large): > {limit:,} 字节")
    return bytes(body)


def _answers(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The documented refusals of a route: ``codes`` and :data:`_ALWAYS`, each with the error body."""
    return {c: {"model": ErrorBody, "description": _WHY[c]} for c in sorted({*codes, *_ALWAYS})}


def create_clue_api(runtime: Callable[[], Runtime | None]) -> FastAPI:
    """The clue API over the runtime ``runtime()`` returns (None while the service starts)."""
    app = FastAPI(title="医保基金反欺诈 线索接口 (yibao clue API)", version="2",
                  description="Clue list, detail, workflow, comments, statistics, evidence jobs. Every route needs "
                              "`Authorization: Bearer <token>`. Every refusal has the body ErrorBody.",
                  docs_url=None, redoc_url=None, openapi_url="/openapi.json")
    app.add_middleware(CatchUnexpected)
    details_cache = evidence.EvidenceCache()  # claims and graph of recently read clues

    def rt() -> Runtime:
        r = runtime()
        if r is None:
            raise HTTPException(503, "服务启动中 (the service is starting)")
        return r

    def current_user(request: Request) -> User:
        state = request.scope.setdefault("state", {})
        user = state.get(USER_KEY)
        if user is None:  # mounted without the middleware: authenticate here
            token = bearer_token(request.scope.get("headers") or [])
            user = rt().store.authenticate(token) if token else None
            if user is None:
                raise HTTPException(401, "缺少或无效的令牌 (missing or invalid token)",
                                    headers={"WWW-Authenticate": 'Bearer realm="yibao"'})
            state[USER_KEY] = user
        return user

    @app.exception_handler(AccessDenied)
    def _denied(request: Request, exc: AccessDenied):
        return error_response(403, str(exc), error="forbidden")

    @app.exception_handler(ClueNotFound)
    def _not_found(request: Request, exc: ClueNotFound):
        user = request.scope.get("state", {}).get(USER_KEY)
        if user is not None and user.role in _PARTIAL_VIEW_ROLES:
            return error_response(403, str(exc), error="forbidden")
        return error_response(404, str(exc), error="not_found")

    @app.exception_handler(AttachmentCorrupted)
    def _corrupted(request: Request, exc: AttachmentCorrupted):
        return error_response(500, str(exc), error="corrupted")

    @app.exception_handler(JobNotFound)
    def _no_job(request: Request, exc: JobNotFound):
        return error_response(404, str(exc), error="not_found")

    @app.exception_handler(IllegalTransition)
    def _illegal(request: Request, exc: IllegalTransition):
        return error_response(409, str(exc), error="illegal_transition")

    @app.exception_handler(StoreBusy)
    def _store_busy(request: Request, exc: StoreBusy):
        return error_response(503, str(exc), error="busy", headers={"Retry-After": "5"})

    @app.exception_handler(TooManyJobs)
    def _busy(request: Request, exc: TooManyJobs):
        return error_response(429, str(exc), error="too_many_jobs", headers={"Retry-After": "30"})

    for exc_type in (UnknownState, ValueError, UserError, ClueInputError, IdempotencyConflict):
        app.add_exception_handler(exc_type, lambda request, exc: error_response(422, str(exc), error="invalid"))

    @app.exception_handler(RequestValidationError)
    def _invalid(request: Request, exc: RequestValidationError):  # never echo the input back, nor log it
        return invalid_response(field_problems(exc.errors()), route=f"{request.method} {request.url.path}")

    @app.exception_handler(StarletteHTTPException)
    def _http(request: Request, exc: StarletteHTTPException):
        if exc.status_code == 400:  # FastAPI's "error parsing the body": bad input like any other, 422
            return invalid_response([{"field": "(body)", "problem": "json_invalid",
                                      "message_zh": "请求体不是有效的 JSON (the body is not valid JSON)"}],
                                    route=f"{request.method} {request.url.path}")
        return error_response(exc.status_code, str(exc.detail), headers=exc.headers)

    @app.get("/me", summary="当前用户 the signed-in user", response_model=Me, responses=_answers())
    def me(user: User = Depends(current_user)) -> dict:
        return {"username": user.username, "role": user.role, "role_zh": ROLES[user.role], "region": user.region,
                "may": {action: access.allowed(action, user) for action in access.PERMISSIONS}}

    @app.get("/meta", summary="状态、流转、类型等代码表 code lists for forms", response_model=Meta,
             responses=_answers())
    def meta(user: User = Depends(current_user)) -> dict:
        return {"states": STATES, "transitions": TRANSITIONS, "requirements": REQUIREMENTS,
                "typologies": {k: v[0] for k, v in FRAUD_TYPES.items()}, "sources": CLUE_SOURCES,
                "entity_types": CLUE_ENTITY_TYPES, "risk_levels": RISK_LEVELS, "sorts": SORTS,
                "sort_orders": SORT_ORDERS, "roles": ROLES, "sla_days": rt().store.sla_days_by_risk,
                "regions": code_values("admdvs"), "med_types": code_values("med_type"), "rules": _rule_names(rt()),
                "referral_outcomes": REFERRAL_OUTCOMES, "attachment_kinds": ATTACHMENT_KINDS}

    @app.get("/status", summary="服务载入状态 what the service loaded", response_model=ServiceStatus,
             responses=_answers())
    def status(user: User = Depends(current_user)) -> dict:
        return rt().status()

    @app.get("/clues", summary="线索清单 the ranked clue list", response_model=ClueList, responses=_answers(422))
    def list_clues(query: Annotated[ClueListQuery, Query()], user: User = Depends(current_user)) -> dict:
        """Filters (``assignee`` = your username: 我的线索; ``q``: part of a code or name), sort, one page.
        The same filters narrow ``GET /statistics`` and ``GET /clues/export.xlsx``."""
        return masked(rt().store.list(user, sort=query.sort, order=query.order, limit=query.limit,
                                      offset=query.offset, **query.filters()))

    @app.get("/clues/export.xlsx", summary="导出清单 the filtered list as Excel (audited)", response_class=Response,
             responses={200: _XLSX, **_answers(422)})
    def export_clues(query: Annotated[ClueExportQuery, Query()], user: User = Depends(current_user)) -> Response:
        """The clues of the list with these filters and sort (at most ``limit``, 10,000), one row each, in a
        workbook: Chinese headers, amounts and probabilities as numbers, a sheet 筛选条件 with the filters."""
        r = rt()
        out = r.store.export_list(user, sort=query.sort, order=query.order, limit=query.limit, **query.filters())
        body = clue_list_xlsx(masked(out["items"]), filters=query.filters() | {"sort": query.sort},
                              total=out["total"], user=user.username, sla_days=r.store.sla_days_by_risk)
        name = f"clues-{datetime.now():%Y%m%d-%H%M%S}.xlsx"
        return Response(body, media_type=XLSX_MEDIA_TYPE, headers={
            "Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store",
            "X-Total-Count": str(out["total"]), "X-Exported-Count": str(len(out["items"]))})

    @app.post("/clues/bulk-assign", summary="批量分派 assign several clues to one investigator",
              response_model=BulkAssignOut, responses=_answers(403, 422))
    def bulk_assign(body: BulkAssignIn, user: User = Depends(current_user)) -> dict:
        """Each clue moves as a single assignment would (same checks, each audited); a clue the user may not
        see or whose state does not allow it is listed under ``refused`` with the reason, the others move.
        An assignee who is not an active investigator refuses the whole batch (422)."""
        return masked(rt().store.bulk_assign(body.clue_ids, body.assignee, user, body.reason))

    @app.get("/clues/{clue_id}", summary="线索详情 one clue with its claims and graph (audited)",
             response_model=ClueDetail, responses=_answers(403, 404, 422))
    def clue_detail(clue_id: ClueIdPath, user: User = Depends(current_user)) -> dict:
        r = rt()
        detail = r.store.get(clue_id, user)
        claims, graph = details_cache.get(r.settings.warehouse, detail)
        return masked(detail | {"claims": claims, "graph": graph})

    @app.post("/clues/{clue_id}/transitions", summary="流转 move a clue through the workflow",
              response_model=ClueRecord, responses=_answers(403, 404, 409, 422))
    def transition(clue_id: ClueIdPath, move: TransitionIn, response: Response, user: User = Depends(current_user),
                   idempotency_key: IdempotencyHeader = None) -> dict:
        """With ``Idempotency-Key`` a retry returns the first answer (header ``Idempotent-Replayed: true``)."""
        out = rt().store.transition(clue_id, move.to_state, user, move.reason, confirmed_amount=move.confirmed_amount,
                                    recovered_amount=move.recovered_amount, assignee=move.assignee,
                                    idempotency_key=idempotency_key)
        _mark_replay(response, out)
        return masked(out)

    @app.post("/clues/{clue_id}/referral-outcome", summary="公安反馈 record public security's outcome",
              response_model=ClueRecord, responses=_answers(403, 404, 409, 422))
    def referral_outcome(clue_id: ClueIdPath, body: ReferralOutcomeIn, response: Response,
                         user: User = Depends(current_user), idempotency_key: IdempotencyHeader = None) -> dict:
        """受理/立案/不立案/退回 with the decision's date and document number, on a clue in 移送公安 (409
        otherwise); by a liaison or investigator who sees the clue, or an admin (403 otherwise). Audited;
        after 立案, 不立案 or 退回 the clue may be closed and counts as cleared. With ``Idempotency-Key`` a
        retry returns the first answer and records nothing."""
        out = rt().store.record_referral_outcome(clue_id, user, body.outcome, body.outcome_date, body.doc_no,
                                                 body.note, idempotency_key=idempotency_key)
        _mark_replay(response, out)
        return masked(out)

    @app.post("/clues/{clue_id}/comments", summary="核查意见 add a comment", response_model=CommentOut,
              responses=_answers(403, 404, 422))
    def comment(clue_id: ClueIdPath, body: CommentIn, response: Response, user: User = Depends(current_user),
                idempotency_key: IdempotencyHeader = None) -> dict:
        """With ``Idempotency-Key`` a retry returns the first answer and adds no second comment."""
        out = rt().store.comment(clue_id, user, body.text, idempotency_key=idempotency_key)
        _mark_replay(response, out)
        return masked(out)

    @app.post("/clues/{clue_id}/attachments", summary="上传附件 attach a file (现场核查记录, 病历 …; audited)",
              status_code=201, response_model=AttachmentOut, responses=_answers(403, 404, 413, 422),
              openapi_extra=_FILE_BODY)
    async def attach(clue_id: ClueIdPath, request: Request, response: Response,
                     kind: AttachmentKind = Query(description="附件类别: " + ", ".join(
                         f"{k} {v}" for k, v in ATTACHMENT_KINDS.items())),
                     filename: str = Query("", max_length=200, description="the file's name, as the user sees it"),
                     user: User = Depends(current_user), idempotency_key: IdempotencyHeader = None) -> dict:
        """The request body is the file itself. Kept with its SHA-256 in the clue store, append-only; PDF,
        JPEG, PNG or TIFF judged by the content (422 otherwise), at most 20 MB (413). By whoever may
        comment on the clue. With ``Idempotency-Key`` a retry returns the first answer and stores nothing."""
        content = await _body_at_most(request, MAX_BYTES)
        out = await anyio.to_thread.run_sync(lambda: rt().store.attach(
            clue_id, user, content, filename, kind, idempotency_key=idempotency_key))
        _mark_replay(response, out)
        return masked(out)

    @app.get("/clues/{clue_id}/attachments/{attachment_id}", summary="下载附件 one attachment (audited)",
             response_class=Response, responses={200: _FILE, **_answers(403, 404, 422)})
    def attachment(clue_id: ClueIdPath, attachment_id: AttachmentIdPath, user: User = Depends(current_user)) -> Response:
        """The bytes as stored, checked against the SHA-256 recorded with them (a mismatch is refused)."""
        meta, content = rt().store.attachment(clue_id, attachment_id, user)
        return Response(content, media_type=meta["media_type"], headers={
            "Content-Disposition": f"attachment; filename=\"attachment-{meta['id']}\"; "
                                   f"filename*=UTF-8''{quote(meta['filename'])}",
            "X-Content-SHA256": meta["sha256"], "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})

    @app.post("/clues/{clue_id}/evidence/jobs", summary="证据包任务 start building the evidence package (audited)",
              status_code=202, response_model=JobOut, responses=_answers(403, 404, 422, 429))
    def evidence_job(clue_id: ClueIdPath, user: User = Depends(current_user),
                     depth: int = Query(1, ge=0, le=3, description="hops of graph neighbourhood"),
                     pdf: bool = Query(True, description="render report.pdf")) -> dict:
        """Queued for a background process; poll ``status_url``, then fetch ``download_url``. A user may have
        a few jobs queued or running at once (429 beyond that)."""
        r = rt()
        job, _ = _jobs(r).submit_evidence(r.store, user, clue_id, depth=depth, pdf=pdf)
        return _job_out(job)

    @app.post("/clues/{clue_id}/evidence", summary="证据包 the clue's signed evidence package, zipped (audited)",
              response_class=Response, responses={200: _ZIP, **_answers(403, 404, 422, 429)})
    async def evidence_package(clue_id: ClueIdPath, user: User = Depends(current_user),
                               depth: int = Query(1, ge=0, le=3, description="hops of graph neighbourhood"),
                               pdf: bool = Query(True, description="render report.pdf")) -> Response:
        """The same package as ``yibao evidence export``, built by the background pool while this request
        waits (without holding a request thread): identities in clear only for a liaison on a case
        transferred to public security, pseudonyms otherwise. Signed with the key in YIBAO_EVIDENCE_KEY.
        For long exports prefer ``POST /clues/{id}/evidence/jobs``."""
        r = rt()
        job, future = await anyio.to_thread.run_sync(
            lambda: _jobs(r).submit_evidence(r.store, user, clue_id, depth=depth, pdf=pdf))
        try:
            result = await asyncio.wrap_future(future)
        except FileNotFoundError as e:  # no signing key configured on the server
            raise HTTPException(503, str(e)) from None
        await anyio.to_thread.run_sync(lambda: r.store.record_download(job["id"], user))
        return FileResponse(_jobs(r).result_path(job["id"]), media_type="application/zip", headers={
            "Content-Disposition": f'attachment; filename="{result["filename"]}"',
            "X-Package-SHA256": result["sha256"], "Cache-Control": "no-store"})

    @app.get("/jobs", summary="我的后台任务 my background jobs", response_model=JobList, responses=_answers())
    def my_jobs(user: User = Depends(current_user)) -> dict:
        return {"items": [_job_out(j) for j in rt().store.jobs(user)]}

    @app.get("/jobs/{job_id}", summary="任务状态 one job's state", response_model=JobOut, responses=_answers(404, 422))
    def job_status(job_id: JobIdPath, user: User = Depends(current_user)) -> dict:
        return _job_out(rt().store.job(job_id, user))

    @app.get("/jobs/{job_id}/download", summary="下载任务结果 the finished package (audited)",
             response_class=Response, responses={200: _ZIP, **_answers(404, 409, 410, 422)})
    def job_download(job_id: JobIdPath, user: User = Depends(current_user)) -> Response:
        r = rt()
        job = r.store.job(job_id, user)
        if job["state"] != "done":
            why = f": {job['error']}" if job["error"] else ""
            raise HTTPException(409, f"任务{job['state_zh']}, 尚无结果 (job is {job['state']}, no result yet){why}")
        path = _jobs(r).result_path(job_id)
        if not path.is_file():
            raise HTTPException(410, "结果已过期删除, 请重新导出 (the result has expired; export again)")
        r.store.record_download(job_id, user)
        return FileResponse(path, media_type="application/zip", headers={
            "Content-Disposition": f'attachment; filename="{job["result"]["filename"]}"',
            "X-Package-SHA256": job["result"]["sha256"], "Cache-Control": "no-store"})

    @app.get("/clues/{clue_id}/identities", summary="身份信息 clear IDs of the clue's persons (audited)",
             response_model=Identities, responses=_answers(403, 404, 422))
    def identities(clue_id: ClueIdPath, user: User = Depends(current_user),
                   psn_no: str | None = Query(None, min_length=1, max_length=64)) -> dict:
        try:
            found = rt().store.resolve_identity(clue_id, user, psn_no)
        except FileNotFoundError:
            raise HTTPException(503, "身份库不可用 (identity vault not available)") from None
        return {"clue_id": clue_id, "persons": found}

    @app.get("/statistics", summary="统计 counts and amounts (清仓见底), over the list's filters",
             response_model=Statistics, responses=_answers(422))
    def statistics(query: Annotated[ClueFilters, Query()], user: User = Depends(current_user)) -> dict:
        return masked(rt().store.statistics(user, **query.filters()))

    monitor_cache = _MonitorCache()

    @app.get("/monitoring", summary="监测 rule hit rates, evasion, unreadable codes, drift (analysts)",
             response_model=MonitorReportOut, responses=_answers(403, 503))
    def monitoring(user: User = Depends(current_user)) -> dict:
        if user.role not in ("analyst", "admin"):  # also when mounted without the middleware (ROUTE_ROLES)
            raise AccessDenied(f"角色 {user.role} 无权查看监测 (role {user.role} may not see the monitor)")
        r = rt()
        if not r.settings.warehouse.is_file():
            raise HTTPException(503, "仓库不存在 (warehouse not found)")
        return masked(monitor_cache.report(r.settings.warehouse, r.bundle))

    @app.get("/outcomes", summary="查实率 confirmation rates per rule, typology and model level (analysts)",
             response_model=OutcomesOut, responses=_answers(403))
    def outcomes(user: User = Depends(current_user)) -> dict:
        if user.role not in ("analyst", "admin"):  # also when mounted without the middleware (ROUTE_ROLES)
            raise AccessDenied(f"角色 {user.role} 无权查看查实率 (role {user.role} may not see the outcomes)")
        from models.ranking import ENTITY_ZH
        from models.rules.outcomes import outcome_rates

        r = rt()
        decided = r.store.decided_clues()
        views = outcome_rates(decided)
        names = {"rule": _rule_names(r), "typology": {k: v[0] for k, v in FRAUD_TYPES.items()}, "level": ENTITY_ZH}
        return {"decided": len(decided),
                "overall": sum(d["confirmed"] for d in decided) / len(decided) if decided else None,
                "views": {view: [{"key": key, "name_zh": names[view].get(key, key), "decided": o.decided,
                                  "confirmed": o.confirmed, "rate": o.rate, "low": o.low, "high": o.high,
                                  "review": o.review, "text_zh": o.text_zh}
                                 for key, o in sorted(rates.items(), key=lambda kv: (-kv[1].decided, kv[0]))]
                          for view, rates in views.items()}}

    @app.get("/overdue", summary="逾期线索 clues past their 核查期限", response_model=OverdueList,
             responses=_answers(403))
    def overdue(user: User = Depends(current_user)) -> dict:
        return {"items": masked(rt().store.overdue(user))}

    @app.get("/assignees", summary="可分派的核查人员 who a clue can be assigned to", response_model=AssigneeList,
             responses=_answers(403))
    def assignees(user: User = Depends(current_user)) -> dict:
        access.require("transition", user)
        return {"items": [{"username": u["username"], "role": u["role"], "role_zh": u["role_zh"],
                           "region": u["region"]} for u in rt().store.users()
                          if u["active"] and u["role"] in ("investigator", "admin")]}

    return app


def create_ui_app(vendor_dir: FilePath = VENDOR_DIR) -> FastAPI:
    """The investigator page at ``/ui`` (one HTML file; its script allowed by hash in the CSP) and the
    front-end libraries it loads from ``/ui/vendor/`` (:mod:`serving.ui.assets`, installed by setup;
    404 when not installed, and the page then draws the graph without them)."""
    html = UI_FILE.read_text(encoding="utf-8")
    hashes = " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(s.encode('utf-8')).digest()).decode()}'"
                      for s in re.findall(r"<script>(.*?)</script>", html, flags=re.S))
    csp = (f"default-src 'none'; script-src 'self' {hashes}; style-src 'unsafe-inline'; connect-src 'self'; "
           "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
    headers = {"Content-Security-Policy": csp, "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer",
               "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}
    ui = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    @ui.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> HTMLResponse:
        return HTMLResponse(html, headers=headers)

    @ui.get("/vendor/{name}", include_in_schema=False)
    def vendor(name: str) -> Response:
        path = vendor_dir / name
        if name not in VENDOR_FILES or not path.is_file():
            return Response("not installed: bash scripts/setup.sh", status_code=404, media_type="text/plain")
        return FileResponse(path, media_type=VENDOR_FILES[name],
                            headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "public, max-age=3600"})

    return ui


class _MonitorCache:
    """The monitor's report of a warehouse, computed once per version of the file (it reads the whole
    warehouse: seconds on ``small``) and shared by the requests; one computation at a time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: tuple | None = None
        self._report: dict | None = None

    def report(self, warehouse: FilePath, bundle) -> dict:
        from models.monitoring import monitor

        key = (str(warehouse), warehouse.stat().st_mtime_ns, id(bundle))
        with self._lock:
            if key != self._key:
                self._report = monitor(warehouse, bundle=bundle).to_dict() | {
                    "computed_at": datetime.now().isoformat(timespec="seconds")}
                self._key = key
            return self._report


def _rule_names(r: Runtime) -> dict[str, str]:
    """Rule id -> its Chinese name (规则名称), from the rule config the service runs (every rule, also disabled)."""
    if r.checker is not None:
        config = r.checker.config
    else:
        from models.rules.config import DEFAULT_CONFIG, load_config

        path = r.settings.rules_config
        config = load_config(path if path.is_file() else DEFAULT_CONFIG)
    return {rule.id: rule.name_zh for rule in config.rules}


def _jobs(r: Runtime):
    if r.jobs is None:
        raise HTTPException(503, "证据包导出不可用: 无数据仓库 (evidence export not available: no warehouse)")
    return r.jobs


def _job_out(job: dict) -> dict:
    base = f"/api/jobs/{job['id']}"
    return masked(job) | {"status_url": base, "download_url": f"{base}/download" if job["state"] == "done" else None}


def _mark_replay(response: Response, answer: dict) -> None:
    if isinstance(answer, Replayed):
        response.headers["Idempotent-Replayed"] = "true"
