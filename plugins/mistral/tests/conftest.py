"""Fixtures: a sandbox on loopback HTTP and the Mistral provider pointed at it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from mistral_testlib import KEY, ServerFactory, provider_for

from polybatch.sandbox import SandboxEngine, SandboxServer
from polybatch_mistral.provider import MistralProvider


@pytest.fixture(autouse=True)
def _no_ambient_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK reads MISTRAL_API_KEY and MISTRAL_SA_TOKEN_PATH itself: keep a user's out."""
    monkeypatch.delenv("MISTRAL_API_KEY", raising=False)
    monkeypatch.delenv("MISTRAL_SA_TOKEN_PATH", raising=False)


@pytest.fixture
def make_server() -> Iterator[ServerFactory]:
    """Start sandboxes with engine options; all are stopped at teardown."""
    servers: list[SandboxServer] = []

    def make(**engine_options: Any) -> SandboxServer:
        engine = SandboxEngine(api_key=KEY, **engine_options)
        server = SandboxServer(engine, providers={"mistral": MistralProvider}).start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def server(make_server: ServerFactory) -> SandboxServer:
    """A sandbox that runs requests instantly."""
    return make_server()


@pytest.fixture
def provider(server: SandboxServer) -> MistralProvider:
    return provider_for(server)
