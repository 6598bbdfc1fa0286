"""Fixtures for the anthropic plugin's tests: a sandbox on loopback (the environment is
isolated by polybatch's pytest plugin: every ANTHROPIC_ variable is blanked)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import pytest
from anthropic_support import KEY

from polybatch.sandbox import SandboxServer
from polybatch.testing import Sandbox


@pytest.fixture
def server(polybatch_sandbox: Callable[..., Sandbox]) -> SandboxServer:
    """A sandbox serving only anthropic, whose batches end at once."""
    return polybatch_sandbox(providers=["anthropic"], api_key=KEY).server


@pytest.fixture
def sandbox(
    polybatch_sandbox: Callable[..., Sandbox],
) -> Callable[..., AbstractContextManager[SandboxServer]]:
    """Start a sandbox with engine options: ``with sandbox(rate=5) as srv`` (stopped at teardown)."""

    def start(**options: Any) -> AbstractContextManager[SandboxServer]:
        return nullcontext(
            polybatch_sandbox(providers=["anthropic"], api_key=KEY, **options).server
        )

    return start
