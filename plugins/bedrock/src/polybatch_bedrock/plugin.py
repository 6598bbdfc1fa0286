"""polybatch plugin entry point: provider ``bedrock`` and its price file."""

from __future__ import annotations

from pathlib import Path

from polybatch.plugins import LazyProvider
from polybatch.provider_plugin import ProviderPlugin

PRICES = Path(__file__).parent / "prices.toml"

#: registered by import path: loading the plugin does not import the SDK (checked against the
#: class by tests/test_lazy_plugins.py)
BEDROCK = LazyProvider(
    "bedrock",
    "polybatch_bedrock.provider:BedrockProvider",
    credential_env=("AWS_ACCESS_KEY_ID", "AWS_PROFILE"),
    max_requests=50_000,
    max_bytes=1_000_000_000,
)

#: the entry point (``polybatch_bedrock.plugin:plugin``): the hooks that hand polybatch the
#: provider and its price file
plugin = ProviderPlugin(BEDROCK, prices=PRICES)
