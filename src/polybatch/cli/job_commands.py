"""The commands that run jobs and read them back: run, submit, resume, status, results, retry,
cancel, list."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from prettytable import PrettyTable

from ..errors import JobBusyError
from ..jobs import Job, lease
from ..jobs.access import ReadOnlyLedgerError
from ..jobs.files import private_fd
from ..jobs.ledger import FINAL_STATES, open_ledger
from ..report import to_openai
from .aliases import hidden_alias
from .common import (
    chosen_provider,
    job_options,
    maybe_sandbox,
    print_estimate,
    print_outcome,
    resumable,
    submit_from_cli,
)
from .formats import JSON_OPTION, echo_json


@click.command()
@job_options
@click.option(
    "-o", "--output", type=click.Path(path_type=Path), help="Write the results JSONL here too."
)
@click.option(
    "--sandbox", is_flag=True, help="Run against an in-process sandbox: no key, no network."
)
@click.option(
    "--sandbox-rate",
    type=click.FloatRange(min=0),
    default=200.0,
    show_default=True,
    help="Sandbox requests/second per batch (0: instant).",
)
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def run(
    output: Path | None,
    sandbox: bool,
    sandbox_rate: float,
    no_progress: bool,
    input_path: Path,
    **kw: Any,
) -> None:
    """Submit INPUT, wait for it, write results and print a usage table.

    The cost estimate is printed before anything is sent; a job that stops (Ctrl-C, a crash)
    is continued by `polybatch resume JOB` (Ctrl-C prints that command). With --sandbox the
    sandbox's state is kept under POLYBATCH_HOME, so the same command again is the same job and
    `resume`, `status`, `cancel`, `results` work on it from any process.

    \b
    Example: polybatch run requests.jsonl -m openai:gpt-4o-mini -o results.jsonl
    Exit codes: 0 finished (failed requests are in the results), 2 bad input or
    configuration (nothing was sent) or another live process runs the same job, 1 a
    provider refused, 130 interrupted (Ctrl-C: it prints `polybatch resume JOB`).
    """
    provider = chosen_provider(kw, input_path) if sandbox else None
    # the job's lease is held from planning to the end, with no gap another process could take
    with maybe_sandbox(sandbox, sandbox_rate or None, provider) as server, lease.keeping():
        # planned and recorded, nothing sent yet: the estimate is printed before anything is sent
        job = submit_from_cli(input_path, server, start=False, **kw)
        print_estimate(job)
        click.echo(
            f"job {job.id}: {job.status().total} requests, {len(job.chunks())} batch(es) on {job.provider_name}:{job.model}",
            err=True,
        )
        with resumable(job):
            job.wait(progress=not no_progress)
        print_outcome(job, output)


@click.command("submit")
@job_options
def submit_cmd(input_path: Path, **kw: Any) -> None:
    """Submit INPUT and return at once, printing the job id (then `status`, `resume`).

    \b
    Example: polybatch submit requests.jsonl -m anthropic:claude-haiku-4-5
    Exit codes: 0 submitted, 2 bad input or configuration (nothing was sent), 1 a provider
    refused.
    """
    job = submit_from_cli(input_path, None, start=False, **kw)
    print_estimate(job)  # before anything is sent
    if job.status().state == "planned":
        job.step()
    st = job.status()
    click.echo(job.id)
    click.echo(
        f"{st.total} requests in {len(job.chunks())} batch(es) on {job.provider_name}:{job.model}; state {st.state}",
        err=True,
    )


@click.command()
@click.argument("job_id")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.option(
    "-o", "--output", type=click.Path(path_type=Path), help="Write the results JSONL here too."
)
def resume(job_id: str, no_progress: bool, output: Path | None) -> None:
    """Continue JOB_ID (after a crash, or one submitted with `submit`) until it ends.

    \b
    Example: polybatch resume pb-1a2b3c
    Exit codes: 0 finished (failed requests are in the results), 2 bad input or
    configuration (nothing was sent), 1 a provider refused, 130 interrupted (resume it).
    """
    job = Job.load(job_id)
    with resumable(job):
        job.wait(progress=not no_progress)
    print_outcome(job, output)


@click.command()
@click.argument("job_id")
@click.option("--refresh/--no-refresh", default=True, help="Poll the provider once first.")
@JSON_OPTION
def status(job_id: str, refresh: bool, as_json: bool) -> None:
    """Show the state of JOB_ID and of its provider batches (a unique prefix or its name will do).

    \b
    Example: polybatch status pb-1a2b --json
    Exit codes: 0 shown, 2 no such job (or several match the prefix), 1 a provider refused.
    """
    job = Job.load(job_id)
    if refresh:
        try:
            job.step()
        except (JobBusyError, ReadOnlyLedgerError) as exc:  # show the ledger as it has it
            click.echo(f"{exc}: not polling, showing the ledger", err=True)
    st = job.status()
    chunks = []
    for c in job.chunks():
        # a running batch shows the provider's progress as of the last poll
        ok, failed = (c.n_ok, c.n_failed) if c.state == "collected" else (c.live_ok, c.live_failed)
        chunks.append(
            {
                "chunk": c.idx,
                "requests": c.count,
                "state": c.state,
                "waiting_for_queue": c.queue_full_at is not None and c.state == "planned",
                "batch_id": c.batch_id,
                "provider_state": c.batch_state,
                "ok": ok,
                "failed": failed,
            }
        )
    if as_json:
        echo_json(
            {
                "job_id": st.job_id,
                "name": st.name,
                "state": st.state,
                "provider": st.provider,
                "model": st.model,
                "total": st.total,
                "succeeded": st.succeeded,
                "failed": st.failed,
                "waiting_for_queue": st.waiting_for_queue,
                "chunks": chunks,
            }
        )
        return
    named = f" ({st.name})" if st.name else ""
    click.echo(
        f"job {st.job_id}{named}: {st.state} on {st.provider}:{st.model}; {st.total} requests, {st.succeeded} ok, {st.failed} failed"
    )
    t = PrettyTable()
    t.field_names = ["chunk", "requests", "state", "batch", "provider state", "ok", "failed"]
    for ch in chunks:
        row = dict(ch)
        if row.pop("waiting_for_queue"):
            row["state"] = "waiting for queue room"
        t.add_row([v if v is not None else "-" for v in row.values()])
    click.echo(t.get_string())
    if st.waiting_for_queue:
        click.echo(
            f"{st.waiting_for_queue} batch(es) waiting for queue room: the provider's queue for "
            "the model is full; they are sent as this job's batches end",
        )


@click.command()
@click.argument("job_id")
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    help="Write the results here instead of stdout.",
)
@click.option("--failed", is_flag=True, help="Only results that did not succeed.")
@click.option(
    "--schema",
    "fmt",
    type=click.Choice(["neutral", "openai"]),
    default="neutral",
    show_default=True,
    help="neutral BatchResult lines, or OpenAI batch-output lines (for migrating).",
)
@hidden_alias("--format", "fmt", type=click.Choice(["neutral", "openai"]))
def results(job_id: str, output: Path | None, failed: bool, fmt: str) -> None:
    """Print (or write) the results of JOB_ID as JSONL, in input order.

    \b
    Example: polybatch results pb-1a2b --failed -o failed.jsonl
    Exit codes: 0 written, 2 no such job or it has not finished.
    """
    job = Job.load(job_id)
    chosen = job.results("failed" if failed else None)
    if fmt == "openai":
        lines = (json.dumps(to_openai(r)) for r in chosen)
    else:
        lines = (r.model_dump_json(exclude_none=True) for r in chosen)
    if output:
        with open(private_fd(output), "w", encoding="utf-8") as fh:
            for line in lines:
                fh.write(line + "\n")
        click.echo(f"results: {output}", err=True)
    else:
        for line in lines:
            click.echo(line)


@click.command()
@click.argument("job_id")
@click.option(
    "--retry-failed",
    "rounds",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Rounds of resubmitting the requests that still fail (as run's --retry-failed).",
)
@hidden_alias("--rounds", "rounds", type=click.IntRange(min=1))
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def retry(job_id: str, rounds: int, no_progress: bool) -> None:
    """Resubmit the retryable failures of a finished JOB_ID and wait for them.

    \b
    Example: polybatch retry pb-1a2b --retry-failed 2
    Exit codes: 0 finished (failed requests are in the results), 2 bad input or
    configuration (nothing was sent), 1 a provider refused, 130 interrupted (resume it).
    """
    job = Job.load(job_id)
    with lease.keeping(), resumable(job):  # one hold from planning the retry round to its end
        _retry(job, rounds, no_progress)


def _retry(job: Job, rounds: int, no_progress: bool) -> None:
    if not job.retry(rounds):
        click.echo(f"job {job.id}: nothing to retry")
        return
    job.wait(progress=not no_progress)
    print_outcome(job, None)


@click.command()
@click.argument("job_id")
def cancel(job_id: str) -> None:
    """Cancel JOB_ID: running batches are cancelled, queued ones never sent.

    A job that already finished is left as it is (and says so).

    \b
    Example: polybatch cancel pb-1a2b
    Exit codes: 0 shown, 2 no such job (or several match the prefix), 1 a provider refused.
    """
    job = Job.load(job_id)
    state = job.status().state
    if state in FINAL_STATES:
        click.echo(f"job {job.id}: already finished ({state}); nothing to cancel")
        return
    job.cancel()
    click.echo(
        f"job {job.id}: cancel requested; `polybatch resume {job.id}` collects what finished"
    )


@click.command()
@click.argument("job_id")
@click.option(
    "--outputs/--no-outputs",
    default=True,
    show_default=True,
    help="Delete the batches' output and error files at the provider too.",
)
@click.option(
    "--keep-inputs",
    is_flag=True,
    help="Leave the uploaded input files of a job run with --keep-files.",
)
def cleanup(job_id: str, outputs: bool, keep_inputs: bool) -> None:
    """Delete what finished JOB_ID left at the provider: uploaded inputs, output and error files.

    Where the provider allows it (OpenAI-style Files APIs, Mistral, Gemini); the results stay
    on disk. `run --delete-outputs` does this as the job ends.

    \b
    Example: polybatch cleanup pb-1a2b
    Exit codes: 0 deleted (a file that could not be is a warning), 2 no such job or it has not
    finished.
    """
    job = Job.load(job_id)
    deleted = job.cleanup(inputs=False if keep_inputs else None, outputs=outputs)
    click.echo(f"job {job.id}: cleaned up at {job.provider_name} ({len(deleted)} output files)")


@click.command("list")
@click.option(
    "--limit",
    type=click.IntRange(min=0),
    default=20,
    show_default=True,
    help="Show at most this many jobs (0: all).",
)
@JSON_OPTION
def list_cmd(limit: int, as_json: bool) -> None:
    """List jobs, newest first, with their per-request counts.

    \b
    Example: polybatch list --limit 5 --json
    Exit codes: 0 listed.
    """
    ledger = open_ledger()
    rows = ledger.list_jobs()
    records: list[dict[str, Any]] = []
    for row in rows[:limit] if limit else rows:
        st = Job(row, ledger).status()  # per request, latest outcome (from the ledger)
        records.append(
            {
                "job_id": row.id,
                "name": row.options.get("name"),
                "created": datetime.fromtimestamp(row.created_at, UTC).isoformat(),
                "provider": row.provider,
                "model": row.model,
                "requests": row.n_items,
                "ok": st.succeeded,
                "failed": st.failed,
                "state": row.state,
                "created_at": row.created_at,
            }
        )
    if as_json:
        echo_json([{k: v for k, v in r.items() if k != "created_at"} for r in records])
        return
    t = PrettyTable()
    t.field_names = [
        "job",
        "created",
        "provider:model",
        "requests",
        "ok",
        "failed",
        "state",
        "name",
    ]
    for r in records:
        created = time.strftime("%Y-%m-%d %H:%M", time.localtime(r["created_at"]))
        t.add_row(
            [
                r["job_id"],
                created,
                f"{r['provider']}:{r['model']}",
                r["requests"],
                r["ok"],
                r["failed"],
                r["state"],
                r["name"] or "-",
            ]
        )
    click.echo(t.get_string())


@click.command()
@click.argument("job_id")
def forget(job_id: str) -> None:
    """Mark JOB_ID abandoned: a job that can never finish (its batches are gone, its sandbox
    state deleted). Nothing more is sent or collected for it; results already written stay on
    disk; `list` shows it as abandoned.

    \b
    Example: polybatch forget pb-1a2b
    Exit codes: 0 marked (or already finished: left as it is), 2 no such job (or several
    match the prefix).
    """
    ledger = open_ledger()
    job = Job(ledger.job_by_prefix(job_id), ledger)  # no provider: nothing is sent
    state = job.status().state
    if state in FINAL_STATES or state == "abandoned":
        click.echo(f"job {job.id}: already {state}; left as it is")
        return
    job.abandon()
    click.echo(f"job {job.id}: abandoned (was {state}); its results so far stay in {job.dir}")
