"""The Vertex AI batch-prediction wire format: what differs from the Gemini Developer API's.

Vertex and the Gemini Developer API share ``GenerateContentRequest``, its usage metadata and the
``JOB_STATE_*`` names, so the request encoding, the response decoding and the state table are
:mod:`polybatch_gemini.codec`'s, used as they are. What is Vertex's own:

- Input lines are ``{"key": wire id, "request": GenerateContentRequest}`` (Gemini's
  :func:`~polybatch_gemini.codec.encode_line`). Vertex's Gemini input is documented as
  ``{"request": ...}`` lines; other top-level fields are carried into the output row, which is
  how results are joined back (output order is not input order). Source: [src] batchling
  ``providers/vertex.py`` (wheel 0.1.0a3) sends the custom id as ``key`` and reads it back.
- Output rows, in ``predictions*.jsonl`` (and ``errors*.jsonl``) under the job's
  ``outputInfo.gcsOutputDirectory``: ``{key, request, response, status, processed_time}``, where
  ``status`` is ``""`` on success and otherwise a text such as
  ``'Bad Request: {"error": {"code": 400, "message": ..., "status": "INVALID_ARGUMENT"}}'``
  (the Vertex batch-prediction docs' example; an object is accepted too). Sources: [src] batchling
  as above, BerriAI/litellm ``llms/vertex_ai/batches/transformation.py``; [docs]
  docs.cloud.google.com/vertex-ai/generative-ai/docs/multimodal/batch-prediction-from-cloud-storage.
- Vertex keeps no per-job tags but ``displayName``: Gemini's :func:`display_name` format is used.
- Cloud Storage URIs: :func:`split_gs`, :func:`gs_uri`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from polybatch import wire
from polybatch.items import BatchResult, ItemError, ResultStatus
from polybatch.providers import BatchState
from polybatch_gemini import codec as gemini

PROVIDER = "vertex"
#: reused as they are (see the module docstring)
encode_line = gemini.encode_line
build_request = gemini.build_request
batch_state = gemini.batch_state
display_name = gemini.display_name
parse_display_name = gemini.parse_display_name
check_request = gemini.check_request
strip_model = gemini.strip_model

#: neutral states -> the ``JOB_STATE_*`` a batchPredictionJob reports (what the sandbox answers)
REPORTED_STATES: dict[BatchState, str] = {
    "validating": "JOB_STATE_PENDING",
    "in_progress": "JOB_STATE_RUNNING",
    "finalizing": "JOB_STATE_RUNNING",
    "cancelling": "JOB_STATE_CANCELLING",
    "completed": "JOB_STATE_SUCCEEDED",
    "failed": "JOB_STATE_FAILED",
    "cancelled": "JOB_STATE_CANCELLED",
    "expired": "JOB_STATE_EXPIRED",
}
#: the per-request outcome given to rows a job never ran, by how the job ended
LEFTOVER: dict[str, tuple[ResultStatus, ItemError]] = {
    "cancelled": (
        "cancelled",
        ItemError(
            code="CANCELLED",
            message="the job was cancelled before this request ran",
            status_code=499,
            retryable=True,
        ),
    ),
    "expired": (
        "expired",
        ItemError(
            code="DEADLINE_EXCEEDED",
            message="the job expired before this request ran",
            status_code=504,
            retryable=True,
        ),
    ),
}
_GS_RE = re.compile(r"^gs://([^/]+)/?(.*)$")


def split_gs(uri: str) -> tuple[str, str]:
    """``gs://bucket/some/prefix`` -> ``("bucket", "some/prefix")``; raises ValueError."""
    m = _GS_RE.match(uri.strip())
    if m is None or not m.group(1):
        raise ValueError(f"{uri!r} is not a Cloud Storage URI (gs://bucket/prefix)")
    return m.group(1), m.group(2).strip("/")


def gs_uri(bucket: str, name: str) -> str:
    """The ``gs://`` URI of an object (or a prefix)."""
    return f"gs://{bucket}/{name}"


