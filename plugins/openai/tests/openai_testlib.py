"""What the OpenAI plugin's tests share beyond polybatch.testing's helpers: the key, the model, the
provider and an SDK client pointed at a sandbox (a uniquely named module, not a package)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import openai

from polybatch.items import BatchItem
from polybatch.providers import BatchProvider, SubmittedBatch
from polybatch.sandbox import SandboxServer
from polybatch.testing import by_id, make_items, wait_terminal, write_lines
from polybatch.testing import submit_items as _submit
from polybatch_openai.provider import OpenAIProvider

KEY = "sk-sandbox-test-key-0123456789"
MODEL = "gpt-4o-mini"

ServerFactory = Callable[..., SandboxServer]
#: the generic helpers under the names this plugin's tests use
items = make_items
__all__ = [
    "KEY",
    "MODEL",
    "ServerFactory",
    "by_id",
    "items",
    "submit_items",
    "wait_terminal",
    "write_lines",
]


def provider_for(server: SandboxServer, *, api_key: str = KEY) -> OpenAIProvider:
    """The provider pointed at ``server`` (no SDK retries: tests want the first answer)."""
    settings = OpenAIProvider.sandbox_settings(server.url, api_key)
    return OpenAIProvider(**settings, settings={"max_retries": 0})


def submit_items(
    provider: BatchProvider,
    batch_items: Sequence[BatchItem],
    tmp_path: Path,
    *,
    metadata: dict[str, str] | None = None,
    name: str = "chunk.jsonl",
) -> SubmittedBatch:
    """encode -> write ``tmp_path / name`` -> submit, on this plugin's test model."""
    return _submit(provider, batch_items, tmp_path / name, model=MODEL, metadata=metadata)


def inspector(provider: OpenAIProvider) -> openai.OpenAI:
    """A plain sync SDK client on the provider's endpoint, to look at what the sandbox holds
    (the adapter itself only has async clients)."""
    return openai.OpenAI(api_key=KEY, base_url=provider.resolved_base_url(), max_retries=0)
