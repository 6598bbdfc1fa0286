"""SIGKILL at any point of a vertex job, then the same command again: every item exactly once."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from vertex_support import KEY, MODEL, serve

from polybatch import submit
from polybatch.sandbox import Faults, SandboxEngine
from polybatch.testing import run_cli
from polybatch_vertex import codec
from polybatch_vertex.provider import VertexProvider
from polybatch_vertex.sandbox import NAMESPACE


@pytest.mark.parametrize("point", ["before-create", "after-create", "before-collected"])
def test_killed_then_rerun_ends_exactly_once(tmp_path: Path, point: str) -> None:
    path = tmp_path / "in.jsonl"
    ids = [f"k-{i}" for i in range(12)]
    path.write_text("".join(json.dumps({"custom_id": i, "prompt": f"Say {i}"}) + "\n" for i in ids))
    out = tmp_path / "out.jsonl"
    args = ["run", str(path), "-m", f"vertex:{MODEL}", "--chunk-size", "5", "--no-progress"]
    with serve(SandboxEngine(api_key=KEY)) as srv:
        env = {
            **os.environ,
            **VertexProvider.sandbox_env(srv.url, KEY),
            "POLYBATCH_HOME": str(tmp_path / "home"),
        }
        crashed = run_cli([*args, "-o", str(out)], {**env, "POLYBATCH_CRASH_AT": point})
        assert crashed.returncode == -9, crashed.stderr  # SIGKILL: no cleanup ran
        again = run_cli([*args, "-o", str(out)], env)
        assert again.returncode == 0, again.stderr
        batches = srv.engine.list_batches(NAMESPACE)
    results = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["custom_id"] for r in results] == ids
    assert {r["status"] for r in results} == {"succeeded"}
    assert len(batches) == 3, "one batch prediction job per chunk: nothing created twice"
    tags = [codec.parse_display_name(b.metadata["displayName"]) or {} for b in batches]
    assert sorted(t["polybatch_chunk"] for t in tags) == ["0", "1", "2"]


@pytest.mark.parametrize(
    "spec",
    [
        # seed 1 makes a batchPredictionJobs list fail while a lost create is looked up
        "seed=1,http=0.2,drop=0.1,truncate=0.3",
        "seed=2,item=0.3,missing=0.3,cancel=0.3,expire=0.2",
        "seed=3,create_timeout=0.3,upload=0.2,fail=0.2",
    ],
)
def test_chaos_every_item_once_no_job_twice(polybatch_home: Path, spec: str) -> None:
    items = [{"custom_id": f"c-{i}", "prompt": f"Question {i}"} for i in range(40)]
    with serve(SandboxEngine(api_key=KEY, faults=Faults.parse(spec))) as srv:
        job = submit(items, f"vertex:{MODEL}", sandbox=srv, chunk_size=7, retry_failed=3)
        job.wait(poll_min=0.01, timeout=240)
        results = list(job.results())
        batches = srv.engine.list_batches(NAMESPACE)
    assert [r.custom_id for r in results] == [i["custom_id"] for i in items]
    assert job.status().state == "completed"
    tags = [codec.parse_display_name(b.metadata["displayName"]) or {} for b in batches]
    chunks = [t.get("polybatch_chunk") for t in tags]
    assert len(chunks) == len(set(chunks)), "a lost create made no second job"
