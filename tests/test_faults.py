"""Sandbox fault injection: the spec, reproducibility, and polybatch's behaviour under each fault.

Every fault is seeded: the same seed and the same request sequence strike the same requests, so
these tests are deterministic. The SDKs' backoff for connection errors is cut to a millisecond
(``fast_sdk_retries``) and injected errors carry ``retry-after-ms``, so nothing waits on real time.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from polybatch import Job, submit
from polybatch.cli import cli
from polybatch.items import BatchResult
from polybatch.sandbox import Faults, SandboxServer
from polybatch.sandbox.faults import route_key, truncate_mid_line

OPENAI = "openai:gpt-4o-mini"
ANTHROPIC = "anthropic:claude-haiku-4-5"
PROVIDERS = [OPENAI, ANTHROPIC]


@pytest.fixture(autouse=True)
def fast_sdk_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """SDK backoff without a server hint (dropped connections) in milliseconds, not seconds.

    Named by string: this file imports no SDK (the registry loads them); the SDK-level fault
    tests live in the openai and anthropic plugins' tests (test_*_sdk_faults.py).
    """
    for module in ("openai._base_client", "anthropic._base_client"):
        monkeypatch.setattr(f"{module}.INITIAL_RETRY_DELAY", 0.001)


def write_items(path: Path, n: int) -> Path:
    with path.open("w") as fh:
        for i in range(n):
            fh.write(json.dumps({"custom_id": f"q-{i:03d}", "prompt": f"Question {i}?"}) + "\n")
    return path


def ids_of(path: Path) -> list[str]:
    return [json.loads(line)["custom_id"] for line in path.read_text().splitlines()]


def run_job(server: SandboxServer, path: Path, model: str, **kw: Any) -> Job:
    kw.setdefault("chunk_size", 4)
    job = submit(path, model, sandbox=server, **kw)
    return job.wait(poll_min=0.01, poll_max=0.05, timeout=30)


def duplicates(server: SandboxServer, job: Job) -> int:
    """Provider batches the sandbox holds that the job's ledger does not know (orphans)."""
    # Gemini names a batch "batches/{id}"; the sandbox engine keys it by the bare id
    known = {c.batch_id.removeprefix("batches/") for c in job.chunks() if c.batch_id}
    return len(set(server.engine.batches) - known)


def kinds(server: SandboxServer) -> Counter[str]:
    return Counter(e.kind for e in server.engine.fault_log)


