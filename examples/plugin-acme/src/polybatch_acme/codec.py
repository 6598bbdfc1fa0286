"""Acme's wire format, one module for the adapter and the sandbox: OpenAI's batch lines
(:mod:`polybatch.formats`), Acme's own status words and its rules for a request body."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from polybatch import formats
from polybatch.items import BatchItem, BatchResult
from polybatch.providers import BatchState
from polybatch.wire import WireError

#: neutral states -> Acme's batch statuses (what the sandbox reports)
STATUS: dict[BatchState, str] = {
    "validating": "queued",
    "in_progress": "running",
    "finalizing": "running",
    "cancelling": "stopping",
    "completed": "done",
    "failed": "failed",
    "expired": "expired",
    "cancelled": "stopped",
}
#: Acme's statuses -> neutral states (read backwards: the first state listed wins)
STATES: dict[str, BatchState] = {status: state for state, status in reversed(STATUS.items())}


def chat_body(item: BatchItem, model: str) -> dict[str, Any]:
    """The chat-completions body of ``item`` (Acme names the parameters as OpenAI does)."""
    return formats.chat_body(item, item.model or model, formats.PARAMS)


def check_body(body: Mapping[str, Any]) -> formats.ChatRequest:
    """Acme's rules for a request body; raises WireError (what its API answers with a 400)."""
    model, messages, max_tokens = body.get("model"), body.get("messages"), body.get("max_tokens")
    if not isinstance(model, str) or not isinstance(messages, list) or not messages:
        raise WireError("invalid_request", "'model' and 'messages' are required", param="messages")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("content"), str):
            raise WireError("invalid_content", "Acme reads plain text", param=f"messages[{i}]")
    if max_tokens is not None and (not formats.is_int(max_tokens) or max_tokens < 1):
        raise WireError("invalid_value", "'max_tokens' must be >= 1", param="max_tokens")
    rf = body.get("response_format")  # {"type": "json_schema", ...}: ChatRequest.json_schema()
    return formats.ChatRequest(model, messages, max_tokens, response_format=rf)


def decode_line(line: bytes, *, provider: str, batch_id: str) -> BatchResult:
    """One output- or error-file line (OpenAI's shapes) as a BatchResult."""
    errors = formats.LINE_ERRORS  # batch_expired, batch_cancelled: requests that never ran
    return formats.decode_line(line, provider=provider, batch_id=batch_id, line_errors=errors)


def completion(model: str, text: str, finish: str, usage: tuple[int, int]) -> dict[str, Any]:
    """A successful answer's body, a ``chat.completion`` (the sandbox writes it)."""
    message = {"role": "assistant", "content": text}
    choice = {"index": 0, "message": message, "finish_reason": finish}
    tokens = {"prompt_tokens": usage[0], "completion_tokens": usage[1]}
    return {"object": "chat.completion", "model": model, "choices": [choice], "usage": tokens}
