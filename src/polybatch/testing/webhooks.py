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
from ..webhooks import app
from .fixtures import Sandbox


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
        return Hooked(sandbox, receiver, self.provider)

    def __enter__(self) -> HookedFactory:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for r in self.receivers:
            r.stop()
