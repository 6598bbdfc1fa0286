"""Helpers shared by the OpenAI plugin's tests (a uniquely named module, not a package)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import openai

from polybatch.items import BatchItem, BatchResult
from polybatch.providers import BatchStatus, SubmittedBatch
from polybatch.sandbox import SandboxEngine, SandboxServer
from polybatch_openai.provider import OpenAIProvider

KEY = "sk-sandbox-test-key-0123456789"
MODEL = "gpt-4o-mini"

ServerFactory = Callable[..., SandboxServer]


def provider_for(server: SandboxServer, *, api_key: str = KEY) -> OpenAIProvider:
    """The provider pointed at ``server`` (no SDK retries: tests want the first answer)."""
    settings = OpenAIProvider.sandbox_settings(server.url, api_key)
    return OpenAIProvider(**settings, settings={"max_retries": 0})


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
    provider: OpenAIProvider,
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
    provider: OpenAIProvider, engine: SandboxEngine, batch_id: str, *, step: float = 5.0
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


def inspector(provider: OpenAIProvider) -> openai.OpenAI:
    """A plain sync SDK client on the provider's endpoint, to look at what the sandbox holds
    (the adapter itself only has async clients)."""
    return openai.OpenAI(api_key=KEY, base_url=provider.resolved_base_url(), max_retries=0)
