"""xAI's batch wire format, one module for the adapter and the sandbox.

xAI's Batch API is a container: ``POST /v1/batches {"name"}`` makes an empty batch, ``POST
/v1/batches/{id}/requests {"batch_requests": [...]}`` adds requests to it (in pages), ``GET
/v1/batches/{id}`` reports counts, ``GET /v1/batches/{id}/results`` lists results page by page,
``POST /v1/batches/{id}:cancel`` stops it. Request and reply bodies are OpenAI's chat-completions
shapes (:mod:`polybatch.formats`).

Sources, as checked on 2026-12-02:

- [src] xai-sdk 1.21.0, ``xai_sdk/proto/v6/batch_pb2.pyi`` and ``xai_sdk/aio/batch.py``: the
  batch's counters are ``state.num_requests``, ``num_pending``, ``num_success``, ``num_error``,
  ``num_cancelled`` (there is no status word: the counters and ``cancel_time`` are the state); a
  result is ``{batch_request_id, response, error: google.rpc.Status{code, message}}``; results
  and batches are paged with ``limit`` and ``pagination_token``; a batch has a ``name``.
- [docs, unverified against a live answer] the REST shapes: a request is ``{"batch_request_id",
  "batch_request": {"chat_get_completion": <chat body>}}`` and a result row carries its reply
  under ``batch_result.response.chat_get_completion`` (batchwork's and batchling's readers,
  xAI's REST reference). Where the REST row puts a failed request's status is not documented:
  both ``batch_result.error`` and a top-level ``error`` are read.
- Some notes read ``num_completed`` or ``success``: the SDK's proto says ``num_success``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, unquote

from polybatch import formats
from polybatch.items import BatchItem, BatchResult, ItemError, ResultStatus
from polybatch.providers import BatchState
from polybatch.wire import WireError, as_mapping, dumps

#: the reply key of a chat request and result (xAI's REST names its endpoints so)
CHAT_KEY = "chat_get_completion"
#: what a batch name starts with when polybatch made it (the rest is its metadata and size)
NAME_PREFIX = "polybatch"

#: google.rpc.Code values a result's ``error.code`` holds -> (name, result status, retryable)
GRPC_CODES: dict[int, tuple[str, ResultStatus, bool]] = {
    1: ("CANCELLED", "cancelled", True),
    2: ("UNKNOWN", "errored", True),
    3: ("INVALID_ARGUMENT", "errored", False),
    4: ("DEADLINE_EXCEEDED", "expired", True),
    5: ("NOT_FOUND", "errored", False),
    7: ("PERMISSION_DENIED", "errored", False),
    8: ("RESOURCE_EXHAUSTED", "errored", True),
    9: ("FAILED_PRECONDITION", "errored", False),
    13: ("INTERNAL", "errored", True),
    14: ("UNAVAILABLE", "errored", True),
    16: ("UNAUTHENTICATED", "errored", False),
}
#: the codes by name (the sandbox writes them)
CODE = {name: number for number, (name, _, _) in GRPC_CODES.items()}


# -- encode ------------------------------------------------------------------------------------
def chat_body(item: BatchItem, model: str) -> dict[str, Any]:
    """The chat-completions body of ``item`` (xAI names the parameters as OpenAI does)."""
    return formats.chat_body(item, item.model or model, formats.PARAMS)


def check_body(body: Mapping[str, Any]) -> formats.ChatRequest:
    """xAI's rules for a chat body as polybatch sends it; raises WireError (a 400)."""
    model, messages, max_tokens = body.get("model"), body.get("messages"), body.get("max_tokens")
    if not isinstance(model, str) or not model:
        raise WireError("invalid_request", "'model' is required", param="model")
    if not isinstance(messages, list) or not messages:
        raise WireError("invalid_request", "'messages' must be a non-empty list", param="messages")
    for i, m in enumerate(messages):
        content = m.get("content") if isinstance(m, dict) else None
        parts = content if isinstance(content, list) else [{"type": "text", "text": content}]
        for part in parts:
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "text" and isinstance(part.get("text"), str):
                continue
            raise WireError("invalid_content", "text content only", param=f"messages[{i}]")
    if max_tokens is not None and (not formats.is_int(max_tokens) or max_tokens < 1):
        raise WireError("invalid_value", "'max_tokens' must be >= 1", param="max_tokens")
    rf = body.get("response_format")
    return formats.ChatRequest(model, messages, max_tokens, response_format=rf)


def request_line(body: Mapping[str, Any], batch_request_id: str) -> bytes:
    """One batch request, as the add-requests call carries it (one JSONL line of the chunk)."""
    return dumps({"batch_request_id": batch_request_id, "batch_request": {CHAT_KEY: dict(body)}})


