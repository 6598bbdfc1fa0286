"""OpenRouter specifics: the codec both sides share, the caps as Limits the planner splits by,
routing and callback settings reaching the create, delete, a lost create answer, and the CLI."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

import polybatch
from polybatch.cli import cli
from polybatch.errors import ProviderError
from polybatch.items import BatchItem
from polybatch.sandbox import SandboxServer
from polybatch.testing import SANDBOX_KEY
from polybatch.wire import WireError
from polybatch_openrouter import codec
from polybatch_openrouter import sandbox as or_sandbox
from polybatch_openrouter.provider import OpenRouterProvider

MODEL = "openai/gpt-4o-mini"
EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "requests.jsonl"
ServerFactory = Callable[..., SandboxServer]


def items(n: int, prefix: str = "q") -> list[BatchItem]:
    return [
        BatchItem(custom_id=f"{prefix}-{i}", messages=[{"role": "user", "content": f"Q {i}?"}])
        for i in range(n)
    ]


def connect(server: SandboxServer, **settings: Any) -> OpenRouterProvider:
    kwargs = OpenRouterProvider.sandbox_settings(server.url, SANDBOX_KEY)
    return OpenRouterProvider(**kwargs, settings=settings)


def submit(p: OpenRouterProvider, batch_items: list[BatchItem], tmp_path: Path) -> str:
    path = tmp_path / f"lines-{len(list(tmp_path.iterdir()))}.jsonl"
    path.write_bytes(b"".join(p.encode(i, MODEL) + b"\n" for i in batch_items))
    return p.submit(path, model=MODEL, metadata={}).batch_id


# -- the codec -------------------------------------------------------------------------------
def test_a_request_is_custom_id_and_body_without_the_model() -> None:
    line = json.loads(OpenRouterProvider().encode(items(1)[0], MODEL))
    assert line == {"custom_id": "q-0", "body": {"messages": [{"role": "user", "content": "Q 0?"}]}}


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "other/model", "messages": [{"role": "user", "content": "x"}]}, "model"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "user", "content": [{"type": "input_audio"}]}]}, "messages[0]"),
        ({"messages": [{"role": "user", "content": "x"}], "max_tokens": 0}, "max_tokens"),
    ],
)
def test_check_body_refuses_what_the_sandbox_refuses(body: dict[str, Any], param: str) -> None:
    with pytest.raises(WireError) as caught:
        codec.check_body(body, MODEL)
    assert caught.value.param == param


def test_image_parts_pass() -> None:
    parts = [{"type": "text", "text": "what is it?"}, {"type": "image_url", "image_url": {}}]
    chat = codec.check_body({"messages": [{"role": "user", "content": parts}]}, MODEL)
    assert chat.transcript() == [("user", "what is it?")]


def test_routing_settings() -> None:
    assert codec.routing({}) is None
    assert codec.routing({"only": "deepinfra"}) == {"only": ["deepinfra"]}
    assert codec.routing({"only": ["a", "b"], "allow_fallbacks": False}) == {
        "only": ["a", "b"],
        "allow_fallbacks": False,
    }
    with pytest.raises(ValueError):
        codec.routing({"only": []})
    with pytest.raises(ValueError):
        OpenRouterProvider(api_key="k", settings={"only": [1]}).preflight()


def test_result_errors_read_the_canonical_type() -> None:
    def decode(row: dict[str, Any]) -> tuple[str, str, bool]:
        r = codec.decode_result(row, provider="openrouter", batch_id="b")
        assert r.error is not None
        return r.status, r.error.code, r.error.retryable

    assert decode(codec.error_result("1", "a", "server_error", "m", "server")) == (
        "errored",
        "server",
        True,
    )
    assert decode(
        codec.error_result("1", "a", "invalid_request_error", "m", "invalid_request")
    ) == (
        "errored",
        "invalid_request",
        False,
    )
    assert decode(codec.error_result("1", "a", "batch_cancelled", "m")) == (
        "cancelled",
        "batch_cancelled",
        True,
    )
    assert decode(codec.error_result("1", "a", "batch_expired", "m")) == (
        "expired",
        "batch_expired",
        True,
    )


# -- the caps --------------------------------------------------------------------------------
def test_the_caps_are_limits_and_the_planner_splits_by_model(
    make_sandbox: ServerFactory, polybatch_home: Path
) -> None:
    limits = OpenRouterProvider.limits
    assert limits.max_requests == 5000 and limits.max_bytes <= 200_000_000
    server = make_sandbox()
    batch_items = items(4)
    batch_items[2] = batch_items[2].model_copy(update={"model": "anthropic/claude-haiku-4.5"})
    job = polybatch.submit(batch_items, f"openrouter:{MODEL}", sandbox=server)
    job.wait(poll_min=0.01, poll_max=0.05, timeout=60)
    models = sorted(b.extra["model"] for b in server.engine.batches.values())
    # one model per batch: the item with its own model starts a chunk, and the next one another
    assert models == ["anthropic/claude-haiku-4.5", MODEL, MODEL]
    assert [r.model for r in job.results()] == [MODEL, MODEL, "anthropic/claude-haiku-4.5", MODEL]


def test_routing_and_callback_reach_the_create(make_sandbox: ServerFactory, tmp_path: Path) -> None:
    server = make_sandbox()
    settings = {
        "only": ["deepinfra"],
        "allow_fallbacks": False,
        "callback_url": "https://h.example/x",
    }
    batch_id = submit(connect(server, **settings), items(2), tmp_path)
    assert server.engine.batches[batch_id].extra["settings"] == {
        "callback_url": "https://h.example/x",
        "provider": {"only": ["deepinfra"], "allow_fallbacks": False},
    }
    plain = submit(connect(server), items(2), tmp_path)
    assert server.engine.batches[plain].extra["settings"] == {}


def test_delete_only_ends_an_ended_batch(make_sandbox: ServerFactory, tmp_path: Path) -> None:
    server = make_sandbox(rate=0.01)
    p = connect(server, delete_after_collect=True)
    submitted = p.submit(
        _lines(p, tmp_path), model=MODEL, metadata={}
    )  # running: a delete is refused with 409
    with pytest.raises(ProviderError) as caught:
        p.cleanup(submitted)
    assert getattr(caught.value, "status_code", None) == 409
    server.engine.clock.advance(1000)
    assert p.poll(submitted.batch_id).state == "completed"
    p.cleanup(submitted)
    with pytest.raises(ProviderError):
        p.poll(submitted.batch_id)
    p.cleanup(submitted)  # already gone: fine
    connect(server).cleanup(submitted)  # without the setting: nothing is deleted


def _lines(p: OpenRouterProvider, tmp_path: Path) -> Path:
    path = tmp_path / "lines.jsonl"
    path.write_bytes(b"".join(p.encode(i, MODEL) + b"\n" for i in items(3)))
    return path


# -- a lost create answer --------------------------------------------------------------------
def test_a_lost_create_answer_is_not_retried_by_the_sdk_and_its_batch_is_adopted(
    make_sandbox: ServerFactory, polybatch_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = or_sandbox.OpenRouterApi.create_batch
    creates: list[int] = []

    async def create_then_502(self: Any, request: Request) -> Response:
        response: Response = await real(self, request)
        creates.append(response.status_code)
        return (
            JSONResponse({"error": {"code": 502, "message": "bad gateway"}}, 502)
            if len(creates) == 1
            else response
        )

    monkeypatch.setattr(or_sandbox.OpenRouterApi, "create_batch", create_then_502)
    server = make_sandbox()
    batch_items = items(3)
    job = polybatch.submit(batch_items, f"openrouter:{MODEL}", sandbox=server)
    job.wait(poll_min=0.01, poll_max=0.05, timeout=60)
    # one create per attempt (no SDK retry); batches carry no metadata, so the batch made
    # before its answer was lost is adopted from the listing (its model, count and time) and
    # not created again (polybatch.jobs.adopt)
    assert creates == [202] and len(server.engine.batches) == 1
    assert {c.batch_id for c in job.chunks()} == set(server.engine.batches)
    assert [r.custom_id for r in job.results()] == [i.custom_id for i in batch_items]
    assert all(r.ok for r in job.results())


# -- the CLI ---------------------------------------------------------------------------------
def test_cli_run_on_the_sandbox_prints_results_and_costs(polybatch_home: Path) -> None:
    out = polybatch_home.parent / "results.jsonl"
    args = ["run", str(EXAMPLES), "-m", f"openrouter:{MODEL}", "--sandbox", "-o", str(out)]
    result = CliRunner().invoke(cli, [*args, "--no-progress"])
    assert result.exit_code == 0, result.output
    n = len(EXAMPLES.read_text().splitlines())
    assert f"{n} results ({n} succeeded)" in result.stdout
    assert "| openrouter " in result.stdout and "Batch $" in result.stdout
    assert len(out.read_text().splitlines()) == n
