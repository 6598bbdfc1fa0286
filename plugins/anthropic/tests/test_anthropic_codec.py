"""The Anthropic wire codec: encoding rules, rejections, custom ids, result decoding."""

from __future__ import annotations

import json
from typing import Any

import pytest
from anthropic_support import MODEL, item

from polybatch.errors import ItemValidationError
from polybatch.items import BatchItem
from polybatch_anthropic import codec
from polybatch_anthropic.provider import AnthropicProvider


def conv(*turns: tuple[str, Any], **fields: Any) -> BatchItem:
    return BatchItem.model_validate(
        {
            "custom_id": "c1",
            "messages": [{"role": r, "content": c} for r, c in turns],
            **fields,
        }
    )


def params(it: BatchItem, **kw: Any) -> dict[str, Any]:
    return codec.build_params(it, MODEL, **kw)


# -- encoding ---------------------------------------------------------------------------------
def test_minimal_item_gets_default_max_tokens() -> None:
    line = json.loads(AnthropicProvider().encode(item("a", "hi"), MODEL))
    assert line == {
        "custom_id": "a",
        "params": {
            "model": MODEL,
            "max_tokens": codec.DEFAULT_MAX_TOKENS,
            "messages": [{"role": "user", "content": "hi"}],
        },
    }


def test_default_max_tokens_setting_and_item_value() -> None:
    p = AnthropicProvider(settings={"default_max_tokens": 77})
    assert json.loads(p.encode(item("a"), MODEL))["params"]["max_tokens"] == 77
    assert json.loads(p.encode(item("a", max_tokens=5), MODEL))["params"]["max_tokens"] == 5


def test_item_model_overrides_job_model() -> None:
    assert params(item("a", model="claude-sonnet-4-5"))["model"] == "claude-sonnet-4-5"


def test_system_messages_are_hoisted_and_joined() -> None:
    p = params(conv(("system", "Be brief."), ("user", "Q"), ("system", "Be kind.")))
    assert p["system"] == "Be brief.\n\nBe kind."
    assert p["messages"] == [{"role": "user", "content": "Q"}]


def test_system_with_cache_control_keeps_block_form() -> None:
    marked = [{"type": "text", "text": "Long context", "cache_control": {"type": "ephemeral"}}]
    p = params(conv(("system", marked), ("user", "Q")))
    assert p["system"] == marked


def test_consecutive_same_role_turns_are_merged() -> None:
    p = params(
        conv(
            ("user", "one"),
            ("user", [{"type": "text", "text": "two"}]),
            ("assistant", "a"),
            ("assistant", "b"),
            ("user", "three"),
        )
    )
    assert p["messages"] == [
        {
            "role": "user",
            "content": [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}],
        },
        {"role": "assistant", "content": "a\n\nb"},
        {"role": "user", "content": "three"},
    ]


def test_assistant_first_is_rejected() -> None:
    with pytest.raises(ItemValidationError) as exc:
        params(conv(("system", "s"), ("assistant", "hello"), ("user", "hi")))
    assert exc.value.field == "messages[1].role"
    assert "'c1'" in str(exc.value)


def test_trailing_assistant_is_kept_as_prefill() -> None:
    p = params(conv(("user", "Q"), ("assistant", "The answer is")))
    assert p["messages"][-1] == {"role": "assistant", "content": "The answer is"}


def test_sampling_and_stop() -> None:
    p = params(item("a", temperature=0.3, top_p=0.9, stop="END"))
    assert (p["temperature"], p["top_p"], p["stop_sequences"]) == (0.3, 0.9, ["END"])
    assert params(item("a", stop=["x", "y"]))["stop_sequences"] == ["x", "y"]


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"seed": 7}, "seed", "seed"),
        ({"temperature": 1.5}, "temperature", "0-1"),
        ({"stop": ["ok", " "]}, "stop", "whitespace"),
        ({"extra": {"stream": True}}, "extra.stream", "stream"),
        (
            {"response_format": {"type": "json_object"}, "extra": {"tools": []}},
            "response_format",
            "tool",
        ),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}},
            "response_format.json_schema.schema",
            "schema",
        ),
    ],
)
def test_rejections_name_item_and_field(fields: dict[str, Any], field: str, words: str) -> None:
    it = item("item-42", **fields)
    with pytest.raises(ItemValidationError) as exc:
        AnthropicProvider().validate_item(it, MODEL)
    assert exc.value.field == field
    assert "item-42" in str(exc.value)
    assert field in str(exc.value)
    assert words in str(exc.value)


