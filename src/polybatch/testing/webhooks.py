"""Test harness for provider webhooks: a sandbox signing its batch events to a receiver, both on
loopback (the plugins' ``test_<p>_webhooks.py`` share it)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest

from ..config import WebhookSettings
from ..sandbox import Faults, SandboxServer
from ..sandbox.webhooks import new_secret, signed_headers
from ..webhooks import app
from .fixtures import CliOutcome, Sandbox
from .helpers import make_items


def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, str]]:
    """POST one delivery: (status, JSON answer)."""
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def wait_for(check: Callable[[], bool], seconds: float) -> bool:
    """Whether ``check()`` turns true within ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return check()


def faults(spec: str) -> Faults:
    """``Faults`` from a ``--faults`` spec, e.g. ``hook_lost=1``."""
    return Faults.parse(spec)


@dataclass
class Hooked:
    """A sandbox sending ``provider``'s webhooks to a receiver."""

    sandbox: Sandbox
    receiver: SandboxServer
    provider: str
    secret: str

    @property
    def url(self) -> str:
        return f"{self.receiver.url}/webhooks/{self.provider}"

    def status_calls(self, batch_id: str) -> int:
        """GETs of the batch on the provider's routes (any API version)."""
        bare = batch_id.removeprefix("batches/")
        return sum(
            m == "GET" and p.startswith(f"/{self.provider}/") and p.endswith(f"/batches/{bare}")
            for m, p in self.sandbox.engine.requests_seen
        )

    def ended_at(self, batch_id: str) -> float:
        """When the sandbox batch ended."""
        end = self.sandbox.engine.batches[batch_id.removeprefix("batches/")].ended_at(time.time())
        assert end is not None
        return end

    def post(self, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, str]]:
        return post(self.url, body, headers)


@dataclass
class HookedFactory:
    """``make(poll=300, rate=5, faults=...)``: webhooks on (``[webhooks]`` in a config file that
    waiting jobs read, the secret in ``secret_env``) with a fallback poll every ``poll`` s."""

    provider: str
    secret_env: str
    secret: str
    polybatch_sandbox: Callable[..., Sandbox]
    monkeypatch: pytest.MonkeyPatch
    tmp_path: Path
    receivers: list[SandboxServer] = field(default_factory=list)

    def __call__(self, poll: float = 300.0, **engine_options: Any) -> Hooked:
        self.monkeypatch.setenv(self.secret_env, self.secret)
        config = self.tmp_path / "polybatch.toml"
        config.write_text(f"[webhooks]\nenabled = true\npoll_interval_with_webhooks = {poll}\n")
        self.monkeypatch.setenv("POLYBATCH_CONFIG", str(config))
        settings = WebhookSettings(enabled=True, poll_interval_with_webhooks=poll)
        receiver = SandboxServer(app=app(settings=settings)).start()
        self.receivers.append(receiver)
        sandbox = self.polybatch_sandbox(
            providers=[self.provider],
            webhook_url=f"{receiver.url}/webhooks/{self.provider}",
            webhook_secret=self.secret,
            **engine_options,
        )
        return Hooked(sandbox, receiver, self.provider, self.secret)

    def __enter__(self) -> HookedFactory:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for r in self.receivers:
            r.stop()


# -- the scenarios every provider's webhooks must pass (its test_<p>_webhooks.py calls them) ----
def check_results_promptly(h: Hooked, target: str) -> list[int]:
    """A submitted job (no process waits on it) is collected by the receiver alone: results on
    disk within 2 s of its batches ending; the status calls per batch (at most 3) are returned."""
    from .. import submit
    from ..jobs import Job

    job = submit(make_items(6), target, sandbox=h.sandbox.server, chunk_size=3, max_in_flight=2)
    ids = [str(c.batch_id) for c in job.chunks()]
    assert wait_for(lambda: Job.load(job.id).status().state == "completed", 10)
    on_disk = job.results_path.stat().st_mtime
    assert on_disk - max(h.ended_at(b) for b in ids) < 2.0
    calls = [h.status_calls(b) for b in ids]
    print(f"{h.provider} status calls per batch with webhooks: {calls}")
    assert all(n <= 3 for n in calls), calls
    assert len(list(Job.load(job.id).results())) == 6
    return calls


