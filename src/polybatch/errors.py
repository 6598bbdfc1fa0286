"""The polybatch exception tree.

::

    PolybatchError
    +-- ConfigError                 bad configuration: exit code 2, nothing submitted
    |   +-- UnknownProviderError    "provider:model" names no installed provider
    |   +-- CredentialsError        a key or endpoint is missing
    |   +-- InputError              an input file is malformed (file, line, field)
    |   +-- ItemValidationError     an item cannot be expressed for the chosen provider
    |   +-- BudgetExceededError     the cost estimate is above --max-cost
    +-- ProviderError               a provider call failed (retryable only if it says so)
    |   +-- ProviderConnectionError transport: connect, read, timeouts, a download cut midway
    |   +-- ProviderHTTPError       the API answered with an error status (``status_code``)
    |   +-- BatchFailedError        a provider batch failed as a whole
    |   +-- QueueFullError          the organisation's queue for the model is full (requeued)
    +-- PricingError
    |   +-- PriceNotFoundError
    +-- PluginError                 a plugin is broken or two plugins clash
    +-- JobError                    a job cannot be found or continued
        +-- JobBusyError            another live process holds the job's lease (exit code 2)

Provider SDK exceptions are translated once, at the adapter boundary, with ``raise ... from``
(:class:`polybatch.sdk.SDKProvider` holds the table). Per-item failures are data on
:class:`~polybatch.items.BatchResult`, never exceptions.

Whether a ProviderError is worth retrying (:attr:`ProviderError.retryable`) is decided by its class
and status, unless the raiser says so with ``retryable=``:

- ProviderConnectionError: yes (nothing was answered; the next try may get through);
- ProviderHTTPError: yes for :data:`RETRYABLE_STATUSES` and every 5xx, no for other statuses;
- ProviderError itself and BatchFailedError: no.
"""

from __future__ import annotations

from typing import Any


class PolybatchError(Exception):
    """Base class of every error polybatch raises on purpose."""

    #: the process exit code the CLI uses for this error
    exit_code: int = 1


class ConfigError(PolybatchError):
    """The user's configuration or input is wrong; nothing was submitted."""

    exit_code = 2


class UnknownProviderError(ConfigError):
    """A model string names a provider that no installed plugin registers."""


class CredentialsError(ConfigError):
    """A provider's credentials or endpoint are missing."""


class InputError(ConfigError):
    """An input line is malformed. The message names the file, the line and the field."""

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.path = path
        self.line = line
        self.field = field
        self.reason = message
        where = ":".join(str(p) for p in (path, line) if p is not None)
        prefix = f"{where}: " if where else ""
        at = f"field '{field}': " if field else ""
        super().__init__(f"{prefix}{at}{message}")


class ItemValidationError(InputError):
    """An item is well formed but cannot be expressed for the chosen provider."""


class BudgetExceededError(ConfigError):
    """The upper cost estimate exceeds the budget the user set."""


#: HTTP statuses worth retrying besides 5xx: 408 Request Timeout; 409 Conflict, which these APIs
#: answer for a lock held by a concurrent request (the openai and anthropic SDKs retry it too; a
#: create is never blindly repeated, the runner looks the batch up first); 425 Too Early; 429 Too
#: Many Requests
RETRYABLE_STATUSES: frozenset[int] = frozenset({408, 409, 425, 429})


class ProviderError(PolybatchError):
    """A provider call failed. Retryable only when raised with ``retryable=True``; the
    subclasses decide by their kind (transport, HTTP status)."""

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        status_code: int | None = None,
        retryable: bool | None = None,
    ):
        self.provider = provider
        self.status_code = status_code
        self._retryable = retryable
        super().__init__(f"{provider}: {message}" if provider else message)

    @property
    def retryable(self) -> bool:
        """True for failures worth retrying later (see the module docstring)."""
        return self._retryable if self._retryable is not None else self._default_retryable()

    def _default_retryable(self) -> bool:
        return False


class ProviderConnectionError(ProviderError):
    """No complete answer came: connection refused or reset, a timeout, a download cut midway."""

    def _default_retryable(self) -> bool:
        return True


class ProviderHTTPError(ProviderError):
    """The provider answered with an error status, kept in ``status_code``."""

    status_code: int

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        provider: str | None = None,
        retryable: bool | None = None,
    ):
        super().__init__(message, provider=provider, status_code=status_code, retryable=retryable)

    def _default_retryable(self) -> bool:
        return self.status_code in RETRYABLE_STATUSES or self.status_code >= 500


class BatchFailedError(ProviderError):
    """A provider batch failed as a whole (its input was refused, say); ``batch_id`` names it."""

    def __init__(
        self,
        message: str,
        *,
        batch_id: str | None = None,
        provider: str | None = None,
        retryable: bool | None = None,
    ):
        self.batch_id = batch_id
        super().__init__(message, provider=provider, retryable=retryable)


class QueueFullError(ProviderError):
    """The provider refused a batch because the organisation's queue for its model is full
    (OpenAI/Azure ``token_limit_exceeded``, Gemini 429 ``RESOURCE_EXHAUSTED`` at create,
    Anthropic 429 ``rate_limit_error`` at create). Never a failure of the chunk: the runner puts
    it back in the queue until the job's own batches make room (see ``docs/queue-limits.md``)."""

    def _default_retryable(self) -> bool:
        return True


class PricingError(PolybatchError):
    """Price data is malformed or missing."""


class PriceNotFoundError(PricingError):
    """No price row matches (provider, model, mode, date)."""


class PluginError(PolybatchError):
    """A plugin failed to load or clashes with another plugin."""


class JobError(PolybatchError):
    """A job cannot be found, loaded or continued."""

    exit_code = 2


class JobExistsError(JobError):
    """``if_exists="refuse"``: this input, model and options already made job ``job_id``."""

    def __init__(self, message: str, *, job_id: str) -> None:
        self.job_id = job_id
        super().__init__(message)


def api_error_message(body: Any) -> str | None:
    """The human words of an API error body (``{"error": {"type", "message"}}``, the shape
    OpenAI, Anthropic, Mistral and most others share; or a bare ``{"message"}``)."""
    if not isinstance(body, dict):
        return None
    error = body.get("error", body)
    if isinstance(error, dict) and isinstance(error.get("message"), str) and error["message"]:
        kind = error.get("type") or error.get("code") or error.get("status")
        return f"{kind}: {error['message']}" if isinstance(kind, str) and kind else error["message"]
    if isinstance(error, str) and error:
        return error
    return None


class JobBusyError(JobError):
    """Another live process owns the job (holds its lease in the ledger): this one must not
    submit, poll, collect or cancel it. ``pid`` and ``host`` name the holder."""

    def __init__(
        self,
        message: str,
        *,
        job_id: str | None = None,
        pid: int | None = None,
        host: str | None = None,
    ) -> None:
        self.job_id = job_id
        self.pid = pid
        self.host = host
        super().__init__(message)


class WebhookRejectedError(PolybatchError):
    """A webhook delivery failed verification (bad or missing signature, a timestamp outside the
    tolerance, a body that is not an event): it is answered 401 and changes nothing."""
