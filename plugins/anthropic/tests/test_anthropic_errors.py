"""Anthropic SDK exceptions from real calls against the sandbox become polybatch errors."""

from __future__ import annotations

import anthropic
import pytest

from polybatch.errors import ProviderConnectionError, ProviderError, ProviderHTTPError
from polybatch.sandbox import Faults, SandboxEngine, SandboxServer
from polybatch_anthropic.provider import AnthropicProvider

KEY = "sk-ant-errors-key-0123456789"


def poll_error(faults: Faults | None = None, key: str = KEY) -> ProviderError:
    engine = SandboxEngine(api_key=KEY, faults=faults or Faults())
    server = SandboxServer(engine, providers={"anthropic": AnthropicProvider}).start()
    try:
        settings = AnthropicProvider.sandbox_settings(server.url, key)
        provider = AnthropicProvider(**settings, settings={"max_retries": 0})
        with pytest.raises(ProviderError) as info:
            provider.poll("msgbatch_missing")
        return info.value
    finally:
        server.stop()


def test_a_wrong_key_is_a_scrubbed_401() -> None:
    wrong = "sk-ant-api03-wrong-0123456789"
    error = poll_error(key=wrong)
    assert isinstance(error, ProviderHTTPError) and error.status_code == 401
    assert not error.retryable and isinstance(error.__cause__, anthropic.AuthenticationError)
    assert wrong not in str(error) and "(check ANTHROPIC_API_KEY)" in str(error)


def test_an_unknown_batch_is_a_404() -> None:
    error = poll_error()
    assert isinstance(error, ProviderHTTPError) and error.status_code == 404
    assert not error.retryable and isinstance(error.__cause__, anthropic.NotFoundError)


def test_a_dropped_connection_is_a_retryable_connection_error() -> None:
    error = poll_error(Faults(drop_rate=1.0))
    assert isinstance(error, ProviderConnectionError) and error.retryable
    assert isinstance(error.__cause__, anthropic.APIConnectionError)


def test_an_overload_is_a_retryable_http_error() -> None:
    error = poll_error(Faults(http_error_rate=1.0, http_error_codes=(529,)))
    assert isinstance(error, ProviderHTTPError) and error.status_code == 529 and error.retryable
