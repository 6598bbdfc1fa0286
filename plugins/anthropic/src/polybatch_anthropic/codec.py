"""The Anthropic Message Batches wire format, in one place: used by the client and the sandbox.

Encoding (neutral :class:`~polybatch.items.BatchItem` -> one ``{"custom_id", "params"}`` request):

- ``system`` messages, wherever they appear, are hoisted into the ``system`` field (several are
  joined with a blank line): Anthropic has no system role inside ``messages``.
- The remaining turns must start with ``user``; consecutive turns of the same role are **merged**
  (text joined with a blank line, block lists concatenated) rather than rejected, because OpenAI-style
  inputs often hold several user turns in a row and merging keeps their meaning. An ``assistant``
  last turn is kept (Anthropic treats it as a prefill).
- ``max_tokens`` is required by Anthropic: items without one get :data:`DEFAULT_MAX_TOKENS`, or the
  provider setting ``default_max_tokens``.
- ``temperature`` must be within Anthropic's 0-1 (polybatch allows 0-2): above 1 is rejected.
  ``top_p`` is passed as is; ``stop`` becomes ``stop_sequences``. Note: the installed SDK's
  ``MessageCreateParams`` (anthropic 2.12, API version 2026-10-21) declares no sampling fields at
  all; they are still sent because older API versions document them (unverified for the newest).
- ``seed`` has no Anthropic equivalent: rejected, never silently dropped.
- ``kind="embedding"`` items are rejected: Anthropic has no embeddings API.
- ``response_format``: ``json_schema`` -> ``output_config.format`` (native structured outputs, text
  reply; the schema is sent verbatim: a ``response_model`` schema is already in the strict form
  with ``additionalProperties: false`` everywhere); ``json_object`` (no schema) -> forced use of the reserved tool :data:`JSON_TOOL_NAME` with an
  open object schema, whose ``input`` is decoded back to JSON text.
- Content parts: ``text`` -> text blocks (``cache_control`` kept, so prompt caching works);
  ``image_url`` -> image blocks (``data:`` URLs as base64 sources, http(s) URLs as url sources);
  anything else is rejected.
- ``item.extra`` is merged into ``params`` last, so provider-specific fields win.

Decoding turns a results JSONL line (any of the four result types) into a :class:`BatchResult`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

from polybatch import wire
from polybatch.errors import ItemValidationError
from polybatch.items import BatchItem, BatchResult, ItemError, Message, Usage
from polybatch.providers import TERMINAL_STATES, BatchState
from polybatch.wire import content_parts, image_url
from polybatch.wire import invalid_item as _invalid

PROVIDER = "anthropic"
#: Anthropic requires max_tokens; used when neither the item nor the settings give one
DEFAULT_MAX_TOKENS = 1024
#: why embedding items are refused (validate_item and build_params say the same)
NO_EMBEDDINGS = "Anthropic does not offer embedding batches (use openai or azure for embeddings)"
#: the custom_id rule of the Message Batches API
CUSTOM_ID_RE = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
#: prefix of ids derived by :func:`wire_custom_id`; user ids starting with it are mapped too
MAPPED_PREFIX = "pb-"
#: hex digits of sha256 kept in a mapped id (192 bits: collisions are practically impossible)
_HASH_HEX = 48
#: the tool forced for ``json_object`` requests; its input is the JSON reply
JSON_TOOL_NAME = "json_output"
_JSON_TOOL: dict[str, Any] = {
    "name": JSON_TOOL_NAME,
    "description": "Respond with a single JSON object as this tool's input.",
    "input_schema": {"type": "object"},
}
_DATA_URL_RE = re.compile(r"^data:(image/(?:jpeg|png|gif|webp));base64,(.+)$", re.DOTALL)
#: error types worth sending again (transient server-side conditions)
RETRYABLE_ERROR_TYPES = frozenset(
    {"api_error", "overloaded_error", "rate_limit_error", "timeout_error"}
)
#: the HTTP status each Anthropic error type stands for
ERROR_STATUS: dict[str, int] = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}
#: Anthropic stop_reason -> polybatch's neutral (OpenAI-style) finish_reason
FINISH_REASONS: dict[str, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
    "pause_turn": "pause_turn",
}

#: ``processing_status`` values -> neutral states; ``ended`` is decided by :func:`batch_state`
STATES: dict[str, BatchState] = {"in_progress": "in_progress", "canceling": "cancelling"}


def batch_state(processing_status: str, *, cancel_initiated: bool, expired: int) -> BatchState:
    """A batch's neutral state: Anthropic has no validating or finalizing phase, and an ``ended``
    batch is ``cancelled`` when a cancel was initiated, else ``expired`` when any request expired
    (the 24 h window passed, as OpenAI reports it), else ``completed``."""
    if processing_status in STATES:
        return STATES[processing_status]
    if cancel_initiated:
        return "cancelled"
    return "expired" if expired else "completed"


def processing_status(state: str, *, cancel_requested: bool) -> str:
    """The ``processing_status`` a batch in the neutral ``state`` reports (what the sandbox
    answers): ``ended`` once it has ended, ``canceling`` while a cancel is pending."""
    if state in TERMINAL_STATES:
        return "ended"
    return "canceling" if cancel_requested else "in_progress"


# -- custom ids -------------------------------------------------------------------------------
def wire_custom_id(custom_id: str) -> str:
    """The id sent to Anthropic for ``custom_id``: a pure, deterministic function.

    Ids matching ``^[a-zA-Z0-9_-]{1,64}$`` pass unchanged, unless they start with the reserved
    :data:`MAPPED_PREFIX`; every other id becomes ``pb-`` + 48 hex digits of its sha256. So a
    mapped id can never equal a user id sent unchanged, and two mapped ids only collide on a
    192-bit hash collision (practically impossible).
    """
    if CUSTOM_ID_RE.match(custom_id) and not custom_id.startswith(MAPPED_PREFIX):
        return custom_id
    digest = hashlib.sha256(custom_id.encode("utf-8")).hexdigest()[:_HASH_HEX]
    return MAPPED_PREFIX + digest


# -- encoding ---------------------------------------------------------------------------------
def _image_block(item: BatchItem, field: str, part: Mapping[str, Any]) -> dict[str, Any]:
    url = image_url(part)
    if not isinstance(url, str) or not url:
        raise _invalid(item, f"{field}.image_url", "image_url part needs a url")
    m = _DATA_URL_RE.match(url)
    if m:
        source: dict[str, Any] = {"type": "base64", "media_type": m.group(1), "data": m.group(2)}
    elif url.startswith(("https://", "http://")):
        source = {"type": "url", "url": url}
    else:
        raise _invalid(
            item,
            f"{field}.image_url",
            "Anthropic takes images as http(s) URLs or base64 data: URLs of "
            "image/jpeg, image/png, image/gif or image/webp",
        )
    return {"type": "image", "source": source}


def _blocks(item: BatchItem, index: int, message: Message) -> list[dict[str, Any]]:
    """A message's content as Anthropic content blocks."""
    if isinstance(message.content, str):
        return [{"type": "text", "text": message.content}]
    blocks: list[dict[str, Any]] = []
    for field, kind, part in content_parts(item, index, message):
        if kind == "text":
            block: dict[str, Any] = {"type": "text", "text": part["text"]}
            if "cache_control" in part:
                block["cache_control"] = part["cache_control"]
            blocks.append(block)
        elif kind == "image_url":
            if message.role != "user":
                raise _invalid(item, field, "Anthropic accepts images in user turns only")
            blocks.append(_image_block(item, field, part))
        else:
            raise _invalid(
                item, f"{field}.type", f"content part type {kind!r} is not supported by Anthropic"
            )
    return blocks


