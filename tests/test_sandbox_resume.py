"""``--sandbox`` jobs outlive their process (#16 item 1), on the user's path: the CLI.

The sandbox's files and batches are kept under ``POLYBATCH_HOME/sandbox/``; a later command in
another process serves them again on a new port. The openai plugin is reached through the registry
(the CLI loads it); nothing is mocked.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from polybatch import submit
from polybatch.jobs.sandboxed import SANDBOX_DIR, stop_shared_sandboxes
from polybatch.sandbox.store import STATE_FILE
from polybatch.testing import CliOutcome, make_items, run_cli

MODEL = "openai:gpt-4o-mini"
Cli = Callable[..., CliOutcome]


@pytest.fixture(autouse=True)
def _stop_sandboxes() -> Iterator[None]:
    yield
    stop_shared_sandboxes()  # the ones this test process started for status/cancel/results


def write_input(path: Path, n: int) -> tuple[Path, list[str]]:
    items = make_items(n, prefix="q-")
    path.write_text("".join(it.model_dump_json(exclude_none=True) + "\n" for it in items))
    return path, [it.custom_id for it in items]


def result_ids(text: str) -> list[str]:
    return [json.loads(line)["custom_id"] for line in text.splitlines() if line.strip()]


def stored_batches(home: Path) -> int:
    with sqlite3.connect(home / SANDBOX_DIR / STATE_FILE) as db:
        (n,) = db.execute("SELECT count(*) FROM state WHERE kind = 'batch'").fetchone()
    return int(n)


def _interruptible() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_run(path: Path, rate: str) -> tuple[subprocess.Popen[str], str]:
    """``polybatch run PATH --sandbox`` in a child process, once its batch is created at the
    sandbox (the job id printed, the chunk submitted in the ledger): the process and the job id."""
    cmd = [sys.executable, "-m", "polybatch.cli", "run", str(path), "-m", MODEL, "--sandbox"]
    proc = subprocess.Popen(
        [*cmd, "--sandbox-rate", rate, "--no-progress"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
        # a child of a shell's background job inherits SIGINT ignored (so Python would install
        # no KeyboardInterrupt handler): give it the default, as a terminal's Ctrl-C finds it
        preexec_fn=_interruptible,
    )
    assert proc.stderr is not None
    job_id = ""
    for line in proc.stderr:
        if line.startswith("job ") and "batch(es)" in line:
            job_id = line.split()[1].rstrip(":")
            break
    assert job_id, f"run ended early ({proc.wait()}): {proc.stderr.read()}"
    ledger = Path(os.environ["POLYBATCH_HOME"]) / "ledger.sqlite3"
    deadline = time.monotonic() + 60
    while True:  # the batch exists at the sandbox once the ledger says submitted
        with sqlite3.connect(ledger) as db:
            states = [
                s for (s,) in db.execute("SELECT state FROM chunks WHERE job_id = ?", (job_id,))
            ]
        if states and all(s == "submitted" for s in states):
            return proc, job_id
        assert proc.poll() is None and time.monotonic() < deadline, states
        time.sleep(0.1)


@pytest.mark.slow
def test_ctrl_c_prints_the_resume_command_and_resume_finishes_it(
    polybatch_home: Path, tmp_path: Path
) -> None:
    path, ids = write_input(tmp_path / "in.jsonl", 20)
    proc, job_id = start_run(path, "2")  # 20 requests at 2/s: still running when interrupted
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert f"polybatch resume {job_id}" in err
    assert "Traceback" not in err

    done = run_cli(["resume", job_id, "--no-progress"], os.environ)  # a new process, a new port
    assert done.returncode == 0, done.stderr
    assert f"job {job_id}: completed: 20 results (20 succeeded)" in done.stdout
    shown = run_cli(["results", job_id], os.environ)
    assert result_ids(shown.stdout) == ids  # every id once, in input order
    assert stored_batches(polybatch_home) == 1  # the same batch carried on, none sent again


def test_the_same_sandbox_command_twice_is_one_job(
    polybatch_cli: Cli, polybatch_home: Path, tmp_path: Path
) -> None:
    path, ids = write_input(tmp_path / "in.jsonl", 6)
    cmd = ("run", str(path), "-m", MODEL, "--sandbox", "--sandbox-rate", "0", "--no-progress")
    first, second = polybatch_cli(*cmd), polybatch_cli(*cmd)
    assert first.exit_code == second.exit_code == 0, first.stderr + second.stderr
    ports = {
        line.rsplit(":", 1)[1]
        for line in (first.stderr + second.stderr).splitlines()
        if line.startswith("sandbox: serving")
    }
    assert len(ports) == 2  # two sandboxes on two ports ...
    listed = json.loads(polybatch_cli("list", "--json").stdout)
    assert len(listed) == 1  # ... one job
    job_id = listed[0]["job_id"]
    assert f"job {job_id}: completed: 6 results (6 succeeded)" in second.stdout
    assert stored_batches(polybatch_home) == 1  # the second run sent nothing
    assert result_ids(polybatch_cli("results", job_id).stdout) == ids


@pytest.mark.slow
def test_status_cancel_and_results_from_another_process(polybatch_cli: Cli, tmp_path: Path) -> None:
    path, ids = write_input(tmp_path / "in.jsonl", 30)
    proc, job_id = start_run(path, "1")  # 30 s of work: it is still running when killed
    proc.kill()  # a crash: nothing said, nothing cleaned up
    proc.wait()

    st = polybatch_cli("status", job_id, "--json")
    assert st.exit_code == 0, st.stderr
    shown = json.loads(st.stdout)
    assert shown["state"] == "running"
    (chunk,) = shown["chunks"]
    assert chunk["provider_state"] in ("validating", "in_progress")  # found, not lost

    early = polybatch_cli("results", job_id)
    assert early.exit_code == 2 and "not final" in early.stderr

    cancelled = polybatch_cli("cancel", job_id)
    assert cancelled.exit_code == 0, cancelled.stderr
    assert "cancel requested" in cancelled.stdout

    done = run_cli(["resume", job_id, "--no-progress"], os.environ)
    assert done.returncode == 0, done.stderr
    assert f"job {job_id}: cancelled" in done.stdout
    lines = [json.loads(line) for line in polybatch_cli("results", job_id).stdout.splitlines()]
    assert [r["custom_id"] for r in lines] == ids
    statuses = {r["status"] for r in lines}
    assert "cancelled" in statuses and statuses <= {"succeeded", "cancelled"}


def test_forget_marks_a_job_abandoned_and_list_shows_it(polybatch_cli: Cli, tmp_path: Path) -> None:
    path, _ = write_input(tmp_path / "in.jsonl", 3)
    job_id = submit(path, "fake:echo", start=False).id  # recorded, never to be sent

    out = polybatch_cli("forget", job_id[:8])  # a unique prefix will do
    assert out.exit_code == 0, out.stderr
    assert f"job {job_id}: abandoned (was planned)" in out.stdout
    (row,) = json.loads(polybatch_cli("list", "--json").stdout)
    assert (row["job_id"], row["state"]) == (job_id, "abandoned")
    assert "abandoned" in polybatch_cli("list").stdout

    again = polybatch_cli("resume", job_id)  # nothing more is sent for it
    assert again.exit_code == 2 and "abandoned" in again.stderr
    assert "Traceback" not in again.stderr
    unknown = polybatch_cli("forget", "pb-nosuchjob")
    assert unknown.exit_code == 2


def test_forget_leaves_a_finished_job_as_it_is(polybatch_cli: Cli, tmp_path: Path) -> None:
    path, _ = write_input(tmp_path / "in.jsonl", 2)
    ran = polybatch_cli("run", str(path), "-m", "fake:echo", "--no-progress")
    assert ran.exit_code == 0, ran.stderr
    (row,) = json.loads(polybatch_cli("list", "--json").stdout)
    out = polybatch_cli("forget", row["job_id"])
    assert out.exit_code == 0 and "already completed" in out.stdout
    (after,) = json.loads(polybatch_cli("list", "--json").stdout)
    assert after["state"] == "completed"
