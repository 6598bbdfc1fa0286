"""SDK exceptions from real calls against the sandbox become the right polybatch errors."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest

from polybatch.errors import ProviderConnectionError, ProviderError, ProviderHTTPError
from polybatch.sandbox import Faults, SandboxEngine, SandboxServer
from polybatch_openai.azure import AzureProvider
from polybatch_openai.compatible import GroqProvider
from polybatch_openai.provider import OpenAIProvider

KEY = "sk-errors-test-key-0123456789"
WRONG = "sk-wrong-errors-key-9876543210"
PROVIDERS: dict[str, tuple[type[OpenAIProvider], dict[str, Any]]] = {
    "openai": (OpenAIProvider, {}),
    "azure": (AzureProvider, {}),
    "azure-v1": (AzureProvider, {"style": "v1"}),
    "groq": (GroqProvider, {}),
}


@pytest.fixture
def serve() -> Iterator[Any]:
    servers: list[SandboxServer] = []

    def start(faults: Faults | None = None) -> SandboxServer:
        engine = SandboxEngine(api_key=KEY, faults=faults or Faults())
        providers = {cls.name: cls for cls, _ in PROVIDERS.values()}
        servers.append(SandboxServer(engine, providers=providers).start())
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


def poll_error(server: SandboxServer, which: str, key: str = KEY) -> ProviderError:
    cls, settings = PROVIDERS[which]
    provider = cls(**cls.sandbox_settings(server.url, key), settings={**settings, "max_retries": 0})
    with pytest.raises(ProviderError) as info:
        provider.poll("batch_missing")
    return info.value


@pytest.mark.parametrize("which", PROVIDERS)
def test_a_wrong_key_is_a_scrubbed_401_naming_the_variable(serve: Any, which: str) -> None:
    error = poll_error(serve(), which, key=WRONG)
    assert isinstance(error, ProviderHTTPError) and error.status_code == 401
    assert not error.retryable and isinstance(error.__cause__, openai.AuthenticationError)
    assert WRONG not in str(error) and f"(check {PROVIDERS[which][0].credential_env[0]})" in str(
        error
    )


@pytest.mark.parametrize("which", PROVIDERS)
def test_an_unknown_batch_is_a_404(serve: Any, which: str) -> None:
    error = poll_error(serve(), which)
    assert isinstance(error, ProviderHTTPError) and error.status_code == 404
    assert not error.retryable and isinstance(error.__cause__, openai.NotFoundError)


@pytest.mark.parametrize("which", PROVIDERS)
def test_a_dropped_connection_is_a_retryable_connection_error(serve: Any, which: str) -> None:
    error = poll_error(serve(Faults(drop_rate=1.0)), which)
    assert isinstance(error, ProviderConnectionError) and error.status_code is None
    assert error.retryable and isinstance(error.__cause__, openai.APIConnectionError)


@pytest.mark.parametrize("which", PROVIDERS)
def test_a_server_error_is_a_retryable_http_error(serve: Any, which: str) -> None:
    error = poll_error(serve(Faults(http_error_rate=1.0, http_error_codes=(503,))), which)
    assert isinstance(error, ProviderHTTPError) and error.status_code == 503 and error.retryable
