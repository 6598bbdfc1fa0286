"""Embeddings (issue 8, item 2): ``kind="embedding"`` items on OpenAI and Azure, end to end.

Through the runner, the real openai SDK and the sandbox over loopback: vectors, usage and cost; a
mixed chat + embedding input becomes separate batches (a batch has one endpoint); providers
without embedding batches refuse such items before anything is uploaded.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import ValidationError

from polybatch import Job, submit
from polybatch.errors import ItemValidationError
from polybatch.items import BatchItem, Message
from polybatch.jobs.costs import job_cost
from polybatch.pricing import price_registry
from polybatch.providers import META_CHUNK
from polybatch.sandbox import SandboxServer
from polybatch.sandbox.model import SyntheticModel
from polybatch.testing import check_embedding_job
from polybatch.tokens import count_tokens

EMBED = "text-embedding-3-small"
#: OpenAI's batch rate for text-embedding-3-small, USD per million input tokens (prices.toml)
BATCH_RATE = Decimal("0.01")


def texts(n: int) -> list[str]:
    return [f"The quick brown fox number {i} jumps over the lazy dog." for i in range(n)]


def embedding_items(n: int, **extra: object) -> list[BatchItem]:
    return [
        BatchItem(custom_id=f"e-{i}", kind="embedding", input=t, model=EMBED, **extra)  # type: ignore[arg-type]
        for i, t in enumerate(texts(n))
    ]


def fast(job: Job) -> Job:
    return job.wait(poll_min=0.02, poll_max=0.2, timeout=60)


def endpoints(server: SandboxServer) -> list[str]:
    """The endpoint of every batch the sandbox holds, in chunk order (chunks in flight are
    created concurrently, so the sandbox may receive them in any order)."""
    batches = sorted(server.engine.batches.values(), key=lambda b: int(b.metadata[META_CHUNK]))
    return [b.extra["endpoint"] for b in batches]


# -- the item -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"kind": "embedding"}, "needs 'input'"),
        ({"kind": "embedding", "input": "x", "temperature": 0.5}, "cannot set temperature"),
        (
            {"kind": "embedding", "input": "x", "messages": [{"role": "user", "content": "y"}]},
            "not 'messages'",
        ),
        ({"kind": "embedding", "input": ""}, "at least 1 character"),
        ({"kind": "embedding", "input": "x", "dimensions": 0}, "greater than or equal to 1"),
        (
            {"input": "x", "messages": [{"role": "user", "content": "y"}]},
            "belongs to kind='embedding'",
        ),
    ],
)
def test_embedding_items_are_validated(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        BatchItem.model_validate(fields)


def test_an_embedding_item_round_trips_through_json() -> None:
    item = embedding_items(1, dimensions=8)[0]
    line = item.model_dump_json(exclude_none=True, exclude_defaults=True)
    assert BatchItem.model_validate_json(line) == item
    assert "messages" not in line


# -- OpenAI ---------------------------------------------------------------------------------------
def test_openai_embeddings_end_to_end(sandbox_server: SandboxServer) -> None:
    items = embedding_items(5)
    job = fast(submit(items, f"openai:{EMBED}", sandbox=sandbox_server))
    results = check_embedding_job(
        Job.load(job.id), items, model=EMBED, size=1536, batch_rate=BATCH_RATE
    )
    assert all(r.response and "embedding" not in r.response["data"][0] for r in results)
    assert endpoints(sandbox_server) == ["/v1/embeddings"]


def test_dimensions_and_base64_vectors(sandbox_server: SandboxServer) -> None:
    items = [
        *embedding_items(2, dimensions=8),
        BatchItem(
            custom_id="b64",
            kind="embedding",
            input="packed as float32",
            model=EMBED,
            dimensions=8,
            extra={"encoding_format": "base64"},
        ),
    ]
    results = list(fast(submit(items, f"openai:{EMBED}", sandbox=sandbox_server)).results())
    assert [len(r.embedding or []) for r in results] == [8, 8, 8]
    want = SyntheticModel().embed(model=EMBED, text="packed as float32", dimensions=8)
    assert results[2].embedding == pytest.approx(want, abs=1e-6)


def test_mixed_chat_and_embedding_input_becomes_separate_batches(
    sandbox_server: SandboxServer,
) -> None:
    chat = [
        BatchItem(custom_id=f"c-{i}", messages=[Message(role="user", content=f"Hello {i}")])
        for i in range(2)
    ]
    emb = embedding_items(3)
    items = [chat[0], *emb, chat[1]]
    job = fast(submit(items, "openai:gpt-4o-mini", sandbox=sandbox_server))
    results = list(job.results())
    assert [r.custom_id for r in results] == [i.custom_id for i in items]
    assert all(r.ok for r in results), [r.error for r in results]
    assert [r.embedding is not None for r in results] == [False, True, True, True, False]
    assert all(r.text for r in results if r.embedding is None)
    # a batch holds one endpoint: chat, embeddings, chat (each chunk's lines agree with it)
    assert endpoints(sandbox_server) == [
        "/v1/chat/completions",
        "/v1/embeddings",
        "/v1/chat/completions",
    ]
    assert [c.count for c in job.chunks()] == [1, 3, 1]


# -- Azure ----------------------------------------------------------------------------------------
AZURE_EMBEDDING_PRICES = f"""
[[price]]
provider = "azure"
model = "{EMBED}"
mode = "batch"
input = "0.01"
output = "0"
source = "test"
"""


# the bundled prices have no Azure embedding rows yet, so submit cannot estimate: expected here
@pytest.mark.filterwarnings("ignore:no estimate:UserWarning")
def test_azure_embeddings_end_to_end(sandbox_server: SandboxServer, tmp_path: Path) -> None:
    items = embedding_items(4)
    job = fast(
        submit(
            items, f"azure:{EMBED}", sandbox=sandbox_server, provider_settings={"embeddings": True}
        )
    )
    results = list(job.results())
    assert all(r.ok and r.provider == "azure" for r in results), [r.error for r in results]
    model = SyntheticModel()
    assert [r.embedding for r in results] == [
        model.embed(model=EMBED, text=i.input or "") for i in items
    ]
    assert all(
        r.usage.input_tokens == count_tokens(i.input or "")
        for i, r in zip(items, results, strict=True)
    )
    assert endpoints(sandbox_server) == ["/embeddings"]
    # the bundled price file has no Azure embedding rows (yet): price with a user file
    prices = tmp_path / "prices.toml"
    prices.write_text(AZURE_EMBEDDING_PRICES)
    registry = price_registry(prices, providers=["azure"])
    total_in = sum(r.usage.input_tokens for r in results)
    assert job_cost(job, registry=registry).total == Decimal(total_in) * BATCH_RATE / 1_000_000


def test_azure_refuses_embeddings_unless_the_resource_is_said_to_run_them(
    sandbox_server: SandboxServer,
) -> None:
    with pytest.raises(
        ItemValidationError, match="Azure OpenAI global batch does not run embeddings"
    ):
        submit(embedding_items(2), f"azure:{EMBED}", sandbox=sandbox_server)
    assert sandbox_server.engine.requests_seen == []


def test_provider_limits_cap_embedding_batches() -> None:
    from polybatch.plugins import get_registry

    OpenAIProvider = get_registry().provider_class("openai")
    AzureProvider = get_registry().provider_class("azure")
    assert OpenAIProvider.limits.max_embedding_inputs == 50_000
    assert AzureProvider.limits.max_embedding_inputs == 50_000
    assert AzureProvider.limits.max_requests == 100_000, "chat batches keep Azure's own limit"


# -- providers without embedding batches ----------------------------------------------------------
@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("anthropic:claude-haiku-4-5", "Anthropic does not offer embedding batches"),
    ],
)
def test_providers_without_embeddings_refuse_before_uploading(
    spec: str, says: str, make_sandbox: Callable[..., SandboxServer]
) -> None:
    server = make_sandbox()
    chat = BatchItem(custom_id="c", messages=[Message(role="user", content="hi")])
    with pytest.raises(ItemValidationError) as caught:
        submit([chat, *embedding_items(1)], spec, sandbox=server)
    err = caught.value
    assert err.field == "kind" and err.line == 2
    assert says in str(err) and "'e-0'" in str(err)
    assert server.engine.requests_seen == []
