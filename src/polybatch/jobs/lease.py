"""One job, one owner: a lease in the ledger, held by the process that steps the job.

Two processes stepping one job (two ``polybatch run`` on the same input, a ``resume`` while the
``run`` still waits) would both submit its planned chunks. So whatever submits, polls, collects or
cancels first takes the job's lease: a row of the ledger's ``leases`` table naming the process
(an owner token, its pid and host), renewed by a heartbeat while it is held and released at the
end. A second process finds a live lease and raises :class:`~polybatch.errors.JobBusyError`
("job X is running in process P on host H"); it never submits.

A lease is live while its holder could still be working: on this host, while its pid is alive
and its heartbeat has not expired; on another host, until it expires. A dead holder's lease is
taken over (and the takeover logged in the job's events).

Leases are per process, not per :class:`~polybatch.jobs.Job` object: the same process may hold a
job through several handles (``submit`` then ``wait``), counted, and the lease is released when
the last one lets go (or, inside :func:`keeping`, when that block ends). One daemon thread renews
every lease this process holds; each step also renews its lease and stops (JobBusyError) if the
lease was lost meanwhile, say after the process was suspended past the expiry.
"""

from __future__ import annotations

import atexit
import logging
import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..errors import JobBusyError
from .ledger import Ledger

log = logging.getLogger("polybatch")

#: how often the holder renews its lease, seconds (tests shrink these)
HEARTBEAT_SECONDS = 10.0
#: how long a lease lives without a heartbeat, seconds
LEASE_SECONDS = 60.0


@dataclass(frozen=True)
class LeaseRow:
    """A lease as the ledger holds it."""

    job_id: str
    owner: str
    pid: int
    host: str
    heartbeat_at: float
    expires_at: float


def _new_token() -> str:
    return uuid.uuid4().hex


#: this process's owner token (a forked child gets its own)
_TOKEN = _new_token()


def token() -> str:
    """The owner token of this process."""
    return _TOKEN


def host() -> str:
    """This host's name, as leases record it."""
    return socket.gethostname()


def pid_alive(pid: int) -> bool:
    """True if a process with this pid exists on this host."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    """True for a process that has exited but not been reaped yet (Linux: its state is Z)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] == ["Z"]


def is_live(lease: LeaseRow, *, now: float | None = None) -> bool:
    """Whether the holder of ``lease`` may still be working (see the module docstring)."""
    now = time.time() if now is None else now
    if lease.expires_at <= now:
        return False
    if lease.host == host():
        if lease.pid == os.getpid():
            # our pid but not our token: an earlier process that had the same pid
            return lease.owner == token()
        return pid_alive(lease.pid)
    return True


def holder(ledger: Ledger, job_id: str) -> LeaseRow | None:
    """The lease on ``job_id`` as recorded (live or not), or None."""
    try:
        row = ledger._conn().execute("SELECT * FROM leases WHERE job_id = ?", (job_id,)).fetchone()
    except sqlite3.OperationalError as exc:  # a read-only ledger from before leases
        if "no such table" in str(exc):
            return None
        raise
    return LeaseRow(**dict(row)) if row else None


def busy_error(lease: LeaseRow) -> JobBusyError:
    return JobBusyError(
        f"job {lease.job_id} is running in process {lease.pid} on host {lease.host}",
        job_id=lease.job_id,
        pid=lease.pid,
        host=lease.host,
    )


def acquire(ledger: Ledger, job_id: str, *, owner: str | None = None) -> LeaseRow:
    """Take the lease on ``job_id`` for ``owner`` (default: this process), in one IMMEDIATE
    transaction; JobBusyError if another live process holds it. A dead holder's lease is taken
    over; this owner's own lease is renewed."""
    owner = owner or token()
    now = time.time()
    with ledger._tx() as db:
        row = db.execute("SELECT * FROM leases WHERE job_id = ?", (job_id,)).fetchone()
        old = LeaseRow(**dict(row)) if row else None
        if old is not None and old.owner != owner and is_live(old, now=now):
            raise busy_error(old)
        mine = LeaseRow(job_id, owner, os.getpid(), host(), now, now + LEASE_SECONDS)
        db.execute(
            "INSERT OR REPLACE INTO leases VALUES (?,?,?,?,?,?)",
            (mine.job_id, mine.owner, mine.pid, mine.host, mine.heartbeat_at, mine.expires_at),
        )
        if old is not None and old.owner != owner:
            db.execute(
                "INSERT INTO events VALUES (?,?,?,?,?)",
                (job_id, now, None, "lease-takeover", f"from process {old.pid} on {old.host}"),
            )
    return mine


def renew(ledger: Ledger, job_id: str, *, owner: str | None = None) -> bool:
    """Push the lease's expiry on; False if ``owner`` no longer holds it."""
    now = time.time()
    with ledger._tx() as db:
        cur = db.execute(
            "UPDATE leases SET heartbeat_at = ?, expires_at = ? WHERE job_id = ? AND owner = ?",
            (now, now + LEASE_SECONDS, job_id, owner or token()),
        )
        return cur.rowcount == 1


