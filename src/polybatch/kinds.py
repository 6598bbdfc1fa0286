"""What each item kind is: its fields, its required field, its OpenAI body names, its results.

An item asks for one of five things (:data:`ItemKind`); a provider batch serves one endpoint, so
one kind (the planner cuts chunks where the kind changes):

- ``chat``: a chat completion from ``messages``;
- ``embedding``: the vector of one ``input`` string (optional ``dimensions``);
- ``response``: a Responses API reply to ``input`` (a string, or a list of message objects),
  with ``instructions``, ``tools``, ``text`` (``text.format`` is structured output: a neutral
  ``response_format`` is moved there), ``reasoning`` (``{"effort": ...}``), ``max_tokens``
  (the body's ``max_output_tokens``), ``temperature`` and ``top_p``;
- ``completion``: a legacy prompt completion of ``prompt``, with ``max_tokens``, ``temperature``,
  ``top_p``, ``seed`` and ``stop``;
- ``moderation``: the moderation verdict on ``input`` (a string, or a list of ``text`` /
  ``image_url`` parts: one input, one verdict, :class:`Moderation` on the result).

This module is the lowest layer (no polybatch imports): :mod:`polybatch.items` validates items by
these tables, :mod:`polybatch.inputs` reads OpenAI-format lines by :data:`OPENAI_BODY_FIELDS`, and
providers declare the kinds they serve (``BatchProvider.kinds``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

ItemKind = Literal["chat", "embedding", "response", "completion", "moderation"]
ITEM_KINDS: tuple[ItemKind, ...] = ("chat", "embedding", "response", "completion", "moderation")

#: the item fields each kind may set, besides custom_id, kind, model and extra
KIND_FIELDS: dict[str, frozenset[str]] = {
    "chat": frozenset(
        {
            "messages",
            *("max_tokens", "temperature", "top_p", "seed", "stop"),
            *("response_format", "response_model_ref"),
        }
    ),
    "embedding": frozenset({"input", "dimensions"}),
    "response": frozenset(
        {
            *("input", "instructions", "tools", "text", "reasoning"),
            *("max_tokens", "temperature", "top_p", "response_format", "response_model_ref"),
        }
    ),
    "completion": frozenset({"prompt", "max_tokens", "temperature", "top_p", "seed", "stop"}),
    "moderation": frozenset({"input"}),
}
#: the field an item of each kind cannot do without
REQUIRED: dict[str, str] = {
    "chat": "messages",
    "embedding": "input",
    "response": "input",
    "completion": "prompt",
    "moderation": "input",
}
#: every field some kinds take and others refuse (what :func:`field_kinds` answers for)
KIND_SPECIFIC: frozenset[str] = frozenset().union(*KIND_FIELDS.values())
#: how messages name a kind ("does not offer <label> batches")
LABELS: dict[str, str] = {
    "chat": "chat",
    "embedding": "embedding",
    "response": "Responses API",
    "completion": "completion",
    "moderation": "moderation",
}
#: the OpenAI batch-line ``body`` field -> neutral item field, per kind (the rest of a body goes to
#: ``extra``; ``model`` is the job's). Chat's ``max_completion_tokens`` is its newer spelling.
OPENAI_BODY_FIELDS: dict[str, dict[str, str]] = {
    "chat": {
        "messages": "messages",
        "max_tokens": "max_tokens",
        "max_completion_tokens": "max_tokens",
        **{n: n for n in ("temperature", "top_p", "seed", "stop", "response_format")},
    },
    "embedding": {"input": "input", "dimensions": "dimensions"},
    "response": {
        **{n: n for n in ("input", "instructions", "tools", "text", "reasoning")},
        "max_output_tokens": "max_tokens",
        **{n: n for n in ("temperature", "top_p")},
    },
    "completion": {
        "prompt": "prompt",
        **{n: n for n in ("max_tokens", "temperature", "top_p", "seed", "stop")},
    },
    "moderation": {"input": "input"},
}
#: content-part types a moderation input list may hold
MODERATION_PARTS = frozenset({"text", "image_url"})


def article(kind: str) -> str:
    """``"a chat"`` / ``"an embedding"``: how a message names an item of ``kind``."""
    return ("an " if kind == "embedding" else "a ") + kind


def field_kinds(name: str) -> list[str]:
    """The kinds whose items may set the field ``name``."""
    return [k for k in ITEM_KINDS if name in KIND_FIELDS[k]]


def kind_problem(kind: str, values: Mapping[str, Any]) -> tuple[str, str] | None:
    """(field, why) when an item of ``kind`` with these set field values is invalid, else None.

    ``values`` holds the item's kind-specific fields that are set (not None): raw record values
    (the input reader names the field before validating) or an item's. Chat items are checked
    by :class:`~polybatch.items.BatchItem` itself (their messages' rules).
    """
    required = REQUIRED[kind]
    if kind != "chat" and values.get(required) is None:
        what = " (the text to embed)" if kind == "embedding" else ""
        return required, f"{article(kind)} item needs '{required}'{what}"
    refused = sorted(n for n in values if n not in KIND_FIELDS[kind] and n != "messages")
    if refused:
        return refused[0], f"{article(kind)} item cannot set {', '.join(refused)}"
    value = values.get("input")
    if kind == "embedding" and value is not None and not isinstance(value, str):
        return "input", "an embedding item's 'input' must be one string"
    entries = value if isinstance(value, list) else []
    for i, entry in enumerate(entries):
        entry = entry if isinstance(entry, Mapping) else {}
        if kind == "moderation" and entry.get("type") not in MODERATION_PARTS:
            return f"input[{i}]", "a moderation input part is a 'text' or 'image_url' part"
        if kind == "response" and "type" not in entry and "role" not in entry:
            return f"input[{i}]", "a Responses input entry needs a 'role' or a 'type'"
    return None


def text_format(response_format: Mapping[str, Any]) -> dict[str, Any]:
    """A chat ``response_format`` as the Responses API's ``text.format`` (the json_schema's
    ``name``/``schema``/``strict`` move up one level)."""
    if response_format.get("type") != "json_schema":
        return dict(response_format)
    spec = response_format.get("json_schema")
    return {"type": "json_schema", **(dict(spec) if isinstance(spec, Mapping) else {})}


def output_format(record: Mapping[str, Any]) -> Any:
    """The structured-output request of an item or items-file record, chat-shaped: its
    ``response_format``, or a Responses ``text.format`` (the checks read ``type`` only)."""
    if record.get("response_format") is not None:
        return record["response_format"]
    text = record.get("text")
    return text.get("format") if isinstance(text, Mapping) else None


class Moderation(BaseModel):
    """The verdict of a moderation item (``BatchResult.moderation``)."""

    model_config = ConfigDict(frozen=True)

    #: whether any category applies
    flagged: bool
    #: category -> whether it applies (``"violence": false``, ``"harassment/threatening"``, ...)
    categories: dict[str, bool] = Field(default_factory=dict)
    #: category -> the model's score, 0 to 1
    category_scores: dict[str, float] = Field(default_factory=dict)
    #: category -> the input types (``text``, ``image``) it was found in (omni models)
    category_applied_input_types: dict[str, list[str]] | None = None


def input_texts(value: Any) -> list[str]:
    """The texts of an item's input field as a token count sees them: a string, the ``text`` of
    parts, the content of message objects (what estimates count; images count nothing here)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    texts: list[str] = []
    for entry in value if isinstance(value, list) else []:
        if not isinstance(entry, Mapping):
            continue
        if isinstance(entry.get("text"), str):
            texts.append(entry["text"])
        elif "content" in entry:
            texts.extend(input_texts(entry["content"]))
    return texts
