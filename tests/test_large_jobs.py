"""Large-job behaviour: retry rounds, crash-safe resume (SIGKILL), exports, flat memory.

The runner runs as a user runs it (the CLI in a subprocess) against a sandbox served from this
test process, so killing the runner leaves the sandbox, like a real provider, untouched.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from polybatch import Job, submit
from polybatch.plugins import get_registry
from polybatch.sandbox import Faults, SandboxServer
from polybatch.testing import SANDBOX_KEY, run_cli

#: large jobs, SIGKILLed subprocesses and a memory check: `make test-fast` leaves them out
pytestmark = pytest.mark.slow

MODEL = "openai:gpt-4o-mini"


def write_items(path: Path, n: int) -> Path:
    with path.open("w") as fh:
        for i in range(n):
            fh.write(
                json.dumps(
                    {"custom_id": f"q-{i:05d}", "prompt": f"Question {i}?", "max_tokens": 16}
                )
                + "\n"
            )
    return path


def ids_of(path: Path) -> list[str]:
    return [json.loads(line)["custom_id"] for line in path.read_text().splitlines()]


def sent_counts(server: SandboxServer) -> Counter[str]:
    """How many times each custom_id reached the provider, over every batch."""
    return Counter(
        r["custom_id"] if isinstance(r, dict) else r.custom_id
        for b in server.engine.batches.values()
        for r in b.requests
    )


def fast(job: Job) -> Job:
    return job.wait(poll_min=0.02, poll_max=0.2, timeout=120)


def test_retry_rounds_resubmit_only_retryable_failures(
    make_sandbox: Callable[..., SandboxServer], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The one stand-in here: the adapter's local check is switched off so that a request the
    # provider refuses (a 400 from the sandbox, which parses with the same rules) reaches it, as a
    # request broken by a rule polybatch cannot know in advance (a model-specific limit) would.
    openai_cls = get_registry().provider_class("openai")
    monkeypatch.setattr(openai_cls, "validate_item", lambda self, item, model: None)
    server = make_sandbox(faults=Faults(seed=11, item_error_rate=0.3))
    path = write_items(tmp_path / "in.jsonl", 40)
    with path.open("a") as fh:  # a permanent error: never worth sending again
        fh.write(
            json.dumps({"custom_id": "bad", "prompt": "x", "extra": {"max_completion_tokens": -1}})
            + "\n"
        )
    job = fast(submit(path, MODEL, sandbox=server, retry_failed=4, chunk_size=15))
    results = list(job.results())
    assert [r.custom_id for r in results] == ids_of(path)
    by_id = {r.custom_id: r for r in results}
    assert (
        by_id["bad"].status == "errored" and by_id["bad"].error and not by_id["bad"].error.retryable
    )
    sent = sent_counts(server)
    assert sent["bad"] == 1
    assert max(sent.values()) > 1  # some requests did take several rounds
    # with a 30% transient failure rate, four retry rounds leave (almost) nothing failed
    assert sum(r.status == "errored" for r in results) <= 2
    rounds = {c.round for c in job.chunks()}
    assert len(rounds) >= 2
    assert job.status().succeeded == sum(r.ok for r in results)


def test_expired_requests_are_retried(
    make_sandbox: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    server = make_sandbox(rate=10.0, expiry_seconds=1.0)
    path = write_items(tmp_path / "in.jsonl", 20)
    job = submit(path, MODEL, sandbox=server, retry_failed=1)
    server.engine.clock.advance(5)  # the first batch expires with 10 of 20 done
    server.engine.expiry_seconds = 3600  # the retry batch has time
    fast(job)
    results = list(job.results())
    assert [r.status for r in results] == ["succeeded"] * 20
    assert sorted(Counter(sent_counts(server).values()).items()) == [(1, 10), (2, 10)]


def test_job_retry_after_the_fact(
    make_sandbox: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    server = make_sandbox(faults=Faults(seed=3, item_error_rate=0.4))
    path = write_items(tmp_path / "in.jsonl", 20)
    job = fast(submit(path, MODEL, sandbox=server))
    failed_before = sum(not r.ok for r in job.results())
    assert failed_before > 0
    assert job.retry(rounds=2)
    fast(job)
    assert sum(not r.ok for r in job.results()) < failed_before
    assert [r.custom_id for r in job.results()] == ids_of(path)


def test_results_export_in_openai_format(sandbox_server: SandboxServer, tmp_path: Path) -> None:
    path = write_items(tmp_path / "in.jsonl", 3)
    job = fast(submit(path, MODEL, sandbox=sandbox_server))
    env = {**os.environ, "OPENAI_API_KEY": SANDBOX_KEY}
    proc = subprocess.run(
        [sys.executable, "-m", "polybatch.cli", "results", job.id, "--format", "openai"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=60,
    )
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [line["custom_id"] for line in lines] == ids_of(path)
    assert all(line["response"]["status_code"] == 200 for line in lines)
    assert lines[0]["response"]["body"]["object"] == "chat.completion"


def test_uploaded_files_deleted_after_success_unless_kept(
    sandbox_server: SandboxServer, tmp_path: Path
) -> None:
    engine = sandbox_server.engine
    path = write_items(tmp_path / "in.jsonl", 5)
    fast(submit(path, MODEL, sandbox=sandbox_server))
    assert not [f for f in engine.files.values() if f.purpose == "batch"]
    fast(submit(path, MODEL, sandbox=sandbox_server, new=True, keep_files=True))
    assert len([f for f in engine.files.values() if f.purpose == "batch"]) == 1


# -- crash safety --------------------------------------------------------------------------


def sandbox_env(server: SandboxServer, **more: str) -> dict[str, str]:
    """The environment of a CLI process pointed at ``server``."""
    return {
        **os.environ,
        "OPENAI_API_KEY": SANDBOX_KEY,
        "OPENAI_BASE_URL": server.url + "/openai/v1",
        **more,
    }


TOGETHER = "together:meta-llama/Llama-3.3-70B-Instruct-Turbo"


@pytest.mark.parametrize("point", ["before-create", "after-create", "before-collected"])
#: xAI finds a batch again by its name; Together (by its upload's name) and OpenRouter (by count,
#: time and ids) keep no metadata and adopt it from their listings (polybatch.jobs.adopt)
@pytest.mark.parametrize(
    "model", [MODEL, TOGETHER, "xai:grok-4-1-fast-non-reasoning", "openrouter:openai/gpt-4o-mini"]
)
def test_killed_at_any_point_then_rerun_ends_exactly_once(
    sandbox_server: SandboxServer,
    tmp_path: Path,
    point: str,
    model: str,
    request: pytest.FixtureRequest,
) -> None:
    path = write_items(tmp_path / "in.jsonl", 25)
    provider = get_registry().provider_class(model.split(":")[0])
    env = {**os.environ, **provider.sandbox_env(sandbox_server.url, SANDBOX_KEY)}
    args = [
        "run",
        str(path),
        "-m",
        model,
        "--chunk-size",
        "10",
        "--no-progress",
        "-o",
        str(tmp_path / "out.jsonl"),
    ]
    crashed = run_cli(args, {**env, "POLYBATCH_CRASH_AT": point})
    assert crashed.returncode == -9, crashed.stderr  # SIGKILL: no cleanup ran
    again = run_cli(args, env)  # the same command again resumes the same job
    assert again.returncode == 0, again.stderr
    assert ids_of(tmp_path / "out.jsonl") == ids_of(path)
    assert all(
        json.loads(line)["status"] == "succeeded"
        for line in (tmp_path / "out.jsonl").read_text().splitlines()
    )
    engine = sandbox_server.engine
    assert len(engine.batches) == 3  # one provider batch per chunk: nothing submitted twice
    assert set(sent_counts(sandbox_server).values()) == {1}
    printed = again.stdout.split("job ", 1)[1].split(":", 1)[0]  # Together keeps no metadata
    assert sorted(sent_counts(sandbox_server).values()) == [1] * 25  # nothing added twice
    (job_id,) = {(b.metadata or {}).get("polybatch_job", printed) for b in engine.batches.values()}
    assert Job.load(job_id).status().state == "completed"


def test_resume_command_continues_a_submitted_job(
    sandbox_server: SandboxServer, tmp_path: Path
) -> None:
    path = write_items(tmp_path / "in.jsonl", 12)
    env = sandbox_env(sandbox_server)
    sub = run_cli(
        ["submit", str(path), "-m", MODEL, "--chunk-size", "5", "--max-in-flight", "1"], env
    )
    job_id = sub.stdout.strip()
    assert len(sandbox_server.engine.batches) == 1  # one in flight; two queued
    res = run_cli(["resume", job_id, "--no-progress"], env)
    assert res.returncode == 0, res.stderr
    assert len(sandbox_server.engine.batches) == 3
    assert [r.custom_id for r in Job.load(job_id).results()] == ids_of(path)


# -- memory --------------------------------------------------------------------------------

_MEASURE = """
import resource, sys
from pathlib import Path
from polybatch import submit
job = submit(Path(sys.argv[1]), "openai:gpt-4o-mini", chunk_size=int(sys.argv[2]))
job.wait(poll_min=0.02, poll_max=0.2, timeout=600)
n = sum(1 for _ in job.results())
print(n, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def assert_flat_memory(tmp_path: Path, measure: Callable[[int, Path], int]) -> None:
    """``measure(n, input path)`` runs a job of ``n`` items and returns its peak RSS (KiB)."""
    peaks = {n: measure(n, write_items(tmp_path / f"in-{n}.jsonl", n)) for n in (2_000, 20_000)}
    # ten times the items, the same chunk size: peak memory stays flat (generous bound)
    assert peaks[20_000] < peaks[2_000] * 1.25, peaks


def run_measured(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, *argv], capture_output=True, text=True, env=env, timeout=600, check=False
    )
    assert proc.returncode == 0, proc.stderr
    return proc


def test_memory_does_not_grow_with_the_number_of_items(
    sandbox_server: SandboxServer, tmp_path: Path
) -> None:
    env = sandbox_env(sandbox_server)

    def measure(n: int, path: Path) -> int:
        proc = run_measured(["-c", _MEASURE, str(path), "2000"], env)
        count, peak_kb = map(int, proc.stdout.split())
        assert count == n
        return peak_kb

    assert_flat_memory(tmp_path, measure)


def test_cli_run_memory_does_not_grow_with_the_number_of_items(
    sandbox_server: SandboxServer, tmp_path: Path
) -> None:
    env = sandbox_env(sandbox_server)

    def measure(n: int, path: Path) -> int:
        out = tmp_path / f"out-{n}.jsonl"
        args = ["run", str(path), "-m", MODEL, "--chunk-size", "2000", "--no-progress"]
        peak = str(tmp_path / "peak")
        proc = run_measured(["-m", "polybatch.testing.peak", peak, *args, "-o", str(out)], env)
        assert f"{n} results ({n} succeeded)" in proc.stdout
        assert sum(1 for _ in out.open()) == n
        return int((tmp_path / "peak").read_text())

    assert_flat_memory(tmp_path, measure)
