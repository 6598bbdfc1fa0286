"""Gemini's embedding batches (``batches.create_embeddings``), both sides of the wire.

The SDK (google-genai 3.6, ``batches.py``) creates them with ``POST models/{m}:asyncBatchEmbedContent``
and a body ``{"batch": {"inputConfig": {"file_name": "files/..."}, "displayName"}}``; an input
file's lines are ``{"key", "request": {"content": {"parts": [{"text"}]}, "output_dimensionality"}}``
(the Google Developers Blog, 2025-09-10: "Gemini Batch API now supports embeddings"). Inline embed
requests carry no per-request key (the SDK's ``EmbedContentBatch`` is contents plus one config), so
polybatch always sends a file. The responses file's lines are ``{"key", "response": {"embedding":
{"values"}, "tokenCount"}}`` (the SDK's ``SingleEmbedContentResponse``) or ``{"key", "error"}``;
``tokenCount`` is the input tokens billed (UNVERIFIED against a live file: the field is the SDK's).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from polybatch import vectors
from polybatch.errors import ItemValidationError
from polybatch.items import BatchItem, BatchResult

#: the create path's verb (the SDK's create_embeddings), after ``models/{model}:``
CREATE_VERB = "asyncBatchEmbedContent"
#: EmbedContentRequest fields an item may add through ``extra`` (snake or camel case)
EXTRA_FIELDS = frozenset({"task_type", "taskType", "title"})
#: every field an embed request may hold, as the sandbox checks it
REQUEST_FIELDS = frozenset(
    {"content", "model", "output_dimensionality", "outputDimensionality", *EXTRA_FIELDS}
)
#: the Developer API's task types (EmbedContentConfig.task_type)
TASK_TYPES = frozenset(
    {
        "TASK_TYPE_UNSPECIFIED",
        "RETRIEVAL_QUERY",
        "RETRIEVAL_DOCUMENT",
        "SEMANTIC_SIMILARITY",
        "CLASSIFICATION",
        "CLUSTERING",
        "QUESTION_ANSWERING",
        "FACT_VERIFICATION",
        "CODE_RETRIEVAL_QUERY",
    }
)


def is_embedding_model(model: str) -> bool:
    """Whether ``model`` is one of Gemini's embedding models (``gemini-embedding-001``,
    ``text-embedding-004``, ...): the only ones an embedding batch runs on."""
    return "embedding" in model.removeprefix("models/")


def encode_line(item: BatchItem) -> dict[str, Any]:
    """One input-file line for an embedding item."""
    if item.custom_id is None:
        raise ItemValidationError("item has no custom_id (plan the job first)", field="custom_id")
    request: dict[str, Any] = {"content": {"parts": [{"text": item.input}]}}
    if item.dimensions is not None:
        request["output_dimensionality"] = item.dimensions
    request.update(item.extra)
    return {"key": item.custom_id, "request": request}


def is_embedding_line(line: Mapping[str, Any]) -> bool:
    """Whether an input line asks for an embedding (``content``, not ``contents``)."""
    request = line.get("request")
    return isinstance(request, Mapping) and "content" in request and "contents" not in request


def check_item(item: BatchItem, model: str) -> None:
    """Refuse an embedding item Gemini cannot run (ItemValidationError naming the field)."""
    if not is_embedding_model(model):
        raise ItemValidationError(
            f"item {item.custom_id!r}: {model!r} is not a Gemini embedding model "
            "(embedding batches run on models such as gemini-embedding-001)",
            field="model",
        )
    unknown = sorted(set(item.extra) - EXTRA_FIELDS)
    if unknown:
        raise ItemValidationError(
            f"item {item.custom_id!r}: {unknown[0]!r} is not an embed request field "
            f"(known: {', '.join(sorted(EXTRA_FIELDS))})",
            field=f"extra.{unknown[0]}",
        )
    problem = check_request(encode_line(item)["request"])
    if problem is not None:
        raise ItemValidationError(f"item {item.custom_id!r}: {problem}", field="extra")


def _get(request: Mapping[str, Any], snake: str, camel: str) -> Any:
    return request.get(camel, request.get(snake))


def check_request(request: Any) -> str | None:
    """Why the API would reject this embed request (None when acceptable); the sandbox's
    per-request INVALID_ARGUMENT errors."""
    if not isinstance(request, Mapping):
        return "request: must be an object"
    for key in request:
        if key not in REQUEST_FIELDS:
            return f'Invalid JSON payload received. Unknown name "{key}": Cannot find field.'
    if not text_of(request):
        return "* EmbedContentRequest.content: content must hold a text part"
    dims = _get(request, "output_dimensionality", "outputDimensionality")
    if dims is not None and (isinstance(dims, bool) or not isinstance(dims, int) or dims < 1):
        return "* EmbedContentRequest.output_dimensionality: must be a positive integer"
    task = _get(request, "task_type", "taskType")
    if task is not None and task not in TASK_TYPES:
        return f"* EmbedContentRequest.task_type: {task!r} is not a task type"
    return None


def text_of(request: Mapping[str, Any]) -> str:
    """The text parts of a request's ``content``, joined."""
    content = request.get("content")
    parts = content.get("parts") if isinstance(content, Mapping) else None
    if not isinstance(parts, list):
        return ""
    return "".join(str(p["text"]) for p in parts if isinstance(p, Mapping) and "text" in p)


def dimensions(request: Mapping[str, Any]) -> int | None:
    """The request's output dimensionality, if it sets one."""
    dims = _get(request, "output_dimensionality", "outputDimensionality")
    return dims if isinstance(dims, int) else None


def response(values: list[float], token_count: int) -> dict[str, Any]:
    """A responses-file ``response`` (SingleEmbedContentResponse, REST JSON)."""
    return {"embedding": {"values": values}, "tokenCount": token_count}


def is_embedding_response(response: Mapping[str, Any]) -> bool:
    """Whether a line's ``response`` is an embedding (not a GenerateContentResponse)."""
    return isinstance(response.get("embedding"), Mapping)


def decode_response(
    response: Mapping[str, Any], common: Mapping[str, Any], model: str | None
) -> BatchResult:
    """A successful embedding line -> BatchResult with the vector (kept once, in ``embedding``)."""
    embedding: Mapping[str, Any] = response["embedding"]
    vector = vectors.decode_vector(embedding.get("values"))
    kept = {
        **response,
        "embedding": {k: v for k, v in embedding.items() if k != "values"},
    }
    return vectors.vector_result(
        vector,
        input_tokens=int(response.get("tokenCount") or 0),
        model=model,
        response=kept,
        common=common,
    )
