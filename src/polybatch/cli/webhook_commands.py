"""``polybatch webhooks``: receive the providers' batch events (``serve``), register one (``setup``)."""

from __future__ import annotations

import click

from .. import portal
from ..jobs import hooks
from ..plugins import get_registry
from .serving import listen_options, serve_forever, start_listening


@click.group("webhooks")
def webhooks_group() -> None:
    """Collect results the moment a batch ends, instead of polling for them.

    \b
    Example: polybatch webhooks serve --port 8787
    Exit codes: 0 done, 2 a bad option or configuration, 1 the provider refused.
    """


@webhooks_group.command("serve")
@listen_options
def serve(host: str, port: int) -> None:
    """Receive signed batch events at POST /webhooks/PROVIDER until Ctrl-C.

    Each delivery is verified (with the provider's SDK where it has a verifier) against its
    secret (env OPENAI_WEBHOOK_SECRET or GEMINI_WEBHOOK_SECRET, or the one `polybatch webhooks
    setup` stored); bad signatures and replays get 401 or are
    ignored. An event for a batch of a job in the ledger collects that batch at once and carries
    the job on. Set `[webhooks] enabled = true` so that waiting jobs poll only as a fallback.

    \b
    Example: polybatch webhooks serve --host 0.0.0.0 --port 8787
    Exit codes: 0 stopped by Ctrl-C, 2 a bad option (or the port is taken).
    """
    from ..sandbox import SandboxServer  # the web stack: only here
    from ..webhooks import app

    server = start_listening(SandboxServer(host=host, port=port, app=app()))
    click.echo(f"polybatch webhooks on {server.url}")
    for name, cls in sorted(get_registry().providers().items()):
        if cls.webhook_secret_env:
            click.echo(f"  {name}: POST {server.url}/webhooks/{name}")
    serve_forever(server)


@webhooks_group.command("setup")
@click.option(
    "--provider", required=True, help="The provider to register with (one that sends webhooks)."
)
@click.option("--url", required=True, help="The public HTTPS URL of your webhooks serve.")
def setup(provider: str, url: str) -> None:
    """Register URL for the provider's batch events through its SDK, and store the secret.

    The signing secret goes to [webhooks] secrets_dir (default POLYBATCH_HOME/webhook-secrets,
    owner-only), never to the ledger or the logs; `webhooks serve` reads it from there.

    \b
    Example: polybatch webhooks setup --provider openai --url https://hooks.example.com/webhooks/openai
    Exit codes: 0 registered, 2 the provider cannot register webhooks from code, 1 it refused.
    """
    from ..webhooks import register

    cls = get_registry().provider_class(provider)
    if cls.webhook_secret_env is None:
        raise click.BadParameter(f"{provider} sends no batch webhooks", param_hint="--provider")
    endpoint_id, path = portal.run(register(provider, url, hooks.settings()))
    click.echo(
        f"registered {url} with {provider} as {endpoint_id}; signing secret stored in {path}"
    )
    if not hooks.settings().enabled:
        click.echo("set `[webhooks] enabled = true` in polybatch.toml to poll less while it serves")
