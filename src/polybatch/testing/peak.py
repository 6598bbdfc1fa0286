"""Run the ``polybatch`` command in this process and record its own peak RSS when it exits.

``python -m polybatch.testing.peak PEAK_FILE run in.jsonl -m openai:gpt-4o-mini ...`` behaves as
``polybatch run ...`` (same output, same exit code) and writes the process's peak resident set
size in KiB (``ru_maxrss`` on Linux) to ``PEAK_FILE``, even when the command fails. The
flat-memory test and ``benchmarks/run_all.py`` both measure the CLI path with it, so the figure
they report is the command users run, not a harness around it.
"""

from __future__ import annotations

import resource
import sys
from pathlib import Path


def peak_rss_kib() -> int:
    """This process's peak resident set size so far, in KiB (Linux reports ``ru_maxrss`` in KiB)."""
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if not args:
        raise SystemExit("usage: python -m polybatch.testing.peak PEAK_FILE [polybatch args...]")
    peak_file, command = Path(args[0]), args[1:]
    from ..cli import main as polybatch

    sys.argv = ["polybatch", *command]
    try:
        polybatch()
    finally:
        peak_file.write_text(str(peak_rss_kib()), encoding="utf-8")


if __name__ == "__main__":
    main()
