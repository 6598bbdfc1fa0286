"""Webhook signing secrets: where ``webhooks setup`` keeps them, and where the receiver reads them.

A provider's secret is taken from its env var (``OPENAI_WEBHOOK_SECRET``) when set, else from
``<secrets_dir>/<provider>.secret`` (owner-only; ``[webhooks] secrets_dir``, default
``POLYBATCH_HOME/webhook-secrets``). Never from or into the ledger, the logs or a job's files.
"""

from __future__ import annotations

import os
from pathlib import Path

from .. import config as _config
from ..jobs.files import private_fd
from ..providers import BatchProvider


def secrets_dir(settings: _config.WebhookSettings) -> Path:
    """The directory holding the stored secrets."""
    if settings.secrets_dir:
        return Path(settings.secrets_dir).expanduser()
    return _config.home() / "webhook-secrets"


def secret_path(provider: str, settings: _config.WebhookSettings) -> Path:
    return secrets_dir(settings) / f"{provider}.secret"


def save_secret(provider: str, secret: str, settings: _config.WebhookSettings) -> Path:
    """Store ``provider``'s signing secret (owner-only file); returns its path."""
    path = secret_path(provider, settings)
    with os.fdopen(private_fd(path), "w", encoding="utf-8") as out:
        out.write(secret + "\n")
    return path


def load_secret(provider: type[BatchProvider], settings: _config.WebhookSettings) -> str | None:
    """The provider's signing secret (its env var first, then the stored file), or None."""
    env = provider.webhook_secret_env
    if env and os.environ.get(env):
        return os.environ[env]
    path = secret_path(provider.name, settings)
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except FileNotFoundError:
        return None
