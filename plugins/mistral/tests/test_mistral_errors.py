"""mistralai exceptions from real calls against the sandbox become polybatch errors."""

from __future__ import annotations

import httpx2
import pytest
from mistralai.client.errors import MistralError

from polybatch.errors import ProviderConnectionError, ProviderError, ProviderHTTPError
from polybatch.sandbox import Faults, SandboxEngine, SandboxServer
from polybatch_mistral.provider import MistralProvider

KEY = "mistral-errors-key-0123456789"


def poll_error(faults: Faults | None = None, key: str = KEY) -> ProviderError:
    engine = SandboxEngine(api_key=KEY, faults=faults or Faults())
    server = SandboxServer(engine, providers={"mistral": MistralProvider}).start()
    try:
        settings = MistralProvider.sandbox_settings(server.url, key)
        provider = MistralProvider(**settings, settings={"retries": False})
        with pytest.raises(ProviderError) as info:
            provider.poll("job-missing")
        return info.value
    finally:
        server.stop()


def test_a_wrong_key_is_a_scrubbed_401() -> None:
    wrong = "mistral-wrong-key-9876543210"
    error = poll_error(key=wrong)
    assert isinstance(error, ProviderHTTPError) and error.status_code == 401
    assert not error.retryable and isinstance(error.__cause__, MistralError)
    assert wrong not in str(error) and "(check MISTRAL_API_KEY)" in str(error)


def test_an_unknown_job_is_a_404() -> None:
    error = poll_error()
    assert isinstance(error, ProviderHTTPError) and error.status_code == 404
    assert not error.retryable and isinstance(error.__cause__, MistralError)


def test_a_dropped_connection_is_a_retryable_connection_error() -> None:
    error = poll_error(Faults(drop_rate=1.0))
    assert isinstance(error, ProviderConnectionError) and error.retryable
    assert error.status_code is None and isinstance(error.__cause__, httpx2.TransportError)


def test_a_rate_limit_is_a_retryable_http_error() -> None:
    error = poll_error(Faults(http_error_rate=1.0, http_error_codes=(429,)))
    assert isinstance(error, ProviderHTTPError) and error.status_code == 429 and error.retryable
