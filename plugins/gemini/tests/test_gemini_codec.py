"""The Gemini wire codec: encoding items, decoding responses, usage and errors."""

from __future__ import annotations

import json
from typing import Any

import pytest
from gemini_support import item

from polybatch.errors import ItemValidationError
from polybatch.items import BatchItem
from polybatch_gemini import codec


def test_encode_roles_system_and_generation_config() -> None:
    it = BatchItem.model_validate(
        {
            "custom_id": "a/b c:ü",  # free-form keys pass unchanged
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "one"},
                {"role": "user", "content": [{"type": "text", "text": "two"}]},
                {"role": "assistant", "content": "ok"},
                {"role": "user", "content": "three"},
            ],
            "max_tokens": 10,
            "temperature": 1.5,
            "top_p": 0.9,
            "seed": 7,
            "stop": "END",
        }
    )
    line = codec.encode_line(it)
    assert line["key"] == "a/b c:ü"
    req = line["request"]
    assert req["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert [c["role"] for c in req["contents"]] == ["user", "model", "user"]
    assert req["contents"][0]["parts"] == [{"text": "one"}, {"text": "two"}]
    assert req["generationConfig"] == {
        "maxOutputTokens": 10,
        "temperature": 1.5,
        "topP": 0.9,
        "seed": 7,
        "stopSequences": ["END"],
    }


def test_json_modes_images_and_extra() -> None:
    schema = {"type": "object", "properties": {"x": {"type": "integer"}}}
    req = codec.build_request(
        item(
            "s",
            response_format={"type": "json_schema", "json_schema": {"name": "n", "schema": schema}},
            extra={"generationConfig": {"topK": 3}, "safetySettings": []},
        )
    )
    assert req["generationConfig"] == {
        "responseMimeType": "application/json",
        "responseJsonSchema": schema,
        "topK": 3,
    }
    assert req["safetySettings"] == []
    obj = codec.build_request(item("o", response_format={"type": "json_object"}))
    assert obj["generationConfig"] == {"responseMimeType": "application/json"}
    img = BatchItem.model_validate(
        {
            "custom_id": "img",
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "what?"},
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                    ],
                }
            ],
        }
    )
    parts = codec.build_request(img)["contents"][0]["parts"]
    assert parts[1] == {"inlineData": {"mimeType": "image/png", "data": "AAAA"}}


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"stop": ["a", "b", "c", "d", "e", "f"]}, "stop"),
        ({"extra": {"model": "x"}}, "extra.model"),
        ({"response_format": {"type": "json_schema", "json_schema": {}}}, "response_format"),
    ],
)
def test_rejections_name_the_field(fields: dict[str, Any], field: str) -> None:
    with pytest.raises(ItemValidationError) as err:
        codec.build_request(item("x", **fields))
    assert (err.value.field or "").startswith(field)


def test_remote_images_are_rejected() -> None:
    it = BatchItem.model_validate(
        {
            "custom_id": "r",
            "messages": [
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}],
                }
            ],
        }
    )
    with pytest.raises(ItemValidationError, match="data: URLs"):
        codec.build_request(it)


def test_to_inlined_round_trips_through_sdk_types() -> None:
    line = codec.encode_line(
        BatchItem.model_validate(
            {
                "custom_id": "k",
                "messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}],
                "max_tokens": 5,
            }
        )
    )
    inlined = codec.to_inlined(line)
    assert inlined.metadata == {"key": "k"}
    assert inlined.config.max_output_tokens == 5
    assert inlined.config.system_instruction.parts[0].text == "S"


def test_usage_cached_thoughts_and_tool_prompt() -> None:
    usage = codec.decode_usage(
        {
            "promptTokenCount": 100,
            "cachedContentTokenCount": 60,
            "toolUsePromptTokenCount": 5,
            "candidatesTokenCount": 20,
            "thoughtsTokenCount": 30,
            "totalTokenCount": 155,
        }
    )
    assert (usage.input_tokens, usage.cached_input_tokens) == (45, 60)
    assert (usage.output_tokens, usage.reasoning_tokens) == (50, 30)
    assert usage.total_tokens == 155
    assert codec.decode_usage(None).total_tokens == 0


