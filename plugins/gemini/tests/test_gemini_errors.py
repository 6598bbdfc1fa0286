"""google-genai exceptions from real calls against the sandbox become polybatch errors."""

from __future__ import annotations

import pytest
from google.genai import errors as genai_errors

from polybatch.errors import ProviderConnectionError, ProviderError, ProviderHTTPError
from polybatch.sandbox import Faults, SandboxEngine, SandboxServer
from polybatch_gemini.provider import GeminiProvider

KEY = "AIzaSyErrorsTestKey0123456789abcdefghij"


def poll_error(
    faults: Faults | None = None, key: str = KEY, batch: str = "batches/x"
) -> ProviderError:
    engine = SandboxEngine(api_key=KEY, faults=faults or Faults())
    server = SandboxServer(engine, providers={"gemini": GeminiProvider}).start()
    try:
        provider = GeminiProvider(**GeminiProvider.sandbox_settings(server.url, key))
        with pytest.raises(ProviderError) as info:
            provider.poll(batch)
        return info.value
    finally:
        server.stop()


def test_a_wrong_key_is_a_scrubbed_401() -> None:
    wrong = "AIzaSyWrongKey9876543210zyxwvutsrqpon"
    error = poll_error(key=wrong)
    assert isinstance(error, ProviderHTTPError) and error.status_code == 401
    assert not error.retryable and isinstance(error.__cause__, genai_errors.ClientError)
    assert wrong not in str(error) and "(check GEMINI_API_KEY)" in str(error)


def test_an_unknown_batch_is_a_404() -> None:
    error = poll_error()
    assert isinstance(error, ProviderHTTPError) and error.status_code == 404
    assert not error.retryable and isinstance(error.__cause__, genai_errors.ClientError)


def test_a_name_that_is_no_batch_name_is_refused_without_an_invented_status() -> None:
    error = poll_error(batch="not-a-batch-name")
    assert type(error) is ProviderError and error.status_code is None and not error.retryable


def test_a_dropped_connection_is_a_retryable_connection_error() -> None:
    error = poll_error(Faults(drop_rate=1.0))
    assert isinstance(error, ProviderConnectionError) and error.retryable
    assert error.status_code is None and not isinstance(error.__cause__, genai_errors.APIError)


def test_a_server_error_is_a_retryable_http_error() -> None:
    error = poll_error(Faults(http_error_rate=1.0, http_error_codes=(500,)))
    assert isinstance(error, ProviderHTTPError) and error.status_code == 500 and error.retryable
    assert isinstance(error.__cause__, genai_errors.ServerError)
