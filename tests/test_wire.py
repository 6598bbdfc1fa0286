"""JSONL wire helpers and the small codec helpers shared by every provider codec."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from polybatch.errors import PolybatchError
from polybatch.wire import (
    WireError,
    as_mapping,
    dumps,
    iter_jsonl,
    load_object,
    message_text,
    retryable_status,
    short_hash,
)

#: any text, lone surrogates and JSON-legal line separators (U+2028, U+0085) included
TEXT = st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=40)


@given(
    values=st.lists(st.dictionaries(TEXT, TEXT, max_size=3), min_size=1, max_size=8),
    cut=st.integers(1, 50),
)
def test_lines_survive_any_chunking(values: list[dict[str, str]], cut: int) -> None:
    data = b"".join(dumps(v) + b"\n" for v in values)
    chunks = [data[i : i + cut] for i in range(0, len(data), cut)]
    assert [json.loads(line) for line in iter_jsonl(chunks)] == values


def test_dumps_is_compact_and_keeps_non_ascii_raw() -> None:
    assert dumps({"a": "é", "b": [1, 2]}) == '{"a":"é","b":[1,2]}'.encode()
    assert json.loads(dumps({"s": "\ud800"})) == {"s": "\ud800"}  # cannot be UTF-8: escaped


def test_blank_lines_and_crlf_are_tolerated() -> None:
    assert list(iter_jsonl([b'{"a":1}\r\n\n  \n{"b":2}'])) == [b'{"a":1}', b'{"b":2}']


# -- codec helpers ----------------------------------------------------------------------------
def test_wire_error_is_a_value_error_naming_the_field() -> None:
    exc = WireError("invalid_value", "bad stop", param="stop")
    assert isinstance(exc, ValueError) and isinstance(exc, PolybatchError)
    assert (exc.code, exc.message, exc.param, str(exc)) == (
        "invalid_value",
        "bad stop",
        "stop",
        "bad stop",
    )


def test_short_hash_is_stable_and_sized() -> None:
    assert short_hash("b", 1) == short_hash("b", 1) != short_hash("b", 2)
    assert len(short_hash("b", 1)) == 24 and len(short_hash("b", 1, length=32)) == 32
    assert short_hash("b", 1, length=32).startswith(short_hash("b", 1))


def test_load_object_is_strict() -> None:
    assert load_object(b'{"a": "\xc3\xa9"}') == {"a": "é"} == load_object('{"a": "é"}')
    for raw in (b"[1]", b"\xef\xbb\xbf{}", b"{nope", b"\xff{}"):
        with pytest.raises(WireError) as info:
            load_object(raw)
        assert info.value.code == "invalid_json_line"


def test_message_text() -> None:
    parts = [{"type": "text", "text": "a"}, {"type": "image_url"}, {"type": "text", "text": "b"}]
    assert message_text("hi") == "hi"
    assert message_text(parts) == "a\nb" and message_text(parts, sep="") == "ab"
    assert message_text(None) == "" and message_text(3) == ""


@pytest.mark.parametrize(
    ("status", "retryable"),
    [(200, False), (400, False), (404, False), (408, True), (409, True), (429, True), (500, True)],
)
def test_retryable_status(status: int, retryable: bool) -> None:
    assert retryable_status(status) is retryable


def test_as_mapping() -> None:
    assert as_mapping({"a": 1}) == {"a": 1} and as_mapping(None) == {} and as_mapping([1]) == {}
