"""The provider-neutral data model: BatchItem in, BatchResult out."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar

from annotated_types import MinLen
from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from . import kinds as _kinds
from .jsonsafe import MAX_JSON_DEPTH as MAX_JSON_DEPTH
from .jsonsafe import MAX_OUTPUT_TOKENS as MAX_OUTPUT_TOKENS
from .jsonsafe import json_path as json_path
from .jsonsafe import json_problem as json_problem
from .jsonsafe import json_safe
from .kinds import ItemKind, Moderation
from .shapes import ShapeError, neutral_record
from .structured import REF_RE, import_model, json_schema_format, model_ref
from .structured import strict_json_schema as strict_json_schema
from .structured import validation_message as validation_message

Role = Literal["system", "user", "assistant"]
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

#: fields of a neutral item that map onto request parameters (the rest are structure)
PARAM_FIELDS: tuple[str, ...] = (
    "max_tokens",
    "temperature",
    "top_p",
    "seed",
    "stop",
    "response_format",
)


#: a value that must survive JSON encoding (the check travels with the type, so that
#: RequestDefaults, which takes BatchItem's fields, checks it too)
JSONSafe = AfterValidator(json_safe)


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
        json_safe(value)
        return value

    @property
    def text(self) -> str:
        """The text of the message, with the text parts of a list content joined."""
        if isinstance(self.content, str):
            return self.content
        return "\n".join(str(p.get("text", "")) for p in self.content if p.get("type") == "text")


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


class BatchItem(BaseModel):
    """One request, in neutral form. Whatever the provider, this is what goes in.

    ``custom_id`` maps the result back to this item; items without one get a stable id
    (``item-<position>``) when a job is planned. ``model`` overrides the job's model.
    ``extra`` holds provider-specific body fields passed through verbatim.

    ``kind="chat"`` (the default) takes ``messages``; ``kind="embedding"`` takes one ``input``
    string (one item, one vector: see :attr:`BatchResult.embedding`) and optional
    ``dimensions``, and none of the chat parameters. ``response``, ``completion`` and
    ``moderation`` items (the Responses API, legacy completions, moderations) take the fields
    :mod:`polybatch.kinds` lists for them.

    Structured output: ``response_model=MyModel`` (a pydantic class, or ``"module:MyModel"``) is a
    constructor convenience. It is never serialised (items are written to the job's files and
    read back in other processes); it fills ``response_format`` with the model's strict JSON
    schema and ``response_model_ref`` with its import path, which is what travels.

    ``prompt="..."`` is a shortcut for one user message (``system="..."`` adds a system message
    before it), as in the JSONL input; ``{"id", "content"}`` records and bare message lists are
    read too (:mod:`polybatch.shapes`).
    """

    model_config = ConfigDict(extra="forbid")

    custom_id: Annotated[str | None, JSONSafe] = Field(default=None, min_length=1, max_length=512)
    kind: ItemKind = "chat"
    messages: list[Message] = Field(default_factory=list)
    #: the text to embed (``embedding``), the input of a ``response`` (text or message objects)
    #: or of a ``moderation`` (text or text/image_url parts)
    input: Annotated[
        Annotated[str, MinLen(1)] | Annotated[list[dict[str, Any]], MinLen(1)] | None, JSONSafe
    ] = None
    #: the text a ``completion`` continues (on a chat item, ``prompt=`` is the shortcut for one
    #: user message, expanded before validation: a built chat item's ``prompt`` is None)
    prompt: Annotated[str | None, JSONSafe] = Field(default=None, min_length=1)
    #: ``response`` only: the system instructions, tools, ``text`` options (``text.format`` is
    #: structured output) and reasoning options (``{"effort": "low"}``), as the Responses API
    instructions: Annotated[str | None, JSONSafe] = None
    tools: Annotated[list[dict[str, Any]] | None, JSONSafe] = None
    text: Annotated[dict[str, Any] | None, JSONSafe] = None
    reasoning: Annotated[dict[str, Any] | None, JSONSafe] = None
    #: the embedding's size, for models that can shorten it (``kind="embedding"``)
    dimensions: int | None = Field(default=None, ge=1)
    model: Annotated[str | None, JSONSafe] = None
    max_tokens: int | None = Field(default=None, ge=1, le=MAX_OUTPUT_TOKENS)
    temperature: float | None = Field(default=None, ge=0, le=2, allow_inf_nan=False)
    top_p: float | None = Field(default=None, ge=0, le=1, allow_inf_nan=False)
    seed: int | None = None
    stop: Annotated[str | list[str] | None, JSONSafe] = None
    response_format: Annotated[dict[str, Any] | None, JSONSafe] = None
    #: ``"module:QualName"`` of the pydantic model replies are validated against
    response_model_ref: str | None = None
    #: constructor convenience only (excluded from dumps): see the class docstring
    response_model: type[BaseModel] | None = Field(default=None, exclude=True, repr=False)
    extra: Annotated[dict[str, Any], JSONSafe] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _shorthands(cls, data: Any) -> Any:
        try:
            return neutral_record(data)
        except ShapeError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("messages")
    @classmethod
    def _messages_fit_kind(cls, value: list[Message], info: ValidationInfo) -> list[Message]:
        # a field validator (not the model one) so that errors name the field; kind comes first
        kind = info.data.get("kind", "chat")
        if kind == "chat" and not value:
            raise ValueError("a chat item needs at least 1 message")
        if kind != "chat" and value:
            needs = _kinds.REQUIRED[kind]
            raise ValueError(f"{_kinds.article(kind)} item takes '{needs}', not 'messages'")
        return value

    @field_validator("input", "dimensions", "prompt", "instructions", "tools", "text", "reasoning")
    @classmethod
    def _kind_only(cls, value: Any, info: ValidationInfo) -> Any:
        takers = _kinds.field_kinds(str(info.field_name))
        if value is not None and info.data.get("kind", "chat") not in takers:
            raise ValueError(f"belongs to kind={' or '.join(repr(k) for k in takers)} items")
        return value

    @field_validator("response_model", mode="before")
    @classmethod
    def _import_response_model(cls, value: Any) -> Any:
        # a "module:Class" string (also what an input file can hold) names the class to import
        if isinstance(value, str):
            try:
                return import_model(value)
            except (ImportError, TypeError) as exc:
                raise ValueError(f"cannot use response_model {value!r}: {exc}") from None
        return value

    @field_validator("response_model_ref")
    @classmethod
    def _ref_shape(cls, value: str | None) -> str | None:
        if value is not None and not REF_RE.match(value):
            raise ValueError("must be 'module:ClassName'")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> BatchItem:
        if self.response_model is not None:
            wanted = json_schema_format(self.response_model)
            if self.response_format is not None and self.response_format != wanted:
                raise ValueError("give response_model or response_format, not both")
            self.response_format = wanted
            if self.response_model_ref is None:
                self.response_model_ref = model_ref(self.response_model)
        if self.kind == "response" and self.response_format is not None:
            # one neutral spelling of structured output: the Responses API takes it in text.format
            fmt = _kinds.text_format(self.response_format)
            self.text, self.response_format = {**(self.text or {}), "format": fmt}, None
        if self.kind != "chat":
            fields = _kinds.KIND_SPECIFIC
            values = {n: getattr(self, n) for n in fields if getattr(self, n) is not None}
            problem = _kinds.kind_problem(self.kind, values)
            if problem is not None:
                raise ValueError(problem[1])
            return self
        if not self.messages:  # a default is not validated: say it here
            raise ValueError("a chat item needs 'messages'")
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

    @property
    def json_schema(self) -> dict[str, Any] | None:
        """The JSON schema replies must follow, when ``response_format`` asks for one."""
        rf = self.response_format
        if rf is None or rf.get("type") != "json_schema":
            return None
        spec = rf.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        return schema if isinstance(schema, dict) else None

    def output_check(self) -> OutputCheck | None:
        """How to check this item's reply, if it asked for JSON (``json_schema``/``json_object``)."""
        return OutputCheck.for_format(
            _kinds.output_format({"response_format": self.response_format, "text": self.text}),
            self.response_model_ref,
            self.response_model,
        )

    def check_result(self, result: BatchResult) -> BatchResult:
        """``result`` checked against this item's structured-output request (see OutputCheck)."""
        check = self.output_check()
        return check.apply(result) if check is not None else result


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