def check_forged_or_replayed(h: Hooked, target: str, event: Callable[[str], bytes]) -> None:
    """Forged, unsigned and stale deliveries get 401, a replay is a duplicate: only the one
    genuine delivery steps the job (``h`` runs its batches for a minute). ``event(batch_id)``:
    the provider's body announcing the batch ended."""
    from .. import submit
    from ..jobs import Job

    job = submit(make_items(2), target, sandbox=h.sandbox.server)
    batch_id = str(job.chunks()[0].batch_id)
    body = event(batch_id)
    before = h.status_calls(batch_id)
    now = int(time.time())
    assert h.post(body, signed_headers(new_secret(), "wh_forged", now, body))[0] == 401
    assert h.post(body, {"content-type": "application/json"})[0] == 401
    stale = signed_headers(h.secret, "wh_stale", now - 400, body)  # outside the 5-min tolerance
    assert h.post(body, stale)[0] == 401
    genuine = signed_headers(h.secret, "wh_once", now, body)
    assert h.post(body, genuine) == (202, {"status": "accepted", "job": job.id})
    assert wait_for(lambda: h.status_calls(batch_id) == before + 1, 5)
    assert h.post(body, genuine) == (200, {"status": "duplicate"})  # replayed: same id
    time.sleep(0.3)
    assert h.status_calls(batch_id) == before + 1
    assert Job.load(job.id).chunks()[0].state == "submitted"
    kinds = [e["kind"] for e in Job.load(job.id).ledger.events(job.id)]
    assert kinds.count("webhook") == 1


def check_sandbox_forged_and_duplicated(h: Hooked, target: str) -> None:
    """With ``hook_forged=1,hook_dup=1``: the forged copy gets 401, the duplicate 200."""
    from .. import submit
    from ..jobs import Job

    job = submit(make_items(2), target, sandbox=h.sandbox.server)
    batch_id = str(job.chunks()[0].batch_id)
    assert wait_for(lambda: Job.load(job.id).status().state == "completed", 10)
    sender = h.sandbox.server.webhooks
    assert sender is not None
    assert wait_for(lambda: len(sender.deliveries) == 3, 5)
    by_kind = sorted((forged, status) for _, _, status, forged in sender.deliveries)
    assert by_kind == [(False, 200), (False, 202), (True, 401)]
    assert h.status_calls(batch_id) <= 3


def check_all_lost_completes_by_polling(h: Hooked, target: str) -> None:
    """With ``hook_lost=1`` and a 1 s fallback poll, a waited-on job still completes."""
    from .. import submit

    job = submit(make_items(4), target, sandbox=h.sandbox.server, chunk_size=2)
    job.wait(timeout=30)
    assert job.status().state == "completed"
    assert len(list(job.results())) == 4
    assert len([e for e in h.sandbox.engine.fault_log if e.kind == "webhook_lost"]) == 2
    assert not [e for e in job.ledger.events(job.id) if e["kind"] == "webhook"]


def check_setup_stores_secret(
    sandbox: Sandbox, cli: Callable[..., CliOutcome], home: Path, provider: str, env: dict[str, str]
) -> None:
    """``polybatch webhooks setup`` registers through the SDK (the sandbox then sends there) and
    stores the secret owner-only, nowhere else (``env`` points the SDK at ``sandbox``)."""
    url = f"https://hooks.example.com/webhooks/{provider}"
    out = cli("webhooks", "setup", "--provider", provider, "--url", url, env=env)
    assert out.exit_code == 0, out.stderr
    secret = sandbox.engine.webhook_secret
    assert sandbox.engine.webhook_url == url and secret.startswith("whsec_")
    stored = home / "webhook-secrets" / f"{provider}.secret"
    assert stored.read_text().strip() == secret
    assert stored.stat().st_mode & 0o077 == 0
    assert secret not in out.stdout + out.stderr
    for path in home.rglob("*"):  # the ledger, logs, job files: the secret file only
        if path.is_file() and path != stored:
            assert secret.encode() not in path.read_bytes(), path
