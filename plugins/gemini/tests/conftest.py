"""Fixtures for the gemini plugin's tests: a sandbox on loopback."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

import pytest
from gemini_support import KEY, serve

from polybatch.sandbox import SandboxEngine, SandboxServer


@pytest.fixture(autouse=True)
def _no_real_gemini(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep a developer's own Google settings out of the tests."""
    for name in (
        "GEMINI_API_KEY",
        "GOOGLE_API_KEY",
        "GOOGLE_GEMINI_BASE_URL",
        "GOOGLE_GENAI_API_VERSION",
        "GOOGLE_GENAI_USE_VERTEXAI",
        "GOOGLE_CLOUD_PROJECT",
        "GOOGLE_CLOUD_LOCATION",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def server() -> Iterator[SandboxServer]:
    """A sandbox whose batches end at once."""
    with serve(SandboxEngine(api_key=KEY)) as srv:
        yield srv


@pytest.fixture
def sandbox() -> Callable[..., AbstractContextManager[SandboxServer]]:
    """Start a sandbox with engine options: ``with sandbox(rate=5) as srv``."""

    def start(**options: object) -> AbstractContextManager[SandboxServer]:
        return serve(SandboxEngine(api_key=KEY, **options))  # type: ignore[arg-type]

    return start
