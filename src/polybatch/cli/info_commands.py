"""The commands around jobs: providers, sandbox, estimate, usage, prices, config."""

from __future__ import annotations

import json
import tempfile
from datetime import date
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import click
from prettytable import PrettyTable

from .. import config as _config
from ..compare import estimate as compare_estimates
from ..config import JobOptions, RequestDefaults
from ..errors import ConfigError, PriceNotFoundError
from ..jobs import Job, usage_table
from ..jobs.clients import make_provider
from ..jobs.costs import group_keys
from ..jobs.planner import iter_chunk_items
from ..jobs.submit import plan_items
from ..plugins import get_registry
from ..pricing import (
    check_budget,
    describe_estimate,
    estimate_items,
)
from .aliases import hidden_alias
from .formats import FORMAT_OPTION, JSON_OPTION, echo_json
from .options import (
    PROFILE_OPTION,
    REQUEST_FIELDS,
    F,
    apply,
    job_options_from,
    model_options,
    request_defaults,
)
from .price_commands import render_comparison
from .serving import listen_options, serve_forever, start_listening


@click.command()
@JSON_OPTION
def providers(as_json: bool) -> None:
    """List installed providers, their plugins, limits and whether credentials are set.

    \b
    Example: polybatch providers --json
    Exit codes: 0 listed (a plugin that fails to load is skipped, with a warning).
    """
    reg = get_registry()
    records: list[dict[str, Any]] = []
    # from the registry's records: a provider registered by import path is not imported (nor
    # its SDK) to be listed
    for name, info in sorted(reg.infos().items()):
        try:
            ver = version(info.distribution or "")
        except (PackageNotFoundError, ValueError):
            ver = "?"
        records.append(
            {
                "provider": name,
                "plugin": info.origin,
                "version": ver,
                "max_requests": info.max_requests,
                "max_bytes": info.max_bytes,
                "credentials": {
                    "set": info.credentials_present(),
                    "env": list(info.credential_env),
                },
            }
        )
    if as_json:
        echo_json(records)
    else:
        t = PrettyTable()
        t.field_names = [
            "provider",
            "plugin",
            "version",
            "max requests",
            "max bytes",
            "credentials",
        ]
        for r in records:
            creds = r["credentials"]
            t.add_row(
                [
                    r["provider"],
                    r["plugin"],
                    r["version"],
                    f"{r['max_requests']:,}",
                    f"{r['max_bytes']:,}",
                    (
                        "none needed"
                        if not creds["env"]
                        else "set"
                        if creds["set"]
                        else "missing: " + " or ".join(creds["env"])
                    ),
                ]
            )
        click.echo(t.get_string())
    for name, why in sorted(reg.skipped.items()):
        click.echo(f"skipped plugin {name}: {why}", err=True)


@click.command()
@listen_options
@click.option(
    "--key", default="sandbox-key", show_default=True, help="The API key clients must send."
)
@click.option(
    "--sandbox-rate",
    "rate",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Requests/second per batch (0: instant).",
)
@hidden_alias("--rate", "rate", type=click.FloatRange(min=0))
@click.option(
    "--queue-limit",
    "queue_limit",
    type=click.IntRange(min=1),
    default=None,
    metavar="TOKENS",
    help="Emulate an organisation's enqueued-token limit per model: creates over it are "
    "refused in each provider's shape (OpenAI: the batch fails with token_limit_exceeded).",
)
@click.option(
    "--faults",
    "faults_spec",
    default="",
    metavar="SPEC",
    help="Seeded fault injection, e.g. 'seed=3,http=0.1,drop=0.02,item=0.05,truncate=0.2' "
    "(names: seed, http, codes, retry_after, drop, slow, slow_s, upload, create_timeout, fail, "
    "expire, cancel, item, truncate, missing, hook_lost, hook_dup, hook_late, hook_forged, all).",
)
@click.option(
    "--webhook-url",
    metavar="URL",
    help="Send a signed webhook here when a batch ends (e.g. a `polybatch webhooks serve` URL).",
)
@click.option(
    "--webhook-secret",
    envvar="POLYBATCH_SANDBOX_WEBHOOK_SECRET",
    metavar="SECRET",
    help="The whsec_ secret webhooks are signed with (env POLYBATCH_SANDBOX_WEBHOOK_SECRET).",
)
def sandbox(
    host: str,
    port: int,
    key: str,
    rate: float,
    queue_limit: int | None,
    faults_spec: str,
    webhook_url: str | None,
    webhook_secret: str | None,
) -> None:
    """Serve the emulated batch APIs in the foreground until Ctrl-C.

    It prints, per provider, the environment variables that point that provider's SDK (and
    polybatch) at it.

    \b
    Example: polybatch sandbox --faults seed=3,http=0.1
    Exit codes: 0 stopped by Ctrl-C, 2 a bad option (or the port is taken).
    """
    from ..sandbox import Faults, SandboxEngine, SandboxServer  # the web stack: only here

    try:
        faults = Faults.parse(faults_spec)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--faults") from None
    engine = SandboxEngine(
        api_key=key,
        rate=rate or None,
        faults=faults,
        queue_limit_tokens=queue_limit,
        webhook_url=webhook_url,
        webhook_secret=webhook_secret,
    )
    server = start_listening(SandboxServer(engine, host=host, port=port))
    click.echo(f"polybatch sandbox on {server.url}")
    if faults.active:
        click.echo(f"  faults: {faults.to_spec()}")
    if queue_limit:
        click.echo(f"  queue limit: {queue_limit} enqueued tokens per model")
    for name, cls in sorted(get_registry().providers().items()):
        env = cls.sandbox_env(server.url, key)
        if env:
            click.echo(f"  {name}: " + " ".join(f"{k}={v}" for k, v in env.items()))
    serve_forever(server)


