"""Provider adapters for jobs: built from the registry, remembered per job in this process.

Providers built in this process for a job are kept (an in-process sandbox cannot be rebuilt from
the ledger, which holds no secrets), so ``Job.load`` in the same process reuses them.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from .. import config as _config
from ..plugins import get_registry
from ..providers import BatchProvider

_live_providers: dict[str, BatchProvider] = {}
_live_lock = threading.Lock()


def make_provider(name: str, settings: Mapping[str, Any] | None = None) -> BatchProvider:
    """Instantiate the registered provider ``name`` with its settings."""
    cls = get_registry().provider_class(name)
    settings = dict(settings or {})
    api_key = settings.pop("api_key", None)
    base_url = settings.pop("base_url", None)
    return cls(api_key=api_key, base_url=base_url, settings=settings)


def public_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Provider settings without secrets: what the ledger may keep."""
    return {
        k: v
        for k, v in settings.items()
        if not _config.is_secret_key(k) and not (isinstance(v, str) and _config.looks_secret(v))
    }


def remember(job_id: str, provider: BatchProvider) -> None:
    """Keep ``provider`` for later handles on ``job_id`` in this process."""
    with _live_lock:
        _live_providers[job_id] = provider


def remembered(job_id: str) -> BatchProvider | None:
    """The provider a job of this process was submitted with, if any."""
    with _live_lock:
        return _live_providers.get(job_id)
