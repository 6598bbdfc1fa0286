"""The sandbox kit: a pure FaultInjector, and faults decided by the kind a route declares.

A toy ProviderApi with paths no real vendor uses shows that the HTTP faults follow the declared
``RouteKind``, not the URL. (FilesApi round trips through the real ``openai`` SDK are covered by
the plugins' sandbox tests.)
"""

from __future__ import annotations

import ast
import inspect
from typing import Any, ClassVar

import pytest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.testclient import TestClient

import polybatch.sandbox.faults as faults_module
from polybatch.sandbox import Faults, SandboxEngine, create_app
from polybatch.sandbox.api import (
    BatchRequest,
    Outcome,
    ProviderApi,
    RouteKind,
    before_cursor,
    cursor_page,
    number_page,
)
from polybatch.sandbox.faults import FaultInjector
from polybatch.sandbox.middleware import DroppedConnection

KEY = "toy-key"


# -- the injector is pure --------------------------------------------------------------------
def _decisions(injector: FaultInjector) -> list[Any]:
    out: list[Any] = []
    for n in range(60):
        out.append(injector.http(RouteKind.UPLOAD | RouteKind.CREATE, "POST", "/a/{id}", n))
        out.append(injector.http(RouteKind.POLL, "GET", "/a/{id}", n))
        plan = injector.batch("ns", n, 10)
        out.append((sorted(plan.faults), plan.stop_after))
        out.append(injector.truncation(b'{"a": 1}\n{"b": 2}\n', ("ns", n, "output"), 0))
        out.append(injector.item_error("ns", f"c-{n}", 0))
        out.append(injector.invalid_json("ns", f"c-{n}", 0))
    return out


def test_fault_injector_decides_from_seed_and_keys_only() -> None:
    spec = "seed=7,all=0.3"
    first = _decisions(FaultInjector(Faults.parse(spec)))
    assert first == _decisions(FaultInjector(Faults.parse(spec)))
    assert first != _decisions(FaultInjector(Faults.parse("seed=8,all=0.3")))
    injector = FaultInjector(Faults.parse(spec))
    struck = {injector.http(RouteKind.UPLOAD, "POST", "/a", n)[0] for n in range(60)}
    assert {"upload_reject", "error", None} <= struck


def test_upload_and_create_faults_strike_only_routes_of_that_kind() -> None:
    injector = FaultInjector(Faults(upload_reject_rate=1.0, create_timeout_rate=1.0))
    assert injector.http(RouteKind.UPLOAD, "POST", "/x", 0) == ("upload_reject", 503)
    assert injector.http(RouteKind.CREATE, "POST", "/x", 0) == ("create_timeout", 0)
    assert injector.http(RouteKind.UPLOAD | RouteKind.CREATE, "POST", "/x", 0)[0] == (
        "upload_reject"
    )
    for kind in (RouteKind.POLL, RouteKind.LIST, RouteKind.DOWNLOAD, RouteKind.OTHER):
        assert injector.http(kind, "POST", "/v1/files", 0) == (None, 0)


