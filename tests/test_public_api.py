"""The public surface: everything importable from polybatch, documented, and usable async."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from pathlib import Path

import pytest

import polybatch
from polybatch.errors import ProviderError
from polybatch.sandbox import Faults, SandboxServer

SRC = Path(polybatch.__file__).parent


def test_all_is_sorted_complete_and_documented() -> None:
    assert polybatch.__all__ == sorted(polybatch.__all__)
    public = {n for n in dir(polybatch) if not n.startswith("_")}
    modules = {n for n in public if inspect.ismodule(getattr(polybatch, n))}
    assert public - modules == set(polybatch.__all__)
    for name in polybatch.__all__:
        obj = getattr(polybatch, name)
        assert inspect.getdoc(obj), f"{name} has no docstring"


def test_package_is_typed() -> None:
    assert (SRC / "py.typed").exists()


def test_async_api_inside_a_running_loop(sandbox_server: SandboxServer) -> None:
    async def main() -> list[polybatch.BatchResult]:
        # a notebook's loop is already running when user code awaits: so is this one
        job = await polybatch.asubmit(
            ["one?", "two?"], "openai:gpt-4o-mini", sandbox=sandbox_server
        )
        ticker = asyncio.create_task(asyncio.sleep(0))  # the loop stays free while we wait
        results = await job.await_results(poll_min=0.02, timeout=60)
        await ticker
        return results

    results = asyncio.run(main())
    assert [r.custom_id for r in results] == ["item-1", "item-2"]
    assert all(r.ok for r in results)
    again = asyncio.run(
        polybatch.arun(["three?"], "openai:gpt-4o-mini", sandbox=sandbox_server, poll_min=0.02)
    )
    assert again[0].ok


def test_jobs_lists_the_ledger(sandbox_server: SandboxServer) -> None:
    a = polybatch.submit(["a?"], "openai:gpt-4o-mini", sandbox=sandbox_server).wait(
        poll_min=0.02, timeout=60
    )
    b = polybatch.submit(["b?"], "openai:gpt-4o-mini", sandbox=sandbox_server).wait(
        poll_min=0.02, timeout=60
    )
    ids = [j.id for j in polybatch.jobs()]
    assert ids[:2] == [b.id, a.id]  # newest first


def test_a_persistent_outage_stops_the_job_instead_of_looping(
    make_sandbox: Callable[..., SandboxServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    server = make_sandbox(faults=Faults(upload_reject_rate=1.0))
    monkeypatch.setattr(polybatch.Job, "max_transient_failures", 3)
    job = polybatch.submit(["a?"], "openai:gpt-4o-mini", sandbox=server)  # the first attempt fails
    with pytest.raises(ProviderError, match="upload"):
        job.wait(poll_min=0.01, poll_max=0.02, timeout=60)
    # nothing was lost: the job is in the ledger and can be resumed once the outage is over
    server.engine.faults.upload_reject_rate = 0.0
    assert polybatch.Job.load(job.id).wait(poll_min=0.02, timeout=60).status().state == "completed"
