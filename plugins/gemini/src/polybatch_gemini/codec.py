"""The Gemini batch-mode wire format, in one place: used by the client and the sandbox.

Encoding (neutral :class:`~polybatch.items.BatchItem` -> one ``{"key", "request"}`` JSONL line, the
input-file format of the Gemini batch API; inline jobs send the same request, converted to the SDK's
``InlinedRequest`` with the key in ``metadata``):

- ``system`` messages, wherever they appear, become ``systemInstruction`` (one text part each);
  ``user`` turns keep their role and ``assistant`` turns become ``model``. Consecutive turns of the
  same role are merged (their parts concatenated), because OpenAI-style inputs often hold several
  user turns in a row and Gemini's multi-turn format expects alternating roles.
- ``max_tokens`` -> ``generationConfig.maxOutputTokens``; ``temperature`` (Gemini's range is 0-2,
  as polybatch's), ``top_p`` -> ``topP``, ``seed``, ``stop`` -> ``stopSequences`` (at most
  :data:`MAX_STOP_SEQUENCES`, as the API documents).
- ``response_format``: ``json_object`` -> ``responseMimeType: application/json``; ``json_schema``
  -> the same plus ``responseJsonSchema`` (the JSON-Schema field, which takes the schema as is,
  unlike ``responseSchema``'s OpenAPI subset).
- Content parts: ``text`` -> ``{"text"}``; ``image_url`` with a base64 ``data:`` URL ->
  ``inlineData``. Remote image URLs are rejected: Gemini takes remote media only as ``fileData``
  URIs of its own Files API, which polybatch does not upload for you.
- ``item.extra`` is merged into the request last (``generationConfig`` key by key), so
  provider-specific fields win; only fields the SDK knows are accepted (see :func:`to_inlined`).
- Keys: Gemini batch keys are free-form strings (the docs put no pattern on them), so custom ids
  are sent unchanged.

Decoding turns a response (a responses-file line, or an SDK inline response dumped to camelCase JSON)
into a :class:`BatchResult`. Usage: Gemini's ``promptTokenCount`` *includes*
``cachedContentTokenCount``, so ``input = prompt - cached (+ toolUsePromptTokenCount, billed as
input)`` and ``cached_input = cached``. ``thoughtsTokenCount`` is **billed as output** (Google's
price table: "output price (including thinking tokens)") but is *not* in ``candidatesTokenCount``,
so ``output = candidates + thoughts`` and ``reasoning = thoughts``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from polybatch.errors import ItemValidationError
from polybatch.items import BatchItem, BatchResult, ItemError, Message, Usage
from polybatch.providers import BatchState
from polybatch.wire import content_parts, image_url
from polybatch.wire import invalid_item as _invalid

from . import embeddings

PROVIDER = "gemini"
#: the API rejects more stop sequences than this
MAX_STOP_SEQUENCES = 5
_DATA_URL_RE = re.compile(r"^data:([\w.+-]+/[\w.+-]+);base64,(.+)$", re.DOTALL)
#: GenerateContentRequest fields (besides ``contents``) that may be set through ``item.extra``,
#: mapped to the SDK's GenerateContentConfig names (inline jobs go through the SDK's types)
REQUEST_FIELDS: dict[str, str] = {
    "systemInstruction": "system_instruction",
    "safetySettings": "safety_settings",
    "tools": "tools",
    "toolConfig": "tool_config",
    "cachedContent": "cached_content",
    "labels": "labels",
    "serviceTier": "service_tier",
    "store": "store",
}
#: google.rpc.Code numbers -> names (inline errors carry only the number)
RPC_CODES: dict[int, str] = {
    1: "CANCELLED",
    2: "UNKNOWN",
    3: "INVALID_ARGUMENT",
    4: "DEADLINE_EXCEEDED",
    5: "NOT_FOUND",
    6: "ALREADY_EXISTS",
    7: "PERMISSION_DENIED",
    8: "RESOURCE_EXHAUSTED",
    9: "FAILED_PRECONDITION",
    10: "ABORTED",
    11: "OUT_OF_RANGE",
    12: "UNIMPLEMENTED",
    13: "INTERNAL",
    14: "UNAVAILABLE",
    15: "DATA_LOSS",
    16: "UNAUTHENTICATED",
}
RPC_NUMBERS: dict[str, int] = {name: number for number, name in RPC_CODES.items()}
#: the HTTP status Google maps each canonical code to
HTTP_STATUS: dict[str, int] = {
    "CANCELLED": 499,
    "UNKNOWN": 500,
    "INVALID_ARGUMENT": 400,
    "DEADLINE_EXCEEDED": 504,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "PERMISSION_DENIED": 403,
    "RESOURCE_EXHAUSTED": 429,
    "FAILED_PRECONDITION": 400,
    "ABORTED": 409,
    "OUT_OF_RANGE": 400,
    "UNIMPLEMENTED": 501,
    "INTERNAL": 500,
    "UNAVAILABLE": 503,
    "DATA_LOSS": 500,
    "UNAUTHENTICATED": 401,
}
_STATUS_FOR_HTTP: dict[int, str] = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
#: per-request failures worth sending again (transient conditions on Google's side)
RETRYABLE_STATUSES = frozenset(
    {"UNAVAILABLE", "INTERNAL", "RESOURCE_EXHAUSTED", "DEADLINE_EXCEEDED"}
)
#: job states (the SDK turns the API's ``BATCH_STATE_*`` into ``JOB_STATE_*``) -> neutral states
STATES: dict[str, BatchState] = {
    "JOB_STATE_UNSPECIFIED": "validating",
    "JOB_STATE_QUEUED": "validating",
    "JOB_STATE_PENDING": "validating",
    "JOB_STATE_RUNNING": "in_progress",
    "JOB_STATE_UPDATING": "in_progress",
    "JOB_STATE_PAUSED": "in_progress",
    "JOB_STATE_CANCELLING": "cancelling",
    "JOB_STATE_SUCCEEDED": "completed",
    "JOB_STATE_PARTIALLY_SUCCEEDED": "completed",
    "JOB_STATE_FAILED": "failed",
    "JOB_STATE_CANCELLED": "cancelled",
    "JOB_STATE_EXPIRED": "expired",
}
#: neutral states -> the ``BATCH_STATE_*`` a batch operation reports (what the sandbox answers;
#: the API has no finalizing phase, and a job being cancelled still reads as running)
REPORTED_STATES: dict[BatchState, str] = {
    "validating": "BATCH_STATE_PENDING",
    "in_progress": "BATCH_STATE_RUNNING",
    "finalizing": "BATCH_STATE_RUNNING",
    "cancelling": "BATCH_STATE_RUNNING",
    "completed": "BATCH_STATE_SUCCEEDED",
    "failed": "BATCH_STATE_FAILED",
    "cancelled": "BATCH_STATE_CANCELLED",
    "expired": "BATCH_STATE_EXPIRED",
}


def batch_state(state: Any) -> BatchState:
    """A ``JOB_STATE_*`` / ``BATCH_STATE_*`` value (or the SDK's enum of it) in neutral terms; an
    unknown one reads as ``in_progress``, a missing one as ``validating``."""
    name = str(getattr(state, "value", state) or "JOB_STATE_UNSPECIFIED")
    return STATES.get(name.replace("BATCH_STATE_", "JOB_STATE_"), "in_progress")


#: Gemini finishReason -> polybatch's neutral (OpenAI-style) finish_reason
FINISH_REASONS: dict[str, str] = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "LANGUAGE": "content_filter",
    "MALFORMED_FUNCTION_CALL": "error",
    "UNEXPECTED_TOOL_CALL": "error",
}


# -- encoding ---------------------------------------------------------------------------------
def _parts(item: BatchItem, index: int, message: Message) -> list[dict[str, Any]]:
    """A message's content as Gemini parts."""
    if isinstance(message.content, str):
        return [{"text": message.content}]
    parts: list[dict[str, Any]] = []
    for field, kind, part in content_parts(item, index, message):
        if kind == "text":
            parts.append({"text": part["text"]})
        elif kind == "image_url":
            url = image_url(part)
            m = _DATA_URL_RE.match(url) if isinstance(url, str) else None
            if m is None:
                raise _invalid(
                    item,
                    f"{field}.image_url",
                    "Gemini batch requests take images as base64 data: URLs (inlineData); "
                    "remote URLs would need uploading to the Files API first",
                )
            parts.append({"inlineData": {"mimeType": m.group(1), "data": m.group(2)}})
        else:
            raise _invalid(
                item, f"{field}.type", f"content part type {kind!r} is not supported by Gemini"
            )
    return parts


def _contents(item: BatchItem) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(system parts, contents) of an item."""
    system: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
    for i, message in enumerate(item.messages):
        parts = _parts(item, i, message)
        if message.role == "system":
            if any("text" not in p for p in parts):
                raise _invalid(item, f"messages[{i}].content", "system messages may hold text only")
            system.extend(parts)
            continue
        role = "model" if message.role == "assistant" else "user"
        if contents and contents[-1]["role"] == role:
            # Gemini expects alternating turns: fold a repeated role into the previous turn
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": role, "parts": parts})
    return system, contents


def _generation_config(item: BatchItem) -> dict[str, Any]:
    config: dict[str, Any] = {}
    if item.max_tokens is not None:
        config["maxOutputTokens"] = item.max_tokens
    if item.temperature is not None:
        config["temperature"] = item.temperature
    if item.top_p is not None:
        config["topP"] = item.top_p
    if item.seed is not None:
        config["seed"] = item.seed
    if item.stop is not None:
        stops = [item.stop] if isinstance(item.stop, str) else list(item.stop)
        if len(stops) > MAX_STOP_SEQUENCES:
            raise _invalid(
                item, "stop", f"Gemini accepts at most {MAX_STOP_SEQUENCES} stop sequences"
            )
        if any(not s for s in stops):
            raise _invalid(item, "stop", "stop sequences must not be empty")
        config["stopSequences"] = stops
    fmt = item.response_format
    if fmt is not None and fmt.get("type") != "text":
        config["responseMimeType"] = "application/json"
        if fmt["type"] == "json_schema":
            spec = fmt.get("json_schema")
            schema = spec.get("schema") if isinstance(spec, Mapping) else None
            if not isinstance(schema, Mapping):
                raise _invalid(
                    item,
                    "response_format.json_schema.schema",
                    "json_schema needs a 'schema' object",
                )
            config["responseJsonSchema"] = dict(schema)
    return config


def build_request(item: BatchItem) -> dict[str, Any]:
    """The GenerateContentRequest (REST JSON) for an item; raises ItemValidationError."""
    system, contents = _contents(item)
    request: dict[str, Any] = {"contents": contents}
    if system:
        request["systemInstruction"] = {"parts": system}
    config = _generation_config(item)
    for key, value in item.extra.items():
        if key == "generationConfig":
            if not isinstance(value, Mapping):
                raise _invalid(item, "extra.generationConfig", "must be an object")
            config.update(value)
        elif key in REQUEST_FIELDS:
            request[key] = value
        else:
            raise _invalid(
                item,
                f"extra.{key}",
                f"{key!r} is not a GenerateContentRequest field a batch request can carry "
                f"(known: generationConfig, {', '.join(sorted(REQUEST_FIELDS))})",
            )
    if config:
        request["generationConfig"] = config
    return request


def encode_line(item: BatchItem) -> dict[str, Any]:
    """One input-file line: ``{"key": custom id, "request": GenerateContentRequest}``."""
    if item.custom_id is None:
        raise ItemValidationError("item has no custom_id (plan the job first)", field="custom_id")
    return {"key": item.custom_id, "request": build_request(item)}


def to_inlined(line: Mapping[str, Any]) -> Any:
    """An input line as the SDK's ``InlinedRequest`` (key in ``metadata``).

    The SDK keeps generation parameters and request-level fields in one ``GenerateContentConfig``
    and splits them again on the wire, so this is the inverse of that split. Raises pydantic's
    ValidationError for fields the SDK does not know.
    """
    from google.genai import types

    request: Mapping[str, Any] = line["request"]
    config: dict[str, Any] = dict(request.get("generationConfig") or {})
    for key in REQUEST_FIELDS:
        if key in request:
            config[key] = request[key]
    return types.InlinedRequest.model_validate(
        {
            "contents": request["contents"],
            "metadata": {"key": str(line["key"])},
            "config": config or None,
        }
    )


# -- display names (the only tag a Gemini batch carries) ---------------------------------------
DISPLAY_PREFIX = "polybatch"


def display_name(metadata: Mapping[str, str]) -> str:
    """``polybatch`` + the metadata as sorted ``k=v`` pairs: stable, and parsed back exactly."""
    pairs = " ".join(f"{k}={json.dumps(v)}" for k, v in sorted(metadata.items()))
    return f"{DISPLAY_PREFIX} {pairs}".strip()


_PAIR_RE = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*")')


def parse_display_name(name: str | None) -> dict[str, str] | None:
    """The metadata of a display name written by :func:`display_name`, or None."""
    if not name or not (name == DISPLAY_PREFIX or name.startswith(DISPLAY_PREFIX + " ")):
        return None
    out: dict[str, str] = {}
    for m in _PAIR_RE.finditer(name[len(DISPLAY_PREFIX) :]):
        value = json.loads(m.group(2))
        if isinstance(value, str):
            out[m.group(1)] = value
    return out


# -- decoding ---------------------------------------------------------------------------------
def decode_usage(usage: Mapping[str, Any] | None) -> Usage:
    """Gemini usageMetadata -> disjoint polybatch buckets (rules in the module docstring)."""
    if not usage:
        return Usage()
    prompt = int(usage.get("promptTokenCount") or 0)
    cached = int(usage.get("cachedContentTokenCount") or 0)
    tool_prompt = int(usage.get("toolUsePromptTokenCount") or 0)
    candidates = int(usage.get("candidatesTokenCount") or 0)
    thoughts = int(usage.get("thoughtsTokenCount") or 0)
    return Usage(
        input_tokens=max(prompt - cached, 0) + tool_prompt,
        cached_input_tokens=cached,
        output_tokens=candidates + thoughts,
        reasoning_tokens=thoughts,
    )


def response_text(response: Mapping[str, Any]) -> str:
    """The first candidate's text parts joined (thought summaries left out)."""
    candidates = response.get("candidates") or []
    if not candidates:
        return ""
    content = candidates[0].get("content") or {}
    return "".join(
        str(p.get("text", ""))
        for p in content.get("parts") or []
        if isinstance(p, Mapping) and "text" in p and not p.get("thought")
    )


def finish_reason(response: Mapping[str, Any]) -> str | None:
    """The neutral finish reason of the first candidate (or of a blocked prompt)."""
    candidates = response.get("candidates") or []
    if not candidates:
        feedback = response.get("promptFeedback") or {}
        return "content_filter" if feedback.get("blockReason") else None
    reason = candidates[0].get("finishReason")
    if reason is None:
        return None
    return FINISH_REASONS.get(str(reason), str(reason).lower())


def error_status(error: Mapping[str, Any]) -> str:
    """The canonical status name of a google.rpc.Status-like object."""
    status = error.get("status")
    if isinstance(status, str) and status:
        return status
    code = error.get("code")
    if isinstance(code, int) and not isinstance(code, bool):
        if code >= 100:  # an HTTP status, as some Google error bodies carry
            return _STATUS_FOR_HTTP.get(code, "INTERNAL" if code >= 500 else "INVALID_ARGUMENT")
        return RPC_CODES.get(code, "UNKNOWN")
    return "UNKNOWN"


def decode_error(error: Mapping[str, Any], *, expired: bool = False) -> tuple[str, ItemError]:
    """(result status, ItemError) for a per-request status object.

    ``expired``: the job expired, so a DEADLINE_EXCEEDED request is an ``expired`` result.
    """
    status = error_status(error)
    message = str(error.get("message") or status)
    if expired and status == "DEADLINE_EXCEEDED":
        return "expired", ItemError(
            code=status, message=message, status_code=HTTP_STATUS[status], retryable=True
        )
    if status == "CANCELLED":
        return "cancelled", ItemError(
            code=status, message=message, status_code=HTTP_STATUS[status], retryable=True
        )
    return "errored", ItemError(
        code=status,
        message=message,
        status_code=HTTP_STATUS.get(status),
        retryable=status in RETRYABLE_STATUSES,
    )


def decode_result(
    line: str | bytes | Mapping[str, Any],
    *,
    batch_id: str | None = None,
    model: str | None = None,
    expired: bool = False,
) -> BatchResult:
    """One ``{"key", "response"|"error"}`` line -> BatchResult.

    ``model`` is the batch's model, used when a response reports no ``modelVersion``;
    ``expired`` says the job expired (see :func:`decode_error`).
    """
    obj: Mapping[str, Any] = json.loads(line) if isinstance(line, (str, bytes)) else line
    common: dict[str, Any] = {
        "custom_id": str(obj.get("key", "")),
        "provider": PROVIDER,
        "batch_id": batch_id,
    }
    error = obj.get("error") or obj.get("status")
    response = obj.get("response")
    if isinstance(error, Mapping) and (error.get("code") or error.get("status")):
        status, item_error = decode_error(error, expired=expired)
        return BatchResult(status=status, error=item_error, response=dict(error), **common)
    if not isinstance(response, Mapping):
        return BatchResult(
            status="errored",
            error=ItemError(
                code="no_response", message="the line holds neither response nor error"
            ),
            **common,
        )
    if embeddings.is_embedding_response(response):
        return embeddings.decode_response(response, common, model)
    return BatchResult(
        status="succeeded",
        text=response_text(response),
        finish_reason=finish_reason(response),
        usage=decode_usage(response.get("usageMetadata")),
        model=str(response.get("modelVersion") or model or "") or None,
        response=dict(response),
        **common,
    )


def strip_model(name: str | None) -> str | None:
    """``models/gemini-x`` -> ``gemini-x``."""
    if not name:
        return None
    return name.removeprefix("models/")


# -- the sandbox's side of the wire -----------------------------------------------------------
def _content_text(content: Mapping[str, Any]) -> str:
    return "\n".join(
        str(p["text"]) for p in content.get("parts") or [] if isinstance(p, Mapping) and "text" in p
    )


def conversation(request: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The (role, text) turns of a request, system instruction first, in neutral role names."""
    turns: list[tuple[str, str]] = []
    system = request.get("systemInstruction")
    if isinstance(system, Mapping):
        turns.append(("system", _content_text(system)))
    for content in request.get("contents") or []:
        role = "assistant" if content.get("role") == "model" else "user"
        turns.append((role, _content_text(content)))
    return turns


_GENERATION_KEYS = frozenset(
    {
        "maxOutputTokens",
        "temperature",
        "topP",
        "topK",
        "seed",
        "stopSequences",
        "candidateCount",
        "responseMimeType",
        "responseSchema",
        "responseJsonSchema",
        "presencePenalty",
        "frequencyPenalty",
        "responseLogprobs",
        "logprobs",
        "thinkingConfig",
        "responseModalities",
        "mediaResolution",
        "speechConfig",
        "imageConfig",
    }
)
_REQUEST_KEYS = frozenset({"contents", "model", "generationConfig", *REQUEST_FIELDS})


def camel(name: str) -> str:
    """``thinking_budget`` -> ``thinkingBudget``: proto JSON accepts both spellings of a field."""
    head, *rest = name.split("_")
    return head + "".join(w[:1].upper() + w[1:] for w in rest)


def generation_config(request: Mapping[str, Any]) -> dict[str, Any]:
    """A request's generationConfig with camelCase keys (``thinkingConfig``'s too).

    The SDK (3.4.0) sends ``thinkingConfig`` with snake_case keys; the API parses proto JSON,
    which accepts either spelling, so the sandbox normalises rather than rejects.
    """
    raw = request.get("generationConfig") or request.get("generation_config") or {}
    if not isinstance(raw, Mapping):
        return {}
    config = {camel(k): v for k, v in raw.items()}
    thinking = config.get("thinkingConfig")
    if isinstance(thinking, Mapping):
        config["thinkingConfig"] = {camel(k): v for k, v in thinking.items()}
    return config


def check_request(request: Any) -> str | None:
    """Why the API would reject this GenerateContentRequest (None when acceptable).

    The sandbox turns such requests into per-request INVALID_ARGUMENT errors, as batch mode
    validates each request when it runs it, not at create time.
    """
    if not isinstance(request, Mapping):
        return "request: must be an object"
    for key in request:
        if camel(key) not in _REQUEST_KEYS:
            return f'Invalid JSON payload received. Unknown name "{key}": Cannot find field.'
    contents = request.get("contents")
    if not isinstance(contents, list) or not contents:
        return "* GenerateContentRequest.contents: contents is not specified"
    for i, content in enumerate(contents):
        if not isinstance(content, Mapping) or content.get("role", "user") not in ("user", "model"):
            return f"* GenerateContentRequest.contents[{i}].role: must be 'user' or 'model'"
        parts = content.get("parts")
        if not isinstance(parts, list) or not parts:
            return f"* GenerateContentRequest.contents[{i}].parts: contents.parts must not be empty"
    raw_config = request.get("generationConfig")
    if raw_config is not None and not isinstance(raw_config, Mapping):
        return "generationConfig: must be an object"
    config = generation_config(request)
    for key in config:
        if key not in _GENERATION_KEYS:
            return (
                f'Invalid JSON payload received. Unknown name "{key}" at '
                "'generation_config': Cannot find field."
            )
    temperature = config.get("temperature")
    if temperature is not None and not (
        isinstance(temperature, (int, float)) and 0 <= temperature <= 2
    ):
        return "* GenerateContentRequest.generation_config.temperature: must be in [0.0, 2.0]"
    top_p = config.get("topP")
    if top_p is not None and not (isinstance(top_p, (int, float)) and 0 <= top_p <= 1):
        return "* GenerateContentRequest.generation_config.top_p: must be in [0.0, 1.0]"
    max_tokens = config.get("maxOutputTokens")
    if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 1):
        return "* GenerateContentRequest.generation_config.max_output_tokens: must be positive"
    stops = config.get("stopSequences")
    if stops is not None and (not isinstance(stops, list) or len(stops) > MAX_STOP_SEQUENCES):
        return "* GenerateContentRequest.generation_config.stop_sequences: at most 5 sequences"
    return None


def error_body(code: int, status: str, message: str) -> dict[str, Any]:
    """Google's HTTP error envelope."""
    return {"error": {"code": code, "message": message, "status": status}}
