"""Opening one new ledger from several threads at once (two jobs submitted concurrently on one
event loop do it through ``asyncio.to_thread``): each opener waits for the others, none fails.

SQLite answers ``database is locked`` at once, without the busy timeout, to a connection that
switches a new database into WAL while another is doing the same; CI hit it in
``test_jobs_on_two_providers_run_concurrently_on_one_loop``. A race, so many rounds.
"""

from __future__ import annotations

import threading
from pathlib import Path

from polybatch.jobs.ledger import Ledger

THREADS = 6
ROUNDS = 300


def open_at_once(path: Path) -> list[BaseException]:
    """``THREADS`` threads open ``path`` together (released by one barrier); what they raised."""
    barrier = threading.Barrier(THREADS)
    errors: list[BaseException] = []

    def open_it() -> None:
        barrier.wait()
        try:
            Ledger(path)
        except BaseException as exc:  # collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def test_a_new_ledger_opened_by_many_threads_at_once(tmp_path: Path) -> None:
    for round_ in range(ROUNDS):
        errors = open_at_once(tmp_path / f"ledger-{round_}.sqlite3")
        assert not errors, (round_, errors)
