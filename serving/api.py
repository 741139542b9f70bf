"""The clue API (线索接口) and the investigator page, as ASGI apps the BentoML service mounts.

:func:`create_clue_api` returns a FastAPI app (mounted at ``/api``; its OpenAPI spec is
``/api/openapi.json`` and BentoML merges it into ``/docs.json``):

| route | what |
|---|---|
| ``GET /me`` | the signed-in user, role and what the role may do |
| ``GET /meta`` | states, transitions, typologies, sources, entity types, sorts (for forms) |
| ``GET /status`` | what the service loaded (model, rules, features, store) |
| ``GET /clues`` | the ranked clue list with filters and sorting (audited) |
| ``GET /clues/{id}`` | one clue: reasons, rule hits, claims, graph neighbourhood, history (audited) |
| ``POST /clues/{id}/transitions`` | move a clue (assign, verify, confirm, dismiss, transfer, close) |
| ``POST /clues/{id}/comments`` | add a comment (核查意见) |
| ``POST /clues/{id}/evidence`` | the clue's signed evidence package as a zip (证据包; redacted by role; audited) |
| ``GET /clues/{id}/identities`` | clear resident IDs of the clue's persons (admin; liaison on police cases; audited) |
| ``GET /statistics`` | counts and amounts by state, source, typology, region, age |
| ``GET /overdue`` | high-risk clues past the SLA with a cross-checker to offer |
| ``GET /assignees`` | investigators a clue can be assigned to |

Who may do what is decided by the store (:mod:`serving.clues.access`); this module only maps its
refusals to HTTP: ``AccessDenied`` → 403; a clue the user may not see → 403 for the roles that see only
part of the list (investigator, liaison: the same answer whether the clue exists or not, so nothing
leaks), 404 for the roles that see every clue; an illegal move → 409; bad input → 422.

:func:`create_ui_app` serves ``serving/ui/index.html`` (plain HTML and JavaScript, Chinese labels).
"""

from __future__ import annotations

import base64
import hashlib
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from features.contract import FRAUD_TYPES
from serving import evidence
from serving.auth import USER_KEY, bearer_token
from serving.clues import access
from serving.clues.access import AccessDenied, User
from serving.clues.models import CLUE_ENTITY_TYPES, CLUE_SOURCES, RISK_LEVELS, ROLES
from serving.clues.store import SORTS, ClueInputError, ClueNotFound, UserError
from serving.clues.workflow import REQUIREMENTS, STATES, TRANSITIONS, IllegalTransition, UnknownState
from serving.runtime import Runtime
from serving.scoring import masked

__all__ = ["create_clue_api", "create_ui_app", "UI_FILE"]

UI_FILE = Path(__file__).parent / "ui" / "index.html"
# Roles that see only part of the clue list: for them "not visible" and "does not exist" are one answer.
_PARTIAL_VIEW_ROLES = frozenset({"investigator", "liaison"})


class TransitionIn(BaseModel):
    """A workflow move: the target state and what it needs (查实金额, 理由, 承办人)."""

    to_state: str = Field(description="target state, e.g. confirmed; see GET /meta")
    reason: str | None = Field(None, max_length=2000, description="why (required to dismiss)")
    confirmed_amount: float | None = Field(None, ge=0, description="查实金额 (yuan), required to confirm")
    recovered_amount: float | None = Field(None, ge=0, description="追回金额 (yuan), on a confirmed clue")
    assignee: str | None = Field(None, max_length=80, description="承办人 username, to assign")


class CommentIn(BaseModel):
    text: str = Field(min_length=1, max_length=4000)