# -- the spec ------------------------------------------------------------------------------
def test_spec_parses_short_and_long_names_and_round_trips() -> None:
    f = Faults.parse("seed=3,http=0.1,codes=429/503,drop=0.02,item=0.05,truncate=0.2,slow_s=0.1")
    assert f.seed == 3 and f.http_error_rate == 0.1 and f.http_error_codes == (429, 503)
    assert f.drop_rate == 0.02 and f.item_error_rate == 0.05 and f.truncate_output_rate == 0.2
    assert f.slow_seconds == 0.1
    assert Faults.parse(f.to_spec()) == f
    assert Faults.parse("expire_rate=0.5").expire_rate == 0.5
    every = Faults.parse("all=0.1,http=0")
    assert every.missing_output_rate == 0.1 and every.http_error_rate == 0
    assert not Faults().active and every.active


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("bogus=1", "unknown fault 'bogus'"),
        ("http=2", "between 0 and 1"),
        ("http=x", "not a number"),
        ("seed=1.5", "not an integer"),
        ("codes=200", "HTTP error statuses"),
        ("drop", "expected name=value"),
        ("slow_s=-1", "non-negative"),
    ],
)
def test_spec_errors_are_clear(spec: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        Faults.parse(spec)


def test_cli_sandbox_rejects_a_bad_spec_with_exit_2() -> None:
    result = CliRunner().invoke(cli, ["sandbox", "--faults", "http=7"])
    assert result.exit_code == 2
    assert "--faults" in result.output and "between 0 and 1" in result.output


def test_decisions_depend_only_on_seed_and_sequence() -> None:
    a, b, c = Faults(seed=1), Faults(seed=1), Faults(seed=2)
    keys = [("http", "GET", "/x", n) for n in range(200)]
    assert [a.hit(0.3, *k) for k in keys] == [b.hit(0.3, *k) for k in keys]
    assert [a.hit(0.3, *k) for k in keys] != [c.hit(0.3, *k) for k in keys]
    assert 30 < sum(a.hit(0.3, *k) for k in keys) < 90
    assert route_key("/openai/v1/batches/batch_000012ab34cd56ef/cancel") == (
        "/openai/v1/batches/{id}/cancel"
    )


def test_truncation_always_cuts_inside_a_line() -> None:
    data = b"".join(json.dumps({"n": i, "pad": "x" * i}).encode() + b"\n" for i in range(20))
    for k in range(50):
        cut = truncate_mid_line(data, k / 50)
        assert data.startswith(cut) and len(cut) < len(data)
        last = cut.rsplit(b"\n", 1)[-1]
        assert last, "the cut must leave a partial line, not a clean line boundary"
        with pytest.raises(json.JSONDecodeError):
            json.loads(last)


def test_same_seed_same_faults_across_runs(
    make_sandbox: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    path = write_items(tmp_path / "in.jsonl", 12)
    logs = []
    for n in range(2):
        server = make_sandbox(faults=Faults(seed=5, http_error_rate=0.2, item_error_rate=0.2))
        run_job(server, path, OPENAI, new=n > 0, retry_failed=2)
        logs.append([(e.kind, route_key(e.where), e.detail) for e in server.engine.fault_log])
    assert logs[0] and logs[0] == logs[1]


# -- polybatch under each fault, both providers --------------------------------------------
@pytest.mark.parametrize("model", PROVIDERS)
@pytest.mark.parametrize(
    "faults",
    [
        Faults(seed=1, http_error_rate=0.3),
        Faults(seed=1, http_error_rate=0.5, http_error_codes=(429,)),
        Faults(seed=1, slow_rate=0.3, slow_seconds=0.01),
        Faults(seed=1, upload_reject_rate=0.5),
        Faults(seed=1, item_error_rate=0.3),
        Faults(seed=2, expire_rate=0.4),
        Faults(seed=0, external_cancel_rate=0.4),
        Faults(seed=3, missing_output_rate=0.4),
    ],
    ids=lambda f: f.to_spec(),
)
def test_transient_faults_end_with_every_item_succeeded_once(
    make_sandbox: Callable[..., SandboxServer], tmp_path: Path, model: str, faults: Faults
) -> None:
    server = make_sandbox(faults=faults)
    path = write_items(tmp_path / "in.jsonl", 12)
    job = run_job(server, path, model, retry_failed=6)
    results = list(job.results())
    assert [r.custom_id for r in results] == ids_of(path)
    assert {r.status for r in results} == {"succeeded"}
    assert job.status().state == "completed"
    assert duplicates(server, job) == 0
    assert faults.item_error_rate or server.engine.fault_log, "the fault never struck"


@pytest.mark.parametrize("model", PROVIDERS)
@pytest.mark.parametrize(
    ("faults", "status"),
    [
        (Faults(seed=1, expire_rate=1.0), "expired"),
        (Faults(seed=1, external_cancel_rate=1.0), "cancelled"),
    ],
    ids=["expire", "cancel"],
)
def test_expired_and_cancelled_leftovers_are_marked_and_retryable(
    make_sandbox: Callable[..., SandboxServer],
    tmp_path: Path,
    model: str,
    faults: Faults,
    status: str,
) -> None:
    server = make_sandbox(faults=faults)
    path = write_items(tmp_path / "in.jsonl", 8)
    job = run_job(server, path, model, chunk_size=8)
    results = list(job.results())
    assert [r.custom_id for r in results] == ids_of(path)
    batch = next(iter(server.engine.batches.values()))
    ran = batch.stop_after
    assert ran is not None and ran < 8
    # the first `ran` requests ran (their results kept), the rest are leftovers of that status
    assert [r.status for r in results[ran:]] == [status] * (8 - ran)
    assert all(r.status in ("succeeded", "errored") for r in results[:ran])
    assert job.retry(), "leftovers must be retryable"


def test_openai_batch_failing_validation_marks_its_items(
    make_sandbox: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    server = make_sandbox(faults=Faults(seed=0, batch_fail_rate=1.0))
    path = write_items(tmp_path / "in.jsonl", 5)
    job = run_job(server, path, OPENAI, chunk_size=5)
    results = list(job.results())
    assert [r.custom_id for r in results] == ids_of(path)
    assert all(r.status == "errored" and r.error for r in results)
    assert {r.error.code for r in results if r.error} == {"batch_failed"}
    assert "injected_failure" in (results[0].error.message if results[0].error else "")
    assert job.chunks()[0].batch_state == "failed"


def test_openai_truncated_download_is_detected_and_fetched_again(
    make_sandbox: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    server = make_sandbox(faults=Faults(seed=1, truncate_output_rate=0.5))
    path = write_items(tmp_path / "in.jsonl", 30)
    job = run_job(server, path, OPENAI)
    results = list(job.results())
    assert [r.custom_id for r in results] == ids_of(path)
    assert {r.status for r in results} == {"succeeded"}
    assert kinds(server)["truncate"] >= 1
    assert not list(job.dir.glob("**/*.part")), "no half-written file left behind"


def test_anthropic_truncated_download_is_detected_and_fetched_again(
    make_sandbox: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    server = make_sandbox(faults=Faults(seed=1, truncate_output_rate=0.5))
    path = write_items(tmp_path / "in.jsonl", 12)
    job = run_job(server, path, ANTHROPIC)
    assert [r.custom_id for r in job.results()] == ids_of(path)
    assert kinds(server)["truncate"] >= 1


def test_openai_connection_dropped_mid_download_is_retried(
    make_sandbox: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    server = make_sandbox(faults=Faults(seed=1, drop_rate=0.2))
    path = write_items(tmp_path / "in.jsonl", 12)
    job = run_job(server, path, OPENAI)
    assert [r.custom_id for r in job.results()] == ids_of(path)


def test_anthropic_dropped_connections_are_retried(
    make_sandbox: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    server = make_sandbox(faults=Faults(seed=1, drop_rate=0.2))
    path = write_items(tmp_path / "in.jsonl", 12)
    job = run_job(server, path, ANTHROPIC)
    assert [r.custom_id for r in job.results()] == ids_of(path)
    assert kinds(server)["drop"] >= 1 and duplicates(server, job) == 0


@pytest.mark.parametrize(
    "model",
    [
        OPENAI,
        # Anthropic batches carry no metadata: the lost batch is adopted from the listing by
        # its count, time and (six chunks of two: all rivals) its results' ids (jobs/adopt.py)
        ANTHROPIC,
        # Mistral finds a batch by its metadata, Gemini by its display name
        "mistral:mistral-small-latest",
        "gemini:gemini-2.5-flash",
    ],
)
def test_create_timeout_leaves_no_duplicate_batch(
    make_sandbox: Callable[..., SandboxServer], tmp_path: Path, model: str
) -> None:
    server = make_sandbox(faults=Faults(seed=2, create_timeout_rate=0.5))
    path = write_items(tmp_path / "in.jsonl", 12)
    job = run_job(server, path, model, chunk_size=2)  # six creates: some answers are lost
    assert [r.custom_id for r in job.results()] == ids_of(path)
    assert kinds(server)["create_timeout"] >= 1
    assert duplicates(server, job) == 0


def results_lines(job: Job) -> Iterator[BatchResult]:
    with job.results_path.open() as fh:
        for line in fh:
            yield BatchResult.model_validate_json(line)