def test_unsupported_content_part_is_rejected() -> None:
    part = {"type": "input_audio", "input_audio": {"data": "", "format": "wav"}}
    with pytest.raises(ItemValidationError) as exc:
        params(conv(("user", [part])))
    assert exc.value.field == "messages[0].content[0].type"


def test_image_parts_map_to_image_blocks() -> None:
    parts = [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
    ]
    blocks = params(conv(("user", parts)))["messages"][0]["content"]
    assert blocks[1] == {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
    }
    assert blocks[2] == {
        "type": "image",
        "source": {"type": "url", "url": "https://example.com/cat.jpg"},
    }


def test_unusable_image_url_is_rejected() -> None:
    parts = [{"type": "image_url", "image_url": {"url": "data:image/tiff;base64,AAAA"}}]
    with pytest.raises(ItemValidationError) as exc:
        params(conv(("user", parts)))
    assert exc.value.field == "messages[0].content[0].image_url"


def test_json_schema_uses_output_config() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}}
    fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": schema, "strict": True}}
    p = params(item("a", response_format=fmt, extra={"output_config": {"effort": "low"}}))
    assert p["output_config"] == {
        "effort": "low",
        "format": {"type": "json_schema", "schema": schema},
    }


def test_json_object_forces_the_json_tool() -> None:
    p = params(item("a", response_format={"type": "json_object"}))
    assert p["tool_choice"] == {"type": "tool", "name": codec.JSON_TOOL_NAME}
    assert p["tools"][0]["name"] == codec.JSON_TOOL_NAME
    assert p["tools"][0]["input_schema"] == {"type": "object"}


def test_text_response_format_is_a_no_op() -> None:
    assert "output_config" not in params(item("a", response_format={"type": "text"}))


def test_extra_is_merged_last() -> None:
    p = params(item("a", max_tokens=10, extra={"max_tokens": 20, "metadata": {"user_id": "u"}}))
    assert p["max_tokens"] == 20
    assert p["metadata"] == {"user_id": "u"}


def test_encode_needs_a_custom_id() -> None:
    with pytest.raises(ItemValidationError) as exc:
        codec.encode_request(BatchItem(messages=[{"role": "user", "content": "x"}]), MODEL)
    assert exc.value.field == "custom_id"


def test_encoded_params_pass_the_sandbox_checks() -> None:
    fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}
    for it in (
        item("a", temperature=0.2, stop="x"),
        item("b", response_format={"type": "json_object"}),
        item("c", response_format=fmt),
        conv(("system", "s"), ("user", "q"), ("assistant", "a"), ("user", "q2")),
    ):
        assert codec.check_params(params(it)) is None


# -- custom ids -------------------------------------------------------------------------------
@pytest.mark.parametrize("cid", ["a", "item-0001", "A_b-C", "x" * 64])
def test_fitting_ids_pass_unchanged(cid: str) -> None:
    assert codec.wire_custom_id(cid) == cid


@pytest.mark.parametrize(
    "cid", ["has space", "x" * 65, "x" * 100, "naïve", "日本語", "a/b", "pb-abc", "pb-" + "0" * 48]
)
def test_other_ids_are_mapped(cid: str) -> None:
    wire = codec.wire_custom_id(cid)
    assert wire != cid
    assert wire.startswith(codec.MAPPED_PREFIX)
    assert codec.CUSTOM_ID_RE.match(wire)
    assert wire == codec.wire_custom_id(cid)  # pure


def test_mapped_ids_are_distinct() -> None:
    ids = [f"item {i}" for i in range(2000)] + ["pb-x", "pb-y", "x" * 65, "x" * 66]
    wires = {codec.wire_custom_id(c) for c in ids}
    assert len(wires) == len(ids)


def test_provider_uses_the_codec_mapping() -> None:
    assert AnthropicProvider().wire_custom_id("a b") == codec.wire_custom_id("a b")
    assert AnthropicProvider.limits.custom_id_pattern == codec.CUSTOM_ID_RE.pattern


