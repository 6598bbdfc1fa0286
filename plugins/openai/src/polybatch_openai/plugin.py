"""polybatch plugin entry point: registers the OpenAI provider and its price file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from polybatch.hookspecs import hookimpl

from .azure import AzureProvider
from .compatible import KIND, GroqProvider, TogetherProvider, compatible_provider
from .provider import OpenAIProvider

PRICES = Path(__file__).parent / "prices.toml"


@hookimpl
def register_providers(register: Callable[[type[Any]], None]) -> None:
    """Register the providers this plugin offers."""
    register(OpenAIProvider)
    register(AzureProvider)
    register(GroqProvider)
    register(TogetherProvider)


@hookimpl
def register_provider_kinds(register: Callable[[str, Callable[..., type[Any]]], None]) -> None:
    """Any OpenAI-compatible batch API a user names in config (``kind = "openai-compatible"``,
    with its fields or a ``preset``: see :data:`polybatch_openai.compatible.PRESETS`)."""
    register(KIND, compatible_provider)


@hookimpl
def register_prices(register: Callable[[Path], None]) -> None:
    """Register the plugin's price file, once it exists."""
    if PRICES.exists():
        register(PRICES)
