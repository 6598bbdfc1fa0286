"""Azure's own 2024-10-21 shapes, through the real openai SDK (issue 15, item 8).

Azure's authoring spec (``data/azure-authoring-2024-10-21.batch-files.schema.json``, transcribed
from Azure/azure-rest-api-specs ``.../AzureOpenAI/authoring/stable/2024-10-21/azureopenai.json``)
differs from OpenAI's where polybatch reads: a batch's ``errors.data`` is one error object, not a
list; an error's ``line`` is a string; a file's ``status`` may be ``pending`` or ``running``. The
sandbox's Azure routes send either shape (``azure_routes(engine, spec_shapes=True)``); polybatch
reads both, through ``AsyncAzureOpenAI`` (classic) and ``AsyncOpenAI`` (v1) alike.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from openai_testlib import KEY, items, write_lines
from starlette.routing import BaseRoute
from test_azure_sandbox import CHAT, check, classic_client

import polybatch
from polybatch.providers import BatchStatus
from polybatch.sandbox import Faults, SandboxEngine, SandboxServer
from polybatch_openai import codec
from polybatch_openai.azure import AzureProvider
from polybatch_openai.azure_sandbox import azure_routes
from polybatch_openai.provider import OpenAIProvider

MODEL = "gpt-4o-mini"
DEPLOYMENT = "gpt-4o-mini-batch"
STYLES = ("classic", "v1")


class _SpecAzure(AzureProvider):
    """Azure routes speaking the 2024-10-21 spec's shapes."""

    @classmethod
    def sandbox_routes(cls, engine: SandboxEngine) -> list[BaseRoute]:
        return azure_routes(engine, spec_shapes=True)


def _serve(azure_cls: type[AzureProvider], **engine: Any) -> Iterator[SandboxServer]:
    with SandboxServer(
        SandboxEngine(api_key=KEY, **engine),
        providers={"openai": OpenAIProvider, "azure": azure_cls},
    ) as srv:
        yield srv


@pytest.fixture(params=["spec", "openai-shapes"])
def server(request: pytest.FixtureRequest) -> Iterator[SandboxServer]:
    """Azure routes in either shape: what polybatch reads must not depend on it."""
    yield from _serve(_SpecAzure if request.param == "spec" else AzureProvider)


@pytest.fixture
def spec_server() -> Iterator[SandboxServer]:
    yield from _serve(_SpecAzure)


def provider(server: SandboxServer, style: str) -> AzureProvider:
    return AzureProvider(
        api_key=KEY,
        base_url=f"{server.url}/azure",
        settings={"style": style, "deployments": {MODEL: DEPLOYMENT}, "max_retries": 0},
    )


def bad_file(tmp_path: Path) -> Path:
    """Two good lines around one that is not JSON: the batch fails, naming line 2."""
    good = AzureProvider(api_key="x").encode(items(1)[0], DEPLOYMENT)
    return write_lines(tmp_path / "bad.jsonl", [good, b'{"custom_id": "x", "body": ', good])


# -- the sandbox sends the spec's shapes -------------------------------------------------------


def test_spec_shapes_match_the_azure_spec(spec_server: SandboxServer, tmp_path: Path) -> None:
    client = classic_client(spec_server)
    with bad_file(tmp_path).open("rb") as fh:
        uploaded = client.files.create(file=fh, purpose="batch")
    assert uploaded.status == "pending"  # type: ignore[comparison-overlap]
    read = client.files.with_raw_response.retrieve(uploaded.id).http_response.json()
    assert read["status"] == "running"
    check("File", read)
    batch = client.batches.create(input_file_id=uploaded.id, endpoint=CHAT, completion_window="24h")
    raw = client.batches.with_raw_response.retrieve(batch.id).http_response.json()
    assert raw["status"] == "failed"
    error = raw["errors"]["data"]
    assert isinstance(error, dict) and error["line"] == "2", error
    check("Batch", raw)


