"""Planning embedding items (issue 8): kind boundaries, the per-batch input cap, no chat defaults,
and providers without embedding batches refusing them. Needs the planner/providers changes."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from polybatch import submit
from polybatch.errors import ItemValidationError
from polybatch.items import BatchItem, Message
from polybatch.plugins import get_registry
from polybatch.sandbox import SandboxServer

EMBED = "text-embedding-3-small"


def emb(i: int, model: str = EMBED) -> BatchItem:
    return BatchItem(custom_id=f"e{i}", kind="embedding", input=f"text {i}", model=model)


def chat(i: int, model: str | None = None) -> BatchItem:
    return BatchItem(
        custom_id=f"c{i}", messages=[Message(role="user", content=f"hi {i}")], model=model
    )


def test_kind_changes_cut_chunks_even_on_one_model(sandbox_server: SandboxServer) -> None:
    # one model name for both kinds (an odd input, but the batch endpoint must still be single)
    items = [chat(0, EMBED), emb(1), emb(2), chat(3, EMBED)]
    job = submit(items, f"openai:{EMBED}", sandbox=sandbox_server)
    assert [c.count for c in job.chunks()] == [1, 2, 1]


def test_embedding_chunks_respect_the_input_cap(
    sandbox_server: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    openai = get_registry().provider_class("openai")
    monkeypatch.setattr(
        openai,
        "limits",
        openai.limits.model_copy(
            update={"max_requests": 50_000, "max_bytes": 10**8, "max_embedding_inputs": 2}
        ),
    )
    items = [*(emb(i) for i in range(5)), *(chat(i) for i in range(5, 8))]
    job = submit(items, "openai:gpt-4o-mini", sandbox=sandbox_server)
    assert [c.count for c in job.chunks()] == [2, 2, 1, 3], "chat chunks are not capped"
    job.wait(poll_min=0.02, timeout=60)
    assert all(r.ok for r in job.results())


def test_job_defaults_do_not_touch_embedding_items(sandbox_server: SandboxServer) -> None:
    items = [emb(0), chat(1)]
    job = submit(
        items, "openai:gpt-4o-mini", sandbox=sandbox_server, system="Be brief.", max_tokens=50
    )
    sent = {i.custom_id: i for i in job.requests()}
    assert sent["e0"].messages == [] and sent["e0"].max_tokens is None
    assert sent["c1"].messages[0].role == "system" and sent["c1"].max_tokens == 50
    job.wait(poll_min=0.02, timeout=60)
    assert [r.ok for r in job.results()] == [True, True]
    est = job.estimate()
    assert est is not None and est["max_output_tokens"] == 50, "embeddings add no output"


def test_providers_that_do_not_declare_embeddings_refuse_them(
    make_sandbox: Callable[..., SandboxServer],
) -> None:
    server = make_sandbox()
    with pytest.raises(ItemValidationError, match="does not offer embedding batches") as caught:
        submit([chat(0), emb(1)], "anthropic:claude-haiku-4-5", sandbox=server)
    assert caught.value.field == "kind" and caught.value.line == 2
    assert server.engine.requests_seen == []
