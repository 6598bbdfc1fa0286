"""Values no API can receive are refused where they enter, never sent (issue 15, item 6).

JSON has no NaN or Infinity (Python's ``json`` writes them anyway, and SDKs refuse them locally),
UTF-8 has no lone surrogates, and a deep enough nesting exhausts a parser's stack. The CLI side
of these cases is the table in ``tests/test_bad_inputs.py``; this file holds the library side:
:func:`polybatch.items.json_problem`, BatchItem's and RequestDefaults' validators, the Python
API's dict items, the planner's catch of an adapter that refuses an item locally, and the SDK
kit's rule that a local refusal is not worth retrying.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from polybatch.config import RequestDefaults
from polybatch.errors import (
    InputError,
    ItemValidationError,
    ProviderConnectionError,
    ProviderError,
)
from polybatch.inputs import coerce_items, read_items
from polybatch.items import (
    MAX_JSON_DEPTH,
    MAX_OUTPUT_TOKENS,
    BatchItem,
    json_path,
    json_problem,
)
from polybatch.jobs.planner import plan_job
from polybatch.providers import BatchProvider, BatchStatus, Limits, SubmittedBatch
from polybatch.sdk import SDKProvider

USER = [{"role": "user", "content": "hi"}]


def nested(depth: int) -> Any:
    """A value of ``depth`` levels of arrays (1: ``[]``)."""
    value: Any = []
    for _ in range(depth - 1):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("value", "where", "words"),
    [
        ({"a": [1, {"b": float("nan")}]}, "a[1].b", "NaN is not a JSON number"),
        ({"a": float("inf")}, "a", "Infinity is not a JSON number"),
        ([float("-inf")], "[0]", "-Infinity is not a JSON number"),
        ({"s": "x\ud800y"}, "s", "lone surrogate"),
        ({"deep": {"k": "\udfff"}}, "deep.k", "lone surrogate"),
        ({"m": {"\ud800": 1}}, "m", "a key holds a lone surrogate"),
        # nesting names the outermost member: the full path would be as long as the nesting
        ({"extra": {"a": nested(MAX_JSON_DEPTH)}}, "extra", "nested deeper than 64 levels"),
        ({"t": ("ok", float("nan"))}, "t[1]", "NaN"),
    ],
)
def test_json_problem_names_where_and_why(value: Any, where: str, words: str) -> None:
    problem = json_problem(value)
    assert problem is not None
    loc, reason = problem
    assert json_path(loc) == where and words in reason
    assert "\ud800" not in reason and "\udfff" not in reason, "the reason itself is printable"


@pytest.mark.parametrize(
    "value",
    [
        {"emoji": json.loads('"\\ud83d\\ude00"')},  # a surrogate pair is one character
        {"n": 1e308, "z": -0.0, "i": 2**70, "s": "café", "b": True, "none": None},
        nested(MAX_JSON_DEPTH),  # the bound itself is allowed
        "plain",
    ],
)
def test_json_problem_accepts_what_json_can_carry(value: Any) -> None:
    assert json_problem(value) is None


def test_a_problem_far_down_a_very_deep_value_does_not_recurse() -> None:
    assert json_problem(nested(100_000)) == ((0,), "nested deeper than 64 levels")


def test_the_first_problem_in_document_order_is_named() -> None:
    problem = json_problem({"a": "ok", "b": [float("nan")], "c": float("inf")})
    assert problem is not None and json_path(problem[0]) == "b[0]"


@pytest.mark.parametrize(
    ("fields", "loc", "words"),
    [
        ({"temperature": float("nan")}, "temperature", "finite number"),
        ({"top_p": float("inf")}, "top_p", "finite number"),
        ({"extra": {"logit_bias": {"1": float("nan")}}}, "extra", "logit_bias.1: NaN"),
        (
            {"response_format": {"type": "json_object", "x": float("inf")}},
            "response_format",
            "x: Infinity",
        ),
        ({"stop": ["ok", "\udc00"]}, "stop", "[1]: holds a lone surrogate"),
        ({"extra": {"a": nested(MAX_JSON_DEPTH)}}, "extra", "nested deeper"),
        ({"max_tokens": 2**63}, "max_tokens", f"less than or equal to {MAX_OUTPUT_TOKENS}"),
        ({"max_tokens": 1e30}, "max_tokens", "integer"),
        (
            {"messages": [{"role": "user", "content": [{"type": "text", "w": float("nan")}]}]},
            "messages.0.content",
            "[0].w: NaN",
        ),
        ({"messages": [{"role": "user", "content": "x\ud800"}]}, "messages.0.content", "lone"),
    ],
)
def test_batch_item_refuses_what_cannot_be_sent(
    fields: dict[str, Any], loc: str, words: str
) -> None:
    with pytest.raises(ValidationError) as info:
        BatchItem.model_validate({"messages": USER, **fields})
    err = info.value.errors()[0]
    assert ".".join(map(str, err["loc"])) == loc and words in err["msg"], err


def test_batch_item_keeps_the_bounds_it_had() -> None:
    item = BatchItem(messages=USER, max_tokens=MAX_OUTPUT_TOKENS, extra={"x": [1.5, "é"]})
    assert item.max_tokens == MAX_OUTPUT_TOKENS


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"max_tokens": 2**63}, "less than or equal to"),
        ({"temperature": float("nan")}, "finite number"),
        ({"response_format": {"type": "text", "x": float("nan")}}, "NaN"),
        ({"stop": "\ud800"}, "lone surrogate"),
    ],
)
def test_request_defaults_take_the_same_checks(fields: dict[str, Any], words: str) -> None:
    with pytest.raises(ValidationError, match=words):
        RequestDefaults.model_validate(fields)


def test_dict_items_of_the_python_api_name_the_field() -> None:
    with pytest.raises(InputError) as info:
        list(coerce_items([{"prompt": "ok"}, {"prompt": "x", "extra": {"a": float("nan")}}]))
    assert str(info.value) == "<items>:2: field 'extra.a': NaN is not a JSON number"


def test_a_surrogate_pair_in_a_file_is_text(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text('{"prompt": "smile \\ud83d\\ude00"}\n', encoding="utf-8")
    (item,) = read_items(path)
    assert item.messages[0].content == "smile \U0001f600"


def test_a_line_past_the_recursion_limit_names_its_member(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    deep = "[" * 50_000 + "]" * 50_000
    path.write_text(f'{{"prompt": "[{{ not a bracket", "extra": {{"a": {deep}}}}}\n')
    with pytest.raises(InputError) as info:
        list(read_items(path))
    assert str(info.value) == f"{path}:1: field 'extra': nested deeper than 64 levels"


# -- the planner: an adapter that refuses an item locally names the item, before any upload --


class RefusingProvider(BatchProvider):
    """Encodes with ``json.dumps(allow_nan=False)``, as SDKs serialise bodies."""

    name = "refusing"
    limits = Limits(max_requests=10, max_bytes=10_000)

    def encode(self, item: BatchItem, model: str) -> bytes:
        body = {"custom_id": item.custom_id, "x": item.extra.get("x", 1)}
        return json.dumps(body, allow_nan=False).encode()

    def submit(self, lines_path: Path, *, model: str, metadata: Any) -> SubmittedBatch:
        raise AssertionError("nothing may be submitted")

    def poll(self, batch_id: str) -> BatchStatus:
        raise AssertionError

    def results(self, batch_id: str) -> Any:
        raise AssertionError

    def cancel(self, batch_id: str) -> None:
        raise AssertionError


def test_an_adapters_local_refusal_is_the_items_error(tmp_path: Path) -> None:
    good = BatchItem(custom_id="a", messages=USER)
    # built without validation, as a plugin's own item transformation might
    bad = BatchItem.model_construct(custom_id="b", messages=good.messages, extra={"x": 1e400})
    staging = tmp_path / "staging"
    with pytest.raises(ItemValidationError) as info:
        plan_job(
            [(good, ("in.jsonl", 1)), (bad, ("in.jsonl", 2))],
            provider=RefusingProvider(),
            model="m",
            staging_dir=staging,
        )
    assert str(info.value) == (
        "in.jsonl:2: item 'b' cannot be encoded for refusing: "
        "Out of range float values are not JSON compliant"
    )
    assert list(staging.iterdir()) == [], "no staging file is left behind"


def test_a_system_prompt_that_is_not_text_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError) as info:
        plan_job(
            [(BatchItem(messages=USER), ("in.jsonl", 1))],
            provider=RefusingProvider(),
            model="m",
            staging_dir=tmp_path,
            system_prompt="be \udcff brief",
        )
    assert str(info.value).startswith("field 'system_prompt': holds a lone surrogate")


# -- the SDK kit: a request the SDK refuses to serialise is not worth sending again ------------


class LocalProvider(SDKProvider[object]):
    name = "local"
    limits = Limits(max_requests=1, max_bytes=100)

    def make_client(self) -> object:
        return object()

    def encode(self, item: BatchItem, model: str) -> bytes:
        return b"{}"

    async def asubmit(self, lines_path: Path, *, model: str, metadata: Any) -> SubmittedBatch:
        raise AssertionError

    async def apoll(self, batch_id: str) -> BatchStatus:
        raise AssertionError

    def aresults(self, batch_id: str) -> Any:
        raise AssertionError

    async def acancel(self, batch_id: str) -> None:
        raise AssertionError


@pytest.mark.parametrize(
    "exc",
    [
        ValueError("Out of range float values are not JSON compliant"),
        UnicodeEncodeError("utf-8", "x\ud800", 1, 2, "surrogates not allowed"),
    ],
)
def test_an_sdks_local_refusal_is_permanent(exc: ValueError) -> None:
    provider = LocalProvider(api_key="k")
    with pytest.raises(ProviderError) as info, provider.sdk_errors("create batch"):
        raise exc
    error = info.value
    assert type(error) is ProviderError and error.__cause__ is exc and not error.retryable
    assert str(error).startswith("local: create batch failed: ")


def test_a_cut_download_stays_transient() -> None:
    provider = LocalProvider(api_key="k")
    with pytest.raises(ProviderConnectionError), provider.sdk_errors("downloading"):
        json.loads('{"a')
