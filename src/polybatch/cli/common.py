"""What the job commands share: the request and job options, the sandbox, the printouts."""

from __future__ import annotations

import logging
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import click

from .. import config as _config
from ..config import JobOptions, RequestDefaults
from ..errors import CredentialsError
from ..inputs import input_model
from ..jobs import Job, submit, usage_table
from ..jobs.sandboxed import sandbox_engine
from ..plugins import get_registry
from ..pricing import usd
from .aliases import hidden_alias
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


class _PlainFormatter(logging.Formatter):
    """``warning: the message`` (``error: ...`` for errors): no time, no logger name."""

    def format(self, record: logging.LogRecord) -> str:
        return f"{record.levelname.lower()}: {record.getMessage()}"


class _Once(logging.Filter):
    """Lets each distinct message through once (a warning repeated each poll is said once)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if text in self.seen:
            return False
        self.seen.add(text)
        return True


def show_warnings_plainly() -> None:
    """Python warnings as one ``warning: ...`` line each, once, without the source path and line
    that Python's default format adds (those help a developer, not a user of the CLI)."""
    seen: set[str] = set()

    def show(message: Any, category: Any, filename: str, lineno: int, *_: Any, **__: Any) -> None:
        text = str(message).removeprefix("polybatch: ")
        if text not in seen:
            seen.add(text)
            click.echo(f"warning: {text}", err=True)

    warnings.showwarning = show


def setup_logging(verbose: bool) -> None:
    """``-v``: log lines (time, level, logger) from DEBUG up. Otherwise only warnings, each as
    one plain ``warning: ...`` line, once."""
    show_warnings_plainly()
    if verbose:
        logging.basicConfig(
            level=logging.DEBUG,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
            stream=sys.stderr,
        )
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_PlainFormatter())
        handler.addFilter(_Once())
        logging.basicConfig(level=logging.WARNING, handlers=[handler])
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
            hidden_alias("--system", "system_prompt"),  # its 0.2 name
            *model_options(JobOptions, JOB_FIELDS),
            click.option("--base-url", help="Point the provider's client at this URL."),
            click.option(
                "--output-expires-after",
                type=click.IntRange(min=1),
                metavar="SECONDS",
                help="Keep the batch's output files this long from their creation (OpenAI "
                "3600-2592000, Azure 1209600-2592000): the provider setting output_expires_after.",
            ),
        ],
    )


def chosen_provider(kw: dict[str, Any], input_path: Path | None = None) -> str:
    """The provider the options (or the profile, the environment, the input) name, without
    loading any."""
    resolved = _config.resolve(
        profile=kw["profile"],
        defaults=request_defaults(kw),
        limits=job_options_from(kw),
        fallback_model=input_model(input_path),
    )
    return resolved.provider


@contextmanager
def maybe_sandbox(enabled: bool, rate: float | None, provider: str | None = None) -> Iterator[Any]:
    """An in-process sandbox for ``run --sandbox``; with ``provider``, it serves only that
    provider's API, so a run imports only that provider's SDK."""
    if not enabled:
        yield None
        return
    from ..sandbox import SandboxServer  # the web stack: only when asked for

    engine = sandbox_engine(rate=rate)  # on the state kept under POLYBATCH_HOME/sandbox
    served = None if provider is None else {provider: get_registry().provider_class(provider)}
    with SandboxServer(engine, providers=served) as server:
        click.echo(f"sandbox: serving the emulated batch APIs at {server.url}", err=True)
        yield server


def submit_from_cli(input_path: Path, sandbox: Any, *, start: bool = True, **kw: Any) -> Job:
    # the sandbox answers in seconds, not hours: poll it briskly
    fast = {"poll_min": 0.2, "poll_max": 1.0} if sandbox is not None else {}
    try:
        return submit(
            input_path,
            defaults=request_defaults(kw),
            options=job_options_from(kw, **fast),
            profile=kw["profile"],
            base_url=kw["base_url"],
            provider_settings=_flag_settings(kw),
            sandbox=sandbox,
            start=start,
        )
    except CredentialsError as exc:
        if sandbox is not None or "no API key" not in str(exc):
            raise
        raise CredentialsError(
            f"{exc} (or rehearse without a key: `polybatch run INPUT -m MODEL --sandbox`)"
        ) from None


def _flag_settings(kw: dict[str, Any]) -> dict[str, Any]:
    """Provider settings given as flags (``--output-expires-after``); they win over the config."""
    seconds = kw.get("output_expires_after")
    return {"output_expires_after": seconds} if seconds is not None else {}


@contextmanager
def resumable(job: Job) -> Iterator[None]:
    """Ctrl-C while ``job`` runs: say how to resume it, exit 130 (the ledger has every step)."""
    try:
        yield
    except KeyboardInterrupt:
        click.echo(
            f"interrupted: job {job.id} is in the ledger; resume it with: polybatch resume {job.id}",
            err=True,
        )
        raise click.exceptions.Exit(130) from None


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
