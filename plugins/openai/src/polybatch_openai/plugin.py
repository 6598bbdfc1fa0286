"""polybatch plugin entry point: registers the OpenAI provider and its price file.

The providers are registered by import path (:class:`~polybatch.plugins.LazyProvider`), so
loading the plugin (``polybatch --help``, ``polybatch providers``) does not import the openai SDK;
tests/test_lazy_plugins.py checks these fields against the classes.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from polybatch.plugins import LazyProvider
from polybatch.provider_plugin import ProviderPlugin

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


def compatible_provider(name: str, settings: Mapping[str, Any]) -> type[Any]:
    """:func:`polybatch_openai.compatible.compatible_provider`, imported when a config uses it.

    Registered as the ``openai-compatible`` kind: any OpenAI-compatible batch API a user names in
    config (``kind = "openai-compatible"``, with its fields or a ``preset``: see
    :data:`polybatch_openai.compatible.PRESETS`).
    """
    from .compatible import compatible_provider as make

    return make(name, settings)


#: the entry point (``polybatch_openai.plugin:plugin``)
plugin = ProviderPlugin(
    OPENAI, AZURE, GROQ, TOGETHER, prices=PRICES, kinds={KIND: compatible_provider}
)
