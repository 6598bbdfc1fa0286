"""The sandbox: a local emulator of the providers' batch HTTP APIs."""

from .engine import Clock, Faults, SandboxBatch, SandboxEngine, SandboxFile
from .model import SyntheticModel, count_tokens
from .server import SandboxServer, create_app

__all__ = [
    "Clock",
    "Faults",
    "SandboxBatch",
    "SandboxEngine",
    "SandboxFile",
    "SandboxServer",
    "SyntheticModel",
    "count_tokens",
    "create_app",
]
