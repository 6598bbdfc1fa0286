"""The OpenAI chat-completions batch wire format, in one place.

Both sides use this module: the adapter encodes :class:`~polybatch.items.BatchItem`s into input lines
and decodes output/error lines into :class:`~polybatch.items.BatchResult`s; the sandbox decodes input
lines, validates request bodies and writes output/error lines. Keeping both directions here means the
emulator cannot drift from what the client sends and expects.

The request ``url`` is a parameter everywhere because Azure reuses this format with
``/chat/completions`` and ``/embeddings`` (and a deployment name as ``body.model``).

Embedding items (``kind="embedding"``) go to the embeddings endpoint, one input per request: a
batch holds one endpoint, so the planner keeps chat and embedding items in separate batches.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from polybatch.items import BatchItem, BatchResult, ItemError, ResultStatus, Usage
from polybatch.wire import dumps

#: the batch endpoint and per-line url of OpenAI chat-completions batches
CHAT_URL = "/v1/chat/completions"
#: the batch endpoint and per-line url of OpenAI embeddings batches
EMBEDDINGS_URL = "/v1/embeddings"
#: OpenAI's cap on embedding inputs in one batch (all requests together); polybatch sends one
#: input per request, so it is a cap on the requests of an embeddings batch
MAX_EMBEDDING_INPUTS = 50_000
#: OpenAI's cap on inputs in one embeddings request
MAX_INPUTS_PER_REQUEST = 2048

#: neutral parameter name -> body field; max_tokens goes out as the newer field name
_PARAM_TO_BODY: dict[str, str] = {
    "max_tokens": "max_completion_tokens",
    "temperature": "temperature",
    "top_p": "top_p",
    "seed": "seed",
    "stop": "stop",
    "response_format": "response_format",
}
#: HTTP statuses worth sending again (same set as the SDK's own retry rule)
_RETRYABLE_STATUS = frozenset({408, 409, 429})
#: error-only output lines: code -> (result status, retryable)
_LINE_ERRORS: dict[str, tuple[ResultStatus, bool]] = {
    "batch_expired": ("expired", True),
    "batch_cancelled": ("canceled", True),
    "request_timeout": ("errored", True),
}
#: roles a chat request may use (developer/tool/function are valid on the wire, not in BatchItem)
CHAT_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
MAX_STOP_SEQUENCES = 4
INT64_MAX = 2**63 - 1


class WireError(ValueError):
    """A line or request body that breaks the wire format, as OpenAI would report it."""

    def __init__(self, code: str, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.param = param


# -- client side: encode ------------------------------------------------------------------------
def is_embeddings_url(url: str) -> bool:
    """Whether a line or batch ``url`` is the embeddings endpoint (OpenAI's or Azure's)."""
    return url.rstrip("/").endswith("/embeddings")


def encode_body(item: BatchItem, model: str) -> dict[str, Any]:
    """The request body for ``item`` (``item.model`` overrides ``model``): chat completions, or
    embeddings for ``kind="embedding"``."""
    if item.kind == "embedding":
        emb: dict[str, Any] = {"model": item.model or model, "input": item.input}
        if item.dimensions is not None:
            emb["dimensions"] = item.dimensions
        emb.update(item.extra)
        return emb
    body: dict[str, Any] = {
        "model": item.model or model,
        "messages": [{"role": m.role, "content": m.content} for m in item.messages],
    }
    for name, value in item.params().items():
        body[_PARAM_TO_BODY[name]] = value
    # extra is the escape hatch for provider-specific fields: passed through verbatim, and last,
    # so that what the user spelled out explicitly wins
    body.update(item.extra)
    return body


def encode_line(
    item: BatchItem, model: str, *, url: str = CHAT_URL, custom_id: str | None = None
) -> bytes:
    """One input line (no newline) for ``item``; ``custom_id`` overrides ``item.custom_id``.

    ``url`` is the line's endpoint; the caller picks the embeddings one for embedding items.
    """
    cid = custom_id if custom_id is not None else item.custom_id
    if not cid:
        raise ValueError("an item needs a custom_id before it is encoded")
    return dumps({"custom_id": cid, "method": "POST", "url": url, "body": encode_body(item, model)})


# -- client side: decode ------------------------------------------------------------------------
def usage_from_body(usage: Mapping[str, Any] | None) -> Usage:
    """Map a chat.completion ``usage`` onto disjoint neutral buckets.

    OpenAI's ``prompt_tokens`` already includes the cached tokens, so they are subtracted once here;
    ``reasoning_tokens`` is part of ``completion_tokens`` and is only reported alongside.
    """
    if not usage:
        return Usage()
    prompt = int(usage.get("prompt_tokens") or 0)
    cached = int((usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0)
    reasoning = int((usage.get("completion_tokens_details") or {}).get("reasoning_tokens") or 0)
    return Usage(
        input_tokens=max(prompt - cached, 0),
        cached_input_tokens=cached,
        output_tokens=int(usage.get("completion_tokens") or 0),
        reasoning_tokens=reasoning,
    )


def _retryable(status: int) -> bool:
    return status in _RETRYABLE_STATUS or status >= 500


def decode_vector(value: Any) -> list[float]:
    """An embedding as floats: a JSON array, or base64 little-endian float32 (``encoding_format``
    ``"base64"``, which halves the output file)."""
    if isinstance(value, str):
        raw = base64.b64decode(value)
        return list(struct.unpack(f"<{len(raw) // 4}f", raw[: len(raw) // 4 * 4]))
    if isinstance(value, list):
        return [float(v) for v in value]
    raise WireError("invalid_output_line", "embedding is neither a list nor base64")


def _embedding_result(body: dict[str, Any], common: dict[str, Any]) -> BatchResult:
    """A successful embeddings response: the vector moves to ``embedding`` (not kept twice)."""
    data = body.get("data") or []
    first = data[0] if data and isinstance(data[0], Mapping) else {}
    vector = decode_vector(first.get("embedding"))
    kept = {**body, "data": [{k: v for k, v in d.items() if k != "embedding"} for d in data]}
    usage = body.get("usage") or {}
    return BatchResult(
        status="succeeded",
        embedding=vector,
        # embeddings bill input only; prompt_tokens is all of it (no cache on this endpoint)
        usage=Usage(input_tokens=int(usage.get("prompt_tokens") or 0)),
        model=body.get("model"),
        response=kept,
        **common,
    )


def decode_result(
    line: bytes | str | Mapping[str, Any],
    *,
    provider: str | None = None,
    batch_id: str | None = None,
) -> BatchResult:
    """Decode one output-file or error-file line into a BatchResult.

    Raises :class:`WireError` for a line that is not an output line at all (no custom_id).
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
    cid: str = obj["custom_id"]
    common: dict[str, Any] = {"custom_id": cid, "provider": provider, "batch_id": batch_id}
    response = obj.get("response")
    if isinstance(response, Mapping):
        status = int(response.get("status_code") or 0)
        body = response.get("body")
        body = dict(body) if isinstance(body, Mapping) else {}
        if 200 <= status < 300 and body.get("object") == "list" and "choices" not in body:
            return _embedding_result(body, common)
        if 200 <= status < 300:
            choices = body.get("choices") or [{}]
            choice = choices[0] if isinstance(choices[0], Mapping) else {}
            message = choice.get("message")
            if not isinstance(message, Mapping):
                message = {}
            return BatchResult(
                status="succeeded",
                text=message.get("content"),
                finish_reason=choice.get("finish_reason"),
                usage=usage_from_body(body.get("usage")),
                model=body.get("model"),
                response=body,
                **common,
            )
        err = body.get("error") if isinstance(body.get("error"), Mapping) else {}
        assert isinstance(err, Mapping)
        return BatchResult(
            status="errored",
            error=ItemError(
                code=str(err.get("code") or err.get("type") or f"http_{status}"),
                message=str(err.get("message") or f"HTTP {status}"),
                status_code=status or None,
                retryable=_retryable(status),
            ),
            response=body,
            **common,
        )
    error = obj.get("error")
    if isinstance(error, Mapping):
        code = str(error.get("code") or "unknown_error")
        result_status, retryable = _LINE_ERRORS.get(code, ("errored", False))
        return BatchResult(
            status=result_status,
            error=ItemError(
                code=code, message=str(error.get("message") or code), retryable=retryable
            ),
            **common,
        )
    return BatchResult(
        status="errored",
        error=ItemError(
            code="invalid_output_line", message="output line has neither response nor error"
        ),
        **common,
    )


