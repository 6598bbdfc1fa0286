"""``cancel`` tries every batch of a job, whatever one of them answers (issue #15 items 2 and 4),
with the OpenAI sandbox's cancel route made to refuse or fail for one batch."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from starlette.requests import Request
from starlette.responses import Response

from polybatch import submit
from polybatch.errors import ProviderError
from polybatch.testing import Sandbox
from polybatch.testing.helpers import make_items
from polybatch_openai.sandbox import OpenAIApi

MODEL = "openai:gpt-4o-mini"


def test_a_cancel_refused_for_one_batch_still_cancels_the_others_and_says_which(
    polybatch_sandbox: Callable[..., Sandbox], monkeypatch: pytest.MonkeyPatch
) -> None:

    ids: list[str] = []
    original = OpenAIApi.cancel_batch

    async def refuse_chunk_1(self: OpenAIApi, request: Request) -> Response:
        if request.path_params["batch_id"] == ids[1]:
            return self.error(403, "You may not cancel this batch.")
        return await original(self, request)

    # the routes bind their handlers when the server starts: patch first
    monkeypatch.setattr(OpenAIApi, "cancel_batch", refuse_chunk_1)
    sandbox = polybatch_sandbox(providers=["openai"], rate=0.01)
    job = submit(make_items(12), MODEL, sandbox=sandbox.server, chunk_size=4)
    ids.extend(str(c.batch_id) for c in job.chunks())
    with pytest.raises(ProviderError, match=r"1 batch\(es\) could not be cancelled: chunk 1 "):
        job.cancel()
    engine = sandbox.engine
    assert [engine.batches[b].cancel_requested_at is not None for b in ids] == [True, False, True]


def test_a_transient_failure_of_a_cancel_is_tried_again(
    polybatch_sandbox: Callable[..., Sandbox], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cancels go through the job path's transient-failure policy (issue #15 item 2): a batch
    whose cancel fails with a 503 beyond the SDK's own retries is tried again, not reported."""
    from polybatch.jobs import cancel

    ids: list[str] = []
    failures: list[str] = []
    original = OpenAIApi.cancel_batch

    async def fail_chunk_1_at_first(self: OpenAIApi, request: Request) -> Response:
        batch_id = request.path_params["batch_id"]
        if batch_id == ids[1] and len(failures) < 3:  # the SDK's two retries, then ours
            failures.append(batch_id)
            return self.error(503, "The server is overloaded.")
        return await original(self, request)

    monkeypatch.setattr(OpenAIApi, "cancel_batch", fail_chunk_1_at_first)
    monkeypatch.setattr(cancel, "CANCEL_PAUSE", 0.01)
    monkeypatch.setattr("openai._base_client.INITIAL_RETRY_DELAY", 0.001)
    sandbox = polybatch_sandbox(providers=["openai"], rate=0.01)
    job = submit(make_items(12), MODEL, sandbox=sandbox.server, chunk_size=4)
    ids.extend(str(c.batch_id) for c in job.chunks())
    job.cancel()
    engine = sandbox.engine
    assert len(failures) == 3
    assert all(engine.batches[b].cancel_requested_at is not None for b in ids)
