"""polybatch plugin entry point: provider ``gemini`` and its price file."""

from __future__ import annotations

from pathlib import Path

from polybatch.plugins import LazyProvider
from polybatch.provider_plugin import ProviderPlugin

PRICES = Path(__file__).parent / "prices.toml"

#: registered by import path: loading the plugin does not import the SDK (checked against the
#: class by tests/test_lazy_plugins.py)
GEMINI = LazyProvider(
    "gemini",
    "polybatch_gemini.provider:GeminiProvider",
    credential_env=("GEMINI_API_KEY", "GOOGLE_API_KEY"),
    max_requests=100_000,
    max_bytes=2_147_483_648,
)

#: the entry point (``polybatch_gemini.plugin:plugin``): the hooks that hand polybatch the
#: provider and its price file
plugin = ProviderPlugin(GEMINI, prices=PRICES)
