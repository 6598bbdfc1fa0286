"""Embedding vectors on the wire, shared by every provider that runs embedding batches.

OpenAI, Azure and Mistral answer an embeddings request with the same ``list`` body (``data[]`` of
``embedding`` objects, ``usage.prompt_tokens``); Gemini's embedding batches answer with
``{"embedding": {"values"}}``. Both sides of each format use this module: the adapters decode
results with :func:`list_result` / :func:`vector_result`, the sandboxes write bodies with
:func:`embeddings_response` and :func:`encode_vector`.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .items import BatchResult, Usage
from .wire import WireError


@dataclass
class EmbeddingRequest:
    """A validated embeddings body, in neutral terms (what a sandbox answers)."""

    model: str
    inputs: list[str]
    dimensions: int | None = None
    encoding_format: str = "float"


def decode_vector(value: Any) -> list[float]:
    """An embedding as floats: a JSON array, or base64 little-endian float32 (``encoding_format``
    ``"base64"``, which halves the output file)."""
    if isinstance(value, str):
        raw = base64.b64decode(value)
        return list(struct.unpack(f"<{len(raw) // 4}f", raw[: len(raw) // 4 * 4]))
    if isinstance(value, list):
        return [float(v) for v in value]
    raise WireError("invalid_output_line", "embedding is neither a list nor base64")


def encode_vector(vector: list[float], encoding_format: str) -> list[float] | str:
    """A vector as the API writes it for ``encoding_format``."""
    if encoding_format == "base64":
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
    return vector


def vector_result(
    vector: list[float],
    *,
    input_tokens: int,
    model: str | None,
    response: dict[str, Any],
    common: Mapping[str, Any],
) -> BatchResult:
    """A successful embedding result: the vector in ``embedding``, the rest of the body (vector
    left out: it is most of the size) in ``response``; embeddings bill input tokens only."""
    return BatchResult(
        status="succeeded",
        embedding=vector,
        usage=Usage(input_tokens=input_tokens),
        model=model,
        response=response,
        **common,
    )


def list_result(body: Mapping[str, Any], common: Mapping[str, Any]) -> BatchResult:
    """A successful OpenAI-shaped embeddings response (``object: "list"``), one input's vector."""
    data = body.get("data") or []
    first = data[0] if data and isinstance(data[0], Mapping) else {}
    vector = decode_vector(first.get("embedding"))
    kept = {**body, "data": [{k: v for k, v in d.items() if k != "embedding"} for d in data]}
    usage = body.get("usage") or {}
    return vector_result(
        vector,
        # prompt_tokens is all of it (no cache on this endpoint)
        input_tokens=int(usage.get("prompt_tokens") or 0),
        model=body.get("model"),
        response=kept,
        common=common,
    )


def embeddings_response(
    *, model: str, vectors: list[list[float] | str], prompt_tokens: int
) -> dict[str, Any]:
    """A ``list`` of ``embedding`` objects, as the OpenAI-shaped embeddings endpoints answer."""
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)
        ],
        "model": model,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }
