"""Throughput and memory on the paths users run, against the bare-SDK floor, in one run.

Starts ``polybatch sandbox`` (instant processing) in its own process, so that the figures are the
client's alone, then for each size runs, each in a fresh process and interleaved (floor, API, CLI,
floor, API, CLI, ...):

* ``floor``: ``bare_openai.py``, the same job with the bare openai SDK (write JSONL in 50,000-line
  files, upload, create, poll, download, parse every line), no validation, ledger or resume;
* ``api``: ``polybatch.submit(...)`` + ``job.wait()`` + reading every result;
* ``cli``: ``polybatch run INPUT -m openai:gpt-4o-mini -o OUT --no-progress`` as a user runs it
  (estimate, progress lines, the results file and the usage table included).

Every time is the wall time of the whole process, start-up and imports included, as a user
waits for it. Prints each run, then per size the median seconds, the ratio of the medians to the floor's and the
largest peak RSS. Usage::

    python benchmarks/run_all.py                      # 10,000 and 100,000 items, 3 repetitions
    python benchmarks/run_all.py --sizes 1000000 --repeat 1
    python benchmarks/run_all.py --profile 100000     # cProfile the CLI path, top functions
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
KEY = "bench-key"
MODEL = "openai:gpt-4o-mini"

API = """
import resource, sys, time
from pathlib import Path
from polybatch import submit
start = time.perf_counter()
job = submit(Path(sys.argv[1]), "openai:gpt-4o-mini", new=True)
job.wait(poll_min=0.2, poll_max=0.5)
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


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, str]:
    """Run ``cmd``; its wall time and its stdout."""
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[:4]} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return elapsed, proc.stdout


def run_floor(path: Path, n: int, env: dict[str, str], base: str) -> tuple[float, int]:
    cmd = [sys.executable, str(HERE / "bare_openai.py"), str(path), base, KEY]
    secs, out = timed(cmd, env)
    count, _, rss = out.split()
    assert int(count) == n, out
    return secs, int(rss)


def run_api(path: Path, n: int, env: dict[str, str], base: str) -> tuple[float, int]:
    secs, out = timed([sys.executable, "-c", API, str(path)], env)
    count, _, rss = out.split()
    assert int(count) == n, out
    return secs, int(rss)


# the CLI as users run it, in a child process that records its own peak RSS on exit
def run_cli(path: Path, n: int, env: dict[str, str], base: str) -> tuple[float, int]:
    out_path = path.with_suffix(".out.jsonl")
    peak = path.with_suffix(".peak")
    args = ["run", str(path), "-m", MODEL, "--new", "--no-progress", "-o", str(out_path)]
    cmd = [sys.executable, "-m", "polybatch.testing.peak", str(peak), *args]
    secs, out = timed(cmd, env)
    assert f"{n} results ({n} succeeded)" in out, out
    with out_path.open("rb") as fh:
        assert sum(1 for _ in fh) == n
    return secs, int(peak.read_text())


RUNNERS: dict[str, Callable[[Path, int, dict[str, str], str], tuple[float, int]]] = {
    "floor": run_floor,
    "api": run_api,
    "cli": run_cli,
}


PROFILE = """
import cProfile, pstats, sys, threading
from polybatch.cli import main
# every thread (the portal loop, asyncio.to_thread workers) gets its own profiler; merged at exit
profilers = []
_run = threading.Thread.run
def run(self):
    p = cProfile.Profile()
    profilers.append(p)
    p.enable()
    try:
        _run(self)
    finally:
        p.disable()
threading.Thread.run = run
dest, sys.argv = sys.argv[1], ["polybatch", *sys.argv[2:]]
me = cProfile.Profile()
me.enable()
try:
    main()
except SystemExit:
    pass
me.disable()
stats = pstats.Stats(me)
for p in profilers:
    p.create_stats()
    stats.add(p)
stats.dump_stats(dest)
"""


def profile_cli(path: Path, env: dict[str, str], dest: Path) -> None:
    """cProfile ``polybatch run`` on ``path`` (every thread) and print the top functions."""
    args = ["run", str(path), "-m", MODEL, "--new", "--no-progress"]
    args += ["-o", str(path.with_suffix(".out.jsonl"))]
    subprocess.run(
        [sys.executable, "-c", PROFILE, str(dest), *args], env=env, check=True, capture_output=True
    )
    import pstats

    stats = pstats.Stats(str(dest))
    stats.sort_stats("tottime").print_stats(30)
    stats.sort_stats("cumulative").print_stats(60)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--sizes", default="10000,100000", help="comma-separated item counts")
    ap.add_argument("--repeat", type=int, default=3, help="interleaved repetitions per size")
    ap.add_argument("--only", default="floor,api,cli", help="which of floor,api,cli to run")
    ap.add_argument("--profile", type=int, metavar="N", help="profile the CLI path at N items")
    args = ap.parse_args()
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
            if args.profile:
                path = Path(tmp) / f"in-{args.profile}.jsonl"
                write_input(path, args.profile)
                profile_cli(path, env, Path(tmp) / "cli.prof")
                return
            tools = [t for t in args.only.split(",") if t]
            print(f"{'items':>10} {'run':>4} {'tool':>6} {'seconds':>9} {'peak RSS MiB':>13}")
            summary = []
            for n in (int(s) for s in args.sizes.split(",")):
                path = Path(tmp) / f"in-{n}.jsonl"
                write_input(path, n)
                times: dict[str, list[float]] = {t: [] for t in tools}
                peaks: dict[str, int] = dict.fromkeys(tools, 0)
                for rep in range(args.repeat):
                    for tool in tools:  # interleaved: A B C A B C ...
                        secs, rss = RUNNERS[tool](path, n, env, base)
                        times[tool].append(secs)
                        peaks[tool] = max(peaks[tool], rss)
                        print(
                            f"{n:>10,} {rep + 1:>4} {tool:>6} {secs:>9.2f} {rss / 1024:>13.1f}",
                            flush=True,
                        )
                summary.append((n, times, peaks))
            print()
            print(f"{'items':>10} {'tool':>6} {'median s':>9} {'vs floor':>9} {'peak RSS MiB':>13}")
            for n, times, peaks in summary:
                floor = statistics.median(times["floor"]) if "floor" in times else None
                for tool in tools:
                    med = statistics.median(times[tool])
                    ratio = f"{med / floor:.2f}x" if floor else "-"
                    print(f"{n:>10,} {tool:>6} {med:>9.2f} {ratio:>9} {peaks[tool] / 1024:>13.1f}")
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
