"""Configuration: profiles from ``polybatch.toml``, environment variables and CLI flags.

Precedence, highest first: CLI flag (or Python argument) > environment variable
(``POLYBATCH_MODEL``, ``POLYBATCH_PROFILE``) > profile > built-in defaults. Provider settings merge
``[providers.NAME]`` < the profile's ``providers.NAME`` < Python ``provider_settings``; the SDKs' own
variables (``AZURE_OPENAI_ENDPOINT``, ...) fill in only what the configuration leaves unset.

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

Secrets belong in environment variables; ``config show`` masks anything named or shaped like one.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import platformdirs
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.fields import FieldInfo

from .errors import ConfigError
from .items import PARAM_FIELDS, BatchItem
from .providers import parse_model

_M = TypeVar("_M", bound=BaseModel)

#: keys whose values are secrets wherever they appear; masked in ``config show``
SECRET_KEYS = ("api_key", "key", "token", "secret", "password", "ad_token")
#: words that make a key name a secret's name (``api_key``, ``azure_ad_token``, ``client-secret``)
_SECRET_WORDS = frozenset(
    {"key", "apikey", "token", "secret", "password", "passwd", "credential", "authorization"}
)
#: values that look like credentials whatever key holds them
_SECRET_VALUE_RE = re.compile(
    r"""
    \bsk-[A-Za-z0-9_\-]{8,}                    # OpenAI / Anthropic style keys (sk-..., sk-ant-...)
    | \beyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+     # a JWT (Entra ID tokens)
    | \bBearer\s+\S{8,}                         # an Authorization header value
    | [?&](?:key|api[-_]?key|sig|token|code)=   # a URL carrying a key or SAS signature
    """,
    re.VERBOSE | re.IGNORECASE,
)
#: a long run of letters and digits with both (Azure keys: 32 hex characters, or 84 base62)
_OPAQUE_RE = re.compile(r"^[A-Za-z0-9+/=]{32,}$")


def home() -> Path:
    """Where polybatch keeps its ledger and job files (``$POLYBATCH_HOME`` overrides)."""
    env = os.environ.get("POLYBATCH_HOME")
    return Path(env) if env else Path(platformdirs.user_data_dir("polybatch"))


def _item_field(name: str, description: str) -> Any:
    """``BatchItem``'s field ``name`` (its type and bounds are declared there, once), described."""
    return FieldInfo.merge_field_infos(BatchItem.model_fields[name], description=description)


class RequestDefaults(BaseModel):
    """Request parameters for a job's items, declared once.

    Profiles (``[profiles.NAME]``), :func:`polybatch.submit` / :func:`polybatch.run`
    (``defaults=RequestDefaults(...)``, or the same names as keyword arguments) and the CLI's options
    (``--max-tokens``, ...: generated from these fields) all take them. Items' own values win; None
    means "not set". The bounds are :class:`~polybatch.items.BatchItem`'s.
    """

    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(
        default=None, description="provider:model, e.g. openai:gpt-4o-mini (or POLYBATCH_MODEL)."
    )
    system_prompt: str | None = Field(
        default=None, description="A system prompt for items that have none."
    )
    max_tokens: int | None = _item_field("max_tokens", "Default max output tokens.")
    temperature: float | None = _item_field("temperature", "Default temperature.")
    top_p: float | None = _item_field("top_p", "Default nucleus sampling (top_p).")
    seed: int | None = _item_field("seed", "Default sampling seed.")
    stop: str | list[str] | None = _item_field("stop", "Default stop sequence(s).")
    response_format: dict[str, Any] | None = _item_field(
        "response_format", "Default response_format (OpenAI style)."
    )


class JobLimits(BaseModel):
    """The job options a profile may set too: budget, chunking, concurrency."""

    model_config = ConfigDict(extra="forbid")

    max_cost: Decimal | None = Field(
        default=None,
        ge=0,
        description="Refuse to submit if the upper cost estimate (USD) is above this.",
    )
    chunk_size: int | None = Field(
        default=None, ge=1, description="At most this many requests per provider batch."
    )
    max_in_flight: int | None = Field(
        default=None, ge=1, description="Provider batches running at once."
    )

    @field_validator("max_cost", mode="before")
    @classmethod
    def _money_from_float(cls, value: Any) -> Any:
        # 0.1 means ten cents, not the binary fraction nearest to it
        return Decimal(str(value)) if isinstance(value, float) else value


class JobOptions(JobLimits):
    """How a job runs (not what it asks): :func:`polybatch.submit`'s ``options``, the CLI's flags."""

    retry_failed: int = Field(
        default=0,
        ge=0,
        description="Rounds of resubmitting expired, cancelled and transiently failed requests.",
    )
    keep_files: bool = Field(
        default=False, description="Keep uploaded input files at the provider."
    )
    new: bool = Field(
        default=False, description="Start a new job even if this input was submitted before."
    )
    completion_window: str | None = Field(
        default=None,
        description="The provider's completion window, e.g. 24h (default: the provider's "
        "first; one it does not take is refused before anything is sent).",
    )
    #: where the ledger and job files live (default: :func:`home`)
    home: Path | None = None
    #: bounds of the adaptive poll interval, seconds (default: 1 and 60)
    poll_min: float | None = Field(default=None, gt=0)
    poll_max: float | None = Field(default=None, gt=0)


def validated(model: type[_M], values: Mapping[str, Any], what: str) -> _M:
    """``model`` built from ``values``, a bad value a ConfigError naming the field."""
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"][:1])
        msg = "unknown option" if err["type"] == "extra_forbidden" else err["msg"]
        raise ConfigError(f"{what} {key!r}: {msg}") from None


