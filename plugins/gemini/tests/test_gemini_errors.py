"""Gemini's own error cases: no HTTP status is invented to steer the runner's retries."""

from __future__ import annotations

import pytest

from polybatch.errors import ProviderError
from polybatch_gemini.provider import GeminiProvider


def test_a_name_that_is_no_batch_name_is_refused_without_an_invented_status() -> None:
    provider = GeminiProvider(api_key="gm-test-key", base_url="http://127.0.0.1:9/gemini")
    with pytest.raises(ProviderError) as info:
        provider.poll("not-a-batch-name")
    error = info.value
    assert type(error) is ProviderError and error.status_code is None and not error.retryable
    assert "batches/<id>" in str(error)


@pytest.mark.parametrize(
    ("exc", "retryable"),
    [
        (ValueError("the SDK's own check"), False),
        (KeyError("x-goog-upload-url"), True),  # a reply without its upload URL: try again
    ],
)
def test_the_sdks_own_exceptions_carry_no_status(exc: Exception, retryable: bool) -> None:
    provider = GeminiProvider(api_key="gm-test-key")
    with pytest.raises(ProviderError) as info, provider.sdk_errors("upload input file"):
        raise exc
    error = info.value
    assert type(error) is ProviderError and error.status_code is None
    assert error.retryable is retryable and error.__cause__ is exc
