"""The entry point's object: the hooks that hand polybatch the provider and its prices."""

from __future__ import annotations

from pathlib import Path

from polybatch.provider_plugin import ProviderPlugin

from .provider import AcmeProvider

plugin = ProviderPlugin(AcmeProvider, prices=Path(__file__).with_name("prices.toml"))
