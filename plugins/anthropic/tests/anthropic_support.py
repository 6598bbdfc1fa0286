"""Helpers for the anthropic plugin's tests (a uniquely named module: no clash with other plugins' conftest)."""

from __future__ import annotations

from pathlib import Path

import anthropic

from polybatch.items import BatchItem
from polybatch.sandbox import SandboxServer
from polybatch.testing.helpers import encode_lines
from polybatch.testing.helpers import item as item
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
    """Encode items into a lines file for this plugin's MODEL, as the runner does."""
    return encode_lines(path, provider, items, MODEL)
