"""The sandbox: a local emulator of the providers' batch HTTP APIs.

A provider plugin's routes subclass :class:`ProviderApi` (and :class:`FilesApi` for the
OpenAI-style Files API); faults are decided by the pure :class:`FaultInjector` from the kind each
route declares (:class:`RouteKind`).
"""

from ..tokens import count_tokens
from .api import ProviderApi
from .engine import Clock, SandboxBatch, SandboxEngine, SandboxFile
from .faults import FaultEvent, FaultInjector, Faults, RouteKind
from .files_api import FilesApi
from .model import SyntheticModel
from .server import SandboxServer, create_app
from .store import SandboxStore

__all__ = [
    "Clock",
    "FaultEvent",
    "FaultInjector",
    "Faults",
    "FilesApi",
    "ProviderApi",
    "RouteKind",
    "SandboxBatch",
    "SandboxEngine",
    "SandboxFile",
    "SandboxServer",
    "SandboxStore",
    "SyntheticModel",
    "count_tokens",
    "create_app",
]
