"""xAI specifics: the codec both sides share, paging of adds and results, a lost answer to the
create or to an add, results read before the batch ends, and the CLI on the sandbox."""

from __future__ import annotations

import asyncio
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
from polybatch.items import BatchItem
from polybatch.sandbox import SandboxServer
from polybatch.testing import SANDBOX_KEY
from polybatch.wire import WireError
from polybatch_xai import codec
from polybatch_xai import provider as xai_provider
from polybatch_xai import sandbox as xai_sandbox
from polybatch_xai.provider import CallPacer, XAIProvider, pages

MODEL = "grok-4-1-fast-non-reasoning"
EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "requests.jsonl"
ServerFactory = Callable[..., SandboxServer]


def items(n: int, prefix: str = "q") -> list[BatchItem]:
    return [
        BatchItem(
            custom_id=f"{prefix}-{i}", messages=[{"role": "user", "content": f"Question {i}?"}]
        )
        for i in range(n)
    ]


def connect(server: SandboxServer, **settings: Any) -> XAIProvider:
    return XAIProvider(**XAIProvider.sandbox_settings(server.url, SANDBOX_KEY), settings=settings)


def submit(p: XAIProvider, batch_items: list[BatchItem], tmp_path: Path, **meta: str) -> str:
    path = tmp_path / f"lines-{len(list(tmp_path.iterdir()))}.jsonl"
    path.write_bytes(b"".join(p.encode(i, MODEL) + b"\n" for i in batch_items))
    return p.submit(path, model=MODEL, metadata=meta).batch_id


def seen(server: SandboxServer, method: str, suffix: str) -> int:
    return sum(m == method and path.endswith(suffix) for m, path in server.engine.requests_seen)


# -- the codec -------------------------------------------------------------------------------
def test_a_request_line_is_the_rest_shape() -> None:
    line = json.loads(XAIProvider().encode(items(1)[0], MODEL))
    assert line == {
        "batch_request_id": "q-0",
        "batch_request": {
            "chat_get_completion": {
                "model": MODEL,
                "messages": [{"role": "user", "content": "Question 0?"}],
            }
        },
    }


@pytest.mark.parametrize(
    "metadata", [{}, {"polybatch_job": "pb-1", "polybatch_chunk": "3"}, {"a;b": "c=d", "é": "/"}]
)
def test_batch_names_carry_metadata_and_size(metadata: dict[str, str]) -> None:
    name = codec.batch_name(metadata, 42)
    assert codec.parse_name(name) == (metadata, 42)


@pytest.mark.parametrize("name", ["", "my batch", "polybatch", "polybatch;x=1", "polybatch;n=x"])
def test_other_names_are_not_ours(name: str) -> None:
    assert codec.parse_name(name) is None


@pytest.mark.parametrize(
    ("state", "cancel_time", "expected"),
    [
        ({"num_requests": 0}, None, "validating"),
        ({"num_requests": 3, "num_pending": 2, "num_success": 1}, None, "in_progress"),
        ({"num_requests": 3, "num_pending": 2}, "2026-12-02T00:00:00Z", "cancelling"),
        ({"num_requests": 3, "num_success": 2, "num_error": 1}, None, "completed"),
        ({"num_requests": 3, "num_success": 1, "num_cancelled": 2}, "2026-12-02T0", "cancelled"),
        ({"num_requests": 3, "num_success": 1, "num_cancelled": 2}, None, "expired"),
    ],
)
def test_the_state_comes_from_the_counters(
    state: dict[str, int], cancel_time: str | None, expected: str
) -> None:
    assert codec.batch_state({"state": state, "cancel_time": cancel_time}) == expected


