"""Embedding batches on Mistral (issue 19 item 3): ``kind="embedding"`` items become
``/v1/embeddings`` batch jobs, through the runner, the real ``mistralai`` SDK and the sandbox over
loopback HTTP; results carry vectors, usage and cost (mistral-embed's batch price)."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from mistral_testlib import ServerFactory

from polybatch import Job, submit
from polybatch.errors import ItemValidationError
from polybatch.items import BatchItem, Message
from polybatch.providers import META_CHUNK
from polybatch.sandbox import SandboxServer
from polybatch.testing import CliOutcome, check_embedding_job

EMBED = "mistral-embed"
#: mistral-embed's batch rate, USD per million input tokens (prices.toml)
BATCH_RATE = Decimal("0.05")


def embedding_items(n: int, **fields: Any) -> list[BatchItem]:
    return [
        BatchItem(
            custom_id=f"e-{i}", kind="embedding", input=f"Vector number {i}, please.", **fields
        )
        for i in range(n)
    ]


def fast(job: Job) -> Job:
    return job.wait(poll_min=0.02, poll_max=0.2, timeout=60)


def jobs_in_chunk_order(server: SandboxServer) -> list[Any]:
    """The sandbox's jobs in chunk order (chunks in flight are created concurrently)."""
    return sorted(server.engine.batches.values(), key=lambda b: int(b.metadata[META_CHUNK]))


def job_endpoints(server: SandboxServer) -> list[str]:
    return [j.extra["endpoint"] for j in jobs_in_chunk_order(server)]


def test_embedding_job_returns_vectors_usage_and_cost(server: SandboxServer) -> None:
    items = embedding_items(4)
    job = fast(submit(items, f"mistral:{EMBED}", sandbox=server))
    results = check_embedding_job(
        Job.load(job.id), items, model=EMBED, size=1024, batch_rate=BATCH_RATE
    )
    # the vector is kept once, in ``embedding``
    assert all(r.response and "embedding" not in r.response["data"][0] for r in results)
    assert job_endpoints(server) == ["/v1/embeddings"]


def test_dimensions_go_out_as_output_dimension(server: SandboxServer) -> None:
    job = fast(submit(embedding_items(2, dimensions=8), f"mistral:{EMBED}", sandbox=server))
    assert [len(r.embedding or []) for r in job.results()] == [8, 8]
    (sandbox_job,) = server.engine.batches.values()
    assert [r.body for r in sandbox_job.requests] == [
        {"input": "Vector number 0, please.", "output_dimension": 8},
        {"input": "Vector number 1, please.", "output_dimension": 8},
    ]


def test_mixed_chat_and_embedding_input_becomes_separate_jobs(server: SandboxServer) -> None:
    chat = BatchItem(custom_id="c-0", messages=[Message(role="user", content="Hello")])
    emb = embedding_items(2, model=EMBED)
    job = fast(submit([chat, *emb], "mistral:mistral-small-latest", sandbox=server))
    results = list(job.results())
    assert all(r.ok for r in results), [r.error for r in results]
    assert [r.embedding is not None for r in results] == [False, True, True]
    assert results[0].text
    assert job_endpoints(server) == ["/v1/chat/completions", "/v1/embeddings"]
    assert [j.extra["model"] for j in jobs_in_chunk_order(server)] == [
        "mistral-small-latest",
        EMBED,
    ]


def test_bad_embedding_fields_are_refused_before_uploading(make_server: ServerFactory) -> None:
    server = make_server()
    bad = BatchItem(custom_id="e-9", kind="embedding", input="x", extra={"output_dtype": "float64"})
    with pytest.raises(ItemValidationError) as caught:
        submit([*embedding_items(1), bad], f"mistral:{EMBED}", sandbox=server)
    err = caught.value
    assert err.field == "extra.output_dtype" and err.line == 2 and "'e-9'" in str(err)
    assert server.engine.requests_seen == []


def test_cli_runs_an_embeddings_file(polybatch_cli: Any, tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text(
        "".join(
            json.dumps({"custom_id": f"q{i}", "kind": "embedding", "input": f"text {i}"}) + "\n"
            for i in range(3)
        )
    )
    out = tmp_path / "out.jsonl"
    outcome: CliOutcome = polybatch_cli(
        "run", str(src), "--model", f"mistral:{EMBED}", "--sandbox", "--no-progress", "-o", str(out)
    )
    assert outcome.exit_code == 0, outcome.stderr
    lines = [json.loads(raw) for raw in out.read_text().splitlines()]
    assert [r["custom_id"] for r in lines] == ["q0", "q1", "q2"]
    assert all(r["status"] == "succeeded" and len(r["embedding"]) == 1024 for r in lines)
    assert all(r["usage"]["input_tokens"] > 0 for r in lines)
