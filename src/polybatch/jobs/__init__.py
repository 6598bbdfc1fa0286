"""The job engine: plan, submit, drive, collect and account for batch jobs.

- :mod:`.submit`: the entry points (``submit``, ``asubmit``, ``run``, ``arun``)
- :mod:`.handle`: the public :class:`Job` handle, :class:`JobStatus`, :func:`jobs`
- :mod:`.driver`: one step of a job (recover, submit, poll, collect; transient failures)
- :mod:`.files`: the job directory (paths, merging rounds, publishing), usable without a Job
- :mod:`.planner`: reading, validating and chunking the input
- :mod:`.ledger`: the SQLite ledger of jobs, chunks and side effects
- :mod:`.tally`: counts and usage totals of results, kept in the ledger as results are written
- :mod:`.costs`: usage and cost of finished jobs, from the ledger's tallies (or the files)
- :mod:`.clients`: building provider adapters for jobs
"""

from __future__ import annotations

from .costs import job_cost, job_records, usage_table
from .handle import Job, jobs
from .status import BatchInfo, JobStatus
from .submit import arun, asubmit, run, submit

__all__ = [
    "BatchInfo",
    "Job",
    "JobStatus",
    "arun",
    "asubmit",
    "job_cost",
    "job_records",
    "jobs",
    "run",
    "submit",
    "usage_table",
]
