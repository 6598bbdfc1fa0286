"""The ``polybatch`` command line."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import click
from prettytable import PrettyTable

from . import config as _config
from .accounting import describe_estimate, estimate_items, price_registry, usage_table, usd
from .errors import ConfigError, PolybatchError
from .plugins import get_registry
from .report import openai_output_line, status_counts
from .runner import Job, open_ledger, private_fd, submit

F = TypeVar("F", bound=Callable[..., Any])


def _setup_logging(verbose: bool) -> None:
    level = logging.DEBUG if verbose else logging.WARNING
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    # the SDKs' HTTP loggers print request details at debug level; they stay quiet so that
    # nothing sensitive reaches the terminal or a log collector
    for name in ("openai", "anthropic", "httpx", "httpx2", "httpcore", "httpcore2", "uvicorn"):
        logging.getLogger(name).setLevel(logging.WARNING)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="polybatch")
@click.option("-v", "--verbose", is_flag=True, help="Log what polybatch does (to stderr).")
def cli(verbose: bool) -> None:
    """Run LLM requests through the providers' discounted batch APIs."""
    _setup_logging(verbose)


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
def _maybe_sandbox(enabled: bool, rate: float | None) -> Iterator[Any]:
    if not enabled:
        yield None
        return
    from .sandbox import SandboxEngine, SandboxServer

    engine = SandboxEngine(
        api_key="sandbox-key", rate=rate, validation_seconds=0.3 if rate else 0.0
    )
    with SandboxServer(engine) as server:
        click.echo(f"sandbox: serving the emulated batch APIs at {server.url}", err=True)
        yield server


def _submit_from_cli(input_path: Path, sandbox: Any, **kw: Any) -> Job:
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


def _print_estimate(job: Job) -> None:
    est = job.estimate()
    if est:
        click.echo(
            f"estimate: {usd(Decimal(est['low']))} to {usd(Decimal(est['high']))} "
            f"({est['input_tokens']:,} input tokens, up to {est['max_output_tokens']:,} output)",
            err=True,
        )
        click.echo(f"  method: {est['method']}", err=True)


def _print_outcome(job: Job, output: Path | None) -> None:
    results = list(job.results())
    dest = job.export_results(output) if output else job.results_path
    counts = status_counts(results)
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    click.echo(f"job {job.id}: {job.status().state}: {len(results)} results ({summary})")
    click.echo(f"results: {dest}")
    click.echo(usage_table([job], digits=6))


@cli.command()
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
    """Submit INPUT, wait for it, write results and print a usage table."""
    with _maybe_sandbox(sandbox, sandbox_rate or None) as server:
        job = _submit_from_cli(input_path, server, **kw)
        click.echo(
            f"job {job.id}: {job.status().total} requests, {len(job.chunks())} batch(es) on {job.provider_name}:{job.model}",
            err=True,
        )
        _print_estimate(job)
        job.wait(progress=not no_progress)
        _print_outcome(job, output)


@cli.command("submit")
@job_options
def submit_cmd(input_path: Path, **kw: Any) -> None:
    """Submit INPUT and return at once with the job id (see ``status``, ``resume``)."""
    job = _submit_from_cli(input_path, None, **kw)
    _print_estimate(job)
    st = job.status()
    click.echo(job.id)
    click.echo(
        f"{st.total} requests in {len(job.chunks())} batch(es) on {job.provider_name}:{job.model}; state {st.state}",
        err=True,
    )


@cli.command()
@click.argument("job_id")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.option(
    "-o", "--output", type=click.Path(path_type=Path), help="Write the results JSONL here too."
)
def resume(job_id: str, no_progress: bool, output: Path | None) -> None:
    """Continue JOB_ID (after a crash, or one submitted with ``submit``) until it ends."""
    job = Job.load(job_id)
    job.wait(progress=not no_progress)
    _print_outcome(job, output)


@cli.command()
@click.argument("job_id")
@click.option("--refresh/--no-refresh", default=True, help="Poll the provider once first.")
def status(job_id: str, refresh: bool) -> None:
    """Show the state of JOB_ID and of its provider batches."""
    job = Job.load(job_id)
    if refresh:
        job.step()
    st = job.status()
    click.echo(
        f"job {st.job_id}: {st.state} on {st.provider}:{st.model}; {st.total} requests, {st.succeeded} ok, {st.failed} failed"
    )
    t = PrettyTable()
    t.field_names = ["chunk", "requests", "state", "batch", "provider state", "ok", "failed"]
    for c in job.chunks():
        t.add_row(
            [c.idx, c.count, c.state, c.batch_id or "-", c.batch_state or "-", c.n_ok, c.n_failed]
        )
    click.echo(t.get_string())


