"""The OpenAI chat-completions batch wire format, in one place.

Both sides use this module: the adapter encodes :class:`~polybatch.items.BatchItem`s into input lines
and decodes output/error lines into :class:`~polybatch.items.BatchResult`s; the sandbox decodes input
lines, validates request bodies and writes output/error lines. Keeping both directions here means the
emulator cannot drift from what the client sends and expects. What this format shares with the
other OpenAI-shaped ones is :mod:`polybatch.formats`; this module holds what is OpenAI's own.

The request ``url`` is a parameter everywhere because Azure reuses this format with
``/chat/completions`` and ``/embeddings`` (and a deployment name as ``body.model``).

Embedding items (``kind="embedding"``) go to the embeddings endpoint, one input per request: a
batch holds one endpoint, so the planner keeps chat and embedding items in separate batches.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from polybatch import formats, vectors
from polybatch.errors import ItemValidationError
from polybatch.formats import CHAT_URL as CHAT_URL
from polybatch.formats import INT64_MAX as INT64_MAX
from polybatch.formats import SCHEMA_NAME_RE, is_int, is_number
from polybatch.formats import ChatRequest as ChatRequest
from polybatch.formats import response_line as response_line
from polybatch.items import BatchItem, BatchResult, ResultStatus
from polybatch.kinds import OPENAI_BODY_FIELDS
from polybatch.providers import BatchState
from polybatch.vectors import EmbeddingRequest as EmbeddingRequest
from polybatch.vectors import decode_vector as decode_vector
from polybatch.vectors import embeddings_response as embeddings_response
from polybatch.vectors import encode_vector as encode_vector
from polybatch.wire import WireError as WireError
from polybatch.wire import as_mapping, load_object
from polybatch.wire import message_text as message_text
from polybatch.wire import short_hash as short_hash

from . import endpoints

#: the batch endpoint and per-line url of OpenAI embeddings batches
EMBEDDINGS_URL = "/v1/embeddings"
#: OpenAI's cap on embedding inputs in one batch (all requests together); polybatch sends one
#: input per request, so it is a cap on the requests of an embeddings batch
MAX_EMBEDDING_INPUTS = 50_000
#: OpenAI's cap on inputs in one embeddings request
MAX_INPUTS_PER_REQUEST = 2048

#: OpenAI batch statuses -> neutral states (the neutral words are OpenAI's own)
STATES: dict[str, BatchState] = {
    "validating": "validating",
    "in_progress": "in_progress",
    "finalizing": "finalizing",
    "cancelling": "cancelling",
    "completed": "completed",
    "failed": "failed",
    "expired": "expired",
    "cancelled": "cancelled",
}
#: the statuses of a batch that has ended (its output and error files are final)
TERMINAL_STATUSES = frozenset({"completed", "failed", "expired", "cancelled"})

#: neutral parameter name -> body field; max_tokens goes out as the newer field name
PARAM_TO_BODY: dict[str, str] = {**formats.PARAMS, "max_tokens": "max_completion_tokens"}
#: error-only output lines: code -> (result status, retryable)
_LINE_ERRORS: dict[str, tuple[ResultStatus, bool]] = {
    **formats.LINE_ERRORS,
    "request_timeout": ("errored", True),
}
#: roles a chat request may use (developer/tool/function are valid on the wire, not in BatchItem)
CHAT_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
#: content-part types a turn may hold, by role; only user turns take images, audio and files
PART_TYPES: dict[str, frozenset[str]] = {
    "system": frozenset({"text"}),
    "developer": frozenset({"text"}),
    "assistant": frozenset({"text", "refusal"}),
}
MAX_STOP_SEQUENCES = 4
#: body fields BatchItem spells itself; setting them through ``extra`` would be ambiguous
STRUCTURAL_EXTRA = frozenset({"model", "messages", "stream"})
#: the same for the other kinds: the body fields their item fields become
STRUCTURAL_KIND_EXTRA: dict[str, frozenset[str]] = {
    "embedding": frozenset({"model", "input", "dimensions"}),
    **{
        kind: frozenset({"model", "stream", *OPENAI_BODY_FIELDS[kind]})
        for kind in endpoints.KIND_URLS
    },
}


def batch_state(status: str) -> BatchState:
    """A batch ``status`` in neutral terms: a status newer than this table reads as in progress."""
    return STATES.get(status, "in_progress")


# -- client side: encode ------------------------------------------------------------------------
def is_embeddings_url(url: str) -> bool:
    """Whether a line or batch ``url`` is the embeddings endpoint (OpenAI's or Azure's)."""
    return url.rstrip("/").endswith("/embeddings")


def encode_body(item: BatchItem, model: str) -> dict[str, Any]:
    """The request body for ``item`` (``item.model`` overrides ``model``): chat completions,
    embeddings for ``kind="embedding"``, the other kinds by :mod:`.endpoints`."""
    if item.kind in endpoints.KIND_URLS:
        return endpoints.encode_body(item, item.model or model)
    if item.kind == "embedding":
        emb: dict[str, Any] = {"model": item.model or model, "input": item.input}
        if item.dimensions is not None:
            emb["dimensions"] = item.dimensions
        emb.update(item.extra)
        return emb
    return formats.chat_body(item, item.model or model, PARAM_TO_BODY)


def encode_line(
    item: BatchItem, model: str, *, url: str = CHAT_URL, custom_id: str | None = None
) -> bytes:
    """One input line (no newline) for ``item``; ``custom_id`` overrides ``item.custom_id``.

    ``url`` is the line's endpoint; the caller picks the embeddings one for embedding items.
    """
    return formats.encode_line(item, encode_body(item, model), custom_id=custom_id, url=url)


def check_item(item: BatchItem, model: str) -> None:
    """Reject what the API would refuse for every model (ItemValidationError naming the field).

    The adapter's ``validate_item``. Two kinds of rule: what only the item shows (a body field
    set both on the item and through ``extra``), then :func:`check_body` on the encoded body,
    the very rules the sandbox answers requests with.
    """

    def bad(message: str, field: str) -> ItemValidationError:
        return ItemValidationError(message, field=field)

    embedding = item.kind == "embedding"
    structural = STRUCTURAL_KIND_EXTRA.get(item.kind, STRUCTURAL_EXTRA)
    clash = structural & item.extra.keys()
    if clash:
        name = sorted(clash)[0]
        raise bad(
            f"'{name}' cannot be set through extra; use the item's own field", f"extra.{name}"
        )
    if (
        item.kind == "chat"
        and item.max_tokens is not None
        and {"max_tokens", "max_completion_tokens"} & item.extra.keys()
    ):
        raise bad("max_tokens is set both on the item and in extra", "extra")
    try:
        url = EMBEDDINGS_URL if embedding else endpoints.KIND_URLS.get(item.kind, CHAT_URL)
        check_body(encode_body(item, model), url=url)
    except WireError as exc:
        raise formats.item_error(exc, item, PARAM_TO_BODY) from None


def check_body(
    body: Mapping[str, Any], *, url: str = CHAT_URL
) -> ChatRequest | EmbeddingRequest | endpoints.EndpointRequest:
    """Validate a request body for the endpoint ``url`` the way the API would, in neutral terms.

    Raises WireError (an HTTP 400 naming the field). One set of rules for both sides: the
    adapter runs it on what it is about to send (:func:`check_item`), the sandbox on what it
    receives.
    """
    other = endpoints.parse_body(url, body)
    if other is not None:
        return other
    return parse_embeddings_body(body) if is_embeddings_url(url) else parse_chat_body(body)


# -- client side: decode ------------------------------------------------------------------------
#: a chat.completion ``usage`` in neutral buckets (see :func:`polybatch.formats.usage`)
usage_from_body = formats.usage


#: the error code of a batch refused for the organisation's enqueued-token limit (OpenAI: in the
#: batch's ``errors.data`` once it failed validation; Azure's fail-fast regions: at create)
TOKEN_LIMIT_EXCEEDED = "token_limit_exceeded"


def _error_entries(data: Any) -> list[Any]:
    """``errors.data`` as a list: OpenAI sends a list, Azure's 2024-10-21 spec one object."""
    if data is None:
        return []
    if isinstance(data, Mapping) or not isinstance(data, list | tuple):
        return [data]
    return list(data)


