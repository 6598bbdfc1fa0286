"""The wire format: encoding items, decoding result lines (no HTTP)."""

from __future__ import annotations

import json

import pytest

from polybatch import wire
from polybatch.errors import ItemValidationError
from polybatch.items import BatchItem
from polybatch_mistral import codec


def test_encode_line_is_mistral_input_format() -> None:
    item = BatchItem(
        custom_id="a",
        messages=[{"role": "system", "content": "sys"}, {"role": "user", "content": "hé"}],
        max_tokens=10,
        temperature=0.2,
        top_p=0.9,
        seed=42,
        stop=["\n"],
        response_format={"type": "json_object"},
        extra={"safe_prompt": True},
    )
    line = codec.encode_line(item)
    assert b"\n" not in line and "hé".encode() in line  # raw UTF-8, one line
    obj = json.loads(line)
    assert set(obj) == {"custom_id", "body"}  # no method/url at Mistral
    assert obj["custom_id"] == "a"
    assert obj["body"] == {
        "messages": [{"role": "system", "content": "sys"}, {"role": "user", "content": "hé"}],
        "max_tokens": 10,
        "temperature": 0.2,
        "top_p": 0.9,
        "random_seed": 42,
        "stop": ["\n"],
        "response_format": {"type": "json_object"},
        "safe_prompt": True,
    }
    assert json.loads(codec.encode_line(item, custom_id="w", model="m"))["body"]["model"] == "m"


def test_encode_needs_an_id() -> None:
    with pytest.raises(ValueError):
        codec.encode_line(BatchItem(messages=[{"role": "user", "content": "x"}]))


def _ok_line(**usage: object) -> dict[str, object]:
    body = codec.chat_completion(
        completion_id="x",
        created=1,
        model="mistral-small-2506",
        texts=["hello"],
        finish_reason="stop",
        prompt_tokens=10,
        completion_tokens=3,
    )
    body["usage"] = {**body["usage"], **usage}  # type: ignore[dict-item]
    return codec.response_line("l", "c1", status_code=200, body=body)


def test_decode_success_and_usage() -> None:
    r = codec.decode_result(wire.dumps(_ok_line()), provider="mistral", batch_id="b")
    assert r.ok and r.text == "hello" and r.finish_reason == "stop"
    assert r.model == "mistral-small-2506" and r.provider == "mistral" and r.batch_id == "b"
    assert (r.usage.input_tokens, r.usage.cached_input_tokens, r.usage.output_tokens) == (10, 0, 3)


def test_cached_and_reasoning_tokens_are_disjoint() -> None:
    line = _ok_line(
        prompt_tokens_details={"cached_tokens": 4},
        completion_tokens_details={"reasoning_tokens": 2},
    )
    u = codec.decode_result(line).usage
    assert (u.input_tokens, u.cached_input_tokens, u.output_tokens, u.reasoning_tokens) == (
        6,
        4,
        3,
        2,
    )
    assert u.total_input_tokens == 10


def test_finish_reasons() -> None:
    line = _ok_line()
    line["response"]["body"]["choices"][0]["finish_reason"] = "model_length"  # type: ignore[index]
    assert codec.decode_result(line).finish_reason == "length"
    line["response"]["body"]["choices"][0]["finish_reason"] = "error"  # type: ignore[index]
    r = codec.decode_result(line)
    assert r.status == "errored" and r.error and r.error.retryable


def test_content_chunks_are_joined() -> None:
    line = _ok_line()
    line["response"]["body"]["choices"][0]["message"]["content"] = [  # type: ignore[index]
        {"type": "thinking", "thinking": [{"type": "text", "text": "hmm"}]},
        {"type": "text", "text": "a"},
        {"type": "text", "text": "b"},
    ]
    assert codec.decode_result(line).text == "ab"


@pytest.mark.parametrize(
    ("status", "retryable"), [(400, False), (401, False), (408, True), (429, True), (503, True)]
)
def test_decode_http_errors(status: int, retryable: bool) -> None:
    body = codec.error_body("nope", type="invalid_request_error", code="3051")
    r = codec.decode_result(codec.response_line("l", "c", status_code=status, body=body))
    assert r.status == "errored" and r.error is not None
    assert (r.error.status_code, r.error.retryable) == (status, retryable)
    assert r.error.code == "3051" and r.error.message == "nope"


