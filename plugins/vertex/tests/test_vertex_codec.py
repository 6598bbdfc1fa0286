"""The Vertex wire format: Gemini's request codec reused, keys joined back, statuses decoded."""

from __future__ import annotations

import json

import pytest
from vertex_support import MODEL, item

from polybatch_gemini import codec as gemini_codec
from polybatch_vertex import codec
from polybatch_vertex.provider import VertexProvider

BAD_REQUEST = (
    'Bad Request: {"error": {"code": 400, "message": "Please use a valid role: user, model.", '
    '"status": "INVALID_ARGUMENT"}}'
)


def test_input_lines_are_geminis_with_the_key() -> None:
    one = item("q-1", "hello", max_tokens=20, temperature=0.5)
    line = json.loads(VertexProvider(api_key="t").encode(one, MODEL))
    assert line == gemini_codec.encode_line(one)
    assert line["key"] == "q-1"
    assert line["request"]["contents"] == [{"role": "user", "parts": [{"text": "hello"}]}]
    assert line["request"]["generationConfig"] == {"maxOutputTokens": 20, "temperature": 0.5}


def test_awkward_keys_are_sent_unchanged() -> None:
    provider = VertexProvider(api_key="t")
    for key in ("with space", "slash/and:colon", "unicode-é-中文", "line\nbreak"):
        assert provider.wire_custom_id(key) == key
        assert json.loads(provider.encode(item(key), MODEL))["key"] == key


def test_rows_join_on_their_key_whatever_the_order() -> None:
    response = {
        "candidates": [{"content": {"parts": [{"text": "hi"}], "role": "model"}}],
        "usageMetadata": {"promptTokenCount": 7, "candidatesTokenCount": 3},
        "modelVersion": "gemini-2.5-flash-001",
    }
    rows = [
        {"key": f"k{i}", "request": {"contents": []}, "response": response, "status": ""}
        for i in (3, 1, 2)
    ]
    results = [codec.decode_row(r, batch_id="b", model=MODEL) for r in rows]
    assert [r.custom_id for r in results] == ["k3", "k1", "k2"]
    first = results[0]
    assert first.ok and first.text == "hi" and first.provider == "vertex"
    assert first.usage.input_tokens == 7 and first.usage.output_tokens == 3
    assert first.model == "gemini-2.5-flash-001"
    assert codec.row_key({"request": {}}) is None


@pytest.mark.parametrize(
    ("status", "code", "retryable"),
    [
        (BAD_REQUEST, "INVALID_ARGUMENT", False),
        ({"code": 13, "message": "boom"}, "INTERNAL", True),
        ({"error": {"code": 429, "message": "slow down"}}, "RESOURCE_EXHAUSTED", True),
        ("Internal Server Error: no envelope here", "INTERNAL", True),
        ("Something odd", "INTERNAL", True),
    ],
)
def test_error_statuses(status: object, code: str, retryable: bool) -> None:
    row = {"key": "k", "request": {}, "response": None, "status": status}
    result = codec.decode_row(row, batch_id="b")
    assert result.status == "errored" and result.error is not None
    assert result.error.code == code
    assert result.error.retryable is retryable


def test_a_bad_request_keeps_its_message() -> None:
    result = codec.decode_row({"key": "k", "status": BAD_REQUEST}, batch_id="b")
    assert (
        result.error is not None and result.error.message == "Please use a valid role: user, model."
    )
    assert result.error.status_code == 400


def test_empty_status_is_success_and_missing_response_an_error() -> None:
    assert codec.parse_status("") is None and codec.parse_status(None) is None
    result = codec.decode_row({"key": "k", "status": ""}, batch_id="b")
    assert result.status == "errored" and result.error is not None
    assert result.error.code == "no_response"


def test_sandbox_rows_decode_back() -> None:
    error = {"code": 13, "message": "Internal error", "status": "INTERNAL"}
    row = codec.output_row("k", {"contents": []}, {"error": error})
    assert row["status"].startswith("Internal Server Error: {")
    decoded = codec.decode_row(row)
    assert (
        decoded.error is not None and decoded.error.code == "INTERNAL" and decoded.error.retryable
    )
    ok = codec.output_row("k", {"contents": []}, {"response": {"candidates": []}})
    assert ok["status"] == "" and codec.parse_status(ok["status"]) is None


@pytest.mark.parametrize(
    ("state", "status", "code"),
    [
        ("cancelled", "cancelled", "CANCELLED"),
        ("expired", "expired", "DEADLINE_EXCEEDED"),
        ("failed", "errored", "batch_failed"),
    ],
)
def test_leftover_rows(state: str, status: str, code: str) -> None:
    result = codec.leftover_result("k", state, batch_id="b", message="quota")
    assert result.status == status and result.error is not None and result.error.code == code
    assert result.provider == "vertex" and result.batch_id == "b"


def test_states_are_geminis() -> None:
    assert codec.batch_state("JOB_STATE_CANCELLING") == "cancelling"
    assert codec.batch_state("JOB_STATE_PARTIALLY_SUCCEEDED") == "completed"
    for neutral, reported in codec.REPORTED_STATES.items():
        assert codec.batch_state(reported) in (neutral, "in_progress")


def test_gs_uris() -> None:
    assert codec.split_gs("gs://b/some/prefix/") == ("b", "some/prefix")
    assert codec.split_gs("gs://b") == ("b", "")
    assert codec.gs_uri("b", "x/y.jsonl") == "gs://b/x/y.jsonl"
    with pytest.raises(ValueError):
        codec.split_gs("s3://b/x")


def test_input_entries() -> None:
    data = b'{"key": "a", "request": {"contents": []}}\n\n{"request": {"contents": []}}\n'
    entries, problem = codec.input_entries(data)
    assert problem is None
    assert [e["key"] for e in entries] == ["a", "2"]
    _, problem = codec.input_entries(b'{"key": "a", "request": {}}\nnot json\n')
    assert problem is not None and problem.startswith("line 2:")
    _, problem = codec.input_entries(b'{"key": "a"}\n')
    assert problem == "line 1: a line needs a 'request' object"
