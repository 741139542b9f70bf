"""The request time-out (serving.timeout): same answers as BentoML's, nothing of a request kept after it."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import json
import weakref

import pytest

from serving.timeout import RequestTimeout

REQUEST_STATE = contextvars.ContextVar("request_state")  # stands in for the trace span of a request


class _State:
    pass


async def _call(app, timeout: float) -> tuple[list[dict], weakref.ref]:
    sent: list[dict] = []

    async def send(message):
        sent.append(message)

    async def receive():
        return {"type": "http.request", "body": b""}

    async def request():
        state = _State()
        token = REQUEST_STATE.set(state)  # as the tracing middleware does before ours
        try:
            await RequestTimeout(app, timeout=timeout)({"type": "http", "path": "/precheck"}, receive, send)
        finally:
            REQUEST_STATE.reset(token)  # so that only copies of the context made meanwhile still hold it
        return weakref.ref(state)

    ref = await asyncio.get_running_loop().create_task(request(), context=contextvars.Context())
    return sent, ref


async def _answer(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


def test_an_answered_request_leaves_nothing_behind():
    async def main():
        sent, ref = await _call(_answer, timeout=60)
        gc.collect()
        # BentoML's own middleware kept a 60 s timer holding the request's context (and its span) alive
        return sent, ref() is None, [h for h in asyncio.get_running_loop()._scheduled if not h.cancelled()]

    sent, released, live_timers = asyncio.run(main())
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"] and sent[0]["status"] == 200
    assert released and live_timers == []


def test_no_answer_in_time_is_a_504_with_the_reason():
    async def slow(scope, receive, send):
        await asyncio.sleep(5)
        await _answer(scope, receive, send)

    sent, _ = asyncio.run(_call(slow, timeout=0.05))
    assert sent[0]["status"] == 504
    body = json.loads(sent[1]["body"])
    assert body["error"] == "timeout" and "0.05 seconds" in body["detail"]


def test_an_app_that_fails_before_answering_fails_at_once_not_at_the_timeout():
    async def broken(scope, receive, send):
        raise RuntimeError("boom")

    async def main():
        loop = asyncio.get_running_loop()
        t = loop.time()
        with pytest.raises(RuntimeError, match="boom"):
            await _call(broken, timeout=30)
        return loop.time() - t

    assert asyncio.run(main()) < 5


def test_the_service_installs_it_for_bentoml(monkeypatch):
    monkeypatch.setenv("YIBAO_DEV", "1")  # the service refuses the public pseudonym key otherwise
    import serving.service  # noqa: F401  (installs on import)
    from bentoml._internal.server.http import traffic

    assert traffic.TimeoutMiddleware is RequestTimeout
