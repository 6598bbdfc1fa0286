"""Nothing lost, nothing sent twice, under queue-limit refusals and with many chunks in flight:
``polybatch run`` SIGKILLed at several points (``POLYBATCH_CRASH_AT``), then the same command
again, against a sandbox (OpenAI's batch API through the registry and the real SDK, in a child
process) whose organisation queue holds 3 chunks' tokens."""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from polybatch.plugins import get_registry
from polybatch.sandbox import SandboxServer
from polybatch.testing import SANDBOX_KEY, run_cli

pytestmark = pytest.mark.slow

MODEL = "openai:gpt-4o-mini"
#: "Question N?": 3 tokens, one message: 3 + 3 + 4 prompt tokens (polybatch.tokens)
ITEM_TOKENS = 10


def write_items(path: Path, n: int) -> list[str]:
    ids = [f"q-{i:05d}" for i in range(n)]
    path.write_text(
        "".join(
            json.dumps({"custom_id": c, "prompt": f"Question {i}?"}) + "\n"
            for i, c in enumerate(ids)
        )
    )
    return ids


def crash_then_rerun(
    server: SandboxServer, tmp_path: Path, n: int, point: str, *flags: str
) -> list[str]:
    ids = write_items(tmp_path / "in.jsonl", n)
    provider = get_registry().provider_class("openai")
    env = {**os.environ, **provider.sandbox_env(server.url, SANDBOX_KEY)}
    out = tmp_path / "out.jsonl"
    args = ["run", str(tmp_path / "in.jsonl"), "-m", MODEL, "--no-progress", "-o", str(out), *flags]
    crashed = run_cli(args, {**env, "POLYBATCH_CRASH_AT": point})
    assert crashed.returncode == -9, crashed.stderr  # SIGKILL: no cleanup ran
    again = run_cli(args, env)
    assert again.returncode == 0, again.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["custom_id"] for r in lines] == ids
    assert {r["status"] for r in lines} == {"succeeded"}
    # every request ran in exactly one batch the provider accepted
    ran = Counter(
        r.custom_id for b in server.engine.batches.values() if not b.errors for r in b.requests
    )
    assert len(ran) == n and set(ran.values()) == {1}
    return ids


@pytest.mark.parametrize(
    "point", ["before-requeue", "after-requeue", "after-create", "before-collected"]
)
def test_killed_around_queue_refusals_then_rerun_ends_exactly_once(
    make_sandbox: Callable[..., SandboxServer], tmp_path: Path, point: str
) -> None:
    server = make_sandbox(rate=100, queue_limit_tokens=3 * 10 * ITEM_TOKENS)
    crash_then_rerun(server, tmp_path, 60, point, "--chunk-size", "10", "--max-in-flight", "6")
    refused = [b for b in server.engine.batches.values() if b.errors]
    assert refused, "the organisation's queue refused some chunks"
    assert {b.errors[0]["code"] for b in refused} == {"token_limit_exceeded"}


@pytest.mark.parametrize("point", ["after-create", "before-collected"])
def test_killed_with_50_chunks_in_flight_then_rerun_ends_exactly_once(
    make_sandbox: Callable[..., SandboxServer], tmp_path: Path, point: str
) -> None:
    server = make_sandbox(rate=20)
    crash_then_rerun(server, tmp_path, 500, point, "--chunk-size", "10", "--max-in-flight", "50")
    assert len(server.engine.batches) == 50, "one batch per chunk: nothing submitted twice"
