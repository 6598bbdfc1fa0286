"""What the serving commands (``sandbox``, ``webhooks serve``) share: --host/--port, binding."""

from __future__ import annotations

import errno
import time
from typing import TYPE_CHECKING

import click

from .options import F, apply

if TYPE_CHECKING:
    from ..sandbox import SandboxServer


def listen_options(fn: F) -> F:
    """``--host`` (loopback by default) and ``--port`` (0: a free one)."""
    return apply(
        fn,
        [
            click.option(
                "--host",
                default="127.0.0.1",
                show_default=True,
                help="Address to bind (loopback by default).",
            ),
            click.option(
                "--port",
                default=0,
                show_default=True,
                type=click.IntRange(min=0, max=65535),
                help="Port to listen on (0: a free port the OS chooses; the URL is printed).",
            ),
        ],
    )


def start_listening(server: SandboxServer) -> SandboxServer:
    """Start ``server``; a port in use is a bad ``--port`` (exit 2), one line."""
    try:
        return server.start()
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        raise click.BadParameter(
            f"{server.host}:{server.port} is already in use; choose another port (0: any free port)",
            param_hint="--port",
        ) from None


def serve_forever(server: SandboxServer) -> None:
    """Block until Ctrl-C (or SIGTERM's KeyboardInterrupt), then stop ``server``."""
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
