"""A deterministic synthetic model: the same request always gets the same reply and usage."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any

from .. import vectors
from ..tokens import count_tokens, prompt_tokens, truncate
from .caching import PromptCache

#: model names GET /models lists; any other name is still answered (sandbox is permissive)
SYNTHETIC_MODELS = (
    "gpt-4o-mini",
    "gpt-4o",
    "gpt-4.1-mini",
    "gpt-4.1",
    "gpt-5-mini",
    "text-embedding-3-small",
    "claude-haiku-4-5",
    "claude-sonnet-4-5",
)
#: vector sizes of known embedding models (what a request without ``dimensions`` gets)
EMBEDDING_DIMENSIONS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
    "mistral-embed": 1024,
    "gemini-embedding-001": 3072,
}
#: the size for embedding models not listed above (small: tests stay fast)
DEFAULT_EMBEDDING_DIMENSIONS = 16
_WORDS = [
    "alpha",
    "bravo",
    "charlie",
    "delta",
    "echo",
    "foxtrot",
    "golf",
    "hotel",
    "india",
    "juliet",
    "kilo",
    "lima",
    "mike",
    "november",
    "oscar",
    "papa",
    "quebec",
    "romeo",
    "sierra",
    "tango",
    "uniform",
    "victor",
    "whiskey",
    "xray",
    "yankee",
    "zulu",
]


def _digest(*parts: Any) -> bytes:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).digest()


@dataclass(frozen=True)
class Reply:
    """One synthetic completion."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # "stop" | "length"


