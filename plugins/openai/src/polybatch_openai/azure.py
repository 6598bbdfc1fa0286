"""The Azure OpenAI batch adapter: "global batch" / "data zone batch" deployments, same wire codec.

Two client styles, both from the official ``openai`` SDK:

- ``classic`` (default): ``AsyncAzureOpenAI`` with ``{endpoint}/openai``, an ``api-version`` query and an
  ``api-key`` header. Files and batches are never under ``/deployments/``.
- ``v1``: the plain ``AsyncOpenAI`` client on ``{endpoint}/openai/v1/`` with a bearer token (the key).

Settings (``[providers.azure]`` or a profile's ``providers.azure``): ``endpoint``, ``api_version``,
``style``, ``deployments`` (model -> deployment name; an unmapped model is used as the deployment
name), ``api_key_env`` (the variable holding the key, default ``AZURE_OPENAI_API_KEY``), ``auth``
(``"key"`` or ``"entra"``: a Microsoft Entra ID token from ``azure-identity``), ``file_expiry``
(seconds, 14 to 30 days: uploaded and result files expire, which lifts Azure's 500-file quota),
plus the OpenAI adapter's ``max_retries``, ``timeout`` and ``completion_window``.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import openai

from polybatch.errors import ConfigError, CredentialsError, ItemValidationError
from polybatch.items import BatchItem

from .provider import OpenAILimits, OpenAIProvider

if TYPE_CHECKING:
    from starlette.routing import BaseRoute

    from polybatch.sandbox.engine import SandboxEngine

#: the GA data-plane version that has Files and Batches; OPENAI_API_VERSION or a setting overrides it
DEFAULT_API_VERSION = "2024-10-21"
#: the Entra ID scope of Azure OpenAI
ENTRA_SCOPE = "https://cognitiveservices.azure.com/.default"
STYLES = ("classic", "v1")
AUTH_MODES = ("key", "entra")
ENDPOINT_ENV = "AZURE_OPENAI_ENDPOINT"
KEY_ENV = "AZURE_OPENAI_API_KEY"
TOKEN_ENV = "AZURE_OPENAI_AD_TOKEN"
VERSION_ENV = "OPENAI_API_VERSION"
#: where a user writes provider settings, for error messages
CONFIG_KEY = "providers.azure"


class AzureLimits(OpenAILimits):
    """Azure's batch limits, with the range its files' ``expires_after`` accepts.

    The 50,000 embedding inputs per batch are OpenAI's rule, assumed for Azure (UNVERIFIED: Azure
    documents 100,000 requests per file, and embeddings batches only in recent API versions).
    """

    #: seconds: 14 to 30 days (Azure rejects anything outside)
    file_expiry_range: tuple[int, int] = (1_209_600, 2_592_000)


Credential = tuple[Literal["key", "token", "provider"], Any]


class AzureProvider(OpenAIProvider):
    """Azure OpenAI batch deployments through the ``openai`` SDK (``AzureOpenAI`` or v1 ``OpenAI``)."""

    #: no batch webhooks from this API
    webhook_secret_env: ClassVar[str | None] = None

    name = "azure"
    credential_env = (KEY_ENV, TOKEN_ENV)
    limits = AzureLimits(
        max_requests=100_000, max_bytes=200 * 1024 * 1024, completion_windows=("24h",)
    )
    # differs from OpenAI's "/openai": the SDK then calls {server}/azure/openai/...
    sandbox_prefix = "/azure"
    # Azure's docs create batches with "/chat/completions"; the service reads the file to decide
    endpoint: ClassVar[str] = "/chat/completions"
    line_url: ClassVar[str] = "/chat/completions"
    embeddings_url: ClassVar[str] = "/embeddings"
    #: Azure keeps output files 14 to 30 days (its file_expiry_range)
    output_expiry_range: ClassVar[tuple[int, int]] = AzureLimits.model_fields[
        "file_expiry_range"
    ].default
    #: Azure's batch docs list chat and Responses lines (``/v1/responses``); not legacy
    #: completions or moderations; embeddings only where the resource runs them (validate_item)
    kinds: ClassVar[frozenset[str]] = frozenset({"chat", "embedding", "response"})
    # OPENAI_BASE_URL belongs to OpenAI; Azure's endpoint comes from AZURE_OPENAI_ENDPOINT
    base_url_env: ClassVar[str | None] = ENDPOINT_ENV
    base_url_setting: ClassVar[str] = "endpoint"

    # -- settings --------------------------------------------------------------------------
    @property
    def style(self) -> str:
        """``classic`` or ``v1`` (ConfigError for anything else)."""
        style = str(self.settings.get("style", "classic"))
        if style not in STYLES:
            raise ConfigError(f"azure: {CONFIG_KEY}.style must be 'classic' or 'v1', not {style!r}")
        return style

    @property
    def api_version(self) -> str:
        """The ``api-version`` classic requests carry: setting, else OPENAI_API_VERSION, else GA."""
        return str(
            self.settings.get("api_version") or os.environ.get(VERSION_ENV) or DEFAULT_API_VERSION
        )

    @property
    def deployments(self) -> dict[str, str]:
        """The model -> deployment map of this profile."""
        raw = self.settings.get("deployments") or {}
        if not isinstance(raw, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) and v for k, v in raw.items()
        ):
            raise ConfigError(
                f"azure: {CONFIG_KEY}.deployments must map model names to deployment names, "
                'for example { "gpt-4o-mini" = "my-batch-deployment" }'
            )
        return dict(raw)

    def deployment_for(self, model: str) -> str:
        """The deployment serving ``model``; an unmapped model is taken as a deployment name."""
        return self.deployments.get(model, model)

    def resolved_endpoint(self) -> str:
        """The resource endpoint (``https://NAME.openai.azure.com``), or a CredentialsError.

        ``base_url`` (``--base-url``, the sandbox) wins, then ``endpoint`` from the configuration, then
        AZURE_OPENAI_ENDPOINT. A URL ending in ``/openai`` or ``/openai/v1`` is cut back to the resource.
        """
        url = self.configured_base_url()
        if not url:
            raise CredentialsError(
                f"azure: no endpoint; set {ENDPOINT_ENV} or {CONFIG_KEY}.endpoint in polybatch.toml"
            )
        url = url.rstrip("/")
        for suffix in ("/openai/v1", "/openai"):
            if url.endswith(suffix):
                url = url[: -len(suffix)]
                break
        return url

    def resolved_base_url(self) -> str:
        """The base URL the SDK client uses (``.../openai`` for classic, ``.../openai/v1/`` for v1)."""
        endpoint = self.resolved_endpoint()
        return f"{endpoint}/openai/v1/" if self.style == "v1" else f"{endpoint}/openai"

    def _file_expiry(self) -> int | None:
        raw = self.settings.get("file_expiry")
        if raw in (None, 0, False):
            return None
        lo, hi = AzureLimits.model_fields["file_expiry_range"].default
        try:
            seconds = int(raw)
        except (TypeError, ValueError):
            seconds = -1
        if not lo <= seconds <= hi:
            raise ConfigError(
                f"azure: {CONFIG_KEY}.file_expiry must be seconds from {lo} (14 days) "
                f"to {hi} (30 days), got {raw!r}"
            )
        return seconds

    # -- credentials -----------------------------------------------------------------------
    def _key_env(self) -> str:
        return str(self.settings.get("api_key_env") or KEY_ENV)

    @property
    def key_env(self) -> str:
        """The variable holding the key (``api_key_env`` may name another), for 401/403 hints."""
        return self._key_env()

    def credential(self) -> Credential:
        """How to authenticate: an API key, a fixed Entra token, or an Entra token provider."""
        auth = str(self.settings.get("auth", "key"))
        if auth not in AUTH_MODES:
            raise ConfigError(f"azure: {CONFIG_KEY}.auth must be 'key' or 'entra', not {auth!r}")
        if auth == "entra":
            return ("provider", _entra_token_provider())
        key_env = self._key_env()
        key = self.api_key or os.environ.get(key_env)
        if key:
            return ("key", self.remember_secret(key))
        token = os.environ.get(TOKEN_ENV)
        if token:
            return ("token", self.remember_secret(token))
        raise CredentialsError(
            f"azure: no API key; set {key_env} (or {CONFIG_KEY}.api_key_env to name another "
            f'variable), or {CONFIG_KEY}.auth = "entra" to sign in with Microsoft Entra ID'
        )

    def require_api_key(self) -> str:
        """The API key (ConfigError/CredentialsError when none; Entra has no key to return)."""
        kind, value = self.credential()
        if kind != "key":
            raise CredentialsError("azure: this profile signs in with Entra ID, not an API key")
        return str(value)

    def preflight(self) -> None:
        """Check style, deployments, endpoint and credentials before anything is planned."""
        _ = self.style, self.deployments
        self._file_expiry()
        self.output_expiry()
        self.resolved_endpoint()
        self.credential()

    # -- the client ------------------------------------------------------------------------
    def make_client(self) -> openai.AsyncOpenAI:
        """``AsyncAzureOpenAI`` (classic) or ``AsyncOpenAI`` on ``/openai/v1/`` (v1)."""
        kind, value = self.credential()
        if kind == "provider":
            value = _off_the_loop(value)
        options: dict[str, Any] = {"max_retries": int(self.settings.get("max_retries", 2))}
        if "timeout" in self.settings:
            options["timeout"] = float(self.settings["timeout"])
        if self.style == "v1":
            # v1 takes a key or an Entra token alike as a bearer token; a callable is refreshed
            # by the SDK on every request
            return openai.AsyncOpenAI(api_key=value, base_url=self.resolved_base_url(), **options)
        auth: dict[str, Any] = {
            "key": {"api_key": value},
            "token": {"azure_ad_token": value},
            "provider": {"azure_ad_token_provider": value},
        }[kind]
        return openai.AsyncAzureOpenAI(
            azure_endpoint=self.resolved_endpoint(),
            api_version=self.api_version,
            **auth,
            **options,
        )

    # -- items -----------------------------------------------------------------------------
    def validate_item(self, item: BatchItem, model: str) -> None:
        """As for OpenAI; the deployment map is checked here so a bad one fails before upload.

        Embeddings are refused unless the setting ``embeddings = true`` says this resource runs
        them: Azure's batch documentation lists embeddings as not supported, and a batch that
        Azure would fail is better refused here, before anything is uploaded.
        """
        _ = self.deployments
        if item.kind == "embedding" and not self.settings.get("embeddings"):
            raise ItemValidationError(
                "Azure OpenAI global batch does not run embeddings (its batch docs list them as "
                "not supported); set providers.azure.embeddings = true if your resource does",
                field="kind",
            )
        super().validate_item(item, model)

    def encode(self, item: BatchItem, model: str) -> bytes:
        """One input line whose ``body.model`` is the deployment serving the item's model.

        The planner starts a new chunk when the model changes, so every line of one Azure batch
        names the same deployment (Azure fails mixed files with ``model_mismatch``).
        """
        deployment = self.deployment_for(item.model or model)
        return super().encode(item.model_copy(update={"model": deployment}), deployment)

    def upload_options(self) -> dict[str, Any]:
        """``expires_after`` when ``file_expiry`` is set."""
        seconds = self._file_expiry()
        return {"expires_after": {"anchor": "created_at", "seconds": seconds}} if seconds else {}

    def output_expiry(self) -> int | None:
        """``output_expires_after`` (Azure's bounds), else ``file_expiry``, which sets both the
        input and the output files' expiry; sent by the OpenAI provider's ``batch_options``."""
        return super().output_expiry() or self._file_expiry()

    # -- the sandbox -----------------------------------------------------------------------
    @classmethod
    def sandbox_routes(cls, engine: SandboxEngine) -> list[BaseRoute]:
        """Azure's classic and v1 Files/Batches routes (see :mod:`polybatch_openai.azure_sandbox`)."""
        from .azure_sandbox import azure_routes

        return azure_routes(engine)

    @classmethod
    def sandbox_settings(cls, server_url: str, api_key: str) -> dict[str, Any]:
        """Point the provider at the sandbox's Azure resource; the profile's style still applies."""
        return {"api_key": api_key, "base_url": f"{server_url}{cls.sandbox_prefix}"}

    @classmethod
    def sandbox_env(cls, server_url: str, api_key: str) -> dict[str, str]:
        """What a user exports so that any Azure OpenAI client talks to the sandbox."""
        return {**super().sandbox_env(server_url, api_key), VERSION_ENV: DEFAULT_API_VERSION}


def _off_the_loop(get_token: Callable[[], str]) -> Callable[[], Awaitable[str]]:
    """An async token provider over a blocking one: a token refresh is a network call, and the
    async client awaits its provider on the event loop (v1's ``api_key`` must be async)."""

    async def token() -> str:
        return await asyncio.to_thread(get_token)

    return token


def _entra_token_provider() -> Callable[[], str]:
    """A bearer-token provider from ``azure-identity``'s DefaultAzureCredential."""
    try:
        from azure.identity import (  # type: ignore[import-not-found,unused-ignore]
            DefaultAzureCredential,
            get_bearer_token_provider,
        )
    except ImportError:
        raise CredentialsError(
            'azure: auth = "entra" needs the azure-identity package: '
            "pip install azure-identity (or set AZURE_OPENAI_API_KEY and drop auth)"
        ) from None
    provider: Callable[[], str] = get_bearer_token_provider(DefaultAzureCredential(), ENTRA_SCOPE)
    return provider
