"""The Mistral chat-completions batch wire format, in one place.

Both sides use this module: the adapter encodes :class:`~polybatch.items.BatchItem`s into input lines
and decodes output/error lines into :class:`~polybatch.items.BatchResult`s; the sandbox decodes input
lines, validates request bodies and writes output/error lines. Keeping both directions here means the
emulator cannot drift from what the client sends and expects. The OpenAI-shaped part it shares
(encoding a chat body, decoding result lines, usage) is :mod:`polybatch.formats`; this module
holds what is Mistral's own: parameter names, finish reasons, error wording and request rules.

Input lines are ``{"custom_id": ..., "body": {...}}`` (Mistral's documented format: no ``method`` or
``url``, and ``body.model`` is optional because the job names the model). Output lines follow the
shape Mistral's batch results are consumed with in the wild, ``{"id", "custom_id", "response":
{"status_code", "body"}, "error"}``; Mistral does not document it (UNVERIFIED), so the decoder is
lenient about which parts are present.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from polybatch import formats, vectors, wire
from polybatch.errors import ItemValidationError
from polybatch.formats import INT64_MAX as INT64_MAX
from polybatch.formats import SCHEMA_NAME_RE, is_int, is_number
from polybatch.formats import response_line as response_line
from polybatch.items import BatchItem, BatchResult, ItemError, ResultStatus
from polybatch.providers import BatchState
from polybatch.wire import WireError as WireError
from polybatch.wire import as_mapping, load_object

from . import embeddings

#: the batch ``endpoint`` of chat-completion jobs
CHAT_ENDPOINT = "/v1/chat/completions"

#: neutral states -> Mistral job statuses, as a job reports them (what the sandbox answers)
STATUS: dict[BatchState, str] = {
    "validating": "QUEUED",
    "in_progress": "RUNNING",
    "finalizing": "RUNNING",
    "cancelling": "CANCELLATION_REQUESTED",
    "completed": "SUCCESS",
    "failed": "FAILED",
    "expired": "TIMEOUT_EXCEEDED",
    "cancelled": "CANCELLED",
}
#: Mistral job statuses -> neutral states: :data:`STATUS` read backwards, the first state
#: listed winning (RUNNING is ``in_progress``). QUEUED has not started, which is what
#: "validating" means to the runner; a status newer than this table reads as in progress.
STATES: dict[str, BatchState] = {status: state for state, status in reversed(STATUS.items())}
#: the statuses of a job that has ended (its output and error files are final)
TERMINAL_STATUSES = frozenset({"SUCCESS", "FAILED", "TIMEOUT_EXCEEDED", "CANCELLED"})

#: neutral parameter name -> Mistral body field (the seed is ``random_seed`` at Mistral)
PARAM_TO_BODY: dict[str, str] = {**formats.PARAMS, "seed": "random_seed"}
#: error-only lines (no HTTP response): code -> (result status, retryable)
LINE_ERRORS: dict[str, tuple[ResultStatus, bool]] = {
    **formats.LINE_ERRORS,
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
#: body fields BatchItem spells itself; setting them through ``extra`` would be ambiguous
STRUCTURAL_EXTRA = frozenset({"model", "messages", "stream"})


def batch_state(status: str) -> BatchState:
    """A job ``status`` in neutral terms (see :data:`STATES`)."""
    return STATES.get(status, "in_progress")


def short_hash(*parts: Any, length: int = 32) -> str:
    """A stable hex id derived from ``parts`` (deterministic sandbox ids; Mistral's are 32 long)."""
    return wire.short_hash(*parts, length=length)


# -- client side: encode ------------------------------------------------------------------------
def encode_body(item: BatchItem, *, model: str | None = None) -> dict[str, Any]:
    """The chat-completions body for ``item``; ``model`` is written only when given.

    The adapter leaves the model out: the job names it once, and every line is shorter for it.
    ``item.extra`` carries Mistral-only fields (safe_prompt, presence_penalty, ...).
    """
    return formats.chat_body(item, model or None, PARAM_TO_BODY)


def encode_line(
    item: BatchItem, *, custom_id: str | None = None, model: str | None = None
) -> bytes:
    """One input line (no newline) for ``item``; ``custom_id`` overrides ``item.custom_id``.

    An embedding item gets an embeddings body (:mod:`.embeddings`)."""
    if item.kind == "embedding":
        return embeddings.encode_line(item, custom_id=custom_id)
    return formats.encode_line(item, encode_body(item, model=model), custom_id=custom_id)


def check_item(item: BatchItem, model: str) -> None:
    """Reject what Mistral's chat-completions API would refuse for every model
    (ItemValidationError naming the field).

    The adapter's ``validate_item``. What only the item shows (a body field set both on the item
    and through ``extra``) is checked here, then :func:`check_body` on the encoded body: the
    very rules the sandbox answers requests with.
    """

    def bad(message: str, field: str) -> ItemValidationError:
        return ItemValidationError(message, field=field)

    if item.kind == "embedding":
        embeddings.check_item(item, model)
        return
    clash = STRUCTURAL_EXTRA & item.extra.keys()
    if clash:
        name = sorted(clash)[0]
        raise bad(
            f"'{name}' cannot be set through extra; use the item's own field", f"extra.{name}"
        )
    for neutral, body_key in PARAM_TO_BODY.items():
        if getattr(item, neutral) is not None and body_key in item.extra:
            raise bad(f"{neutral} is set both on the item and as extra.{body_key}", "extra")
    if "seed" in item.extra:
        raise bad("Mistral calls the seed 'random_seed'; use the item's seed field", "extra")
    try:
        check_body(encode_body(item), job_model=item.model or model)
    except WireError as exc:
        raise formats.item_error(exc, item, PARAM_TO_BODY) from None


# -- client side: decode ------------------------------------------------------------------------
def decode_result(
    line: bytes | str | Mapping[str, Any],
    *,
    provider: str | None = None,
    batch_id: str | None = None,
) -> BatchResult:
    """Decode one output-file or error-file line into a BatchResult.

    Raises :class:`WireError` for a line that is not a result line at all (no custom_id). Error
    bodies may be Mistral's flat error, an OpenAI-style nested one or a FastAPI ``detail``; a
    response without a status is worth another try.
    """
    return formats.decode_line(
        line,
        provider=provider,
        batch_id=batch_id,
        line_errors=LINE_ERRORS,
        success=_success,
        no_status_retryable=True,
    )


def _success(body: dict[str, Any], common: dict[str, Any]) -> BatchResult:
    if body.get("object") == "list" and "choices" not in body:
        return vectors.list_result(body, common)  # an embeddings job's line
    choices = body.get("choices")
    choice = as_mapping(choices[0]) if isinstance(choices, list) and choices else {}
    if choice.get("finish_reason") == "error":
        # a 200 whose generation broke off: not an answer, and worth another try
        return BatchResult(
            status="errored",
            error=ItemError(
                code="generation_error",
                message="the model stopped with finish_reason 'error'",
                status_code=200,
                retryable=True,
            ),
            usage=formats.usage(as_mapping(body.get("usage"))),
            model=body.get("model"),
            response=body,
            **common,
        )
    return formats.chat_result(body, common, finish_reasons=_FINISH_REASONS)


def synthetic_result(
    custom_id: str, status: ResultStatus, *, provider: str | None, batch_id: str | None
) -> BatchResult:
    """The result of a request a cancelled or timed-out job never ran (it has no output line)."""
    code = "batch_cancelled" if status == "cancelled" else "batch_expired"
    message = (
        "This request was not run because the batch job was cancelled."
        if status == "cancelled"
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
    obj = load_object(line)
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
class ChatRequest(formats.ChatRequest):
    """A validated chat-completions body, in neutral terms (text parts are joined unseparated)."""

    text_sep: ClassVar[str] = ""


def _invalid(message: str, param: str) -> WireError:
    return WireError("invalid_request_error", message, param=param)


def _number(body: dict[str, Any], name: str, lo: float, hi: float | None) -> float | None:
    value = body.pop(name, None)
    if value is None:
        return None
    if not is_number(value) or value < lo or (hi is not None and value > hi):
        bound = f"between {lo:g} and {hi:g}" if hi is not None else f">= {lo:g}"
        raise _invalid(f"{name}: expected a number {bound}, got {value!r}", name)
    return float(value)


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
    if max_tokens is not None and (not is_int(max_tokens) or max_tokens < 0):
        raise _invalid(f"max_tokens: expected an integer >= 0, got {max_tokens!r}", "max_tokens")
    temperature = _number(rest, "temperature", 0, None)
    top_p = _number(rest, "top_p", 0, 1)
    seed = rest.pop("random_seed", None)
    if seed is not None and (not is_int(seed) or not 0 <= seed <= INT64_MAX):
        raise _invalid("random_seed: expected a non-negative integer", "random_seed")

    stop_raw = rest.pop("stop", None)
    stop: list[str] | None = None
    if stop_raw is not None:
        stop = formats.stop_list(stop_raw)
        if stop is None:
            raise _invalid("stop: expected a string or a list of strings", "stop")

    response_format = rest.pop("response_format", None)
    if response_format is not None:
        check_response_format(response_format)

    n = rest.pop("n", None)
    if n is not None and (not is_int(n) or n < 1):
        raise _invalid("n: expected an integer >= 1", "n")

    return ChatRequest(
        model, messages, max_tokens, temperature, top_p, seed, stop, response_format, n or 1, rest
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
        js = as_mapping(rf.get("json_schema"))
        name = js.get("name")
        if not isinstance(name, str) or not SCHEMA_NAME_RE.match(name):
            raise _invalid(
                "response_format.json_schema.name: a name of letters, digits, '_' or '-' "
                "(at most 64) is required",
                "response_format.json_schema.name",
            )
        if not isinstance(js.get("schema"), dict):
            raise _invalid(
                "response_format.json_schema.schema: expected an object",
                "response_format.json_schema.schema",
            )


#: the one validation of a request body: the adapter runs it on what it is about to send
#: (:func:`check_item`), the sandbox on what it receives
check_body = parse_chat_body


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
