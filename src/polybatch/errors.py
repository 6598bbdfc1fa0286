"""The polybatch exception tree.

::

    PolybatchError
    +-- ConfigError                 bad configuration: exit code 2, nothing submitted
    |   +-- UnknownProviderError    "provider:model" names no installed provider
    |   +-- CredentialsError        a key or endpoint is missing
    |   +-- InputError              an input file is malformed (file, line, field)
    |   +-- ItemValidationError     an item cannot be expressed for the chosen provider
    |   +-- BudgetExceededError     the cost estimate is above --max-cost
    +-- ProviderError               the provider's API failed (HTTP, batch failed)
    +-- PricingError
    |   +-- PriceNotFoundError
    +-- PluginError                 a plugin is broken or two plugins clash
    +-- JobError                    a job cannot be found or continued

Provider SDK exceptions are translated once, at the adapter boundary, with ``raise ... from``.
Per-item failures are data on :class:`~polybatch.items.BatchResult`, never exceptions.
"""

from __future__ import annotations


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


class ProviderError(PolybatchError):
    """A provider call failed, or a provider batch failed as a whole."""

    def __init__(
        self, message: str, *, provider: str | None = None, status_code: int | None = None
    ):
        self.provider = provider
        self.status_code = status_code
        super().__init__(f"{provider}: {message}" if provider else message)

    @property
    def retryable(self) -> bool:
        """True for failures worth retrying later (rate limits, server errors, timeouts)."""
        return (
            self.status_code is None
            or self.status_code in (408, 409, 429)
            or self.status_code >= 500
        )


class PricingError(PolybatchError):
    """Price data is malformed or missing."""


class PriceNotFoundError(PricingError):
    """No price row matches (provider, model, mode, date)."""


class PluginError(PolybatchError):
    """A plugin failed to load or clashes with another plugin."""


class JobError(PolybatchError):
    """A job cannot be found, loaded or continued."""

    exit_code = 2
