"""Queue limits over HTTP with the real openai SDK: the sandbox emulates an organisation's
enqueued-token limit per model (OpenAI accepts the batch, then fails it with
``token_limit_exceeded``; Azure's fail-fast regions refuse the create), and polybatch admits,
requeues and halves chunks so that nothing is failed, lost or sent twice."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from openai_testlib import KEY, MODEL, ServerFactory

import polybatch
from polybatch.jobs.ledger import open_ledger
from polybatch.sandbox.queue import request_tokens
from polybatch.testing import CliOutcome
from polybatch.testing.helpers import event_kinds, make_items
from polybatch_openai.provider import OpenAIProvider

#: "question number N": 3 words, one message: 3 + 3 + 4 prompt tokens (polybatch.tokens)
ITEM_TOKENS = 10
FAST = {"poll_min": 0.01, "poll_max": 0.05}


def run_job(server: Any, home: Path, n: int, chunk_size: int, **options: Any) -> polybatch.Job:
    job = polybatch.submit(
        make_items(n),
        f"openai:{MODEL}",
        sandbox=server,
        home=home,
        chunk_size=chunk_size,
        queue_backoff=0.05,
        **options,
    )
    return job.wait(timeout=60, **FAST)


def test_the_sandbox_counts_a_request_as_the_planner_estimates_it(
    make_server: ServerFactory, tmp_path: Path
) -> None:
    server = make_server()
    job = polybatch.submit(make_items(4), f"openai:{MODEL}", sandbox=server, home=tmp_path)
    job.wait(timeout=30, **FAST)
    (chunk,) = open_ledger(tmp_path).chunks(job.id)
    assert chunk.tokens == 4 * ITEM_TOKENS
    (batch,) = server.engine.batches.values()
    assert sum(request_tokens(r) for r in batch.requests) == chunk.tokens


def test_a_job_over_the_orgs_queue_limit_completes_with_no_chunk_failed(
    make_server: ServerFactory, tmp_path: Path
) -> None:
    # room for 3 chunks of 5 requests; the job sends 8 chunks at once and knows no limit
    server = make_server(rate=40, queue_limit_tokens=3 * 5 * ITEM_TOKENS)
    job = run_job(server, tmp_path, 40, 5, max_in_flight=8)
    results = list(job.results())
    assert Counter(r.custom_id for r in results) == {f"c{i}": 1 for i in range(40)}
    assert {r.status for r in results} == {"succeeded"}
    chunks = open_ledger(tmp_path).chunks(job.id)
    assert len(chunks) == 8 and all(c.n_failed == 0 for c in chunks)
    events = event_kinds(job)
    assert events["queue-full"] >= 5, "the org's queue refused the chunks past the third"
    assert events["halved"] == 0, "a chunk refused beside the job's own waits, it is not cut"
    refused = [b for b in server.engine.batches.values() if b.errors]
    assert refused and all(b.errors[0]["code"] == "token_limit_exceeded" for b in refused)
    # each chunk's items went into exactly one batch that ran
    ran = Counter(
        r.custom_id for b in server.engine.batches.values() if not b.errors for r in b.requests
    )
    assert set(ran.values()) == {1} and len(ran) == 40


def test_admission_keeps_the_jobs_in_flight_tokens_under_the_limit(
    make_server: ServerFactory, tmp_path: Path
) -> None:
    limit = 3 * 5 * ITEM_TOKENS
    server = make_server(rate=40, queue_limit_tokens=limit)
    job = run_job(server, tmp_path, 40, 5, max_in_flight=8, max_enqueued_tokens=limit)
    assert len(list(job.results())) == 40
    assert event_kinds(job)["queue-full"] == 0, "admission alone kept within the limit"
    batches = sorted(server.engine.batches.values(), key=lambda b: b.created_at)
    assert not any(b.errors for b in batches)
    # at every create, the batches still running held at most the limit (with the new one)
    now = server.engine.now()
    for b in batches:
        running = [o for o in batches if o.created_at <= b.created_at < (o.ended_at(now) or 1e18)]
        assert sum(o.queue_tokens for o in running) <= limit


def test_a_chunk_refused_alone_is_halved_until_it_fits(
    make_server: ServerFactory, tmp_path: Path
) -> None:
    server = make_server(queue_limit_tokens=3 * ITEM_TOKENS)
    job = run_job(server, tmp_path, 10, 10)
    results = list(job.results())
    assert Counter(r.custom_id for r in results) == {f"c{i}": 1 for i in range(10)}
    assert [r.custom_id for r in results] == [f"c{i}" for i in range(10)], "input order kept"
    assert {r.status for r in results} == {"succeeded"}
    events = event_kinds(job)
    assert events["halved"] >= 2 and events["queue-full"] >= 2
    assert all(len(b.requests) <= 3 for b in server.engine.batches.values() if not b.errors)


def test_a_chunk_over_the_jobs_own_limit_is_halved_before_it_is_sent(
    make_server: ServerFactory, tmp_path: Path
) -> None:
    server = make_server(queue_limit_tokens=4 * ITEM_TOKENS)
    job = run_job(server, tmp_path, 8, 8, max_enqueued_tokens=4 * ITEM_TOKENS)
    assert {r.status for r in job.results()} == {"succeeded"}
    events = event_kinds(job)
    assert events["halved"] == 1 and events["queue-full"] == 0


def test_a_single_request_refused_alone_ends_as_its_items_error(
    make_server: ServerFactory, tmp_path: Path
) -> None:
    server = make_server(queue_limit_tokens=ITEM_TOKENS - 1)
    job = run_job(server, tmp_path, 2, 2)
    assert job.status().state == "completed"
    results = list(job.results())
    assert [r.custom_id for r in results] == ["c0", "c1"]
    assert {r.status for r in results} == {"errored"}
    assert {r.error.code for r in results if r.error} == {"queue_full"}
    assert event_kinds(job)["queue-full-alone"] == 2


def cli_env(server: Any) -> dict[str, str]:
    return OpenAIProvider.sandbox_env(server.url, KEY)


def write_items(path: Path, n: int) -> Path:
    path.write_text("".join(i.model_dump_json() + "\n" for i in make_items(n)))
    return path


def test_the_cli_flag_admits_within_the_limit(
    make_server: ServerFactory, tmp_path: Path, polybatch_cli: Callable[..., CliOutcome]
) -> None:
    limit = 3 * 5 * ITEM_TOKENS
    server = make_server(rate=40, queue_limit_tokens=limit)
    items = write_items(tmp_path / "in.jsonl", 40)
    out = polybatch_cli(
        "run", str(items), "--model", f"openai:{MODEL}", "--chunk-size", "5",
        "--max-in-flight", "8", "--max-enqueued-tokens", str(limit), "--no-progress",
        "-o", str(tmp_path / "out.jsonl"), env=cli_env(server),
    )  # fmt: skip
    assert out.exit_code == 0, out.stderr
    lines = (tmp_path / "out.jsonl").read_text().splitlines()
    assert len(lines) == 40
    assert not any(b.errors for b in server.engine.batches.values()), "nothing was refused"


def test_status_shows_chunks_waiting_for_queue_room(
    make_server: ServerFactory, tmp_path: Path, polybatch_cli: Callable[..., CliOutcome]
) -> None:
    # a provider setting per model this time, above the org's real limit: the org refuses
    (tmp_path / "polybatch.toml").write_text(
        f'[providers.openai.max_enqueued_tokens]\n"{MODEL}" = 100000\n'
    )
    server = make_server(rate=5, queue_limit_tokens=3 * 5 * ITEM_TOKENS)
    items = write_items(tmp_path / "in.jsonl", 40)
    env = {**cli_env(server), "POLYBATCH_CONFIG": str(tmp_path / "polybatch.toml")}
    sub = polybatch_cli(
        "submit", str(items), "--model", f"openai:{MODEL}", "--chunk-size", "5",
        "--max-in-flight", "8", env=env,
    )  # fmt: skip
    assert sub.exit_code == 0, sub.stderr
    job_id = sub.stdout.strip().splitlines()[-1]
    shown = polybatch_cli("status", job_id, "--no-refresh", "--json", env=env)
    st = json.loads(shown.stdout)
    assert st["waiting_for_queue"] == 5 and st["failed"] == 0
    assert sum(c["waiting_for_queue"] for c in st["chunks"]) == 5
    table = polybatch_cli("status", job_id, "--no-refresh", env=env)
    assert "5 batch(es) waiting for queue room" in table.stdout
    assert table.stdout.count("waiting for queue room") == 6
    done = polybatch_cli("resume", job_id, "--no-progress", env=env)
    assert done.exit_code == 0, done.stderr
    job = polybatch.Job.load(job_id)
    assert Counter(r.custom_id for r in job.results()) == {f"c{i}": 1 for i in range(40)}
    assert job.status().failed == 0
