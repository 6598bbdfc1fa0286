"""An organisation's queue limit per model, as the sandbox emulates it.

Providers cap the prompt tokens an organisation may have enqueued per model over its batches in
progress. With ``SandboxEngine(queue_limit_tokens=N)`` (``polybatch sandbox --queue-limit N``) a
create that would take a model's enqueued tokens in a namespace (one organisation) over ``N`` is
refused, each provider's routes in the vendor's shape: OpenAI accepts the batch and fails it in
validation with ``token_limit_exceeded``; Azure's fail-fast regions answer 400
``token_limit_exceeded``; Gemini 429 ``RESOURCE_EXHAUSTED``; Anthropic 429 ``rate_limit_error``.
A batch alone over the limit is refused too. Tokens are counted as :mod:`polybatch.tokens`
counts a prompt: each text of a request (``content``/``text``/``system`` values, at any depth)
is a message.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ..tokens import count_tokens, prompt_tokens

if TYPE_CHECKING:
    from .engine import SandboxEngine

#: the keys whose string values are prompt text in the vendors' request shapes
TEXT_KEYS = frozenset({"content", "text", "system"})
#: the refusal code of OpenAI and Azure
TOKEN_LIMIT_EXCEEDED = "token_limit_exceeded"


def _texts(obj: Any, key: str | None = None) -> Iterable[str]:
    if isinstance(obj, str):
        if key in TEXT_KEYS:
            yield obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from _texts(v, str(k))
    elif isinstance(obj, list | tuple):
        for v in obj:
            yield from _texts(v, key)
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        for f in dataclasses.fields(obj):
            yield from _texts(getattr(obj, f.name), f.name)


def request_tokens(request: Any) -> int:
    """The prompt tokens of one parsed request (any vendor's shape)."""
    texts = list(_texts(request))
    return prompt_tokens(texts) if texts else count_tokens("")


def enqueued(engine: SandboxEngine, namespace: str, model: str | None) -> int:
    """The tokens of ``model``'s batches in progress in ``namespace``."""
    now = engine.now()
    return sum(
        b.queue_tokens
        for b in engine.list_batches(namespace)
        if b.queue_model == model and b.errors is None and b.ended_at(now) is None
    )


def refusal(
    engine: SandboxEngine, namespace: str, model: str | None, requests: list[Any]
) -> str | None:
    """Why a new batch of ``requests`` on ``model`` is refused for the queue limit, or None."""
    limit = engine.queue_limit_tokens
    if limit is None:
        return None
    with engine.lock:
        tokens = sum(request_tokens(r) for r in requests)
        queued = enqueued(engine, namespace, model)
    if queued + tokens <= limit:
        return None
    return (
        f"Enqueued token limit reached for {model}: {queued} tokens already enqueued, this batch "
        f"holds {tokens}, the organization's limit is {limit}. Please try again once some "
        "in-progress batches have completed."
    )
