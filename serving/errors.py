"""Refusals and errors of the service as answers (错误应答): one body everywhere, 422 for bad input, no values logged.

Every answer that is not a success has the body of :class:`serving.schemas.ErrorBody`:
``{"error": code word, "detail": sentence, "fields": [{field, problem, message_zh}]}`` (``fields`` only for
bad input). Bad input is **422** naming each field in Chinese (:func:`field_problems`); the input itself
is never echoed, and the log gets the route, the field names and the error types, never the values.

BentoML 1.4 answers its own routes (``/precheck``, ``/score``) differently: a validation error is a 400
whose log line carries the rejected values (pydantic's ``input_value=...``), a refusal raised as a
BentoML exception becomes a JSON *list*, and its generated OpenAPI spec documents 400/404/500 only.
:func:`install` (called by the service before BentoML builds its app) puts this module's answers in
their place: it wraps BentoML's per-route handler so that a validation error, an
:class:`InvalidRequest` or a BentoML exception is answered here, and it completes the spec BentoML
serves at ``/docs.json`` with the answer types and every status code the routes give.

>>> field_path(("body", "lines", 0, "cnt")), field_path(("query", "offset")), field_path(("setl", "setl_time"))
('lines[0].cnt', 'offset', 'setl.setl_time')
>>> field_problems([{"type": "finite_number", "loc": ("lines", 0, "pric"), "msg": "Input should be a finite number"}])
[{'field': 'lines[0].pric', 'problem': 'finite_number', 'message_zh': '须为有限数值, 不接受 NaN 或 Infinity'}]
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterable, Mapping
from http import HTTPStatus
from typing import Any

from starlette.responses import JSONResponse

from serving.clues.access import mask_id

__all__ = ["InvalidRequest", "CatchUnexpected", "field_path", "field_problems", "error_body", "error_response", "invalid_response",
           "log_unexpected", "ERROR_CODES", "install"]

log = logging.getLogger("yibao.serving")

# HTTP status -> the error code word of the body (when the raiser names none).
ERROR_CODES = {400: "invalid", 401: "unauthorized", 403: "forbidden", 404: "not_found", 409: "conflict",
               410: "gone", 415: "unsupported_media_type", 422: "invalid", 429: "too_many_jobs", 500: "error", 503: "unavailable", 504: "timeout"}
# pydantic error type -> what to tell the user (formatted with the error's context).
_PROBLEM_ZH = {
    "missing": "缺少必填字段",
    "extra_forbidden": "不认识的字段, 不允许",
    "finite_number": "须为有限数值, 不接受 NaN 或 Infinity",
    "greater_than_equal": "不得小于 {ge}",
    "less_than_equal": "不得大于 {le}",
    "greater_than": "须大于 {gt}",
    "less_than": "须小于 {lt}",
    "string_too_long": "过长, 最多 {max_length} 个字符",
    "string_too_short": "不能为空",
    "too_long": "条目过多, 最多 {max_length} 条",
    "too_short": "条目过少, 至少 {min_length} 条",
    "string_pattern_mismatch": "格式不符",
    "literal_error": "须为 {expected} 之一",
    "enum": "须为 {expected} 之一",
    "string_type": "须为文本",
    "int_type": "须为整数",
    "int_parsing": "须为整数",
    "int_from_float": "须为整数",
    "int_parsing_size": "整数过大",
    "float_type": "须为数值",
    "float_parsing": "须为数值",
    "decimal_type": "须为金额 (数值或如 12.50 的文本)",
    "decimal_parsing": "须为金额 (数值或如 12.50 的文本)",
    "bool_type": "须为 true 或 false",
    "bool_parsing": "须为 true 或 false",
    "dict_type": "须为对象",
    "model_type": "须为对象",
    "model_attributes_type": "须为对象",
    "list_type": "须为数组",
    "json_invalid": "请求体不是有效的 JSON",
    "json_type": "请求体须为 JSON",
    "none_required": "须为空",
}


class InvalidRequest(ValueError):
    """Bad input found after the types were checked: ``problems`` is a list of (field, problem, message_zh)."""

    def __init__(self, problems: Iterable[tuple[str, str, str]]) -> None:
        self.problems = [{"field": f, "problem": p, "message_zh": m} for f, p, m in problems]
        super().__init__("; ".join(f"{p['field']}: {p['problem']}" for p in self.problems))


def field_path(loc: Iterable[Any]) -> str:
    """``("body", "lines", 0, "cnt")`` → ``lines[0].cnt``: where a validation error is, as a user reads it."""
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path", "header", "cookie"):
        parts = parts[1:]
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        elif str(p).startswith(("function-", "constrained-", "lax-", "json-or-python")):
            continue  # pydantic's internal validator names
        else:
            out += ("." if out else "") + str(p)
    return out or "(body)"


def field_problems(errors: Iterable[Mapping[str, Any]]) -> list[dict[str, str]]:
    """The problems of pydantic ``errors`` (``exc.errors()``) in Chinese, without the rejected values."""
    out = []
    for e in errors:
        kind = str(e.get("type", "value_error"))
        ctx = {k: _short(v) for k, v in (e.get("ctx") or {}).items()}
        template = _PROBLEM_ZH.get(kind)
        if template is not None:
            try:
                message = template.format(**ctx)
            except (KeyError, IndexError):
                message = template
        elif kind in ("value_error", "assertion_error"):
            message = "取值无效"
        else:  # our own PydanticCustomError messages are Chinese already and hold no input
            message = str(e.get("msg") or kind)
        out.append({"field": mask_id(field_path(e.get("loc", ()))), "problem": kind, "message_zh": mask_id(message)})
    return out


def error_body(status: int, detail: str, *, error: str | None = None,
               problems: list[dict[str, str]] | None = None) -> dict[str, Any]:
    """The body of every refusal (:class:`serving.schemas.ErrorBody`), resident IDs masked."""
    body: dict[str, Any] = {"error": error or ERROR_CODES.get(status, "error"), "detail": mask_id(detail)}
    if problems is not None:
        body["fields"] = problems
    return body


def error_response(status: int, detail: str, *, error: str | None = None, headers: Mapping[str, str] | None = None,
                   problems: list[dict[str, str]] | None = None) -> JSONResponse:
    return JSONResponse(error_body(status, detail, error=error, problems=problems), status_code=status,
                        headers=dict(headers or {}) | {"Cache-Control": "no-store"},
                        media_type="application/json; charset=utf-8")


def invalid_response(problems: list[dict[str, str]], *, route: str = "") -> JSONResponse:
    """422 naming every field at fault; logs the route, field names and error types, never the values."""
    log.warning("422 %s: %s", route, ", ".join(f"{p['field']} ({p['problem']})" for p in problems))
    detail = "请求无效 (invalid request): " + "; ".join(f"{p['field']}: {p['message_zh']}" for p in problems)
    return error_response(422, detail, problems=problems)


def log_unexpected(route: str, exc: BaseException) -> None:
    """Log a failure with its type and where it happened, without its message (which may hold input).

    A database error says what the driver said (``database is locked``), first line only: SQLAlchemy's own
    message would add the statement's parameters, i.e. the request's values.
    """
    frames = "".join(traceback.format_tb(exc.__traceback__)[-8:])
    driver = getattr(exc, "orig", None)
    said = f" ({type(driver).__name__}: {mask_id(str(driver).splitlines()[0][:160])})" if driver is not None else ""
    log.error("unexpected %s%s on %s\n%s", type(exc).__name__, said, route, frames)


class CatchUnexpected:
    """ASGI middleware: an exception that escapes the app is answered 500 with the error body and logged by
    :func:`log_unexpected` (type and frames, not the message), instead of a traceback with its values."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = False

        async def _send(message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, _send)
        except Exception as e:  # noqa: BLE001
            log_unexpected(f"{scope.get('method')} {scope.get('path')}", e)
            if started:  # too late for an answer of our own
                raise
            await error_response(500, "服务内部错误 (internal error); 详见服务日志 (see the server log)")(
                scope, receive, send)