def test_openai_shapes_stay_the_default(tmp_path: Path) -> None:
    for srv in _serve(AzureProvider):
        client = classic_client(srv)
        with bad_file(tmp_path).open("rb") as fh:
            uploaded = client.files.create(file=fh, purpose="batch")
        batch = client.batches.create(
            input_file_id=uploaded.id, endpoint=CHAT, completion_window="24h"
        )
        raw = client.batches.with_raw_response.retrieve(batch.id).http_response.json()
        assert raw["errors"]["data"][0]["line"] == 2


# -- polybatch reads both ----------------------------------------------------------------------


@pytest.mark.parametrize("style", STYLES)
def test_a_failed_batch_reads_the_same_in_either_shape(
    server: SandboxServer, tmp_path: Path, style: str
) -> None:
    p = provider(server, style)

    async def go() -> BatchStatus:
        submitted = await p.asubmit(bad_file(tmp_path), model=MODEL, metadata={})
        try:
            return await p.apoll(submitted.batch_id)
        finally:
            await p.aclose()

    status = asyncio.run(go())
    assert status.state == "failed"
    assert status.message is not None and status.message.startswith("line 2: ")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        # OpenAI: a list of error objects, line an integer
        ([{"code": "c", "message": "m", "line": 3}], "line 3: c: m"),
        # Azure 2024-10-21: one object, line a string
        ({"code": "c", "message": "m", "line": "3", "param": None}, "line 3: c: m"),
        ([{"code": "a", "message": "x"}, {"message": "y", "line": "9"}], "a: x; line 9: y"),
        ({"code": "c", "message": "m", "line": ""}, "c: m"),
        ({}, None),
        ([], None),
        (None, None),
    ],
)
def test_batch_errors_message_takes_both_shapes(data: Any, message: str | None) -> None:
    assert codec.batch_errors_message(data) == message


def test_the_sdks_parse_of_either_shape_reads_the_same() -> None:
    from openai._models import construct_type

    for data in (
        [{"code": "model_mismatch", "message": "m", "line": 2}],
        {"code": "model_mismatch", "message": "m", "line": "2"},
    ):
        raw = {
            "id": "b",
            "object": "batch",
            "endpoint": CHAT,
            "input_file_id": "f",
            "completion_window": "24h",
            "status": "failed",
            "created_at": 1,
            "errors": {"object": "list", "data": data},
        }
        batch = construct_type(type_=openai.types.Batch, value=raw)
        status = OpenAIProvider._status(batch)  # type: ignore[arg-type]
        assert status.message == "line 2: model_mismatch: m"


@pytest.mark.parametrize("style", STYLES)
def test_a_whole_job_on_spec_shapes(polybatch_home: Path, tmp_path: Path, style: str) -> None:
    """Files that say ``pending`` and ``running``, a batch failing with one error object: the
    job ends, every item with its result, the failure's reason on the failed chunk's items."""
    for srv in _serve(_SpecAzure, faults=Faults(seed=1, batch_fail_rate=0.5)):
        inputs = [{"custom_id": f"r{i}", "prompt": f"Question {i}?"} for i in range(6)]
        path = tmp_path / "in.jsonl"
        path.write_text("".join(json.dumps(i) + "\n" for i in inputs))
        job = polybatch.submit(
            path,
            "azure:gpt-4o-mini",
            api_key=KEY,
            base_url=f"{srv.url}/azure",
            provider_settings={"style": style, "deployments": {MODEL: DEPLOYMENT}},
            chunk_size=2,
        ).wait(poll_min=0.01, poll_max=0.05, timeout=60)
        results = {r.custom_id: r for r in job.results()}
        assert sorted(results) == sorted(i["custom_id"] for i in inputs)
        failed = [r for r in results.values() if r.error and r.error.code == "batch_failed"]
        assert failed and all(r.error and "injected" in r.error.message for r in failed)
        assert any(r.ok for r in results.values())
