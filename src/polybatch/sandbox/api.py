"""``ProviderApi``: the plumbing every provider's emulated routes share.

A plugin's sandbox subclasses :class:`ProviderApi` and keeps only its vendor's shapes: the paths,
the objects' JSON, the state names and the error body. The base provides

- responses: :meth:`~ProviderApi.json` (with the vendor's request-id header) and
  :meth:`~ProviderApi.error`, whose body comes from the :meth:`~ProviderApi.error_body` hook;
- the key guard: :meth:`~ProviderApi.presented_key` (which header carries the key) and
  :meth:`~ProviderApi.denied` (the vendor's 401), applied by :meth:`~ProviderApi.route`;
- route declaration: :meth:`~ProviderApi.route` gives each route a :class:`RouteKind`, which is
  what decides the HTTP faults it can suffer (see :mod:`polybatch.sandbox.middleware`);
- batches: :meth:`~ProviderApi.new_batch` (attempt numbering per custom_id, the handler bound to
  its batch), :meth:`~ProviderApi.batch_or_404`, :meth:`~ProviderApi.tally`;
- the fault draws around the synthetic model: :meth:`~ProviderApi.item_fails`,
  :meth:`~ProviderApi.breaks_json`; truncated downloads (:meth:`~ProviderApi.deliver`) and the
  output files of an ended batch with the missing-output fault (:meth:`~ProviderApi.write_output`);
- pagination in the vendors' styles: :func:`after_cursor`, :func:`before_cursor`,
  :func:`number_page`, :func:`cursor_list` (OpenAI's ``{data, first_id, last_id, has_more}``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from . import queue
from .engine import SandboxBatch, SandboxEngine, SandboxFile
from .faults import BATCH_MISSING_OUTPUT, RouteKind

Endpoint = Callable[[Request], Awaitable[Response]]
T = TypeVar("T")

__all__ = [
    "BatchRequest",
    "Endpoint",
    "KindRoute",
    "Outcome",
    "ProviderApi",
    "RouteKind",
    "after_cursor",
    "bearer",
    "before_cursor",
    "cursor_list",
    "cursor_page",
    "number_page",
    "refusal",
]


@dataclass(frozen=True)
class BatchRequest:
    """One parsed request of a batch's input, as the engine stores it."""

    index: int
    custom_id: str
    body: dict[str, Any]
    #: how many batches of this API carried this custom_id before (fault draws differ per try)
    attempt: int = 0


@dataclass(frozen=True)
class Outcome:
    """What running one request produced: an HTTP status, a body, and (prompt, completion) usage."""

    status_code: int
    body: dict[str, Any]
    usage: tuple[int, int] = (0, 0)

    @property
    def ok(self) -> bool:
        return self.status_code == 200


class KindRoute(Route):
    """A starlette route that says what it does (:class:`RouteKind`): faults are decided by it."""

    def __init__(self, path: str, endpoint: Endpoint, *, kind: RouteKind, **kw: Any) -> None:
        super().__init__(path, endpoint, **kw)
        self.kind = kind


