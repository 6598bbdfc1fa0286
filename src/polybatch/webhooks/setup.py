"""``polybatch webhooks setup``: register an endpoint through the provider's SDK, keep its secret."""

from __future__ import annotations

from pathlib import Path

from .. import config as _config
from ..jobs.clients import make_provider
from .store import save_secret


async def register(
    provider: str, url: str, settings: _config.WebhookSettings | None = None
) -> tuple[str, Path]:
    """Register ``url`` for ``provider``'s batch events: (endpoint id, where the secret went).

    Provider settings are the config's ``[providers.NAME]`` (keys from the environment)."""
    config = _config.load_config()[0]
    settings = settings or config.webhooks
    adapter = make_provider(provider, config.providers.get(provider, {}))
    try:
        endpoint_id, secret = await adapter.aregister_webhook(url)
    finally:
        await adapter.aclose()
    return endpoint_id, save_secret(provider, secret, settings)
