"""OpenAI's Responses, legacy completions and moderations batch endpoints, both directions.

The counterpart of :mod:`.codec` (chat completions and embeddings) for the other three kinds of
item (:mod:`polybatch.kinds`): encoding an item as a request body, the API's rules for a body
(the adapter checks what it sends with them, the sandbox answers with them), decoding a
successful response body into a :class:`~polybatch.items.BatchResult`, and the response bodies
the sandbox writes, in the shapes of the installed ``openai`` SDK's types (``Response``,
``Completion``, ``ModerationCreateResponse``).

Usage per endpoint: a Responses ``usage`` is ``input_tokens`` (cache reads and writes included,
reported in ``input_tokens_details.cached_tokens`` / ``cache_write_tokens``), ``output_tokens``
(reasoning included, ``output_tokens_details.reasoning_tokens``); completions report chat's
``prompt_tokens``/``completion_tokens``; moderations report none and cost nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from polybatch import formats
from polybatch.formats import is_int
from polybatch.items import BatchItem, BatchResult, ItemError, Usage
from polybatch.kinds import OPENAI_BODY_FIELDS, Moderation
from polybatch.wire import WireError, as_mapping, message_text

if TYPE_CHECKING:
    from polybatch.sandbox.model import Reply

RESPONSES_URL = "/v1/responses"
COMPLETIONS_URL = "/v1/completions"
MODERATIONS_URL = "/v1/moderations"
#: item kind -> the batch endpoint (and line url) that serves it, for the kinds of this module
KIND_URLS: dict[str, str] = {
    "response": RESPONSES_URL,
    "completion": COMPLETIONS_URL,
    "moderation": MODERATIONS_URL,
}
#: what a moderations body without ``model`` gets
DEFAULT_MODERATION_MODEL = "omni-moderation-latest"
#: the moderation categories the SDK's ``Moderation`` type names
MODERATION_CATEGORIES = (
    *("harassment", "harassment/threatening", "hate", "hate/threatening"),
    *("illicit", "illicit/violent", "self-harm", "self-harm/instructions", "self-harm/intent"),
    *("sexual", "sexual/minors", "violence", "violence/graphic"),
)
REASONING_EFFORTS = frozenset({"none", "minimal", "low", "medium", "high", "xhigh"})
MAX_STOP_SEQUENCES = 4


def kind_of_url(url: str) -> str | None:
    """The item kind a batch endpoint of this module serves (None: not one of these)."""
    path = url.rstrip("/")  # Azure's classic form leaves out the /v1
    return next((k for k, u in KIND_URLS.items() if path in (u, u.removeprefix("/v1"))), None)


# -- client side: encode ------------------------------------------------------------------------
def encode_body(item: BatchItem, model: str) -> dict[str, Any]:
    """The request body of a response, completion or moderation ``item``: ``model``, the item's
    fields under their body names (:data:`polybatch.kinds.OPENAI_BODY_FIELDS`), then ``extra``."""
    body: dict[str, Any] = {"model": model}
    for body_name, neutral in OPENAI_BODY_FIELDS[item.kind].items():
        value = getattr(item, neutral)
        if value is not None:
            body[body_name] = value
    body.update(item.extra)
    return body


# -- both sides: the API's rules ----------------------------------------------------------------
@dataclass
class ResponsesRequest:
    """A validated Responses body, in neutral terms."""

    model: str
    #: (role, text) turns: the instructions as a system turn, then the input
    transcript: list[tuple[str, str]]
    max_tokens: int | None = None
    text_format: dict[str, Any] | None = None
    reasoning: dict[str, Any] | None = None
    tools: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class CompletionRequest:
    """A validated legacy completions body."""

    model: str
    prompt: str
    max_tokens: int | None = None
    stop: list[str] | None = None
    n: int = 1


@dataclass
class ModerationRequest:
    """A validated moderations body: one text per input (image parts count as their url)."""

    model: str
    inputs: list[str]
    images: bool = False


EndpointRequest = ResponsesRequest | CompletionRequest | ModerationRequest


def _bad(param: str, message: str, code: str = "invalid_value") -> WireError:
    return WireError(code, f"Invalid '{param}': {message}", param=param)


def _model(body: Mapping[str, Any], default: str | None = None) -> str:
    model = body.get("model", default)
    if not isinstance(model, str) or not model:
        raise WireError(
            "missing_required_parameter", "Missing required parameter: 'model'.", param="model"
        )
    return model


def _common(body: Mapping[str, Any], tokens_field: str) -> int | None:
    """Checks every generating endpoint shares: no streaming, sampling ranges, the budget."""
    if body.get("stream"):
        raise WireError("invalid_value", "Streaming is not supported in batches.", param="stream")
    for name, hi in (("temperature", 2), ("top_p", 1)):
        value = body.get(name)
        if value is not None and not (formats.is_number(value) and 0 <= value <= hi):
            raise _bad(name, f"expected a number between 0 and {hi}.")
    budget = body.get(tokens_field)
    if budget is not None and (not is_int(budget) or budget < 1):
        raise _bad(tokens_field, "expected an integer >= 1.")
    return budget


def _turn_text(content: Any) -> str:
    # input_text / output_text parts as text; images and files add nothing to the transcript
    if isinstance(content, list):
        parts = [p for p in content if isinstance(p, Mapping)]
        return "\n".join(
            str(p.get("text", "")) for p in parts if p.get("type") in ("input_text", "output_text")
        )
    return message_text(content, sep="\n")


def parse_responses_body(body: Mapping[str, Any]) -> ResponsesRequest:
    """Validate a Responses body the way the API would. Raises WireError (an HTTP 400)."""
    model = _model(body)
    max_tokens = _common(body, "max_output_tokens")
    raw = body.get("input")
    turns: list[tuple[str, str]] = []
    instructions = body.get("instructions")
    if instructions is not None:
        if not isinstance(instructions, str):
            raise _bad("instructions", "expected a string.", "invalid_type")
        turns.append(("system", instructions))
    if isinstance(raw, str) and raw:
        turns.append(("user", raw))
    elif isinstance(raw, list) and raw:
        for i, entry in enumerate(raw):
            if not isinstance(entry, Mapping) or not ("role" in entry or "type" in entry):
                raise _bad(f"input[{i}]", "expected a message or an input item.", "invalid_type")
            if "role" in entry:
                turns.append((str(entry["role"]), _turn_text(entry.get("content"))))
    else:
        raise _bad("input", "expected a non-empty string or array of input items.")
    text = body.get("text")
    fmt = as_mapping(text).get("format") if text is not None else None
    if text is not None and not isinstance(text, Mapping):
        raise _bad("text", "expected an object.", "invalid_type")
    if fmt is not None:
        fmt = as_mapping(fmt)
        if fmt.get("type") not in ("text", "json_object", "json_schema"):
            raise _bad("text.format.type", "expected 'text', 'json_object' or 'json_schema'.")
        if fmt["type"] == "json_schema":
            name = fmt.get("name")
            if not isinstance(name, str) or not formats.SCHEMA_NAME_RE.match(name):
                raise _bad("text.format.name", "json_schema needs a 'name' (at most 64 chars).")
            if not isinstance(fmt.get("schema"), Mapping):
                raise _bad("text.format.schema", "expected an object.", "invalid_type")
    reasoning = body.get("reasoning")
    if reasoning is not None:
        effort = as_mapping(reasoning).get("effort")
        if not isinstance(reasoning, Mapping) or (
            effort is not None and effort not in REASONING_EFFORTS
        ):
            raise _bad(
                "reasoning.effort", f"expected one of {', '.join(sorted(REASONING_EFFORTS))}."
            )
    tools = body.get("tools") or []
    if not isinstance(tools, list) or not all(
        isinstance(t, Mapping) and "type" in t for t in tools
    ):
        raise _bad("tools", "expected an array of tools, each with a 'type'.", "invalid_type")
    return ResponsesRequest(
        model,
        turns,
        max_tokens,
        dict(fmt) if fmt is not None else None,
        dict(reasoning) if reasoning is not None else None,
        [dict(t) for t in tools],
    )


def parse_completions_body(body: Mapping[str, Any]) -> CompletionRequest:
    """Validate a legacy completions body. Raises WireError (an HTTP 400)."""
    model = _model(body)
    max_tokens = _common(body, "max_tokens")
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if not isinstance(prompt, str) or not prompt:
        raise _bad("prompt", "expected a non-empty string.", "missing_required_parameter")
    stop = None
    if body.get("stop") is not None:
        stop = formats.stop_list(body["stop"], most=MAX_STOP_SEQUENCES)
        if stop is None:
            raise _bad("stop", f"expected a string or up to {MAX_STOP_SEQUENCES} strings.")
    seed = body.get("seed")
    if seed is not None and (not is_int(seed) or abs(seed) > formats.INT64_MAX):
        raise _bad("seed", "expected a 64-bit integer.", "invalid_type")
    n = body.get("n", 1)
    if not is_int(n) or not 1 <= n <= 128:
        raise _bad("n", "expected an integer from 1 to 128.")
    return CompletionRequest(model, prompt, max_tokens, stop, n)


def parse_moderations_body(body: Mapping[str, Any]) -> ModerationRequest:
    """Validate a moderations body. Raises WireError (an HTTP 400)."""
    unknown = sorted(set(body) - {"model", "input"})
    if unknown:
        raise WireError(
            "unknown_parameter",
            f"Unrecognized request argument supplied: {unknown[0]}",
            param=unknown[0],
        )
    model = _model(body, DEFAULT_MODERATION_MODEL)
    raw = body.get("input")
    if isinstance(raw, str) and raw:
        return ModerationRequest(model, [raw])
    if isinstance(raw, list) and raw and all(isinstance(t, str) and t for t in raw):
        return ModerationRequest(model, list(raw))
    if isinstance(raw, list) and raw and all(isinstance(p, Mapping) for p in raw):
        texts: list[str] = []
        for i, part in enumerate(raw):
            if part.get("type") == "text" and isinstance(part.get("text"), str):
                texts.append(part["text"])
            elif part.get("type") == "image_url" and isinstance(
                as_mapping(part.get("image_url")).get("url"), str
            ):
                texts.append(str(part["image_url"]["url"]))
            else:
                raise _bad(f"input[{i}]", "expected a 'text' or an 'image_url' part.")
        if any(p.get("type") == "image_url" for p in raw) and not model.startswith("omni-"):
            raise _bad("input", f"model {model!r} takes text only; use omni-moderation-latest.")
        # one multi-modal input: the parts are classified together, one result
        return ModerationRequest(model, ["\n".join(texts)], images=True)
    raise _bad("input", "expected a string, an array of strings or of text/image_url parts.")


def parse_body(url: str, body: Mapping[str, Any]) -> EndpointRequest | None:
    """``body`` validated for the endpoint ``url`` when it is one of this module's (None when
    it is not). Raises WireError."""
    kind = kind_of_url(url)
    if kind == "response":
        return parse_responses_body(body)
    if kind == "completion":
        return parse_completions_body(body)
    if kind == "moderation":
        return parse_moderations_body(body)
    return None


# -- client side: decode ------------------------------------------------------------------------
def responses_usage(raw: Mapping[str, Any] | None) -> Usage:
    """A Responses ``usage`` in disjoint buckets: cache reads and writes out of ``input_tokens``
    (never more than it holds), reasoning informational (already in ``output_tokens``)."""
    raw = raw or {}
    total_in = int(raw.get("input_tokens") or 0)
    details = as_mapping(raw.get("input_tokens_details"))
    cached = min(int(details.get("cached_tokens") or 0), total_in)
    writes = min(int(details.get("cache_write_tokens") or 0), total_in - cached)
    reasoning = as_mapping(raw.get("output_tokens_details")).get("reasoning_tokens")
    return Usage(
        input_tokens=total_in - cached - writes,
        cached_input_tokens=cached,
        cache_write_5m_tokens=writes,
        output_tokens=int(raw.get("output_tokens") or 0),
        reasoning_tokens=int(reasoning or 0),
    )


def response_text(output: Any) -> str | None:
    """The text of a Responses ``output``: its messages' ``output_text`` parts joined (None: the
    model wrote no message, only tool calls or reasoning)."""
    texts = [
        str(part.get("text", ""))
        for entry in (output if isinstance(output, list) else [])
        if as_mapping(entry).get("type") == "message"
        for part in (as_mapping(entry).get("content") or [])
        if as_mapping(part).get("type") == "output_text"
    ]
    return "".join(texts) if texts else None


def response_result(body: dict[str, Any], common: dict[str, Any]) -> BatchResult:
    """A Responses body: ``completed`` succeeds (finish ``stop``), ``incomplete`` succeeds with its
    reason (``max_output_tokens`` reads as ``length``), ``failed`` is an error."""
    status = body.get("status")
    usage = responses_usage(as_mapping(body.get("usage")))
    if status == "failed":
        err = as_mapping(body.get("error"))
        error = ItemError(
            code=str(err.get("code") or "response_failed"),
            message=str(err.get("message") or "the response failed"),
            retryable=err.get("code") == "server_error",
        )
        return BatchResult(status="errored", error=error, usage=usage, response=body, **common)
    finish = "stop"
    if status == "incomplete":
        reason = str(as_mapping(body.get("incomplete_details")).get("reason") or "incomplete")
        finish = "length" if reason == "max_output_tokens" else reason
    return BatchResult(
        status="succeeded",
        text=response_text(body.get("output")),
        finish_reason=finish,
        usage=usage,
        model=body.get("model"),
        response=body,
        **common,
    )


def completion_result(body: dict[str, Any], common: dict[str, Any]) -> BatchResult:
    """A ``text_completion`` body: the first choice's text; chat's usage shape."""
    choices = body.get("choices")
    choice = as_mapping(choices[0]) if isinstance(choices, list) and choices else {}
    text = choice.get("text")
    return BatchResult(
        status="succeeded",
        text=None if text is None else str(text),
        finish_reason=choice.get("finish_reason"),
        usage=formats.usage(as_mapping(body.get("usage"))),
        model=body.get("model"),
        response=body,
        **common,
    )


def moderation_result(body: dict[str, Any], common: dict[str, Any]) -> BatchResult:
    """A moderations body: the first result as :class:`~polybatch.kinds.Moderation` (an item is
    one input); no usage (moderations are free)."""
    results = body.get("results")
    first = as_mapping(results[0]) if isinstance(results, list) and results else {}
    verdict = Moderation.model_validate(
        {
            "flagged": bool(first.get("flagged")),
            "categories": first.get("categories") or {},
            "category_scores": first.get("category_scores") or {},
            "category_applied_input_types": first.get("category_applied_input_types"),
        }
    )
    return BatchResult(
        status="succeeded", moderation=verdict, model=body.get("model"), response=body, **common
    )


def decode_success(body: dict[str, Any], common: dict[str, Any]) -> BatchResult | None:
    """A 2xx body of one of this module's endpoints, decoded (None: the body is not one)."""
    obj = body.get("object")
    if obj == "response":
        return response_result(body, common)
    if obj == "text_completion":
        return completion_result(body, common)
    if "results" in body and "choices" not in body:
        return moderation_result(body, common)
    return None


