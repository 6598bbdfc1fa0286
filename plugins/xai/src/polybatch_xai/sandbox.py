"""xAI's emulated Batch API over the shared engine: containers filled by add-requests calls.

A batch is made empty and grows with each add call (its requests list is appended to under the
engine's lock, so the engine runs the added requests as time passes). The counters are derived
from the engine's view of the batch; results are listed page by page, and the listing already
holds the requests run so far while the batch is still running.
"""

from __future__ import annotations

from collections import deque
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from polybatch import wire
from polybatch.providers import TERMINAL_STATES
from polybatch.sandbox import RouteKind, SandboxBatch
from polybatch.sandbox.api import BatchRequest, Outcome, ProviderApi
from polybatch.sandbox.faults import BATCH_MISSING_OUTPUT

from . import codec
from .provider import ADD_CALLS, ADD_MAX_BYTES, ADD_WINDOW


def _timestamp(t: float | None) -> str | None:
    return None if t is None else datetime.fromtimestamp(t, UTC).isoformat()


class XAIApi(ProviderApi):
    """``/batches`` and its sub-resources, in xAI's REST shapes."""

    namespace = "xai"

    def __init__(self, engine: Any, namespace: str | None = None) -> None:
        super().__init__(engine, namespace)
        #: when the recent add calls came (the 100-per-30-s limit)
        self.add_times: deque[float] = deque()

    def error_body(self, status: int, message: str, **detail: Any) -> Any:
        return {"code": detail.get("code", "invalid_argument"), "error": message}

    def routes(self) -> list[BaseRoute]:
        r, K = self.route, RouteKind
        return [
            r("/batches", self.create_batch, ["POST"], K.CREATE),
            r("/batches", self.list_batches, ["GET"], K.LIST),
            # before the batch's own route: its id would otherwise swallow ":cancel"
            r("/batches/{batch_id}:cancel", self.cancel_batch, ["POST"], K.CANCEL),
            r("/batches/{batch_id}", self.retrieve_batch, ["GET"], K.POLL),
            r("/batches/{batch_id}/requests", self.add_requests, ["POST"], K.UPLOAD),
            r("/batches/{batch_id}/requests", self.list_requests, ["GET"], K.LIST),
            r("/batches/{batch_id}/results", self.list_results, ["GET"], K.DOWNLOAD),
        ]

    # -- batches ---------------------------------------------------------------------------
    async def create_batch(self, request: Request) -> Response:
        params = await request.json()
        name = params.get("name")
        if not isinstance(name, str) or not name:
            return self.error(400, "'name' is required")
        batch = self.new_batch([], self.run, prefix="batch_", metadata={"name": name})
        return self.json(self.batch_view(batch, request))

    async def list_batches(self, request: Request) -> Response:
        batches = self.engine.list_batches(self.ns)[::-1]  # newest first
        page, token = self.page(request, batches)
        views = [self.batch_view(b, request) for b in page]
        return self.json({"batches": views, "pagination_token": token})

    def batch_view(self, batch: SandboxBatch, request: Request) -> dict[str, Any]:
        now = self.now()
        state, n = batch.state(now), len(batch.requests)
        t = self.tally(batch, now)
        done = batch.processed(now)
        ended = state in TERMINAL_STATES
        if batch.errors is not None and state == "failed":  # injected: every request refused
            ok, failed, pending, cancelled = 0, n, 0, 0
        else:
            ok, failed = t["ok"], t["failed"]
            pending, cancelled = (0, n - done) if ended else (n - done, 0)
        counters = {
            "num_requests": n,
            "num_pending": pending,
            "num_success": ok,
            "num_error": failed,
            "num_cancelled": cancelled,
        }
        return {
            "batch_id": batch.id,
            "name": batch.metadata.get("name", ""),
            "create_time": _timestamp(batch.created_at),
            "expire_time": _timestamp(batch.expires_at),
            "cancel_time": _timestamp(batch.cancel_requested_at),
            "state": counters,
        }

    # -- requests --------------------------------------------------------------------------
    async def add_requests(self, request: Request) -> Response:
        found = self.batch_or_404(request)
        if isinstance(found, Response):
            return found
        if len(await request.body()) > ADD_MAX_BYTES + 1024:
            return self.error(413, "an add-requests payload holds at most 25 MB")
        now = self.now()
        while self.add_times and now - self.add_times[0] >= ADD_WINDOW:
            self.add_times.popleft()
        if len(self.add_times) >= ADD_CALLS:
            return self.error(429, "at most 100 add-requests calls per 30 seconds")
        self.add_times.append(now)
        # requests added to a batch that was cancelled, expired or failed are taken, and end as
        # the rest of it did (never run) [inferred: xAI does not document this case]
        rows = (await request.json()).get("batch_requests")
        if not isinstance(rows, list) or not rows:
            return self.error(400, "'batch_requests' must be a non-empty list")
        held = {r.custom_id for r in found.requests}
        added: list[BatchRequest] = []
        for row in rows:
            rid = row.get("batch_request_id") if isinstance(row, dict) else None
            body = wire.as_mapping(wire.as_mapping(row).get("batch_request")).get(codec.CHAT_KEY)
            if not isinstance(rid, str) or not isinstance(body, dict):
                return self.error(
                    400, "each request needs batch_request_id and chat_get_completion"
                )
            if rid in held:
                return self.error(400, f"batch_request_id {rid!r} is already in the batch")
            held.add(rid)
            added.append(BatchRequest(0, rid, body))
        with self.engine.lock:
            start = len(found.requests)
            numbered = self.number_attempts(added)
            found.requests.extend(
                BatchRequest(start + i, r.custom_id, r.body, r.attempt)
                for i, r in enumerate(numbered)
            )
        return self.json({})

    async def list_requests(self, request: Request) -> Response:
        found = self.batch_or_404(request)
        if isinstance(found, Response):
            return found
        done = found.processed(self.now())
        page, token = self.page(request, list(enumerate(found.requests)))
        rows = [
            {"batch_request_id": r.custom_id, "state": self.request_state(found, i, done)}
            for i, r in page
        ]
        return self.json({"batch_request_metadata": rows, "pagination_token": token})

    def request_state(self, batch: SandboxBatch, index: int, done: int) -> str:
        if index >= done:
            ended = batch.state(self.now()) in TERMINAL_STATES
            return "STATE_CANCELLED" if ended else "STATE_PENDING"
        return "STATE_SUCCEEDED" if batch.outcome(index).ok else "STATE_FAILED"

    def run(self, req: BatchRequest, batch: SandboxBatch) -> Outcome:
        """One request: refused by the codec's rules, hit by an injected fault, or answered."""
        try:
            chat = codec.check_body(req.body)
        except wire.WireError as exc:
            return Outcome(400, {"code": "INVALID_ARGUMENT", "message": exc.message})
        if self.item_fails(req.custom_id, req.attempt):
            return Outcome(500, {"code": "INTERNAL", "message": "injected fault"})
        reply = self.engine.model.chat(
            model=chat.model,
            messages=chat.transcript(),
            max_tokens=chat.max_tokens,
            json_schema=chat.json_schema(),
            invalid_json=self.breaks_json(req.custom_id, req.attempt),
        )
        usage = (reply.prompt_tokens, reply.completion_tokens)
        body = codec.completion(chat.model, reply.text, reply.finish_reason, usage)
        return Outcome(200, body, usage)

    # -- results ---------------------------------------------------------------------------
    async def list_results(self, request: Request) -> Response:
        found = self.batch_or_404(request)
        if isinstance(found, Response):
            return found
        page, token = self.page(request, self.result_rows(found))
        return self.json({"results": page, "pagination_token": token})

    def result_rows(self, batch: SandboxBatch) -> list[dict[str, Any]]:
        """The rows listed so far: every request run; once ended, the unrun ones too."""
        now = self.now()
        state, done = batch.state(now), batch.processed(now)
        if batch.errors is not None:
            if state != "failed":
                return []
            message = str(batch.errors[0].get("message"))
            return [
                codec.error_row(r.custom_id, "INVALID_ARGUMENT", message) for r in batch.requests
            ]
        # the missing-output fault: once ended, the listing has lost its successes
        ended = state in TERMINAL_STATES or state == "finalizing"  # no request pending
        lost = ended and BATCH_MISSING_OUTPUT in batch.faults
        rows = []
        for i, req in enumerate(batch.requests[:done]):
            o: Outcome = batch.outcome(i)
            if o.ok and not lost:
                rows.append(codec.success_row(req.custom_id, o.body))
            elif o.ok:
                continue
            else:
                rows.append(codec.error_row(req.custom_id, o.body["code"], o.body["message"]))
        if state in ("cancelled", "expired"):
            code = "CANCELLED" if state == "cancelled" else "DEADLINE_EXCEEDED"
            rows += [
                codec.error_row(r.custom_id, code, f"batch {state}") for r in batch.requests[done:]
            ]
        return rows

    # -- paging ----------------------------------------------------------------------------
    def page(self, request: Request, items: list[Any]) -> tuple[list[Any], str | None]:
        """The page ``pagination_token`` (an offset) and ``limit`` name, and the next token."""
        query = request.query_params
        start = int(query.get("pagination_token") or 0)
        limit = max(1, min(int(query.get("limit") or 100), 1000))
        end = start + limit
        return items[start:end], (str(end) if end < len(items) else None)