def _merge(a: str | list[dict[str, Any]], b: str | list[dict[str, Any]]) -> Any:
    if isinstance(a, str) and isinstance(b, str):
        return a + "\n\n" + b
    first = a if isinstance(a, list) else [{"type": "text", "text": a}]
    second = b if isinstance(b, list) else [{"type": "text", "text": b}]
    return [*first, *second]


def _system_and_turns(item: BatchItem) -> tuple[str | list[dict[str, Any]] | None, list[Any]]:
    system_parts: list[list[dict[str, Any]]] = []
    turns: list[dict[str, Any]] = []
    for i, message in enumerate(item.messages):
        if message.role == "system":
            blocks = _blocks(item, i, message)
            if any(b["type"] != "text" for b in blocks):
                raise _invalid(item, f"messages[{i}].content", "system messages may hold text only")
            system_parts.append(blocks)
            continue
        content: str | list[dict[str, Any]] = (
            message.content if isinstance(message.content, str) else _blocks(item, i, message)
        )
        if not turns:
            if message.role != "user":
                raise _invalid(
                    item,
                    f"messages[{i}].role",
                    "Anthropic needs the first non-system turn to be 'user', not 'assistant'",
                )
            turns.append({"role": "user", "content": content})
        elif turns[-1]["role"] == message.role:
            # Anthropic needs strictly alternating turns: fold a repeated role into the previous
            turns[-1]["content"] = _merge(turns[-1]["content"], content)
        else:
            turns.append({"role": message.role, "content": content})
    system: str | list[dict[str, Any]] | None = None
    if system_parts:
        flat = [b for part in system_parts for b in part]
        if any(set(b) != {"type", "text"} for b in flat):
            system = flat  # keep cache_control markers: block form
        else:
            system = "\n\n".join(b["text"] for b in flat)
    return system, turns


