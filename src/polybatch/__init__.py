"""polybatch: LLM batch APIs behind one provider-neutral core.

Plain strings in, results out::

    import polybatch
    results = polybatch.run(["Hello?", "Goodbye?"], "openai:gpt-4o-mini")
"""

from .config import JobOptions, RequestDefaults
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
from .jobs import Job, JobStatus, arun, asubmit, jobs, run, submit, usage_table
from .providers import BatchProvider, BatchStatus, Limits, SubmittedBatch, parse_model

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
    "JobOptions",
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
    "RequestDefaults",
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
