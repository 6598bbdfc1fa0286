"""The sandbox's ASGI middleware: requests recorded, and HTTP faults applied by route kind.

:class:`FaultMiddleware` asks the engine (which asks the pure
:class:`~polybatch.sandbox.faults.FaultInjector`) for the fault of each request; which faults a
route can suffer follows the :class:`~polybatch.sandbox.faults.RouteKind` its provider declared on
it (``route.kind``, see :meth:`polybatch.sandbox.api.ProviderApi.route`), found by matching the
request against the app's routes as the router will.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import Sequence

from starlette.routing import BaseRoute, Match, Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .engine import SandboxEngine
from .faults import Faults, RouteKind


def route_kind(routes: Sequence[BaseRoute], scope: Scope) -> RouteKind:
    """The kind declared by the route that will serve ``scope`` (``OTHER`` if none declares one)."""
    for route in routes:
        match, child = route.matches(scope)
        if match is not Match.FULL:
            continue
        if isinstance(route, Mount):
            return route_kind(route.routes, {**scope, **child})
        kind = getattr(route, "kind", RouteKind.OTHER)
        return kind if isinstance(kind, RouteKind) else RouteKind.OTHER
    return RouteKind.OTHER


class RecordRequests:
    """ASGI middleware noting every request in ``engine.requests_seen``."""

    def __init__(self, app: ASGIApp, engine: SandboxEngine) -> None:
        self.app = app
        self.engine = engine

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            with self.engine.lock:
                self.engine.requests_seen.append((scope["method"], scope["path"]))
        if self.engine.store is None or scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        engine = self.engine

        async def persisting_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                engine.persist()  # what the client is about to be told is on disk first
            await send(message)

        await self.app(scope, receive, persisting_send)


class DroppedConnection(Exception):
    """Raised after the response has started: the server then closes the connection."""


class _QuietDrops(logging.Filter):
    """Keep uvicorn from logging a traceback for every connection the sandbox drops on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, DroppedConnection)


_quiet = _QuietDrops()
logging.getLogger("uvicorn.error").addFilter(_quiet)


class FaultMiddleware:
    """ASGI middleware injecting the HTTP-level faults of ``engine.faults`` on every route."""

    def __init__(self, app: ASGIApp, engine: SandboxEngine, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        self.engine = engine
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        faults = self.engine.faults
        if scope["type"] != "http" or not faults.http_active:
            await self.app(scope, receive, send)
            return
        method: str = scope["method"]
        kind, code = self.engine.decide_http_fault(
            method, scope["path"], route_kind(self.routes, scope)
        )
        if kind is None:
            await self.app(scope, receive, send)
        elif kind == "slow":
            await asyncio.sleep(faults.slow_seconds)
            await self.app(scope, receive, send)
        elif kind == "error":
            await self._error(send, code, faults)
        elif kind == "upload_reject":
            await self._error(send, 503, faults, retry=False, message="upload rejected")
        elif kind == "drop":
            await _drain(receive)
            await _start_then_drop(send)
        else:  # create_timeout: the server does the work, the client never hears of it
            await self.app(scope, receive, _swallow)
            await _start_then_drop(send)

    @staticmethod
    async def _error(
        send: Send, status: int, faults: Faults, *, retry: bool = True, message: str = ""
    ) -> None:
        rate_limited = status == 429
        kind = "rate_limit_error" if rate_limited else "api_error"
        text = message or ("Rate limit reached" if rate_limited else "The server had an error")
        # one body both SDKs read: OpenAI unwraps "error", Anthropic reads error.type
        body = json.dumps(
            {
                "type": "error",
                "error": {
                    "type": kind,
                    "message": f"{text} (injected fault)",
                    "code": "rate_limit_exceeded" if rate_limited else "server_error",
                    "param": None,
                },
            }
        ).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"retry-after-ms", str(max(1, round(faults.retry_after * 1000))).encode()),
            (b"retry-after", str(max(1, math.ceil(faults.retry_after))).encode()),
            (b"x-should-retry", b"true" if retry else b"false"),
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


async def _drain(receive: Receive) -> None:
    """Read the request body, so the client has finished sending when the connection drops."""
    while True:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body"):
            return


async def _swallow(message: Message) -> None:
    """A ``send`` that discards the app's response."""


async def _start_then_drop(send: Send) -> None:
    # promise a body, then abort: uvicorn closes the connection once a started response fails,
    # and the client sees a truncated response (a transport error it may retry)
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"content-length", b"1024")],
        }
    )
    raise DroppedConnection("connection dropped (injected fault)")
