"""A deterministic synthetic model: the same request always gets the same reply and usage."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any

from ..tokens import count_tokens, prompt_tokens, truncate

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
    """Replies derived from the request, honouring max_tokens and JSON-schema requests."""

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
    ) -> Reply:
        """Answer a conversation of (role, text) pairs."""
        seed = _digest(model, messages)
        if json_schema is not None:
            text = json.dumps(_instance(json_schema, seed), separators=(", ", ": "))
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

    def embed(self, *, model: str, text: str, dimensions: int = 16) -> list[float]:
        """A unit vector derived from the text."""
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


def _instance(schema: dict[str, Any], seed: bytes, depth: int = 0) -> Any:
    """A value that validates against a (simple) JSON schema, chosen from the seed."""
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][seed[depth % len(seed)] % len(schema["enum"])]
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return _instance(schema[key][0], seed, depth + 1)
    kind = schema.get("type", "object")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    b = seed[depth % len(seed)]
    if kind == "object":
        props: dict[str, Any] = schema.get("properties", {})
        return {k: _instance(v, seed, depth + i + 1) for i, (k, v) in enumerate(props.items())}
    if kind == "array":
        n = max(int(schema.get("minItems", 1)), 1)
        return [
            _instance(schema.get("items", {"type": "string"}), seed, depth + i + 1)
            for i in range(n)
        ]
    if kind == "string":
        return _WORDS[b % len(_WORDS)]
    if kind == "integer":
        lo = int(schema.get("minimum", 0))
        hi = int(schema.get("maximum", lo + 100))
        return lo + b % (hi - lo + 1)
    if kind == "number":
        low = float(schema.get("minimum", 0))
        return low + b / 10
    if kind == "boolean":
        return bool(b % 2)
    return None