def install() -> None:
    """Answer BentoML's routes with this module's bodies and complete its OpenAPI spec (see the module)."""
    from _bentoml_impl.server.app import ServiceAppFactory
    from _bentoml_sdk.service import openapi

    if getattr(ServiceAppFactory.api_endpoint, "_yibao", False):
        return
    endpoint = ServiceAppFactory.api_endpoint

    async def api_endpoint(self, name: str, request):
        from bentoml.exceptions import BentoMLException
        from pydantic import ValidationError

        from starlette.exceptions import HTTPException

        route = f"{request.method} {request.url.path}"
        media_type = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
        if media_type != "application/json":  # the routes take JSON only (BentoML would try forms, files, pickles)
            log.warning("415 %s: %s", route, media_type[:60])
            return error_response(415, "只接受 application/json 请求体 (only application/json is accepted)",
                                  error="unsupported_media_type")
        try:
            return await endpoint(self, name, request)
        except ValidationError as e:
            return invalid_response(field_problems(e.errors(include_input=False, include_url=False)), route=route)
        except InvalidRequest as e:
            return invalid_response(e.problems, route=route)
        except HTTPException as e:  # Starlette's, e.g. an unreadable body
            log.warning("%s %s: %s", e.status_code, route, type(e).__name__)
            return error_response(e.status_code, str(e.detail))
        except BentoMLException as e:
            status = int(e.error_code)
            if status >= 500:
                log.warning("%s %s: %s", status, route, type(e).__name__)
            else:
                log.info("%s %s: %s", status, route, type(e).__name__)
            return error_response(status, str(e) or HTTPStatus(status).phrase)
        except Exception as e:  # noqa: BLE001  (a bug: answered with the same body, logged without input)
            log_unexpected(route, e)
            return error_response(500, "服务内部错误 (internal error); 详见服务日志 (see the server log)")

    api_endpoint._yibao = True  # type: ignore[attr-defined]
    ServiceAppFactory.api_endpoint = api_endpoint

    generate = openapi.generate_spec

    def generate_spec(svc, **kwargs):
        return _CompletedSpec(generate(svc, **kwargs))

    openapi.generate_spec = generate_spec


