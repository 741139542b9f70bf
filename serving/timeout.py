"""The request time-out of the service (请求超时), without holding each request's state for its full length.

BentoML 1.4 (``bentoml._internal.server.http.traffic.TimeoutMiddleware``, the ``traffic.timeout`` of the
service) starts a timer for every request and never cancels it. The timer holds a copy of the request's
context (its trace span and everything the span holds) until it fires, 60 s later. At a few hundred
requests a second that is hundreds of thousands of objects, and every full garbage collection walks them
all while the worker holds the GIL: pauses that grew to over 100 ms within a minute under load, felt by
every request in flight (measured with ``benchmarks/bench_serving.py``, see ``docs/benchmarks.md``).

:func:`install` replaces that middleware with :class:`RequestTimeout`: the same status (504, with the
service's error body) when the answer does not start in time, but the timer is cancelled once it does,
and it runs in an empty context, so nothing of the request outlives the request. The service calls :func:`install`
before BentoML builds its app.
"""

from __future__ import annotations

import asyncio
import contextvars
from typing import Any

from bentoml._internal.server.http import traffic

__all__ = ["RequestTimeout", "install"]


class RequestTimeout(traffic.TimeoutMiddleware):
    """BentoML's ``TimeoutMiddleware`` with its timer cancelled when the answer starts (see the module)."""

    async def __call__(self, scope: dict[str, Any], receive, send) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        loop = asyncio.get_running_loop()
        started = loop.create_future()
        timer = loop.call_later(self.timeout, self._set_timer_out, started, context=contextvars.Context())

        async def _send(message: dict[str, Any]) -> None:
            if not started.done():
                started.set_result(None)
            await send(message)

        answer = asyncio.ensure_future(self.app(scope, receive, _send))
        # an app that fails before answering ends the wait too (its error is raised below, not a 504 later)
        answer.add_done_callback(lambda _: started.done() or started.set_result(None))
        try:
            await started
        except asyncio.TimeoutError:
            if answer.cancel():
                await traffic.JSONResponse(
                    {"error": "timeout", "detail": f"{self.timeout} 秒内未能完成 (not able to process the request "
                                                   f"in {self.timeout} seconds)"}, status_code=504,
                )(scope, receive, send)
            return
        finally:
            timer.cancel()
        await answer


def install() -> None:
    """Make BentoML build its apps with :class:`RequestTimeout` (it looks the class up when it builds them)."""
    traffic.TimeoutMiddleware = RequestTimeout
