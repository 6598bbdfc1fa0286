"""End to end on the OpenAI path: the Python API and the CLI, the real openai SDK, the sandbox.

Nothing is mocked: the runner drives the openai plugin (loaded through its entry point), which
talks to the sandbox over loopback HTTP.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

import polybatch
from polybatch import Job, submit
from polybatch.errors import CredentialsError, InputError, ItemValidationError
from polybatch.sandbox import Faults, SandboxServer
from polybatch.testing import SANDBOX_KEY, run_cli

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "requests.jsonl"
MODEL = "openai:gpt-4o-mini"


def input_ids(path: Path = EXAMPLES) -> list[str]:
    return [json.loads(line)["custom_id"] for line in path.read_text().splitlines() if line.strip()]


def write_items(path: Path, n: int, **extra: object) -> Path:
    with path.open("w") as fh:
        for i in range(n):
            fh.write(
                json.dumps({"custom_id": f"q-{i:04d}", "prompt": f"Question number {i}?", **extra})
                + "\n"
            )
    return path


def fast(job: Job) -> Job:
    return job.wait(poll_min=0.02, poll_max=0.2, timeout=60)


def test_python_api_roundtrip(sandbox_server: SandboxServer) -> None:
    job = fast(submit(EXAMPLES, MODEL, sandbox=sandbox_server))
    results = list(job.results())
    assert [r.custom_id for r in results] == input_ids()  # input order, each exactly once
    assert all(r.status == "succeeded" and r.text for r in results)
    assert all(r.provider == "openai" and r.model and r.batch_id for r in results)
    usage = job.usage()
    assert usage.input_tokens > 0 and usage.output_tokens > 0
    assert usage.output_tokens == sum(r.usage.output_tokens for r in results)
    json_reply = next(r for r in results if r.custom_id == "json-01")
    assert set(json.loads(json_reply.text or "")) == {"title", "keywords"}
    assert stat.S_IMODE(job.results_path.stat().st_mode) == 0o600
    st = job.status()
    assert (st.state, st.total, st.succeeded, st.failed) == (
        "completed",
        len(results),
        len(results),
        0,
    )


def test_same_input_resumes_the_same_job_and_submits_nothing_twice(
    sandbox_server: SandboxServer,
) -> None:
    first = fast(submit(EXAMPLES, MODEL, sandbox=sandbox_server))
    batches = len(sandbox_server.engine.batches)
    again = submit(EXAMPLES, MODEL, sandbox=sandbox_server)
    assert again.id == first.id
    assert len(sandbox_server.engine.batches) == batches
    fresh = submit(EXAMPLES, MODEL, sandbox=sandbox_server, new=True)
    assert fresh.id != first.id and fresh.id.startswith(first.id)


def test_run_returns_results_and_job_defaults_apply(sandbox_server: SandboxServer) -> None:
    results = polybatch.run(
        ["Hello?", "Goodbye?"], MODEL, sandbox=sandbox_server, max_tokens=3, poll_min=0.02
    )
    assert [r.custom_id for r in results] == ["item-1", "item-2"]
    assert all(r.usage.output_tokens <= 3 for r in results)
    assert {r.finish_reason for r in results} == {"length"}


def test_failed_lines_come_back_as_errored_results(
    make_sandbox: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    server = make_sandbox(faults=Faults(seed=7, item_error_rate=0.3))
    path = write_items(tmp_path / "in.jsonl", 40)
    job = fast(submit(path, MODEL, sandbox=server))
    results = list(job.results())
    assert [r.custom_id for r in results] == input_ids(path)
    errored = [r for r in results if r.status == "errored"]
    assert 3 < len(errored) < 30
    assert all(r.error and r.error.retryable and r.error.status_code == 500 for r in errored)
    assert job.status().failed == len(errored)
    assert [r.custom_id for r in job.results("failed")] == [r.custom_id for r in errored]


def test_invalid_params_passed_through_extra_are_refused_before_upload(
    sandbox_server: SandboxServer,
) -> None:
    """The adapter validates with the very rules the API (and the sandbox) answer with, so a
    body the provider would refuse with a 400 is refused while planning, naming the field,
    and nothing is uploaded (before 0.2 it went out and came back as a permanent item error)."""
    items = [
        {"custom_id": "ok", "prompt": "fine"},
        {"custom_id": "bad", "prompt": "x", "extra": {"max_completion_tokens": -5}},
    ]
    with pytest.raises(ItemValidationError) as info:
        polybatch.run(items, MODEL, sandbox=sandbox_server, poll_min=0.02)
    assert info.value.field == "extra.max_completion_tokens"
    assert not sandbox_server.engine.batches and not sandbox_server.engine.files


def test_multi_chunk_job_with_bounded_in_flight(
    sandbox_server: SandboxServer, tmp_path: Path
) -> None:
    path = write_items(tmp_path / "in.jsonl", 23)
    job = submit(path, MODEL, sandbox=sandbox_server, chunk_size=5, max_in_flight=2)
    assert [c.count for c in job.chunks()] == [5, 5, 5, 5, 3]
    # submit() takes one step: only max_in_flight chunks went out, the rest wait their turn
    assert [c.state != "planned" for c in job.chunks()] == [True, True, False, False, False]
    fast(job)
    assert len(sandbox_server.engine.batches) == 5
    metas = sorted(
        int(b.metadata["polybatch_chunk"]) for b in sandbox_server.engine.batches.values()
    )
    assert metas == [0, 1, 2, 3, 4]
    assert [r.custom_id for r in job.results()] == input_ids(path)


def test_cancel_midway_keeps_finished_work(
    make_sandbox: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    server = make_sandbox(rate=10.0)
    path = write_items(tmp_path / "in.jsonl", 30)
    job = submit(path, MODEL, sandbox=server, chunk_size=10, max_in_flight=1)
    server.engine.clock.advance(0.5)  # about 5 requests of the first batch run
    job.cancel()
    fast(job)
    results = list(job.results())
    assert [r.custom_id for r in results] == input_ids(path)
    statuses = [r.status for r in results]
    assert "succeeded" in statuses[:10] and "cancelled" in statuses[:10]
    assert set(statuses[10:]) == {"cancelled"}  # queued chunks were never submitted
    assert len(server.engine.batches) == 1
    assert job.status().state == "cancelled"


def test_job_load_from_ledger(sandbox_server: SandboxServer) -> None:
    job = fast(submit(EXAMPLES, MODEL, sandbox=sandbox_server))
    loaded = Job.load(job.id[:8])
    assert loaded.id == job.id
    assert [r.custom_id for r in loaded.results()] == input_ids()
    ids = ["explain-03", "chat-01"]
    assert sorted(i.custom_id or "" for i in loaded.requests(ids)) == sorted(ids)


def test_bad_input_submits_nothing(sandbox_server: SandboxServer, tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"prompt": "ok"}\n{"prompt": "x", "temperature": "hot"}\n')
    with pytest.raises(InputError, match=r"bad.jsonl:2: field 'temperature'"):
        submit(path, MODEL, sandbox=sandbox_server)
    assert sandbox_server.engine.requests_seen == []
    assert sandbox_server.engine.batches == {}


def test_missing_key_is_reported_before_anything_happens(tmp_path: Path) -> None:
    with pytest.raises(CredentialsError, match="OPENAI_API_KEY"):
        submit(EXAMPLES, MODEL)


# -- the CLI, run as a user runs it ----------------------------------------------------------


def cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return run_cli(args, {**os.environ, **(env or {})}, cwd=cwd)


@pytest.mark.slow
def test_cli_run_sandbox_demo(tmp_path: Path) -> None:
    out = tmp_path / "results.jsonl"
    proc = cli("run", str(EXAMPLES), "--model", MODEL, "--sandbox", "-o", str(out), "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert f"{len(input_ids())} results" in proc.stdout
    assert "| Provider |" in proc.stdout and "| openai " in proc.stdout
    assert "Batch $" in proc.stdout and "Saving $" in proc.stdout
    assert "estimate: $" in proc.stderr
    assert [json.loads(line)["custom_id"] for line in out.read_text().splitlines()] == input_ids()


@pytest.mark.slow
def test_cli_submit_status_resume_results_list_across_processes(
    sandbox_server: SandboxServer, tmp_path: Path
) -> None:
    env = {"OPENAI_API_KEY": SANDBOX_KEY, "OPENAI_BASE_URL": sandbox_server.url + "/openai/v1"}
    sub = cli("submit", str(EXAMPLES), "-m", MODEL, env=env)
    assert sub.returncode == 0, sub.stderr
    job_id = sub.stdout.strip()
    st = cli("status", job_id, env=env)
    assert st.returncode == 0, st.stderr
    assert job_id in st.stdout and "batch_" in st.stdout
    res = cli("resume", job_id, "--no-progress", env=env)
    assert res.returncode == 0, res.stderr
    assert "completed" in res.stdout
    lines = cli("results", job_id, env=env).stdout.splitlines()
    assert [json.loads(line)["custom_id"] for line in lines] == input_ids()
    assert cli("results", job_id, "--failed", env=env).stdout == ""
    listing = cli("list", env=env).stdout
    assert job_id in listing and "completed" in listing


@pytest.mark.slow
def test_cli_bad_input_exit_code_2_names_file_line_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "ok"}\n{"prompt": "ok", "colour": 1}\n')
    proc = cli("run", str(bad), "-m", MODEL, "--sandbox", "--no-progress")
    assert proc.returncode == 2
    assert f"{bad}:2: field 'colour': unknown field" in proc.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["-m", "nope:model"], "unknown provider 'nope'; installed providers:"),
        (["-m", "gpt-4o-mini"], "provider:model"),
        ([], "no model"),
        (["-m", MODEL], "OPENAI_API_KEY"),
    ],
)
def test_cli_config_errors_exit_2(args: list[str], fragment: str) -> None:
    proc = cli("submit", str(EXAMPLES), *args)
    assert proc.returncode == 2, proc.stderr
    assert fragment in proc.stderr


@pytest.mark.slow
def test_cli_providers_lists_openai() -> None:
    proc = cli("providers", env={"OPENAI_API_KEY": "x"})
    assert proc.returncode == 0
    assert "polybatch-openai" in proc.stdout and "50,000" in proc.stdout
