"""Clean-up at the provider: what a job's batches left there (uploaded inputs, output and error
files), deleted once the job's results are safe on disk.

A finished job deletes its uploaded inputs unless ``keep_files``, and with ``delete_outputs``
its output and error files too; :meth:`Job.cleanup <polybatch.jobs.handle.Job.cleanup>` does
either later. A failure to delete is a warning, never a lost job: the results are already local.
"""

from __future__ import annotations

import logging

from ..errors import ProviderError
from ..providers import BatchProvider, SubmittedBatch
from .ledger import ChunkRow

log = logging.getLogger("polybatch")


async def delete_at_provider(
    job_id: str,
    provider: BatchProvider,
    chunks: list[ChunkRow],
    *,
    inputs: bool,
    outputs: bool,
) -> list[str]:
    """Delete the chunks' uploaded inputs and/or output and error files; the output file ids
    deleted. Each failure is logged as a warning and the others still go."""
    deleted: list[str] = []
    for c in chunks:
        if not c.batch_id:
            continue  # never sent: nothing at the provider
        if inputs and c.input_file_id:
            try:
                await provider.acleanup(
                    SubmittedBatch(batch_id=c.batch_id, input_file_id=c.input_file_id)
                )
            except ProviderError as exc:
                log.warning(
                    "job %s: could not delete input file %s: %s", job_id, c.input_file_id, exc
                )
        if outputs:
            try:
                deleted += await provider.adelete_outputs(c.batch_id)
            except ProviderError as exc:
                log.warning(
                    "job %s: could not delete the outputs of batch %s: %s", job_id, c.batch_id, exc
                )
    return deleted
