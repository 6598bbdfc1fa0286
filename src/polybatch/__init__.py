"""polybatch: LLM batch APIs behind one provider-neutral core."""

from .errors import PolybatchError
from .hookspecs import hookimpl
from .items import BatchItem, BatchResult, ItemError, Message, Usage
from .providers import BatchProvider, BatchStatus, Limits, SubmittedBatch

__all__ = [
    "BatchItem",
    "BatchProvider",
    "BatchResult",
    "BatchStatus",
    "ItemError",
    "Limits",
    "Message",
    "PolybatchError",
    "SubmittedBatch",
    "Usage",
    "hookimpl",
]