def release(ledger: Ledger, job_id: str, *, owner: str | None = None) -> None:
    """Give the lease up (only if ``owner`` holds it)."""
    with ledger._tx() as db:
        db.execute("DELETE FROM leases WHERE job_id = ? AND owner = ?", (job_id, owner or token()))


class _Keeper:
    """The leases this process holds, counted per (ledger, job), and their heartbeat thread."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.held: dict[tuple[str, str], tuple[Ledger, int]] = {}
        self.keeping = 0
        self.deferred: set[tuple[str, str]] = set()
        self.thread: threading.Thread | None = None
        #: set when a lease is taken: the thread beats at once, with the current interval
        self.wake = threading.Event()

    def hold(self, ledger: Ledger, job_id: str) -> None:
        key = (str(ledger.path), job_id)
        with self.lock:
            entry = self.held.get(key)
            if entry is None:
                acquire(ledger, job_id)
                self.held[key] = (ledger, 1)
                self._start()
            else:
                if not renew(entry[0], job_id):
                    # lost meanwhile (suspended past the expiry, say): taken again if nobody
                    # live has it, else JobBusyError and this process lets go
                    try:
                        acquire(entry[0], job_id)
                    except JobBusyError:
                        del self.held[key]
                        raise
                self.held[key] = (entry[0], entry[1] + 1)

    def let_go(self, ledger: Ledger, job_id: str) -> None:
        key = (str(ledger.path), job_id)
        with self.lock:
            entry = self.held.get(key)
            if entry is None:
                return
            if entry[1] > 1:
                self.held[key] = (entry[0], entry[1] - 1)
            elif self.keeping:
                self.held[key] = (entry[0], 0)
                self.deferred.add(key)
            else:
                del self.held[key]
                _quiet_release(entry[0], job_id)

    def end_keeping(self) -> None:
        with self.lock:
            self.keeping -= 1
            if self.keeping:
                return
            for key in sorted(self.deferred):
                entry = self.held.get(key)
                if entry is not None and entry[1] == 0:
                    del self.held[key]
                    _quiet_release(entry[0], key[1])
            self.deferred.clear()

    def release_all(self) -> None:
        with self.lock:
            for (_, job_id), (ledger, _n) in list(self.held.items()):
                _quiet_release(ledger, job_id)
            self.held.clear()
            self.deferred.clear()

    def _start(self) -> None:
        if self.thread is not None and self.thread.is_alive():
            self.wake.set()
            return
        self.thread = threading.Thread(target=self._beat, name="polybatch-lease", daemon=True)
        self.thread.start()

    def _beat(self) -> None:
        while True:
            self.wake.wait(HEARTBEAT_SECONDS)
            self.wake.clear()
            with self.lock:
                held = list(self.held.items())
            if not held:
                return
            for (_, job_id), (ledger, _n) in held:
                try:
                    if not renew(ledger, job_id):
                        log.warning("job %s: lease lost to another process", job_id)
                except sqlite3.Error as exc:  # the next beat tries again
                    log.warning("job %s: could not renew its lease: %s", job_id, exc)
            with self.lock:
                if not self.held:
                    return

    def after_fork(self) -> None:
        """In a forked child: nothing is held (the parent holds it), a new token."""
        global _TOKEN
        _TOKEN = _new_token()
        self.lock = threading.RLock()
        self.held = {}
        self.keeping = 0
        self.deferred = set()
        self.thread = None
        self.wake = threading.Event()


def _quiet_release(ledger: Ledger, job_id: str) -> None:
    try:
        release(ledger, job_id)
    except sqlite3.Error as exc:  # it expires on its own
        log.warning("job %s: could not release its lease: %s", job_id, exc)


_keeper = _Keeper()
os.register_at_fork(after_in_child=_keeper.after_fork)
atexit.register(_keeper.release_all)


@contextmanager
def owning(ledger: Ledger, job_id: str) -> Iterator[None]:
    """Hold the lease on ``job_id`` for this block (JobBusyError if another process holds it)."""
    _keeper.hold(ledger, job_id)
    try:
        yield
    finally:
        _keeper.let_go(ledger, job_id)


@contextmanager
def keeping() -> Iterator[None]:
    """Keep every lease this process takes in this block until the block ends (a command that
    submits a job and then waits for it holds the job throughout, with no gap between)."""
    with _keeper.lock:
        _keeper.keeping += 1
    try:
        yield
    finally:
        _keeper.end_keeping()


def held_by_me(ledger: Ledger, job_id: str) -> bool:
    """True while this process holds the lease on ``job_id``."""
    with _keeper.lock:
        return (str(ledger.path), job_id) in _keeper.held