def _estimate_options(fn: F) -> F:
    return apply(
        fn,
        [
            click.argument("input_path", metavar="INPUT", type=click.Path(path_type=Path)),
            *model_options(RequestDefaults, REQUEST_FIELDS[:1]),
            PROFILE_OPTION,
            *model_options(RequestDefaults, REQUEST_FIELDS[1:]),
            hidden_alias("--system", "system_prompt"),  # its 0.2 name
            *model_options(
                JobOptions,
                ("chunk_size", "max_cost"),
                help={"max_cost": "Exit 2 if the upper estimate (USD) is above this."},
            ),
            click.option(
                "--compare",
                metavar="MODELS",
                help="Compare providers instead: comma-separated provider:model strings or "
                "profile names, e.g. openai:gpt-4o-mini,anthropic:claude-haiku-4-5. One table, "
                "cheapest first; nothing is submitted and no key is needed.",
            ),
        ],
    )


@click.command()
@_estimate_options
@JSON_OPTION
def estimate(
    input_path: Path, profile: str | None, compare: str | None, as_json: bool, **kw: Any
) -> None:
    """Estimate what INPUT would cost at batch prices, without submitting anything.

    No key is needed and nothing is sent.

    \b
    Example: polybatch estimate requests.jsonl -m openai:gpt-4o-mini --max-cost 5
    Exit codes: 0 estimated, 2 bad input, an unpriced model, or above --max-cost.
    """
    if compare:
        specs = [s.strip() for s in compare.split(",") if s.strip()]
        rows = compare_estimates(
            input_path, specs, defaults=request_defaults(kw), limits=job_options_from(kw)
        )
        click.echo(render_comparison(rows))
        return
    resolved = _config.resolve(
        profile=profile, defaults=request_defaults(kw), limits=job_options_from(kw)
    )
    provider = make_provider(resolved.provider, resolved.provider_settings)  # no key needed
    with tempfile.TemporaryDirectory() as tmp:
        plan, _ = plan_items(input_path, provider, resolved, Path(tmp))
        try:
            est = estimate_items(
                iter_chunk_items(plan.staging_path, 0, plan.n_items), provider, resolved.model
            )
        except PriceNotFoundError as exc:
            # documented: an estimate that cannot be made is a configuration problem (exit 2)
            raise ConfigError(str(exc).split(" [")[0]) from None
    if as_json:
        echo_json(
            {
                "model": f"{resolved.provider}:{resolved.model}",
                "requests": plan.n_items,
                "batches": len(plan.chunks),
                "low": est.low,
                "high": est.high,
                "currency": est.currency,
                "mode": est.mode,
                "input_tokens": est.input_tokens,
                "max_output_tokens": est.max_output_tokens,
                "method": est.method,
                "max_cost": resolved.max_cost,
            }
        )
    else:
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
    help="Group by (comma-separated): provider, model, job, date; add category for a row per "
    "token category (prompt, cached, completion, reasoning, total) with its cost.",
)
@FORMAT_OPTION
@click.option(
    "--digits",
    type=click.IntRange(min=0),
    default=None,
    help="Round money half-up to this many decimals (default: exact in CSV/JSON, six "
    "significant digits in the table).",
)
def usage(job_ids: tuple[str, ...], since: Any, by: str, fmt: str, digits: int | None) -> None:
    """Tokens and cost (batch, standard, saving) over finished jobs, from the ledger.

    --by category shows a row per token category instead (--by model,category: per model).

    \b
    Example: polybatch usage --by provider,job --since 2026-12-01 --format csv
    Exit codes: 0 shown, 2 a bad --by key or no such job.
    """
    try:
        keys = group_keys(by)
    except ConfigError as exc:
        raise ConfigError(f"--by: {exc}") from None
    jobs = [Job.load(j) for j in job_ids] if job_ids else None
    day: date | None = since.date() if since else None
    click.echo(usage_table(jobs, by=keys, since=day, fmt=fmt, digits=digits))  # type: ignore[arg-type]


@click.group("config")
def config_group() -> None:
    """Inspect configuration (polybatch.toml, the environment, profiles).

    \b
    Example: polybatch config show -p cheap
    Exit codes: 0 shown, 2 the config file or the profile is wrong.
    """


@config_group.command("show")
@click.option("-m", "--model", help="Resolve as if this provider:model were given.")
@click.option("-p", "--profile", help="Resolve this profile instead of the default one.")
def config_show(model: str | None, profile: str | None) -> None:
    """Print the resolved settings (secrets masked) and where each came from.

    With no model anywhere (no -m, POLYBATCH_MODEL or default profile with one), it prints the
    config file, its default_profile and its profiles instead, and says what is missing.

    \b
    Example: polybatch config show -p cheap
    Exit codes: 0 shown, 2 the config file or the profile is wrong.
    """
    cfg, path = _config.load_config()
    profiles = {
        name: {k: v for k, v in p.model_dump(exclude_none=True).items() if v not in ({}, [])}
        for name, p in cfg.profiles.items()
    }
    about = {
        "config_file": str(path) if path else None,
        "default_profile": cfg.default_profile,
        "profiles": _config.mask(profiles),
    }
    try:
        resolved = _config.resolve(model=model, profile=profile, config=cfg, config_file=path)
    except ConfigError as exc:
        if model is not None or profile is not None or "no model" not in str(exc):
            raise
        click.echo(json.dumps({**about, "model": None, "note": str(exc)}, indent=2, default=str))
        return
    raw = json.loads(resolved.model_dump_json())
    sources = raw.pop("sources", {})  # where a value came from is never a secret
    data = _config.mask(raw)
    data["sources"] = sources
    click.echo(json.dumps({**data, **about}, indent=2, default=str))
