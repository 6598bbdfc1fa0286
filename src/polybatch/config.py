"""Configuration: profiles from ``polybatch.toml``, environment variables and CLI flags.

Precedence, highest first: CLI flag (or Python argument) > environment variable
(``POLYBATCH_MODEL``, ``POLYBATCH_PROFILE``) > profile > built-in defaults.

The file is found at ``$POLYBATCH_CONFIG``, else ``./polybatch.toml``, else ``polybatch.toml`` in the
user's config directory. Example::

    default_profile = "cheap"

    [profiles.cheap]
    model = "anthropic:claude-haiku-4-5"
    system_prompt = "Answer in one sentence."
    max_tokens = 256
    max_cost = "5.00"

    [providers.azure]
    endpoint = "https://my-resource.openai.azure.com"
    api_version = "2025-04-01-preview"
    deployments = { "gpt-4o-mini" = "my-gpt-4o-mini-batch" }
"""

from __future__ import annotations

import os
import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Any

import platformdirs
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import ConfigError
from .items import PARAM_FIELDS

#: keys whose values are secrets wherever they appear; masked in ``config show``
SECRET_KEYS = ("api_key", "key", "token", "secret", "password", "ad_token")


def home() -> Path:
    """Where polybatch keeps its ledger and job files (``$POLYBATCH_HOME`` overrides)."""
    env = os.environ.get("POLYBATCH_HOME")
    return Path(env) if env else Path(platformdirs.user_data_dir("polybatch"))


class Profile(BaseModel):
    """A named set of defaults: model, request options, budget and provider settings."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = None
    system_prompt: str | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    seed: int | None = None
    stop: str | list[str] | None = None
    max_cost: Decimal | None = Field(default=None, ge=0)
    chunk_size: int | None = Field(default=None, ge=1)
    max_in_flight: int | None = Field(default=None, ge=1)
    #: provider settings that override ``[providers.NAME]`` for this profile
    providers: dict[str, dict[str, Any]] = Field(default_factory=dict)


class ConfigFile(BaseModel):
    """The whole ``polybatch.toml``."""

    model_config = ConfigDict(extra="forbid")

    default_profile: str | None = None
    profiles: dict[str, Profile] = Field(default_factory=dict)
    providers: dict[str, dict[str, Any]] = Field(default_factory=dict)
    #: user price rows or a price file path; read by the pricing registry
    prices: dict[str, Any] = Field(default_factory=dict)


def config_path() -> Path | None:
    """The config file in force, or None."""
    env = os.environ.get("POLYBATCH_CONFIG")
    if env:
        p = Path(env)
        if not p.is_file():
            raise ConfigError(f"{env}: POLYBATCH_CONFIG names no file")
        return p
    for candidate in (
        Path.cwd() / "polybatch.toml",
        Path(platformdirs.user_config_dir("polybatch")) / "polybatch.toml",
    ):
        if candidate.is_file():
            return candidate
    return None


def load_config(path: Path | None = None) -> tuple[ConfigFile, Path | None]:
    """Parse and validate the config file; errors name the file and the key."""
    path = path if path is not None else config_path()
    if path is None:
        return ConfigFile(), None
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        return ConfigFile.model_validate(data), path
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"])
        msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        raise ConfigError(f"{path}: key '{key}': {msg}") from None


class Resolved(BaseModel):
    """Settings after precedence: what a job runs with, and where each came from."""

    provider: str
    model: str
    profile: str | None = None
    config_file: str | None = None
    #: job-wide request defaults (max_tokens, temperature, ...) that items may override
    defaults: dict[str, Any] = Field(default_factory=dict)
    system_prompt: str | None = None
    max_cost: Decimal | None = None
    chunk_size: int | None = None
    max_in_flight: int | None = None
    provider_settings: dict[str, Any] = Field(default_factory=dict)
    sources: dict[str, str] = Field(default_factory=dict)


def resolve(
    *,
    model: str | None = None,
    profile: str | None = None,
    config: ConfigFile | None = None,
    config_file: Path | None = None,
    **overrides: Any,
) -> Resolved:
    """Resolve the model, defaults and provider settings for one job.

    ``overrides`` are CLI flags / Python arguments (``max_tokens``, ``temperature``,
    ``system_prompt``, ``max_cost``, ...); None means "not given".
    """
    from .providers import parse_model

    if config is None:
        config, config_file = load_config(config_file)
    sources: dict[str, str] = {}
    profile_name = profile or os.environ.get("POLYBATCH_PROFILE") or config.default_profile
    if profile_name:
        sources["profile"] = (
            "flag"
            if profile
            else "env POLYBATCH_PROFILE"
            if os.environ.get("POLYBATCH_PROFILE")
            else "default_profile"
        )
        if profile_name not in config.profiles:
            known = ", ".join(sorted(config.profiles)) or "none"
            where = f" in {config_file}" if config_file else " (no polybatch.toml found)"
            raise ConfigError(f"unknown profile {profile_name!r}{where}; profiles: {known}")
    prof = config.profiles.get(profile_name or "", Profile())

    spec = model
    if spec:
        sources["model"] = "flag"
    elif os.environ.get("POLYBATCH_MODEL"):
        spec = os.environ["POLYBATCH_MODEL"]
        sources["model"] = "env POLYBATCH_MODEL"
    elif prof.model:
        spec = prof.model
        sources["model"] = f"profile {profile_name}"
    if not spec:
        raise ConfigError(
            "no model: pass --model provider:model, set POLYBATCH_MODEL, or name a profile with a model"
        )
    provider, model_name = parse_model(spec)

    def pick(name: str) -> Any:
        value = overrides.get(name)
        if value is not None:
            sources[name] = "flag"
            return value
        value = getattr(prof, name, None)
        if value is not None:
            sources[name] = f"profile {profile_name}"
        return value

    defaults = {k: v for k in PARAM_FIELDS if (v := pick(k)) is not None}
    settings = dict(config.providers.get(provider, {}))
    settings.update(prof.providers.get(provider, {}))
    settings.update(overrides.get("provider_settings") or {})
    return Resolved(
        provider=provider,
        model=model_name,
        profile=profile_name,
        config_file=str(config_file) if config_file else None,
        defaults=defaults,
        system_prompt=pick("system_prompt"),
        max_cost=pick("max_cost"),
        chunk_size=pick("chunk_size"),
        max_in_flight=pick("max_in_flight"),
        provider_settings=settings,
        sources=sources,
    )


def mask(value: Any, key: str = "") -> Any:
    """A copy of ``value`` with secrets replaced by a masked form (for display)."""
    if isinstance(value, dict):
        return {k: mask(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [mask(v, key) for v in value]
    if (
        isinstance(value, str)
        and any(s in key.lower() for s in SECRET_KEYS)
        and not key.endswith("_env")
    ):
        return "****" + value[-4:] if len(value) > 12 else "****"
    return value
