"""Helpers for the anthropic plugin's tests (a uniquely named module: no clash with other plugins' conftest)."""

from __future__ import annotations

from pathlib import Path

import anthropic

from polybatch.items import BatchItem
from polybatch.sandbox import SandboxServer
from polybatch_anthropic.provider import AnthropicProvider

KEY = "sk-ant-test"
MODEL = "claude-haiku-4-5"


def strict_client(srv: SandboxServer, key: str = KEY) -> anthropic.Anthropic:
    """The real SDK, validating every response against its own types."""
    return anthropic.Anthropic(
        api_key=key,
        base_url=srv.url + AnthropicProvider.sandbox_prefix,
        max_retries=0,
        _strict_response_validation=True,
    )


def provider_for(srv: SandboxServer, **settings: object) -> AnthropicProvider:
    """An AnthropicProvider pointed at the sandbox."""
    return AnthropicProvider(**AnthropicProvider.sandbox_settings(srv.url, KEY), settings=settings)


def write_lines(path: Path, provider: AnthropicProvider, items: list[BatchItem]) -> Path:
    """Encode items into a lines file, as the runner does."""
    path.write_bytes(b"".join(provider.encode(i, MODEL) + b"\n" for i in items))
    return path


def item(custom_id: str, text: str = "Say something", **fields: object) -> BatchItem:
    """A one-turn item."""
    return BatchItem.model_validate(
        {"custom_id": custom_id, "messages": [{"role": "user", "content": text}], **fields}
    )
