"""polybatch: LLM batch APIs behind one provider-neutral core.

Plain strings in, results out::

    import polybatch
    results = polybatch.run(["Hello?", "Goodbye?"], "openai:gpt-4o-mini")

What the same items would cost on several providers, cheapest first, without sending anything::

    rows = polybatch.estimate(["Hello?"], models=["openai:gpt-4o-mini", "gemini:gemini-2.5-flash"])
"""

from .compare import Comparison, Refusal, estimate
from .config import JobOptions, RequestDefaults
from .errors import (
    BatchFailedError,
    BudgetExceededError,
    ConfigError,
    CredentialsError,
    InputError,
    ItemValidationError,
    JobBusyError,
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
from .provider_plugin import ProviderPlugin
from .providers import BatchProvider, BatchStatus, Limits, SubmittedBatch, parse_model
from .report import to_openai

__all__ = [
    "BatchFailedError",
    "BatchItem",
    "BatchProvider",
    "BatchResult",
    "BatchStatus",
    "BudgetExceededError",
    "Comparison",
    "ConfigError",
    "CredentialsError",
    "InputError",
    "ItemError",
    "ItemValidationError",
    "Job",
    "JobBusyError",
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
    "ProviderPlugin",
    "Refusal",
    "RequestDefaults",
    "SubmittedBatch",
    "UnknownProviderError",
    "Usage",
    "arun",
    "asubmit",
    "estimate",
    "hookimpl",
    "jobs",
    "parse_model",
    "read_items",
    "run",
    "submit",
    "to_openai",
    "usage_table",
]
