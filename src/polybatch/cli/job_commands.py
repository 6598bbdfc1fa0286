"""The commands that run jobs and read them back: run, submit, resume, status, results, retry, cancel, list."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click
from prettytable import PrettyTable

from ..errors import JobBusyError
from ..jobs import Job, lease
from ..jobs.access import ReadOnlyLedgerError
from ..jobs.files import private_fd
from ..jobs.ledger import open_ledger
from ..report import openai_output_line
from .common import job_options, maybe_sandbox, print_estimate, print_outcome, submit_from_cli


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
    type=float,
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

    Exit code 2, nothing sent, while another live process runs the same job."""
    # the job's lease is held from planning to the end, with no gap another process could take
    with maybe_sandbox(sandbox, sandbox_rate or None) as server, lease.keeping():
        job = submit_from_cli(input_path, server, **kw)
        click.echo(
            f"job {job.id}: {job.status().total} requests, {len(job.chunks())} batch(es) on {job.provider_name}:{job.model}",
            err=True,
        )
        print_estimate(job)
        job.wait(progress=not no_progress)
        print_outcome(job, output)


@click.command("submit")
@job_options
def submit_cmd(input_path: Path, **kw: Any) -> None:
    """Submit INPUT and return at once with the job id (see ``status``, ``resume``)."""
    job = submit_from_cli(input_path, None, **kw)
    print_estimate(job)
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
    """Continue JOB_ID (after a crash, or one submitted with ``submit``) until it ends."""
    job = Job.load(job_id)
    job.wait(progress=not no_progress)
    print_outcome(job, output)


@click.command()
@click.argument("job_id")
@click.option("--refresh/--no-refresh", default=True, help="Poll the provider once first.")
def status(job_id: str, refresh: bool) -> None:
    """Show the state of JOB_ID and of its provider batches."""
    job = Job.load(job_id)
    if refresh:
        try:
            job.step()
        except (JobBusyError, ReadOnlyLedgerError) as exc:  # show the ledger as it has it
            click.echo(f"{exc}: not polling, showing the ledger", err=True)
    st = job.status()
    click.echo(
        f"job {st.job_id}: {st.state} on {st.provider}:{st.model}; {st.total} requests, {st.succeeded} ok, {st.failed} failed"
    )
    t = PrettyTable()
    t.field_names = ["chunk", "requests", "state", "batch", "provider state", "ok", "failed"]
    for c in job.chunks():
        # a running batch shows the provider's progress as of the last poll
        ok, failed = (c.n_ok, c.n_failed) if c.state == "collected" else (c.live_ok, c.live_failed)
        t.add_row([c.idx, c.count, c.state, c.batch_id or "-", c.batch_state or "-", ok, failed])
    click.echo(t.get_string())


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
    "--format",
    "fmt",
    type=click.Choice(["neutral", "openai"]),
    default="neutral",
    show_default=True,
    help="neutral BatchResult lines, or OpenAI batch-output lines (for migrating).",
)
def results(job_id: str, output: Path | None, failed: bool, fmt: str) -> None:
    """Print (or write) the results of JOB_ID as JSONL, in input order."""
    job = Job.load(job_id)
    chosen = job.results("failed" if failed else None)
    if fmt == "openai":
        lines = (json.dumps(openai_output_line(r)) for r in chosen)
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
@click.option("--rounds", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def retry(job_id: str, rounds: int, no_progress: bool) -> None:
    """Resubmit the retryable failures of a finished JOB_ID and wait for them."""
    job = Job.load(job_id)
    with lease.keeping():  # one hold from planning the retry round to its end
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
    """Cancel JOB_ID: running batches are cancelled, queued ones never sent."""
    job = Job.load(job_id)
    job.cancel()
    click.echo(
        f"job {job.id}: cancel requested; `polybatch resume {job.id}` collects what finished"
    )


@click.command("list")
@click.option("--limit", type=int, default=20, show_default=True)
def list_cmd(limit: int) -> None:
    """List jobs, newest first."""
    ledger = open_ledger()
    t = PrettyTable()
    t.field_names = ["job", "created", "provider:model", "requests", "ok", "failed", "state"]
    for row in ledger.list_jobs()[:limit]:
        created = time.strftime("%Y-%m-%d %H:%M", time.localtime(row.created_at))
        st = Job(row, ledger).status()  # per request, latest outcome (from the ledger)
        t.add_row(
            [
                row.id,
                created,
                f"{row.provider}:{row.model}",
                row.n_items,
                st.succeeded,
                st.failed,
                row.state,
            ]
        )
    click.echo(t.get_string())
