"""The option models: what a job's requests default to (:class:`RequestDefaults`) and how it runs
(:class:`JobLimits`, :class:`JobOptions`), declared once for profiles, ``submit()`` and the CLI.

Re-exported by :mod:`polybatch.config`, where profiles and precedence use them.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo

from .errors import ConfigError
from .items import PARAM_FIELDS, BatchItem
from .structured import import_model, json_schema_format, model_ref

_M = TypeVar("_M", bound=BaseModel)


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
    response_model: str | None = Field(
        default=None,
        description=(
            "A pydantic model (module:Class) replies must validate as, for items that ask for "
            "no format of their own."
        ),
    )

    @field_validator("response_model", mode="before")
    @classmethod
    def _model_by_name(cls, value: Any) -> Any:
        # a class is kept by name: defaults travel in profiles, the ledger and other processes
        if isinstance(value, type) and issubclass(value, BaseModel):
            ref = model_ref(value)
            if ref is None:
                raise ValueError(
                    f"{value.__qualname__} is defined inside a function: define it at module "
                    "level, or give each item its own response_model"
                )
            return ref
        return value

    @field_validator("response_model")
    @classmethod
    def _importable(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                import_model(value)
            except (ImportError, TypeError) as exc:
                raise ValueError(f"cannot use {value!r}: {exc}") from None
        return value

    @model_validator(mode="after")
    def _one_format(self) -> RequestDefaults:
        if self.response_model is not None and self.response_format is not None:
            raise ValueError("give response_model or response_format, not both")
        return self

    def item_defaults(self) -> dict[str, Any]:
        """The BatchItem fields these defaults fill in (``response_model`` as the strict
        ``response_format`` and ``response_model_ref`` it stands for)."""
        values = {k: v for k in PARAM_FIELDS if (v := getattr(self, k)) is not None}
        if self.response_model is not None:
            values["response_format"] = json_schema_format(import_model(self.response_model))
            values["response_model_ref"] = self.response_model
        return values


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
    max_enqueued_tokens: int | None = Field(
        default=None,
        ge=1,
        description="Keep this job's in-flight prompt tokens per model under this (the "
        "provider's enqueued-token limit); a refused chunk waits for room, never fails.",
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
    if_exists: Literal["resume", "refuse", "new"] | None = Field(
        default=None,
        description="When this input, model and options ran before: resume that job (the "
        "default), refuse (exit 2 naming it) or start a new one.",
    )
    name: str | None = Field(
        default=None,
        min_length=1,
        description="A name for the job, shown by list and status and accepted wherever a job "
        "id is.",
    )
    delete_outputs: bool = Field(
        default=False,
        description="Once results are collected, delete the batches' output and error files at "
        "the provider too (where it allows), not only the uploaded input.",
    )
    #: where the ledger and job files live (default: :func:`home`)
    home: Path | None = None
    #: bounds of the adaptive poll interval, seconds (default: 1 and 300)
    poll_min: float | None = Field(default=None, gt=0)
    poll_max: float | None = Field(default=None, gt=0)
    #: seconds a chunk the provider refused for a full queue waits when none of the job's
    #: chunks is in flight (default: 60)
    queue_backoff: float | None = Field(default=None, gt=0)


def validated(model: type[_M], values: Mapping[str, Any], what: str) -> _M:
    """``model`` built from ``values``, a bad value a ConfigError naming the field."""
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"][:1])
        msg = "unknown option" if err["type"] == "extra_forbidden" else err["msg"]
        where = f"{what} {key!r}" if key else f"{what}s"
        raise ConfigError(f"{where}: {msg.removeprefix('Value error, ')}") from None
