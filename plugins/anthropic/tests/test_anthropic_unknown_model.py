"""An unknown model ends each request as the Messages Batches API ends it: an ``errored``
result whose error is ``not_found_error`` (issue #16 item 5), over HTTP with the real SDK."""

from __future__ import annotations

from pathlib import Path

import pytest
from anthropic_support import MODEL, strict_client

from polybatch import submit
from polybatch.sandbox import SandboxServer


def params(model: str) -> dict[str, object]:
    return {"model": model, "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}


def test_an_unknown_model_is_a_not_found_error_result(server: SandboxServer) -> None:
    client = strict_client(server)
    batch = client.messages.batches.create(
        requests=[
            {"custom_id": "good", "params": params(MODEL)},  # type: ignore[list-item]
            {"custom_id": "typo", "params": params("claude-haku-4-5")},  # type: ignore[list-item]
        ]
    )
    results = {r.custom_id: r.result for r in client.messages.batches.results(batch.id)}
    assert results["good"].type == "succeeded"
    typo = results["typo"]
    assert typo.type == "errored"
    assert typo.error.error.type == "not_found_error"
    assert typo.error.error.message == "model: claude-haku-4-5"


def test_a_typo_is_warned_about_and_fails_through_polybatch(
    server: SandboxServer, polybatch_home: Path
) -> None:
    with pytest.warns(UserWarning, match=r"\(did you mean claude-haiku-4-5\?\)"):
        job = submit(["hello"], "anthropic:claude-haku-4-5", sandbox=server)
    job.wait(poll_min=0.02, timeout=60)
    [result] = list(job.results())
    assert result.status == "errored" and result.error is not None
    assert "model: claude-haku-4-5" in result.error.message