# -- sandbox side: decode input -----------------------------------------------------------------
@dataclass
class InputLine:
    """One parsed input line."""

    custom_id: str
    method: str
    url: str
    body: dict[str, Any]


def decode_input_line(line: bytes | str) -> InputLine:
    """Parse an input line's envelope (not its body). Raises WireError."""
    try:
        # decode strictly first: json.loads(bytes) would quietly accept a UTF-8 BOM
        obj = json.loads(line.decode("utf-8") if isinstance(line, bytes) else line)
    except ValueError as exc:  # UnicodeDecodeError is a ValueError too
        raise WireError("invalid_json_line", f"line is not valid JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise WireError("invalid_json_line", "line is not a JSON object")
    cid = obj.get("custom_id")
    if not isinstance(cid, str) or not cid:
        raise WireError(
            "invalid_request", "custom_id must be a non-empty string", param="custom_id"
        )
    method, url, body = obj.get("method"), obj.get("url"), obj.get("body")
    if not isinstance(method, str):
        raise WireError("invalid_request", "method must be a string", param="method")
    if not isinstance(url, str):
        raise WireError("invalid_request", "url must be a string", param="url")
    if not isinstance(body, dict):
        raise WireError("invalid_request", "body must be a JSON object", param="body")
    return InputLine(custom_id=cid, method=method, url=url, body=body)


@dataclass
class ChatRequest:
    """A validated chat-completions body, in neutral terms."""

    model: str
    messages: list[dict[str, Any]]
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    stop: list[str] | None = None
    response_format: dict[str, Any] | None = None
    n: int = 1
    #: body fields not listed above, untouched
    extra: dict[str, Any] = field(default_factory=dict)

    def transcript(self) -> list[tuple[str, str]]:
        """(role, text) pairs; text parts of list contents are joined, other parts ignored."""
        return [(m["role"], message_text(m.get("content"))) for m in self.messages]

    def json_schema(self) -> dict[str, Any] | None:
        """The requested JSON schema, if response_format asks for one."""
        rf = self.response_format or {}
        if rf.get("type") == "json_schema":
            schema = (rf.get("json_schema") or {}).get("schema")
            return schema if isinstance(schema, dict) else {"type": "object"}
        return None


def message_text(content: Any) -> str:
    """The text of a message content: a string, or the text parts of a list joined by newlines."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            str(p.get("text", ""))
            for p in content
            if isinstance(p, dict) and p.get("type") == "text"
        )
    return ""


def _number(body: Mapping[str, Any], name: str, lo: float, hi: float) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
        raise WireError(
            "invalid_value",
            f"Invalid '{name}': expected a number between {lo:g} and {hi:g}, got {value!r}.",
            param=name,
        )
    return float(value)


def _check_message(i: int, m: Any) -> None:
    where = f"messages[{i}]"
    if not isinstance(m, dict):
        raise WireError("invalid_type", f"Invalid '{where}': expected an object.", param=where)
    role = m.get("role")
    if role not in CHAT_ROLES:
        raise WireError(
            "invalid_value",
            f"Invalid value: {role!r}. Supported values are: {', '.join(sorted(CHAT_ROLES))}.",
            param=f"{where}.role",
        )
    content = m.get("content")
    if content is None and role == "assistant":
        return  # assistant turns may carry tool calls instead of content
    if isinstance(content, str):
        return
    if isinstance(content, list) and content:
        for j, part in enumerate(content):
            if not isinstance(part, dict) or not isinstance(part.get("type"), str):
                raise WireError(
                    "invalid_type",
                    f"Invalid '{where}.content[{j}]': expected a content part with a 'type'.",
                    param=f"{where}.content[{j}]",
                )
        return
    raise WireError(
        "invalid_type",
        f"Invalid '{where}.content': expected a string or a non-empty array of content parts.",
        param=f"{where}.content",
    )


def parse_chat_body(body: Mapping[str, Any]) -> ChatRequest:
    """Validate a chat-completions body the way the API would. Raises WireError (an HTTP 400)."""
    rest = dict(body)
    model = rest.pop("model", None)
    if not isinstance(model, str) or not model:
        raise WireError(
            "missing_required_parameter", "Missing required parameter: 'model'.", param="model"
        )
    messages = rest.pop("messages", None)
    if not isinstance(messages, list) or not messages:
        raise WireError(
            "missing_required_parameter" if messages is None else "empty_array",
            "Invalid 'messages': expected a non-empty array of messages.",
            param="messages",
        )
    for i, m in enumerate(messages):
        _check_message(i, m)
    if rest.pop("stream", None):
        raise WireError("invalid_value", "Streaming is not supported in batches.", param="stream")

    max_tokens = None
    if "max_tokens" in rest and "max_completion_tokens" in rest:
        raise WireError(
            "invalid_request",
            "Set only one of 'max_tokens' and 'max_completion_tokens'.",
            param="max_completion_tokens",
        )
    for name in ("max_completion_tokens", "max_tokens"):
        value = rest.pop(name, None)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise WireError(
                "invalid_value",
                f"Invalid '{name}': expected an integer >= 1, got {value!r}.",
                param=name,
            )
        max_tokens = value

    temperature = _number(rest, "temperature", 0, 2)
    top_p = _number(rest, "top_p", 0, 1)
    rest.pop("temperature", None)
    rest.pop("top_p", None)

    seed = rest.pop("seed", None)
    if seed is not None and (
        isinstance(seed, bool) or not isinstance(seed, int) or abs(seed) > INT64_MAX
    ):
        raise WireError("invalid_type", "Invalid 'seed': expected a 64-bit integer.", param="seed")

    stop_raw = rest.pop("stop", None)
    stop: list[str] | None = None
    if stop_raw is not None:
        stop = [stop_raw] if isinstance(stop_raw, str) else stop_raw
        if (
            not isinstance(stop, list)
            or len(stop) > MAX_STOP_SEQUENCES
            or not all(isinstance(s, str) for s in stop)
        ):
            raise WireError(
                "invalid_value",
                f"Invalid 'stop': expected a string or up to {MAX_STOP_SEQUENCES} strings.",
                param="stop",
            )

    response_format = rest.pop("response_format", None)
    if response_format is not None:
        check_response_format(response_format)

    n = rest.pop("n", None)
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 128):
        raise WireError(
            "invalid_value", "Invalid 'n': expected an integer from 1 to 128.", param="n"
        )

    return ChatRequest(
        model=model,
        messages=messages,
        max_tokens=max_tokens,
        temperature=temperature,
        top_p=top_p,
        seed=seed,
        stop=stop,
        response_format=response_format,
        n=n or 1,
        extra=rest,
    )


@dataclass
class EmbeddingRequest:
    """A validated embeddings body, in neutral terms."""

    model: str
    inputs: list[str]
    dimensions: int | None = None
    encoding_format: str = "float"


def parse_embeddings_body(body: Mapping[str, Any]) -> EmbeddingRequest:
    """Validate an embeddings body the way the API would. Raises WireError (an HTTP 400)."""
    rest = dict(body)
    model = rest.pop("model", None)
    if not isinstance(model, str) or not model:
        raise WireError(
            "missing_required_parameter", "Missing required parameter: 'model'.", param="model"
        )
    raw = rest.pop("input", None)
    inputs = [raw] if isinstance(raw, str) else raw
    if (
        not isinstance(inputs, list)
        or not inputs
        or len(inputs) > MAX_INPUTS_PER_REQUEST
        or not all(isinstance(t, str) and t for t in inputs)
    ):
        raise WireError(
            "invalid_value",
            "Invalid 'input': expected a non-empty string or an array of up to "
            f"{MAX_INPUTS_PER_REQUEST} non-empty strings.",
            param="input",
        )
    dimensions = rest.pop("dimensions", None)
    if dimensions is not None and (
        isinstance(dimensions, bool) or not isinstance(dimensions, int) or dimensions < 1
    ):
        raise WireError(
            "invalid_value", "Invalid 'dimensions': expected an integer >= 1.", param="dimensions"
        )
    encoding = rest.pop("encoding_format", "float")
    if encoding not in ("float", "base64"):
        raise WireError(
            "invalid_value",
            "Invalid 'encoding_format': expected 'float' or 'base64'.",
            param="encoding_format",
        )
    rest.pop("user", None)
    if rest:
        name = sorted(rest)[0]
        raise WireError(
            "unknown_parameter", f"Unrecognized request argument supplied: {name}", param=name
        )
    return EmbeddingRequest(model, inputs, dimensions, encoding)


def encode_vector(vector: list[float], encoding_format: str) -> list[float] | str:
    """A vector as the API writes it for ``encoding_format``."""
    if encoding_format == "base64":
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
    return vector


def embeddings_response(
    *, model: str, vectors: list[list[float] | str], prompt_tokens: int
) -> dict[str, Any]:
    """A ``list`` of ``embedding`` objects, as the embeddings endpoint answers."""
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)
        ],
        "model": model,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }


def check_response_format(rf: Any) -> None:
    """Raise WireError unless ``rf`` is a response_format the API accepts."""
    if not isinstance(rf, dict) or rf.get("type") not in ("text", "json_object", "json_schema"):
        raise WireError(
            "invalid_value",
            "Invalid 'response_format.type': expected 'text', 'json_object' or 'json_schema'.",
            param="response_format.type",
        )
    if rf["type"] == "json_schema":
        js = rf.get("json_schema")
        if not isinstance(js, dict) or not isinstance(js.get("name"), str) or not js["name"]:
            raise WireError(
                "missing_required_parameter",
                "Missing required parameter: 'response_format.json_schema.name'.",
                param="response_format.json_schema.name",
            )
        if "schema" in js and not isinstance(js["schema"], dict):
            raise WireError(
                "invalid_type",
                "Invalid 'response_format.json_schema.schema': expected an object.",
                param="response_format.json_schema.schema",
            )


# -- sandbox side: encode output ----------------------------------------------------------------
def short_hash(*parts: Any, length: int = 24) -> str:
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
    cached_tokens: int = 0,
    reasoning_tokens: int = 0,
) -> dict[str, Any]:
    """A ``chat.completion`` object, one choice per text."""
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": i,
                "message": {
                    "role": "assistant",
                    "content": text,
                    "refusal": None,
                    "annotations": [],
                },
                "finish_reason": finish_reason,
                "logprobs": None,
            }
            for i, text in enumerate(texts)
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": cached_tokens, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": reasoning_tokens,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        },
        "service_tier": "default",
        "system_fingerprint": None,
    }


def error_body(
    message: str, *, type: str, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    """The API's error envelope."""
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def response_line(
    line_id: str, custom_id: str, *, status_code: int, request_id: str, body: Mapping[str, Any]
) -> dict[str, Any]:
    """An output/error line carrying an HTTP response."""
    return {
        "id": line_id,
        "custom_id": custom_id,
        "response": {"status_code": status_code, "request_id": request_id, "body": dict(body)},
        "error": None,
    }


def error_line(line_id: str, custom_id: str, *, code: str, message: str) -> dict[str, Any]:
    """An error-file line for a request that never got an HTTP response (expired, cancelled)."""
    return {
        "id": line_id,
        "custom_id": custom_id,
        "response": None,
        "error": {"code": code, "message": message},
    }
