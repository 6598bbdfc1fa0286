"""Fixtures: a sandbox on loopback HTTP and the MistralProvider pointed at it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from mistral_testlib import KEY, ServerFactory, provider_for

from polybatch.sandbox import SandboxServer
from polybatch.testing import Sandbox
from polybatch_mistral.provider import MistralProvider


@pytest.fixture
def make_server(polybatch_sandbox: Callable[..., Sandbox]) -> ServerFactory:
    """Start sandboxes serving only mistral, with engine options; all stopped at teardown."""

    def make(**engine_options: Any) -> SandboxServer:
        return polybatch_sandbox(providers=["mistral"], api_key=KEY, **engine_options).server

    return make


@pytest.fixture
def server(make_server: ServerFactory) -> SandboxServer:
    """A sandbox that runs requests instantly."""
    return make_server()


@pytest.fixture
def provider(server: SandboxServer) -> MistralProvider:
    return provider_for(server)