@cli.command()
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


@cli.command()
@click.argument("job_id")
@click.option("--rounds", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def retry(job_id: str, rounds: int, no_progress: bool) -> None:
    """Resubmit the retryable failures of a finished JOB_ID and wait for them."""
    job = Job.load(job_id)
    if not job.retry(rounds):
        click.echo(f"job {job.id}: nothing to retry")
        return
    job.wait(progress=not no_progress)
    _print_outcome(job, None)


@cli.command()
@click.argument("job_id")
def cancel(job_id: str) -> None:
    """Cancel JOB_ID: running batches are cancelled, queued ones never sent."""
    job = Job.load(job_id)
    job.cancel()
    click.echo(
        f"job {job.id}: cancel requested; `polybatch resume {job.id}` collects what finished"
    )


@cli.command("list")
@click.option("--limit", type=int, default=20, show_default=True)
def list_cmd(limit: int) -> None:
    """List jobs, newest first."""
    ledger = open_ledger()
    t = PrettyTable()
    t.field_names = ["job", "created", "provider:model", "requests", "state"]
    for row in ledger.list_jobs()[:limit]:
        created = time.strftime("%Y-%m-%d %H:%M", time.localtime(row.created_at))
        t.add_row([row.id, created, f"{row.provider}:{row.model}", row.n_items, row.state])
    click.echo(t.get_string())


@cli.command()
def providers() -> None:
    """List installed providers, their plugins, limits and whether credentials are set."""
    from importlib.metadata import PackageNotFoundError, version

    reg = get_registry()
    t = PrettyTable()
    t.field_names = ["provider", "plugin", "version", "max requests", "max bytes", "credentials"]
    for name, info in sorted(reg.infos().items()):
        cls = info.provider_class
        try:
            ver = version(info.distribution or "")
        except (PackageNotFoundError, ValueError):
            ver = "?"
        creds = (
            "set" if cls.credentials_present() else "missing: " + " or ".join(cls.credential_env)
        )
        t.add_row(
            [
                name,
                info.origin,
                ver,
                f"{cls.limits.max_requests:,}",
                f"{cls.limits.max_bytes:,}",
                creds,
            ]
        )
    click.echo(t.get_string())
    for name, why in sorted(reg.skipped.items()):
        click.echo(f"skipped plugin {name}: {why}", err=True)


@cli.command()
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="Address to bind (loopback by default)."
)
@click.option("--port", default=8765, show_default=True, type=int)
@click.option(
    "--key", default="sandbox-key", show_default=True, help="The API key clients must send."
)
@click.option("--rate", type=float, default=0.0, help="Requests/second per batch (0: instant).")
@click.option(
    "--faults",
    "faults_spec",
    default="",
    metavar="SPEC",
    help="Seeded fault injection, e.g. 'seed=3,http=0.1,drop=0.02,item=0.05,truncate=0.2' "
    "(names: seed, http, codes, retry_after, drop, slow, slow_s, upload, create_timeout, fail, "
    "expire, cancel, item, truncate, missing, all).",
)
def sandbox(host: str, port: int, key: str, rate: float, faults_spec: str) -> None:
    """Serve the emulated batch APIs in the foreground until Ctrl-C."""
    from .sandbox import Faults, SandboxEngine, SandboxServer

    try:
        faults = Faults.parse(faults_spec)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--faults") from None
    server = SandboxServer(
        SandboxEngine(api_key=key, rate=rate or None, faults=faults), host=host, port=port
    ).start()
    click.echo(f"polybatch sandbox on {server.url}")
    if faults.active:
        click.echo(f"  faults: {faults.to_spec()}")
    for name, cls in sorted(get_registry().providers().items()):
        env = cls.sandbox_env(server.url, key)
        if env:
            click.echo(f"  {name}: " + " ".join(f"{k}={v}" for k, v in env.items()))
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