def create_clue_api(runtime: Callable[[], Runtime | None]) -> FastAPI:
    """The clue API over the runtime ``runtime()`` returns (None while the service starts)."""
    app = FastAPI(title="医保基金反欺诈 线索接口 (yibao clue API)", version="1",
                  description="Clue list, detail, workflow, comments, statistics. Every route needs "
                              "`Authorization: Bearer <token>`.",
                  docs_url=None, redoc_url=None, openapi_url="/openapi.json")

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
        return _error(403, "forbidden", str(exc))

    @app.exception_handler(ClueNotFound)
    def _not_found(request: Request, exc: ClueNotFound):
        user = request.scope.get("state", {}).get(USER_KEY)
        if user is not None and user.role in _PARTIAL_VIEW_ROLES:
            return _error(403, "forbidden", str(exc))
        return _error(404, "not_found", str(exc))

    @app.exception_handler(IllegalTransition)
    def _illegal(request: Request, exc: IllegalTransition):
        return _error(409, "illegal_transition", str(exc))

    for exc_type in (UnknownState, ValueError, UserError, ClueInputError):
        app.add_exception_handler(exc_type, lambda request, exc: _error(422, "invalid", str(exc)))

    @app.exception_handler(RequestValidationError)
    def _invalid(request: Request, exc: RequestValidationError):  # never echo the input back
        return _error(422, "invalid", "; ".join(f"{'.'.join(str(x) for x in e.get('loc', ()))}: {e.get('msg')}"
                                                for e in exc.errors()))

    @app.exception_handler(StarletteHTTPException)
    def _http(request: Request, exc: StarletteHTTPException):
        codes = {401: "unauthorized", 403: "forbidden", 404: "not_found", 503: "unavailable"}
        return _error(exc.status_code, codes.get(exc.status_code, "error"), str(exc.detail), exc.headers)

    @app.get("/me", summary="当前用户 the signed-in user")
    def me(user: User = Depends(current_user)) -> dict:
        return {"username": user.username, "role": user.role, "role_zh": ROLES[user.role], "region": user.region,
                "may": {action: access.allowed(action, user) for action in access.PERMISSIONS}}

    @app.get("/meta", summary="状态、流转、类型等代码表 code lists for forms")
    def meta(user: User = Depends(current_user)) -> dict:
        return {"states": STATES, "transitions": TRANSITIONS, "requirements": REQUIREMENTS,
                "typologies": {k: v[0] for k, v in FRAUD_TYPES.items()}, "sources": CLUE_SOURCES,
                "entity_types": CLUE_ENTITY_TYPES, "risk_levels": RISK_LEVELS, "sorts": SORTS, "roles": ROLES}

    @app.get("/status", summary="服务载入状态 what the service loaded")
    def status(user: User = Depends(current_user)) -> dict:
        return rt().status()

    @app.get("/clues", summary="线索清单 the ranked clue list")
    def list_clues(user: User = Depends(current_user),
                   state: str | None = Query(None, description="workflow state"),
                   entity_type: str | None = Query(None, description="psn, prac, fixmedins, pharmacy, ring"),
                   typology: str | None = Query(None, description="fraud typology id"),
                   source: str | None = Query(None, description="model, rule, graph, report, referral"),
                   region: str | None = Query(None, pattern=r"^[0-9]{1,6}$", description="admdvs prefix"),
                   min_priority: float | None = Query(None, ge=0),
                   overdue: bool | None = Query(None),
                   sort: Literal["priority", "age", "amount"] = "priority",
                   limit: int = Query(50, ge=1, le=1000), offset: int = Query(0, ge=0)) -> dict:
        return masked(rt().store.list(user, state=state or None, entity_type=entity_type or None,
                                      typology=typology or None, source=source or None, region=region or None,
                                      min_priority=min_priority, overdue=overdue, sort=sort, limit=limit,
                                      offset=offset))

    @app.get("/clues/{clue_id}", summary="线索详情 one clue with its claims and graph (audited)")
    def clue_detail(clue_id: int, user: User = Depends(current_user)) -> dict:
        r = rt()
        detail = r.store.get(clue_id, user)
        setl_ids = list((detail.get("evidence") or {}).get("setl_id") or [])
        claims = evidence.claims(r.settings.warehouse, setl_ids)
        graph = evidence.neighbourhood(r.settings.warehouse, detail, claims["rows"])
        return masked(detail | {"claims": claims, "graph": graph})

    @app.post("/clues/{clue_id}/transitions", summary="流转 move a clue through the workflow")
    def transition(clue_id: int, move: TransitionIn, user: User = Depends(current_user)) -> dict:
        return masked(rt().store.transition(clue_id, move.to_state, user, move.reason,
                                            confirmed_amount=move.confirmed_amount,
                                            recovered_amount=move.recovered_amount, assignee=move.assignee))

    @app.post("/clues/{clue_id}/comments", summary="核查意见 add a comment")
    def comment(clue_id: int, body: CommentIn, user: User = Depends(current_user)) -> dict:
        return masked(rt().store.comment(clue_id, user, body.text))

    @app.post("/clues/{clue_id}/evidence", summary="证据包 the clue's signed evidence package, zipped (audited)",
              response_class=Response,
              responses={200: {"content": {"application/zip": {}},
                               "description": "the package folder as a zip; header X-Package-SHA256"}})
    def evidence_package(clue_id: int, depth: int = Query(1, ge=0, le=3, description="hops of graph neighbourhood"),
                         pdf: bool = Query(True, description="render report.pdf"),
                         user: User = Depends(current_user)) -> Response:
        """Same package as ``yibao evidence export``: identities in clear only for a liaison on a case
        transferred to public security, pseudonyms otherwise. Signed with the key in YIBAO_EVIDENCE_KEY."""
        from serving.evidence_export import export_package, zip_package

        r = rt()
        if r.settings.warehouse is None or not Path(r.settings.warehouse).is_file():
            raise HTTPException(503, "数据仓库不可用 (warehouse not available)")
        with tempfile.TemporaryDirectory(prefix="yibao-evidence-") as tmp:
            folder = Path(tmp) / f"clue-{clue_id}-evidence"
            try:
                export_package(r.settings.warehouse, r.store, clue_id, user, folder, depth=depth,
                               settings=r.settings, model_version=r.model_source, pdf=pdf)
            except FileNotFoundError as e:  # no signing key configured on the server
                raise HTTPException(503, str(e)) from None
            package_hash = hashlib.sha256((folder / "manifest.json").read_bytes()).hexdigest()
            body = zip_package(folder)
        return Response(body, media_type="application/zip", headers={
            "Content-Disposition": f'attachment; filename="{folder.name}.zip"', "X-Package-SHA256": package_hash})

    @app.get("/clues/{clue_id}/identities", summary="身份信息 clear IDs of the clue's persons (audited)")
    def identities(clue_id: int, psn_no: str | None = None, user: User = Depends(current_user)) -> dict:
        try:
            found = rt().store.resolve_identity(clue_id, user, psn_no)
        except FileNotFoundError:
            raise HTTPException(503, "身份库不可用 (identity vault not available)") from None
        return {"clue_id": clue_id, "persons": found}

    @app.get("/statistics", summary="统计 counts and amounts (清仓见底)")
    def statistics(user: User = Depends(current_user)) -> dict:
        return masked(rt().store.statistics(user))

    @app.get("/overdue", summary="逾期线索 high-risk clues past the SLA")
    def overdue(user: User = Depends(current_user)) -> dict:
        return {"items": masked(rt().store.overdue(user))}

    @app.get("/assignees", summary="可分派的核查人员 who a clue can be assigned to")
    def assignees(user: User = Depends(current_user)) -> dict:
        access.require("transition", user)
        return {"items": [{"username": u["username"], "role": u["role"], "role_zh": u["role_zh"],
                           "region": u["region"]} for u in rt().store.users()
                          if u["active"] and u["role"] in ("investigator", "admin")]}

    return app


def create_ui_app() -> FastAPI:
    """The investigator page at ``/ui`` (one HTML file; its script allowed by hash in the CSP)."""
    html = UI_FILE.read_text(encoding="utf-8")
    hashes = " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(s.encode('utf-8')).digest()).decode()}'"
                      for s in re.findall(r"<script>(.*?)</script>", html, flags=re.S))
    csp = (f"default-src 'none'; script-src {hashes}; style-src 'unsafe-inline'; connect-src 'self'; "
           "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
    headers = {"Content-Security-Policy": csp, "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer",
               "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}
    ui = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    @ui.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> HTMLResponse:
        return HTMLResponse(html, headers=headers)

    return ui


def _error(status: int, error: str, detail: str, headers: dict[str, Any] | None = None) -> JSONResponse:
    return JSONResponse({"error": error, "detail": masked(detail)}, status_code=status, headers=headers,
                        media_type="application/json; charset=utf-8")
