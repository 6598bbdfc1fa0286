"""The Mistral chat-completions batch wire format, in one place.

Both sides use this module: the adapter encodes :class:`~polybatch.items.BatchItem`s into input lines
and decodes output/error lines into :class:`~polybatch.items.BatchResult`s; the sandbox decodes input
lines, validates request bodies and writes output/error lines. Keeping both directions here means the
emulator cannot drift from what the client sends and expects.

Input lines are ``{"custom_id": ..., "body": {...}}`` (Mistral's documented format: no ``method`` or
``url``, and ``body.model`` is optional because the job names the model). Output lines follow the
shape Mistral's batch results are consumed with in the wild, ``{"id", "custom_id", "response":
{"status_code", "body"}, "error"}``; Mistral does not document it (UNVERIFIED), so the decoder is
lenient about which parts are present.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from polybatch.items import BatchItem, BatchResult, ItemError, ResultStatus, Usage
from polybatch.wire import dumps

#: the batch ``endpoint`` of chat-completion jobs
CHAT_ENDPOINT = "/v1/chat/completions"

#: neutral parameter name -> Mistral body field (the seed is ``random_seed`` at Mistral)
PARAM_TO_BODY: dict[str, str] = {
    "max_tokens": "max_tokens",
    "temperature": "temperature",
    "top_p": "top_p",
    "seed": "random_seed",
    "stop": "stop",
    "response_format": "response_format",
}
#: HTTP statuses worth sending again (the SDK's own retry set is 429 and 5xx)
_RETRYABLE_STATUS = frozenset({408, 409, 429})
#: error-only lines (no HTTP response): code -> (result status, retryable)
LINE_ERRORS: dict[str, tuple[ResultStatus, bool]] = {
    "batch_cancelled": ("canceled", True),
    "batch_expired": ("expired", True),
    "timeout_exceeded": ("expired", True),
}
#: Mistral's finish reasons -> neutral ones ("model_length": the context window ran out)
_FINISH_REASONS = {"model_length": "length"}
#: roles a Mistral chat request may use
CHAT_ROLES = frozenset({"system", "user", "assistant", "tool"})
#: content-part types Mistral accepts in user/assistant turns (the SDK's ContentChunk variants)
CONTENT_TYPES = frozenset(
    {
        "text",
        "image_url",
        "document_url",
        "reference",
        "file",
        "thinking",
        "input_audio",
        "resource",
        "resource_link",
    }
)
#: content-part types a system turn may hold (the SDK's SystemMessageContentChunks)
SYSTEM_CONTENT_TYPES = frozenset({"text", "thinking"})
INT64_MAX = 2**63 - 1


class WireError(ValueError):
    """A line or request body that breaks the wire format, as Mistral would report it."""

    def __init__(self, code: str, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.param = param


# -- client side: encode ------------------------------------------------------------------------
def encode_body(item: BatchItem, *, model: str | None = None) -> dict[str, Any]:
    """The chat-completions body for ``item``; ``model`` is written only when given.

    The adapter leaves the model out: the job names it once, and every line is shorter for it.
    """
    body: dict[str, Any] = {}
    if model:
        body["model"] = model
    body["messages"] = [{"role": m.role, "content": m.content} for m in item.messages]
    for name, value in item.params().items():
        body[PARAM_TO_BODY[name]] = value
    # extra is the escape hatch for Mistral-only fields (safe_prompt, presence_penalty, ...): passed
    # through verbatim and last, so what the user spelled out explicitly wins
    body.update(item.extra)
    return body


def encode_line(
    item: BatchItem, *, custom_id: str | None = None, model: str | None = None
) -> bytes:
    """One input line (no newline) for ``item``; ``custom_id`` overrides ``item.custom_id``."""
    cid = custom_id if custom_id is not None else item.custom_id
    if not cid:
        raise ValueError("an item needs a custom_id before it is encoded")
    return dumps({"custom_id": cid, "body": encode_body(item, model=model)})


# -- client side: decode ------------------------------------------------------------------------
def usage_from_body(usage: Mapping[str, Any] | None) -> Usage:
    """Map a chat-completion ``usage`` onto disjoint neutral buckets.

    Mistral's ``prompt_tokens`` includes the cached prompt tokens reported in
    ``prompt_tokens_details.cached_tokens`` (as at OpenAI; genai-prices reads it the same way), so
    they are subtracted once here. ``reasoning_tokens`` is part of ``completion_tokens``.
    """
    if not usage:
        return Usage()
    prompt = int(usage.get("prompt_tokens") or 0)
    cached = int(_mapping(usage.get("prompt_tokens_details")).get("cached_tokens") or 0)
    reasoning = int(_mapping(usage.get("completion_tokens_details")).get("reasoning_tokens") or 0)
    return Usage(
        input_tokens=max(prompt - cached, 0),
        cached_input_tokens=min(cached, prompt) if prompt else cached,
        output_tokens=int(usage.get("completion_tokens") or 0),
        reasoning_tokens=reasoning,
    )


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def retryable_status(status: int) -> bool:
    """Whether a request that got this HTTP status may succeed when sent again."""
    return status in _RETRYABLE_STATUS or status >= 500


def message_text(content: Any) -> str | None:
    """The text of a message content: a string, or the text parts of a list joined."""
    if content is None or isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(p.get("text", ""))
            for p in content
            if isinstance(p, Mapping) and p.get("type") == "text"
        )
    return None


def _error_fields(body: Mapping[str, Any], status: int) -> tuple[str, str]:
    """(code, message) of an error body: Mistral's flat error, an OpenAI-style nested one, or a
    FastAPI ``detail``."""
    err = _mapping(body.get("error")) or body
    code = err.get("code") or err.get("type")
    message = err.get("message")
    if message is None and "detail" in body:
        detail = body["detail"]
        message = detail if isinstance(detail, str) else json.dumps(detail)
    return str(code or f"http_{status}"), str(message or f"HTTP {status}")


def decode_result(
    line: bytes | str | Mapping[str, Any],
    *,
    provider: str | None = None,
    batch_id: str | None = None,
) -> BatchResult:
    """Decode one output-file or error-file line into a BatchResult.

    Raises :class:`WireError` for a line that is not a result line at all (no custom_id).
    """
    if isinstance(line, Mapping):
        obj: Any = line
    else:
        try:
            obj = json.loads(line)
        except ValueError as exc:
            raise WireError("invalid_json_line", f"output line is not JSON: {exc}") from exc
    if not isinstance(obj, Mapping) or not isinstance(obj.get("custom_id"), str):
        raise WireError("invalid_output_line", "output line has no custom_id")
    common: dict[str, Any] = {
        "custom_id": obj["custom_id"],
        "provider": provider,
        "batch_id": batch_id,
    }
    response = obj.get("response")
    if isinstance(response, Mapping):
        status = int(response.get("status_code") or 0)
        body = dict(_mapping(response.get("body")))
        if 200 <= status < 300:
            return _success(body, common)
        code, message = _error_fields(body, status)
        return BatchResult(
            status="errored",
            error=ItemError(
                code=code,
                message=message,
                status_code=status or None,
                retryable=retryable_status(status) if status else True,
            ),
            response=body,
            **common,
        )
    error = obj.get("error")
    if isinstance(error, Mapping | str):
        err = _mapping(error)
        code = str(err.get("code") or err.get("type") or "unknown_error")
        message = error if isinstance(error, str) else str(err.get("message") or code)
        result_status, retryable = LINE_ERRORS.get(code, ("errored", False))
        return BatchResult(
            status=result_status,
            error=ItemError(code=code, message=message, retryable=retryable),
            **common,
        )
    return BatchResult(
        status="errored",
        error=ItemError(
            code="invalid_output_line", message="output line has neither response nor error"
        ),
        **common,
    )


def _success(body: dict[str, Any], common: dict[str, Any]) -> BatchResult:
    choices = body.get("choices")
    choice = _mapping(choices[0]) if isinstance(choices, list) and choices else {}
    finish = choice.get("finish_reason")
    if finish == "error":
        # a 200 whose generation broke off: not an answer, and worth another try
        return BatchResult(
            status="errored",
            error=ItemError(
                code="generation_error",
                message="the model stopped with finish_reason 'error'",
                status_code=200,
                retryable=True,
            ),
            usage=usage_from_body(_mapping(body.get("usage"))),
            model=body.get("model"),
            response=body,
            **common,
        )
    message = _mapping(choice.get("message"))
    return BatchResult(
        status="succeeded",
        text=message_text(message.get("content")),
        finish_reason=_FINISH_REASONS.get(str(finish), finish) if finish is not None else None,
        usage=usage_from_body(_mapping(body.get("usage"))),
        model=body.get("model"),
        response=body,
        **common,
    )


def synthetic_result(
    custom_id: str, status: ResultStatus, *, provider: str | None, batch_id: str | None
) -> BatchResult:
    """The result of a request a cancelled or timed-out job never ran (it has no output line)."""
    code = "batch_cancelled" if status == "canceled" else "batch_expired"
    message = (
        "This request was not run because the batch job was cancelled."
        if status == "canceled"
        else "This request was not run before the batch job's timeout."
    )
    return BatchResult(
        custom_id=custom_id,
        status=status,
        error=ItemError(code=code, message=message, retryable=True),
        provider=provider,
        batch_id=batch_id,
    )


def input_custom_id(line: bytes) -> str | None:
    """The custom_id of an input line, or None if it has none (the client side of cancel/expiry)."""
    try:
        obj = json.loads(line)
    except ValueError:
        return None
    cid = obj.get("custom_id") if isinstance(obj, dict) else None
    return cid if isinstance(cid, str) else None


# -- sandbox side: decode input -----------------------------------------------------------------
@dataclass
class InputLine:
    """One parsed input line."""

    custom_id: str
    body: dict[str, Any]


def decode_input_line(line: bytes | str, *, index: int) -> InputLine:
    """Parse an input line's envelope (not its body). Raises WireError.

    ``custom_id`` is optional at Mistral; a line without one is named by its position.
    """
    try:
        # decode strictly first: json.loads(bytes) would quietly accept a UTF-8 BOM
        obj = json.loads(line.decode("utf-8") if isinstance(line, bytes) else line)
    except ValueError as exc:  # UnicodeDecodeError is a ValueError too
        raise WireError("invalid_json_line", f"line is not valid JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise WireError("invalid_json_line", "line is not a JSON object")
    cid = obj.get("custom_id", str(index))
    if cid is None:
        cid = str(index)
    if not isinstance(cid, str) or not cid:
        raise WireError(
            "invalid_request", "custom_id must be a non-empty string", param="custom_id"
        )
    body = obj.get("body")
    if not isinstance(body, dict):
        raise WireError("invalid_request", "body must be a JSON object", param="body")
    return InputLine(custom_id=cid, body=body)


@dataclass
class ChatRequest:
    """A validated chat-completions body, in neutral terms."""

    model: str
    messages: list[dict[str, Any]]
    max_tokens: int | None = None
    stop: list[str] | None = None
    response_format: dict[str, Any] | None = None
    n: int = 1
    #: body fields not listed above, untouched
    extra: dict[str, Any] = field(default_factory=dict)

    def transcript(self) -> list[tuple[str, str]]:
        """(role, text) pairs; text parts of list contents are joined, other parts ignored."""
        return [(m["role"], message_text(m.get("content")) or "") for m in self.messages]

    def json_schema(self) -> dict[str, Any] | None:
        """The requested JSON schema, if response_format asks for one."""
        rf = self.response_format or {}
        if rf.get("type") == "json_schema":
            schema = _mapping(rf.get("json_schema")).get("schema")
            return dict(schema) if isinstance(schema, Mapping) else {"type": "object"}
        return None


def _invalid(message: str, param: str) -> WireError:
    return WireError("invalid_request_error", message, param=param)


def _check_number(body: Mapping[str, Any], name: str, lo: float, hi: float | None) -> None:
    value = body.get(name)
    if value is None:
        return
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or value < lo
        or (hi is not None and value > hi)
    ):
        bound = f"between {lo:g} and {hi:g}" if hi is not None else f">= {lo:g}"
        raise _invalid(f"{name}: expected a number {bound}, got {value!r}", name)


def _check_message(i: int, m: Any) -> None:
    where = f"messages[{i}]"
    if not isinstance(m, dict):
        raise _invalid(f"{where}: expected an object", where)
    role = m.get("role")
    if role not in CHAT_ROLES:
        raise _invalid(
            f"{where}.role: {role!r} is not one of {', '.join(sorted(CHAT_ROLES))}",
            f"{where}.role",
        )
    content = m.get("content")
    if content is None and role in ("assistant", "tool"):
        return  # assistant turns may carry tool calls instead of content
    if isinstance(content, str):
        return
    allowed = SYSTEM_CONTENT_TYPES if role == "system" else CONTENT_TYPES
    if isinstance(content, list) and content:
        for j, part in enumerate(content):
            kind = part.get("type") if isinstance(part, dict) else None
            if kind not in allowed:
                raise _invalid(
                    f"{where}.content[{j}]: a {role} message cannot hold a {kind!r} chunk",
                    f"{where}.content[{j}]",
                )
        return
    raise _invalid(f"{where}.content: expected a string or a non-empty list", f"{where}.content")


def parse_chat_body(body: Mapping[str, Any], *, job_model: str | None) -> ChatRequest:
    """Validate a chat-completions body the way the API would. Raises WireError (an HTTP 400).

    ``job_model`` is the job's model, used when the body names none.
    """
    rest = dict(body)
    model = rest.pop("model", None) or job_model
    if not isinstance(model, str) or not model:
        raise _invalid("model: a model is required (in the body or on the job)", "model")
    messages = rest.pop("messages", None)
    if not isinstance(messages, list) or not messages:
        raise _invalid("messages: expected a non-empty list", "messages")
    for i, m in enumerate(messages):
        _check_message(i, m)
    if rest.pop("stream", None):
        raise _invalid("stream: streaming is not available in batch jobs", "stream")

    max_tokens = rest.pop("max_tokens", None)
    if max_tokens is not None and (
        isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 0
    ):
        raise _invalid(f"max_tokens: expected an integer >= 0, got {max_tokens!r}", "max_tokens")
    _check_number(rest, "temperature", 0, None)
    _check_number(rest, "top_p", 0, 1)
    seed = rest.get("random_seed")
    if seed is not None and (
        isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= INT64_MAX
    ):
        raise _invalid("random_seed: expected a non-negative integer", "random_seed")

    stop_raw = rest.pop("stop", None)
    stop: list[str] | None = None
    if stop_raw is not None:
        stop = [stop_raw] if isinstance(stop_raw, str) else stop_raw
        if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
            raise _invalid("stop: expected a string or a list of strings", "stop")

    response_format = rest.pop("response_format", None)
    if response_format is not None:
        check_response_format(response_format)

    n = rest.pop("n", None)
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise _invalid("n: expected an integer >= 1", "n")

    return ChatRequest(
        model=model,
        messages=messages,
        max_tokens=max_tokens,
        stop=stop,
        response_format=response_format,
        n=n or 1,
        extra=rest,
    )


def check_response_format(rf: Any) -> None:
    """Raise WireError unless ``rf`` is a response_format the API accepts."""
    if not isinstance(rf, dict) or rf.get("type", "text") not in (
        "text",
        "json_object",
        "json_schema",
    ):
        raise _invalid(
            "response_format.type: expected 'text', 'json_object' or 'json_schema'",
            "response_format.type",
        )
    if rf.get("type") == "json_schema":
        js = rf.get("json_schema")
        if not isinstance(js, dict) or not isinstance(js.get("name"), str) or not js["name"]:
            raise _invalid(
                "response_format.json_schema.name: a name is required",
                "response_format.json_schema.name",
            )
        if not isinstance(js.get("schema"), dict):
            raise _invalid(
                "response_format.json_schema.schema: expected an object",
                "response_format.json_schema.schema",
            )


# -- sandbox side: encode output ----------------------------------------------------------------
def short_hash(*parts: Any, length: int = 32) -> str:
    """A stable hex id derived from ``parts`` (deterministic sandbox ids)."""
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:length]


def chat_completion(
    *,
    completion_id: str,
    created: int,
    model: str,
    texts: list[str],
    finish_reason: str,
    prompt_tokens: int,
    completion_tokens: int,
) -> dict[str, Any]:
    """A Mistral ``chat.completion`` response body, one choice per text."""
    return {
        "id": completion_id,
        "object": "chat.completion",
        "model": model,
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
        "created": created,
        "choices": [
            {
                "index": i,
                "message": {
                    "role": "assistant",
                    "content": text,
                    "tool_calls": None,
                    "prefix": False,
                },
                "finish_reason": finish_reason,
            }
            for i, text in enumerate(texts)
        ],
    }


def error_body(
    message: str,
    *,
    type: str = "invalid_request_error",
    code: str | None = None,
    param: str | None = None,
) -> dict[str, Any]:
    """Mistral's (flat) error envelope."""
    return {"object": "error", "message": message, "type": type, "param": param, "code": code}


def response_line(
    line_id: str, custom_id: str, *, status_code: int, body: Mapping[str, Any]
) -> dict[str, Any]:
    """An output/error line carrying an HTTP response."""
    return {
        "id": line_id,
        "custom_id": custom_id,
        "response": {"status_code": status_code, "body": dict(body)},
        "error": None,
    }