# -- decoding ---------------------------------------------------------------------------------
def succeeded(
    usage: dict[str, Any], content: list[dict[str, Any]] | None = None, **msg: Any
) -> dict[str, Any]:
    message = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-haiku-4-5-20251001",
        "content": content
        or [{"type": "text", "text": "Hello"}, {"type": "text", "text": " there"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": usage,
        **msg,
    }
    return {"custom_id": "a", "result": {"type": "succeeded", "message": message}}


def test_decode_succeeded() -> None:
    r = codec.decode_result(
        json.dumps(succeeded({"input_tokens": 12, "output_tokens": 3})), batch_id="b1"
    )
    assert r.ok and r.text == "Hello there" and r.finish_reason == "stop"
    assert r.model == "claude-haiku-4-5-20251001"
    assert (r.provider, r.batch_id, r.custom_id) == ("anthropic", "b1", "a")
    assert r.usage.input_tokens == 12 and r.usage.output_tokens == 3
    assert r.response is not None and r.response["id"] == "msg_1"


def test_usage_with_cache_breakdown_has_no_double_counting() -> None:
    usage = {
        "input_tokens": 50,  # Anthropic: uncached input only
        "cache_read_input_tokens": 1000,
        "cache_creation_input_tokens": 300,
        "cache_creation": {"ephemeral_5m_input_tokens": 100, "ephemeral_1h_input_tokens": 200},
        "output_tokens": 40,
        "output_tokens_details": {"thinking_tokens": 10},
        "service_tier": "batch",
    }
    u = codec.decode_result(succeeded(usage)).usage
    assert (
        u.input_tokens,
        u.cached_input_tokens,
        u.cache_write_tokens,
        u.cache_write_1h_tokens,
    ) == (
        50,
        1000,
        100,
        200,
    )
    assert u.output_tokens == 40 and u.reasoning_tokens == 10
    assert u.total_input_tokens == 50 + 1000 + 300


def test_usage_without_breakdown_counts_writes_as_5m() -> None:
    usage = {
        "input_tokens": 5,
        "cache_creation_input_tokens": 70,
        "cache_read_input_tokens": None,
        "output_tokens": 1,
    }
    u = codec.decode_usage(usage)
    assert (
        u.input_tokens,
        u.cached_input_tokens,
        u.cache_write_tokens,
        u.cache_write_1h_tokens,
    ) == (5, 0, 70, 0)


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("refusal", "content_filter"),
    ],
)
def test_finish_reasons(stop_reason: str, finish: str) -> None:
    r = codec.decode_result(
        succeeded({"input_tokens": 1, "output_tokens": 1}, stop_reason=stop_reason)
    )
    assert r.finish_reason == finish


def test_decode_forced_json_tool() -> None:
    content = [
        {"type": "tool_use", "id": "t", "name": codec.JSON_TOOL_NAME, "input": {"k": [1, 2]}}
    ]
    r = codec.decode_result(
        succeeded({"input_tokens": 1, "output_tokens": 1}, content, stop_reason="tool_use")
    )
    assert json.loads(r.text or "") == {"k": [1, 2]}
    assert r.finish_reason == "stop"


@pytest.mark.parametrize(
    ("error_type", "retryable", "status"),
    [
        ("invalid_request_error", False, 400),
        ("api_error", True, 500),
        ("overloaded_error", True, 529),
        ("rate_limit_error", True, 429),
    ],
)
def test_decode_errored(error_type: str, retryable: bool, status: int) -> None:
    line = {
        "custom_id": "b",
        "result": {"type": "errored", "error": codec.error_body(error_type, "boom", None)},
    }
    r = codec.decode_result(line)
    assert r.status == "errored" and r.error is not None
    assert (r.error.code, r.error.message, r.error.retryable, r.error.status_code) == (
        error_type,
        "boom",
        retryable,
        status,
    )


@pytest.mark.parametrize("kind", ["canceled", "expired"])
def test_decode_canceled_and_expired(kind: str) -> None:
    r = codec.decode_result({"custom_id": "c", "result": {"type": kind}})
    # Anthropic's wire word is "canceled"; polybatch spells every state "cancelled"
    assert r.status == {"canceled": "cancelled"}.get(kind, kind)
    assert r.error is not None and r.error.retryable
    assert r.error.code == kind


@pytest.mark.parametrize(
    ("status", "cancel", "expired", "state"),
    [
        ("in_progress", False, 0, "in_progress"),
        ("canceling", True, 0, "cancelling"),
        ("ended", True, 3, "cancelled"),
        ("ended", False, 3, "expired"),
        ("ended", False, 0, "completed"),
    ],
)
def test_batch_state(status: str, cancel: bool, expired: int, state: str) -> None:
    assert codec.batch_state(status, cancel_initiated=cancel, expired=expired) == state
    # and back: what a batch in that state reports
    assert codec.processing_status(state, cancel_requested=cancel) == status
