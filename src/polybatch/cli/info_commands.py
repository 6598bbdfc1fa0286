"""The commands around jobs: providers, sandbox, estimate, usage, prices, config."""

from __future__ import annotations

import json
import tempfile
import time
from datetime import date
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import click
from prettytable import PrettyTable

from .. import config as _config
from ..config import JobOptions, RequestDefaults
from ..errors import ConfigError
from ..jobs import Job, usage_table
from ..jobs.clients import make_provider
from ..jobs.planner import iter_chunk_items
from ..jobs.submit import plan_items
from ..plugins import get_registry
from ..pricing import check_budget, describe_estimate, estimate_items, price_registry
from ..sandbox import Faults, SandboxEngine, SandboxServer
from .options import (
    PROFILE_OPTION,
    REQUEST_FIELDS,
    F,
    apply,
    job_options_from,
    model_options,
    request_defaults,
)


@click.command()
def providers() -> None:
    """List installed providers, their plugins, limits and whether credentials are set."""
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


@click.command()
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


def _estimate_options(fn: F) -> F:
    return apply(
        fn,
        [
            click.argument("input_path", metavar="INPUT", type=click.Path(path_type=Path)),
            *model_options(RequestDefaults, REQUEST_FIELDS[:1]),
            PROFILE_OPTION,
            *model_options(RequestDefaults, REQUEST_FIELDS[1:]),
            *model_options(
                JobOptions,
                ("chunk_size", "max_cost"),
                help={"max_cost": "Exit 2 if the upper estimate (USD) is above this."},
            ),
        ],
    )


@click.command()
@_estimate_options
def estimate(input_path: Path, profile: str | None, **kw: Any) -> None:
    """Estimate what INPUT would cost at batch prices, without submitting anything."""
    resolved = _config.resolve(
        profile=profile, defaults=request_defaults(kw), limits=job_options_from(kw)
    )
    provider = make_provider(resolved.provider, resolved.provider_settings)  # no key needed
    with tempfile.TemporaryDirectory() as tmp:
        plan, _ = plan_items(input_path, provider, resolved, Path(tmp))
        est = estimate_items(
            iter_chunk_items(plan.staging_path, 0, plan.n_items), provider, resolved.model
        )
    click.echo(describe_estimate(est))
    click.echo(f"{len(plan.chunks)} batch(es) on {resolved.provider}:{resolved.model}")
    check_budget(est, resolved.max_cost)


@click.command()
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


@click.command()
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


@click.group("config")
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
