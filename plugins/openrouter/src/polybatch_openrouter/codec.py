"""OpenRouter's batch wire format, one module for the adapter and the sandbox.

A batch is one ``POST /api/v1/batches`` carrying every request inline: ``{endpoint, model,
requests: [{custom_id, body}], callback_url?, completion_window, provider?: {only,
allow_fallbacks}}``. A terminal batch's ``GET /api/v1/batches/{id}`` holds ``results``, each
``{id, custom_id, response: {status_code, request_id, body} | null, error: {message, param,
type} | null}``: OpenAI's output-line shape, so :func:`polybatch.formats.decode_line` reads it.

Sources, as checked on 2026-12-02: [src] the official ``openrouter`` SDK 1.3.84
(``components/batchsubmitbody.py``, ``components/batchobject.py``, ``batch.py``): the create
body, the statuses (OpenAI's eight words), ``request_counts{completed, failed, total}``, results
inline in the batch object of a terminal batch, delete for terminal batches only (409 otherwise),
no metadata on a batch. The SDK validates a chat reply strictly: ``choices[].logprobs``,
``message.refusal`` and ``native_finish_reason`` must be present (null allowed), as the sandbox
writes them. [docs] 5,000 requests and 200 MB per batch (openrouter.ai/docs/guides/features/
batch-api). [unverified] the error ``type`` of a request that never ran (cancelled, expired): the
sandbox writes OpenAI's ``batch_cancelled`` / ``batch_expired``, read as :data:`LINE_ERRORS`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, get_args

from polybatch import formats
from polybatch.items import BatchItem, BatchResult, ResultStatus
from polybatch.providers import BatchState
from polybatch.wire import WireError

#: the batch endpoints OpenRouter accepts (polybatch sends chat only) [src: BatchSubmitBody]
ENDPOINTS = ("/v1/chat/completions", "/v1/responses", "/v1/messages", "/v1/embeddings")
#: content part types a chat request may carry (the sandbox's model reads the text parts)
PART_TYPES = frozenset({"text", "image_url"})
#: OpenRouter's statuses are the neutral words [src: BatchObjectStatus]
STATES: dict[str, BatchState] = {state: state for state in get_args(BatchState)}
#: canonical error types (``error_type``) worth retrying [src: APIErrorType]
RETRYABLE_TYPES = frozenset(
    {"rate_limit_exceeded", "provider_overloaded", "provider_unavailable", "server", "timeout"}
)
#: error codes of results -> (result status, retryable): requests that never ran (OpenAI's
#: words, unverified for OpenRouter) and the retryable canonical types; others are not retryable
LINE_ERRORS: dict[str, tuple[ResultStatus, bool]] = {
    **formats.LINE_ERRORS,
    **{kind: ("errored", True) for kind in RETRYABLE_TYPES},
}


def chat_body(item: BatchItem) -> dict[str, Any]:
    """The chat body of ``item``, without ``model``: the batch names the one model it runs."""
    return formats.chat_body(item, None, formats.PARAMS)


def check_body(body: Mapping[str, Any], model: str) -> formats.ChatRequest:
    """OpenRouter's rules for one inline chat request of a batch for ``model``; raises
    WireError (what the create answers with a 400)."""
    if "model" in body and body["model"] != model:
        raise WireError("invalid_request", "one model per batch: drop 'model'", param="model")
    messages, max_tokens = body.get("messages"), body.get("max_tokens")
    if not isinstance(messages, list) or not messages:
        raise WireError("invalid_request", "'messages' must be a non-empty list", param="messages")
    for i, m in enumerate(messages):
        content = m.get("content") if isinstance(m, dict) else None
        if isinstance(content, str):
            continue
        if not isinstance(content, list) or not all(
            isinstance(p, dict) and p.get("type") in PART_TYPES for p in content
        ):
            raise WireError(
                "invalid_content",
                "content is text, or text and image_url parts",
                param=f"messages[{i}]",
            )
    if max_tokens is not None and (not formats.is_int(max_tokens) or max_tokens < 1):
        raise WireError("invalid_value", "'max_tokens' must be >= 1", param="max_tokens")
    rf = body.get("response_format")
    return formats.ChatRequest(model, messages, max_tokens, response_format=rf)


def routing(settings: Mapping[str, Any]) -> dict[str, Any] | None:
    """The create's ``provider`` preferences from the settings ``only`` (upstream provider names)
    and ``allow_fallbacks``; None when neither is set. Only these two are supported in batches
    [src: BatchProviderPreferences]."""
    prefs: dict[str, Any] = {}
    only = settings.get("only")
    if only is not None:
        names = [only] if isinstance(only, str) else list(only)
        if not names or not all(isinstance(n, str) and n for n in names):
            raise ValueError("openrouter setting 'only' names upstream providers")
        prefs["only"] = names
    if settings.get("allow_fallbacks") is not None:
        prefs["allow_fallbacks"] = bool(settings["allow_fallbacks"])
    return prefs or None


def decode_result(row: Mapping[str, Any], *, provider: str, batch_id: str) -> BatchResult:
    """One entry of a batch's ``results`` as a BatchResult.

    A failed request has no response but an ``error`` whose canonical ``error_type`` (if given)
    is the code read; a reply is read as an OpenAI output line.
    """
    error = row.get("error")
    if isinstance(error, Mapping) and not row.get("response"):
        code = error.get("error_type") or error.get("type")
        row = {**row, "error": {"code": code, "message": error.get("message")}}
    return formats.decode_line(row, provider=provider, batch_id=batch_id, line_errors=LINE_ERRORS)


# -- the sandbox side ----------------------------------------------------------------------------
def completion(
    completion_id: str, model: str, text: str, finish: str, usage: tuple[int, int]
) -> dict[str, Any]:
    """A successful reply's body, a ``chat.completion`` as the SDK's model requires it."""
    message = {"role": "assistant", "content": text, "refusal": None}
    choice = {
        "index": 0,
        "message": message,
        "finish_reason": finish,
        "native_finish_reason": finish,
        "logprobs": None,
    }
    tokens = {"prompt_tokens": usage[0], "completion_tokens": usage[1]}
    tokens["total_tokens"] = usage[0] + usage[1]
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [choice],
        "usage": tokens,
    }


def error_result(
    line_id: str, custom_id: str, kind: str, message: str, error_type: str | None = None
) -> dict[str, Any]:
    """A result of a request that got no response (``kind``: the error's type)."""
    error: dict[str, Any] = {"message": message, "param": None, "type": kind}
    if error_type is not None:
        error["error_type"] = error_type
    return {"id": line_id, "custom_id": custom_id, "response": None, "error": error}
