"""The provider-neutral data model: BatchItem in (BatchResult out is :mod:`polybatch.results`,
re-exported here)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from annotated_types import MinLen
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
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
from .kinds import ItemKind
from .results import LEGACY_STATUS as LEGACY_STATUS
from .results import RESULT_STATUSES as RESULT_STATUSES
from .results import BatchResult as BatchResult
from .results import ItemError as ItemError
from .results import OutputCheck as OutputCheck
from .results import ResultStatus as ResultStatus
from .results import Usage as Usage
from .results import result_status as result_status
from .shapes import ShapeError, neutral_record
from .structured import REF_RE, import_model, json_schema_format, model_ref
from .structured import strict_json_schema as strict_json_schema
from .structured import validation_message as validation_message

Role = Literal["system", "user", "assistant"]
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
