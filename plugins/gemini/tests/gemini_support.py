"""Helpers for the gemini plugin's tests (a uniquely named module: no clash with other plugins')."""

from __future__ import annotations

from pathlib import Path

from google import genai
from google.genai import types

from polybatch.items import BatchItem
from polybatch.sandbox import SandboxServer
from polybatch.testing.helpers import encode_lines
from polybatch.testing.helpers import item as item
from polybatch_gemini.provider import GeminiProvider

KEY = "gm-test-key"
MODEL = "gemini-2.5-flash"


def sdk_client(srv: SandboxServer, key: str = KEY, api_version: str = "v1") -> genai.Client:
    """The real SDK pointed at the sandbox."""
    return genai.Client(
        api_key=key,
        http_options=types.HttpOptions(
            base_url=srv.url + GeminiProvider.sandbox_prefix, api_version=api_version
        ),
    )


def provider_for(srv: SandboxServer, **settings: object) -> GeminiProvider:
    """A GeminiProvider pointed at the sandbox."""
    return GeminiProvider(**GeminiProvider.sandbox_settings(srv.url, KEY), settings=settings)


def write_lines(path: Path, provider: GeminiProvider, items: list[BatchItem]) -> Path:
    """Encode items into a lines file for this plugin's MODEL, as the runner does."""
    return encode_lines(path, provider, items, MODEL)
