"""An unknown model is refused at create with Gemini's 404, as the real SDK sees it
(issue #16 item 5): the batch's model is in the create's path."""

from __future__ import annotations

from pathlib import Path

import pytest
from gemini_support import MODEL, provider_for, sdk_client, write_lines
from google.genai import errors, types

from polybatch.errors import ProviderError
from polybatch.sandbox import SandboxServer
from polybatch.testing.helpers import item

REQUEST = types.InlinedRequest(contents="hi")


def test_the_sdk_gets_a_404_for_an_unknown_model(server: SandboxServer) -> None:
    client = sdk_client(server)
    with pytest.raises(errors.ClientError) as caught:
        client.batches.create(model="gemini-2.5-flsh", src=[REQUEST])
    assert caught.value.code == 404
    assert "models/gemini-2.5-flsh is not found" in str(caught.value.message)
    assert server.engine.batches == {}
    known = client.batches.create(model=MODEL, src=[REQUEST])
    assert known.name


def test_the_adapter_reports_the_404(server: SandboxServer, tmp_path: Path) -> None:
    provider = provider_for(server)
    lines = write_lines(tmp_path / "in.jsonl", provider, [item("a")])
    with pytest.raises(ProviderError) as caught:
        provider.submit(lines, model="gemini-2.5-flsh", metadata={})
    assert caught.value.status_code == 404 and not caught.value.retryable