def _json_mode(item: BatchItem, params: dict[str, Any]) -> None:
    fmt = item.response_format
    if fmt is None or fmt.get("type") == "text":
        return
    if fmt["type"] == "json_schema":
        spec = fmt.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, Mapping) else None
        if not isinstance(schema, Mapping):
            raise _invalid(
                item, "response_format.json_schema.schema", "json_schema needs a 'schema' object"
            )
        output_config = dict(item.extra.get("output_config") or {})
        output_config["format"] = {"type": "json_schema", "schema": dict(schema)}
        params["output_config"] = output_config
        return
    # json_object: Anthropic has no schema-less JSON mode; force a tool taking any object
    if "tools" in item.extra or "tool_choice" in item.extra:
        raise _invalid(
            item,
            "response_format",
            "json_object is implemented with a forced tool and cannot be combined with "
            "extra 'tools'/'tool_choice'",
        )
    params["tools"] = [dict(_JSON_TOOL)]
    params["tool_choice"] = {"type": "tool", "name": JSON_TOOL_NAME}


def build_params(
    item: BatchItem, model: str, *, default_max_tokens: int = DEFAULT_MAX_TOKENS
) -> dict[str, Any]:
    """The Messages API ``params`` for an item; raises ItemValidationError naming the field."""
    if item.kind == "embedding":
        raise _invalid(item, "kind", NO_EMBEDDINGS)
    if item.seed is not None:
        raise _invalid(
            item, "seed", "Anthropic does not support 'seed'; remove it for this provider"
        )
    if item.temperature is not None and item.temperature > 1:
        raise _invalid(
            item, "temperature", f"Anthropic accepts temperature 0-1, got {item.temperature}"
        )
    if item.extra.get("stream"):
        raise _invalid(item, "extra.stream", "batch requests cannot stream")
    system, turns = _system_and_turns(item)
    params: dict[str, Any] = {
        "model": item.model or model,
        "max_tokens": item.max_tokens if item.max_tokens is not None else default_max_tokens,
        "messages": turns,
    }
    if system is not None:
        params["system"] = system
    if item.temperature is not None:
        params["temperature"] = item.temperature
    if item.top_p is not None:
        params["top_p"] = item.top_p
    if item.stop is not None:
        stops = [item.stop] if isinstance(item.stop, str) else list(item.stop)
        if any(not s.strip() for s in stops):
            raise _invalid(
                item, "stop", "Anthropic rejects empty or whitespace-only stop sequences"
            )
        params["stop_sequences"] = stops
    _json_mode(item, params)
    # provider-specific fields win: they are the user's explicit, verbatim choice
    for key, value in item.extra.items():
        if key == "output_config" and "output_config" in params:
            continue  # already merged with the JSON format above
        params[key] = value
    return params


def encode_request(
    item: BatchItem, model: str, *, default_max_tokens: int = DEFAULT_MAX_TOKENS
) -> dict[str, Any]:
    """One entry of the create body's ``requests``: ``{"custom_id": wire id, "params": {...}}``."""
    if item.custom_id is None:
        raise ItemValidationError("item has no custom_id (plan the job first)", field="custom_id")
    return {
        "custom_id": wire_custom_id(item.custom_id),
        "params": build_params(item, model, default_max_tokens=default_max_tokens),
    }


