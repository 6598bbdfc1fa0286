"""What the job commands share: the request and job options, the sandbox, the printouts."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import click

from ..config import JobOptions, RequestDefaults
from ..jobs import Job, submit, usage_table
from ..pricing import usd
from ..sandbox import SandboxEngine, SandboxServer
from .options import (
    JOB_FIELDS,
    PROFILE_OPTION,
    REQUEST_FIELDS,
    apply,
    job_options_from,
    model_options,
    request_defaults,
)

F = TypeVar("F", bound=Callable[..., Any])


def setup_logging(verbose: bool) -> None:
    level = logging.DEBUG if verbose else logging.WARNING
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    # the SDKs' HTTP loggers print request details at debug level; they stay quiet so that
    # nothing sensitive reaches the terminal or a log collector
    for name in ("openai", "anthropic", "httpx", "httpx2", "httpcore", "httpcore2", "uvicorn"):
        logging.getLogger(name).setLevel(logging.WARNING)


def job_options(fn: F) -> F:
    """Options shared by ``run`` and ``submit``: the request defaults, then the job options."""
    return apply(
        fn,
        [
            click.argument("input_path", metavar="INPUT", type=click.Path(path_type=Path)),
            *model_options(RequestDefaults, REQUEST_FIELDS[:1]),
            PROFILE_OPTION,
            *model_options(RequestDefaults, REQUEST_FIELDS[1:]),
            *model_options(JobOptions, JOB_FIELDS),
            click.option("--base-url", help="Point the provider's client at this URL."),
        ],
    )


@contextmanager
def maybe_sandbox(enabled: bool, rate: float | None) -> Iterator[Any]:
    if not enabled:
        yield None
        return
    engine = SandboxEngine(
        api_key="sandbox-key", rate=rate, validation_seconds=0.3 if rate else 0.0
    )
    with SandboxServer(engine) as server:
        click.echo(f"sandbox: serving the emulated batch APIs at {server.url}", err=True)
        yield server


def submit_from_cli(input_path: Path, sandbox: Any, **kw: Any) -> Job:
    # the sandbox answers in seconds, not hours: poll it briskly
    fast = {"poll_min": 0.2, "poll_max": 1.0} if sandbox is not None else {}
    return submit(
        input_path,
        defaults=request_defaults(kw),
        options=job_options_from(kw, **fast),
        profile=kw["profile"],
        base_url=kw["base_url"],
        sandbox=sandbox,
    )


def print_estimate(job: Job) -> None:
    est = job.estimate()
    if est:
        click.echo(
            f"estimate: {usd(Decimal(est['low']))} to {usd(Decimal(est['high']))} "
            f"({est['input_tokens']:,} input tokens, up to {est['max_output_tokens']:,} output)",
            err=True,
        )
        click.echo(f"  method: {est['method']}", err=True)


def print_outcome(job: Job, output: Path | None) -> None:
    """The outcome line, where the results are and the usage table; from the ledger's counts
    and usage totals (kept as the results were written), never by reading every result."""
    dest = job.export_results(output) if output else job.results_path
    counts = job.counts()
    summary = ", ".join(f"{n} {s}" for s, n in counts.items())
    click.echo(f"job {job.id}: {job.status().state}: {sum(counts.values())} results ({summary})")
    click.echo(f"results: {dest}")
    click.echo(usage_table([job], digits=6))
