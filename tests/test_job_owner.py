"""One job, one owner (issue 15 item 1): two processes on one job never both submit it.

Two ``polybatch run`` on the same input (same job id, same POLYBATCH_HOME) raced: both submitted
the job (duplicate batches, paid twice) or one crashed with a FileNotFoundError traceback. Now the
process that steps a job holds its lease in the ledger; the other exits 2 with one line naming the
holder, or, arriving after the job ended, prints its results. A dead holder's lease is taken over.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from polybatch import Job, JobBusyError, submit
from polybatch.jobs import lease
from polybatch.jobs.ledger import open_ledger
from polybatch.sandbox import SandboxServer
from polybatch.testing import run_cli

from .test_large_jobs import sandbox_env

MODEL = "openai:gpt-4o-mini"
N_ITEMS = 40
CHUNK = 10  # four batches planned
BUSY = re.compile(r"^error: job (pb-\w+) is running in process (\d+) on host (\S+)$")


def write_items(path: Path, n: int = N_ITEMS) -> Path:
    with path.open("w") as fh:
        for i in range(n):
            fh.write(json.dumps({"custom_id": f"r-{i:03d}", "prompt": f"Q{i}?"}) + "\n")
    return path


def batches_created(server: SandboxServer) -> int:
    return len(server.engine.batches)


def two_runs(args: list[str], env: dict[str, str]) -> list[subprocess.CompletedProcess[str]]:
    """Start two ``polybatch ARGS`` at the same moment; both outcomes."""
    out: list[subprocess.CompletedProcess[str]] = []
    gate = threading.Barrier(2)

    def one() -> None:
        gate.wait()
        out.append(run_cli(args, env, timeout=180))

    threads = [threading.Thread(target=one) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


@pytest.mark.slow
@pytest.mark.timeout(1800)  # 40 CLI processes; each race takes 5-40 s on a loaded 2-core machine
def test_two_runs_of_one_job_submit_it_once_twenty_times(
    make_sandbox: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    server = make_sandbox(rate=400.0)
    path = write_items(tmp_path / "in.jsonl")
    args = ["run", str(path), "-m", MODEL, "--chunk-size", str(CHUNK), "--no-progress"]
    for attempt in range(20):
        home = tmp_path / f"home-{attempt}"
        env = sandbox_env(server, POLYBATCH_HOME=str(home))
        before = batches_created(server)
        procs = two_runs(args, env)
        made = batches_created(server) - before
        for p in procs:
            assert "Traceback" not in p.stderr, p.stderr
            assert p.returncode in (0, 2), p.stderr
            if p.returncode == 2:
                busy = [line for line in p.stderr.splitlines() if line.startswith("error:")]
                assert len(busy) == 1 and BUSY.match(busy[0]), p.stderr
        assert sorted(p.returncode for p in procs)[0] == 0, [p.stderr for p in procs]
        assert made == N_ITEMS // CHUNK, f"attempt {attempt}: {made} batches created"
        winner = next(p for p in procs if p.returncode == 0)
        assert f"{N_ITEMS} results ({N_ITEMS} succeeded)" in winner.stdout


def test_a_second_process_is_refused_while_the_first_holds_the_job(
    sandbox_server: SandboxServer, tmp_path: Path
) -> None:
    path = write_items(tmp_path / "in.jsonl", 4)
    job = submit(path, MODEL, sandbox=sandbox_server, start=False)
    env = sandbox_env(sandbox_server)
    with lease.owning(job.ledger, job.id):
        for cmd in (["resume", job.id], ["retry", job.id], ["cancel", job.id]):
            p = run_cli([*cmd, "--no-progress"] if cmd[0] != "cancel" else cmd, env)
            assert p.returncode == 2, (cmd, p.stderr)
            assert p.stderr.strip() == (
                f"error: job {job.id} is running in process {os.getpid()} on host {lease.host()}"
            ), p.stderr
        # read-only commands need no lease; status shows the ledger without stepping
        for cmd in (["status", job.id], ["list"], ["usage"]):
            p = run_cli(cmd, env)
            assert p.returncode == 0, (cmd, p.stderr)
    assert batches_created(sandbox_server) == 0
    assert lease.holder(job.ledger, job.id) is None, "released at the end of the block"
    p = run_cli(["resume", job.id, "--no-progress"], env)
    assert p.returncode == 0, p.stderr
    assert batches_created(sandbox_server) == 1


def test_the_python_api_raises_job_busy_error(
    sandbox_server: SandboxServer, tmp_path: Path
) -> None:
    path = write_items(tmp_path / "in.jsonl", 4)
    job = submit(path, MODEL, sandbox=sandbox_server, start=False)
    ledger = open_ledger()
    with ledger._tx() as db:  # a live holder elsewhere: this test's parent process, say
        db.execute(
            "INSERT INTO leases VALUES (?,?,?,?,?,?)",
            (job.id, "someone-else", os.getppid(), lease.host(), 0.0, 4e9),
        )
    with pytest.raises(JobBusyError, match=f"job {job.id} is running in process {os.getppid()}"):
        job.wait(timeout=30)
    with pytest.raises(JobBusyError):
        Job.load(job.id).cancel()
    with pytest.raises(JobBusyError):
        submit(path, MODEL, sandbox=sandbox_server)  # the same job again: resuming it
    assert batches_created(sandbox_server) == 0


def test_a_dead_holders_lease_is_taken_over(sandbox_server: SandboxServer, tmp_path: Path) -> None:
    path = write_items(tmp_path / "in.jsonl", 4)
    job = submit(path, MODEL, sandbox=sandbox_server, start=False)
    gone = subprocess.Popen(["true"])  # a pid that has just exited
    gone.wait()
    ledger = open_ledger()
    with ledger._tx() as db:
        db.execute(
            "INSERT INTO leases VALUES (?,?,?,?,?,?)",
            (job.id, "crashed-run", gone.pid, lease.host(), 0.0, 4e9),
        )
    job.wait(timeout=60, poll_min=0.05)
    assert job.status().state == "completed"
    assert batches_created(sandbox_server) == 1
    kinds = [e["kind"] for e in job.ledger.events(job.id)]
    assert "lease-takeover" in kinds
    assert lease.holder(ledger, job.id) is None


def test_an_expired_lease_from_another_host_is_taken_over(
    sandbox_server: SandboxServer, tmp_path: Path
) -> None:
    path = write_items(tmp_path / "in.jsonl", 4)
    job = submit(path, MODEL, sandbox=sandbox_server, start=False)
    ledger = open_ledger()
    with ledger._tx() as db:
        db.execute(
            "INSERT INTO leases VALUES (?,?,?,?,?,?)",
            (job.id, "elsewhere", 1, "other-host.example", 0.0, 1.0),
        )
    job.wait(timeout=60, poll_min=0.05)
    assert job.status().state == "completed"
