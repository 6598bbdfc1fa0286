"""The sandbox refuses what OpenAI refuses (issue #16 item 5), over HTTP with the real SDK: an
unknown model, chat lines to an embeddings model and the reverse, a window OpenAI does not take;
and polybatch warns about a typo'd model before submitting."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import openai
import pytest
from openai_testlib import KEY, MODEL, ServerFactory

from polybatch import submit, wire
from polybatch.sandbox import SandboxServer

CHAT = "/v1/chat/completions"
EMBEDDINGS = "/v1/embeddings"


def client(server: SandboxServer) -> openai.OpenAI:
    return openai.OpenAI(api_key=KEY, base_url=f"{server.url}/openai/v1", max_retries=0)


def line(custom_id: str, url: str, body: dict[str, Any]) -> bytes:
    return wire.dumps({"custom_id": custom_id, "method": "POST", "url": url, "body": body})


def chat(model: str) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}]}


def run_batch(server: SandboxServer, tmp_path: Path, endpoint: str, lines: list[bytes]) -> Any:
    """Upload ``lines``, create a batch on ``endpoint``, and return (batch, output, errors)."""
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    c = client(server)
    uploaded = c.files.create(file=path.open("rb"), purpose="batch")
    batch = c.batches.create(
        input_file_id=uploaded.id,
        endpoint=endpoint,  # type: ignore[arg-type]
        completion_window="24h",
    )
    batch = c.batches.retrieve(batch.id)
    assert batch.status == "completed"

    def read(file_id: str | None) -> dict[str, Any]:
        if not file_id:
            return {}
        rows = [json.loads(x) for x in c.files.content(file_id).text.splitlines()]
        return {r["custom_id"]: r for r in rows}

    return batch, read(batch.output_file_id), read(batch.error_file_id)


def test_an_unknown_model_ends_in_a_model_not_found_line(
    server: SandboxServer, tmp_path: Path
) -> None:
    batch, ok, errors = run_batch(
        server,
        tmp_path,
        CHAT,
        [line("good", CHAT, chat(MODEL)), line("typo", CHAT, chat("gpt-4o-mni"))],
    )
    assert set(ok) == {"good"}
    response = errors["typo"]["response"]
    assert response["status_code"] == 404
    assert response["body"]["error"]["code"] == "model_not_found"
    assert "gpt-4o-mni" in response["body"]["error"]["message"]
    assert (batch.request_counts.completed, batch.request_counts.failed) == (1, 1)


def test_dated_snapshots_and_declared_models_are_known(
    make_server: ServerFactory, tmp_path: Path
) -> None:
    server = make_server(models={"openai": ["ft:gpt-4o-mini:acme::abc"]})
    _, ok, errors = run_batch(
        server,
        tmp_path,
        CHAT,
        [
            line("dated", CHAT, chat("gpt-4o-mini-2024-07-18")),
            line("declared", CHAT, chat("ft:gpt-4o-mini:acme::abc")),
        ],
    )
    assert (set(ok), errors) == ({"dated", "declared"}, {})


def test_strict_models_off_lets_any_name_through(
    make_server: ServerFactory, tmp_path: Path
) -> None:
    server = make_server(strict_models=False)
    _, ok, errors = run_batch(server, tmp_path, CHAT, [line("x", CHAT, chat("made-up"))])
    assert (set(ok), errors) == ({"x"}, {})


def test_chat_lines_to_an_embeddings_model_and_the_reverse_fail_per_line(
    server: SandboxServer, tmp_path: Path
) -> None:
    _, ok, errors = run_batch(
        server, tmp_path, CHAT, [line("chat-on-embed", CHAT, chat("text-embedding-3-small"))]
    )
    assert ok == {}
    body = errors["chat-on-embed"]["response"]["body"]["error"]
    assert "not a chat model" in body["message"]
    embed = {"model": MODEL, "input": "some text"}
    _, ok, errors = run_batch(
        server, tmp_path, EMBEDDINGS, [line("embed-on-chat", EMBEDDINGS, embed)]
    )
    assert ok == {}
    assert errors["embed-on-chat"]["response"]["status_code"] == 400
    assert (
        "does not support embeddings"
        in errors["embed-on-chat"]["response"]["body"]["error"]["message"]
    )


@pytest.mark.parametrize("window", ["48h", "banana"])
def test_a_window_openai_does_not_take_is_refused_at_create(
    server: SandboxServer, tmp_path: Path, window: str
) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(line("a", CHAT, chat(MODEL)) + b"\n")
    c = client(server)
    uploaded = c.files.create(file=path.open("rb"), purpose="batch")
    with pytest.raises(openai.BadRequestError) as caught:
        c.batches.create(
            input_file_id=uploaded.id,
            endpoint=CHAT,
            completion_window=window,  # type: ignore[arg-type]
        )
    assert caught.value.status_code == 400
    assert caught.value.body["code"] == "invalid_value"  # type: ignore[index]
    assert caught.value.body["param"] == "completion_window"  # type: ignore[index]
    assert server.engine.batches == {}


def test_a_typo_is_warned_about_before_submitting_and_every_request_fails(
    server: SandboxServer, polybatch_home: Path
) -> None:
    items = [{"custom_id": f"q{i}", "prompt": f"question {i}"} for i in range(3)]
    with pytest.warns(UserWarning) as caught:
        job = submit(items, "openai:gpt-4o-mni", sandbox=server)
    assert [str(w.message) for w in caught] == [
        "model 'gpt-4o-mni' is not in the price registry nor in openai's model list "
        "(did you mean gpt-4o-mini?)"
    ]
    job.wait(poll_min=0.02, timeout=60)
    results = list(job.results())
    assert [(r.status, r.error and r.error.code) for r in results] == [
        ("errored", "model_not_found")
    ] * 3
