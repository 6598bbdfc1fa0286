"""Sandbox faults at the HTTP layer, straight through the openai SDK (moved from the core's
tests/test_faults.py, which no longer imports an SDK; the anthropic half is in that plugin)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import openai
import pytest

from polybatch.sandbox import Faults, SandboxServer
from polybatch.testing import SANDBOX_KEY


def kinds(server: SandboxServer) -> Counter[str]:
    return Counter(e.kind for e in server.engine.fault_log)


def sdk_client(server: SandboxServer, retries: int) -> openai.OpenAI:
    return openai.OpenAI(
        api_key=SANDBOX_KEY, base_url=server.url + "/openai/v1", max_retries=retries
    )


def test_injected_429_carries_retry_after_and_the_sdk_retries_it(
    make_sandbox: Callable[..., SandboxServer],
) -> None:
    server = make_sandbox(faults=Faults(seed=0, http_error_rate=1.0, http_error_codes=(429,)))
    oa = sdk_client(server, retries=2)
    with pytest.raises(openai.RateLimitError) as info:
        oa.batches.list()
    headers = info.value.response.headers
    assert headers["retry-after-ms"] == "10" and headers["retry-after"] == "1"
    # the SDK's own retries are visible to the sandbox: 1 try + 2 retries
    assert server.engine.requests_seen.count(("GET", "/openai/v1/batches")) == 3
    assert kinds(server) == {"error": 3}


@pytest.mark.parametrize("code", [500, 502, 503])
def test_server_errors_on_any_route_are_retried_by_the_sdk(
    make_sandbox: Callable[..., SandboxServer], code: int
) -> None:
    server = make_sandbox(faults=Faults(seed=0, http_error_rate=1.0, http_error_codes=(code,)))
    with pytest.raises(openai.InternalServerError):
        sdk_client(server, retries=1).files.list()
    assert len(server.engine.requests_seen) == 2 and kinds(server) == {"error": 2}


def test_dropped_connection_is_a_connection_error_the_sdk_retries(
    make_sandbox: Callable[..., SandboxServer],
) -> None:
    server = make_sandbox(faults=Faults(seed=0, drop_rate=1.0))
    with pytest.raises(openai.APIConnectionError):
        sdk_client(server, retries=1).batches.list()
    assert kinds(server) == {"drop": 2}


def test_upload_reject_is_not_retried_by_the_sdk(
    make_sandbox: Callable[..., SandboxServer],
) -> None:
    server = make_sandbox(faults=Faults(seed=0, upload_reject_rate=1.0))
    oa = sdk_client(server, retries=2)
    with pytest.raises(openai.InternalServerError, match="upload rejected"):
        oa.files.create(file=("x.jsonl", b"{}\n"), purpose="batch")
    assert len(server.engine.requests_seen) == 1  # x-should-retry: false
    assert oa.files.list().data == []  # nothing was stored
