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
from polybatch.testing.webhooks import HookedFactory, faults, post, wait_for

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
    """A submitted job (no process waits on it) is collected by the receiver alone."""
    h = hooked(rate=5)
    job = submit(make_items(6), MODEL, sandbox=h.sandbox.server, chunk_size=3, max_in_flight=2)
    ids = [str(c.batch_id) for c in job.chunks()]
    assert wait_for(lambda: Job.load(job.id).status().state == "completed", 10)
    on_disk = job.results_path.stat().st_mtime
    assert on_disk - max(h.ended_at(b) for b in ids) < 2.0
    calls = [h.status_calls(b) for b in ids]
    print(f"status calls per batch with webhooks: {calls}")
    assert all(n <= 3 for n in calls), calls
    assert len(list(Job.load(job.id).results())) == 6


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
    h = hooked(rate=0.05)  # the batch runs for a minute: only polling could see it end
    job = submit(make_items(2), MODEL, sandbox=h.sandbox.server)
    batch_id = str(job.chunks()[0].batch_id)
    body = batch_completed(batch_id)
    before = h.status_calls(batch_id)
    now = int(time.time())
    forged = signed_headers(new_secret(), "wh_forged", now, body)
    assert h.post(body, forged)[0] == 401
    unsigned = {"content-type": "application/json"}
    assert h.post(body, unsigned)[0] == 401
    stale = signed_headers(SECRET, "wh_stale", now - 400, body)  # outside the 5-min tolerance
    assert h.post(body, stale)[0] == 401
    genuine = signed_headers(SECRET, "wh_once", now, body)
    assert h.post(body, genuine) == (202, {"status": "accepted", "job": job.id})
    assert wait_for(lambda: h.status_calls(batch_id) == before + 1, 5)
    assert h.post(body, genuine) == (200, {"status": "duplicate"})  # replayed: same id
    time.sleep(0.3)
    assert h.status_calls(batch_id) == before + 1
    assert Job.load(job.id).chunks()[0].state == "submitted"
    kinds = [e["kind"] for e in Job.load(job.id).ledger.events(job.id)]
    assert kinds.count("webhook") == 1


def test_sandbox_faults_forged_and_duplicated_deliveries_are_refused_or_ignored(
    hooked: HookedFactory,
) -> None:
    h = hooked(rate=20, faults=faults("hook_forged=1,hook_dup=1"))
    job = submit(make_items(2), MODEL, sandbox=h.sandbox.server)
    batch_id = str(job.chunks()[0].batch_id)
    assert wait_for(lambda: Job.load(job.id).status().state == "completed", 10)
    sender = h.sandbox.server.webhooks
    assert sender is not None
    assert wait_for(lambda: len(sender.deliveries) == 3, 5)
    by_kind = sorted((forged, status) for _, _, status, forged in sender.deliveries)
    assert by_kind == [(False, 200), (False, 202), (True, 401)]
    assert h.status_calls(batch_id) <= 3


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
    job = submit(make_items(4), MODEL, sandbox=h.sandbox.server, chunk_size=2)
    job.wait(timeout=30)
    assert job.status().state == "completed"
    assert len(list(job.results())) == 4
    lost = [e for e in h.sandbox.engine.fault_log if e.kind == "webhook_lost"]
    assert len(lost) == 2
    assert not [e for e in job.ledger.events(job.id) if e["kind"] == "webhook"]


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
    url = "https://hooks.example.com/webhooks/openai"
    out = polybatch_cli("webhooks", "setup", "--provider", "openai", "--url", url, env=env)
    assert out.exit_code == 0, out.stderr
    secret = sandbox.engine.webhook_secret
    assert sandbox.engine.webhook_url == url and secret.startswith("whsec_")
    stored = polybatch_home / "webhook-secrets" / "openai.secret"
    assert stored.read_text().strip() == secret
    assert stored.stat().st_mode & 0o077 == 0
    assert secret not in out.stdout + out.stderr
    for path in polybatch_home.rglob("*"):  # the ledger, logs, job files: the secret file only
        if path.is_file() and path != stored:
            assert secret.encode() not in path.read_bytes(), path


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
