"""The sandbox's HTTP server: starlette app from the providers' routes, served by uvicorn."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from .engine import SandboxEngine
from .middleware import FaultMiddleware, RecordRequests
from .webhooks import WebhookSender

if TYPE_CHECKING:
    from starlette.types import ASGIApp

    from ..providers import BatchProvider


def app_is_sandbox(app: object) -> bool:
    """Whether ``app`` is a sandbox (not another app served by :class:`SandboxServer`)."""
    return getattr(getattr(app, "state", None), "engine", None) is not None


def create_app(
    engine: SandboxEngine, providers: Mapping[str, type[BatchProvider]] | None = None
) -> Starlette:
    """The sandbox app: each provider's routes mounted under its own prefix."""
    if providers is None:
        from ..plugins import get_registry

        providers = get_registry().providers()
    routes: list[BaseRoute] = []
    mounted: dict[str, str] = {}
    for name, cls in sorted(providers.items()):
        provider_routes = cls.sandbox_routes(engine)
        if not provider_routes:
            continue
        prefix = cls.sandbox_prefix
        if prefix in mounted:
            # providers sharing a prefix (one plugin, one codec) contribute the routes only once
            continue
        mounted[prefix] = name
        routes.append(
            Mount(prefix, routes=provider_routes) if prefix else Mount("", routes=provider_routes)
        )

    async def index(request: Request) -> Response:
        return JSONResponse({"sandbox": "polybatch", "providers": sorted(providers)})

    routes.insert(0, Route("/", index))
    app = Starlette(routes=routes)
    app.state.engine = engine
    # faults inside, recording outside: requests_seen holds faulted requests too (what a client
    # sent, including the SDKs' own retries)
    app.add_middleware(FaultMiddleware, engine=engine, routes=routes)
    app.add_middleware(RecordRequests, engine=engine)
    return app


class SandboxServer:
    """Serve a sandbox on 127.0.0.1 in a background thread (port 0: the OS picks one).

    Use as a context manager; ``url`` is ``http://127.0.0.1:PORT``.
    """

    def __init__(
        self,
        engine: SandboxEngine | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        providers: Mapping[str, type[BatchProvider]] | None = None,
        app: ASGIApp | None = None,
    ) -> None:
        self.engine = engine or SandboxEngine()
        self.host = host
        self.port = port
        #: ``app`` serves another ASGI app instead (a webhook receiver in tests)
        self.app: ASGIApp = app if app is not None else create_app(self.engine, providers)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        #: sends ended batches' webhooks when the engine has a ``webhook_url``
        self.webhooks: WebhookSender | None = None

    @property
    def url(self) -> str:
        """The server's base URL."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> SandboxServer:
        """Bind and start serving; returns once the server accepts connections."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app, log_level="warning", access_log=False, lifespan="off", timeout_keep_alive=30
        )
        self._server = uvicorn.Server(config)
        ready = threading.Event()
        server = self._server

        def serve() -> None:
            async def main() -> None:
                await server.serve(sockets=[sock])

            loop = asyncio.new_event_loop()
            try:
                loop.run_until_complete(main())
            finally:
                loop.close()

        self._thread = threading.Thread(target=serve, name="polybatch-sandbox", daemon=True)
        self._thread.start()
        while not server.started:
            if not self._thread.is_alive():
                raise RuntimeError("sandbox server failed to start")
            ready.wait(0.01)
        if app_is_sandbox(self.app):
            self.webhooks = WebhookSender(self.engine).start()
        return self

    def stop(self) -> None:
        """Stop serving and wait for the thread to end."""
        if self.webhooks is not None:
            self.webhooks.stop()
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
