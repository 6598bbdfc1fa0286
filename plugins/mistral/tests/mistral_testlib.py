"""What the Mistral plugin's tests share beyond polybatch.testing's helpers: the key, the model, the
provider and an SDK client pointed at a sandbox (a uniquely named module, not a package)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from mistralai.client import Mistral

from polybatch.items import BatchItem
from polybatch.providers import BatchProvider, SubmittedBatch
from polybatch.sandbox import SandboxServer
from polybatch.testing import by_id, make_items, wait_terminal, write_lines
from polybatch.testing import submit_items as _submit
from polybatch_mistral.provider import MistralProvider

KEY = "mistral-sandbox-test-key-0123456789"
MODEL = "mistral-small-latest"

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


def provider_for(server: SandboxServer, *, api_key: str = KEY) -> MistralProvider:
    """The provider pointed at ``server`` (no SDK retries: tests want the first answer)."""
    settings = MistralProvider.sandbox_settings(server.url, api_key)
    return MistralProvider(**settings, settings={"retries": False})


def sdk_client(server: SandboxServer, *, api_key: str = KEY) -> Mistral:
    """A sync SDK client of the test's own on ``server``, to inspect what the provider left there.

    Not the provider's client: that one is async and belongs to the event loop it was built on.
    """
    return Mistral(api_key=api_key, server_url=f"{server.url}{MistralProvider.sandbox_prefix}")


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
