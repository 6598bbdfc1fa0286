"""Clean-up at the provider deletes the output and error files too (issue 16 item 8), on each
provider whose batch API keeps results as deletable files: the real SDKs, through the registry,
against the sandbox over loopback HTTP (the sandbox's file store is what the provider holds)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import polybatch
from polybatch import Job, portal
from polybatch.sandbox import Faults, SandboxServer

#: model, provider settings (Gemini: file-based jobs; inline ones leave no file behind)
MODELS = [
    ("openai:gpt-4o-mini", {}),
    ("mistral:mistral-small-latest", {}),
    ("gemini:gemini-2.5-flash", {"inline_max_bytes": 0}),
]


def outputs(job: Job) -> set[str]:
    """The output and error file ids of the job's batches, as the provider reports them."""
    sdk = job.provider
    found: set[str] = set()
    for c in job.chunks():
        assert c.batch_id is not None
        found |= set(portal.run(sdk.output_file_ids(c.batch_id)))  # type: ignore[attr-defined]
    return {f.removeprefix("files/") for f in found}  # Gemini names files "files/ID"


def held(server: SandboxServer) -> set[str]:
    return set(server.engine.files)


@pytest.mark.parametrize(("model", "settings"), MODELS)
def test_delete_outputs_and_cleanup_delete_the_results_files(
    model: str, settings: dict[str, Any], make_sandbox: Callable[..., SandboxServer]
) -> None:
    server = make_sandbox(faults=Faults(seed=5, item_error_rate=0.3))
    items = [f"Question {i}?" for i in range(10)]
    kept = polybatch.submit(
        items, model, sandbox=server, provider_settings=settings, chunk_size=5, poll_min=0.02
    )
    kept.wait()
    files = outputs(kept)
    assert files and files <= held(server)  # the results stay at the provider
    gone = polybatch.submit(
        items,
        model,
        sandbox=server,
        provider_settings=settings,
        chunk_size=5,
        poll_min=0.02,
        delete_outputs=True,
        if_exists="new",
    )
    gone.wait()
    assert outputs(gone) and not outputs(gone) & held(server)
    assert files <= held(server)  # only the job that asked
    assert {f.removeprefix("files/") for f in kept.cleanup()} == files
    assert not files & held(server)
    assert len(list(kept.results())) == 10  # the results are on disk
