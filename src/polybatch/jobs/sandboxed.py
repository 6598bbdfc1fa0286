"""Sandbox jobs: the in-process sandbox a ``--sandbox`` job runs on, over the state kept under
``POLYBATCH_HOME/sandbox/`` (:mod:`polybatch.sandbox.store`).

``run --sandbox`` serves one; a later ``resume``, ``status``, ``cancel`` or ``results`` on that job
in any process starts (or reuses) one on the same state, on whatever port is free now
(``options["sandbox_state"] == "home"`` says so; the base URL the row recorded is overridden). The
port is never part of the job's identity: the settings pointing the provider at a sandbox are left
out of it, which keeps only that it is a sandbox job. A job submitted to a caller's own
``SandboxServer`` (``submit(..., sandbox=server)``) keeps that server's URL, as before.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import config as _config
from ..plugins import get_registry
from ..providers import BatchProvider

if TYPE_CHECKING:
    from ..sandbox import SandboxEngine, SandboxServer
    from .ledger import JobRow, Ledger

#: the key the in-process sandbox asks for (it is a rehearsal: nothing secret)
SANDBOX_KEY = "sandbox-key"
#: the directory of POLYBATCH_HOME the sandbox's state lives in
SANDBOX_DIR = "sandbox"

_servers: dict[tuple[Path, str], SandboxServer] = {}
_lock = threading.Lock()


def sandbox_engine(home: Path | None = None, rate: float | None = None) -> SandboxEngine:
    """A sandbox engine on the state kept under ``home`` (default: ``polybatch.config.home()``);
    ``rate`` is requests per second per batch (None: instant)."""
    from ..sandbox import SandboxEngine, SandboxStore  # the web stack: only when asked for

    where = (home or _config.home()) / SANDBOX_DIR
    return SandboxEngine(
        api_key=SANDBOX_KEY,
        rate=rate,
        validation_seconds=0.3 if rate else 0.0,
        store=SandboxStore(where),
    )


def pointing_settings(cls: type[BatchProvider], server: Any) -> dict[str, Any]:
    """The provider settings that point ``cls`` at the running sandbox ``server`` (the
    constructor's ``settings`` flattened into them)."""
    pointed = dict(cls.sandbox_settings(server.url, server.engine.api_key or "sandbox"))
    flat = dict(pointed.pop("settings", None) or {})
    flat.update(pointed)
    return flat


def shared_sandbox(home: Path, provider: str, rate: float | None) -> SandboxServer:
    """This process's sandbox serving ``provider`` over the state under ``home``: started on a
    free port the first time, then reused (it stops with the process)."""
    from ..sandbox import SandboxServer

    key = (home.resolve(), provider)
    with _lock:
        server = _servers.get(key)
        if server is None:
            cls = get_registry().provider_class(provider)
            engine = sandbox_engine(home, rate)
            server = SandboxServer(engine, providers={provider: cls}).start()
            _servers[key] = server
        return server


def job_identity(
    public: Mapping[str, Any], pointed: Mapping[str, Any], sandbox: Any
) -> dict[str, Any]:
    """What of the provider settings makes a job: not where a sandbox listens (its port changes
    from run to run), only that it is a sandbox job."""
    settings = {k: v for k, v in public.items() if k not in pointed}
    return {"settings": settings, **({"sandbox": True} if sandbox is not None else {})}


def sandbox_options(server: Any, ledger: Ledger) -> dict[str, Any]:
    """What a job submitted to ``server`` records of it: its rate, and whether its state is the
    one kept beside ``ledger`` (then any process can serve it again: see :func:`kept_settings`)."""
    store = server.engine.store
    home_state = store is not None and (
        Path(store.directory).resolve() == (ledger.path.parent / SANDBOX_DIR).resolve()
    )
    return {"sandbox_rate": server.engine.rate, **({"sandbox_state": "home"} if home_state else {})}


def is_sandbox_job(row: JobRow) -> bool:
    """Whether ``row`` ran on the sandbox whose state is kept under its POLYBATCH_HOME."""
    return row.options.get("sandbox_state") == "home"


def sandbox_settings_for(row: JobRow, home: Path) -> Mapping[str, Any]:
    """The provider settings of sandbox job ``row``: its recorded ones, pointed at this
    process's sandbox on the state under ``home``."""
    rate = row.options.get("sandbox_rate")
    server = shared_sandbox(home, row.provider, float(rate) if rate else None)
    settings = dict(row.options.get("provider_settings", {}))
    settings.update(pointing_settings(get_registry().provider_class(row.provider), server))
    return settings


def stop_shared_sandboxes() -> None:
    """Stop this process's shared sandboxes (a test's teardown; a CLI process just exits)."""
    with _lock:
        servers = list(_servers.values())
        _servers.clear()
    for server in servers:
        server.stop()
