"""The sandbox: a local emulator of the providers' batch HTTP APIs."""

from ..tokens import count_tokens
from .engine import Clock, SandboxBatch, SandboxEngine, SandboxFile
from .faults import FaultEvent, Faults
from .model import SyntheticModel
from .server import SandboxServer, create_app

__all__ = [
    "Clock",
    "FaultEvent",
    "Faults",
    "SandboxBatch",
    "SandboxEngine",
    "SandboxFile",
    "SandboxServer",
    "SyntheticModel",
    "count_tokens",
    "create_app",
]
