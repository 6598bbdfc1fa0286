"""The entry point: tells polybatch which providers this distribution offers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from polybatch.hookspecs import hookimpl

from .provider import EchoProvider


@hookimpl
def register_providers(register: Callable[[type[Any]], None]) -> None:
    """Register :class:`EchoProvider` under its name, ``echo``."""
    register(EchoProvider)
