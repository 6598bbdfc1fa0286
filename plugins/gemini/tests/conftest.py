"""Fixtures for the gemini plugin's tests: a sandbox on loopback (every GEMINI_/GOOGLE_
variable is blanked by polybatch's pytest plugin, derived from the providers' credential_env)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import pytest
from gemini_support import KEY

from polybatch.sandbox import SandboxServer
from polybatch.testing import Sandbox
from polybatch_gemini.provider import GeminiProvider


@pytest.fixture(autouse=True)
def _restore_plugin_stamps() -> Iterator[None]:
    """Put back the registry's stamps on the class (``plugin_dist``/``plugin_name``) after each test.

    ``PluginRegistry.add_plugin`` writes them on the class itself, so a test registering it under
    another name would otherwise change how later tests find its price file. Stamps that were not
    there before are left alone: they may come from the process-wide registry loading the plugin
    during the test (the runner does), and that registry does not stamp again, so removing them
    would hide the price file from every later test.
    """
    saved = {k: GeminiProvider.__dict__[k] for k in _STAMPS if k in GeminiProvider.__dict__}
    yield
    for key, value in saved.items():
        setattr(GeminiProvider, key, value)


_STAMPS = ("plugin_dist", "plugin_name")


@pytest.fixture
def server(polybatch_sandbox: Callable[..., Sandbox]) -> SandboxServer:
    """A sandbox serving only gemini, whose batches end at once."""
    return polybatch_sandbox(providers=["gemini"], api_key=KEY).server


@pytest.fixture
def sandbox(
    polybatch_sandbox: Callable[..., Sandbox],
) -> Callable[..., AbstractContextManager[SandboxServer]]:
    """Start a sandbox with engine options: ``with sandbox(rate=5) as srv`` (stopped at teardown)."""

    def start(**options: Any) -> AbstractContextManager[SandboxServer]:
        return nullcontext(polybatch_sandbox(providers=["gemini"], api_key=KEY, **options).server)

    return start
