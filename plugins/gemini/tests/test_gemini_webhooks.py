"""Gemini project webhooks end to end (issue #19 items 4 and 5): the sandbox signs ``batch.*``
events (the docs' envelope) the Standard Webhooks way, the receiver checks them with polybatch's
verifier (google-genai has none) and collects the batch at once; ``webhooks setup`` registers
through the SDK's ``client.aio.webhooks.create``. Nothing is mocked: sandbox, receiver and SDK
talk over loopback HTTP."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from gemini_support import MODEL

from polybatch import submit
from polybatch.errors import WebhookRejectedError
from polybatch.jobs import Job
from polybatch.sandbox.webhooks import new_secret, signed_headers
from polybatch.testing import Sandbox
from polybatch.testing.fixtures import CliOutcome
from polybatch.testing.helpers import make_items
from polybatch.testing.webhooks import HookedFactory, faults, wait_for
from polybatch_gemini import webhooks

SECRET = new_secret()
TARGET = f"gemini:{MODEL}"


def batch_succeeded(batch_id: str) -> bytes:
    """A Gemini ``batch.succeeded`` envelope (ai.google.dev/gemini-api/docs/webhooks)."""
    event = {
        "type": "batch.succeeded",
        "version": "v1",
        "timestamp": "2026-12-03T12:00:00Z",
        "data": {"id": batch_id.removeprefix("batches/")},
    }
    return json.dumps(event).encode()


@pytest.fixture
def hooked(
    polybatch_sandbox: Callable[..., Sandbox], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[HookedFactory]:
    """``hooked(poll=300, rate=5, faults=...)``: see :class:`HookedFactory`."""
    env = webhooks.SECRET_ENV
    with HookedFactory("gemini", env, SECRET, polybatch_sandbox, monkeypatch, tmp_path) as make:
        yield make


def test_results_are_on_disk_within_2s_of_the_batch_ending_with_few_status_calls(
    hooked: HookedFactory,
) -> None:
    h = hooked(rate=5)
    job = submit(make_items(6), TARGET, sandbox=h.sandbox.server, chunk_size=3, max_in_flight=2)
    ids = [str(c.batch_id) for c in job.chunks()]
    assert wait_for(lambda: Job.load(job.id).status().state == "completed", 10)
    on_disk = job.results_path.stat().st_mtime
    assert on_disk - max(h.ended_at(b) for b in ids) < 2.0
    calls = [h.status_calls(b) for b in ids]
    print(f"gemini status calls per batch with webhooks: {calls}")
    assert all(n <= 3 for n in calls), calls
    assert len(list(Job.load(job.id).results())) == 6


def test_a_forged_or_replayed_webhook_changes_nothing(hooked: HookedFactory) -> None:
    h = hooked(rate=0.05)  # the batch runs for a minute: only polling could see it end
    job = submit(make_items(2), TARGET, sandbox=h.sandbox.server)
    batch_id = str(job.chunks()[0].batch_id)
    body = batch_succeeded(batch_id)
    before = h.status_calls(batch_id)
    now = int(time.time())
    assert h.post(body, signed_headers(new_secret(), "wh_forged", now, body))[0] == 401
    assert h.post(body, {"content-type": "application/json"})[0] == 401
    assert h.post(body, signed_headers(SECRET, "wh_stale", now - 400, body))[0] == 401
    genuine = signed_headers(SECRET, "wh_once", now, body)
    assert h.post(body, genuine) == (202, {"status": "accepted", "job": job.id})
    assert wait_for(lambda: h.status_calls(batch_id) == before + 1, 5)
    assert h.post(body, genuine) == (200, {"status": "duplicate"})  # replayed: same id
    time.sleep(0.3)
    assert h.status_calls(batch_id) == before + 1
    assert Job.load(job.id).chunks()[0].state == "submitted"
    kinds = [e["kind"] for e in Job.load(job.id).ledger.events(job.id)]
    assert kinds.count("webhook") == 1


def test_sandbox_forged_and_duplicated_deliveries_are_refused_or_ignored(
    hooked: HookedFactory,
) -> None:
    h = hooked(rate=20, faults=faults("hook_forged=1,hook_dup=1"))
    job = submit(make_items(2), TARGET, sandbox=h.sandbox.server)
    assert wait_for(lambda: Job.load(job.id).status().state == "completed", 10)
    sender = h.sandbox.server.webhooks
    assert sender is not None
    assert wait_for(lambda: len(sender.deliveries) == 3, 5)
    by_kind = sorted((forged, status) for _, _, status, forged in sender.deliveries)
    assert by_kind == [(False, 200), (False, 202), (True, 401)]


def test_a_job_whose_webhooks_are_all_lost_completes_by_polling(hooked: HookedFactory) -> None:
    h = hooked(poll=1.0, rate=10, faults=faults("hook_lost=1"))
    job = submit(make_items(4), TARGET, sandbox=h.sandbox.server, chunk_size=2)
    job.wait(timeout=30)
    assert job.status().state == "completed"
    assert len(list(job.results())) == 4
    assert len([e for e in h.sandbox.engine.fault_log if e.kind == "webhook_lost"]) == 2
    assert not [e for e in job.ledger.events(job.id) if e["kind"] == "webhook"]


def test_verifier_accepts_any_of_several_signatures_and_maps_the_event() -> None:
    body = batch_succeeded("batches/abc")
    headers = signed_headers(SECRET, "wh_1", int(time.time()), body)
    headers["webhook-signature"] = "v1,AAAA " + headers["webhook-signature"]  # rotated secret
    event = webhooks.verify(headers, body, SECRET)
    assert event is not None
    assert (event.batch_id, event.state, event.webhook_id) == ("batches/abc", "completed", "wh_1")
    other = json.dumps({"type": "video.generated", "data": {"id": "v"}}).encode()
    assert (
        webhooks.verify(signed_headers(SECRET, "wh_2", int(time.time()), other), other, SECRET)
        is None
    )
    with pytest.raises(WebhookRejectedError, match="no webhook-signature matches"):
        webhooks.verify(headers, body + b" ", SECRET)


def test_webhooks_setup_registers_through_the_sdk_and_stores_the_secret(
    polybatch_sandbox: Callable[..., Sandbox],
    polybatch_cli: Callable[..., CliOutcome],
    polybatch_home: Path,
) -> None:
    sandbox = polybatch_sandbox(providers=["gemini"])
    env = {
        "GOOGLE_GEMINI_BASE_URL": sandbox.url + "/gemini",
        "GEMINI_API_KEY": str(sandbox.engine.api_key),
    }
    url = "https://hooks.example.com/webhooks/gemini"
    out = polybatch_cli("webhooks", "setup", "--provider", "gemini", "--url", url, env=env)
    assert out.exit_code == 0, out.stderr
    secret = sandbox.engine.webhook_secret
    assert sandbox.engine.webhook_url == url and secret.startswith("whsec_")
    stored = polybatch_home / "webhook-secrets" / "gemini.secret"
    assert stored.read_text().strip() == secret
    assert stored.stat().st_mode & 0o077 == 0
    assert secret not in out.stdout + out.stderr
    for path in polybatch_home.rglob("*"):  # the ledger, logs, job files: the secret file only
        if path.is_file() and path != stored:
            assert secret.encode() not in path.read_bytes(), path
