"""polybatch plugin entry point: registers the Mistral provider and its price file."""

from __future__ import annotations

from pathlib import Path

from polybatch.plugins import LazyProvider
from polybatch.provider_plugin import ProviderPlugin

PRICES = Path(__file__).parent / "prices.toml"

#: registered by import path: loading the plugin does not import the SDK (checked against the
#: class by tests/test_lazy_plugins.py)
MISTRAL = LazyProvider(
    "mistral",
    "polybatch_mistral.provider:MistralProvider",
    credential_env=("MISTRAL_API_KEY",),
    max_requests=1_000_000,
    max_bytes=524_288_000,
)

#: the entry point (``polybatch_mistral.plugin:plugin``): the hooks that hand polybatch the
#: provider and its price file
plugin = ProviderPlugin(MISTRAL, prices=PRICES)