def _read(entry: Any, name: str) -> Any:
    return entry.get(name) if isinstance(entry, Mapping) else getattr(entry, name, None)


def batch_error_codes(data: Any) -> set[str]:
    """The error codes in a batch's ``errors.data`` (see :func:`batch_errors_message`)."""
    return {str(code) for e in _error_entries(data) if (code := _read(e, "code"))}


def batch_errors_message(data: Any) -> str | None:
    """One line saying why a batch failed, from its ``errors.data`` (None: no error in it).

    OpenAI sends a list of error objects with an integer ``line``; Azure's 2024-10-21 spec types
    ``data`` as a single object and ``line`` as a string. Entries may be the SDK's models (a list
    it parsed) or plain mappings (a shape it did not expect, kept as is by its loose parsing).
    """
    said = []
    for entry in _error_entries(data):
        line, code, message = _read(entry, "line"), _read(entry, "code"), _read(entry, "message")
        parts = (
            f"line {line}:" if line is not None and str(line) != "" else "",
            f"{code}:" if code else "",
            str(message) if message else "",
        )
        text = " ".join(p for p in parts if p)
        if text:
            said.append(text)
    return "; ".join(said) or None


#: an embeddings response body -> BatchResult (the vector moves to ``embedding``, not kept twice)
_embedding_result = vectors.list_result


def decode_result(
    line: bytes | str | Mapping[str, Any],
    *,
    provider: str | None = None,
    batch_id: str | None = None,
) -> BatchResult:
    """Decode one output-file or error-file line into a BatchResult.

    Raises :class:`WireError` for a line that is not an output line at all (no custom_id).
    """
    return formats.decode_line(
        line, provider=provider, batch_id=batch_id, line_errors=_LINE_ERRORS, success=_success
    )