def test_results_decode_replies_and_grpc_status_codes() -> None:
    body = codec.completion(MODEL, "blue", "stop", (7, 1))
    ok = codec.decode_result(codec.success_row("a", body), provider="xai", batch_id="b")
    assert ok.ok and ok.text == "blue" and ok.usage.input_tokens == 7 and ok.model == MODEL
    for code, status, retryable in [
        ("INTERNAL", "errored", True),
        ("INVALID_ARGUMENT", "errored", False),
        ("CANCELLED", "cancelled", True),
        ("DEADLINE_EXCEEDED", "expired", True),
    ]:
        r = codec.decode_result(codec.error_row("a", code, "m"), provider="xai", batch_id="b")
        assert (r.status, r.error and r.error.code, r.error and r.error.retryable) == (
            status,
            code,
            retryable,
        )
    top = codec.decode_result(
        {"batch_request_id": "a", "error": {"code": 99, "message": "new"}},
        provider="x",
        batch_id="b",
    )
    assert top.status == "errored" and top.error is not None and top.error.code == "grpc_99"
    empty = codec.decode_result({"batch_request_id": "a"}, provider="x", batch_id="b")
    assert empty.error is not None and empty.error.code == "invalid_output_line"
    with pytest.raises(WireError):
        codec.decode_result({"batch_result": {}}, provider="x", batch_id="b")


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": [{"role": "user", "content": "x"}]}, "model"),
        ({"model": MODEL, "messages": []}, "messages"),
        ({"model": MODEL, "messages": [{"role": "user", "content": [{"type": "image"}]}]}, None),
        ({"model": MODEL, "messages": [{"role": "user", "content": "x"}], "max_tokens": 0}, None),
    ],
)
def test_check_body_refuses_what_the_sandbox_refuses(
    body: dict[str, Any], param: str | None
) -> None:
    with pytest.raises(WireError) as caught:
        codec.check_body(body)
    assert param is None or caught.value.param == param


# -- pages and pacing ------------------------------------------------------------------------
def test_pages_keep_within_bytes_and_count() -> None:
    lines = [b"x" * 9] * 7  # 10 bytes each with the separator
    assert [len(p) for p in pages(lines, max_bytes=30, max_requests=100)] == [3, 3, 1]
    assert [len(p) for p in pages(lines, max_bytes=1000, max_requests=2)] == [2, 2, 2, 1]
    assert [len(p) for p in pages([b"y" * 50, b"z"], max_bytes=30, max_requests=9)] == [1, 1]


def test_the_pacer_waits_for_the_window() -> None:
    async def three_calls() -> float:
        pacer = CallPacer(2, 0.2)
        loop = asyncio.get_running_loop()
        start = loop.time()
        for _ in range(3):
            await pacer.wait()
        return loop.time() - start

    assert asyncio.run(three_calls()) >= 0.19


