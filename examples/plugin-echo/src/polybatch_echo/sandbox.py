"""The emulated Echo API: routes that translate its wire format to the shared SandboxEngine.

The engine owns time and the lifecycle (a batch's state is computed from the sandbox clock) and
the synthetic model answers each request; these routes only speak Echo's JSON.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from polybatch.sandbox.engine import SandboxBatch, SandboxEngine

NAMESPACE = "echo"
#: the engine's (OpenAI-style) states -> Echo's
STATUS = {
    "validating": "queued",
    "in_progress": "running",
    "finalizing": "running",
    "cancelling": "cancelling",
    "completed": "done",
    "failed": "failed",
    "expired": "expired",
    "cancelled": "cancelled",
}
ENDED = frozenset({"done", "failed", "expired", "cancelled"})


def routes(engine: SandboxEngine) -> list[BaseRoute]:
    """``/v1/batches`` (POST, GET), ``/v1/batches/{id}`` (GET), ``.../cancel``, ``.../results``."""

    def denied(request: Request) -> Response | None:
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        if engine.check_key(token or None):
            return None
        return JSONResponse({"error": "invalid api key"}, status_code=401)

    def run(batch_id: str, req: dict[str, Any]) -> dict[str, Any]:
        """One request's outcome: an injected fault or the synthetic model's reply."""
        if engine.faults.hit(engine.faults.item_error_rate, NAMESPACE, batch_id, req["custom_id"]):
            error = {"code": "server_error", "message": "injected fault", "retryable": True}
            return {"outcome": "error", "error": error}
        reply = engine.model.chat(
            model=req["model"],
            messages=[(m["role"], m["text"]) for m in req["messages"]],
            max_tokens=req.get("max_tokens"),
        )
        usage = {"input": reply.prompt_tokens, "output": reply.completion_tokens}
        return {"outcome": "ok", "model": req["model"], "text": reply.text, "usage": usage}

    def view(batch: SandboxBatch) -> dict[str, Any]:
        now = engine.now()
        done = [batch.outcome(i) for i in range(batch.processed(now))]
        ok = sum(o["outcome"] == "ok" for o in done)
        return {
            "id": batch.id,
            "status": STATUS[batch.state(now)],
            "counts": {"total": len(batch.requests), "ok": ok, "error": len(done) - ok},
            "metadata": batch.metadata,
        }

    async def batches(request: Request) -> Response:
        if (refusal := denied(request)) is not None:
            return refusal
        if request.method == "GET":
            newest_first = reversed(engine.list_batches(NAMESPACE))
            return JSONResponse({"data": [view(b) for b in newest_first]})
        body = await request.json()
        holder: list[SandboxBatch] = []
        batch = engine.create_batch(
            NAMESPACE,
            body["requests"],
            lambda req: run(holder[0].id, req),
            prefix="echo_",
            metadata=body.get("metadata") or {},
        )
        holder.append(batch)
        return JSONResponse(view(batch))

    def find(request: Request) -> SandboxBatch | Response:
        if (refusal := denied(request)) is not None:
            return refusal
        batch = engine.get_batch(NAMESPACE, request.path_params["batch_id"])
        return batch or JSONResponse({"error": "no such batch"}, status_code=404)

    async def get(request: Request) -> Response:
        batch = find(request)
        return batch if isinstance(batch, Response) else JSONResponse(view(batch))

    async def cancel(request: Request) -> Response:
        batch = find(request)
        if isinstance(batch, Response):
            return batch
        engine.cancel(batch)  # a no-op once the batch has ended
        return JSONResponse(view(batch))

    async def results(request: Request) -> Response:
        batch = find(request)
        if isinstance(batch, Response):
            return batch
        status = view(batch)["status"]
        if status not in ENDED:
            return JSONResponse({"error": "the batch has not ended"}, status_code=409)
        # requests not run before a cancel or the expiry still get a line each
        processed = batch.processed(engine.now())
        leftover = {"outcome": "expired" if status == "expired" else "canceled"}
        lines = [
            {"custom_id": req["custom_id"], **(batch.outcome(i) if i < processed else leftover)}
            for i, req in enumerate(batch.requests)
        ]
        body = "".join(json.dumps(line) + "\n" for line in lines)
        return Response(body, media_type="application/jsonl")

    return [
        Route("/v1/batches", batches, methods=["GET", "POST"]),
        Route("/v1/batches/{batch_id}", get, methods=["GET"]),
        Route("/v1/batches/{batch_id}/cancel", cancel, methods=["POST"]),
        Route("/v1/batches/{batch_id}/results", results, methods=["GET"]),
    ]
