"""Input parsing: both formats accepted; every malformed line named by file, line and field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from polybatch.errors import InputError
from polybatch.inputs import coerce_items, item_from_dict, read_items, read_numbered_items


def write(tmp_path: Path, *lines: str | bytes, name: str = "in.jsonl") -> Path:
    p = tmp_path / name
    p.write_bytes(b"".join((x if isinstance(x, bytes) else x.encode()) + b"\n" for x in lines))
    return p


def test_neutral_prompt_and_system_shorthands(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        json.dumps({"custom_id": "a", "prompt": "hi", "system": "be brief", "max_tokens": 5}),
        "",
        json.dumps({"messages": [{"role": "user", "content": [{"type": "text", "text": "x"}]}]}),
    )
    items = list(read_numbered_items(p))
    assert [n for _, n in items] == [1, 3]
    first = items[0][0]
    assert [m.role for m in first.messages] == ["system", "user"]
    assert first.params() == {"max_tokens": 5}
    assert items[1][0].custom_id is None
    assert items[1][0].messages[0].text == "x"


def test_openai_batch_lines_are_accepted_and_model_is_left_to_the_job(tmp_path: Path) -> None:
    line = {
        "custom_id": "r1",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": "hi"}],
            "max_completion_tokens": 7,
            "logprobs": True,
        },
    }
    (item,) = read_items(write(tmp_path, json.dumps(line)))
    assert item.custom_id == "r1"
    assert item.model is None
    assert item.max_tokens == 7
    assert item.extra == {"logprobs": True}


def test_plain_strings_and_dicts_in_python() -> None:
    items = list(coerce_items(["hello", {"prompt": "x", "temperature": 0}]))
    assert items[0].messages[0].content == "hello"
    assert items[1].temperature == 0


BAD_LINES: list[tuple[str, bytes | str, int, str | None, str]] = [
    ("broken json", '{"prompt": "x"', 1, None, "invalid JSON"),
    # a list is read as a list of messages (polybatch.shapes): its first member is named
    ("not an object", "[1, 2]", 1, "[0]", "JSON object (or a list of messages), got int"),
    ("a bare string", '"hello"', 1, None, "JSON object"),
    ("missing messages", '{"custom_id": "a"}', 1, "messages", "missing"),
    ("empty messages", '{"messages": []}', 1, "messages", "at least 1"),
    (
        "unknown role",
        '{"messages": [{"role": "tool", "content": "x"}]}',
        1,
        "messages[0].role",
        "Input should be",
    ),
    (
        "only a system turn",
        '{"messages": [{"role": "system", "content": "x"}]}',
        1,
        None,
        "user or assistant",
    ),
    (
        "message without content",
        '{"messages": [{"role": "user"}]}',
        1,
        "messages[0].content",
        "Field required",
    ),
    (
        "empty content list",
        '{"messages": [{"role": "user", "content": []}]}',
        1,
        "messages[0].content",
        "empty",
    ),
    ("unknown field", '{"prompt": "x", "colour": "red"}', 1, "colour", "unknown field"),
    (
        "prompt and messages",
        '{"prompt": "x", "messages": [{"role": "user", "content": "y"}]}',
        1,
        "prompt",
        "not both",
    ),
    ("empty prompt", '{"prompt": "  "}', 1, "prompt", "non-empty"),
    ("prompt not a string", '{"prompt": 3}', 1, "prompt", "non-empty"),
    (
        "max_tokens zero",
        '{"prompt": "x", "max_tokens": 0}',
        1,
        "max_tokens",
        "greater than or equal to 1",
    ),
    ("max_tokens a word", '{"prompt": "x", "max_tokens": "many"}', 1, "max_tokens", "integer"),
    (
        "temperature too high",
        '{"prompt": "x", "temperature": 9}',
        1,
        "temperature",
        "less than or equal to 2",
    ),
    ("custom_id empty", '{"custom_id": "", "prompt": "x"}', 1, "custom_id", "at least 1"),
    ("custom_id a number", '{"custom_id": 5, "prompt": "x"}', 1, "custom_id", "string"),
    (
        "custom_id too long",
        json.dumps({"custom_id": "x" * 600, "prompt": "x"}),
        1,
        "custom_id",
        "at most 512",
    ),
    (
        "bad response_format",
        '{"prompt": "x", "response_format": {"type": "xml"}}',
        1,
        "response_format",
        "json_schema",
    ),
    ("system not a string", '{"prompt": "x", "system": ["a"]}', 1, "system", "string"),
    (
        "openai line: GET",
        '{"method": "GET", "url": "/v1/chat/completions", "body": {}}',
        1,
        "method",
        "POST",
    ),
    (
        "openai line: images url",
        '{"url": "/v1/images/generations", "body": {"prompt": "x"}}',
        1,
        "url",
        "unsupported",
    ),
    (
        "openai line: body not object",
        '{"url": "/v1/chat/completions", "body": 3}',
        1,
        "body",
        "JSON object",
    ),
    (
        "openai line: unknown key",
        '{"url": "/v1/chat/completions", "body": {}, "x": 1}',
        1,
        "x",
        "unknown",
    ),
    ("binary garbage", b"\xff\xfe\x00garbage", 1, None, "UTF-8"),
]


@pytest.mark.parametrize(
    ("label", "line", "lineno", "field", "fragment"), BAD_LINES, ids=[b[0] for b in BAD_LINES]
)
def test_bad_lines_name_file_line_and_field(
    tmp_path: Path, label: str, line: bytes | str, lineno: int, field: str | None, fragment: str
) -> None:
    good = '{"prompt": "fine"}'
    p = write(tmp_path, good, line)
    with pytest.raises(InputError) as info:
        list(read_items(p))
    err = info.value
    assert err.path == str(p)
    assert err.line == lineno + 1
    assert err.field == field
    assert fragment in str(err)
    assert str(err).startswith(f"{p}:{lineno + 1}: ")


def test_empty_file_missing_file_and_directory(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    with pytest.raises(InputError, match="holds no requests"):
        list(read_items(empty))
    with pytest.raises(InputError, match="no such file"):
        list(read_items(tmp_path / "nope.jsonl"))
    with pytest.raises(InputError, match="directory"):
        list(read_items(tmp_path))


def test_utf8_bom_is_tolerated(tmp_path: Path) -> None:
    p = tmp_path / "bom.jsonl"
    p.write_bytes(b'\xef\xbb\xbf{"prompt": "x"}\n')
    assert len(list(read_items(p))) == 1


def test_item_from_dict_reports_nested_field() -> None:
    with pytest.raises(InputError) as info:
        item_from_dict(
            {"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": 4}]}
        )
    assert info.value.field is not None and info.value.field.startswith("messages[1].content")