@cli.command()
@click.argument("input_path", metavar="INPUT", type=click.Path(path_type=Path))
@click.option("-m", "--model", help="provider:model (or POLYBATCH_MODEL).")
@click.option("-p", "--profile", help="A profile from polybatch.toml.")
@click.option("--system", "system", help="A system prompt for items that have none.")
@click.option("--max-tokens", type=click.IntRange(min=1), help="Default max output tokens.")
@click.option(
    "--max-cost", type=click.FloatRange(min=0), help="Exit 2 if the upper estimate is above this."
)
def estimate(
    input_path: Path,
    model: str | None,
    profile: str | None,
    system: str | None,
    max_tokens: int | None,
    max_cost: float | None,
) -> None:
    """Estimate what INPUT would cost at batch prices, without submitting anything."""
    import tempfile

    from .accounting import check_budget
    from .inputs import read_numbered_items
    from .planner import iter_chunk_items, plan_job
    from .runner import make_provider

    resolved = _config.resolve(
        model=model, profile=profile, system_prompt=system, max_tokens=max_tokens
    )
    provider = make_provider(resolved.provider, resolved.provider_settings)  # no key needed
    with tempfile.TemporaryDirectory() as tmp:
        plan = plan_job(
            ((it, (str(input_path), n)) for it, n in read_numbered_items(input_path)),
            provider=provider,
            model=resolved.model,
            staging_dir=Path(tmp),
            defaults=resolved.defaults,
            system_prompt=resolved.system_prompt,
            chunk_size=resolved.chunk_size,
        )
        est = estimate_items(
            iter_chunk_items(plan.staging_path, 0, plan.n_items), provider, resolved.model
        )
    click.echo(describe_estimate(est))
    click.echo(f"{len(plan.chunks)} batch(es) on {resolved.provider}:{resolved.model}")
    limit = Decimal(str(max_cost)) if max_cost is not None else resolved.max_cost
    check_budget(est, limit)


@cli.command()
@click.argument("job_ids", nargs=-1)
@click.option(
    "--since",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="Only jobs created on or after this date.",
)
@click.option(
    "--by",
    default="provider,model",
    show_default=True,
    help="Group by: provider, model, job, date.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
)
@click.option(
    "--digits", type=click.IntRange(min=0), default=4, show_default=True, help="Decimals of money."
)
def usage(job_ids: tuple[str, ...], since: Any, by: str, fmt: str, digits: int) -> None:
    """Tokens and cost (batch, standard, saving) over finished jobs, from the ledger."""
    keys = [{"job": "job_id"}.get(k.strip(), k.strip()) for k in by.split(",") if k.strip()]
    jobs = [Job.load(j) for j in job_ids] if job_ids else None
    day: date | None = since.date() if since else None
    click.echo(usage_table(jobs, by=keys, since=day, fmt=fmt, digits=digits))  # type: ignore[arg-type]


@cli.command()
@click.argument("model", required=False)
@click.option("--provider", help="Only this provider's prices.")
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True
)
def prices(model: str | None, provider: str | None, fmt: str) -> None:
    """Show the price rows in force (bundled, overridden by your config), USD per million tokens."""
    reg = price_registry()
    rows = [
        r
        for r in reg.rows()
        if (provider is None or r.provider == provider)
        and (model is None or r.model == (reg.resolve_model(r.provider, model) or model))
    ]
    if model and not rows:
        raise ConfigError(f"no price for model {model!r}" + (f" of {provider}" if provider else ""))
    fields = [
        "provider",
        "model",
        "mode",
        "effective",
        "input",
        "cached input",
        "cache write 5m",
        "cache write 1h",
        "output",
        "tiers",
    ]
    data = [
        [
            r.provider,
            r.model,
            r.mode,
            "" if r.effective == date.min else r.effective.isoformat(),
            str(r.rates.input),
            str(r.rates.cached_input_rate),
            str(r.rates.cache_write_5m_rate) if r.rates.cache_write_5m is not None else "",
            str(r.rates.cache_write_1h_rate) if r.rates.cache_write_1h is not None else "",
            str(r.rates.output),
            ", ".join(f">{t.above_input_tokens:,}" for t in r.tiers),
        ]
        for r in rows
    ]
    if fmt == "json":
        click.echo(json.dumps([dict(zip(fields, d, strict=True)) for d in data], indent=2))
        return
    t = PrettyTable(fields)
    for d in data:
        t.add_row(d)
    click.echo(t.get_string())


@cli.group("config")
def config_group() -> None:
    """Inspect configuration."""


@config_group.command("show")
@click.option("-m", "--model")
@click.option("-p", "--profile")
def config_show(model: str | None, profile: str | None) -> None:
    """Print the resolved settings (secrets masked) and where each came from."""
    cfg, path = _config.load_config()
    try:
        resolved = _config.resolve(model=model, profile=profile, config=cfg, config_file=path)
    except ConfigError as exc:
        click.echo(f"config file: {path or 'none'}")
        raise exc
    raw = json.loads(resolved.model_dump_json())
    sources = raw.pop("sources", {})  # where a value came from is never a secret
    data = _config.mask(raw)
    data["sources"] = sources
    click.echo(json.dumps(data, indent=2))


def main() -> None:
    """Entry point: run the CLI, turning polybatch errors into one line and an exit code."""
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except PolybatchError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo(
            "interrupted: the job is in the ledger; `polybatch resume JOB` continues it", err=True
        )
        sys.exit(130)


if __name__ == "__main__":
    main()