def parse_status(status: Any) -> dict[str, Any] | None:
    """A row's ``status`` as a google.rpc.Status-like object, or None for success (``""``).

    A text status embeds Google's error envelope after its reason phrase; one that does not
    keeps the whole text as the message.
    """
    if not status:
        return None
    if isinstance(status, Mapping):
        inner = status.get("error", status)
        return dict(inner) if isinstance(inner, Mapping) else {"message": str(status)}
    text = str(status)
    start = text.find("{")
    if start >= 0:
        try:
            envelope = json.loads(text[start:])
        except ValueError:
            envelope = None
        if isinstance(envelope, Mapping):
            inner = envelope.get("error", envelope)
            if isinstance(inner, Mapping) and (inner.get("code") or inner.get("status")):
                return dict(inner)
    reason = text[:start].rstrip(": ") if start > 0 else text
    return {"code": _REASON_CODES.get(reason.lower(), 500), "message": text}


#: reason phrases a text status may start with -> the HTTP status they stand for
_REASON_CODES = {
    "bad request": 400,
    "unauthorized": 401,
    "forbidden": 403,
    "not found": 404,
    "too many requests": 429,
    "internal server error": 500,
    "service unavailable": 503,
    "gateway timeout": 504,
}


def row_key(row: Mapping[str, Any]) -> str | None:
    """The custom id an output row carries, or None."""
    key = row.get("key")
    return None if key is None else str(key)


def decode_row(
    row: Mapping[str, Any],
    *,
    batch_id: str | None = None,
    model: str | None = None,
    expired: bool = False,
) -> BatchResult:
    """One output row -> BatchResult (Gemini's decoding, under this provider's name)."""
    line: dict[str, Any] = {"key": row_key(row) or ""}
    error = parse_status(row.get("status"))
    if error is not None:
        line["error"] = error
    elif isinstance(row.get("response"), Mapping):
        line["response"] = row["response"]
    result = gemini.decode_result(line, batch_id=batch_id, model=model, expired=expired)
    return result.model_copy(update={"provider": PROVIDER})


def leftover_result(key: str, state: str, *, batch_id: str, message: str | None) -> BatchResult:
    """The result of a row an ended job never ran (``state``: how the job ended)."""
    status, error = LEFTOVER.get(
        state,
        (
            "errored",
            ItemError(code="batch_failed", message=message or "the batch prediction job failed"),
        ),
    )
    return BatchResult(
        custom_id=key, status=status, error=error, provider=PROVIDER, batch_id=batch_id
    )


def input_entries(data: bytes) -> tuple[list[dict[str, Any]], str | None]:
    """The ``{key, request}`` entries of an input file, and why it is malformed (None if not).

    A line without a ``key`` is keyed by its index, as Vertex would leave it unkeyed.
    """
    entries: list[dict[str, Any]] = []
    for n, raw in enumerate(data.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            line = wire.load_object(raw)
        except wire.WireError as exc:
            return entries, f"line {n}: {exc.message}"
        if not isinstance(line.get("request"), Mapping):
            return entries, f"line {n}: a line needs a 'request' object"
        entries.append({"key": str(line.get("key", n - 1)), "request": line["request"]})
    return entries, None


def output_row(key: str, request: Mapping[str, Any], outcome: Mapping[str, Any]) -> dict[str, Any]:
    """The sandbox's output row for a request's Gemini-style outcome (``response``|``error``)."""
    row: dict[str, Any] = {"key": key, "request": dict(request)}
    error = outcome.get("error")
    if isinstance(error, Mapping):
        code = int(gemini.HTTP_STATUS.get(str(error.get("status")), 500))
        envelope = gemini.error_body(code, str(error.get("status")), str(error.get("message")))
        row["status"] = f"{_REASON.get(code, 'Error')}: {json.dumps(envelope)}"
        row["response"] = None
    else:
        row["status"] = ""
        row["response"] = outcome.get("response")
    return row


_REASON = {code: phrase.title() for phrase, code in _REASON_CODES.items()}
