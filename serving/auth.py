"""Token authentication on every route of the service (令牌认证): an ASGI middleware.

Every request but the health probes and the log-in page (:data:`PUBLIC_PATHS`) must carry
``Authorization: Bearer <token>``; the token is looked up with :meth:`ClueStore.authenticate` (only its
SHA-256 is stored) on every request, so a disabled account is refused from its next request on. With the
default SQLite store the lookup is a read of a local file, tens of microseconds: it runs on the event loop,
which saves two thread hand-overs per request. With a database server (PostgreSQL) it is a network round
trip and runs in a worker thread, so that the loop is not held up meanwhile. No token, an unknown token
or a disabled account: **401**. A role that may not use a route (:data:`ROUTE_ROLES`, e.g. a liaison
calling ``/precheck``): **403**. The user found is put in the request scope
(``scope["state"]["yibao_user"]``) for the clue API, which checks each clue action against
:mod:`serving.clues.access`.

The middleware never logs a token, and answers with the same body for a missing and a wrong one.

>>> bearer_token([(b"authorization", b"Bearer abc.DEF-123")])
'abc.DEF-123'
>>> bearer_token([(b"authorization", b"Basic xyz")]) is None
True
>>> route_allowed("/precheck", "liaison"), route_allowed("/api/clues", "liaison")
(False, True)
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import anyio

from serving.clues.access import User
from serving.ui.assets import VENDOR_FILES

__all__ = ["BearerAuth", "PUBLIC_PATHS", "ROUTE_ROLES", "USER_KEY", "bearer_token", "route_allowed"]

# Reachable without a token: health probes for the orchestrator, the static log-in page and the libraries
# it loads (they hold no data; everything the page shows comes from the API with the token the user types in).
PUBLIC_PATHS = frozenset({"/livez", "/readyz", "/healthz", "/ui", "/ui/"}
                         | {f"/ui/vendor/{name}" for name in VENDOR_FILES})
# Routes only some roles may use; every other route is open to any signed-in user (the clue API then
# applies serving.clues.access per clue). The pre-check and scoring serve the analysts, investigators
# and the hospital systems' service accounts (admin); a public-security liaison has no use for them.
ROUTE_ROLES: dict[str, frozenset[str]] = {
    "/precheck": frozenset({"analyst", "investigator", "admin"}),
    "/score": frozenset({"analyst", "investigator", "admin"}),
    "/metrics": frozenset({"analyst", "admin"}),
    "/api/monitoring": frozenset({"analyst", "admin"}),  # 监测: the analysts' view of rules and models
    "/api/outcomes": frozenset({"analyst", "admin"}),  # 查实率 per rule, typology, model level
}
USER_KEY = "yibao_user"


def bearer_token(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The token of an ``Authorization: Bearer`` header, or None."""
    for name, value in headers:
        if name.lower() == b"authorization":
            scheme, _, token = value.decode("latin-1").strip().partition(" ")
            token = token.strip()
            return token if scheme.lower() == "bearer" and token else None
    return None


def route_allowed(path: str, role: str) -> bool:
    """Whether ``role`` may use the route at ``path`` at all (:data:`ROUTE_ROLES`)."""
    roles = ROUTE_ROLES.get(path.rstrip("/") or "/")
    return roles is None or role in roles


AUTH_THREADS = 4  # token checks on a database server at once, per process


class BearerAuth:
    """ASGI middleware: authenticate every request with the clue store (see the module docstring).

    ``authenticate()`` gives the lookup (a token to a :class:`User` or None) and whether it may run on
    the event loop (a local file) rather than in a worker thread (a database server); while it gives None
    (the service is still starting) requests get 503.
    """

    def __init__(self, app, *,
                 authenticate: Callable[[], tuple[Callable[[str], User | None], bool] | None]) -> None:
        self.app = app
        self._authenticate = authenticate
        self._limiter: anyio.CapacityLimiter | None = None  # made in the event loop, on first use

    async def __call__(self, scope: dict[str, Any], receive, send) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        if path in PUBLIC_PATHS:
            return await self.app(scope, receive, send)
        lookup = self._authenticate()
        if lookup is None:
            return await _refuse(scope, send, 503, "starting", "服务启动中, 请稍候 (the service is starting)")
        authenticate, inline = lookup
        token = bearer_token(scope.get("headers") or [])
        if not token:
            user = None
        elif inline:
            user = authenticate(token)
        else:  # threads of its own: the default pool is the clue routes' (serving.service.ClueThreads)
            if self._limiter is None:
                self._limiter = anyio.CapacityLimiter(AUTH_THREADS)
            user = await anyio.to_thread.run_sync(authenticate, token, limiter=self._limiter)
        if user is None:
            return await _refuse(scope, send, 401, "unauthorized",
                                 "缺少或无效的令牌 (missing or invalid token): send Authorization: Bearer <token>")
        if not route_allowed(path, user.role):
            return await _refuse(scope, send, 403, "forbidden",
                                 f"角色 {user.role} 无权访问 {path} (role {user.role} may not use {path})")
        scope.setdefault("state", {})[USER_KEY] = user
        await self.app(scope, receive, send)


async def _refuse(scope, send, status: int, error: str, detail: str) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008})
        return
    body = json.dumps({"error": error, "detail": detail}, ensure_ascii=False).encode("utf-8")
    headers = [(b"content-type", b"application/json; charset=utf-8"), (b"content-length", str(len(body)).encode()),
               (b"cache-control", b"no-store")]
    if status == 401:
        headers.append((b"www-authenticate", b'Bearer realm="yibao"'))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
