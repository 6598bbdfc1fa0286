"""A request the anthropic SDK refuses to serialise is a permanent error (issue 15, item 6).

The SDK encodes the create body itself (requests are inline); ``NaN`` or a lone surrogate in a
lines file makes it raise ValueError before anything is sent. That must be a ProviderError that
is not retryable (the SDK kit's ValueError entry), never a transient failure retried for many
minutes. Planning refuses such items before they get here (``tests/test_bad_inputs.py``); this is
the last line, for a lines file written by something else.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from anthropic_support import MODEL, provider_for

from polybatch.errors import ProviderConnectionError, ProviderError
from polybatch.sandbox import SandboxServer

LINES = {
    "nan": b'{"custom_id":"a","params":{"model":"m","max_tokens":5,'
    b'"messages":[{"role":"user","content":"x"}],"temperature":NaN}}\n',
    "lone-surrogate": b'{"custom_id":"a","params":{"model":"m","max_tokens":5,'
    b'"messages":[{"role":"user","content":"x\\ud800"}]}}\n',
}


@pytest.mark.parametrize("what", sorted(LINES))
def test_a_body_the_sdk_refuses_is_permanent_and_never_sent(
    what: str, server: SandboxServer, tmp_path: Path
) -> None:
    path = tmp_path / "lines.jsonl"
    path.write_bytes(LINES[what])
    provider = provider_for(server)

    async def submit() -> None:
        try:
            await provider.asubmit(path, model=MODEL, metadata={})
        finally:
            await provider.aclose()

    with pytest.raises(ProviderError) as info:
        asyncio.run(submit())
    assert not isinstance(info.value, ProviderConnectionError)
    assert not info.value.retryable
    assert str(info.value).startswith("anthropic: create batch failed: ")
    assert server.engine.batches == {}
    assert not any(method == "POST" for method, _ in server.engine.requests_seen)