# -- sandbox side: response bodies --------------------------------------------------------------
def response_object(
    *,
    response_id: str,
    created: int,
    request: ResponsesRequest,
    text: str,
    finish_reason: str,
    input_tokens: int,
    output_tokens: int,
    cached_tokens: int = 0,
    reasoning_tokens: int = 0,
) -> dict[str, Any]:
    """A ``response`` object (the SDK's ``Response``): a reasoning item when reasoning was
    asked for, one assistant message; ``output_tokens`` includes ``reasoning_tokens``."""
    incomplete = finish_reason == "length"
    output: list[dict[str, Any]] = []
    if request.reasoning is not None:
        output.append({"id": f"rs_{response_id}", "type": "reasoning", "summary": []})
    output.append(
        {
            "id": f"msg_{response_id}",
            "type": "message",
            "role": "assistant",
            "status": "incomplete" if incomplete else "completed",
            "content": [{"type": "output_text", "text": text, "annotations": []}],
        }
    )
    return {
        "id": f"resp_{response_id}",
        "object": "response",
        "created_at": created,
        "status": "incomplete" if incomplete else "completed",
        "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
        "error": None,
        "model": request.model,
        "output": output,
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": request.tools,
        "max_output_tokens": request.max_tokens,
        "reasoning": request.reasoning,
        "text": {"format": request.text_format or {"type": "text"}},
        "usage": {
            "input_tokens": input_tokens,
            "input_tokens_details": {"cached_tokens": cached_tokens, "cache_write_tokens": 0},
            "output_tokens": output_tokens,
            "output_tokens_details": {"reasoning_tokens": reasoning_tokens},
            "total_tokens": input_tokens + output_tokens,
        },
    }