class SyntheticModel:
    """Replies derived from the request, honouring max_tokens and JSON-schema requests.

    ``cache`` is its prompt cache (:mod:`polybatch.sandbox.caching`): the providers' routes ask
    it which part of a prompt was cached, so an engine's model remembers the prompts it saw.
    """

    def __init__(self) -> None:
        self.cache = PromptCache()

    def prompt_tokens(self, messages: list[tuple[str, str]]) -> int:
        """Input tokens of a conversation: content tokens plus framing per message."""
        return prompt_tokens(t for _, t in messages)

    def chat(
        self,
        *,
        model: str,
        messages: list[tuple[str, str]],
        max_tokens: int | None = None,
        json_schema: dict[str, Any] | None = None,
        json_object: bool = False,
        stop: list[str] | None = None,
        invalid_json: bool = False,
    ) -> Reply:
        """Answer a conversation of (role, text) pairs.

        With ``json_schema`` the reply is JSON valid against it; ``invalid_json`` (the sandbox's
        fault switch) breaks such a reply instead: cut off mid-object, as a model that rambles
        past its budget would, so that it fails any JSON or schema validation.
        """
        seed = _digest(model, messages)
        if json_schema is not None:
            text = json.dumps(
                _instance(json_schema, seed, root=json_schema), separators=(", ", ": ")
            )
            if invalid_json:
                text = text[: max(1, len(text) // 2)]
        elif json_object:
            last = next((t for r, t in reversed(messages) if r == "user"), "")
            text = json.dumps({"reply": _sentence(last, seed), "model": model})
        else:
            last = next((t for r, t in reversed(messages) if r == "user"), "")
            text = _sentence(last, seed)
        finish = "stop"
        for s in stop or []:
            if s and s in text:
                text = text[: text.index(s)]
        if max_tokens is not None and count_tokens(text) > max_tokens:
            text = truncate(text, max_tokens)
            finish = "length"
        return Reply(
            text=text,
            prompt_tokens=self.prompt_tokens(messages),
            completion_tokens=count_tokens(text),
            finish_reason=finish,
        )

    def embedding_tokens(self, text: str) -> int:
        """Input tokens of one embedding input (no chat framing)."""
        return count_tokens(text)

    def embeddings_list(
        self, *, model: str, texts: list[str], dimensions: int | None, encoding_format: str
    ) -> tuple[dict[str, Any], int]:
        """An OpenAI-shaped embeddings response body (OpenAI, Azure, Mistral) for ``texts``, and
        its input tokens (all the usage there is)."""
        found = [
            vectors.encode_vector(
                self.embed(model=model, text=text, dimensions=dimensions), encoding_format
            )
            for text in texts
        ]
        tokens = sum(self.embedding_tokens(text) for text in texts)
        return vectors.embeddings_response(model=model, vectors=found, prompt_tokens=tokens), tokens

    def embed(self, *, model: str, text: str, dimensions: int | None = None) -> list[float]:
        """A unit vector derived from the text (the model's usual size unless ``dimensions``)."""
        if dimensions is None:
            dimensions = EMBEDDING_DIMENSIONS.get(model, DEFAULT_EMBEDDING_DIMENSIONS)
        raw = b""
        counter = 0
        while len(raw) < dimensions * 2:
            raw += _digest(model, text, counter)
            counter += 1
        values = [
            (int.from_bytes(raw[2 * i : 2 * i + 2], "big") / 65535.0) - 0.5
            for i in range(dimensions)
        ]
        norm = math.sqrt(sum(v * v for v in values)) or 1.0
        return [round(v / norm, 6) for v in values]


def _sentence(prompt: str, seed: bytes) -> str:
    echo = " ".join(prompt.split()[:8])
    extra = " ".join(_WORDS[b % len(_WORDS)] for b in seed[: 3 + seed[0] % 12])
    return f"Synthetic reply to: {echo}. {extra.capitalize()}."


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with a local ``$ref`` (``#/$defs/X``, as pydantic writes them) followed."""
    for _ in range(32):  # refs to refs, but never forever
        ref = schema.get("$ref")
        if not isinstance(ref, str) or not ref.startswith("#/"):
            return schema
        target: Any = root
        for part in ref[2:].split("/"):
            target = target.get(part, {}) if isinstance(target, dict) else {}
        schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
    return schema


def _instance(
    schema: dict[str, Any], seed: bytes, depth: int = 0, *, root: dict[str, Any] | None = None
) -> Any:
    """A value that validates against a JSON schema (the subset structured outputs allow),
    chosen from the seed. ``root`` is the whole schema, where ``$ref``s point."""
    root = root if root is not None else schema
    schema = _resolve(schema, root)
    if depth > 24:  # a recursive schema: stop where null or an empty value is allowed
        return None
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][seed[depth % len(seed)] % len(schema["enum"])]
    for key in ("anyOf", "oneOf"):
        if key in schema:
            # the first variant that is not null: an optional field still gets a value
            variants = [_resolve(v, root) for v in schema[key]]
            pick = next((v for v in variants if v.get("type") != "null"), variants[0])
            return _instance(pick, seed, depth + 1, root=root)
    if "allOf" in schema:
        merged: dict[str, Any] = {}
        for part in schema["allOf"]:
            merged.update(_resolve(part, root))
        return _instance(merged, seed, depth + 1, root=root)
    kind = schema.get("type", "object")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    b = seed[depth % len(seed)]
    if kind == "object":
        props: dict[str, Any] = schema.get("properties", {})
        return {
            k: _instance(v, seed, depth + i + 1, root=root)
            for i, (k, v) in enumerate(props.items())
        }
    if kind == "array":
        n = max(int(schema.get("minItems", 1)), 1)
        if "maxItems" in schema:
            n = min(n, int(schema["maxItems"]))
        return [
            _instance(schema.get("items", {"type": "string"}), seed, depth + i + 1, root=root)
            for i in range(n)
        ]
    if kind == "string":
        word = _WORDS[b % len(_WORDS)]
        while len(word) < int(schema.get("minLength", 0)):
            word += " " + _WORDS[(b + len(word)) % len(_WORDS)]
        if "maxLength" in schema:
            word = word[: int(schema["maxLength"])]
        return word
    if kind == "integer":
        lo = int(schema.get("minimum", schema.get("exclusiveMinimum", -1) + 1))
        hi = int(schema.get("maximum", schema.get("exclusiveMaximum", lo + 101) - 1))
        return lo + b % (hi - lo + 1) if hi >= lo else lo
    if kind == "number":
        low = float(schema.get("minimum", schema.get("exclusiveMinimum", -0.1) + 0.1))
        value = low + b / 10
        if "maximum" in schema:
            value = min(value, float(schema["maximum"]))
        return value
    if kind == "boolean":
        return bool(b % 2)
    return None
