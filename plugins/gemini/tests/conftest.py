"""Fixtures for the gemini plugin's tests: a sandbox on loopback."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

import pytest
from gemini_support import KEY, serve

from polybatch.sandbox import SandboxEngine, SandboxServer
from polybatch_gemini.provider import GeminiProvider


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
