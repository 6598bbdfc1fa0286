"""Honest counts: per custom_id, final outcome only, on every path (issue 16 item 2).

A job whose items fail transiently, run with ``polybatch run`` and then ``polybatch retry``, must
report each request once: ``status``, ``list``, ``Job.status()`` and the run's own outcome line
all add up to the number of requests. While a batch runs, ``status`` shows the provider's
progress (from the last poll), not "0 ok".
"""

from __future__ import annotations

import json
import re
import subprocess
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from polybatch import Job, submit
from polybatch.sandbox import Faults, SandboxServer

from .test_large_jobs import run_cli, sandbox_env

MODEL = "openai:gpt-4o-mini"


def write_items(path: Path, n: int) -> Path:
    with path.open("w") as fh:
        for i in range(n):
            fh.write(json.dumps({"custom_id": f"q-{i:04d}", "prompt": f"Q{i}?"}) + "\n")
    return path


def cli(args: list[str], server: SandboxServer) -> subprocess.CompletedProcess[str]:
    proc = run_cli(args, sandbox_env(server))
    assert proc.returncode == 0, proc.stderr
    return proc


def final_counts(job: Job) -> Counter[str]:
    return Counter(r.status for r in job.results())


def test_counts_after_cli_run_and_retry_are_per_request(
    make_sandbox: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    server = make_sandbox(faults=Faults(seed=5, item_error_rate=0.4))
    path = write_items(tmp_path / "in.jsonl", 100)
    ran = cli(["run", str(path), "-m", MODEL, "--chunk-size", "30", "--no-progress"], server)
    job_id = re.search(r"job (\S+):", ran.stdout)
    assert job_id is not None, ran.stdout
    job = Job.load(job_id.group(1))
    before = final_counts(job)
    assert before["errored"] > 0
    assert f"100 results ({before['errored']} errored, {before['succeeded']} succeeded)" in (
        ran.stdout
    )

    retried = cli(["retry", job.id, "--rounds", "2", "--no-progress"], server)
    after = final_counts(job)
    assert sum(after.values()) == 100
    assert after["errored"] < before["errored"]
    summary = ", ".join(f"{n} {s}" for s, n in sorted(after.items()))
    assert f"100 results ({summary})" in retried.stdout

    st = job.status()
    assert (st.total, st.succeeded, st.failed) == (
        100,
        after["succeeded"],
        100 - after["succeeded"],
    )
    shown = cli(["status", job.id, "--no-refresh"], server)
    assert (
        f"100 requests, {after['succeeded']} ok, {100 - after['succeeded']} failed" in shown.stdout
    )
    listed = cli(["list"], server).stdout
    row = next(line for line in listed.splitlines() if job.id in line)
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[3:6] == ["100", str(after["succeeded"]), str(100 - after["succeeded"])]


def test_status_counts_while_a_retry_round_runs(
    make_sandbox: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    server = make_sandbox(faults=Faults(seed=5, item_error_rate=0.4))
    path = write_items(tmp_path / "in.jsonl", 40)
    job = submit(path, MODEL, sandbox=server).wait(poll_min=0.02, poll_max=0.2, timeout=60)
    failed = sum(not r.ok for r in job.results())
    assert failed > 0
    server.engine.rate = 1.0  # the retry batch stays in progress
    assert job.retry()
    job.step()
    st = job.status()
    assert st.state == "running"
    assert st.succeeded + st.failed == 40
    assert st.failed <= failed


def test_status_shows_provider_progress_while_a_batch_runs(
    make_sandbox: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    server = make_sandbox(rate=10.0)
    path = write_items(tmp_path / "in.jsonl", 40)
    job = submit(path, MODEL, sandbox=server)
    job.step()  # submitted
    server.engine.clock.advance(2)  # about 20 of 40 done at the provider
    job.step()  # polled
    st = job.status()
    assert st.state == "running"
    assert 0 < st.succeeded < 40
    (chunk,) = job.chunks()
    assert chunk.live_ok == st.succeeded
    shown = cli(["status", job.id, "--no-refresh"], server)
    assert f"40 requests, {st.succeeded} ok, 0 failed" in shown.stdout
