"""Sandbox jobs: the in-process sandbox a ``--sandbox`` job runs on, over the state kept under
``POLYBATCH_HOME/sandbox/`` (:mod:`polybatch.sandbox.store`).

``run --sandbox`` serves one; a later ``resume``, ``status``, ``cancel`` or ``results`` on that job
in any process starts (or reuses) one on the same state, on whatever port is free now. The port
is never part of the job: the job records only that it is a sandbox job (``options["sandbox"]``),
and the settings pointing the provider at the sandbox are left out of its identity and ledger row.
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
    from .ledger import JobRow

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


def is_sandbox_job(row: JobRow) -> bool:
    """Whether ``row`` was submitted to an in-process sandbox."""
    return bool(row.options.get("sandbox"))


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