def test_faults_module_knows_no_vendor_paths_and_imports_nothing_of_the_sandbox() -> None:
    source = inspect.getsource(faults_module)
    for fragment in (
        "/v1",
        "/files",
        "/batches",
        "/batch/jobs",
        "batchGenerateContent",
        "/messages",
    ):
        assert fragment not in source, fragment
    for vendor in ("openai", "anthropic", "mistral", "gemini"):
        assert vendor not in source.lower(), vendor
    imported = {
        node.module or ""
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.ImportFrom)
    } | {
        alias.name
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    assert not any(m.startswith((".", "polybatch", "starlette")) for m in imported - {"__future__"})


# -- a toy provider: kinds, not paths, decide the faults -------------------------------------
class ToyApi(ProviderApi):
    """Paths no vendor uses: ``/put`` is its upload, ``/go`` its create."""

    namespace = "toy"

    def error_body(self, status: int, message: str, **detail: Any) -> Any:
        return {"toy_error": message, "status": status}

    def presented_key(self, request: Request) -> str | None:
        return request.headers.get("x-toy-key")

    def batch_view(self, batch: Any, request: Request) -> Any:
        return {"id": batch.id, "state": batch.state(self.now())}

    async def put(self, request: Request) -> Response:
        return self.json({"stored": len(await request.body())})

    async def go(self, request: Request) -> Response:
        requests = self.number_attempts([BatchRequest(0, "a", {}), BatchRequest(1, "b", {})])
        batch = self.new_batch(requests, lambda r, b: Outcome(200, {"echo": r.custom_id}))
        return self.json(self.batch_view(batch, request))

    def routes(self) -> list[BaseRoute]:
        return [
            self.route("/put", self.put, ["POST"], RouteKind.UPLOAD),
            self.route("/go", self.go, ["POST"], RouteKind.CREATE),
            self.route("/go/{batch_id}", self.retrieve_batch, ["GET"], RouteKind.POLL),
        ]


class ToyProvider:
    name: ClassVar[str] = "toy"
    sandbox_prefix: ClassVar[str] = "/toy"

    @classmethod
    def sandbox_routes(cls, engine: SandboxEngine) -> list[BaseRoute]:
        return ToyApi(engine).routes()


def _client(faults: Faults) -> tuple[SandboxEngine, TestClient]:
    engine = SandboxEngine(api_key=KEY, faults=faults)
    app = create_app(engine, {"toy": ToyProvider})  # type: ignore[dict-item]
    return engine, TestClient(app, headers={"x-toy-key": KEY})


def test_the_key_guard_answers_in_the_vendor_shape() -> None:
    _, client = _client(Faults())
    refused = client.post("/toy/put", content=b"x", headers={"x-toy-key": "wrong"})
    assert refused.status_code == 401
    assert refused.json() == {"toy_error": "invalid API key", "status": 401}
    assert "wrong" not in refused.text
    missing = client.get("/toy/go/nope")
    assert missing.status_code == 404 and missing.json()["toy_error"] == "No such Batch: 'nope'"


def test_upload_reject_strikes_the_route_declared_upload() -> None:
    engine, client = _client(Faults(upload_reject_rate=1.0))
    rejected = client.post("/toy/put", content=b"data")
    assert rejected.status_code == 503 and rejected.headers["x-should-retry"] == "false"
    created = client.post("/toy/go")
    assert created.status_code == 200
    assert client.get(f"/toy/go/{created.json()['id']}").status_code == 200
    assert [(e.kind, e.where) for e in engine.fault_log] == [("upload_reject", "POST /toy/put")]


def test_create_timeout_strikes_the_route_declared_create() -> None:
    engine, client = _client(Faults(create_timeout_rate=1.0))
    assert client.post("/toy/put", content=b"data").status_code == 200
    with pytest.raises(DroppedConnection):
        client.post("/toy/go")
    # the server did the work; the client never heard of it
    (batch,) = engine.batches.values()
    assert batch.namespace == "toy" and [r.attempt for r in batch.requests] == [0, 0]
    assert [e.kind for e in engine.fault_log] == ["create_timeout"]


def test_other_http_faults_strike_any_route() -> None:
    engine, client = _client(Faults(http_error_rate=1.0, http_error_codes=(429,)))
    for method, path in (("POST", "/toy/put"), ("GET", "/toy/go/x"), ("GET", "/toy/unknown")):
        assert client.request(method, path).status_code == 429
    assert len(engine.fault_log) == 3


# -- pagination helpers ----------------------------------------------------------------------
def test_pagination_styles() -> None:
    items = list("abcdef")
    assert cursor_page(items, items, None, 4) == (list("abcd"), True)
    assert cursor_page(items, items, "d", 4) == (list("ef"), False)
    assert cursor_page(items, items, "zz", 4) == ([], False)
    assert before_cursor(items, items, "e", 2) == (list("cd"), True)
    assert before_cursor(items, items, "c", 5) == (list("ab"), False)
    assert number_page(items, 1, 4) == list("ef")
