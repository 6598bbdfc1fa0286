"""The provider-neutral data model: BatchItem in, BatchResult out."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Role = Literal["system", "user", "assistant"]
ResultStatus = Literal["succeeded", "errored", "expired", "canceled"]

#: fields of a neutral item that map onto request parameters (the rest are structure)
PARAM_FIELDS: tuple[str, ...] = (
    "max_tokens",
    "temperature",
    "top_p",
    "seed",
    "stop",
    "response_format",
)


class Message(BaseModel):
    """One chat turn. ``content`` is a string or a list of OpenAI-style content parts."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Role
    content: str | list[dict[str, Any]]

    @field_validator("content")
    @classmethod
    def _not_empty(cls, value: str | list[dict[str, Any]]) -> str | list[dict[str, Any]]:
        if isinstance(value, list) and not value:
            raise ValueError("content must not be an empty list")
        return value

    @property
    def text(self) -> str:
        """The text of the message, with the text parts of a list content joined."""
        if isinstance(self.content, str):
            return self.content
        return "\n".join(str(p.get("text", "")) for p in self.content if p.get("type") == "text")


class BatchItem(BaseModel):
    """One request, in neutral form. Whatever the provider, this is what goes in.

    ``custom_id`` maps the result back to this item; items without one get a stable id
    (``item-<position>``) when a job is planned. ``model`` overrides the job's model.
    ``extra`` holds provider-specific body fields passed through verbatim.
    """

    model_config = ConfigDict(extra="forbid")

    custom_id: str | None = Field(default=None, min_length=1, max_length=512)
    messages: list[Message] = Field(min_length=1)
    model: str | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    seed: int | None = None
    stop: str | list[str] | None = None
    response_format: dict[str, Any] | None = None
    extra: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _has_a_user_turn(self) -> BatchItem:
        if not any(m.role != "system" for m in self.messages):
            raise ValueError("messages need at least one user or assistant turn")
        return self

    @field_validator("response_format")
    @classmethod
    def _known_format(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None and value.get("type") not in ("text", "json_object", "json_schema"):
            raise ValueError("response_format.type must be text, json_object or json_schema")
        return value

    def params(self) -> dict[str, Any]:
        """The request parameters that are set on this item, by neutral name."""
        return {k: getattr(self, k) for k in PARAM_FIELDS if getattr(self, k) is not None}


class Usage(BaseModel):
    """Token usage of one request, in disjoint buckets.

    ``input_tokens`` counts only uncached input; cache reads and cache writes are counted apart, so
    the buckets add up to all input without double counting. ``reasoning_tokens`` is the part of
    ``output_tokens`` spent on reasoning (informational: it is already in ``output_tokens``).
    """

    model_config = ConfigDict(frozen=True)

    input_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    cache_write_1h_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0

    @property
    def total_input_tokens(self) -> int:
        """All input tokens, cached or not."""
        return (
            self.input_tokens
            + self.cached_input_tokens
            + self.cache_write_tokens
            + self.cache_write_1h_tokens
        )

    @property
    def total_tokens(self) -> int:
        """Input and output together."""
        return self.total_input_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            **{name: getattr(self, name) + getattr(other, name) for name in Usage.model_fields}
        )


class ItemError(BaseModel):
    """Why one request did not succeed."""

    model_config = ConfigDict(frozen=True)

    code: str
    message: str
    status_code: int | None = None
    #: whether sending the same request again may succeed (rate limits, server errors, expiry)
    retryable: bool = False


class BatchResult(BaseModel):
    """The outcome of one item: exactly one per input custom_id."""

    custom_id: str
    status: ResultStatus
    text: str | None = None
    finish_reason: str | None = None
    usage: Usage = Field(default_factory=Usage)
    error: ItemError | None = None
    #: the model the provider reports having used (what pricing keys on)
    model: str | None = None
    provider: str | None = None
    batch_id: str | None = None
    #: the provider's raw response body, untouched
    response: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        """True when the request succeeded."""
        return self.status == "succeeded"
