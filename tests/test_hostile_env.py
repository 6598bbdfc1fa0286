"""Hostile environments (issue 15 item 9): a read-only home, a full disk, a kill mid-plan, modes.

- A read-only POLYBATCH_HOME (``chmod -R a-w`` after a job ran) still allows ``list``,
  ``status --no-refresh``, ``results`` and ``usage``; a command that writes says so in one line.
- A full disk is one line, and no ``.part`` file is left behind.
- A process killed while planning leaves staging files; the next start removes them.
- Every file polybatch writes is 0600, every directory 0700.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import astuple
from pathlib import Path
from typing import Any

import pytest

from polybatch import submit
from polybatch.jobs import files as files_module
from polybatch.sandbox import SandboxServer
from polybatch.testing import CliOutcome, run_cli

from .test_large_jobs import sandbox_env

MODEL = "openai:gpt-4o-mini"


def write_items(path: Path, n: int) -> Path:
    with path.open("w") as fh:
        for i in range(n):
            fh.write(json.dumps({"custom_id": f"h-{i:06d}", "prompt": f"Question {i}?"}) + "\n")
    return path


def one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert "Traceback" not in stderr, stderr
    assert len(lines) == 1, stderr
    return lines[0]


@pytest.mark.skipif(
    os.geteuid() == 0, reason="root ignores file modes: a read-only home is writable to root"
)
def test_a_read_only_home_still_lists_and_reads(
    sandbox_server: SandboxServer, polybatch_home: Path, tmp_path: Path
) -> None:
    path = write_items(tmp_path / "in.jsonl", 5)
    job = submit(path, MODEL, sandbox=sandbox_server)
    job.wait(timeout=60, poll_min=0.05)
    job.ledger.close()
    env = sandbox_env(sandbox_server)
    subprocess.run(["chmod", "-R", "a-w", str(polybatch_home)], check=True)
    try:
        for cmd in (
            ["list"],
            ["status", job.id, "--no-refresh"],
            ["results", job.id],
            ["usage"],
            ["usage", job.id],
        ):
            p = run_cli(cmd, env)
            assert p.returncode == 0, (cmd, p.stderr)
            assert "Traceback" not in p.stderr, p.stderr
        p = run_cli(["results", job.id], env)
        assert len(p.stdout.splitlines()) == 5
        p = run_cli(["list"], env)
        assert job.id in p.stdout
        # commands that write: one line, exit 2
        for cmd in (["resume", job.id], ["retry", job.id], ["run", str(path), "-m", MODEL]):
            p = run_cli(cmd, env)
            assert p.returncode == 2, (cmd, p.stderr)
            assert "is read-only" in one_line(p.stderr), p.stderr
    finally:
        subprocess.run(["chmod", "-R", "u+w", str(polybatch_home)], check=True)


def test_a_full_disk_is_one_line_and_leaves_no_part_file(
    sandbox_server: SandboxServer,
    polybatch_home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    polybatch_cli: Callable[..., CliOutcome],
) -> None:
    # a full disk cannot be made for a test without root and a loop mount, so the copy that
    # publishes the results (the biggest write of a job) fails as a full disk fails: some
    # bytes written, then OSError(ENOSPC)
    real_copy = files_module.shutil.copyfileobj

    def full(src: Any, dst: Any, *args: Any) -> None:
        dst.write(src.read(10))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(files_module.shutil, "copyfileobj", full)
    for name, value in sandbox_env(sandbox_server).items():
        monkeypatch.setenv(name, value)
    path = write_items(tmp_path / "in.jsonl", 6)
    out = tmp_path / "out" / "results.jsonl"
    args = ["run", str(path), "-m", MODEL, "--no-progress", "-o", str(out)]
    code, _, err = astuple(polybatch_cli(*args))
    assert code == 1, err
    line = one_line(
        "\n".join(x for x in err.splitlines() if not x.startswith(("job ", "estimate", "  method")))
    )
    assert line.startswith("error: no space left on device"), line
    assert "polybatch resume" in line, line
    left = [
        p for p in (*polybatch_home.rglob("*"), *tmp_path.rglob("*")) if p.name.endswith(".part")
    ]
    assert left == []
    # space freed: the same command picks the job up and finishes it
    monkeypatch.setattr(files_module.shutil, "copyfileobj", real_copy)
    code, stdout, err = astuple(polybatch_cli(*args))
    assert code == 0, err
    assert "6 results (6 succeeded)" in stdout
    assert len(out.read_text().splitlines()) == 6


def test_a_full_disk_while_collecting_a_chunk_leaves_no_staging_file(
    sandbox_server: SandboxServer,
    polybatch_home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # as above, a full disk is mocked: the chunk's results file (written as the download
    # arrives) takes a few bytes, then fails with OSError(ENOSPC)
    from polybatch.jobs import collect as collect_module

    class Full:
        def __init__(self, fh: Any) -> None:
            self.fh = fh

        def __enter__(self) -> Full:
            return self

        def __exit__(self, *exc: object) -> None:
            self.fh.close()

        def tell(self) -> int:
            return int(self.fh.tell())

        def write(self, data: bytes) -> int:
            self.fh.write(data[:5])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def full_open(*args: Any, **kw: Any) -> Full:
        return Full(open(*args, **kw))

    monkeypatch.setattr(collect_module, "open", full_open, raising=False)
    job = submit(write_items(tmp_path / "in.jsonl", 6), MODEL, sandbox=sandbox_server, start=False)
    with pytest.raises(OSError, match="No space left"):
        job.wait(poll_min=0.01, timeout=30)
    staged = [p.name for p in polybatch_home.rglob("*") if p.suffix in (".arrival", ".part")]
    assert staged == []
    monkeypatch.undo()  # space freed: the job goes on from where it stopped
    job.wait(poll_min=0.01, timeout=30)
    assert [r.status for r in job.results()] == ["succeeded"] * 6


@pytest.mark.slow
def test_a_kill_during_planning_leaves_no_staging_files(
    sandbox_server: SandboxServer, polybatch_home: Path, tmp_path: Path
) -> None:
    path = write_items(tmp_path / "big.jsonl", 300_000)
    env = sandbox_env(sandbox_server)
    proc = subprocess.Popen(
        [sys.executable, "-m", "polybatch.cli", "run", str(path), "-m", MODEL, "--no-progress"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    jobs = polybatch_home / "jobs"
    deadline = time.monotonic() + 120
    try:
        while not list(jobs.glob("plan-*.ids.sqlite3")):
            assert proc.poll() is None, "planning ended before the kill"
            assert time.monotonic() < deadline
            time.sleep(0.01)
        time.sleep(0.3)  # well into planning
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    staged = list(jobs.glob("plan-*"))
    assert staged, "the killed process left its staging files"
    for p in staged:  # even while they are left, only their owner can read them
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, p
    # the next start cleans them (a small job: a different one)
    small = write_items(tmp_path / "small.jsonl", 3)
    job = submit(small, MODEL, sandbox=sandbox_server)
    assert list(jobs.glob("plan-*")) == []
    job.wait(timeout=60, poll_min=0.05)


def test_a_staging_file_of_a_live_process_is_kept(
    sandbox_server: SandboxServer, polybatch_home: Path, tmp_path: Path
) -> None:
    from polybatch.jobs.lease import host
    from polybatch.jobs.planner import clean_staging

    jobs = polybatch_home / "jobs"
    jobs.mkdir(parents=True)
    live = jobs / f"plan-{os.getppid()}@{host()}~abc.jsonl"
    other_host = jobs / "plan-1@elsewhere.example~abc.jsonl"
    gone = subprocess.Popen(["true"])
    gone.wait()
    dead = jobs / f"plan-{gone.pid}@{host()}~abc.ids.sqlite3"
    old = jobs / "plan-x1y2z3.jsonl"  # before 0.3: no pid, removed once a day old
    for p in (live, other_host, dead, old):
        p.write_text("x")
    os.utime(old, (time.time() - 2 * 86400,) * 2)
    assert sorted(clean_staging(jobs)) == sorted([dead, old])
    assert live.exists() and other_host.exists()


def test_every_file_is_0600_and_every_directory_0700(
    sandbox_server: SandboxServer, polybatch_home: Path, tmp_path: Path
) -> None:
    path = write_items(tmp_path / "in.jsonl", 25)
    job = submit(path, MODEL, sandbox=sandbox_server, chunk_size=10, retry_failed=1)
    job.wait(timeout=60, poll_min=0.05)
    job.export_results(tmp_path / "exported" / "r.jsonl")
    seen = 0
    for p in [polybatch_home, *polybatch_home.rglob("*")]:
        mode = stat.S_IMODE(p.lstat().st_mode)
        want = 0o700 if p.is_dir() else 0o600
        assert mode == want, f"{p.relative_to(polybatch_home.parent)}: {oct(mode)}"
        seen += 1
    assert seen > 5
    assert stat.S_IMODE((tmp_path / "exported" / "r.jsonl").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "exported").stat().st_mode) == 0o700