def _success(body: dict[str, Any], common: dict[str, Any]) -> BatchResult:
    other = endpoints.decode_success(body, common)
    if other is not None:
        return other
    if body.get("object") == "list" and "choices" not in body:
        return _embedding_result(body, common)
    return formats.chat_result(body, common)


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
    obj = load_object(line)
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


def _number(body: Mapping[str, Any], name: str, lo: float, hi: float) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if not is_number(value) or not lo <= value <= hi:
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
        allowed = PART_TYPES.get(role)
        for j, part in enumerate(content):
            kind = part.get("type") if isinstance(part, dict) else None
            if not isinstance(kind, str):
                raise WireError(
                    "invalid_type",
                    f"Invalid '{where}.content[{j}]': expected a content part with a 'type'.",
                    param=f"{where}.content[{j}]",
                )
            if allowed is not None and kind not in allowed:
                raise WireError(
                    "invalid_value",
                    f"Invalid '{where}.content[{j}]': {role} messages cannot hold '{kind}' parts.",
                    param=f"{where}.content[{j}]",
                )
        return
    raise WireError(
        "invalid_type",
        f"Invalid '{where}.content': expected a string or a non-empty array of content parts.",
        param=f"{where}.content",
    )


def _model(rest: dict[str, Any]) -> str:
    model = rest.pop("model", None)
    if not isinstance(model, str) or not model:
        raise WireError(
            "missing_required_parameter", "Missing required parameter: 'model'.", param="model"
        )
    return model


def parse_chat_body(body: Mapping[str, Any]) -> ChatRequest:
    """Validate a chat-completions body the way the API would. Raises WireError (an HTTP 400)."""
    rest = dict(body)
    model = _model(rest)
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
        if not is_int(value) or value < 1:
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
    if seed is not None and (not is_int(seed) or abs(seed) > INT64_MAX):
        raise WireError("invalid_type", "Invalid 'seed': expected a 64-bit integer.", param="seed")

    stop_raw = rest.pop("stop", None)
    stop: list[str] | None = None
    if stop_raw is not None:
        stop = formats.stop_list(stop_raw, most=MAX_STOP_SEQUENCES)
        if stop is None:
            raise WireError(
                "invalid_value",
                f"Invalid 'stop': expected a string or up to {MAX_STOP_SEQUENCES} strings.",
                param="stop",
            )

    response_format = rest.pop("response_format", None)
    if response_format is not None:
        check_response_format(response_format)

    n = rest.pop("n", None)
    if n is not None and (not is_int(n) or not 1 <= n <= 128):
        raise WireError(
            "invalid_value", "Invalid 'n': expected an integer from 1 to 128.", param="n"
        )

    return ChatRequest(
        model, messages, max_tokens, temperature, top_p, seed, stop, response_format, n or 1, rest
    )


def parse_embeddings_body(body: Mapping[str, Any]) -> EmbeddingRequest:
    """Validate an embeddings body the way the API would. Raises WireError (an HTTP 400)."""
    rest = dict(body)
    model = _model(rest)
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
    if dimensions is not None and (not is_int(dimensions) or dimensions < 1):
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


def check_response_format(rf: Any) -> None:
    """Raise WireError unless ``rf`` is a response_format the API accepts."""
    if not isinstance(rf, dict) or rf.get("type") not in ("text", "json_object", "json_schema"):
        raise WireError(
            "invalid_value",
            "Invalid 'response_format.type': expected 'text', 'json_object' or 'json_schema'.",
            param="response_format.type",
        )
    if rf["type"] == "json_schema":
        js = as_mapping(rf.get("json_schema"))
        name = js.get("name")
        if not isinstance(name, str) or not SCHEMA_NAME_RE.match(name):
            raise WireError(
                "missing_required_parameter" if name is None else "invalid_value",
                "Invalid 'response_format.json_schema.name': json_schema needs a 'name' of "
                "letters, digits, '_' or '-' (at most 64).",
                param="response_format.json_schema.name",
            )
        if "schema" in js and not isinstance(js["schema"], dict):
            raise WireError(
                "invalid_type",
                "Invalid 'response_format.json_schema.schema': expected an object.",
                param="response_format.json_schema.schema",
            )


# -- sandbox side: encode output ----------------------------------------------------------------
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
    cache_write_tokens: int | None = None,
) -> dict[str, Any]:
    """A ``chat.completion`` object, one choice per text (``cache_write_tokens`` is reported
    only when given: the models that bill cache writes)."""
    prompt_details: dict[str, int] = {"cached_tokens": cached_tokens, "audio_tokens": 0}
    if cache_write_tokens is not None:
        prompt_details["cache_write_tokens"] = cache_write_tokens
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
            "prompt_tokens_details": prompt_details,
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


def error_line(line_id: str, custom_id: str, *, code: str, message: str) -> dict[str, Any]:
    """An error-file line for a request that never got an HTTP response (expired, cancelled)."""
    return {
        "id": line_id,
        "custom_id": custom_id,
        "response": None,
        "error": {"code": code, "message": message},
    }
