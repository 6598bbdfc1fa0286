"""SIGKILL at any point of a chunk's life, then the same command again: every item exactly once,
one Bedrock job per chunk. The CLI runs as a subprocess configured as a user would: a profile in
polybatch.toml, and boto3 pointed at the sandbox by botocore's own endpoint variables."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from polybatch.sandbox import SandboxEngine, SandboxServer
from polybatch.testing import SANDBOX_KEY, run_cli
from polybatch_bedrock.provider import BedrockProvider

MODEL = "bedrock:anthropic.claude-haiku-4-5-20251001-v1:0"


@pytest.mark.slow
@pytest.mark.parametrize("point", ["before-create", "after-create", "before-collected"])
def test_killed_at_any_point_then_rerun_ends_exactly_once(
    tmp_path: Path, polybatch_home: Path, point: str
) -> None:
    ids = [f"q-{i:02d}" for i in range(25)]
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"custom_id": c, "prompt": f"{c}?"}) + "\n" for c in ids))
    with SandboxServer(SandboxEngine(api_key=SANDBOX_KEY)) as server:
        settings = BedrockProvider.sandbox_settings(server.url, SANDBOX_KEY)["settings"]
        config = tmp_path / "polybatch.toml"
        config.write_text(
            "[providers.bedrock]\n"
            + "".join(
                f"{k} = {json.dumps(v)}\n" for k, v in settings.items() if k != "s3_endpoint_url"
            )
        )
        env = {
            **os.environ,
            "POLYBATCH_CONFIG": str(config),
            **BedrockProvider.sandbox_env(server.url, SANDBOX_KEY),
        }
        out = tmp_path / "out.jsonl"
        args = ["run", str(src), "-m", MODEL, "--chunk-size", "10", "--no-progress", "-o", str(out)]
        crashed = run_cli(args, {**env, "POLYBATCH_CRASH_AT": point})
        assert crashed.returncode == -9, crashed.stderr
        again = run_cli(args, env)
        assert again.returncode == 0, again.stderr
        jobs = [b for b in server.engine.batches.values() if b.namespace == "bedrock"]
        creates = sum(
            1 for m, p in server.engine.requests_seen if m == "POST" and p.endswith("-job")
        )
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["custom_id"] for line in lines] == ids
    assert all(line["status"] == "succeeded" for line in lines)
    assert len(jobs) == 3, "one Bedrock job per chunk: nothing submitted twice"
    # Chunks in flight are submitted concurrently, so a kill can land while another chunk's create
    # is on the wire; the rerun may then send that create again, with the same clientRequestToken,
    # and Bedrock answers with the job it already made. So a create may be repeated, a job never.
    assert creates >= 3
    assert SANDBOX_KEY not in again.stdout + again.stderr