def test_decode_success_finish_reasons_and_thoughts() -> None:
    line = {
        "key": "a",
        "response": {
            "candidates": [
                {
                    "content": {
                        "role": "model",
                        "parts": [{"text": "thinking...", "thought": True}, {"text": "Hi"}],
                    },
                    "finishReason": "MAX_TOKENS",
                }
            ],
            "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 1},
            "modelVersion": "gemini-2.5-flash-001",
        },
    }
    r = codec.decode_result(json.dumps(line), batch_id="batches/b", model="fallback")
    assert r.ok and r.text == "Hi" and r.finish_reason == "length"
    assert r.model == "gemini-2.5-flash-001" and r.batch_id == "batches/b"
    assert r.provider == "gemini"
    line["response"]["candidates"][0]["finishReason"] = "SAFETY"  # type: ignore[index]
    del line["response"]["modelVersion"]  # type: ignore[attr-defined]
    r = codec.decode_result(line, model="fallback")
    assert r.finish_reason == "content_filter" and r.model == "fallback"
    blocked = codec.decode_result(
        {"key": "b", "response": {"promptFeedback": {"blockReason": "X"}}}
    )
    assert blocked.ok and blocked.text == "" and blocked.finish_reason == "content_filter"


@pytest.mark.parametrize(
    ("error", "status", "code", "http", "retryable"),
    [
        (
            {"code": 3, "message": "bad", "status": "INVALID_ARGUMENT"},
            "errored",
            "INVALID_ARGUMENT",
            400,
            False,
        ),
        ({"code": 13, "message": "oops"}, "errored", "INTERNAL", 500, True),
        ({"code": 14}, "errored", "UNAVAILABLE", 503, True),
        ({"code": 8}, "errored", "RESOURCE_EXHAUSTED", 429, True),
        ({"code": 4}, "errored", "DEADLINE_EXCEEDED", 504, True),
        ({"code": 1}, "cancelled", "CANCELLED", 499, True),
        ({"code": 429, "message": "http-style"}, "errored", "RESOURCE_EXHAUSTED", 429, True),
    ],
)
def test_decode_errors(
    error: dict[str, object], status: str, code: str, http: int, retryable: bool
) -> None:
    r = codec.decode_result({"key": "e", "error": error})
    assert r.status == status and r.error is not None
    assert (r.error.code, r.error.status_code, r.error.retryable) == (code, http, retryable)


def test_display_name_round_trip() -> None:
    meta = {"polybatch_job": 'j "1" x', "polybatch_chunk": "3"}
    name = codec.display_name(meta)
    assert codec.parse_display_name(name) == meta
    assert codec.parse_display_name("someone else's job") is None
    assert codec.parse_display_name(None) is None


def test_check_request_accepts_snake_case_and_rejects_unknowns() -> None:
    ok = {"contents": [{"role": "user", "parts": [{"text": "x"}]}]}
    assert codec.check_request(ok) is None
    assert codec.check_request({**ok, "generationConfig": {"thinking_config": {}}}) is None
    assert "Unknown name" in (codec.check_request({**ok, "bogus": 1}) or "")
    assert "temperature" in (
        codec.check_request({**ok, "generationConfig": {"temperature": 3}}) or ""
    )
    assert "contents" in (codec.check_request({"contents": []}) or "")


def test_state_tables_both_ways() -> None:
    assert codec.batch_state("BATCH_STATE_RUNNING") == "in_progress"
    assert codec.batch_state(None) == "validating" and codec.batch_state("NEW") == "in_progress"
    for state, reported in codec.REPORTED_STATES.items():
        if state not in ("finalizing", "cancelling"):  # Gemini has no such phase to report
            assert codec.batch_state(reported) == state
