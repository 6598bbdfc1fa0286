"""The floor: the same job with the bare openai SDK and nothing else.

Write JSONL files of at most 50,000 requests (OpenAI's per-batch limit), upload them, create the
batches, poll, download output and error files, parse every line. No ledger, no validation, no
resume. Prints: items, seconds, peak RSS (KiB). Used by run_all.py; not part of the tests.
"""

from __future__ import annotations

import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import openai

MAX_PER_BATCH = 50_000


def main(input_path: str, base_url: str, api_key: str) -> None:
    start = time.perf_counter()
    client = openai.OpenAI(base_url=base_url, api_key=api_key)
    batch_ids: list[str] = []
    with tempfile.TemporaryDirectory() as tmp, open(input_path, encoding="utf-8") as src:
        done = False
        part = 0
        while not done:
            wire = Path(tmp) / f"batch-{part}.jsonl"
            count = 0
            with wire.open("w", encoding="utf-8") as out:
                for line in src:
                    item = json.loads(line)
                    body = {
                        "model": "gpt-4o-mini",
                        "messages": [{"role": "user", "content": item["prompt"]}],
                        "max_completion_tokens": item.get("max_tokens", 16),
                    }
                    out.write(
                        json.dumps(
                            {
                                "custom_id": item["custom_id"],
                                "method": "POST",
                                "url": "/v1/chat/completions",
                                "body": body,
                            }
                        )
                        + "\n"
                    )
                    count += 1
                    if count == MAX_PER_BATCH:
                        break
                else:
                    done = True
            if count == 0:
                break
            with wire.open("rb") as fh:
                uploaded = client.files.create(file=fh, purpose="batch")
            batch = client.batches.create(
                input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
            )
            batch_ids.append(batch.id)
            part += 1
    n = 0
    for batch_id in batch_ids:
        batch = client.batches.retrieve(batch_id)
        while batch.status not in ("completed", "failed", "expired", "cancelled"):
            time.sleep(0.2)
            batch = client.batches.retrieve(batch_id)
        for file_id in (batch.output_file_id, batch.error_file_id):
            if not file_id:
                continue
            with client.files.with_streaming_response.content(file_id) as resp:
                rest = b""
                for raw in resp.iter_bytes():
                    *lines, rest = (rest + raw).split(b"\n")
                    for line in lines:
                        json.loads(line)  # parse every result, as any real consumer does
                        n += 1
                if rest.strip():
                    json.loads(rest)
                    n += 1
    elapsed = time.perf_counter() - start
    print(n, f"{elapsed:.2f}", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


if __name__ == "__main__":
    main(*sys.argv[1:4])
