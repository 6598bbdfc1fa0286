"""Item and result helpers every provider's tests need (one copy, not one per plugin)."""

from __future__ import annotations

import math
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

from ..formats import response_line
from ..items import BatchItem, BatchResult
from ..providers import BatchProvider, BatchStatus, SubmittedBatch
from ..sandbox import SandboxEngine
from ..sandbox.model import SyntheticModel
from ..tokens import count_tokens


def make_items(n: int, prefix: str = "c", **fields: Any) -> list[BatchItem]:
    """``n`` one-turn items with ids ``{prefix}0`` .. ``{prefix}{n-1}``."""
    return [
        BatchItem(
            custom_id=f"{prefix}{i}",
            messages=[{"role": "user", "content": f"question number {i}"}],
            **fields,
        )
        for i in range(n)
    ]


def item(custom_id: str, text: str = "Say something", **fields: Any) -> BatchItem:
    """A one-turn item (``fields`` as BatchItem takes them, validated)."""
    return BatchItem.model_validate(
        {"custom_id": custom_id, "messages": [{"role": "user", "content": text}], **fields}
    )


def encode_lines(
    path: Path, provider: BatchProvider, items: Iterable[BatchItem], model: str
) -> Path:
    """Encode ``items`` for ``provider`` into a lines file, as the runner does; returns ``path``."""
    return write_lines(path, (provider.encode(i, i.model or model) for i in items))


def write_lines(path: Path, lines: Iterable[bytes]) -> Path:
    """Write wire lines, one per line, as the runner does; returns ``path``."""
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path


def submit_items(
    provider: BatchProvider,
    items: Sequence[BatchItem],
    directory: Path,
    *,
    model: str,
    metadata: dict[str, str] | None = None,
    name: str = "chunk.jsonl",
) -> SubmittedBatch:
    """encode -> a lines file ``directory / name`` -> submit."""
    lines = [provider.encode(item, item.model or model) for item in items]
    path = write_lines(directory / name, lines)
    return provider.submit(path, model=model, metadata=metadata or {})


def wait_terminal(
    provider: BatchProvider, engine: SandboxEngine, batch_id: str, *, step: float = 5.0
) -> BatchStatus:
    """Poll until terminal, moving the sandbox clock by ``step`` instead of sleeping."""
    for _ in range(10_000):
        status = provider.poll(batch_id)
        if status.terminal:
            return status
        engine.clock.advance(step)
    raise AssertionError(f"batch {batch_id} never ended")


def event_kinds(job: Any) -> Counter[str]:
    """How many of each event kind a job's ledger logged ("queue-full", "halved", ...)."""
    return Counter(str(e["kind"]) for e in job.ledger.events(job.id))


def by_id(results: Iterable[BatchResult]) -> dict[str, BatchResult]:
    """Results by custom id, checking none came back twice."""
    out: dict[str, BatchResult] = {}
    for r in results:
        assert r.custom_id not in out, f"custom_id {r.custom_id!r} came back twice"
        out[r.custom_id] = r
    return out


def run_cli(
    args: Sequence[str],
    env: Mapping[str, str],
    *,
    cwd: str | Path | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """``polybatch ARGS`` in a child process, as a user runs it (the tests that kill it or need a
    process of its own); its exit code, stdout and stderr. ``env`` is the whole environment."""
    return subprocess.run(
        [sys.executable, "-m", "polybatch.cli", *args],
        capture_output=True,
        text=True,
        env=dict(env),
        cwd=cwd,
        timeout=timeout,
        check=False,
    )


@contextmanager
def cli_server(
    args: Sequence[str],
    env: Mapping[str, str] | None = None,
    *,
    cwd: str | Path | None = None,
) -> Iterator[str]:
    """``polybatch ARGS`` serving in the foreground of a child process (``sandbox``, ``webhooks
    serve``): yields the first line it prints (its URL), then terminates and reaps it."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "polybatch.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=None if env is None else dict(env),
        cwd=cwd,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline().strip()
        if proc.poll() is not None and proc.stderr is not None:
            raise AssertionError(f"{first}\n{proc.stderr.read()}")
        yield first
    finally:
        proc.terminate()
        proc.communicate(timeout=10)  # reaps it and closes its pipes


def chat_completion(usage: Mapping[str, Any], model: str = "m") -> dict[str, Any]:
    """A one-choice ``chat.completion`` body (OpenAI's shape, which many vendors share)."""
    message = {"role": "assistant", "content": "ok"}
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": dict(usage),
    }


def output_line(body: Mapping[str, Any], custom_id: str = "a") -> dict[str, Any]:
    """An OpenAI-style batch output line carrying ``body`` as a 200 response."""
    return response_line("batch_req_1", custom_id, status_code=200, body=body, request_id="req_1")


def check_embedding_job(
    job: Any, items: Sequence[BatchItem], *, model: str, size: int, batch_rate: Decimal
) -> list[BatchResult]:
    """Assert what a finished embedding job on the sandbox must show, and return its results.

    One result per item, in order, each the vector the sandbox's SyntheticModel makes for the
    item's input (``size`` long, unit length) with the input's tokens as its only usage; the job's
    usage is their sum and its cost that at ``batch_rate`` USD per million input tokens, half of
    the standard cost.
    """
    results = list(job.results())
    assert [r.custom_id for r in results] == [i.custom_id for i in items]
    synthetic = SyntheticModel()
    for it, r in zip(items, results, strict=True):
        assert r.ok and r.text is None and r.model == model, r
        assert isinstance(it.input, str), it  # an embedding item's input is its text
        want = synthetic.embed(model=model, text=it.input, dimensions=it.dimensions)
        assert r.embedding == want and len(want) == size
        assert math.isclose(math.fsum(v * v for v in want), 1.0, abs_tol=1e-3)
        assert r.usage.input_tokens == count_tokens(it.input) > 0
        assert r.usage.output_tokens == 0
    total_in = sum(r.usage.input_tokens for r in results)
    assert job.usage().input_tokens == total_in
    cost = job.cost()
    assert cost.total == cost.input == Decimal(total_in) * batch_rate / 1_000_000 > 0
    assert job.cost("standard").total == 2 * cost.total
    return results
