"""Job.batches() names a Mistral job's output and error files, as the job object does (the ids
its own SDK client would download), through the real SDK against the sandbox."""

from __future__ import annotations

from mistral_testlib import MODEL, ServerFactory, items

import polybatch


def test_batches_name_the_output_and_error_files(make_server: ServerFactory) -> None:
    server = make_server()
    job = polybatch.submit(items(3), f"mistral:{MODEL}", sandbox=server)
    job.wait(poll_min=0.01, poll_max=0.05, timeout=60)
    (batch,) = job.batches()
    assert batch.batch_id in server.engine.batches
    assert batch.state == "collected" and batch.batch_state == "completed"
    assert batch.input_file_id and batch.output_file_id
    assert batch.output_file_id != batch.input_file_id
