"""polybatch plugin entry point: provider ``vertex`` and its price file."""

from __future__ import annotations

from pathlib import Path

from polybatch.plugins import LazyProvider
from polybatch.provider_plugin import ProviderPlugin

PRICES = Path(__file__).parent / "prices.toml"

#: registered by import path: loading the plugin does not import the SDK (checked against the
#: class by tests/test_lazy_plugins.py)
VERTEX = LazyProvider(
    "vertex",
    "polybatch_vertex.provider:VertexProvider",
    credential_env=("GOOGLE_OAUTH_ACCESS_TOKEN", "GOOGLE_APPLICATION_CREDENTIALS"),
    max_requests=200_000,
    max_bytes=1_073_741_824,
    credentials_check="polybatch_vertex.credentials:credentials_present",
)

#: the entry point (``polybatch_vertex.plugin:plugin``): the hooks that hand polybatch the
#: provider and its price file
plugin = ProviderPlugin(VERTEX, prices=PRICES)
