"""Helpers shared by the Mistral plugin's tests (a uniquely named module, not a package)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from mistralai.client import Mistral

from polybatch.items import BatchItem, BatchResult
from polybatch.providers import BatchStatus, SubmittedBatch
from polybatch.sandbox import SandboxEngine, SandboxServer
from polybatch_mistral.provider import MistralProvider

KEY = "mistral-sandbox-test-key-0123456789"
MODEL = "mistral-small-latest"

ServerFactory = Callable[..., SandboxServer]


def provider_for(server: SandboxServer, *, api_key: str = KEY) -> MistralProvider:
    """The provider pointed at ``server`` (no SDK retries: tests want the first answer)."""
    settings = MistralProvider.sandbox_settings(server.url, api_key)
    return MistralProvider(**settings, settings={"retries": False})


def sdk_client(server: SandboxServer, *, api_key: str = KEY) -> Mistral:
    """A sync SDK client of the test's own on ``server``, to inspect what the provider left there.

    Not the provider's client: that one is async and belongs to the event loop it was built on.
    """
    return Mistral(api_key=api_key, server_url=f"{server.url}{MistralProvider.sandbox_prefix}")


def items(n: int, **fields: Any) -> list[BatchItem]:
    """``n`` simple items with ids c0..c{n-1}."""
    return [
        BatchItem(
            custom_id=f"c{i}",
            messages=[{"role": "user", "content": f"question number {i}"}],
            **fields,
        )
        for i in range(n)
    ]


def write_lines(path: Path, lines: Sequence[bytes]) -> Path:
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path


def submit_items(
    provider: MistralProvider,
    batch_items: Sequence[BatchItem],
    tmp_path: Path,
    *,
    metadata: dict[str, str] | None = None,
    name: str = "chunk.jsonl",
) -> SubmittedBatch:
    """encode -> write a lines file -> submit."""
    lines = [provider.encode(item, MODEL) for item in batch_items]
    return provider.submit(
        write_lines(tmp_path / name, lines), model=MODEL, metadata=metadata or {}
    )


def wait_terminal(
    provider: MistralProvider, engine: SandboxEngine, batch_id: str, *, step: float = 5.0
) -> BatchStatus:
    """Poll until terminal, moving the sandbox clock forward instead of sleeping."""
    for _ in range(10_000):
        status = provider.poll(batch_id)
        if status.terminal:
            return status
        engine.clock.advance(step)
    raise AssertionError(f"batch {batch_id} never ended")


def by_id(results: Sequence[BatchResult]) -> dict[str, BatchResult]:
    ids = [r.custom_id for r in results]
    assert len(ids) == len(set(ids)), "a custom_id came back twice"
    return {r.custom_id: r for r in results}
