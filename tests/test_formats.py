"""The OpenAI batch-line interchange format shared by the OpenAI-shaped codecs (no provider SDK)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from polybatch import formats
from polybatch.errors import ItemValidationError
from polybatch.items import BatchItem, Usage
from polybatch.wire import WireError

FIELDS = {
    "max_tokens": "max_completion_tokens",
    "temperature": "temperature",
    "top_p": "top_p",
    "seed": "random_seed",
    "stop": "stop",
    "response_format": "response_format",
}
NO_LINE_ERRORS: dict[str, Any] = {}


def _item(**kw: Any) -> BatchItem:
    return BatchItem(custom_id="c1", messages=[{"role": "user", "content": "hi"}], **kw)


# -- encode -------------------------------------------------------------------------------------
def test_chat_body_maps_params_and_lets_extra_win() -> None:
    item = _item(max_tokens=5, seed=3, temperature=0.5, extra={"temperature": 0.1, "x": 1})
    body = formats.chat_body(item, "m", FIELDS)
    assert list(body) == [
        "model",
        "messages",
        "max_completion_tokens",
        "temperature",
        "random_seed",
        "x",
    ]
    assert body["temperature"] == 0.1 and body["random_seed"] == 3
    assert "model" not in formats.chat_body(item, None, FIELDS)


def test_encode_line_envelopes() -> None:
    item = _item()
    body = {"messages": []}
    assert json.loads(formats.encode_line(item, body)) == {"custom_id": "c1", "body": body}
    assert json.loads(formats.encode_line(item, body, custom_id="w", url="/u")) == {
        "custom_id": "w",
        "method": "POST",
        "url": "/u",
        "body": body,
    }
    with pytest.raises(ValueError, match="custom_id"):
        formats.encode_line(BatchItem(messages=[{"role": "user", "content": "x"}]), body)


# -- decode -------------------------------------------------------------------------------------
def test_usage_buckets_are_disjoint() -> None:
    raw = {
        "prompt_tokens": 10,
        "completion_tokens": 3,
        "prompt_tokens_details": {"cached_tokens": 4},
        "completion_tokens_details": {"reasoning_tokens": 2},
    }
    assert formats.usage(raw) == Usage(
        input_tokens=6, cached_input_tokens=4, output_tokens=3, reasoning_tokens=2
    )
    assert formats.usage(None) == Usage() == formats.usage({})
    # inconsistent or partial reports never count more input than the prompt had
    over = formats.usage({"prompt_tokens": 2, "prompt_tokens_details": {"cached_tokens": 5}})
    assert (over.input_tokens, over.cached_input_tokens) == (0, 2)
    assert formats.usage({"prompt_tokens": 5, "prompt_tokens_details": None}).input_tokens == 5


def _line(status: int, body: dict[str, Any]) -> dict[str, Any]:
    return {"custom_id": "c", "response": {"status_code": status, "body": body}, "error": None}


def _decode(line: Any, **kw: Any) -> Any:
    return formats.decode_line(line, provider="p", batch_id="b", line_errors=NO_LINE_ERRORS, **kw)


def test_decode_success() -> None:
    body = {
        "model": "m-1",
        "choices": [
            {
                "message": {
                    "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]
                },
                "finish_reason": "model_length",
            }
        ],
        "usage": {"prompt_tokens": 2, "completion_tokens": 1},
    }
    r = _decode(json.dumps(_line(200, body)).encode())
    assert (r.status, r.text, r.finish_reason, r.model) == (
        "succeeded",
        "ab",
        "model_length",
        "m-1",
    )
    assert (r.custom_id, r.provider, r.batch_id) == ("c", "p", "b") and r.response == body
    mapped = formats.chat_result(
        body, {"custom_id": "c"}, finish_reasons={"model_length": "length"}
    )
    assert mapped.finish_reason == "length"
    empty = _decode(_line(200, {}))
    assert empty.ok and empty.text is None and empty.finish_reason is None


@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        (
            {"error": {"message": "bad", "type": "invalid_request_error", "code": None}},
            "invalid_request_error",
            "bad",
        ),
        ({"object": "error", "message": "flat", "code": "3051"}, "3051", "flat"),
        ({"detail": [{"loc": "x"}]}, "http_422", '[{"loc": "x"}]'),
        ({}, "http_422", "HTTP 422"),
    ],
)
def test_decode_error_bodies(body: dict[str, Any], code: str, message: str) -> None:
    r = _decode(_line(422, body))
    assert r.status == "errored" and r.error is not None
    assert (r.error.code, r.error.message, r.error.status_code, r.error.retryable) == (
        code,
        message,
        422,
        False,
    )


def test_decode_retryability_by_status() -> None:
    assert _decode(_line(429, {})).error.retryable
    assert _decode(_line(503, {})).error.retryable
    no_status = _line(0, {})
    assert not _decode(no_status).error.retryable
    assert _decode(no_status, no_status_retryable=True).error.retryable
    assert _decode(no_status).error.status_code is None


def test_decode_error_only_lines() -> None:
    table = {"batch_expired": ("expired", True)}
    expired = {
        "custom_id": "c",
        "response": None,
        "error": {"code": "batch_expired", "message": "m"},
    }
    r = formats.decode_line(expired, provider=None, batch_id=None, line_errors=table)
    assert (r.status, r.error.code, r.error.retryable) == ("expired", "batch_expired", True)
    other = formats.decode_line(
        {"custom_id": "c", "error": "boom"}, provider=None, batch_id=None, line_errors=table
    )
    assert (other.status, other.error.code, other.error.message) == (
        "errored",
        "unknown_error",
        "boom",
    )
    neither = _decode({"custom_id": "c"})
    assert neither.error.code == "invalid_output_line"


def test_decode_rejects_lines_it_cannot_attribute() -> None:
    for raw in (b"{broken", b'{"response": {}}', b"[]"):
        with pytest.raises(WireError):
            _decode(raw)


def test_custom_success_decoder() -> None:
    r = _decode(
        _line(200, {"object": "list"}),
        success=lambda body, common: formats.chat_result({"model": "e"}, common),
    )
    assert r.model == "e"


# -- the sandbox side and the adapter side of one check -----------------------------------------
def test_chat_request() -> None:
    req = formats.ChatRequest(
        model="m",
        messages=[
            {
                "role": "user",
                "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
            }
        ],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "n", "schema": {"type": "array"}},
        },
    )
    assert req.transcript() == [("user", "a\nb")] and req.json_schema() == {"type": "array"}
    assert formats.ChatRequest(model="m", messages=[]).json_schema() is None
    odd = formats.ChatRequest(model="m", messages=[], response_format={"type": "json_schema"})
    assert odd.json_schema() == {"type": "object"}


def test_stop_list_and_json_types() -> None:
    assert formats.stop_list("x") == ["x"] and formats.stop_list(["a", "b"], most=2) == ["a", "b"]
    assert formats.stop_list(["a", "b"], most=1) is None and formats.stop_list([1]) is None
    assert formats.is_int(3) and not formats.is_int(True) and not formats.is_int(3.0)
    assert formats.is_number(3.5) and not formats.is_number(False) and not formats.is_number("1")


@pytest.mark.parametrize(
    ("item", "param", "field"),
    [
        (_item(extra={"stop": 3}), "stop", "extra.stop"),
        (_item(max_tokens=5), "max_completion_tokens", "max_tokens"),
        (_item(seed=5), "random_seed", "seed"),
        (_item(), "messages[0].content", "messages[0].content"),
        (
            _item(extra={"response_format": {}}),
            "response_format.type",
            "extra.response_format.type",
        ),
        (_item(), None, None),
    ],
)
def test_item_error_names_the_items_field(
    item: BatchItem, param: str | None, field: str | None
) -> None:
    exc = formats.item_error(WireError("invalid_value", "nope", param=param), item, FIELDS)
    assert isinstance(exc, ItemValidationError) and exc.field == field and exc.reason == "nope"


def test_response_line_shapes() -> None:
    assert formats.response_line("l", "c", status_code=200, body={"a": 1}) == {
        "id": "l",
        "custom_id": "c",
        "response": {"status_code": 200, "body": {"a": 1}},
        "error": None,
    }
    line = formats.response_line("l", "c", status_code=500, body={}, request_id="r")
    assert list(line["response"]) == ["status_code", "request_id", "body"]
    assert _decode(line).error.retryable
