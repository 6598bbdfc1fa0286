"""Webhooks end to end on the OpenAI sandbox (issue #19 items 4 and 5): the sandbox signs
``batch.*`` events the Standard Webhooks way, the receiver verifies them with the openai SDK's
``webhooks.unwrap`` and collects the batch at once. Nothing is mocked: sandbox, receiver and SDK
talk over loopback HTTP."""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from polybatch import submit
from polybatch.jobs import Job
from polybatch.sandbox.webhooks import new_secret, signed_headers
from polybatch.testing import Sandbox
from polybatch.testing.fixtures import CliOutcome
from polybatch.testing.helpers import cli_server, make_items
from polybatch.testing.webhooks import (
    HookedFactory,
    check_all_lost_completes_by_polling,
    check_forged_or_replayed,
    check_results_promptly,
    check_sandbox_forged_and_duplicated,
    check_setup_stores_secret,
    faults,
    post,
    wait_for,
)

MODEL = "openai:gpt-4o-mini"
SECRET = new_secret()


def batch_completed(batch_id: str) -> bytes:
    """An OpenAI ``batch.completed`` event body (the SDK's BatchCompletedWebhookEvent shape)."""
    event = {
        "id": "evt_x",
        "created_at": int(time.time()),
        "data": {"id": batch_id},
        "type": "batch.completed",
        "object": "event",
    }
    return json.dumps(event).encode()


@pytest.fixture
def hooked(
    polybatch_sandbox: Callable[..., Sandbox], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[HookedFactory]:
    """``hooked(poll=300, rate=5, faults=...)``: see :class:`HookedFactory`."""
    env = "OPENAI_WEBHOOK_SECRET"
    with HookedFactory("openai", env, SECRET, polybatch_sandbox, monkeypatch, tmp_path) as make:
        yield make


def test_results_are_on_disk_within_2s_of_the_batch_ending_with_few_status_calls(
    hooked: HookedFactory,
) -> None:
    check_results_promptly(hooked(rate=5), MODEL)


def test_a_waiting_job_is_woken_by_the_webhook_and_polls_only_as_a_fallback(
    hooked: HookedFactory,
) -> None:
    h = hooked(rate=4)
    job = submit(make_items(4), MODEL, sandbox=h.sandbox.server, chunk_size=2)
    start = time.monotonic()
    job.wait(timeout=30)  # the fallback poll is 300 s away: only the webhook can end this
    ids = [str(c.batch_id) for c in job.chunks()]
    assert time.monotonic() - start < 5
    assert job.status().state == "completed"
    calls = [h.status_calls(b) for b in ids]
    print(f"status calls per batch, waiting with webhooks: {calls}")
    # the poll at submit, the wait's first step, the step the webhook wakes, the retrieve that
    # finds the output file: without the webhook it would be one per second, then per minute
    assert all(n <= 4 for n in calls), calls


def test_a_forged_or_replayed_webhook_changes_nothing(hooked: HookedFactory) -> None:
    check_forged_or_replayed(hooked(rate=0.05), MODEL, batch_completed)


def test_sandbox_faults_forged_and_duplicated_deliveries_are_refused_or_ignored(
    hooked: HookedFactory,
) -> None:
    h = hooked(rate=20, faults=faults("hook_forged=1,hook_dup=1"))
    check_sandbox_forged_and_duplicated(h, MODEL)


def test_a_late_webhook_delays_the_results_by_its_lateness_only(
    hooked: HookedFactory,
) -> None:
    h = hooked(rate=20, faults=faults("hook_late=1,hook_late_s=1.5"))
    job = submit(make_items(2), MODEL, sandbox=h.sandbox.server)
    batch_id = str(job.chunks()[0].batch_id)
    assert wait_for(lambda: Job.load(job.id).status().state == "completed", 10)
    delay = job.results_path.stat().st_mtime - h.ended_at(batch_id)
    assert 1.5 <= delay < 3.5, delay
    assert [e.kind for e in h.sandbox.engine.fault_log] == ["webhook_late"]


def test_a_job_whose_webhooks_are_all_lost_completes_by_polling(
    hooked: HookedFactory,
) -> None:
    h = hooked(poll=1.0, rate=10, faults=faults("hook_lost=1"))
    check_all_lost_completes_by_polling(h, MODEL)


def test_webhooks_setup_registers_the_endpoint_through_the_sdk_and_stores_the_secret(
    polybatch_sandbox: Callable[..., Sandbox],
    polybatch_cli: Callable[..., CliOutcome],
    polybatch_home: Path,
) -> None:
    sandbox = polybatch_sandbox(providers=["openai"])
    env = {
        "OPENAI_BASE_URL": sandbox.url + "/openai/v1",
        "OPENAI_API_KEY": str(sandbox.engine.api_key),
    }
    check_setup_stores_secret(sandbox, polybatch_cli, polybatch_home, "openai", env)


def test_webhooks_setup_refuses_a_provider_without_webhooks(
    polybatch_cli: Callable[..., CliOutcome],
) -> None:
    out = polybatch_cli("webhooks", "setup", "--provider", "azure", "--url", "https://x/y")
    assert out.exit_code == 2
    assert "azure sends no batch webhooks" in out.stderr


@pytest.mark.slow
def test_webhooks_serve_verifies_deliveries_through_the_cli(polybatch_home: Path) -> None:
    env = {**os.environ, "OPENAI_WEBHOOK_SECRET": SECRET, "POLYBATCH_HOME": str(polybatch_home)}
    with cli_server(["webhooks", "serve", "--port", "0"], env) as first:
        match = re.search(r"on (http://\S+)", first)
        assert match, first
        url = match.group(1) + "/webhooks/openai"
        body = batch_completed("batch_nobody")

        now = int(time.time())
        assert post(url, body, signed_headers(new_secret(), "wh_1", now, body))[0] == 401
        genuine = signed_headers(SECRET, "wh_2", now, body)
        assert post(url, body, genuine) == (200, {"status": "unknown batch"})
