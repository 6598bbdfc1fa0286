"""Embedding batches on Gemini (issue 19 item 3): ``kind="embedding"`` items on an embedding model
go through ``batches.create_embeddings`` (a file of ``{key, request: {content,
output_dimensionality}}`` lines), through the runner, the real ``google-genai`` SDK and the
sandbox over loopback HTTP; results carry vectors, usage and cost (gemini-embedding-001's batch
price)."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from polybatch import Job, submit
from polybatch.errors import ItemValidationError
from polybatch.items import BatchItem, Message
from polybatch.sandbox import SandboxServer
from polybatch.testing import CliOutcome, check_embedding_job

EMBED = "gemini-embedding-001"
#: gemini-embedding-001's batch rate, USD per million input tokens (prices.toml)
BATCH_RATE = Decimal("0.075")


def embedding_items(n: int, **fields: Any) -> list[BatchItem]:
    return [
        BatchItem(custom_id=f"e-{i}", kind="embedding", input=f"Embed sentence {i}.", **fields)
        for i in range(n)
    ]


def fast(job: Job) -> Job:
    return job.wait(poll_min=0.02, poll_max=0.2, timeout=60)


def test_embedding_job_returns_vectors_usage_and_cost(server: SandboxServer) -> None:
    items = embedding_items(3)
    job = fast(submit(items, f"gemini:{EMBED}", sandbox=server))
    results = check_embedding_job(
        Job.load(job.id), items, model=EMBED, size=3072, batch_rate=BATCH_RATE
    )
    assert all(r.response and "values" not in r.response["embedding"] for r in results)
    # created through the embeddings route, from an uploaded file (inline requests have no keys)
    created = [p for m, p in server.engine.requests_seen if m == "POST" and "models/" in p]
    assert created == [f"/gemini/v1/models/{EMBED}:asyncBatchEmbedContent"]
    (batch,) = server.engine.batches.values()
    assert batch.extra["embed"] and batch.extra["input_file"]


def test_lines_and_dimensions_reach_the_api_as_documented(server: SandboxServer) -> None:
    items = embedding_items(2, dimensions=8, extra={"task_type": "RETRIEVAL_DOCUMENT"})
    job = fast(submit(items, f"gemini:{EMBED}", sandbox=server))
    assert [len(r.embedding or []) for r in job.results()] == [8, 8]
    (batch,) = server.engine.batches.values()
    assert [e["request"] for e in batch.requests] == [
        {
            "content": {"parts": [{"text": f"Embed sentence {i}."}]},
            "output_dimensionality": 8,
            "task_type": "RETRIEVAL_DOCUMENT",
        }
        for i in range(2)
    ]


def test_mixed_chat_and_embedding_input_becomes_separate_batches(server: SandboxServer) -> None:
    chat = BatchItem(custom_id="c-0", messages=[Message(role="user", content="Hello")])
    job = fast(
        submit([chat, *embedding_items(2, model=EMBED)], "gemini:gemini-2.5-flash", sandbox=server)
    )
    results = list(job.results())
    assert all(r.ok for r in results), [r.error for r in results]
    assert [r.embedding is not None for r in results] == [False, True, True]
    assert results[0].text
    kinds = sorted(bool(b.extra["embed"]) for b in server.engine.batches.values())
    assert kinds == [False, True]


@pytest.mark.parametrize(
    ("model", "item", "field"),
    [
        ("gemini-2.5-flash", BatchItem(custom_id="e-9", kind="embedding", input="x"), "model"),
        (
            EMBED,
            BatchItem(custom_id="e-9", kind="embedding", input="x", extra={"task": "y"}),
            "extra.task",
        ),
        (
            EMBED,
            BatchItem(custom_id="e-9", kind="embedding", input="x", extra={"task_type": "NOPE"}),
            "extra",
        ),
    ],
)
def test_embedding_items_gemini_cannot_run_are_refused_while_planning(
    server: SandboxServer, model: str, item: BatchItem, field: str
) -> None:
    ok = BatchItem(custom_id="e-0", kind="embedding", input="fine", model=EMBED)
    with pytest.raises(ItemValidationError) as caught:
        submit([ok, item], f"gemini:{model}", sandbox=server)
    err = caught.value
    assert err.field == field and err.line == 2 and "'e-9'" in str(err), err
    assert server.engine.requests_seen == []


def test_cli_runs_an_embeddings_file(polybatch_cli: Any, tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text(
        "".join(
            json.dumps(
                {"custom_id": f"q{i}", "kind": "embedding", "input": f"text {i}", "dimensions": 4}
            )
            + "\n"
            for i in range(3)
        )
    )
    out = tmp_path / "out.jsonl"
    outcome: CliOutcome = polybatch_cli(
        "run", str(src), "--model", f"gemini:{EMBED}", "--sandbox", "--no-progress", "-o", str(out)
    )
    assert outcome.exit_code == 0, outcome.stderr
    assert "experimental" not in outcome.stderr
    lines = [json.loads(raw) for raw in out.read_text().splitlines()]
    assert [r["custom_id"] for r in lines] == ["q0", "q1", "q2"]
    assert all(r["status"] == "succeeded" and len(r["embedding"]) == 4 for r in lines)
    assert all(r["usage"]["input_tokens"] > 0 for r in lines)
