"""OpenAI-compatible batch APIs, configured by data rather than code.

Groq is built in; any other endpoint that speaks OpenAI's Files + Batches API is one table in
``polybatch.toml``::

    [providers.mylab]
    kind = "openai-compatible"
    base_url = "https://llm.mylab.example/v1"
    api_key_env = "MYLAB_API_KEY"
    max_requests = 50000              # per batch (default: OpenAI's 50,000)
    max_bytes = 209715200             # per batch file (default: OpenAI's 200 MB)
    completion_windows = ["24h"]      # what the endpoint accepts (default: ["24h"])
    completion_window = "24h"         # what polybatch asks for (default: the first one)

then ``--model mylab:some-model``. Prices for it go in the config's ``[prices]`` table.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from polybatch.errors import ConfigError
from polybatch.providers import Limits

from .provider import OpenAIProvider

if TYPE_CHECKING:
    from starlette.routing import BaseRoute

    from polybatch.sandbox.engine import SandboxEngine

KIND = "openai-compatible"
_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")
_KEYS = {
    "base_url",
    "api_key_env",
    "max_requests",
    "max_bytes",
    "completion_windows",
    "completion_window",
}
_SETTINGS = {"max_retries", "timeout", "organization", "project", "default_max_tokens"}


class OpenAICompatibleProvider(OpenAIProvider):
    """An OpenAI batch API at another address: same wire format, its own name, key and limits."""

    #: its own base-URL variable is ``<NAME>_BASE_URL`` (set per class by
    #: :func:`compatible_provider`); OPENAI_BASE_URL belongs to OpenAI
    base_url_env: ClassVar[str | None] = None

    def preflight(self) -> None:
        """A key must be set, and the window asked for must be one the endpoint takes."""
        super().preflight()
        window = self.settings.get("completion_window", self.limits.completion_windows[0])
        if window not in self.limits.completion_windows:
            allowed = ", ".join(self.limits.completion_windows)
            raise ConfigError(
                f"{self.name}: completion_window {window!r} is not one of {allowed} "
                f"(config key providers.{self.name}.completion_window)"
            )

    @classmethod
    def sandbox_routes(cls, engine: SandboxEngine) -> list[BaseRoute]:
        """The OpenAI routes, with this provider's own batches and files."""
        from .sandbox import openai_routes

        return openai_routes(engine, namespace=cls.name)


def compatible_provider(name: str, settings: Mapping[str, Any]) -> type[OpenAICompatibleProvider]:
    """A provider class for an OpenAI-compatible batch API described by ``settings``."""
    where = f"providers.{name}"
    if not _NAME.match(name):
        raise ConfigError(f"{where}: a provider name is lowercase letters, digits, '-' or '_'")
    unknown = set(settings) - _KEYS - _SETTINGS
    if unknown:
        raise ConfigError(f"key '{where}.{sorted(unknown)[0]}': unknown for kind {KIND!r}")
    for key in ("base_url", "api_key_env"):
        if not isinstance(settings.get(key), str) or not settings[key]:
            raise ConfigError(f"key '{where}.{key}': required for kind {KIND!r}")
    windows = settings.get("completion_windows", ["24h"])
    if not isinstance(windows, list) or not windows or not all(isinstance(w, str) for w in windows):
        raise ConfigError(
            f"key '{where}.completion_windows': a non-empty list of strings like \"24h\""
        )
    try:
        limits = Limits(
            max_requests=int(settings.get("max_requests", OpenAIProvider.limits.max_requests)),
            max_bytes=int(settings.get("max_bytes", OpenAIProvider.limits.max_bytes)),
            completion_windows=tuple(windows),
        )
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"{where}: max_requests and max_bytes must be whole numbers ({exc})"
        ) from None
    if limits.max_requests < 1 or limits.max_bytes < 1:
        raise ConfigError(f"{where}: max_requests and max_bytes must be positive")
    return type(
        f"OpenAICompatible_{name.replace('-', '_')}",
        (OpenAICompatibleProvider,),
        {
            "name": name,
            "credential_env": (str(settings["api_key_env"]),),
            "limits": limits,
            "default_base_url": str(settings["base_url"]),
            "base_url_env": f"{name.upper().replace('-', '_')}_BASE_URL",
            "sandbox_prefix": f"/compat/{name}",
            "__doc__": f"The OpenAI-compatible batch API at {settings['base_url']} (from config).",
        },
    )


#: Groq: OpenAI's wire format at api.groq.com, with completion windows from 24 hours to 7 days.
#: Per-batch limits are not documented; OpenAI's (50,000 requests, 200 MB) are commonly cited.
GroqProvider = compatible_provider(
    "groq",
    {
        "base_url": "https://api.groq.com/openai/v1",
        "api_key_env": "GROQ_API_KEY",
        "completion_windows": ["24h", "48h", "72h", "7d"],
    },
)
GroqProvider.__doc__ = "Groq's batch API (OpenAI-compatible): windows from 24h to 7d."
