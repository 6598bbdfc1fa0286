"""End-to-end throughput and memory: polybatch against the bare openai SDK, on the sandbox.

Starts ``polybatch sandbox`` (instant processing) in its own process, so that the figures are
the client's alone, then for each size runs, each in a fresh process:

* polybatch: ``polybatch.submit(...)`` + ``job.wait()`` + reading every result;
* polybatch async: the same with ``await polybatch.asubmit(...)`` + ``await job.await_done()``
  on the script's own event loop;
* the floor: ``bare_openai.py`` (write JSONL, upload, create, poll, download, parse).

Prints wall time, items per second and peak RSS. Usage::

    python benchmarks/bench_e2e.py            # 10,000 and 100,000 items
    python benchmarks/bench_e2e.py --full     # and 1,000,000
    python benchmarks/bench_e2e.py --sizes 5000,20000
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
KEY = "bench-key"

POLYBATCH = """
import resource, sys, time
from pathlib import Path
from polybatch import submit
start = time.perf_counter()
job = submit(Path(sys.argv[1]), "openai:gpt-4o-mini", new=True)
job.wait(poll_min=0.2, poll_max=0.5)
n = sum(1 for _ in job.results())
print(n, f"{time.perf_counter() - start:.2f}", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


POLYBATCH_ASYNC = """
import asyncio, resource, sys, time
from pathlib import Path
from polybatch import asubmit

async def main():
    job = await asubmit(Path(sys.argv[1]), "openai:gpt-4o-mini", new=True)
    await job.await_done(poll_min=0.2, poll_max=0.5)
    return job

start = time.perf_counter()
job = asyncio.run(main())
n = sum(1 for _ in job.results())
print(n, f"{time.perf_counter() - start:.2f}", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_input(path: Path, n: int) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for i in range(n):
            fh.write(
                json.dumps(
                    {
                        "custom_id": f"r{i:07d}",
                        "prompt": f"Summarise document {i} in one line.",
                        "max_tokens": 16,
                    }
                )
                + "\n"
            )


def measure(cmd: list[str], env: dict[str, str]) -> tuple[int, float, int]:
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True).stdout.split()
    return int(out[0]), float(out[1]), int(out[2])


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--full", action="store_true", help="include 1,000,000 items")
    ap.add_argument("--sizes", help="comma-separated item counts")
    args = ap.parse_args()
    sizes = (
        [int(s) for s in args.sizes.split(",")]
        if args.sizes
        else [10_000, 100_000] + ([1_000_000] if args.full else [])
    )
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "polybatch.cli", "sandbox", "--port", str(port), "--key", KEY],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert server.stdout is not None
        server.stdout.readline()  # "polybatch sandbox on ..." once it listens
        base = f"http://127.0.0.1:{port}/openai/v1"
        with tempfile.TemporaryDirectory() as tmp:
            env = {
                **os.environ,
                "OPENAI_API_KEY": KEY,
                "OPENAI_BASE_URL": base,
                "POLYBATCH_HOME": str(Path(tmp) / "home"),
            }
            print(
                f"{'items':>10} {'tool':>10} {'seconds':>9} {'items/s':>10} {'peak RSS MiB':>13} {'vs floor':>9}"
            )
            for n in sizes:
                path = Path(tmp) / f"in-{n}.jsonl"
                write_input(path, n)
                floor = measure(
                    [sys.executable, str(HERE / "bare_openai.py"), str(path), base, KEY], env
                )
                ours = measure([sys.executable, "-c", POLYBATCH, str(path)], env)
                ours_async = measure([sys.executable, "-c", POLYBATCH_ASYNC, str(path)], env)
                assert floor[0] == n and ours[0] == n and ours_async[0] == n
                rows = (("bare SDK", floor), ("polybatch", ours), ("async", ours_async))
                for name, (_, secs, rss) in rows:
                    ratio = f"{secs / floor[1]:.2f}x" if name != "bare SDK" else ""
                    print(
                        f"{n:>10,} {name:>10} {secs:>9.2f} {n / secs:>10,.0f} {rss / 1024:>13.1f} {ratio:>9}"
                    )
                time.sleep(0.1)
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
