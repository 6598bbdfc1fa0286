"""Fixtures for the anthropic plugin's tests: a sandbox on loopback."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

import pytest
from anthropic_support import KEY, serve

from polybatch.sandbox import SandboxEngine, SandboxServer


@pytest.fixture(autouse=True)
def _no_real_anthropic(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep a developer's own Anthropic settings out of the tests."""
    for name in (
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_AUTH_TOKEN",
        "ANTHROPIC_BASE_URL",
        "ANTHROPIC_PROFILE",
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
