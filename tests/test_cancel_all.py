"""``cancel`` cancels every running batch (issue #15 item 4), even when one has already ended.

The sandbox answers a cancel of an ended batch as the services do (OpenAI 409, Anthropic 400);
the job's other batches must still be cancelled, ``cancel`` exits 0, and ``results`` works.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from polybatch import Job, submit
from polybatch.items import BatchItem
from polybatch.plugins import get_registry
from polybatch.testing import SANDBOX_KEY, Sandbox, run_cli

MODELS = {"openai": "openai:gpt-4o-mini", "anthropic": "anthropic:claude-haiku-4-5"}
#: the status each service answers a cancel of an ended batch with
ENDED_STATUS = {"openai": 409, "anthropic": 400}


def write_items(path: Path, n: int) -> Path:
    with path.open("w") as fh:
        for i in range(n):
            fh.write(json.dumps({"custom_id": f"q-{i:03d}", "prompt": f"Question {i}?"}) + "\n")
    return path


def first_done_others_running(sandbox: Sandbox, job: Job) -> list[str]:
    """Chunk 0's batch ends at the provider (the job has not seen it yet); 1 and 2 run on."""
    ids = [c.batch_id for c in job.chunks()]
    assert all(ids) and [c.state for c in job.chunks()] == ["submitted"] * 3
    sandbox.engine.batches[str(ids[0])].rate = None  # all its requests run at once
    assert sandbox.engine.batches[str(ids[0])].state(sandbox.engine.now()) == "completed"
    return [str(i) for i in ids]


#: the cancel route under each provider's base URL, and how its key is sent
CANCEL_PATH = {"openai": "/batches/{id}/cancel", "anthropic": "/v1/messages/batches/{id}/cancel"}


@pytest.mark.parametrize("provider", list(MODELS))
def test_the_sandbox_refuses_to_cancel_an_ended_batch_and_the_adapter_shrugs(
    polybatch_sandbox: Callable[..., Sandbox], provider: str
) -> None:
    sandbox = polybatch_sandbox(providers=[provider])
    p = sandbox.provider(provider)
    path = Path("in.jsonl")
    item = BatchItem(custom_id="a", messages=[{"role": "user", "content": "hi?"}])
    path.write_bytes(p.encode(item, "x") + b"\n")
    sub = p.submit(path, model=MODELS[provider].split(":", 1)[1], metadata={})
    assert p.poll(sub.batch_id).state == "completed"
    base = sandbox.settings(provider)["base_url"]
    answer = httpx.post(
        base + CANCEL_PATH[provider].format(id=sub.batch_id),
        headers={"authorization": f"Bearer {SANDBOX_KEY}", "x-api-key": SANDBOX_KEY},
    )
    assert answer.status_code == ENDED_STATUS[provider]
    body = answer.json()
    if provider == "openai":
        assert body["error"]["type"] == "invalid_request_error"
        assert "completed" in body["error"]["message"]
    else:
        assert body["type"] == "error"
        assert body["error"]["type"] == "invalid_request_error"
    p.cancel(sub.batch_id)  # the adapter: cancelling an ended batch is harmless
    assert p.poll(sub.batch_id).state == "completed"


@pytest.mark.parametrize("provider", list(MODELS))
def test_python_cancel_cancels_every_running_batch(
    polybatch_sandbox: Callable[..., Sandbox], tmp_path: Path, provider: str
) -> None:
    sandbox = polybatch_sandbox(providers=[provider], rate=0.01)
    path = write_items(tmp_path / "in.jsonl", 12)
    job = submit(path, MODELS[provider], sandbox=sandbox.server, chunk_size=4)
    ids = first_done_others_running(sandbox, job)
    job.cancel()
    engine = sandbox.engine
    assert [engine.batches[b].cancel_requested_at is not None for b in ids] == [False, True, True]
    job.wait(poll_min=0.01, poll_max=0.05, timeout=30)
    assert job.status().state == "cancelled"
    statuses = [r.status for r in job.results()]
    assert statuses == ["succeeded"] * 4 + ["cancelled"] * 8


@pytest.mark.slow
@pytest.mark.timeout(400)  # child processes on a loaded machine
@pytest.mark.parametrize("provider", list(MODELS))
def test_cli_cancel_exits_0_cancels_the_running_batches_and_results_work(
    polybatch_sandbox: Callable[..., Sandbox], tmp_path: Path, provider: str
) -> None:
    sandbox = polybatch_sandbox(providers=[provider], rate=0.01)
    cls = get_registry().provider_class(provider)
    env = {**os.environ, **cls.sandbox_env(sandbox.url, SANDBOX_KEY)}
    path = write_items(tmp_path / "in.jsonl", 12)
    sub = run_cli(["submit", str(path), "-m", MODELS[provider], "--chunk-size", "4"], env)
    assert sub.returncode == 0, sub.stderr
    job_id = sub.stdout.strip()
    ids = first_done_others_running(sandbox, Job.load(job_id))

    cancel = run_cli(["cancel", job_id], env)
    assert cancel.returncode == 0, cancel.stderr
    assert "Traceback" not in cancel.stderr
    engine = sandbox.engine
    assert [engine.batches[b].cancel_requested_at is not None for b in ids] == [False, True, True]
    assert all(engine.batches[b].state(engine.now()) == "cancelled" for b in ids[1:])

    res: subprocess.CompletedProcess[str] = run_cli(["results", job_id], env)
    assert res.returncode == 0, res.stderr
    statuses = [json.loads(line)["status"] for line in res.stdout.splitlines()]
    assert statuses == ["succeeded"] * 4 + ["cancelled"] * 8


# -- item 10: leftovers of a batch that ended with no output or error file -------------------
@pytest.mark.parametrize(
    ("engine_options", "status", "code"),
    [
        ({"validation_seconds": 1000.0}, "cancelled", "batch_cancelled"),
        ({"validation_seconds": 1000.0, "expiry_seconds": 10.0}, "expired", "batch_expired"),
    ],
    ids=["cancelled", "expired"],
)
def test_a_batch_that_ended_before_it_ran_labels_its_items_by_its_state(
    polybatch_sandbox: Callable[..., Sandbox],
    tmp_path: Path,
    engine_options: dict[str, float],
    status: str,
    code: str,
) -> None:
    sandbox = polybatch_sandbox(providers=["openai"], **engine_options)
    path = write_items(tmp_path / "in.jsonl", 4)
    job = submit(path, MODELS["openai"], sandbox=sandbox.server, chunk_size=4)
    if status == "cancelled":
        job.cancel()
    sandbox.engine.clock.advance(2000.0)
    job.wait(poll_min=0.01, poll_max=0.05, timeout=30)
    (batch,) = sandbox.engine.batches.values()
    assert batch.state(sandbox.engine.now()) == status
    assert batch.output == {}, "the batch ended with neither an output nor an error file"
    results = list(job.results())
    assert [r.status for r in results] == [status] * 4
    assert all(r.error and r.error.code == code and r.error.retryable for r in results)
    assert job.counts() == {status: 4}
