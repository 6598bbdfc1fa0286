"""The provider seam: the BatchProvider base class, Limits, and "provider:model" strings."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict

from .errors import CredentialsError, UnknownProviderError
from .items import BatchItem, BatchResult

if TYPE_CHECKING:
    from starlette.routing import BaseRoute

    from .sandbox.engine import SandboxEngine

#: the neutral lifecycle of one provider batch; providers map their own states onto it
BatchState = Literal[
    "validating",
    "in_progress",
    "finalizing",
    "cancelling",
    "completed",
    "failed",
    "expired",
    "cancelled",
]
TERMINAL_STATES: frozenset[str] = frozenset({"completed", "failed", "expired", "cancelled"})

#: metadata keys polybatch tags every provider batch with, so a batch can be found again
META_JOB = "polybatch_job"
META_CHUNK = "polybatch_chunk"


class Limits(BaseModel):
    """What one provider batch may hold."""

    model_config = ConfigDict(frozen=True)

    max_requests: int
    max_bytes: int
    completion_windows: tuple[str, ...] = ("24h",)
    #: ids the provider accepts; ids outside it are mapped to safe ones by the adapter
    custom_id_pattern: str | None = None
    #: embedding inputs one batch may hold (None: only max_requests); one item is one input
    max_embedding_inputs: int | None = None


class BatchStatus(BaseModel):
    """A snapshot of one provider batch, in neutral terms."""

    batch_id: str
    state: BatchState
    total: int = 0
    completed: int = 0
    failed: int = 0
    #: why a batch failed as a whole (validation errors), if it did
    message: str | None = None
    #: seconds the provider asked us to wait before the next poll (Retry-After), if it said
    retry_after: float | None = None

    @property
    def terminal(self) -> bool:
        """True once the batch will not change any more."""
        return self.state in TERMINAL_STATES


class SubmittedBatch(BaseModel):
    """What a provider returns after creating a batch."""

    batch_id: str
    input_file_id: str | None = None


class BatchProvider(ABC):
    """Base class of every provider adapter. Subclass it in a plugin and register it.

    A provider instance holds one client (credentials and base URL). The runner drives it:
    ``encode`` each item to a wire line, ``submit`` a file of lines, ``poll`` until terminal,
    ``results`` to stream the outcome, ``cancel`` on request.
    """

    #: the one name used everywhere: entry point, "name:model" prefix, prices, usage rows
    name: ClassVar[str]
    #: environment variables holding credentials (first is the one to tell users about)
    credential_env: ClassVar[tuple[str, ...]] = ()
    limits: ClassVar[Limits]
    #: whether ``kind="embedding"`` items can be sent (others are refused while planning)
    supports_embeddings: ClassVar[bool] = False
    #: the distribution that registered this class (filled in by the plugin manager)
    plugin_dist: ClassVar[str | None] = None
    #: the entry point (plugin) name that registered this class
    plugin_name: ClassVar[str | None] = None

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> None:
        self.api_key = api_key
        self.base_url = base_url
        self.settings: dict[str, Any] = dict(settings or {})

    # -- credentials -----------------------------------------------------------------------
    @classmethod
    def credentials_present(cls, env: Mapping[str, str] | None = None) -> bool:
        """Whether the credential env vars are set (used by ``polybatch providers``)."""
        env = os.environ if env is None else env
        return any(env.get(name) for name in cls.credential_env)

    def require_api_key(self) -> str:
        """The API key from the arguments or the environment, or a CredentialsError."""
        key = self.api_key or next(
            (os.environ[n] for n in self.credential_env if os.environ.get(n)), None
        )
        if not key:
            wanted = " or ".join(self.credential_env) or "an api_key"
            raise CredentialsError(f"{self.name}: no API key; set {wanted}")
        return key

    @property
    def default_max_tokens(self) -> int:
        """Output tokens assumed for items without ``max_tokens`` (the estimate's upper bound).

        Providers that send a default on the wire override this with that default.
        """
        return int(self.settings.get("default_max_tokens", 4096))

    def preflight(self) -> None:
        """Fail early (CredentialsError) if the provider cannot be used: before any planning."""
        if self.credential_env:
            self.require_api_key()

    # -- the batch lifecycle ---------------------------------------------------------------
    def validate_item(self, item: BatchItem, model: str) -> None:
        """Reject an item this provider cannot express (raise ItemValidationError)."""

    def wire_custom_id(self, custom_id: str) -> str:
        """The id sent on the wire for ``custom_id``; a pure function of it.

        Providers whose id rules are narrower than polybatch's override this; ``results`` then
        yields wire ids, and the runner maps them back to the user's ids.
        """
        return custom_id

    @abstractmethod
    def encode(self, item: BatchItem, model: str) -> bytes:
        """One wire line (without the newline) for this item; its length counts toward limits."""

    @abstractmethod
    def submit(
        self, lines_path: Path, *, model: str, metadata: Mapping[str, str]
    ) -> SubmittedBatch:
        """Create one provider batch from a file of encoded lines."""

    @abstractmethod
    def poll(self, batch_id: str) -> BatchStatus:
        """The batch's current state."""

    @abstractmethod
    def results(self, batch_id: str) -> Iterator[BatchResult]:
        """Stream the results of a terminal batch, successes and failures alike."""

    @abstractmethod
    def cancel(self, batch_id: str) -> None:
        """Ask the provider to cancel a batch."""

    def find_batch(self, metadata: Mapping[str, str]) -> str | None:
        """A batch created earlier with this metadata, if the provider can search for one."""
        return None

    def cleanup(self, submitted: SubmittedBatch) -> None:
        """Delete what the batch left behind at the provider (uploaded files), if anything."""

    # -- the sandbox -----------------------------------------------------------------------
    @classmethod
    def sandbox_routes(cls, engine: SandboxEngine) -> list[BaseRoute]:
        """Starlette routes emulating this provider's batch API, mounted at ``sandbox_prefix``."""
        return []

    #: where the routes are mounted in the sandbox server
    sandbox_prefix: ClassVar[str] = ""

    @classmethod
    def sandbox_settings(cls, server_url: str, api_key: str) -> dict[str, Any]:
        """Constructor arguments that point this provider at a sandbox at ``server_url``."""
        return {"api_key": api_key, "base_url": server_url + cls.sandbox_prefix}

    @classmethod
    def sandbox_env(cls, server_url: str, api_key: str) -> dict[str, str]:
        """The environment variables a user sets to point a client at the sandbox."""
        return {}


def parse_model(spec: str) -> tuple[str, str]:
    """Split ``"provider:model"`` on the first colon (models may contain colons)."""
    provider, sep, model = spec.partition(":")
    if not sep or not provider or not model:
        raise UnknownProviderError(
            f"model {spec!r} must be written 'provider:model', for example 'openai:gpt-4o-mini'"
        )
    return provider.strip(), model.strip()
