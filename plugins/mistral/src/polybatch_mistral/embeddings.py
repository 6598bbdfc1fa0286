"""Mistral's embeddings batch format (``/v1/embeddings`` jobs), both sides.

Input lines are ``{"custom_id", "body": {"input", "output_dimension"?}}``: the job names the
model, as for chat jobs. The body follows the SDK's ``EmbeddingRequest`` (``input``,
``output_dimension``, ``output_dtype``, ``encoding_format``, ``metadata``); the response is the
OpenAI-shaped ``list`` of ``embedding`` objects with ``usage.prompt_tokens``
(:mod:`polybatch.vectors` decodes and writes it). One item is one input.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from polybatch import formats
from polybatch.errors import ItemValidationError
from polybatch.formats import is_int
from polybatch.items import BatchItem
from polybatch.vectors import EmbeddingRequest as EmbeddingRequest
from polybatch.wire import WireError

#: the batch ``endpoint`` of embedding jobs
EMBEDDINGS_ENDPOINT: Final = "/v1/embeddings"
#: body fields BatchItem spells itself (``dimensions`` is sent as ``output_dimension``)
STRUCTURAL_EXTRA = frozenset({"model", "input", "output_dimension"})
#: the SDK's EmbeddingDtype and EncodingFormat literals
OUTPUT_DTYPES = frozenset({"float", "int8", "uint8", "binary", "ubinary"})
ENCODING_FORMATS = frozenset({"float", "base64"})
#: the other EmbeddingRequest fields a body may carry
OTHER_FIELDS = frozenset({"metadata"})


def encode_body(item: BatchItem, *, model: str | None = None) -> dict[str, Any]:
    """The embeddings body for ``item``; ``model`` is written only when given (the job names it)."""
    body: dict[str, Any] = {"model": model} if model else {}
    body["input"] = item.input
    if item.dimensions is not None:
        body["output_dimension"] = item.dimensions
    body.update(item.extra)
    return body


def encode_line(item: BatchItem, *, custom_id: str | None = None) -> bytes:
    """One input line (no newline) for an embedding ``item``."""
    return formats.encode_line(item, encode_body(item), custom_id=custom_id)


def is_embeddings_line(line: Mapping[str, Any]) -> bool:
    """Whether an input line's body asks for embeddings (``input``, no ``messages``)."""
    body = line.get("body")
    return isinstance(body, Mapping) and "input" in body and "messages" not in body


def _invalid(message: str, param: str) -> WireError:
    return WireError("invalid_request_error", message, param=param)


def parse_body(body: Mapping[str, Any], *, job_model: str | None) -> EmbeddingRequest:
    """Validate an embeddings body the way the API would. Raises WireError (an HTTP 400)."""
    rest = dict(body)
    model = rest.pop("model", None) or job_model
    if not isinstance(model, str) or not model:
        raise _invalid("model: a model is required (in the body or on the job)", "model")
    raw = rest.pop("input", None)
    inputs = [raw] if isinstance(raw, str) else raw
    if not isinstance(inputs, list) or not inputs or not all(isinstance(t, str) for t in inputs):
        raise _invalid("input: expected a string or a non-empty list of strings", "input")
    dimension = rest.pop("output_dimension", None)
    if dimension is not None and (not is_int(dimension) or dimension < 1):
        raise _invalid("output_dimension: expected an integer >= 1", "output_dimension")
    dtype = rest.pop("output_dtype", "float")
    if dtype not in OUTPUT_DTYPES:
        raise _invalid(f"output_dtype: expected one of {sorted(OUTPUT_DTYPES)}", "output_dtype")
    encoding = rest.pop("encoding_format", "float")
    if encoding not in ENCODING_FORMATS:
        raise _invalid("encoding_format: expected 'float' or 'base64'", "encoding_format")
    unknown = sorted(set(rest) - OTHER_FIELDS)
    if unknown:
        raise _invalid(f"{unknown[0]}: extra inputs are not permitted", unknown[0])
    return EmbeddingRequest(model, inputs, dimension, encoding)


def check_item(item: BatchItem, model: str) -> None:
    """Reject an embedding item Mistral would refuse (ItemValidationError naming the field)."""
    clash = STRUCTURAL_EXTRA & item.extra.keys()
    if clash:
        name = sorted(clash)[0]
        raise ItemValidationError(
            f"'{name}' cannot be set through extra; use the item's own field",
            field=f"extra.{name}",
        )
    try:
        parse_body(encode_body(item), job_model=item.model or model)
    except WireError as exc:
        param = exc.param or "input"
        field = {"output_dimension": "dimensions"}.get(param, param)
        field = field if field in ("input", "model", "dimensions") else f"extra.{field}"
        raise ItemValidationError(exc.message, field=field) from None
