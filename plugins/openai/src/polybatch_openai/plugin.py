"""polybatch plugin entry point: registers the OpenAI provider and its price file.

The providers are registered by import path (:class:`~polybatch.plugins.LazyProvider`), so
loading the plugin (``polybatch --help``, ``polybatch providers``) does not import the openai SDK;
tests/test_lazy_plugins.py checks these fields against the classes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from polybatch.hookspecs import hookimpl
from polybatch.plugins import LazyProvider

PRICES = Path(__file__).parent / "prices.toml"
#: the kind of a provider the config defines (``polybatch_openai.compatible.KIND``)
KIND = "openai-compatible"

OPENAI = LazyProvider(
    "openai",
    "polybatch_openai.provider:OpenAIProvider",
    credential_env=("OPENAI_API_KEY",),
    max_requests=50_000,
    max_bytes=209_715_200,
)
AZURE = LazyProvider(
    "azure",
    "polybatch_openai.azure:AzureProvider",
    credential_env=("AZURE_OPENAI_API_KEY", "AZURE_OPENAI_AD_TOKEN"),
    max_requests=100_000,
    max_bytes=209_715_200,
)
GROQ = LazyProvider(
    "groq",
    "polybatch_openai.compatible:GroqProvider",
    credential_env=("GROQ_API_KEY",),
    max_requests=50_000,
    max_bytes=209_715_200,
)
TOGETHER = LazyProvider(
    "together",
    "polybatch_openai.compatible:TogetherProvider",
    credential_env=("TOGETHER_API_KEY",),
    max_requests=50_000,
    max_bytes=104_857_600,
)


@hookimpl
def register_providers(register: Callable[[Any], None]) -> None:
    """Register the providers this plugin offers."""
    for provider in (OPENAI, AZURE, GROQ, TOGETHER):
        register(provider)


def compatible_provider(name: str, settings: Mapping[str, Any]) -> type[Any]:
    """:func:`polybatch_openai.compatible.compatible_provider`, imported when a config uses it."""
    from .compatible import compatible_provider as make

    return make(name, settings)


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
