"""polybatch plugin entry point: provider ``anthropic`` and its price file."""

from __future__ import annotations

from pathlib import Path

from polybatch.plugins import LazyProvider
from polybatch.provider_plugin import ProviderPlugin

PRICES = Path(__file__).parent / "prices.toml"

#: registered by import path: loading the plugin does not import the SDK (checked against the
#: class by tests/test_lazy_plugins.py)
ANTHROPIC = LazyProvider(
    "anthropic",
    "polybatch_anthropic.provider:AnthropicProvider",
    credential_env=("ANTHROPIC_API_KEY",),
    max_requests=100_000,
    max_bytes=268_435_456,
)

#: the entry point (``polybatch_anthropic.plugin:plugin``): the hooks that hand polybatch the
#: provider and its price file
plugin = ProviderPlugin(ANTHROPIC, prices=PRICES)
