"""polybatch: LLM batch APIs behind one provider-neutral core.

Plain strings in, results out::

    import polybatch
    results = polybatch.run(["Hello?", "Goodbye?"], "openai:gpt-4o-mini")
"""

from .accounting import usage_table
from .errors import (
    BatchFailedError,
    BudgetExceededError,
    ConfigError,
    CredentialsError,
    InputError,
    ItemValidationError,
    JobError,
    PluginError,
    PolybatchError,
    PriceNotFoundError,
    PricingError,
    ProviderConnectionError,
    ProviderError,
    ProviderHTTPError,
    UnknownProviderError,
)
from .hookspecs import hookimpl
from .inputs import read_items
from .items import BatchItem, BatchResult, ItemError, Message, Usage
from .providers import BatchProvider, BatchStatus, Limits, SubmittedBatch, parse_model
from .runner import Job, JobStatus, arun, asubmit, jobs, run, submit

__all__ = [
    "BatchFailedError",
    "BatchItem",
    "BatchProvider",
    "BatchResult",
    "BatchStatus",
    "BudgetExceededError",
    "ConfigError",
    "CredentialsError",
    "InputError",
    "ItemError",
    "ItemValidationError",
    "Job",
    "JobError",
    "JobStatus",
    "Limits",
    "Message",
    "PluginError",
    "PolybatchError",
    "PriceNotFoundError",
    "PricingError",
    "ProviderConnectionError",
    "ProviderError",
    "ProviderHTTPError",
    "SubmittedBatch",
    "UnknownProviderError",
    "Usage",
    "arun",
    "asubmit",
    "hookimpl",
    "jobs",
    "parse_model",
    "read_items",
    "run",
    "submit",
    "usage_table",
]