def batch_name(metadata: Mapping[str, str], n_requests: int) -> str:
    """The name of a batch polybatch makes: its metadata and how many requests it will hold.

    xAI batches carry no metadata, only a name, so the name is what finds a batch again after a
    lost answer; the size tells a batch whose requests were all added from one cut short.
    """
    tags = "".join(f";{quote(k, safe='')}={quote(v, safe='')}" for k, v in sorted(metadata.items()))
    return f"{NAME_PREFIX}{tags};n={n_requests}"


def parse_name(name: str) -> tuple[dict[str, str], int] | None:
    """``(metadata, size)`` of a name made by :func:`batch_name`, None for any other name."""
    head, *fields = name.split(";")
    if head != NAME_PREFIX or not fields or not fields[-1].startswith("n="):
        return None
    pairs = [f.partition("=") for f in fields[:-1]]
    size = fields[-1][2:]
    if not size.isdigit() or any(not sep for _, sep, _ in pairs):
        return None
    return {unquote(k): unquote(v) for k, _, v in pairs}, int(size)


# -- decode ------------------------------------------------------------------------------------
def counts(batch: Mapping[str, Any]) -> dict[str, int]:
    """The batch's counters (``state.num_*``), missing ones as 0."""
    state = as_mapping(batch.get("state"))
    names = ("num_requests", "num_pending", "num_success", "num_error", "num_cancelled")
    return {name: int(state.get(name) or 0) for name in names}


def batch_state(batch: Mapping[str, Any]) -> BatchState:
    """The neutral state of a batch object: xAI reports counters, not a status word.

    Requests pending: running (or being cancelled). None pending: ended, cancelled if a cancel
    was asked for; requests cancelled without one were stopped by the batch's expiry
    [inferred]. No request yet: still being filled.
    """
    n = counts(batch)
    cancelled = bool(batch.get("cancel_time"))
    if n["num_requests"] == 0:
        return "cancelled" if cancelled else "validating"
    if n["num_pending"] > 0:
        return "cancelling" if cancelled else "in_progress"
    if cancelled:
        return "cancelled"
    return "expired" if n["num_cancelled"] > 0 else "completed"


def decode_result(row: Mapping[str, Any], *, provider: str, batch_id: str) -> BatchResult:
    """One row of a results page as a BatchResult."""
    custom_id = row.get("batch_request_id")
    if not isinstance(custom_id, str):
        raise WireError("invalid_output_line", "result row has no batch_request_id")
    common: dict[str, Any] = {"custom_id": custom_id, "provider": provider, "batch_id": batch_id}
    result = as_mapping(row.get("batch_result"))
    error = as_mapping(result.get("error") or row.get("error"))
    if error and int(error.get("code") or 0) != 0:
        number = int(error["code"])
        name, status, retryable = GRPC_CODES.get(number, (f"grpc_{number}", "errored", False))
        message = str(error.get("message") or name)
        item_error = ItemError(code=name, message=message, retryable=retryable)
        return BatchResult(status=status, error=item_error, **common)
    body = as_mapping(as_mapping(result.get("response")).get(CHAT_KEY))
    if not body:
        error_ = ItemError(code="invalid_output_line", message="result row has no reply")
        return BatchResult(status="errored", error=error_, **common)
    # xAI counts reasoning tokens outside completion_tokens and bills them as output
    return formats.chat_result(dict(body), common, reasoning_outside=True)


# -- the sandbox side ----------------------------------------------------------------------------
def completion(model: str, text: str, finish: str, usage: tuple[int, int]) -> dict[str, Any]:
    """A successful reply's body, a ``chat.completion``."""
    message = {"role": "assistant", "content": text}
    choice = {"index": 0, "message": message, "finish_reason": finish}
    tokens = {"prompt_tokens": usage[0], "completion_tokens": usage[1]}
    tokens["total_tokens"] = usage[0] + usage[1]
    return {"object": "chat.completion", "model": model, "choices": [choice], "usage": tokens}


def success_row(batch_request_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """A results row of a request that got a reply."""
    result = {"response": {CHAT_KEY: dict(body)}}
    return {"batch_request_id": batch_request_id, "batch_result": result}


def error_row(batch_request_id: str, code: str, message: str) -> dict[str, Any]:
    """A results row of a request that failed (``code`` a google.rpc.Code name)."""
    result = {"error": {"code": CODE[code], "message": message}}
    return {"batch_request_id": batch_request_id, "batch_result": result}
