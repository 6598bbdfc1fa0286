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

from ..jobs import Job, submit, usage_table
from ..pricing import usd
from ..report import status_counts
from ..sandbox import SandboxEngine, SandboxServer

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
    """Options shared by ``run`` and ``submit``."""
    options = [
        click.argument("input_path", metavar="INPUT", type=click.Path(path_type=Path)),
        click.option(
            "-m", "--model", help="provider:model, e.g. openai:gpt-4o-mini (or POLYBATCH_MODEL)."
        ),
        click.option(
            "-p", "--profile", help="A profile from polybatch.toml (or POLYBATCH_PROFILE)."
        ),
        click.option("--system", "system", help="A system prompt for items that have none."),
        click.option("--max-tokens", type=click.IntRange(min=1), help="Default max output tokens."),
        click.option("--temperature", type=click.FloatRange(0, 2), help="Default temperature."),
        click.option(
            "--chunk-size",
            type=click.IntRange(min=1),
            help="At most this many requests per provider batch.",
        ),
        click.option(
            "--max-in-flight", type=click.IntRange(min=1), help="Provider batches running at once."
        ),
        click.option(
            "--new", is_flag=True, help="Start a new job even if this input was submitted before."
        ),
        click.option(
            "--keep-files", is_flag=True, help="Keep uploaded input files at the provider."
        ),
        click.option(
            "--max-cost",
            type=click.FloatRange(min=0),
            help="Refuse to submit if the upper cost estimate (USD) is above this.",
        ),
        click.option(
            "--retry-failed",
            type=click.IntRange(min=0),
            default=0,
            help="Rounds of resubmitting expired, cancelled and transiently failed requests.",
        ),
        click.option("--base-url", help="Point the provider's client at this URL."),
    ]
    for opt in reversed(options):
        fn = opt(fn)
    return fn


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
    fast = sandbox is not None
    return submit(
        input_path,
        kw["model"],
        profile=kw["profile"],
        system=kw["system"],
        max_tokens=kw["max_tokens"],
        temperature=kw["temperature"],
        chunk_size=kw["chunk_size"],
        max_in_flight=kw["max_in_flight"],
        new=kw["new"],
        keep_files=kw["keep_files"],
        retry_failed=kw["retry_failed"],
        max_cost=Decimal(str(kw["max_cost"])) if kw["max_cost"] is not None else None,
        base_url=kw["base_url"],
        sandbox=sandbox,
        poll_min=0.2 if fast else None,
        poll_max=1.0 if fast else None,
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
    results = list(job.results())
    dest = job.export_results(output) if output else job.results_path
    counts = status_counts(results)
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    click.echo(f"job {job.id}: {job.status().state}: {len(results)} results ({summary})")
    click.echo(f"results: {dest}")
    click.echo(usage_table([job], digits=6))
