"""Test helpers for polybatch and its plugins: isolated homes and sandbox servers.

Installed as a pytest plugin (entry point ``pytest11``), so a provider plugin's own tests get the
same fixtures::

    def test_roundtrip(sandbox_server):
        provider = MyProvider(**MyProvider.sandbox_settings(sandbox_server.url, sandbox_server.engine.api_key))

and the provider conformance suite (see :mod:`polybatch.conformance`)::

    from polybatch.testing import ProviderConformance

    class TestMyProviderConformance(ProviderConformance):
        provider_class = MyProvider
        model = "my-model"
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .conformance import ProviderConformance
from .sandbox import SandboxEngine, SandboxServer

__all__ = [
    "ISOLATED_ENV",
    "SANDBOX_KEY",
    "ProviderConformance",
    "make_sandbox",
    "polybatch_home",
    "sandbox_server",
]

SANDBOX_KEY = "sk-polybatch-test-0123456789"

#: environment variables that would point a test at a real provider or a user's setup
ISOLATED_ENV = (
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "OPENAI_ORG_ID",
    "OPENAI_PROJECT_ID",
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "ANTHROPIC_BASE_URL",
    "AZURE_OPENAI_API_KEY",
    "AZURE_OPENAI_ENDPOINT",
    "AZURE_OPENAI_AD_TOKEN",
    "OPENAI_API_VERSION",
    "POLYBATCH_CONFIG",
    "POLYBATCH_PROFILE",
    "POLYBATCH_MODEL",
)


@pytest.fixture
def polybatch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh POLYBATCH_HOME (ledger and job files), with provider env vars cleared."""
    home = tmp_path / "polybatch-home"
    monkeypatch.setenv("POLYBATCH_HOME", str(home))
    for name in ISOLATED_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return home


@pytest.fixture
def make_sandbox() -> Iterator[Callable[..., SandboxServer]]:
    """A factory: ``make_sandbox(rate=5, ...)`` starts a sandbox server; all are stopped after."""
    servers: list[SandboxServer] = []

    def factory(**engine_kwargs: Any) -> SandboxServer:
        engine_kwargs.setdefault("api_key", SANDBOX_KEY)
        server = SandboxServer(SandboxEngine(**engine_kwargs)).start()
        servers.append(server)
        return server

    yield factory
    for s in servers:
        s.stop()


@pytest.fixture
def sandbox_server(make_sandbox: Callable[..., SandboxServer]) -> SandboxServer:
    """A sandbox server on 127.0.0.1 (OS-chosen port) that processes batches instantly."""
    return make_sandbox()
