"""A batch the provider no longer knows (issue #15 item 3): the job does not wedge.

The sandbox forgets a batch (``SandboxEngine.forget``), as a provider that lost it, a restarted
sandbox or someone deleting it would: every poll of it is then a 404. After the confirmation
window (:data:`polybatch.jobs.lost.LOST_CONFIRM_SECONDS`, shrunk here) its chunk is marked lost:
its items get ``errored`` results with the retryable code ``batch_lost``, a warning names the chunk
and the batch, the rest of the job completes, and ``retry`` resubmits only those items.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from polybatch import Job, submit
from polybatch.jobs import lost
from polybatch.plugins import get_registry
from polybatch.testing import SANDBOX_KEY, Sandbox, run_cli

MODELS = {"openai": "openai:gpt-4o-mini", "anthropic": "anthropic:claude-haiku-4-5"}
#: batches stay validating this long (sandbox time) until the test moves the clock on
HOLD = 1000.0


def write_items(path: Path, n: int) -> Path:
    with path.open("w") as fh:
        for i in range(n):
            fh.write(json.dumps({"custom_id": f"q-{i:03d}", "prompt": f"Question {i}?"}) + "\n")
    return path


def ids_of(path: Path) -> list[str]:
    return [json.loads(line)["custom_id"] for line in path.read_text().splitlines()]


@pytest.fixture
def no_window(monkeypatch: pytest.MonkeyPatch) -> None:
    """Confirm a lost batch on the next poll that still gets a 404."""
    monkeypatch.setattr(lost, "LOST_CONFIRM_SECONDS", 0.0)


def held_job(sandbox: Sandbox, path: Path, provider: str) -> Job:
    """A 3-chunk job whose batches are all submitted and still validating."""
    job = submit(path, MODELS[provider], sandbox=sandbox.server, chunk_size=4)
    assert [c.state for c in job.chunks()] == ["submitted"] * 3
    return job


def forget_chunk(sandbox: Sandbox, job: Job, idx: int) -> str:
    batch_id = job.chunks()[idx].batch_id
    assert batch_id is not None
    sandbox.engine.forget(batch_id)
    sandbox.engine.clock.advance(2 * HOLD)
    return batch_id


@pytest.mark.usefixtures("no_window")
@pytest.mark.parametrize("provider", list(MODELS))
def test_a_lost_batch_marks_its_items_and_the_rest_completes(
    polybatch_sandbox: Callable[..., Sandbox],
    tmp_path: Path,
    provider: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    sandbox = polybatch_sandbox(providers=[provider], validation_seconds=HOLD)
    path = write_items(tmp_path / "in.jsonl", 12)
    job = held_job(sandbox, path, provider)
    batch_id = forget_chunk(sandbox, job, 1)
    with caplog.at_level(logging.WARNING, logger="polybatch"):
        job.wait(poll_min=0.01, poll_max=0.05, timeout=30)
    assert job.status().state == "completed"
    results = list(job.results())
    assert [r.custom_id for r in results] == ids_of(path)
    lost_ones = results[4:8]
    assert {r.status for r in results[:4] + results[8:]} == {"succeeded"}
    assert {r.status for r in lost_ones} == {"errored"}
    assert all(r.error and r.error.code == "batch_lost" and r.error.retryable for r in lost_ones)
    assert {r.batch_id for r in lost_ones} == {batch_id}
    warnings = [m for m in caplog.messages if "chunk 1" in m and batch_id in m and "lost" in m]
    assert warnings, caplog.messages
    assert job.chunks()[1].batch_state == "lost"

    # retry resubmits the lost chunk's four items only, in one new batch
    before = set(sandbox.engine.batches)
    sandbox.engine.validation_seconds = 0.0
    assert job.retry()
    job.wait(poll_min=0.01, poll_max=0.05, timeout=30)
    new = [sandbox.engine.batches[b] for b in set(sandbox.engine.batches) - before]
    assert [len(b.requests) for b in new] == [4]
    assert {r.status for r in job.results()} == {"succeeded"}


@pytest.mark.parametrize("provider", list(MODELS))
def test_a_404_within_the_window_waits_without_failing(
    polybatch_sandbox: Callable[..., Sandbox], tmp_path: Path, provider: str
) -> None:
    sandbox = polybatch_sandbox(providers=[provider], validation_seconds=HOLD)
    path = write_items(tmp_path / "in.jsonl", 12)
    job = held_job(sandbox, path, provider)
    forget_chunk(sandbox, job, 2)
    for _ in range(3):
        job.step()  # a 404 is not an error yet: the provider may answer again
    states = [(c.state, c.batch_state) for c in job.chunks()]
    assert states[:2] == [("collected", "completed")] * 2
    assert states[2] == ("submitted", "not_found")
    assert job.status().state == "running"


def test_a_batch_that_answers_again_restarts_the_window(
    polybatch_sandbox: Callable[..., Sandbox], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox = polybatch_sandbox(providers=["openai"], validation_seconds=HOLD)
    path = write_items(tmp_path / "in.jsonl", 4)
    job = submit(path, MODELS["openai"], sandbox=sandbox.server, chunk_size=4)
    batch_id = job.chunks()[0].batch_id
    assert batch_id is not None
    kept = sandbox.engine.batches[batch_id]
    monkeypatch.setattr(lost, "LOST_CONFIRM_SECONDS", 0.0)
    sandbox.engine.forget(batch_id)
    job.step()  # first sighting of the 404
    sandbox.engine.batches[batch_id] = kept  # the provider answers again
    job.step()
    assert job.chunks()[0].batch_state == "validating"
    sandbox.engine.forget(batch_id)
    job.step()  # a new first sighting: not lost yet
    assert job.chunks()[0].state == "submitted"
    job.step()
    assert job.chunks()[0].batch_state == "lost"


# -- the CLI, in child processes as a user runs it ------------------------------------------
def cli_env(sandbox: Sandbox, provider: str) -> dict[str, str]:
    cls = get_registry().provider_class(provider)
    return {
        **os.environ,
        **cls.sandbox_env(sandbox.url, SANDBOX_KEY),
        "POLYBATCH_LOST_CONFIRM_SECONDS": "0",
    }


def ok(proc: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert proc.returncode == 0, proc.stderr
    return proc


@pytest.mark.slow
@pytest.mark.timeout(400)  # child processes on a loaded machine
@pytest.mark.parametrize("provider", list(MODELS))
def test_cli_run_status_results_retry_after_a_lost_batch(
    polybatch_sandbox: Callable[..., Sandbox], tmp_path: Path, provider: str
) -> None:
    sandbox = polybatch_sandbox(providers=[provider], validation_seconds=HOLD)
    env = cli_env(sandbox, provider)
    path = write_items(tmp_path / "in.jsonl", 12)
    args = [str(path), "-m", MODELS[provider], "--chunk-size", "4"]
    job_id = ok(run_cli(["submit", *args], env)).stdout.strip()
    batch_id = forget_chunk(sandbox, Job.load(job_id), 0)

    st = ok(run_cli(["status", job_id], env))
    assert "not_found" in st.stdout

    # the same input again: `run` takes the job up where it is and completes it
    res = ok(run_cli(["run", *args, "--no-progress"], env))
    assert "chunk 0" in res.stderr and batch_id in res.stderr and "lost" in res.stderr
    assert len(set(sandbox.engine.batches)) == 2  # nothing resubmitted behind the user's back

    lines = [json.loads(line) for line in ok(run_cli(["results", job_id], env)).stdout.splitlines()]
    assert [r["custom_id"] for r in lines] == ids_of(path)
    assert [r["error"]["code"] for r in lines[:4]] == ["batch_lost"] * 4
    assert {r["status"] for r in lines[4:]} == {"succeeded"}

    before = set(sandbox.engine.batches)
    sandbox.engine.validation_seconds = 0.0
    ok(run_cli(["retry", job_id, "--no-progress"], env))
    new = [sandbox.engine.batches[b] for b in set(sandbox.engine.batches) - before]
    assert [len(b.requests) for b in new] == [4]
    final = ok(run_cli(["results", job_id], env)).stdout.splitlines()
    assert {json.loads(line)["status"] for line in final} == {"succeeded"}


@pytest.mark.slow
@pytest.mark.timeout(400)  # child processes on a loaded machine
@pytest.mark.parametrize("provider", list(MODELS))
def test_cli_cancel_of_a_job_with_a_lost_batch_ends(
    polybatch_sandbox: Callable[..., Sandbox], tmp_path: Path, provider: str
) -> None:
    sandbox = polybatch_sandbox(providers=[provider], validation_seconds=HOLD)
    env = cli_env(sandbox, provider)
    path = write_items(tmp_path / "in.jsonl", 8)
    args = ["submit", str(path), "-m", MODELS[provider], "--chunk-size", "4"]
    job_id = ok(run_cli(args, env)).stdout.strip()
    batch_id = Job.load(job_id).chunks()[1].batch_id
    assert batch_id is not None
    sandbox.engine.forget(batch_id)
    ok(run_cli(["cancel", job_id], env))
    ok(run_cli(["resume", job_id, "--no-progress"], env))
    out = ok(run_cli(["results", job_id], env))
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["custom_id"] for r in lines] == ids_of(path)
    assert {r["status"] for r in lines[:4]} == {"cancelled"}
    assert [r["error"]["code"] for r in lines[4:]] == ["batch_lost"] * 4


def test_results_gone_at_the_provider_mark_their_items_and_the_rest_completes(
    polybatch_sandbox: Callable[..., Sandbox], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An ended batch whose output file the provider no longer has (deleted, expired) answers
    404 to the download: after a few tries its items get a retryable ``results_lost`` result
    and the job completes, instead of failing for ever (issue #15 item 3)."""
    sandbox = polybatch_sandbox(providers=["openai"], validation_seconds=HOLD)
    path = write_items(tmp_path / "in.jsonl", 12)
    job = submit(path, MODELS["openai"], sandbox=sandbox.server, chunk_size=4, retry_failed=0)
    gone = job.chunks()[1].batch_id
    assert gone is not None
    sandbox.engine.clock.advance(2 * HOLD)  # every batch has ended
    ended = job.provider.poll(gone)  # the sandbox writes the output file when asked
    assert ended.terminal
    output = sandbox.engine.batches[gone].output or {}
    for file_id in output.values():  # chunk 1's output and error files are deleted
        if file_id:
            del sandbox.engine.files[file_id]
    with caplog.at_level(logging.WARNING, logger="polybatch"):
        job.wait(poll_min=0.01, poll_max=0.05, timeout=60)
    assert job.status().state == "completed"
    by_chunk = [
        sorted({r.status for r in job.results() if r.custom_id in ids})
        for ids in (ids_of(path)[0:4], ids_of(path)[4:8], ids_of(path)[8:12])
    ]
    assert by_chunk == [["succeeded"], ["errored"], ["succeeded"]]
    errors = {r.error.code for r in job.results() if r.error is not None}
    assert errors == {"results_lost"}
    assert f"batch {gone} is lost" in caplog.text
    assert job.retry()  # only the four lost requests go again
    job.step()  # the retry round's batch is created ...
    assert len(sandbox.engine.batches) == 4
    sandbox.engine.clock.advance(2 * HOLD)  # ... and ends
    job.wait(poll_min=0.01, poll_max=0.05, timeout=60)
    assert [r.status for r in job.results()] == ["succeeded"] * 12