# -- decoding ---------------------------------------------------------------------------------
def decode_usage(usage: Mapping[str, Any] | None) -> Usage:
    """Anthropic usage -> disjoint polybatch buckets.

    Anthropic's ``input_tokens`` already excludes cache reads and writes, so it is taken as is;
    writes are split by TTL from ``cache_creation`` when present, else all counted as 5-minute
    (as are writes the split leaves out of ``cache_creation_input_tokens``: never dropped).
    ``output_tokens`` already includes ``output_tokens_details.thinking_tokens``.
    """
    if not usage:
        return Usage()
    creation = usage.get("cache_creation") or None
    total_writes = int(usage.get("cache_creation_input_tokens") or 0)
    if isinstance(creation, Mapping):
        writes_5m = int(creation.get("ephemeral_5m_input_tokens") or 0)
        writes_1h = int(creation.get("ephemeral_1h_input_tokens") or 0)
        writes_5m += max(total_writes - writes_5m - writes_1h, 0)
    else:
        writes_5m, writes_1h = total_writes, 0
    details = usage.get("output_tokens_details") or {}
    return Usage(
        input_tokens=int(usage.get("input_tokens") or 0),
        cached_input_tokens=int(usage.get("cache_read_input_tokens") or 0),
        cache_write_5m_tokens=writes_5m,
        cache_write_1h_tokens=writes_1h,
        output_tokens=int(usage.get("output_tokens") or 0),
        reasoning_tokens=int(details.get("thinking_tokens") or 0)
        if isinstance(details, Mapping)
        else 0,
    )


def message_text(message: Mapping[str, Any]) -> str:
    """The reply text: text blocks joined, or the JSON input of the forced JSON tool."""
    content = message.get("content") or []
    texts = [b.get("text", "") for b in content if b.get("type") == "text"]
    if texts:
        return "".join(texts)
    for block in content:
        if block.get("type") == "tool_use" and block.get("name") == JSON_TOOL_NAME:
            return json.dumps(block.get("input"), ensure_ascii=False)
    return ""


def _finish_reason(message: Mapping[str, Any]) -> str | None:
    reason = message.get("stop_reason")
    if reason is None:
        return None
    if reason == "tool_use" and any(
        b.get("type") == "tool_use" and b.get("name") == JSON_TOOL_NAME
        for b in message.get("content") or []
    ):
        return "stop"  # the forced JSON tool is our JSON mode, not a tool call for the user
    return FINISH_REASONS.get(str(reason), str(reason))


def decode_result(
    line: str | bytes | Mapping[str, Any], *, batch_id: str | None = None
) -> BatchResult:
    """One results JSONL line -> BatchResult (``custom_id`` is the wire id, as reported)."""
    obj: Mapping[str, Any] = json.loads(line) if isinstance(line, (str, bytes)) else line
    custom_id = str(obj["custom_id"])
    result = obj.get("result") or {}
    kind = result.get("type")
    common: dict[str, Any] = {
        "custom_id": custom_id,
        "provider": PROVIDER,
        "batch_id": batch_id,
    }
    if kind == "succeeded":
        message = result.get("message") or {}
        return BatchResult(
            response=dict(message),
            status="succeeded",
            text=message_text(message),
            finish_reason=_finish_reason(message),
            usage=decode_usage(message.get("usage")),
            model=message.get("model"),
            **common,
        )
    if kind == "errored":
        envelope: Mapping[str, Any] = result.get("error") or {}
        nested = envelope.get("error")
        inner: Mapping[str, Any] = nested if isinstance(nested, Mapping) else envelope
        code = str(inner.get("type") or "api_error")
        return BatchResult(
            response=dict(envelope),
            status="errored",
            error=ItemError(
                code=code,
                message=str(inner.get("message") or code),
                status_code=ERROR_STATUS.get(code),
                retryable=code in RETRYABLE_ERROR_TYPES,
            ),
            **common,
        )
    if kind == "canceled":
        return BatchResult(
            status="cancelled",
            error=ItemError(
                code="canceled",
                message="the batch was canceled before this request was processed",
                retryable=True,
            ),
            **common,
        )
    if kind == "expired":
        return BatchResult(
            status="expired",
            error=ItemError(
                code="expired",
                message="the batch expired (24 h) before this request was processed",
                retryable=True,
            ),
            **common,
        )
    return BatchResult(
        status="errored",
        error=ItemError(code="unknown_result", message=f"unknown result type {kind!r}"),
        **common,
    )


