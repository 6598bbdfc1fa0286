"""Fixtures: a sandbox on loopback HTTP and the OpenAI provider pointed at it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from openai_testlib import KEY, ServerFactory, provider_for

from polybatch.sandbox import SandboxEngine, SandboxServer
from polybatch_openai.provider import OpenAIProvider


@pytest.fixture
def make_server() -> Iterator[ServerFactory]:
    """Start sandboxes with engine options; all are stopped at teardown."""
    servers: list[SandboxServer] = []

    def make(**engine_options: Any) -> SandboxServer:
        engine = SandboxEngine(api_key=KEY, **engine_options)
        server = SandboxServer(engine, providers={"openai": OpenAIProvider}).start()
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
def provider(server: SandboxServer) -> OpenAIProvider:
    return provider_for(server)