def text_completion(
    request: CompletionRequest, completion_id: str, created: int, reply: Reply, n_prompt: int
) -> dict[str, Any]:
    """A ``text_completion`` object (the SDK's ``Completion``): ``request.n`` choices of the
    synthetic ``reply`` (its text, tokens and finish reason)."""
    texts = [reply.text] * request.n
    finish_reason, model = reply.finish_reason, request.model
    prompt_tokens, completion_tokens = n_prompt, reply.completion_tokens * request.n
    return {
        "id": f"cmpl-{completion_id}",
        "object": "text_completion",
        "created": created,
        "model": model,
        "choices": [
            {"index": i, "text": t, "finish_reason": finish_reason, "logprobs": None}
            for i, t in enumerate(texts)
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def moderation_response(
    *, moderation_id: str, model: str, scores: list[dict[str, float]], images: bool = False
) -> dict[str, Any]:
    """A moderations response (the SDK's ``ModerationCreateResponse``): one result per input,
    a category flagged when its score is 0.5 or more."""
    applied = ["text", "image"] if images else ["text"]
    return {
        "id": f"modr-{moderation_id}",
        "model": model,
        "results": [
            {
                "flagged": any(v >= 0.5 for v in s.values()),
                "categories": {c: v >= 0.5 for c, v in s.items()},
                "category_scores": s,
                "category_applied_input_types": {c: applied for c in s},
            }
            for s in scores
        ],
    }
