"""Acme's emulated API over the shared engine: the core's Files routes, Acme's batch routes."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from polybatch import formats, wire
from polybatch.providers import TERMINAL_STATES
from polybatch.sandbox import FilesApi, RouteKind, SandboxBatch
from polybatch.sandbox.api import BatchRequest, Outcome, cursor_list, cursor_page

from . import codec


class AcmeApi(FilesApi):
    """``/files`` (the core's :class:`FilesApi`) and ``/batches``, in Acme's shapes."""

    namespace = "acme"
    files_path = "/files"

    def error_body(self, status: int, message: str, **detail: Any) -> Any:
        return {"error": {"message": message, **detail}}

    def routes(self) -> list[BaseRoute]:
        r, K = self.route, RouteKind  # each route's kind decides the faults it can suffer
        return [
            *self.file_routes(),
            r("/batches", self.create_batch, ["POST"], K.CREATE),
            r("/batches", self.list_batches, ["GET"], K.LIST),
            r("/batches/{batch_id}", self.retrieve_batch, ["GET"], K.POLL),
            r("/batches/{batch_id}/cancel", self.cancel_batch, ["POST"], K.CANCEL),
        ]

    async def create_batch(self, request: Request) -> Response:
        params = await request.json()
        if (file := self.live_file(params.get("input_file_id", ""))) is None:
            return self.not_found("File", params.get("input_file_id", ""))
        lines = [wire.load_object(raw) for raw in file.data.splitlines() if raw.strip()]
        requests = [BatchRequest(i, ln["custom_id"], ln["body"]) for i, ln in enumerate(lines)]
        metadata = params.get("metadata") or {}
        batch = self.new_batch(self.number_attempts(requests), self.run, metadata=metadata)
        return self.json(self.batch_view(batch, request))

    def run(self, req: BatchRequest, batch: SandboxBatch) -> Outcome:
        """One request: refused by the codec's rules, hit by an injected fault, or answered."""
        try:
            chat = codec.check_body(req.body)
        except wire.WireError as exc:
            return Outcome(400, self.error_body(400, exc.message, code=exc.code, param=exc.param))
        if self.item_fails(req.custom_id, req.attempt):
            return Outcome(500, self.error_body(500, "injected fault", code="server_error"))
        reply = self.engine.model.chat(
            model=chat.model,
            messages=chat.transcript(),
            max_tokens=chat.max_tokens,
            json_schema=chat.json_schema(),
        )
        usage = (reply.prompt_tokens, reply.completion_tokens)
        body = codec.completion(chat.model, reply.text, reply.finish_reason, usage)
        return Outcome(200, body, usage)

    def batch_view(self, batch: SandboxBatch, request: Request) -> dict[str, Any]:
        now = self.now()
        state, t = batch.state(now), self.tally(batch, now)
        ended = state in TERMINAL_STATES
        files = self.output_once(batch, lambda: self.write_files(batch, now)) if ended else {}
        counts = {"total": len(batch.requests), "completed": t["ok"], "failed": t["failed"]}
        view = {"id": batch.id, "status": codec.STATUS[state], "metadata": batch.metadata}
        return {**view, "request_counts": counts, **files}

    def write_files(self, batch: SandboxBatch, now: float) -> dict[str, str]:
        """An ended batch's output and error files; requests that never ran get error lines."""
        ok: list[bytes] = []
        failed: list[bytes] = []
        done = batch.processed(now)
        for i, req in enumerate(batch.requests):
            o: Outcome | None = batch.outcome(i) if i < done else None
            if o is not None:
                line = formats.response_line(
                    f"{batch.id}-{i}", req.custom_id, status_code=o.status_code, body=o.body
                )
            else:  # cancelled or expired before it ran: formats.LINE_ERRORS knows these codes
                error = {"code": f"batch_{batch.state(now)}", "message": "never ran"}
                line = {"custom_id": req.custom_id, "response": None, "error": error}
            (ok if o and o.ok else failed).append(wire.dumps(line))
        outputs = [("output_file_id", "output", ok), ("error_file_id", "error", failed)]
        files = self.write_outputs(batch, outputs, purpose="batch_output")
        return {key: f.id for key, f in files.items()}

    async def list_batches(self, request: Request) -> Response:
        newest = self.engine.list_batches(self.ns)[::-1]
        after = request.query_params.get("after")
        page, more = cursor_page(newest, [b.id for b in newest], after, 100)
        return self.json(cursor_list([self.batch_view(b, request) for b in page], more))
