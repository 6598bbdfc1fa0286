"""The OpenAI batch-line interchange format, in and out: what every vendor speaking it shares.

OpenAI's chat-completions batch lines are the lingua franca of batch APIs: Mistral, Azure and the
OpenAI-compatible vendors read and write the same shapes with small differences (the envelope's
``method``/``url``, a parameter's name, extra finish reasons, looser error bodies). This module is
that common part, written once; each vendor's codec supplies only its differences as arguments:

- encoding: :func:`chat_body` (an item as a chat-completions body, parameter names mapped) and
  :func:`encode_line` (the ``{"custom_id", ["method", "url",] "body"}`` envelope);
- decoding: :func:`decode_line` (an output or error line as a
  :class:`~polybatch.items.BatchResult`, with :func:`chat_result`, :func:`http_error` and
  :func:`line_error` for its parts) and :func:`usage` (``usage`` in disjoint buckets);
- the sandbox side: :class:`ChatRequest`, a validated body in neutral terms, and
  :func:`response_line`, an output line.

Performance: these run once per item on million-item jobs, so they work on plain dicts: no model
validation and no JSON round trip beyond the one parse of each line.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .errors import ItemValidationError
from .items import PARAM_FIELDS, BatchItem, BatchResult, ItemError, ResultStatus, Usage
from .wire import WireError, as_mapping, dumps, message_text, retryable_status

#: the per-line ``url`` and batch ``endpoint`` of chat-completions batches
CHAT_URL = "/v1/chat/completions"
#: the largest value of the 64-bit integer fields (``seed``)
INT64_MAX = 2**63 - 1
#: the rule for ``response_format.json_schema.name``: letters, digits, ``_`` and ``-``, up to 64
SCHEMA_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
#: neutral parameter name -> body field: OpenAI's names are the neutral ones; a vendor's codec
#: overrides the fields it names otherwise (``{**PARAMS, "seed": "random_seed"}``)
PARAMS: dict[str, str] = {name: name for name in PARAM_FIELDS}
#: error-only lines every OpenAI-shaped vendor writes: code -> (result status, retryable)
LINE_ERRORS: dict[str, tuple[ResultStatus, bool]] = {
    "batch_expired": ("expired", True),
    "batch_cancelled": ("cancelled", True),
}
#: what a successful response body becomes: ``(body, common result fields) -> BatchResult``
SuccessDecoder = Callable[[dict[str, Any], dict[str, Any]], BatchResult]


# -- encode -------------------------------------------------------------------------------------
def chat_body(item: BatchItem, model: str | None, fields: Mapping[str, str]) -> dict[str, Any]:
    """The chat-completions body of ``item``: ``model`` (left out when None), ``messages``, the
    item's parameters under the body names ``fields`` maps their neutral names to, then
    ``item.extra``.

    ``extra`` is the escape hatch for vendor-specific fields: passed through verbatim, and last,
    so that what the user spelled out explicitly wins.
    """
    body: dict[str, Any] = {}
    if model is not None:
        body["model"] = model
    body["messages"] = [{"role": m.role, "content": m.content} for m in item.messages]
    for name, value in item.params().items():
        body[fields[name]] = value
    body.update(item.extra)
    return body


def encode_line(
    item: BatchItem,
    body: Mapping[str, Any],
    *,
    custom_id: str | None = None,
    url: str | None = None,
) -> bytes:
    """One input line (no newline) carrying ``body``; ``custom_id`` overrides ``item.custom_id``.

    With a ``url`` the envelope is OpenAI's ``{"custom_id", "method": "POST", "url", "body"}``;
    without, it is ``{"custom_id", "body"}`` (Mistral's: the job names the endpoint).
    """
    cid = custom_id if custom_id is not None else item.custom_id
    if not cid:
        raise ValueError("an item needs a custom_id before it is encoded")
    if url is None:
        return dumps({"custom_id": cid, "body": body})
    return dumps({"custom_id": cid, "method": "POST", "url": url, "body": body})


# -- decode -------------------------------------------------------------------------------------
def usage(raw: Mapping[str, Any] | None, *, reasoning_outside: bool = False) -> Usage:
    """Map a chat-completion ``usage`` onto disjoint neutral buckets.

    ``prompt_tokens`` already includes the cached tokens reported in
    ``prompt_tokens_details.cached_tokens`` and the tokens written to the cache,
    ``prompt_tokens_details.cache_write_tokens`` (OpenAI's gpt-5.6 / gpt-6 families, OpenRouter
    for models with explicit caching), so both are subtracted once here (never below zero, and
    never more than the prompt holds, so the buckets always add up to ``prompt_tokens``). Writes
    go to ``cache_write_5m_tokens``, the bucket of the provider's default-retention write rate.

    ``reasoning_tokens`` is part of ``completion_tokens`` on OpenAI and is only reported
    alongside. xAI counts it outside ``completion_tokens`` (its ``total_tokens`` is prompt +
    completion + reasoning) and bills it as output: with ``reasoning_outside`` (the xAI codec)
    it is added to output, unless ``total_tokens`` shows it already inside; without it, it is
    added only when ``total_tokens`` shows it outside.
    """
    if not raw:
        return Usage()
    prompt = int(raw.get("prompt_tokens") or 0)
    details = as_mapping(raw.get("prompt_tokens_details"))
    cached = int(details.get("cached_tokens") or 0)
    writes = int(details.get("cache_write_tokens") or 0)
    if prompt:
        cached = min(cached, prompt)
        writes = min(writes, prompt - cached)
    completion = int(raw.get("completion_tokens") or 0)
    reasoning = int(as_mapping(raw.get("completion_tokens_details")).get("reasoning_tokens") or 0)
    total = raw.get("total_tokens")
    if isinstance(total, int) and not isinstance(total, bool) and reasoning:
        outside = total == prompt + completion + reasoning
    else:
        outside = reasoning_outside
    return Usage(
        input_tokens=max(prompt - cached - writes, 0),
        cached_input_tokens=cached,
        cache_write_5m_tokens=writes,
        output_tokens=completion + reasoning if outside else completion,
        reasoning_tokens=reasoning,
    )


def reply_text(content: Any) -> str | None:
    """The text of a reply's ``message.content``: None stays None, content parts are joined."""
    return None if content is None else message_text(content, sep="")


def chat_result(
    body: dict[str, Any],
    common: dict[str, Any],
    *,
    finish_reasons: Mapping[str, str] | None = None,
    reasoning_outside: bool = False,
) -> BatchResult:
    """A successful ``chat.completion`` body: the first choice's text and finish reason
    (translated through ``finish_reasons``; unlisted ones pass unchanged), usage (see
    :func:`usage` for ``reasoning_outside``) and model."""
    choices = body.get("choices")
    choice = as_mapping(choices[0]) if isinstance(choices, list) and choices else {}
    finish = choice.get("finish_reason")
    if finish is not None and finish_reasons:
        finish = finish_reasons.get(str(finish), finish)
    return BatchResult(
        status="succeeded",
        text=reply_text(as_mapping(choice.get("message")).get("content")),
        finish_reason=finish,
        usage=usage(as_mapping(body.get("usage")), reasoning_outside=reasoning_outside),
        model=body.get("model"),
        response=body,
        **common,
    )


def error_fields(body: Mapping[str, Any], status: int) -> tuple[str, str]:
    """(code, message) of an error response body: OpenAI's nested ``error``, a flat one (as
    Mistral's), or a FastAPI ``detail``; ``http_<status>`` and ``HTTP <status>`` when it says
    nothing."""
    err = as_mapping(body.get("error")) or body
    code = err.get("code") or err.get("type")
    message = err.get("message")
    if message is None and "detail" in body:
        detail = body["detail"]
        message = detail if isinstance(detail, str) else json.dumps(detail)
    return str(code or f"http_{status}"), str(message or f"HTTP {status}")


def http_error(
    status: int, body: dict[str, Any], common: dict[str, Any], *, no_status_retryable: bool = False
) -> BatchResult:
    """A line whose request got an error response: retryable by its status
    (:func:`~polybatch.wire.retryable_status`); a line without a status is retryable only when
    ``no_status_retryable`` says so."""
    code, message = error_fields(body, status)
    return BatchResult(
        status="errored",
        error=ItemError(
            code=code,
            message=message,
            status_code=status or None,
            retryable=retryable_status(status) if status else no_status_retryable,
        ),
        response=body,
        **common,
    )


def line_error(
    error: Mapping[str, Any] | str,
    common: dict[str, Any],
    line_errors: Mapping[str, tuple[ResultStatus, bool]],
) -> BatchResult:
    """An error-only line (the request never got a response: expired, cancelled ...).

    ``line_errors`` maps the vendor's codes to (result status, retryable); other codes are
    ``errored`` and not retryable.
    """
    err = as_mapping(error)
    code = str(err.get("code") or err.get("type") or "unknown_error")
    message = error if isinstance(error, str) else str(err.get("message") or code)
    result_status, retryable = line_errors.get(code, ("errored", False))
    return BatchResult(
        status=result_status,
        error=ItemError(code=code, message=message, retryable=retryable),
        **common,
    )


def decode_line(
    line: bytes | str | Mapping[str, Any],
    *,
    provider: str | None,
    batch_id: str | None,
    line_errors: Mapping[str, tuple[ResultStatus, bool]],
    success: SuccessDecoder = chat_result,
    no_status_retryable: bool = False,
) -> BatchResult:
    """Decode one output-file or error-file line (``{"custom_id", "response": {"status_code",
    "body"}, "error"}``) into a BatchResult.

    A 2xx response goes to ``success`` (default :func:`chat_result`), another status to
    :func:`http_error`, an error-only line to :func:`line_error`. Raises :class:`WireError` for a
    line that is not a result line at all (not JSON, or no custom_id): its result cannot be
    attributed to a request.
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
        body = dict(as_mapping(response.get("body")))
        if 200 <= status < 300:
            return success(body, common)
        return http_error(status, body, common, no_status_retryable=no_status_retryable)
    error = obj.get("error")
    if isinstance(error, Mapping | str):
        return line_error(error, common, line_errors)
    return BatchResult(
        status="errored",
        error=ItemError(
            code="invalid_output_line", message="output line has neither response nor error"
        ),
        **common,
    )


# -- the sandbox side ---------------------------------------------------------------------------
@dataclass
class ChatRequest:
    """A validated chat-completions body, in neutral terms (``seed`` whatever the body calls it)."""

    #: what joins the text parts of a list content in :meth:`transcript`
    text_sep: ClassVar[str] = "\n"

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
        sep = self.text_sep
        return [(m["role"], message_text(m.get("content"), sep=sep)) for m in self.messages]

    def json_schema(self) -> dict[str, Any] | None:
        """The requested JSON schema, if response_format asks for one."""
        rf = self.response_format or {}
        if rf.get("type") == "json_schema":
            schema = as_mapping(rf.get("json_schema")).get("schema")
            return dict(schema) if isinstance(schema, Mapping) else {"type": "object"}
        return None


def response_line(
    line_id: str,
    custom_id: str,
    *,
    status_code: int,
    body: Mapping[str, Any],
    request_id: str | None = None,
) -> dict[str, Any]:
    """An output/error line carrying an HTTP response (``request_id`` only where the vendor
    writes one: OpenAI does, Mistral does not)."""
    response: dict[str, Any] = {"status_code": status_code}
    if request_id is not None:
        response["request_id"] = request_id
    response["body"] = dict(body)
    return {"id": line_id, "custom_id": custom_id, "response": response, "error": None}


def stop_list(value: Any, *, most: int | None = None) -> list[str] | None:
    """``stop`` as a list of strings (a lone string is one sequence); None when it is not one,
    or holds more than ``most`` sequences."""
    stop = [value] if isinstance(value, str) else value
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
        return None
    if most is not None and len(stop) > most:
        return None
    return stop


def is_int(value: Any) -> bool:
    """Whether a JSON value is an integer (``true`` is not, though Python says it is)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """Whether a JSON value is a number (``true`` is not)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def item_error(
    exc: WireError, item: BatchItem, fields: Mapping[str, str] | None = None
) -> ItemValidationError:
    """``exc``, raised checking the body encoded from ``item``, as an ItemValidationError naming
    the item's field: one the body took from ``item.extra`` is ``extra.<field>``, one encoded from
    an item parameter goes by the parameter's neutral name (``fields`` maps neutral names to body
    names, as for :func:`chat_body`)."""
    where = exc.param or ""
    root = where.split(".", 1)[0].split("[", 1)[0]
    if root and root in item.extra:
        where = f"extra.{where}"
    elif root and fields:
        neutral = next((n for n, b in fields.items() if b == root and n != b), None)
        if neutral is not None:
            where = neutral + where[len(root) :]
    return ItemValidationError(exc.message, field=where or None)
