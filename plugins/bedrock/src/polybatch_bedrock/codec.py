"""The AWS Bedrock batch inference wire format, in one place: used by the client and the sandbox.

Sources (checked 2026-12-02): botocore's service model ``bedrock/2023-04-20`` (operations, fields,
the status enum, name/token/URI patterns: where the notes below and the SDK differ, the SDK is
followed); the Bedrock user guide pages ``batch-inference-data`` (input lines), ``batch-inference-
results`` (output lines, ``manifest.json.out``) and the ``statusEquals`` documentation of
``ListModelInvocationJobs`` (what each status means).

Input: one JSONL file per job, lines ``{"recordId", "modelInput"}``. ``modelInput`` is the body of
the model family's InvokeModel request, or the Converse request when the job's
``modelInvocationType`` is ``Converse`` (:func:`family`):

- ``anthropic`` (``anthropic.claude-*``): the Anthropic Messages body without ``model``, plus
  ``anthropic_version: "bedrock-2023-05-31"``; built by the Anthropic plugin's codec
  (:func:`polybatch_anthropic.codec.build_params`: system hoisting, turn merging, images, JSON modes,
  ``max_tokens`` required), reused rather than copied. Structured outputs (``output_config``) on
  Bedrock are UNVERIFIED (newer docs say both invocation types support them).
- ``nova`` (``amazon.nova-*``): ``{"schemaVersion": "messages-v1", "system": [{"text"}],
  "messages": [{"role", "content": [{"text"}]}], "inferenceConfig": {...}}``.
- ``llama`` (``meta.llama*``): ``{"prompt", "max_gen_len", "temperature", "top_p"}``, the prompt in
  the Llama 3 chat template.
- ``converse`` (any model, ``model_invocation_type = "Converse"``): the Converse body (``system``,
  ``messages``, ``inferenceConfig``). Tool use is not available with Converse batch jobs (docs).

Only text content is encoded for nova, llama and converse (images are refused, not dropped); ``seed``
is refused everywhere (no family takes one); ``response_format`` JSON modes only for anthropic.

Record ids: the older docs ask for an alphanumeric ``recordId`` (the example ``CALL0000001``), the
newest say "string"; :func:`wire_custom_id` keeps to the narrow rule.

Output: ``{output prefix}/{job id}/<input file>.out`` with lines ``{"recordId", "modelInput",
"modelOutput"}`` or ``{..., "error": {"errorCode", "errorMessage"}}`` in no guaranteed order (the
docs contradict each other: join on recordId), plus ``manifest.json.out`` (record and token counts).
The family of an output body is read from its shape (:func:`decode_record`).

Statuses (:data:`STATUS`, every value of botocore's ``ModelInvocationJobStatus``): ``Submitted``,
``Validating`` and ``Scheduled`` (validated, queued) -> validating; ``InProgress`` -> in_progress;
``Stopping`` -> cancelling; ``Stopped`` -> cancelled; ``Completed`` -> completed; ``Failed`` ->
failed; ``Expired`` (scheduled but never started within the timeout) and ``PartiallyCompleted``
("not all of your records could be processed in time") -> expired. The sandbox reports them
through :func:`reported_status`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any, Literal

from polybatch import wire
from polybatch.errors import ItemValidationError
from polybatch.items import BatchItem, BatchResult, ItemError, Usage
from polybatch.providers import META_CHUNK, META_JOB, BatchState
from polybatch.wire import invalid_item
from polybatch_anthropic import codec as claude

PROVIDER = "bedrock"
Family = Literal["anthropic", "nova", "llama", "converse"]
FAMILIES: tuple[Family, ...] = ("anthropic", "nova", "llama", "converse")
INVOCATION_TYPES = ("InvokeModel", "Converse")
#: the ``anthropic_version`` Bedrock's Claude bodies carry
ANTHROPIC_VERSION = "bedrock-2023-05-31"
#: max_tokens sent when an item gives none (Claude requires one; the others get it for a bound)
DEFAULT_MAX_TOKENS = claude.DEFAULT_MAX_TOKENS
NO_EMBEDDINGS = "Bedrock batch inference is used here for text generation only (no embeddings)"

#: every ``ModelInvocationJobStatus`` (botocore) -> the neutral state (see the module docstring)
STATUS: dict[str, BatchState] = {
    "Submitted": "validating",
    "Validating": "validating",
    "Scheduled": "validating",
    "InProgress": "in_progress",
    "Stopping": "cancelling",
    "Stopped": "cancelled",
    "Completed": "completed",
    "PartiallyCompleted": "expired",
    "Failed": "failed",
    "Expired": "expired",
}
#: statuses whose unprocessed records end as ``expired`` / ``canceled`` results
LEFTOVER_STATUS: dict[str, Literal["expired", "cancelled"]] = {
    "PartiallyCompleted": "expired",
    "Expired": "expired",
    "Stopped": "cancelled",
}


def batch_state(status: str | None) -> BatchState:
    """A job status in neutral terms (an unknown one is taken as still validating)."""
    return STATUS.get(status or "", "validating")


def reported_status(state: BatchState, *, processed: int, phase: float = 1.0) -> str:
    """The status a job in the neutral ``state`` reports (the sandbox's side of :data:`STATUS`).

    ``phase`` (0-1) is how far a validating job is through validation: Submitted, then
    Validating, then Scheduled; an expired job that ran some records is PartiallyCompleted.
    """
    if state == "validating":
        return "Submitted" if phase < 1 / 3 else "Validating" if phase < 2 / 3 else "Scheduled"
    if state == "expired":
        return "PartiallyCompleted" if processed else "Expired"
    return {
        "in_progress": "InProgress",
        "finalizing": "InProgress",
        "cancelling": "Stopping",
        "cancelled": "Stopped",
        "completed": "Completed",
        "failed": "Failed",
    }[state]


# -- names, tokens, ids -----------------------------------------------------------------------
#: botocore's ``ModelInvocationJobName`` pattern (max 63 characters)
JOB_NAME_RE = re.compile(r"^[a-zA-Z0-9]{1,63}(-*[a-zA-Z0-9\+\-\.]){0,63}$")
#: botocore's ``ModelInvocationIdempotencyToken`` pattern
TOKEN_RE = re.compile(r"^[a-zA-Z0-9]{1,256}(-*[a-zA-Z0-9]){0,256}$")
#: the record id rule kept to (alphanumeric, as the older docs ask)
RECORD_ID_RE = re.compile(r"^[A-Za-z0-9]{1,64}$")
#: prefix of mapped record ids; user ids starting with it are mapped too
MAPPED_PREFIX = "pb"
_HASH_HEX = 40
_JOB_ARN_RE = re.compile(r"model-invocation-job/([A-Za-z0-9]+)$")


def job_name(metadata: Mapping[str, str]) -> str:
    """The job name carrying the polybatch job and chunk (what :meth:`find_batch` searches):
    ``{job}-c{chunk}``, or ``pb-<hash>`` when that breaks the name rule."""
    job, chunk = metadata.get(META_JOB, ""), metadata.get(META_CHUNK, "")
    name = f"{job}-c{chunk}"
    if job and chunk and len(name) <= 63 and JOB_NAME_RE.match(name):
        return name
    return "pb-" + wire.short_hash(job, chunk, length=40)


_JOB_NAME_TAGS = re.compile(r"^(.+)-c(\d+)$")


def name_matches(name: str, metadata: Mapping[str, str]) -> bool:
    """Whether a job named ``name`` carries all of ``metadata`` (job and/or chunk)."""
    if META_JOB in metadata and META_CHUNK in metadata:
        return name == job_name(metadata)
    m = _JOB_NAME_TAGS.match(name)
    if m is None:
        return False
    tags = {META_JOB: m.group(1), META_CHUNK: m.group(2)}
    return all(tags.get(k) == v for k, v in metadata.items())


def request_token(metadata: Mapping[str, str], model: str, input_uri: str) -> str:
    """``clientRequestToken``: a pure function of the job, chunk, model and input, so a create
    sent again after a lost answer names the same Bedrock job instead of billing a second one."""
    digest = wire.short_hash(
        metadata.get(META_JOB), metadata.get(META_CHUNK), model, input_uri, length=48
    )
    return f"polybatch-{digest}"


def job_id(arn_or_id: str) -> str:
    """The job id (the ARN's last segment; an id is returned as it is)."""
    m = _JOB_ARN_RE.search(arn_or_id)
    return m.group(1) if m else arn_or_id


def wire_custom_id(custom_id: str) -> str:
    """The ``recordId`` for ``custom_id``: alphanumeric ids up to 64 characters pass unchanged
    unless they start with :data:`MAPPED_PREFIX`; others become ``pb`` + 40 hex digits of their
    sha256 (a mapped id never equals an id sent unchanged)."""
    if RECORD_ID_RE.match(custom_id) and not custom_id.startswith(MAPPED_PREFIX):
        return custom_id
    return MAPPED_PREFIX + hashlib.sha256(custom_id.encode("utf-8")).hexdigest()[:_HASH_HEX]


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> ``("bucket", "some/prefix")``; ValueError otherwise."""
    m = re.match(r"^s3://([a-z0-9][-.a-z0-9]{1,61}[a-z0-9])(?:/(.*))?$", uri)
    if not m:
        raise ValueError(f"{uri!r} is not an S3 URI like s3://bucket/prefix/")
    return m.group(1), m.group(2) or ""


def folder(prefix: str) -> str:
    """An S3 key prefix as a folder (``""`` or ending in ``/``)."""
    return prefix if not prefix or prefix.endswith("/") else prefix + "/"


# -- model families ---------------------------------------------------------------------------
_GEO = re.compile(r"^(?:us|us-gov|eu|apac|ap|jp|au|ca|global)\.")


def base_model_id(model: str) -> str:
    """A model id without an ARN prefix or a cross-region inference profile's geography."""
    model = model.rsplit("/", 1)[-1] if model.startswith("arn:") else model
    return _GEO.sub("", model)


def family(
    model: str, *, invocation_type: str = "InvokeModel", override: str | None = None
) -> Family:
    """The body shape sent for ``model``: Converse for every model when the job's invocation type
    is Converse, else the InvokeModel body of its family (``override`` names it for ids that do not
    tell, such as application inference profile ARNs). ValueError for a family not supported."""
    if invocation_type == "Converse":
        return "converse"
    if override:
        if override not in FAMILIES:
            raise ValueError(f"model_family {override!r} is not one of {', '.join(FAMILIES)}")
        return override
    base = base_model_id(model)
    if base.startswith("anthropic."):
        return "anthropic"
    if base.startswith("amazon.nova"):
        return "nova"
    if base.startswith("meta.llama"):
        return "llama"
    raise ValueError(
        f"model {model!r}: polybatch's bedrock codec writes InvokeModel bodies for Anthropic Claude, "
        'Amazon Nova and Meta Llama; for other models set model_invocation_type = "Converse" '
        "(or model_family for an inference profile ARN)"
    )


# -- encoding ---------------------------------------------------------------------------------
def _texts(item: BatchItem) -> tuple[list[str], list[tuple[str, str]]]:
    """The system texts and the alternating (role, text) turns of a text-only item (consecutive
    turns of one role are merged, as the Claude codec does)."""
    system: list[str] = []
    turns: list[tuple[str, str]] = []
    for i, message in enumerate(item.messages):
        for field, kind, _part in wire.content_parts(item, i, message):
            if kind != "text":
                raise invalid_item(
                    item, f"{field}.type", f"content part type {kind!r}: only text is encoded here"
                )
        text = message.text
        if message.role == "system":
            system.append(text)
        elif turns and turns[-1][0] == message.role:
            turns[-1] = (message.role, turns[-1][1] + "\n\n" + text)
        elif not turns and message.role != "user":
            raise invalid_item(
                item, f"messages[{i}].role", "the first non-system turn must be 'user'"
            )
        else:
            turns.append((message.role, text))
    if not turns:
        raise invalid_item(item, "messages", "at least one user message is needed")
    return system, turns


def _common_checks(item: BatchItem, fam: Family) -> None:
    if item.kind == "embedding":
        raise invalid_item(item, "kind", NO_EMBEDDINGS)
    if item.seed is not None:
        raise invalid_item(
            item, "seed", "Bedrock models take no 'seed'; remove it for this provider"
        )
    if item.extra.get("stream"):
        raise invalid_item(item, "extra.stream", "batch requests cannot stream")
    fmt = item.response_format
    if fam != "anthropic" and fmt is not None and fmt.get("type") != "text":
        raise invalid_item(
            item, "response_format", f"JSON modes are encoded for Claude only, not for {fam}"
        )


def _stops(item: BatchItem) -> list[str] | None:
    if item.stop is None:
        return None
    return [item.stop] if isinstance(item.stop, str) else list(item.stop)


def _messages_body(item: BatchItem, max_tokens: int, *, nova: bool) -> dict[str, Any]:
    system, turns = _texts(item)
    body: dict[str, Any] = {"schemaVersion": "messages-v1"} if nova else {}
    if system:
        body["system"] = [{"text": "\n\n".join(system)}]
    body["messages"] = [{"role": r, "content": [{"text": t}]} for r, t in turns]
    config: dict[str, Any] = {"maxTokens": max_tokens}
    if item.temperature is not None:
        config["temperature"] = item.temperature
    if item.top_p is not None:
        config["topP"] = item.top_p
    stops = _stops(item)
    if stops:
        config["stopSequences"] = stops
    body["inferenceConfig"] = config
    return body


LLAMA_BEGIN = "<|begin_of_text|>"


def llama_prompt(system: list[str], turns: list[tuple[str, str]]) -> str:
    """The Llama 3 chat template, ending with the assistant header (the model's turn)."""

    def turn(role: str, text: str) -> str:
        return f"<|start_header_id|>{role}<|end_header_id|>\n\n{text}<|eot_id|>"

    parts = [LLAMA_BEGIN]
    if system:
        parts.append(turn("system", "\n\n".join(system)))
    parts += [turn(r, t) for r, t in turns]
    parts.append("<|start_header_id|>assistant<|end_header_id|>\n\n")
    return "".join(parts)


_LLAMA_TURN = re.compile(
    r"<\|start_header_id\|>(system|user|assistant)<\|end_header_id\|>\n\n(.*?)<\|eot_id\|>", re.S
)


def llama_turns(prompt: str) -> list[tuple[str, str]]:
    """The (role, text) turns of a Llama 3 chat-template prompt (the sandbox reads them back)."""
    return [(m.group(1), m.group(2)) for m in _LLAMA_TURN.finditer(prompt)]


def model_input(
    item: BatchItem, model: str, fam: Family, *, default_max_tokens: int = DEFAULT_MAX_TOKENS
) -> dict[str, Any]:
    """The ``modelInput`` of ``item`` in ``fam``'s shape; ItemValidationError naming the field."""
    _common_checks(item, fam)
    max_tokens = item.max_tokens if item.max_tokens is not None else default_max_tokens
    if fam == "anthropic":
        params = claude.build_params(item, model, default_max_tokens=default_max_tokens)
        params.pop("model", None)
        return {"anthropic_version": ANTHROPIC_VERSION, **params}
    if fam == "llama":
        if item.stop is not None:
            raise invalid_item(item, "stop", "Llama InvokeModel bodies take no stop sequences")
        system, turns = _texts(item)
        body: dict[str, Any] = {"prompt": llama_prompt(system, turns), "max_gen_len": max_tokens}
        if item.temperature is not None:
            body["temperature"] = item.temperature
        if item.top_p is not None:
            body["top_p"] = item.top_p
    else:
        body = _messages_body(item, max_tokens, nova=fam == "nova")
    body.update(item.extra)  # provider-specific fields win: the user's verbatim choice
    return body


def encode_record(
    item: BatchItem, model: str, fam: Family, *, default_max_tokens: int = DEFAULT_MAX_TOKENS
) -> dict[str, Any]:
    """One input line: ``{"recordId": wire id, "modelInput": {...}}``."""
    if item.custom_id is None:
        raise ItemValidationError("item has no custom_id (plan the job first)", field="custom_id")
    return {
        "recordId": wire_custom_id(item.custom_id),
        "modelInput": model_input(item, model, fam, default_max_tokens=default_max_tokens),
    }


# -- decoding ---------------------------------------------------------------------------------
#: Converse / Nova ``stopReason`` -> neutral finish_reason
STOP_REASONS: dict[str, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "content_filtered": "content_filter",
    "guardrail_intervened": "content_filter",
}
#: Llama ``stop_reason`` -> neutral finish_reason
LLAMA_STOP: dict[str, str] = {"stop": "stop", "length": "length"}


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def converse_usage(raw: Mapping[str, Any]) -> Usage:
    """Converse / Nova usage (input excludes cache reads and writes: disjoint buckets).

    Converse's ``cacheDetails`` (``[{ttl: "5m" | "1h", inputTokens}]``, botocore's
    ``TokenUsage``) splits the writes by TTL; writes it does not account for are 5-minute ones.
    """
    writes = _int(raw.get("cacheWriteInputTokens") or raw.get("cacheWriteInputTokenCount"))
    by_ttl = {"5m": 0, "1h": 0}
    for detail in raw.get("cacheDetails") or []:
        entry = wire.as_mapping(detail)
        ttl = str(entry.get("ttl") or "5m")
        by_ttl["1h" if ttl == "1h" else "5m"] += _int(entry.get("inputTokens"))
    writes_1h = min(by_ttl["1h"], writes) if writes else by_ttl["1h"]
    return Usage(
        input_tokens=_int(raw.get("inputTokens")),
        cached_input_tokens=_int(
            raw.get("cacheReadInputTokens") or raw.get("cacheReadInputTokenCount")
        ),
        cache_write_5m_tokens=max(writes - writes_1h, by_ttl["5m"]),
        cache_write_1h_tokens=writes_1h,
        output_tokens=_int(raw.get("outputTokens")),
    )


def record_error(error: Mapping[str, Any] | Any) -> ItemError:
    """A record's ``error`` object: ``errorCode`` is an HTTP status (``400``), retryable by it."""
    err = wire.as_mapping(error)
    code = err.get("errorCode")
    status = _int(code) if str(code or "").isdigit() else None
    return ItemError(
        code=str(code if code is not None else "record_error"),
        message=str(err.get("errorMessage") or error or "the record failed"),
        status_code=status,
        retryable=wire.retryable_status(status) if status else False,
    )


def decode_record(
    line: bytes | str | Mapping[str, Any], *, batch_id: str | None, model: str | None
) -> BatchResult:
    """One output line -> BatchResult (``custom_id`` is the recordId; ``model`` the job's model id,
    which is what prices are keyed on). Raises WireError for a line without a recordId."""
    obj: Mapping[str, Any] = line if isinstance(line, Mapping) else wire.load_object(line)
    rid = obj.get("recordId")
    if not isinstance(rid, str) or not rid:
        raise wire.WireError("invalid_output_line", "output line has no recordId")
    common: dict[str, Any] = {"custom_id": rid, "provider": PROVIDER, "batch_id": batch_id}
    if obj.get("error") is not None:
        return BatchResult(status="errored", error=record_error(obj["error"]), **common)
    out = wire.as_mapping(obj.get("modelOutput"))
    if out.get("type") == "message" or ("stop_reason" in out and "content" in out):
        # a Claude body: the Anthropic codec decodes it (text, JSON tool, finish, usage)
        decoded = claude.decode_result(
            {"custom_id": rid, "result": {"type": "succeeded", "message": out}}
        )
        return decoded.model_copy(update={**common, "model": model or decoded.model})
    if "output" in out:
        message = wire.as_mapping(wire.as_mapping(out.get("output")).get("message"))
        text = "".join(
            str(b.get("text", ""))
            for b in message.get("content") or []
            if isinstance(b, Mapping) and "text" in b
        )
        reason = out.get("stopReason")
        return BatchResult(
            status="succeeded",
            text=text,
            finish_reason=STOP_REASONS.get(str(reason), str(reason)) if reason else None,
            usage=converse_usage(wire.as_mapping(out.get("usage"))),
            model=model,
            response=dict(out),
            **common,
        )
    if "generation" in out:
        reason = out.get("stop_reason")
        return BatchResult(
            status="succeeded",
            text=str(out.get("generation") or ""),
            finish_reason=LLAMA_STOP.get(str(reason), str(reason)) if reason else None,
            usage=Usage(
                input_tokens=_int(out.get("prompt_token_count")),
                output_tokens=_int(out.get("generation_token_count")),
            ),
            model=model,
            response=dict(out),
            **common,
        )
    return BatchResult(
        status="errored",
        error=ItemError(code="unknown_output", message="modelOutput has no shape polybatch knows"),
        response=dict(out),
        **common,
    )


def leftover(
    record_id: str, kind: Literal["expired", "cancelled"], *, batch_id: str | None
) -> BatchResult:
    """The result of a record the job never processed (expired in time, or stopped)."""
    why = "the job stopped" if kind == "cancelled" else "the job's timeout passed"
    return BatchResult(
        custom_id=record_id,
        provider=PROVIDER,
        batch_id=batch_id,
        status=kind,
        error=ItemError(
            code=kind, message=f"{why} before this record was processed", retryable=True
        ),
    )


def input_record_ids(data: bytes) -> list[str]:
    """The recordIds of an input file (to account for the records a job never processed)."""
    ids = []
    for raw in wire.iter_jsonl([data]):
        rid = json.loads(raw).get("recordId")
        if isinstance(rid, str):
            ids.append(rid)
    return ids


# -- the sandbox's side of the wire -----------------------------------------------------------
def check_converse(body: Mapping[str, Any], *, nova: bool) -> str | None:
    """Why a Converse / Nova body would be refused (None when it is acceptable)."""
    if nova and body.get("schemaVersion") not in (None, "messages-v1"):
        return "schemaVersion: expected messages-v1"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages: a non-empty list is required"
    for i, m in enumerate(messages):
        if not isinstance(m, Mapping) or m.get("role") not in ("user", "assistant"):
            return f"messages.{i}.role: must be user or assistant"
        content = m.get("content")
        if not isinstance(content, list) or not content:
            return f"messages.{i}.content: a non-empty list of blocks is required"
    if messages[0].get("role") != "user":
        return "messages: the first message must be from the user"
    config = wire.as_mapping(body.get("inferenceConfig"))
    max_tokens = config.get("maxTokens")
    if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 1):
        return "inferenceConfig.maxTokens: must be a positive integer"
    return None


def converse_turns(body: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The (role, text) turns of a valid Converse / Nova body, the system prompt first."""

    def text(blocks: Any) -> str:
        return "\n".join(
            str(b.get("text", "")) for b in blocks or [] if isinstance(b, Mapping) and "text" in b
        )

    turns = [("system", text(body["system"]))] if body.get("system") else []
    return turns + [(m["role"], text(m["content"])) for m in body["messages"]]


def check_model_input(fam: Family, body: Any, model: str) -> str | None:
    """Why a record's ``modelInput`` would fail (its errorMessage), or None."""
    if not isinstance(body, Mapping):
        return "modelInput: must be a JSON object"
    if fam == "anthropic":
        if body.get("anthropic_version") != ANTHROPIC_VERSION:
            return f"anthropic_version: must be {ANTHROPIC_VERSION!r}"
        params = {k: v for k, v in body.items() if k != "anthropic_version"}
        if "model" in params:
            return "model: Extra inputs are not permitted (the job names the model)"
        return claude.check_params({**params, "model": model})
    if fam == "llama":
        prompt = body.get("prompt")
        if not isinstance(prompt, str) or not llama_turns(prompt):
            return "prompt: a Llama chat-template prompt string is required"
        return None
    return check_converse(body, nova=fam == "nova")