class ProviderApi:
    """Route handlers of one provider's emulated API over a shared :class:`SandboxEngine`.

    Subclasses set :attr:`namespace` (their store's name in the engine), implement
    :meth:`error_body` and :meth:`routes`, and override the other hooks where their vendor differs.
    """

    namespace: str = ""
    #: the header every response carries a request id in ("" for none)
    request_id_header: str = "x-request-id"
    #: the path parameter naming a batch, and what the vendor's 404 calls one
    batch_param: str = "batch_id"
    batch_noun: str = "Batch"
    #: models this API serves beyond its provider's price rows (:mod:`polybatch.sandbox.models`)
    declared_models: tuple[str, ...] = ()

    def __init__(self, engine: SandboxEngine, namespace: str | None = None) -> None:
        self.engine = engine
        self.ns = namespace or self.namespace
        #: custom_id -> how many batches carried it: item faults are keyed on it
        self.attempts: dict[str, int] = engine.attempts.setdefault(self.ns, {})
        engine.webhook_events[self.ns] = self.webhook_event

    def webhook_event(self, batch: SandboxBatch, state: str) -> Any:
        """The vendor's webhook body for a batch that ended in ``state`` (None: it sends none)."""
        return None

    # -- responses -------------------------------------------------------------------------
    def request_id(self) -> str:
        return "req_" + self.engine.new_id("")

    def json(self, data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
        """A JSON response, carrying a request id unless :attr:`request_id_header` is empty."""
        all_headers = {self.request_id_header: self.request_id()} if self.request_id_header else {}
        return JSONResponse(data, status_code=status, headers={**all_headers, **(headers or {})})

    def error_body(self, status: int, message: str, **detail: Any) -> Any:
        """The vendor's error body (a hook; ``detail`` holds vendor fields such as type, code)."""
        raise NotImplementedError

    def error(self, status: int, message: str, **detail: Any) -> Response:
        """An error response in the vendor's shape."""
        return self.json(self.error_body(status, message, **detail), status)

    def not_found(self, what: str, ident: str) -> Response:
        """The vendor's 404 for an unknown batch or file (a hook)."""
        return self.error(404, f"No such {what}: '{ident}'")

    def now(self) -> float:
        return self.engine.now()

    def knows_model(self, model: str) -> bool:
        """Whether this API serves ``model``: its price rows, :attr:`declared_models`, the
        engine's extras (every name when the engine is not strict)."""
        return self.engine.catalog.knows(self.ns, model, self.declared_models)

    # -- the key guard ---------------------------------------------------------------------
    def presented_key(self, request: Request) -> str | None:
        """The key a request presents (a hook: default ``Authorization: Bearer KEY``)."""
        return bearer(request)

    def denied(self, request: Request, presented: str | None) -> Response:
        """The vendor's answer to a wrong or missing key (never echo the key back)."""
        return self.error(401, "invalid API key")

    def guard(self, request: Request) -> Response | None:
        """None if the request may proceed, else the response refusing it."""
        presented = self.presented_key(request)
        if self.engine.check_key(presented or None):
            return None
        return self.denied(request, presented)

    # -- routes ----------------------------------------------------------------------------
    def route(
        self,
        path: str,
        handler: Endpoint,
        methods: Sequence[str],
        kind: RouteKind,
        *,
        name: str | None = None,
        guarded: bool = True,
        **path_params: str,
    ) -> KindRoute:
        """A route of ``kind`` serving ``handler`` behind the key guard; ``path_params`` are
        added to every request's (one handler can serve several API versions)."""

        async def endpoint(request: Request) -> Response:
            if path_params:
                request.scope.setdefault("path_params", {}).update(path_params)
            if guarded:
                refused = self.guard(request)
                if refused is not None:
                    return refused
            return await handler(request)

        return KindRoute(path, endpoint, kind=kind, methods=list(methods), name=name)

    def routes(self) -> list[BaseRoute]:
        """Every route of this API (mounted under the provider's ``sandbox_prefix``)."""
        raise NotImplementedError

    # -- batches ---------------------------------------------------------------------------
    def find_batch(self, batch_id: str) -> SandboxBatch | None:
        return self.engine.get_batch(self.ns, batch_id)

    def batch_or_404(self, request: Request) -> SandboxBatch | Response:
        """The batch a request's path names, or the vendor's 404."""
        batch_id = request.path_params[self.batch_param]
        batch = self.find_batch(batch_id)
        return batch if batch is not None else self.not_found(self.batch_noun, batch_id)

    def batch_view(self, batch: SandboxBatch, request: Request) -> Any:
        """The batch object as the vendor's API returns it (a hook)."""
        raise NotImplementedError

    async def retrieve_batch(self, request: Request) -> Response:
        found = self.batch_or_404(request)
        if isinstance(found, Response):
            return found
        return self.json(self.batch_view(found, request))

    async def cancel_batch(self, request: Request) -> Response:
        """Start cancelling (idempotent; a no-op once the batch has ended, unless the vendor
        refuses that: see :meth:`refuse_cancel`)."""
        found = self.batch_or_404(request)
        if isinstance(found, Response):
            return found
        if found.ended_at(self.engine.now()) is not None:
            refused = self.refuse_cancel(found)
            if refused is not None:
                return refused
        self.engine.cancel(found)
        return self.json(self.batch_view(found, request))

    def refuse_cancel(self, batch: SandboxBatch) -> Response | None:
        """The vendor's answer to cancelling a batch that has ended, or None to answer with the
        batch as it is (a hook: OpenAI answers 409, Anthropic 400)."""
        return None

    def next_attempts(self, custom_ids: Iterable[str]) -> list[int]:
        """How many batches carried each of ``custom_ids`` before (then count this one)."""
        with self.engine.lock:
            out = []
            for custom_id in custom_ids:
                attempt = self.attempts.get(custom_id, 0)
                self.attempts[custom_id] = attempt + 1
                out.append(attempt)
            return out

    def number_attempts(self, requests: list[BatchRequest]) -> list[BatchRequest]:
        """``requests`` with their attempt numbers (see :meth:`next_attempts`)."""
        attempts = self.next_attempts(r.custom_id for r in requests)
        return [replace(r, attempt=a) for r, a in zip(requests, attempts, strict=True)]

    def new_batch(
        self,
        requests: list[T],
        run: Callable[[T, SandboxBatch], Any],
        **options: Any,
    ) -> SandboxBatch:
        """Create a batch whose requests are answered by ``run(request, batch)``; ``options``
        go to :meth:`SandboxEngine.create_batch`."""
        holder: list[SandboxBatch] = []
        batch = self.engine.create_batch(
            self.ns, list(requests), lambda r: run(r, holder[0]), **options
        )
        holder.append(batch)
        return batch

    def queue_refusal(self, requests: list[Any], model: str | None) -> str | None:
        """Why a new batch on ``model`` is refused for the organisation's queue limit (the
        routes answer it in the vendor's shape), or None; see :mod:`.queue`."""
        return queue.refusal(self.engine, self.ns, model, requests)

    def tally(self, batch: SandboxBatch, now: float) -> dict[str, int]:
        """Counts (``ok``, ``failed``) and token sums (``input``, ``output``) over the requests
        run so far, of a batch whose outcomes are :class:`Outcome` (kept incrementally)."""
        with self.engine.lock:
            t: dict[str, int] = batch.extra.setdefault(
                "tally", {"seen": 0, "ok": 0, "failed": 0, "input": 0, "output": 0}
            )
            for i in range(t["seen"], batch.processed(now)):
                outcome: Outcome = batch.outcome(i)
                t["ok" if outcome.ok else "failed"] += 1
                t["input"] += outcome.usage[0]
                t["output"] += outcome.usage[1]
                t["seen"] = i + 1
            return dict(t)

    # -- faults around the synthetic model -------------------------------------------------
    def item_fails(self, *key: Any) -> bool:
        """Whether the injected per-request error strikes; ``key`` defaults to be
        ``(custom_id, attempt)`` (not the random batch id): the same run draws the same faults,
        and a retry in a later batch draws afresh."""
        return self.engine.injector.item_error(self.ns, *key)

    def breaks_json(self, custom_id: str, attempt: int) -> bool:
        """Whether a structured reply comes back as broken JSON (noted in the fault log)."""
        broken = self.engine.injector.invalid_json(self.ns, custom_id, attempt)
        if broken:
            self.engine.note_fault("invalid_json", f"{self.ns} {custom_id}", str(attempt))
        return broken

    def deliver(self, data: bytes, fault_key: tuple[Any, ...] | None) -> bytes:
        """``data`` as one download delivers it (an injected truncation may cut it short)."""
        return self.engine.download(fault_key, data)

    def output_once(
        self,
        batch: SandboxBatch,
        compute: Callable[[], dict[str, Any]],
        *,
        none_if_failed: bool = False,
    ) -> dict[str, Any]:
        """``batch.output``: what ``compute()`` makes of an ended batch (its files, its result
        lines), made once, the first time it is asked for; ``{}`` for a batch that failed
        validation when ``none_if_failed`` (nothing ran: no files)."""
        with self.engine.lock:
            if batch.output is None:
                failed = none_if_failed and batch.errors is not None
                batch.output = {} if failed else compute()
            return batch.output

    def write_output(
        self,
        batch: SandboxBatch,
        suffix: str,
        lines: list[bytes],
        *,
        successes: bool,
        filename: str,
        purpose: str,
        **options: Any,
    ) -> SandboxFile | None:
        """Store an ended batch's output file of ``lines`` (None if there are none, or if these
        are the successes and the missing-output fault struck); downloads of it can be truncated."""
        if not lines or (successes and BATCH_MISSING_OUTPUT in batch.faults):
            return None
        f = self.engine.add_file(
            self.ns, b"\n".join(lines) + b"\n", filename=filename, purpose=purpose, **options
        )
        f.fault_key = (self.ns, batch.serial, suffix)
        return f

    def write_outputs(
        self, batch: SandboxBatch, outputs: Sequence[tuple[str, str, list[bytes]]], **options: Any
    ) -> dict[str, SandboxFile]:
        """The output files of an ended batch: ``outputs`` are ``(key, suffix, lines)``, the
        successes first, each written as ``{batch id}_{suffix}.jsonl`` (see
        :meth:`write_output`); returns the files written, by key."""
        written: dict[str, SandboxFile] = {}
        for n, (key, suffix, lines) in enumerate(outputs):
            f = self.write_output(
                batch,
                suffix,
                lines,
                successes=n == 0,
                filename=f"{batch.id}_{suffix}.jsonl",
                **options,
            )
            if f is not None:
                written[key] = f
        return written


# -- helpers -------------------------------------------------------------------------------
def refusal(parse: Callable[[], object], error: type[Exception]) -> str | None:
    """The message of the ``error`` that ``parse()`` raises (its ``message``, else its text), or
    None when it parses: a plugin's ``check_request_body`` on top of its codec's parser."""
    try:
        parse()
    except error as exc:
        return str(getattr(exc, "message", exc))
    return None


def bearer(request: Request) -> str | None:
    """The token of an ``Authorization: Bearer TOKEN`` header, or None."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def after_cursor(items: list[T], ids: list[str], after: str | None) -> list[T]:
    """The items following the one whose id is ``after`` (all of them without a cursor, none
    for an unknown one)."""
    if not after:
        return items
    return items[ids.index(after) + 1 :] if after in ids else []


def before_cursor(items: list[T], ids: list[str], before: str, limit: int) -> tuple[list[T], bool]:
    """The page of at most ``limit`` items just before the one whose id is ``before``, and
    whether more precede it (``before`` must be one of ``ids``)."""
    end = ids.index(before)
    return items[max(0, end - limit) : end], end - limit > 0


def cursor_page(
    items: list[T], ids: list[str], after: str | None, limit: int
) -> tuple[list[T], bool]:
    """At most ``limit`` items following the one whose id is ``after``, and whether more follow."""
    rest = after_cursor(items, ids, after)
    return rest[:limit], len(rest) > limit


def number_page(items: list[T], page: int, size: int) -> list[T]:
    """Page ``page`` (from 0) of ``size`` items."""
    return items[page * size : (page + 1) * size]


def cursor_list(data: list[dict[str, Any]], has_more: bool) -> dict[str, Any]:
    """OpenAI's list object: ``{object, data, first_id, last_id, has_more}``."""
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": has_more,
    }
