"""The entry point's module: the hooks that hand polybatch the provider and its prices."""

from __future__ import annotations

from pathlib import Path

from polybatch.plugins import LazyProvider
from polybatch.provider_plugin import ProviderPlugin

PRICES = Path(__file__).with_name("prices.toml")

#: registered by import path: loading the plugin does not import the SDK (checked against the
#: class by tests/test_lazy_plugins.py)
OPENROUTER = LazyProvider(
    "openrouter",
    "polybatch_openrouter.provider:OpenRouterProvider",
    credential_env=("OPENROUTER_API_KEY",),
    max_requests=5_000,
    max_bytes=199_934_464,
)

#: the entry point (``polybatch_openrouter.plugin:plugin``): the hooks that hand polybatch the
#: provider and its price file
plugin = ProviderPlugin(OPENROUTER, prices=PRICES)
