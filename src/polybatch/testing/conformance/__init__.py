"""The provider conformance suite: subclass :class:`ProviderConformance` in a plugin's tests.

The suite is split by subject: :mod:`.base` holds the class attributes a plugin declares and the
helpers, :mod:`.lifecycle` the batch lifecycle tests, :mod:`.clients` the client and runner tests.
"""

from __future__ import annotations

from .base import AWKWARD_IDS, CONFORMANCE_KEY, CONSTRUCTOR_KWARGS, ConformanceBase
from .clients import ClientConformance
from .lifecycle import LifecycleConformance

__all__ = [
    "AWKWARD_IDS",
    "CONFORMANCE_KEY",
    "CONSTRUCTOR_KWARGS",
    "ClientConformance",
    "ConformanceBase",
    "LifecycleConformance",
    "ProviderConformance",
]


class ProviderConformance(LifecycleConformance, ClientConformance):
    """The whole suite: every lifecycle and client test (see :class:`.base.ConformanceBase` for
    the class attributes a plugin sets)."""
