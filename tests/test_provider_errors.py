"""Every registered SDK provider turns real SDK exceptions from the sandbox into the right
polybatch error: a wrong key is a scrubbed 401 naming the key variable, an unknown batch a 404, a
dropped connection a retryable ProviderConnectionError, a server error a retryable HTTP error.

Reached through the registry, so no provider SDK is imported here; the SDK's exception is
checked through the module it comes from (``raise ... from`` keeps it as the cause).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from polybatch.errors import ProviderConnectionError, ProviderError, ProviderHTTPError
from polybatch.plugins import get_registry
from polybatch.sandbox import Faults, SandboxEngine, SandboxServer

KEY = "sk-provider-errors-0123456789"
#: provider -> (the SDK's top-level module, a batch id of the right shape)
SDKS = {
    "openai": ("openai", "batch_missing"),
    "azure": ("openai", "batch_missing"),
    "groq": ("openai", "batch_missing"),
    "anthropic": ("anthropic", "msgbatch_missing"),
    "mistral": ("mistralai", "job-missing"),
    "gemini": ("google", "batches/missing"),
}
HTTP_STACKS = {"httpx2", "httpx", "aiohttp"}
#: no SDK-level retries, whichever spelling the provider reads
NO_RETRIES = {"max_retries": 0, "retries": False}


@pytest.fixture
def poll_error() -> Iterator[Any]:
    servers: list[SandboxServer] = []

    def poll(provider: str, faults: Faults | None = None, key: str = KEY) -> ProviderError:
        server = SandboxServer(SandboxEngine(api_key=KEY, faults=faults or Faults())).start()
        servers.append(server)
        cls = get_registry().provider_class(provider)
        instance = cls(**cls.sandbox_settings(server.url, key), settings=NO_RETRIES)
        with pytest.raises(ProviderError) as info:
            instance.poll(SDKS[provider][1])
        return info.value

    yield poll
    for server in servers:
        server.stop()


def cause_module(error: BaseException) -> str:
    assert error.__cause__ is not None, "raised from the SDK's exception"
    return type(error.__cause__).__module__.split(".")[0]


@pytest.mark.parametrize("provider", SDKS)
def test_a_wrong_key_is_a_scrubbed_401_naming_the_variable(poll_error: Any, provider: str) -> None:
    wrong = "sk-wrong-provider-key-9876543210"
    error = poll_error(provider, key=wrong)
    assert isinstance(error, ProviderHTTPError) and error.status_code == 401
    assert not error.retryable and cause_module(error) == SDKS[provider][0]
    variable = get_registry().provider_class(provider).credential_env[0]
    assert wrong not in str(error) and f"(check {variable})" in str(error)


@pytest.mark.parametrize("provider", SDKS)
def test_an_unknown_batch_is_a_404(poll_error: Any, provider: str) -> None:
    error = poll_error(provider)
    assert isinstance(error, ProviderHTTPError) and error.status_code == 404
    assert not error.retryable and cause_module(error) == SDKS[provider][0]


@pytest.mark.parametrize("provider", SDKS)
def test_a_dropped_connection_is_a_retryable_connection_error(
    poll_error: Any, provider: str
) -> None:
    error = poll_error(provider, Faults(drop_rate=1.0))
    assert isinstance(error, ProviderConnectionError) and error.status_code is None
    assert error.retryable and cause_module(error) in {SDKS[provider][0], *HTTP_STACKS}


@pytest.mark.parametrize("provider", SDKS)
def test_a_server_error_is_a_retryable_http_error(poll_error: Any, provider: str) -> None:
    error = poll_error(provider, Faults(http_error_rate=1.0, http_error_codes=(503,)))
    assert isinstance(error, ProviderHTTPError) and error.status_code == 503 and error.retryable
    assert cause_module(error) == SDKS[provider][0]