def test_requests_are_added_in_pages_and_results_read_in_pages(
    make_sandbox: ServerFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(xai_provider, "PAGE_LIMIT", 2)
    server = make_sandbox()
    p = connect(server, add_page_requests=2)
    batch_id = submit(p, items(5), tmp_path)
    assert seen(server, "POST", "/requests") == 3
    assert p.poll(batch_id).state == "completed"
    assert sorted(r.custom_id for r in p.results(batch_id)) == [f"q-{i}" for i in range(5)]
    assert seen(server, "GET", "/results") == 3


def test_results_can_be_read_before_the_batch_ends(
    make_sandbox: ServerFactory, tmp_path: Path
) -> None:
    server = make_sandbox(rate=0.01)  # one request per 100 s of sandbox time
    server.engine.clock.freeze()  # the counts below depend on sandbox time alone
    p = connect(server)
    batch_id = submit(p, items(4), tmp_path)
    server.engine.clock.advance(250)
    status = p.poll(batch_id)
    assert status.state == "in_progress" and status.completed == 2
    early = list(p.results(batch_id))
    assert [r.custom_id for r in early] == ["q-0", "q-1"] and all(r.ok for r in early)


# -- lost answers ----------------------------------------------------------------------------
def _lose_first_answer(monkeypatch: pytest.MonkeyPatch, name: str) -> list[int]:
    real = getattr(xai_sandbox.XAIApi, name)
    calls: list[int] = []

    async def then_502(self: Any, request: Request) -> Response:
        response: Response = await real(self, request)
        calls.append(response.status_code)
        return JSONResponse({"error": "bad gateway"}, 502) if len(calls) == 1 else response

    monkeypatch.setattr(xai_sandbox.XAIApi, name, then_502)
    return calls


def test_a_lost_create_answer_makes_no_duplicate_batch(
    make_sandbox: ServerFactory, polybatch_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    creates = _lose_first_answer(monkeypatch, "create_batch")
    server = make_sandbox()  # after the patch: routes bind the handler when the server starts
    batch_items = items(4)
    job = polybatch.submit(batch_items, f"xai:{MODEL}", sandbox=server)
    job.wait(poll_min=0.01, poll_max=0.05, timeout=60)
    # the SDK did not retry the create; the runner's retry found the empty batch by its name
    # and filled it instead of making another
    assert creates == [200] and len(server.engine.batches) == 1
    assert {c.batch_id for c in job.chunks()} == set(server.engine.batches)
    assert [r.custom_id for r in job.results()] == [i.custom_id for i in batch_items]
    assert all(r.ok for r in job.results())


def test_a_lost_add_answer_adds_nothing_twice(
    make_sandbox: ServerFactory, polybatch_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    adds = _lose_first_answer(monkeypatch, "add_requests")
    server = make_sandbox()
    batch_items = items(6)
    job = polybatch.submit(
        batch_items, f"xai:{MODEL}", sandbox=server, provider_settings={"add_page_requests": 2}
    )
    job.wait(poll_min=0.01, poll_max=0.05, timeout=60)
    (batch,) = server.engine.batches.values()
    assert sorted(r.custom_id for r in batch.requests) == [f"q-{i}" for i in range(6)]
    assert adds == [200, 200, 200]  # the first page once (its answer lost), then the other two
    assert [r.custom_id for r in job.results()] == [i.custom_id for i in batch_items]


def test_find_batch_ignores_a_batch_still_being_filled(
    make_sandbox: ServerFactory, tmp_path: Path
) -> None:
    server = make_sandbox()
    p = connect(server)
    meta = {"polybatch_job": "pb-x", "polybatch_chunk": "0"}

    async def create_only() -> str:
        name = codec.batch_name(meta, 3)
        created = await p.client.post("/batches", body={"name": name}, cast_to=dict[str, Any])
        found = await p.afind_batch(meta)
        await p.aclose()
        assert found is None
        return str(created["batch_id"])

    batch_id = asyncio.run(create_only())
    assert p.poll(batch_id).state == "validating"
    assert submit(p, items(3), tmp_path, **meta) == batch_id  # taken up, not made anew
    assert p.find_batch(meta) == batch_id and len(server.engine.batches) == 1


# -- the CLI ---------------------------------------------------------------------------------
def test_cli_run_on_the_sandbox_prints_results_and_costs(polybatch_home: Path) -> None:
    out = polybatch_home.parent / "results.jsonl"
    args = ["run", str(EXAMPLES), "-m", f"xai:{MODEL}", "--sandbox", "-o", str(out)]
    result = CliRunner().invoke(cli, [*args, "--no-progress"])
    assert result.exit_code == 0, result.output
    n = len(EXAMPLES.read_text().splitlines())
    assert f"{n} results ({n} succeeded)" in result.stdout
    assert "| xai " in result.stdout and "Batch $" in result.stdout
    assert len(out.read_text().splitlines()) == n


def test_the_search_by_name_reads_a_bounded_number_of_pages(
    make_sandbox: ServerFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(xai_provider, "PAGE_LIMIT", 1)
    server = make_sandbox()
    p = connect(server, find_batch_pages=2)
    old = submit(p, items(1), tmp_path, polybatch_job="pb-old", polybatch_chunk="0")
    for n in range(2):
        submit(p, items(1, f"n{n}"), tmp_path, polybatch_job="pb-new", polybatch_chunk=str(n))
    assert p.find_batch({"polybatch_job": "pb-old", "polybatch_chunk": "0"}) is None  # 3rd page
    assert (
        connect(server, find_batch_pages=3).find_batch(
            {"polybatch_job": "pb-old", "polybatch_chunk": "0"}
        )
        == old
    )