class Profile(RequestDefaults, JobLimits):
    """A named set of defaults: model, request options, budget and provider settings."""

    model_config = ConfigDict(extra="forbid")

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
        errors = exc.errors()
        err = errors[0]
        key = _key_path(data, err["loc"])
        msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise ConfigError(f"{path}: key '{key}': {msg}{more}") from None


def _key_path(data: Any, loc: tuple[int | str, ...]) -> str:
    """The dotted key of an error location, without pydantic's union-member tags (``str``)."""
    parts: list[str] = []
    node = data
    for part in loc:
        indexable = (isinstance(node, dict) and part in node) or (
            isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        )
        if indexable:
            node = node[part]
        elif parts and not isinstance(node, dict):
            break  # past the value: what follows names a type, not a key
        parts.append(str(part))
    return ".".join(parts)


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
    defaults: RequestDefaults | None = None,
    limits: JobLimits | None = None,
    provider_settings: Mapping[str, Any] | None = None,
    **overrides: Any,
) -> Resolved:
    """Resolve the model, defaults and provider settings for one job.

    ``defaults`` and ``limits`` are what CLI flags / Python arguments set; ``overrides`` may give
    the same fields by name (``max_tokens=...``, ``max_cost=...``) and win over them. None means
    "not given": the environment, then the profile, decide.
    """
    given = _given(defaults, limits, overrides)
    model = model or given.get("model")
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
            origin = {"flag": "", "env POLYBATCH_PROFILE": " (from POLYBATCH_PROFILE)"}.get(
                sources["profile"], " (from default_profile)"
            )
            raise ConfigError(f"unknown profile {profile_name!r}{origin}{where}; profiles: {known}")
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
    try:
        provider, model_name = parse_model(spec)
    except ConfigError as exc:
        # name where the bad string came from: the flag, the variable, or the file and key
        where = {
            "flag": "--model",
            "env POLYBATCH_MODEL": "POLYBATCH_MODEL",
        }.get(sources["model"], f"{config_file}: key 'profiles.{profile_name}.model'")
        raise type(exc)(f"{where}: {exc}") from None

    def pick(name: str) -> Any:
        value = given.get(name)
        if value is not None:
            sources[name] = "flag"
            return value
        value = getattr(prof, name, None)
        if value is not None:
            sources[name] = f"profile {profile_name}"
        return value

    item_defaults = {k: v for k in PARAM_FIELDS if (v := pick(k)) is not None}
    settings: dict[str, Any] = {}
    for origin, layer in (
        (f"providers.{provider}", config.providers.get(provider, {})),
        (f"profile {profile_name}", prof.providers.get(provider, {})),
        ("argument", provider_settings or {}),
    ):
        for key, value in layer.items():
            settings[key] = value
            sources[f"providers.{provider}.{key}"] = origin
    return Resolved(
        provider=provider,
        model=model_name,
        profile=profile_name,
        config_file=str(config_file) if config_file else None,
        defaults=item_defaults,
        system_prompt=pick("system_prompt"),
        max_cost=pick("max_cost"),
        chunk_size=pick("chunk_size"),
        max_in_flight=pick("max_in_flight"),
        provider_settings=settings,
        sources=sources,
    )


def _given(
    defaults: RequestDefaults | None, limits: JobLimits | None, overrides: Mapping[str, Any]
) -> dict[str, Any]:
    """The values the caller set (None dropped), checked against the models' fields and bounds."""
    unknown = sorted(
        set(overrides) - set(RequestDefaults.model_fields) - set(JobLimits.model_fields)
    )
    if unknown:
        raise TypeError(f"unexpected option(s): {', '.join(unknown)}")
    picked: dict[str, Any] = {}
    for cls, base in ((RequestDefaults, defaults), (JobLimits, limits)):
        values: dict[str, Any] = (
            base.model_dump(exclude_none=True, include=set(cls.model_fields))
            if base is not None
            else {}
        )
        values.update(
            {k: v for k, v in overrides.items() if k in cls.model_fields and v is not None}
        )
        picked.update(validated(cls, values, "option").model_dump(exclude_none=True))
    return picked


def is_secret_key(key: str) -> bool:
    """Whether a setting's name says its value is a secret (``*_env`` names a variable instead)."""
    lowered = key.lower()
    if lowered.endswith("_env"):
        return False
    words = set(re.split(r"[^a-z0-9]+", lowered))
    return bool(words & _SECRET_WORDS) or lowered.replace("-", "_") in SECRET_KEYS


def looks_secret(value: str) -> bool:
    """Whether a string looks like a credential whatever its key (keys, tokens, signed URLs)."""
    if _SECRET_VALUE_RE.search(value):
        return True
    return bool(
        _OPAQUE_RE.match(value)
        and any(c.isdigit() for c in value)
        and any(c.isalpha() for c in value)
    )


def _masked(value: str) -> str:
    # the last 4 characters tell two keys apart without giving either away
    return "****" + value[-4:] if len(value) > 12 else "****"


def mask(value: Any, key: str = "") -> Any:
    """A copy of ``value`` with secrets replaced by a masked form (for display).

    A value is masked when its key names a secret (``api_key``, ``token``, ...) or when it looks
    like one (``sk-...``, a JWT, a 32+ character key, a URL with ``key=``/``sig=``).
    """
    if isinstance(value, dict):
        return {k: mask(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [mask(v, key) for v in value]
    if value is None or isinstance(value, bool):
        return value
    if is_secret_key(key):
        return _masked(str(value))
    if isinstance(value, str) and looks_secret(value):
        return _masked(value)
    return value
