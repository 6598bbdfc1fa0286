"""The sandbox's Anthropic Message Batches API, on top of the shared SandboxEngine.

Mounted at ``/anthropic`` (so clients use ``base_url = <server>/anthropic``). Engine states map to
Anthropic's ``processing_status``: validating / in_progress / finalizing -> ``in_progress`` (or
``canceling`` once a cancel was asked for); cancelling -> ``canceling``; completed / cancelled /
expired / failed -> ``ended``. As on the real API, ``request_counts`` other than ``processing``
stay 0 until the batch ends, invalid per-request ``params`` become ``errored`` results (not a 400),
and requests not run before a cancel or the 24 h expiry become ``canceled`` / ``expired`` results.
Structured-output requests (``output_config.format``) get a text block of schema-valid JSON, or of
broken JSON when the ``invalid_json_rate`` fault strikes.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from polybatch import wire
from polybatch.sandbox.api import ProviderApi, RouteKind, before_cursor, cursor_page
from polybatch.sandbox.caching import Cached
from polybatch.sandbox.engine import SandboxBatch, SandboxEngine
from polybatch.sandbox.faults import BATCH_MISSING_OUTPUT
from polybatch.tokens import MESSAGE_OVERHEAD, PROMPT_OVERHEAD, count_tokens, tokenize, truncate

from . import codec, output300k

NAMESPACE = "anthropic"
MAX_REQUESTS = 100_000
MAX_BODY_BYTES = 256 * 1024 * 1024


def check_request_body(params: Any) -> str | None:
    """Why the Messages API would reject a request's ``params`` (its errored result's message),
    or None."""
    return codec.check_params(params)


def marked_prompt(params: dict[str, Any]) -> tuple[list[str], list[tuple[int, str]]]:
    """The prompt's tokens (as :func:`codec.conversation` counts them: system first, framing
    included) and its ``cache_control`` breakpoints: (tokens up to the end of the marked block,
    ``ttl``). A text block's tokens end where the next one's start: the texts are joined with a
    newline, which is no token. A prompt without markers is not tokenized: ``([], [])``."""
    tokens = ["<prompt>"] * PROMPT_OVERHEAD
    points: list[tuple[int, str]] = []
    turns: list[tuple[str, Any]] = []
    if params.get("system"):
        turns.append(("system", params["system"]))
    turns.extend((m["role"], m["content"]) for m in params["messages"])
    if not any(
        isinstance(b, dict) and "cache_control" in b
        for _, content in turns
        if isinstance(content, list)
        for b in content
    ):
        return [], []
    for role, content in turns:
        tokens += [f"<{role}>"] * MESSAGE_OVERHEAD
        if isinstance(content, str):
            tokens += tokenize(content)
            continue
        for block in content if isinstance(content, list) else []:
            if not isinstance(block, dict):
                continue
            if block.get("type") == "text":
                tokens += tokenize(str(block.get("text", "")))
            mark = block.get("cache_control")
            if isinstance(mark, dict):
                points.append((len(tokens), "1h" if mark.get("ttl") == "1h" else "5m"))
    return tokens, points


def _rfc3339(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class AnthropicSandbox(ProviderApi):
    """The route handlers, bound to one engine."""

    namespace = NAMESPACE
    request_id_header = "request-id"

    # -- plumbing ---------------------------------------------------------------------------
    def request_id(self) -> str:
        return "req_" + secrets.token_hex(12)

    def error_body(self, status: int, message: str, **detail: Any) -> Any:
        return codec.error_body(
            detail.get("type", "invalid_request_error"), message, detail.get("request_id")
        )

    def error(self, status: int, message: str, **detail: Any) -> Response:
        """The error envelope, its ``request_id`` the response's."""
        rid = self.request_id()
        body = self.error_body(status, message, **detail, request_id=rid)
        return self.json(body, status, headers={self.request_id_header: rid})

    def not_found(self, what: str, ident: str) -> Response:
        return self.error(404, f"message batch {ident!r} not found", type="not_found_error")

    def refuse_cancel(self, batch: SandboxBatch) -> Response | None:
        """Anthropic answers a cancel of an ended batch with 400 ``invalid_request_error``
        (the message wording is UNVERIFIED)."""
        return self.error(
            400,
            f"Batch {batch.id} cannot be canceled: it has already ended.",
            type="invalid_request_error",
        )

    def presented_key(self, request: Request) -> str | None:
        # the SDK (2.x) sends "Authorization: Bearer"; docs and curl use "x-api-key": accept both
        return request.headers.get("x-api-key") or super().presented_key(request)

    def denied(self, request: Request, presented: str | None) -> Response:
        return self.error(401, "invalid x-api-key", type="authentication_error")

    def _status(self, batch: SandboxBatch, now: float) -> str:
        return codec.processing_status(
            batch.state(now), cancel_requested=batch.cancel_requested_at is not None
        )

    def _outcomes(self, batch: SandboxBatch) -> list[dict[str, Any]]:
        """Every request's result line, computed once when the batch has ended."""
        lines: list[dict[str, Any]] = self.output_once(batch, lambda: self._lines(batch))["lines"]
        return lines

    def _lines(self, batch: SandboxBatch) -> dict[str, Any]:
        now = self.engine.now()
        state = batch.state(now)
        done = batch.processed(now)
        leftover = "expired" if state == "expired" else "canceled"
        lines = []
        for i, entry in enumerate(batch.requests):
            if state == "failed":
                result = {
                    "type": "errored",
                    "error": self.error_body(500, "the batch failed", type="api_error"),
                }
            elif i < done:
                result = batch.outcome(i)
            else:
                result = {"type": leftover}
            lines.append({"custom_id": entry["custom_id"], "result": result})
        return {"lines": lines}

    def batch_view(self, batch: SandboxBatch, request: Request) -> dict[str, Any]:
        """The MessageBatch object as the API returns it."""
        now = self.engine.now()
        status = self._status(batch, now)
        n = len(batch.requests)
        counts = {"processing": n, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        results_url = None
        ended_at = None
        if status == "ended":
            counts["processing"] = 0
            for line in self._outcomes(batch):
                counts[line["result"]["type"]] += 1
            ended_at = batch.ended_at(now)
            # absolute, from the request's own host: never api.anthropic.com
            results_url = str(request.url_for("anthropic_batch_results", batch_id=batch.id))
        return {
            "id": batch.id,
            "type": "message_batch",
            "processing_status": status,
            "request_counts": counts,
            "created_at": _rfc3339(batch.created_at),
            "expires_at": _rfc3339(batch.expires_at),
            "ended_at": _rfc3339(ended_at),
            "cancel_initiated_at": _rfc3339(batch.cancel_requested_at),
            "archived_at": None,
            "results_url": results_url,
        }

    # -- the synthetic answer ---------------------------------------------------------------
    def _run(
        self,
        entry: dict[str, Any],
        batch_id: str,
        attempt: int = 0,
        betas: frozenset[str] = frozenset(),
    ) -> dict[str, Any]:
        """One request's result object (``succeeded`` or ``errored``); ``betas``: what the
        create's ``anthropic-beta`` header named (the 300k-output beta lifts max_tokens)."""
        params = entry["params"]
        problem = check_request_body(params) or output300k.max_tokens_problem(
            params["model"], params["max_tokens"], betas
        )
        if problem is not None:
            return {"type": "errored", "error": self.error_body(400, self.engine.echo_key(problem))}
        name = str(params.get("model"))
        if not self.knows_model(name):  # the Messages API's 404 for a model it does not serve
            text = self.engine.echo_key(f"model: {name}")
            return {
                "type": "errored",
                "error": self.error_body(404, text, type="not_found_error"),
            }
        if self.item_fails(entry["custom_id"], attempt):
            return {
                "type": "errored",
                "error": self.error_body(
                    500,
                    self.engine.echo_key("Internal server error (injected fault)"),
                    type="api_error",
                ),
            }
        fmt = (params.get("output_config") or {}).get("format")
        broken = fmt is not None and self.breaks_json(entry["custom_id"], attempt)
        message = self._message(params, batch_id, entry["custom_id"], invalid_json=broken)
        return {"type": "succeeded", "message": message}

    def _message(
        self, params: dict[str, Any], batch_id: str, custom_id: str, *, invalid_json: bool = False
    ) -> dict[str, Any]:
        model = self.engine.model
        turns = codec.conversation(params)
        name = params["model"]
        digest = hashlib.sha256(f"{batch_id}/{custom_id}".encode()).hexdigest()
        tool = codec.forced_tool(params)
        stop_sequence = None
        if tool is not None:
            schema = tool.get("input_schema") or {}
            if schema.get("properties"):
                reply = model.chat(model=name, messages=turns, json_schema=schema)
            else:
                reply = model.chat(model=name, messages=turns, json_object=True)
            data = json.loads(reply.text)
            if not isinstance(data, dict):
                data = {"value": data}
            content: list[dict[str, Any]] = [
                {
                    "type": "tool_use",
                    "id": "toolu_" + digest[:24],
                    "name": tool["name"],
                    "input": data,
                }
            ]
            stop_reason = "tool_use"
            output_tokens = count_tokens(json.dumps(data))
        else:
            fmt = (params.get("output_config") or {}).get("format")
            schema = fmt.get("schema") if fmt else None
            reply = model.chat(
                model=name, messages=turns, json_schema=schema, invalid_json=invalid_json
            )
            text = reply.text
            stop_reason = "end_turn"
            hits = [(text.index(s), s) for s in params.get("stop_sequences") or [] if s in text]
            if hits:
                at, stop_sequence = min(hits)
                text = text[:at]
                stop_reason = "stop_sequence"
            if count_tokens(text) > params["max_tokens"]:
                text = truncate(text, params["max_tokens"])
                stop_reason, stop_sequence = "max_tokens", None
            content = [{"type": "text", "text": text}]
            output_tokens = count_tokens(text)
        tokens, points = marked_prompt(params)
        cached = model.cache.marked((self.ns, name), tokens, points) if points else Cached()
        return {
            "id": "msg_" + digest[:24],
            "type": "message",
            "role": "assistant",
            "model": name,
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": stop_sequence,
            "usage": {
                # input_tokens is what follows the last cached point: reads and writes apart
                "input_tokens": reply.prompt_tokens - cached.read - cached.written,
                "output_tokens": output_tokens,
                "cache_creation_input_tokens": cached.written,
                "cache_read_input_tokens": cached.read,
                "cache_creation": {
                    "ephemeral_5m_input_tokens": cached.write_5m,
                    "ephemeral_1h_input_tokens": cached.write_1h,
                },
                "service_tier": "batch",
            },
        }

    # -- endpoints --------------------------------------------------------------------------
    async def create(self, request: Request) -> Response:
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            return self.error(
                413, "request exceeds the 256 MB batch limit", type="request_too_large"
            )
        try:
            payload = json.loads(body)
        except ValueError:
            return self.error(400, "body is not valid JSON")
        requests = payload.get("requests") if isinstance(payload, dict) else None
        if not isinstance(requests, list) or not requests:
            return self.error(400, "requests: a non-empty list is required")
        if len(requests) > MAX_REQUESTS:
            return self.error(400, f"requests: at most {MAX_REQUESTS} requests per batch")
        seen: set[str] = set()
        for i, entry in enumerate(requests):
            if not isinstance(entry, dict) or not isinstance(entry.get("params"), dict):
                return self.error(400, f"requests.{i}.params: Field required")
            cid = entry.get("custom_id")
            if not isinstance(cid, str) or not codec.CUSTOM_ID_RE.match(cid):
                return self.error(
                    400, f"requests.{i}.custom_id: must match ^[a-zA-Z0-9_-]{{1,64}}$"
                )
            if cid in seen:
                return self.error(400, f"requests.{i}.custom_id: duplicate {cid!r}")
            seen.add(cid)
        model = requests[0]["params"].get("model")
        refused = self.queue_refusal(requests, model)
        if refused is not None:  # the organisation's processing queue is full
            return self.error(429, refused, type="rate_limit_error")
        attempts = dict(zip(seen, self.next_attempts(seen), strict=True))
        betas = output300k.sent_betas(request.headers.get("anthropic-beta"))
        batch = self.new_batch(
            requests,
            lambda entry, b: self._run(entry, b.id, attempts[entry["custom_id"]], betas),
            prefix="msgbatch_",
            extra={"betas": sorted(betas)},
            queue_model=model,
        )
        return self.json(self.batch_view(batch, request))

    async def list_batches(self, request: Request) -> Response:
        query = request.query_params
        try:
            limit = int(query.get("limit", "20"))
        except ValueError:
            return self.error(400, "limit: Input should be an integer")
        if not 1 <= limit <= 1000:
            return self.error(400, "limit: must be between 1 and 1000")
        after, before = query.get("after_id"), query.get("before_id")
        if after and before:
            return self.error(400, "give after_id or before_id, not both")
        newest_first = list(reversed(self.engine.list_batches(NAMESPACE)))
        ids = [b.id for b in newest_first]
        cursor = after or before
        if cursor and cursor not in ids:
            return self.error(400, f"unknown batch id {cursor!r} in cursor")
        if before:
            page, has_more = before_cursor(newest_first, ids, before, limit)
        else:
            page, has_more = cursor_page(newest_first, ids, after, limit)
        return self.json(
            {
                "data": [self.batch_view(b, request) for b in page],
                "has_more": has_more,
                "first_id": page[0].id if page else None,
                "last_id": page[-1].id if page else None,
            }
        )

    async def delete(self, request: Request) -> Response:
        """Delete an ended batch."""
        found = self.batch_or_404(request)
        if isinstance(found, Response):
            return found
        if self._status(found, self.engine.now()) != "ended":
            return self.error(
                400, f"message batch {found.id!r} is still processing; cancel it before deleting"
            )
        found.deleted = True
        return self.json({"id": found.id, "type": "message_batch_deleted"})

    async def results(self, request: Request) -> Response:
        """The results JSONL of an ended batch."""
        found = self.batch_or_404(request)
        if isinstance(found, Response):
            return found
        if self._status(found, self.engine.now()) != "ended":
            return self.error(400, f"message batch {found.id!r} has not ended yet")
        lines = self._outcomes(found)
        if BATCH_MISSING_OUTPUT in found.faults:
            # injected fault: the successes are missing from the results
            lines = [line for line in lines if line["result"]["type"] != "succeeded"]
        data = b"".join(wire.dumps(line) + b"\n" for line in lines)
        # an injected truncation cuts this download short mid-line; fetching again may succeed
        data = self.deliver(data, (NAMESPACE, found.serial, "results"))
        return Response(
            data,
            media_type="application/x-jsonl",
            headers={self.request_id_header: self.request_id()},
        )

    def routes(self) -> list[BaseRoute]:
        r, base, K = self.route, "/v1/messages/batches", RouteKind
        one = base + "/{batch_id}"
        return [
            # the create carries the requests inline: it is the upload too
            r(base, self.create, ["POST"], K.UPLOAD | K.CREATE, name="anthropic_create"),
            r(base, self.list_batches, ["GET"], K.LIST, name="anthropic_batches"),
            r(one, self.retrieve_batch, ["GET"], K.POLL, name="anthropic_batch"),
            r(one, self.delete, ["DELETE"], K.DELETE, name="anthropic_delete"),
            r(one + "/cancel", self.cancel_batch, ["POST"], K.CANCEL, name="anthropic_cancel"),
            r(one + "/results", self.results, ["GET"], K.DOWNLOAD, name="anthropic_batch_results"),
        ]


def routes(engine: SandboxEngine) -> list[BaseRoute]:
    """Starlette routes of the emulated Message Batches API."""
    return AnthropicSandbox(engine).routes()
