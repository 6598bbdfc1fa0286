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

from polybatch.errors import WebhookRejectedError
from polybatch.sandbox.webhooks import new_secret, signed_headers
from polybatch.testing import Sandbox
from polybatch.testing.fixtures import CliOutcome
from polybatch.testing.webhooks import (
    HookedFactory,
    check_all_lost_completes_by_polling,
    check_forged_or_replayed,
    check_results_promptly,
    check_sandbox_forged_and_duplicated,
    check_setup_stores_secret,
    faults,
)
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
    check_results_promptly(hooked(rate=5), TARGET)  # prints the status calls per batch


def test_a_forged_or_replayed_webhook_changes_nothing(hooked: HookedFactory) -> None:
    check_forged_or_replayed(hooked(rate=0.05), TARGET, batch_succeeded)


def test_sandbox_forged_and_duplicated_deliveries_are_refused_or_ignored(
    hooked: HookedFactory,
) -> None:
    check_sandbox_forged_and_duplicated(
        hooked(rate=20, faults=faults("hook_forged=1,hook_dup=1")), TARGET
    )


def test_a_job_whose_webhooks_are_all_lost_completes_by_polling(hooked: HookedFactory) -> None:
    check_all_lost_completes_by_polling(
        hooked(poll=1.0, rate=10, faults=faults("hook_lost=1")), TARGET
    )


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
    check_setup_stores_secret(sandbox, polybatch_cli, polybatch_home, "gemini", env)


def test_webhooks_setup_refused_by_the_api_is_one_line_and_exit_1(
    polybatch_sandbox: Callable[..., Sandbox], polybatch_cli: Callable[..., CliOutcome]
) -> None:
    sandbox = polybatch_sandbox(providers=["gemini"])
    env = {"GOOGLE_GEMINI_BASE_URL": sandbox.url + "/gemini", "GEMINI_API_KEY": "wrong-key"}
    url = "https://hooks.example.com/webhooks/gemini"
    out = polybatch_cli("webhooks", "setup", "--provider", "gemini", "--url", url, env=env)
    print(out.stderr)
    assert out.exit_code == 1, (out.exit_code, out.stderr)
    assert "Traceback" not in out.stderr and "wrong-key" not in out.stderr
    assert sandbox.engine.webhook_url is None