def test_decode_other_error_shapes() -> None:
    fastapi = {"custom_id": "c", "response": {"status_code": 422, "body": {"detail": "bad"}}}
    r = codec.decode_result(fastapi)
    assert r.error and r.error.message == "bad" and r.error.code == "http_422"
    nested = {
        "custom_id": "c",
        "response": {"status_code": 500, "body": {"error": {"message": "m", "code": "x"}}},
    }
    r = codec.decode_result(nested)
    assert r.error and (r.error.code, r.error.message, r.error.retryable) == ("x", "m", True)
    bare = {
        "custom_id": "c",
        "response": None,
        "error": {"code": "batch_cancelled", "message": "m"},
    }
    assert codec.decode_result(bare).status == "cancelled"
    text = {"custom_id": "c", "error": "boom"}
    r = codec.decode_result(text)
    assert r.status == "errored" and r.error and r.error.message == "boom"
    empty = codec.decode_result({"custom_id": "c"})
    assert empty.error and empty.error.code == "invalid_output_line"


def test_lines_without_custom_id_are_wire_errors() -> None:
    with pytest.raises(codec.WireError):
        codec.decode_result(b'{"response": {}}')
    with pytest.raises(codec.WireError):
        codec.decode_result(b"{nope")


def test_iter_jsonl_splits_on_newline_only() -> None:
    chunks = [b'{"a": "x\xe2\x80', b'\xa8y"}\r\n\n{"b"', b": 1}"]
    assert list(wire.iter_jsonl(chunks)) == [b'{"a": "x\xe2\x80\xa8y"}', b'{"b": 1}']


def test_input_line_round_trip() -> None:
    item = BatchItem(custom_id="q", messages=[{"role": "user", "content": "x"}])
    parsed = codec.decode_input_line(codec.encode_line(item), index=0)
    assert parsed.custom_id == "q" and parsed.body["messages"][0]["content"] == "x"
    assert codec.input_custom_id(codec.encode_line(item)) == "q"
    assert codec.decode_input_line(b'{"body": {}}', index=7).custom_id == "7"
    for bad in (b"[]", b'{"custom_id": 3, "body": {}}', b'{"custom_id": "a"}', b"\xef\xbb\xbf{}"):
        with pytest.raises(codec.WireError):
            codec.decode_input_line(bad, index=0)


def test_synthetic_results() -> None:
    r = codec.synthetic_result("c", "expired", provider="mistral", batch_id="b")
    assert r.error and r.error.code == "batch_expired" and r.error.retryable
    r = codec.synthetic_result("c", "cancelled", provider="mistral", batch_id="b")
    assert r.error and r.error.code == "batch_cancelled"


def test_check_item_uses_the_sandboxs_rules() -> None:
    user = [{"role": "user", "content": "x"}]
    for item, field in (
        (BatchItem(messages=user), "model"),
        (BatchItem(model="m", messages=user, seed=-1), "seed"),
        (BatchItem(model="m", messages=user, extra={"top_p": 3}), "extra.top_p"),
        (BatchItem(model="m", messages=user, extra={"random_seed": -1}), "extra.random_seed"),
    ):
        with pytest.raises(ItemValidationError) as info:
            codec.check_item(item, "")
        assert info.value.field == field, item
    codec.check_item(BatchItem(messages=user, seed=3), "mistral-small-latest")


def test_parsed_requests_keep_sampling_fields_apart() -> None:
    req = codec.check_body(
        {
            "messages": [
                {
                    "role": "user",
                    "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
                }
            ],
            "temperature": 0.5,
            "random_seed": 4,
            "safe_prompt": True,
        },
        job_model="m",
    )
    assert (req.model, req.temperature, req.seed, req.extra) == ("m", 0.5, 4, {"safe_prompt": True})
    assert req.transcript() == [("user", "ab")]  # Mistral's parts join unseparated


def test_state_tables_both_ways() -> None:
    assert (
        codec.batch_state("RUNNING") == "in_progress" and codec.batch_state("NEW") == "in_progress"
    )
    assert codec.STATES["QUEUED"] == "validating" and codec.STATUS["finalizing"] == "RUNNING"
    assert {codec.STATES[codec.STATUS[s]] for s in ("completed", "expired", "cancelled")} == {
        "completed",
        "expired",
        "cancelled",
    }
    assert {"SUCCESS", "FAILED", "TIMEOUT_EXCEEDED", "CANCELLED"} == codec.TERMINAL_STATUSES