# -- the sandbox's side of the wire -----------------------------------------------------------
#: body fields of a Messages create request: the installed SDK's MessageCreateParams, plus the
#: sampling fields older API versions document (temperature, top_p, top_k)
KNOWN_PARAMS = frozenset(
    {
        "model",
        "max_tokens",
        "messages",
        "cache_control",
        "container",
        "diagnostics",
        "inference_geo",
        "metadata",
        "output_config",
        "service_tier",
        "speed",
        "stop_sequences",
        "stream",
        "system",
        "thinking",
        "tool_choice",
        "tools",
        "user_profile_id",
        "temperature",
        "top_p",
        "top_k",
    }
)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_content(where: str, content: Any) -> str | None:
    if isinstance(content, str):
        return None
    if not isinstance(content, list) or not content:
        return f"{where}: must be a string or a non-empty list of content blocks"
    for j, block in enumerate(content):
        if not isinstance(block, Mapping) or not isinstance(block.get("type"), str):
            return f"{where}.{j}: content blocks need a 'type'"
        if block["type"] == "text" and not isinstance(block.get("text"), str):
            return f"{where}.{j}.text: Field required"
    return None


def check_params(params: Any) -> str | None:
    """Why the Messages API would reject these ``params`` (None when they are acceptable).

    The sandbox uses it to turn invalid requests into ``errored`` results after the batch ends,
    as Anthropic does (per-request params are validated asynchronously, not at create time).
    """
    if not isinstance(params, Mapping):
        return "params: Input should be an object"
    for key in params:
        if key not in KNOWN_PARAMS:
            return f"{key}: Extra inputs are not permitted"
    if not isinstance(params.get("model"), str) or not params["model"]:
        return "model: Field required"
    max_tokens = params.get("max_tokens")
    if max_tokens is None:
        return "max_tokens: Field required"
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        return "max_tokens: Input should be an integer greater than or equal to 1"
    messages = params.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages: Field required (a non-empty list)"
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping) or message.get("role") not in ("user", "assistant"):
            return f"messages.{i}.role: Input should be 'user' or 'assistant'"
        problem = _check_content(f"messages.{i}.content", message.get("content"))
        if problem:
            return problem
    if messages[0]["role"] != "user":
        return 'messages: first message must use the "user" role'
    if "system" in params:
        system = params["system"]
        if not isinstance(system, str):
            problem = _check_content("system", system)
            if problem:
                return problem
    for name in ("temperature", "top_p"):
        if name in params and not (_is_number(params[name]) and 0 <= params[name] <= 1):
            return f"{name}: Input should be a number between 0 and 1"
    if params.get("stream"):
        return "stream: streaming is not supported in batches"
    stops = params.get("stop_sequences")
    if stops is not None and (
        not isinstance(stops, list) or not all(isinstance(s, str) and s.strip() for s in stops)
    ):
        return "stop_sequences: Input should be a list of non-blank strings"
    choice = params.get("tool_choice")
    if isinstance(choice, Mapping) and choice.get("type") == "tool":
        names = [t.get("name") for t in params.get("tools") or [] if isinstance(t, Mapping)]
        if choice.get("name") not in names:
            return f"tool_choice.name: no tool named {choice.get('name')!r} in tools"
    fmt = (params.get("output_config") or {}).get("format")
    if fmt is not None and (
        fmt.get("type") != "json_schema" or not isinstance(fmt.get("schema"), Mapping)
    ):
        return "output_config.format: Input should be {'type': 'json_schema', 'schema': {...}}"
    return None


def conversation(params: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The (role, text) turns of valid ``params``, the system prompt first."""
    turns: list[tuple[str, str]] = []
    if params.get("system"):
        turns.append(("system", wire.message_text(params["system"])))
    turns.extend((m["role"], wire.message_text(m["content"])) for m in params["messages"])
    return turns


def forced_tool(params: Mapping[str, Any]) -> dict[str, Any] | None:
    """The tool that ``tool_choice`` forces, if any (how JSON mode is expressed)."""
    choice = params.get("tool_choice")
    if not isinstance(choice, Mapping) or choice.get("type") != "tool":
        return None
    return next(
        (dict(t) for t in params.get("tools") or [] if t.get("name") == choice.get("name")), None
    )


def error_body(error_type: str, message: str, request_id: str | None) -> dict[str, Any]:
    """Anthropic's error envelope (HTTP errors and errored results alike)."""
    return {
        "type": "error",
        "error": {"type": error_type, "message": message},
        "request_id": request_id,
    }
