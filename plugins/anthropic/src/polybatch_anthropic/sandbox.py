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
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from polybatch import wire
from polybatch.sandbox.engine import SandboxBatch, SandboxEngine
from polybatch.sandbox.faults import BATCH_MISSING_OUTPUT
from polybatch.tokens import count_tokens, truncate

from . import codec

NAMESPACE = "anthropic"
MAX_REQUESTS = 100_000
MAX_BODY_BYTES = 256 * 1024 * 1024
_ENDED = frozenset({"completed", "cancelled", "expired", "failed"})


def _rfc3339(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _request_id() -> str:
    return "req_" + secrets.token_hex(12)


def _json(body: Any, status: int = 200, request_id: str | None = None) -> JSONResponse:
    return JSONResponse(
        body, status_code=status, headers={"request-id": request_id or _request_id()}
    )


def _error(status: int, error_type: str, message: str) -> JSONResponse:
    rid = _request_id()
    return _json(codec.error_body(error_type, message, rid), status, rid)


def _presented_key(request: Request) -> str | None:
    # the SDK (2.x) sends "Authorization: Bearer"; docs and curl use "x-api-key": accept both
    key = request.headers.get("x-api-key")
    if key:
        return key
    auth = request.headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


class AnthropicSandbox:
    """The route handlers, bound to one engine."""

    def __init__(self, engine: SandboxEngine) -> None:
        self.engine = engine
        #: how many batches carried each custom_id before: item faults are keyed on it
        self.attempts: dict[str, int] = {}

    # -- helpers ----------------------------------------------------------------------------
    def _authorized(self, request: Request) -> JSONResponse | None:
        if self.engine.check_key(_presented_key(request)):
            return None
        return _error(401, "authentication_error", "invalid x-api-key")

    def _batch(self, request: Request) -> SandboxBatch | JSONResponse:
        batch_id = request.path_params["batch_id"]
        batch = self.engine.get_batch(NAMESPACE, batch_id)
        if batch is None:
            return _error(404, "not_found_error", f"message batch {batch_id!r} not found")
        return batch

    def _status(self, batch: SandboxBatch, now: float) -> str:
        if batch.state(now) in _ENDED:
            return "ended"
        return "in_progress" if batch.cancel_requested_at is None else "canceling"

    def _outcomes(self, batch: SandboxBatch) -> list[dict[str, Any]]:
        """Every request's result line, computed once when the batch has ended."""
        with self.engine.lock:
            if batch.output is None:
                now = self.engine.now()
                state = batch.state(now)
                done = batch.processed(now)
                leftover = "expired" if state == "expired" else "canceled"
                lines = []
                for i, entry in enumerate(batch.requests):
                    if state == "failed":
                        result = {
                            "type": "errored",
                            "error": codec.error_body("api_error", "the batch failed", None),
                        }
                    elif i < done:
                        result = batch.outcome(i)
                    else:
                        result = {"type": leftover}
                    lines.append({"custom_id": entry["custom_id"], "result": result})
                batch.output = {"lines": lines}
            lines_out: list[dict[str, Any]] = batch.output["lines"]
            return lines_out

    def _view(self, batch: SandboxBatch, request: Request) -> dict[str, Any]:
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
    def _run(self, entry: dict[str, Any], batch_id: str, attempt: int = 0) -> dict[str, Any]:
        """One request's result object (``succeeded`` or ``errored``)."""
        params = entry["params"]
        problem = codec.check_params(params)
        if problem is not None:
            return {
                "type": "errored",
                "error": codec.error_body("invalid_request_error", problem, None),
            }
        faults = self.engine.faults
        # keyed by (custom_id, attempt), not the random batch id: reproducible for a seed, and a
        # retry of the request in a later batch draws afresh
        if faults.hit(faults.item_error_rate, NAMESPACE, entry["custom_id"], attempt):
            return {
                "type": "errored",
                "error": codec.error_body(
                    "api_error", "Internal server error (injected fault)", None
                ),
            }
        fmt = (params.get("output_config") or {}).get("format")
        # its own key: not the same draw as the item error above
        broken = fmt is not None and faults.hit(
            faults.invalid_json_rate, "invalid_json", NAMESPACE, entry["custom_id"], attempt
        )
        if broken:
            self.engine.note_fault(
                "invalid_json", f"{NAMESPACE} {entry['custom_id']}", str(attempt)
            )
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
        return {
            "id": "msg_" + digest[:24],
            "type": "message",
            "role": "assistant",
            "model": name,
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": stop_sequence,
            "usage": {
                "input_tokens": reply.prompt_tokens,
                "output_tokens": output_tokens,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
                "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
                "service_tier": "batch",
            },
        }

    # -- endpoints --------------------------------------------------------------------------
    async def batches(self, request: Request) -> Response:
        """``POST`` creates a batch, ``GET`` lists them."""
        denied = self._authorized(request)
        if denied is not None:
            return denied
        if request.method == "POST":
            return await self._create(request)
        return self._list(request)

    async def _create(self, request: Request) -> Response:
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            return _error(413, "request_too_large", "request exceeds the 256 MB batch limit")
        try:
            payload = json.loads(body)
        except ValueError:
            return _error(400, "invalid_request_error", "body is not valid JSON")
        requests = payload.get("requests") if isinstance(payload, dict) else None
        if not isinstance(requests, list) or not requests:
            return _error(400, "invalid_request_error", "requests: a non-empty list is required")
        if len(requests) > MAX_REQUESTS:
            return _error(
                400, "invalid_request_error", f"requests: at most {MAX_REQUESTS} requests per batch"
            )
        seen: set[str] = set()
        for i, entry in enumerate(requests):
            if not isinstance(entry, dict) or not isinstance(entry.get("params"), dict):
                return _error(400, "invalid_request_error", f"requests.{i}.params: Field required")
            cid = entry.get("custom_id")
            if not isinstance(cid, str) or not codec.CUSTOM_ID_RE.match(cid):
                return _error(
                    400,
                    "invalid_request_error",
                    f"requests.{i}.custom_id: must match ^[a-zA-Z0-9_-]{{1,64}}$",
                )
            if cid in seen:
                return _error(
                    400, "invalid_request_error", f"requests.{i}.custom_id: duplicate {cid!r}"
                )
            seen.add(cid)
        # the handler needs the batch id (faults are keyed on it), known only after creation
        holder: dict[str, str] = {}
        with self.engine.lock:
            attempts = {cid: self.attempts.get(cid, 0) for cid in seen}
            for cid in seen:
                self.attempts[cid] = attempts[cid] + 1
        batch = self.engine.create_batch(
            NAMESPACE,
            requests,
            lambda entry: self._run(entry, holder["id"], attempts[entry["custom_id"]]),
            prefix="msgbatch_",
        )
        holder["id"] = batch.id
        return _json(self._view(batch, request))

    def _list(self, request: Request) -> Response:
        query = request.query_params
        try:
            limit = int(query.get("limit", "20"))
        except ValueError:
            return _error(400, "invalid_request_error", "limit: Input should be an integer")
        if not 1 <= limit <= 1000:
            return _error(400, "invalid_request_error", "limit: must be between 1 and 1000")
        after, before = query.get("after_id"), query.get("before_id")
        if after and before:
            return _error(400, "invalid_request_error", "give after_id or before_id, not both")
        newest_first = list(reversed(self.engine.list_batches(NAMESPACE)))
        ids = [b.id for b in newest_first]
        cursor = after or before
        if cursor and cursor not in ids:
            return _error(400, "invalid_request_error", f"unknown batch id {cursor!r} in cursor")
        if after:
            start = ids.index(after) + 1
            page = newest_first[start : start + limit]
            has_more = start + limit < len(ids)
        elif before:
            end = ids.index(before)
            page = newest_first[max(0, end - limit) : end]
            has_more = end - limit > 0
        else:
            page = newest_first[:limit]
            has_more = len(ids) > limit
        return _json(
            {
                "data": [self._view(b, request) for b in page],
                "has_more": has_more,
                "first_id": page[0].id if page else None,
                "last_id": page[-1].id if page else None,
            }
        )

    async def batch(self, request: Request) -> Response:
        """``GET`` retrieves a batch, ``DELETE`` deletes an ended one."""
        denied = self._authorized(request)
        if denied is not None:
            return denied
        found = self._batch(request)
        if isinstance(found, Response):
            return found
        if request.method == "DELETE":
            if self._status(found, self.engine.now()) != "ended":
                return _error(
                    400,
                    "invalid_request_error",
                    f"message batch {found.id!r} is still processing; cancel it before deleting",
                )
            found.deleted = True
            return _json({"id": found.id, "type": "message_batch_deleted"})
        return _json(self._view(found, request))

    async def cancel(self, request: Request) -> Response:
        """Start cancelling (a no-op once the batch has ended)."""
        denied = self._authorized(request)
        if denied is not None:
            return denied
        found = self._batch(request)
        if isinstance(found, Response):
            return found
        self.engine.cancel(found)
        return _json(self._view(found, request))

    async def results(self, request: Request) -> Response:
        """The results JSONL of an ended batch."""
        denied = self._authorized(request)
        if denied is not None:
            return denied
        found = self._batch(request)
        if isinstance(found, Response):
            return found
        if self._status(found, self.engine.now()) != "ended":
            return _error(
                400, "invalid_request_error", f"message batch {found.id!r} has not ended yet"
            )
        lines = self._outcomes(found)
        if BATCH_MISSING_OUTPUT in found.faults:
            # injected fault: the successes are missing from the results
            lines = [line for line in lines if line["result"]["type"] != "succeeded"]
        data = b"".join(wire.dumps(line) + b"\n" for line in lines)
        # an injected truncation cuts this download short mid-line; fetching again may succeed
        data = self.engine.download((NAMESPACE, found.serial, "results"), data)
        return Response(
            data, media_type="application/x-jsonl", headers={"request-id": _request_id()}
        )


def routes(engine: SandboxEngine) -> list[BaseRoute]:
    """Starlette routes of the emulated Message Batches API."""
    api = AnthropicSandbox(engine)
    base = "/v1/messages/batches"
    return [
        Route(base, api.batches, methods=["GET", "POST"], name="anthropic_batches"),
        Route(base + "/{batch_id}", api.batch, methods=["GET", "DELETE"], name="anthropic_batch"),
        Route(base + "/{batch_id}/cancel", api.cancel, methods=["POST"], name="anthropic_cancel"),
        Route(
            base + "/{batch_id}/results",
            api.results,
            methods=["GET"],
            name="anthropic_batch_results",
        ),
    ]
