"""xai under every sandbox fault, and killed (SIGKILL) at each crash point then rerun: every item
exactly once, in input order, and no provider batch the job's ledger does not know."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import openai._base_client as obc
import pytest

import polybatch
from polybatch.items import Usage
from polybatch.sandbox import Faults, SandboxServer
from polybatch.testing import SANDBOX_KEY
from polybatch_xai.provider import XAIProvider

MODEL = "xai:grok-4-1-fast-non-reasoning"
#: every fault, the lost create answers, dropped connections and truncated downloads included
CHAOS = (
    "http=0.08,slow=0.05,slow_s=0.005,upload=0.1,item=0.1,fail=0.1,expire=0.1,cancel=0.1,"
    "missing=0.1,create_timeout=0.1,drop=0.03,truncate=0.15"
)


def write_items(path: Path, n: int) -> Path:
    lines = (
        json.dumps({"custom_id": f"q-{i:03d}", "messages": [{"role": "user", "content": f"Q{i}?"}]})
        for i in range(n)
    )
    path.write_text("".join(line + "\n" for line in lines))
    return path


def ids_of(path: Path) -> list[str]:
    return [json.loads(line)["custom_id"] for line in path.read_text().splitlines()]


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_chaos_every_item_once_no_duplicates(
    make_sandbox: Callable[..., SandboxServer],
    polybatch_home: Path,
    monkeypatch: pytest.MonkeyPatch,
    seed: int,
) -> None:
    monkeypatch.setattr(obc, "INITIAL_RETRY_DELAY", 0.001)
    server = make_sandbox(faults=Faults.parse(f"seed={seed},{CHAOS}"))
    path = write_items(polybatch_home.parent / "in.jsonl", 40 + seed)
    job = polybatch.submit(
        path, MODEL, sandbox=server, chunk_size=7, max_in_flight=3, retry_failed=3
    )
    job.wait(poll_min=0.01, poll_max=0.05, timeout=60)
    results = list(job.results())
    assert [r.custom_id for r in results] == ids_of(path)
    assert job.status().state == "completed"
    known = {c.batch_id for c in job.chunks() if c.batch_id}
    assert set(server.engine.batches) <= known, "a batch the ledger does not know"
    assert {r.batch_id for r in results} <= known
    assert job.usage() == sum((r.usage for r in results), Usage())


@pytest.mark.parametrize("point", ["before-create", "after-create", "before-collected"])
def test_killed_at_any_point_then_rerun_ends_exactly_once(
    sandbox_server: SandboxServer, polybatch_home: Path, point: str
) -> None:
    path = write_items(polybatch_home.parent / "in.jsonl", 25)
    out = polybatch_home.parent / "out.jsonl"
    env = {**os.environ, **XAIProvider.sandbox_env(sandbox_server.url, SANDBOX_KEY)}
    args = [sys.executable, "-m", "polybatch.cli", "run", str(path), "-m", MODEL, "-o", str(out)]
    args += ["--chunk-size", "10", "--no-progress"]

    def run(**extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            args, capture_output=True, text=True, env={**env, **extra}, timeout=120, check=False
        )

    crashed = run(POLYBATCH_CRASH_AT=point)
    assert crashed.returncode == -9, crashed.stderr  # SIGKILL: no cleanup ran
    again = run()  # the same command again resumes the same job
    assert again.returncode == 0, again.stderr
    assert ids_of(out) == ids_of(path)
    assert all(json.loads(line)["status"] == "succeeded" for line in out.read_text().splitlines())
    batches = sandbox_server.engine.batches.values()
    assert len(batches) == 3  # one batch per chunk: nothing submitted twice
    assert sorted(len(b.requests) for b in batches) == [5, 10, 10]  # nothing added twice
