"""Sandbox faults at the HTTP layer, straight through the anthropic SDK (moved from the core's
tests/test_faults.py, which no longer imports an SDK; the openai half is in that plugin)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import anthropic
import pytest

from polybatch.sandbox import Faults, SandboxServer
from polybatch.testing import SANDBOX_KEY


def kinds(server: SandboxServer) -> Counter[str]:
    return Counter(e.kind for e in server.engine.fault_log)


def sdk_client(server: SandboxServer, retries: int) -> anthropic.Anthropic:
    return anthropic.Anthropic(
        api_key=SANDBOX_KEY, base_url=server.url + "/anthropic", max_retries=retries
    )


@pytest.mark.parametrize("code", [500, 502, 503])
def test_server_errors_on_any_route_are_retried_by_the_sdk(
    make_sandbox: Callable[..., SandboxServer], code: int
) -> None:
    server = make_sandbox(faults=Faults(seed=0, http_error_rate=1.0, http_error_codes=(code,)))
    with pytest.raises(anthropic.InternalServerError):
        sdk_client(server, retries=1).messages.batches.list()
    assert len(server.engine.requests_seen) == 2 and kinds(server) == {"error": 2}


def test_dropped_connection_is_a_connection_error_the_sdk_retries(
    make_sandbox: Callable[..., SandboxServer],
) -> None:
    server = make_sandbox(faults=Faults(seed=0, drop_rate=1.0))
    with pytest.raises(anthropic.APIConnectionError):
        sdk_client(server, retries=1).messages.batches.list()
    assert kinds(server) == {"drop": 2}


def test_create_timeout_creates_the_batch_but_loses_the_answer(
    make_sandbox: Callable[..., SandboxServer],
) -> None:
    server = make_sandbox(faults=Faults(seed=0, create_timeout_rate=1.0))
    params: Any = {"model": "claude-haiku-4-5", "max_tokens": 5, "messages": []}
    with pytest.raises(anthropic.APIConnectionError):
        sdk_client(server, retries=0).messages.batches.create(
            requests=[{"custom_id": "a", "params": params}]
        )
    assert len(server.engine.batches) == 1  # it exists; the client cannot know
