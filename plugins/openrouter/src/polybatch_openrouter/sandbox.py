"""OpenRouter's emulated Batch API over the shared engine: inline creates, results in the batch.

Shapes follow the official SDK's models (see :mod:`.codec`), which the SDK validates strictly:
an answer the SDK cannot read would fail every test, so the sandbox is checked by the SDK too.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from polybatch import wire
from polybatch.providers import TERMINAL_STATES
from polybatch.sandbox import RouteKind, SandboxBatch
from polybatch.sandbox.api import BatchRequest, Outcome, ProviderApi, cursor_page
from polybatch.sandbox.faults import BATCH_MISSING_OUTPUT

from . import codec
from .provider import OpenRouterProvider

LIMITS = OpenRouterProvider.limits


class OpenRouterApi(ProviderApi):
    """``/batches`` in OpenRouter's shapes."""

    namespace = "openrouter"
    batch_param = "id"

    def error_body(self, status: int, message: str, **detail: Any) -> Any:
        return {"error": {"code": status, "message": message}}

    def routes(self) -> list[BaseRoute]:
        r, K = self.route, RouteKind  # the create carries the input: an upload and a create
        return [
            r("/batches", self.create_batch, ["POST"], K.UPLOAD | K.CREATE),
            r("/batches", self.list_batches, ["GET"], K.LIST),
            r("/batches/{id}", self.retrieve_batch, ["GET"], K.POLL | K.DOWNLOAD),
            r("/batches/{id}", self.delete_batch, ["DELETE"], K.DELETE),
            r("/batches/{id}/cancel", self.cancel_batch, ["POST"], K.CANCEL),
        ]

    async def create_batch(self, request: Request) -> Response:
        raw = await request.body()
        if len(raw) > LIMITS.max_bytes + 65536:
            return self.error(413, "a batch holds at most 200 MB")
        params = wire.load_object(raw)
        model, endpoint, rows = params.get("model"), params.get("endpoint"), params.get("requests")
        if endpoint not in codec.ENDPOINTS:
            return self.error(400, f"unsupported endpoint {endpoint!r}")
        if not isinstance(model, str) or not model:
            return self.error(400, "'model' is required")
        if not isinstance(rows, list) or not 1 <= len(rows) <= LIMITS.max_requests:
            return self.error(400, "'requests' holds 1 to 5000 requests")
        requests: list[BatchRequest] = []
        seen: set[str] = set()
        for i, row in enumerate(rows):
            cid, body = wire.as_mapping(row).get("custom_id"), wire.as_mapping(row).get("body")
            if not isinstance(cid, str) or not isinstance(body, dict) or cid in seen:
                return self.error(400, f"requests[{i}]: a unique custom_id and a body are needed")
            seen.add(cid)
            requests.append(BatchRequest(i, cid, body))
        settings = {k: params[k] for k in ("callback_url", "provider") if k in params}
        batch = self.new_batch(
            self.number_attempts(requests),
            self.run,
            prefix="batch_",
            extra={"model": model, "endpoint": endpoint, "settings": settings},
        )
        return self.json(self.batch_view(batch, request), 202)

    def run(self, req: BatchRequest, batch: SandboxBatch) -> Outcome:
        """One request: refused by the codec's rules, hit by an injected fault, or answered."""
        model = str(batch.extra["model"])
        try:
            chat = codec.check_body(req.body, model)
        except wire.WireError as exc:
            error = ("invalid_request_error", exc.message, "invalid_request")
            return Outcome(400, {"error": error})
        if self.item_fails(req.custom_id, req.attempt):
            return Outcome(500, {"error": ("server_error", "injected fault", "server")})
        reply = self.engine.model.chat(
            model=model,
            messages=chat.transcript(),
            max_tokens=chat.max_tokens,
            json_schema=chat.json_schema(),
            invalid_json=self.breaks_json(req.custom_id, req.attempt),
        )
        usage = (reply.prompt_tokens, reply.completion_tokens)
        body = codec.completion(
            f"gen-{batch.id}-{req.index}", model, reply.text, reply.finish_reason, usage
        )
        return Outcome(200, body, usage)

    def batch_view(self, batch: SandboxBatch, request: Request) -> dict[str, Any]:
        now = self.now()
        state, t = batch.state(now), self.tally(batch, now)
        ended = batch.ended_at(now)
        failed = batch.errors[0]["message"] if batch.errors and state == "failed" else None
        listing = request.method == "GET" and "id" not in request.path_params
        results = self.results(batch, now) if state in TERMINAL_STATES and not listing else None
        return {
            "id": batch.id,
            "object": "batch",
            "endpoint": batch.extra["endpoint"],
            "model": batch.extra["model"],
            "completion_window": "24h",
            "created_at": int(batch.created_at),
            "error": {"message": failed} if failed else None,
            "expires_at": int(batch.expires_at),
            "finalized_at": int(ended) if ended is not None else None,
            "provider": None,  # no upstream assigned in the sandbox
            "request_counts": {
                "completed": t["ok"],
                "failed": t["failed"],
                "total": len(batch.requests),
            },
            "results": results,
            "status": state,
            "usage": None,
        }

    def results(self, batch: SandboxBatch, now: float) -> list[dict[str, Any]]:
        """An ended batch's results, one per request (those that never ran: an error)."""

        def compute() -> dict[str, Any]:
            done = batch.processed(now)
            rows = []
            for i, req in enumerate(batch.requests):
                line_id = f"{batch.id}-{i}"
                o: Outcome | None = batch.outcome(i) if i < done else None
                if o is not None and o.ok and BATCH_MISSING_OUTPUT in batch.faults:
                    continue  # the missing-output fault: the successes are lost
                if o is not None and o.ok:
                    response = {"status_code": 200, "request_id": line_id, "body": o.body}
                    row = {"id": line_id, "custom_id": req.custom_id, "response": response}
                    rows.append({**row, "error": None})
                elif o is not None:
                    kind, message, error_type = o.body["error"]
                    rows.append(
                        codec.error_result(line_id, req.custom_id, kind, message, error_type)
                    )
                else:
                    kind = f"batch_{batch.state(now)}"  # cancelled, expired or failed: never ran
                    rows.append(codec.error_result(line_id, req.custom_id, kind, "never ran"))
            return {"results": rows}

        rows: list[dict[str, Any]] = self.output_once(batch, compute)["results"]
        return rows

    async def list_batches(self, request: Request) -> Response:
        newest = self.engine.list_batches(self.ns)[::-1]
        limit = max(1, min(int(request.query_params.get("limit") or 100), 100))
        after = request.query_params.get("after")
        page, more = cursor_page(newest, [b.id for b in newest], after, limit)
        data = [self.batch_view(b, request) for b in page]
        last = data[-1]["id"] if data else None
        first = data[0]["id"] if data else None
        return self.json(
            {"object": "list", "data": data, "first_id": first, "has_more": more, "last_id": last}
        )

    async def delete_batch(self, request: Request) -> Response:
        found = self.batch_or_404(request)
        if isinstance(found, Response):
            return found
        if found.state(self.now()) not in TERMINAL_STATES:
            return self.error(409, "only a batch in a terminal status can be deleted")
        found.deleted = True
        deletion = {"openrouter": "deleted"}  # no upstream batch in the sandbox
        return self.json({"id": found.id, "object": "batch", "deletion": deletion})
