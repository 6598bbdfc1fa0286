"""Helpers for the vertex plugin's tests (a uniquely named module: no clash with other plugins')."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from polybatch.items import BatchItem
from polybatch.sandbox import SandboxEngine, SandboxServer
from polybatch_vertex.provider import VertexProvider

KEY = "ya29.sandbox-access-token-0123456789"
MODEL = "gemini-2.5-flash"


@contextmanager
def serve(engine: SandboxEngine) -> Iterator[SandboxServer]:
    """A sandbox serving only the vertex routes."""
    with SandboxServer(engine, providers={"vertex": VertexProvider}) as srv:
        yield srv


def provider_for(srv: SandboxServer, key: str = KEY, **settings: object) -> VertexProvider:
    """A VertexProvider pointed at the sandbox."""
    kwargs = VertexProvider.sandbox_settings(srv.url, key)
    return VertexProvider(
        api_key=kwargs["api_key"],
        base_url=kwargs["base_url"],
        settings={**kwargs["settings"], **settings},
    )


def write_lines(path: Path, provider: VertexProvider, items: list[BatchItem]) -> Path:
    """Encode items into a lines file, as the runner does."""
    path.write_bytes(b"".join(provider.encode(i, MODEL) + b"\n" for i in items))
    return path


def item(custom_id: str, text: str = "Say something", **fields: object) -> BatchItem:
    """A one-turn item."""
    return BatchItem.model_validate(
        {"custom_id": custom_id, "messages": [{"role": "user", "content": text}], **fields}
    )