# -- private ----------------------------------------------------------------------------------------


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 80 else text[:77] + "..."


class _CompletedSpec:
    """BentoML's spec object with :meth:`asdict` completed by :func:`complete_spec`; otherwise the same."""

    def __init__(self, spec) -> None:
        self._spec = spec

    def __getattr__(self, name: str) -> Any:
        return getattr(self._spec, name)

    def asdict(self) -> dict[str, Any]:
        return complete_spec(self._spec.asdict())


def complete_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """Document the answers of BentoML's own routes: answer types, every status code, the error body."""
    from pydantic.json_schema import models_json_schema

    from serving.schemas import ErrorBody, PrecheckResult, ScoreResult

    ref = "#/components/schemas/{model}"
    _, defs = models_json_schema([(m, "serialization") for m in (ErrorBody, PrecheckResult, ScoreResult)],
                                 ref_template=ref)
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(defs.get("$defs", {}))

    def error(description: str) -> dict[str, Any]:
        return {"description": description,
                "content": {"application/json": {"schema": {"$ref": ref.format(model="ErrorBody")}}}}

    refusals = {"401": error("缺少或无效的令牌 (missing or invalid token)"),
                "403": error("角色无权使用此接口 (role may not use this route)"),
                "500": error("服务内部错误 (internal error)"),
                "503": error("服务启动中或模型/仓库不可用 (starting, or no model / warehouse)"),
                "504": error("超时 (not answered in time)")}
    answers = {"/precheck": {"$ref": ref.format(model="PrecheckResult")},
               "/score": {"type": "array", "items": {"$ref": ref.format(model="ScoreResult")}}}
    for path, schema in answers.items():
        op = (spec.get("paths", {}).get(path) or {}).get("post")
        if op is None:
            continue
        op["responses"] = {"200": {"description": "成功 (success)", "content": {"application/json": {"schema": schema}}},
                           "400": error("请求体无法读取 (unreadable body)"),
                           "415": error("只接受 application/json (only JSON bodies)"),
                           "422": error("请求无效, 逐字段说明 (invalid request, field by field)"), **refusals}
        op.setdefault("security", [{"bearer": []}])
    metrics = (spec.get("paths", {}).get("/metrics") or {}).get("get")
    if metrics is not None:
        metrics["responses"] = {"200": {"description": "Prometheus metrics",
                                        "content": {"text/plain": {"schema": {"type": "string"}}}},
                                "401": refusals["401"], "403": refusals["403"]}
    spec.setdefault("components", {}).setdefault("securitySchemes", {})["bearer"] = {"type": "http",
                                                                                   "scheme": "bearer"}
    spec["openapi"] = "3.1.0"  # the schemas are pydantic's JSON Schema (2020-12), as OpenAPI 3.1 has it
    return spec
