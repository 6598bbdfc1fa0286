"""JSONL wire helpers shared by every provider codec."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from polybatch.wire import dumps, iter_jsonl

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
