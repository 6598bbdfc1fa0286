"""The webhook receiver: an ASGI app (starlette) that turns verified batch events into job steps.

``POST /webhooks/{provider}``: the provider's plugin verifies the delivery with its SDK
(:meth:`BatchProvider.verify_webhook`); a bad signature or a timestamp outside the tolerance is
answered 401, a webhook id seen before 200 and nothing else (replays and duplicates change
nothing). A batch event for a chunk the ledger knows is logged on the chunk and the job is stepped
at once, as polling would (the step collects the ended chunk, submits queued ones, plans retries,
publishes); a process already waiting on the job is woken instead (see :mod:`polybatch.jobs.hooks`).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from .. import config as _config
from ..errors import JobBusyError, PolybatchError, UnknownProviderError, WebhookRejectedError
from ..jobs import Job, hooks, lease
from ..jobs.clients import make_provider
from ..jobs.ledger import Ledger, open_ledger
from ..plugins import get_registry
from ..providers import BatchProvider
from .store import load_secret

log = logging.getLogger("polybatch.webhooks")

#: steps one event may take in a row (a retry round planned, queued chunks submitted)
MAX_STEPS_PER_EVENT = 5


class Receiver:
    """What the app's route does, with its ledger, settings and one lock per job."""

    def __init__(self, home: Path | None, settings: _config.WebhookSettings | None) -> None:
        self.home = home
        self.settings = settings or hooks.settings()
        self.ledger: Ledger = open_ledger(home)
        self._providers: dict[str, BatchProvider] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        #: background steps under way (kept so they are not garbage-collected)
        self.tasks: set[asyncio.Task[None]] = set()

    def provider(self, name: str) -> BatchProvider | None:
        """The adapter verifying ``name``'s deliveries (None: unknown or sends no webhooks)."""
        if name not in self._providers:
            try:
                cls = get_registry().provider_class(name)
            except UnknownProviderError:
                return None
            if cls.webhook_secret_env is None:
                return None
            self._providers[name] = make_provider(name)
        return self._providers[name]

    async def receive(self, request: Request) -> JSONResponse:
        name = request.path_params["provider"]
        provider = self.provider(name)
        if provider is None:
            return JSONResponse({"error": f"no webhooks from provider {name!r}"}, 404)
        secret = load_secret(type(provider), self.settings)
        if secret is None:
            log.error("webhook from %s: no signing secret (%s)", name, provider.webhook_secret_env)
            return JSONResponse({"error": f"no signing secret for {name}"}, 503)
        body = await request.body()
        try:
            event = provider.verify_webhook(dict(request.headers), body, secret)
        except WebhookRejectedError as exc:
            log.warning("%s", exc)
            return JSONResponse({"error": "invalid webhook signature or timestamp"}, 401)
        if event is None:
            return JSONResponse({"status": "ignored"})
        if not hooks.remember_delivery(self.ledger, event.webhook_id, name):
            log.info("webhook %s from %s seen before: ignored", event.webhook_id, name)
            return JSONResponse({"status": "duplicate"})
        found = hooks.chunk_for_batch(self.ledger, name, event.batch_id)
        if found is None:
            return JSONResponse({"status": "unknown batch"})
        job_id, idx = found
        hooks.note_webhook(self.ledger, job_id, idx)
        log.info("webhook %s: batch %s of job %s chunk %d", event.type, event.batch_id, job_id, idx)
        task = asyncio.create_task(self.drive(job_id))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return JSONResponse({"status": "accepted", "job": job_id}, 202)

    async def drive(self, job_id: str) -> None:
        """Step the job as polling would, until nothing is left to do at once."""
        lock = self._locks.setdefault(job_id, asyncio.Lock())
        async with lock:
            if lease.held_by_me(self.ledger, job_id):
                return  # a handle of this process waits on it: the logged event wakes it
            try:
                job = Job.load(job_id, home=self.home)
                for _ in range(MAX_STEPS_PER_EVENT):
                    if await job.astep() is None:
                        return
                    if not any(c.state == "planned" for c in job.chunks()):
                        return
            except JobBusyError:
                log.info("job %s is driven by another process: it was told", job_id)
            except PolybatchError as exc:  # polling carries the job on
                log.warning("job %s: step after webhook failed: %s", job_id, exc)


def app(
    *, home: Path | None = None, settings: _config.WebhookSettings | None = None, **kw: Any
) -> Starlette:
    """The receiver as an ASGI app to serve or mount: ``POST /webhooks/{provider}``.

    ``home`` is the POLYBATCH_HOME whose ledger it acts on (default: the usual one); ``settings``
    the ``[webhooks]`` table (default: the config in force)."""
    receiver = Receiver(home, settings)

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"webhooks": "polybatch"})

    routes = [
        Route("/webhooks/{provider}", receiver.receive, methods=["POST"]),
        Route("/", health),
    ]
    application = Starlette(routes=routes, **kw)
    application.state.receiver = receiver
    return application
