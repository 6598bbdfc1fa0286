"""Counts and usage totals kept in the ledger as results are written (issue 14 item 1).

The usage table, ``Job.usage()``, ``Job.cost()`` and the outcome counts come from the tallies the
ledger keeps; they must equal what reading every result gives, and a ledger written before
tallies existed must still open and give the same figures (recomputed once, streaming).
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import Callable
from datetime import date
from pathlib import Path

from polybatch import Job, submit, usage_table
from polybatch.items import Usage
from polybatch.jobs.costs import job_cost, job_records
from polybatch.jobs.ledger import open_ledger
from polybatch.pricing import Cost, cost_of, price_registry, render_table, usage_rows
from polybatch.sandbox import Faults, SandboxServer

MODEL = "openai:gpt-4o-mini"


def write_items(path: Path, n: int) -> Path:
    with path.open("w") as fh:
        for i in range(n):
            fh.write(
                json.dumps({"custom_id": f"q-{i:04d}", "prompt": f"Q{i}?" * (1 + i % 7)}) + "\n"
            )
    return path


def finished_job(make_sandbox: Callable[..., SandboxServer], tmp_path: Path) -> Job:
    server = make_sandbox(faults=Faults(seed=2, item_error_rate=0.3))
    path = write_items(tmp_path / "in.jsonl", 60)
    job = submit(path, MODEL, sandbox=server, chunk_size=25, retry_failed=1)
    return job.wait(poll_min=0.02, poll_max=0.2, timeout=60)


def per_result_table(job: Job, by: tuple[str, ...]) -> str:
    registry = price_registry(providers=[job.provider_name])
    return render_table(usage_rows(job_records(job), registry, by=by), digits=6)  # type: ignore[arg-type]


def test_tallies_match_reading_every_result(
    make_sandbox: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    job = finished_job(make_sandbox, tmp_path)
    results = list(job.results())
    assert job.counts() == dict(sorted(Counter(r.status for r in results).items()))
    total = Usage()
    for r in results:
        total = total + r.usage
    assert job.usage() == total
    for by in (("provider", "model"), ("job_id", "date"), ()):
        assert usage_table([job], by=by, digits=6) == per_result_table(job, by)


def test_a_ledger_from_before_tallies_opens_and_gives_the_same_figures(
    make_sandbox: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    job = finished_job(make_sandbox, tmp_path)
    counts, usage, table, st = job.counts(), job.usage(), usage_table([job]), job.status()
    path = open_ledger().path
    with sqlite3.connect(path) as db:  # the schema as it was before tallies
        db.execute("DROP TABLE job_tallies")
        for col in ("live_ok", "live_failed", "tally"):
            db.execute(f"ALTER TABLE chunks DROP COLUMN {col}")
    old = Job.load(job.id)
    assert (old.counts(), old.usage(), usage_table([old]), old.status()) == (
        counts,
        usage,
        table,
        st,
    )
    with sqlite3.connect(path) as db:  # recomputed once, and kept
        (n,) = db.execute("SELECT count(*) FROM job_tallies").fetchone()
    assert n >= 1


TIERED = """
[[price]]
provider = "openai"
model = "gpt-4o-mini"
mode = "{mode}"
effective = 2026-01-01
input = "{base}"
output = "1"
[[price.tiers]]
above_input_tokens = 12
input = "100"
output = "200"
"""


def test_a_model_priced_in_tiers_is_priced_request_by_request(
    make_sandbox: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    job = finished_job(make_sandbox, tmp_path)
    prices = tmp_path / "prices.toml"
    prices.write_text(
        TIERED.format(mode="batch", base="0.5") + TIERED.format(mode="standard", base="1")
    )
    registry = price_registry(prices, providers=["openai"])
    inputs = {r.usage.total_input_tokens for r in job.results() if r.ok}
    assert min(inputs) <= 12 < max(inputs)  # both sides of the tier
    expected = sum(
        (
            cost_of(r.usage, registry.price("openai", "gpt-4o-mini", "batch", date.today()))
            for r in job.results()
            if r.usage.total_tokens
        ),
        Cost(),
    )
    assert job_cost(job, registry=registry) == expected
    table = usage_table([job], registry=registry, digits=6)
    assert table == render_table(
        usage_rows(job_records(job), registry, by=("provider", "model")), digits=6
    )


def test_run_returns_a_sequence_read_on_demand(sandbox_server: SandboxServer) -> None:
    import polybatch

    results = polybatch.run([f"q{i}?" for i in range(5)], MODEL, sandbox=sandbox_server)
    ids = [f"item-{i}" for i in range(1, 6)]
    assert len(results) == 5
    assert [r.custom_id for r in results] == ids
    assert results[0].custom_id == "item-1" and results[-1].custom_id == "item-5"
    assert [r.custom_id for r in results[1:3]] == ids[1:3]
    assert results == list(results)
    (first, *_rest) = results
    assert first.ok
