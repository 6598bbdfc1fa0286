"""What comes back: BatchResult (one per item), its Usage and ItemError, result statuses, and the
structured-output check a reply is held to (:class:`OutputCheck`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
)

from .kinds import Moderation
from .structured import import_model, validation_message

ResultStatus = Literal["succeeded", "errored", "expired", "cancelled"]
#: spellings of older versions, still read from old result files and ledgers (0.1 wrote
#: "canceled" for results while jobs and batches said "cancelled")
LEGACY_STATUS: dict[str, ResultStatus] = {"canceled": "cancelled"}
RESULT_STATUSES: tuple[ResultStatus, ...] = ("succeeded", "errored", "expired", "cancelled")


def result_status(value: str) -> ResultStatus:
    """``value`` as a result status, old spellings accepted; ValueError naming the valid ones."""
    status = LEGACY_STATUS.get(value, value)
    if status not in RESULT_STATUSES:
        raise ValueError(
            f"unknown result status {value!r}; use one of {', '.join(RESULT_STATUSES)}"
        )
    return status


M = TypeVar("M", bound=BaseModel)


def _invalid_output(result: BatchResult, message: str) -> BatchResult:
    error = ItemError(code="invalid_output", message=message, retryable=False)
    # text, usage and the raw response stay: the reply was produced (and billed)
    return result.model_copy(update={"status": "errored", "error": error})


@dataclass(frozen=True)
class OutputCheck:
    """How to check the reply of a structured-output item (small: the runner keeps one per item
    of a chunk while collecting it).

    ``model`` is the class when the item was built in this process; otherwise ``ref`` names it.
    Without either, the reply is only checked to be JSON.
    """

    ref: str | None = None
    model: type[BaseModel] | None = None

    @classmethod
    def for_format(
        cls,
        response_format: Any,
        ref: str | None = None,
        model: type[BaseModel] | None = None,
    ) -> OutputCheck | None:
        """The check for an item with this ``response_format`` (None: the reply is free text).

        Takes raw values so that the runner can build it from an items-file line without
        validating the whole item.
        """
        if not isinstance(response_format, dict):
            return None
        if response_format.get("type") not in ("json_schema", "json_object"):
            return None
        return cls(ref=ref if isinstance(ref, str) else None, model=model)

    def resolve(self) -> type[BaseModel] | None:
        """The model class, if known and importable here."""
        if self.model is not None:
            return self.model
        if self.ref is None:
            return None
        try:
            return import_model(self.ref)
        except (ImportError, TypeError):
            # not importable in this process (a script's class): JSON is still checked, and the
            # ref stays on the result so the user's own process can parse it later
            return None

    def apply(self, result: BatchResult) -> BatchResult:
        """``result`` with the model's ref stamped on it, made ``errored`` (``invalid_output``)
        when a successful reply does not validate."""
        if self.ref is not None and result.response_model_ref != self.ref:
            result = result.model_copy(update={"response_model_ref": self.ref})
        if not result.ok:
            return result
        cut = " (the reply was cut off at max_tokens)" if result.finish_reason == "length" else ""
        if result.text is None:
            return _invalid_output(result, f"the reply holds no JSON text{cut}")
        model = self.resolve()
        try:
            if model is not None:
                model.model_validate_json(result.text)
            else:
                json.loads(result.text)
        except ValidationError as exc:
            return _invalid_output(result, validation_message(exc) + cut)
        except ValueError as exc:
            return _invalid_output(result, f"the reply is not valid JSON: {exc}{cut}")
        return result


class Usage(BaseModel):
    """Token usage of one request, in disjoint buckets.

    ``input_tokens`` counts only uncached input; cache reads and cache writes are counted apart, so
    the buckets add up to all input without double counting. ``reasoning_tokens`` is the part of
    ``output_tokens`` spent on reasoning (informational: it is already in ``output_tokens``).
    """

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    #: each bucket is named after the price key it is multiplied by (``input``,
    #: ``cached_input``, ``cache_write_5m``, ``cache_write_1h``, ``output``) plus ``_tokens``
    input_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_5m_tokens: int = Field(
        default=0,
        # 0.1 called it cache_write_tokens: old result files and ledgers still read
        validation_alias=AliasChoices("cache_write_5m_tokens", "cache_write_tokens"),
    )
    cache_write_1h_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0

    @property
    def cache_write_tokens(self) -> int:
        """Deprecated name of :attr:`cache_write_5m_tokens` (polybatch 0.1)."""
        return self.cache_write_5m_tokens

    @property
    def total_input_tokens(self) -> int:
        """All input tokens, cached or not."""
        return (
            self.input_tokens
            + self.cached_input_tokens
            + self.cache_write_5m_tokens
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
    #: the provider's raw response body (an embedding's vector is moved to ``embedding``, not
    #: kept twice: vectors are most of an embedding result's size)
    response: dict[str, Any] | None = None
    #: the vector of an embedding item
    embedding: list[float] | None = None
    #: the verdict of a moderation item (flagged, categories, category_scores)
    moderation: Moderation | None = None
    #: ``"module:QualName"`` of the model the reply was validated against (see ``parsed``)
    response_model_ref: str | None = None

    @field_validator("status", mode="before")
    @classmethod
    def _legacy_status(cls, value: Any) -> Any:
        # result files written by 0.1 spell it "canceled"
        return LEGACY_STATUS.get(value, value) if isinstance(value, str) else value

    #: (text, ref, instance) of the last ``parsed``: copies with other text do not reuse it
    _parsed: tuple[str, str, BaseModel] | None = PrivateAttr(default=None)

    @property
    def ok(self) -> bool:
        """True when the request succeeded."""
        return self.status == "succeeded"

    def parsed_as(self, model: type[M]) -> M:
        """The reply validated as ``model`` (pydantic's ValidationError if it does not fit).

        Works on any result, including those read back from a job's results file. Raises
        ValueError for a result without text (failed, or an embedding).
        """
        if self.text is None:
            why = self.error.message if self.error else "it has no text"
            raise ValueError(f"result {self.custom_id!r} cannot be parsed: {why}")
        return model.model_validate_json(self.text)

    @property
    def parsed(self) -> BaseModel | None:
        """The reply as an instance of the item's ``response_model``, validated.

        None when the result did not succeed or no model is known for it (an item given a raw
        JSON schema: use ``json.loads(result.text)`` or :meth:`parsed_as`). The model is found
        by ``response_model_ref``, so it must be importable in this process (ImportError if not).
        """
        if not self.ok or self.text is None or self.response_model_ref is None:
            return None
        cached = self._parsed
        if cached is None or cached[:2] != (self.text, self.response_model_ref):
            instance = self.parsed_as(import_model(self.response_model_ref))
            cached = self._parsed = (self.text, self.response_model_ref, instance)
        return cached[2]
