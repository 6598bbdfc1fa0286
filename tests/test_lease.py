"""The lease module on its own: acquire, renew, release, liveness, takeover, the heartbeat."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from polybatch import JobBusyError
from polybatch.jobs import lease
from polybatch.jobs.ledger import Ledger


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    return Ledger(tmp_path / "ledger.sqlite3")


def put(ledger: Ledger, job_id: str, owner: str, pid: int, host: str, expires: float) -> None:
    with ledger._tx() as db:
        db.execute(
            "INSERT OR REPLACE INTO leases VALUES (?,?,?,?,?,?)",
            (job_id, owner, pid, host, time.time(), expires),
        )


def dead_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def test_acquire_renew_release(ledger: Ledger) -> None:
    got = lease.acquire(ledger, "j1")
    assert (got.owner, got.pid, got.host) == (lease.token(), os.getpid(), lease.host())
    assert got.expires_at == pytest.approx(time.time() + lease.LEASE_SECONDS, abs=5)
    held = lease.holder(ledger, "j1")
    assert held == got
    assert lease.acquire(ledger, "j1").owner == lease.token()  # our own: renewed
    assert lease.renew(ledger, "j1")
    assert not lease.renew(ledger, "j1", owner="someone-else")
    lease.release(ledger, "j1", owner="someone-else")  # not theirs to release
    assert lease.holder(ledger, "j1") is not None
    lease.release(ledger, "j1")
    assert lease.holder(ledger, "j1") is None


def test_a_live_holder_refuses_another_owner(ledger: Ledger) -> None:
    put(ledger, "j1", "other", os.getppid(), lease.host(), time.time() + 60)
    with pytest.raises(JobBusyError) as err:
        lease.acquire(ledger, "j1")
    assert str(err.value) == f"job j1 is running in process {os.getppid()} on host {lease.host()}"
    assert (err.value.job_id, err.value.pid, err.value.host) == ("j1", os.getppid(), lease.host())
    assert err.value.exit_code == 2
    # another host: live until it expires, whatever its pid
    put(ledger, "j2", "other", 1, "elsewhere.example", time.time() + 60)
    with pytest.raises(JobBusyError, match=r"process 1 on host elsewhere\.example"):
        lease.acquire(ledger, "j2")
    # different jobs do not block each other
    assert lease.acquire(ledger, "j3").job_id == "j3"


@pytest.mark.parametrize(
    "why", ["dead pid on this host", "expired", "our pid, another token", "other host expired"]
)
def test_a_dead_holder_is_taken_over(ledger: Ledger, why: str) -> None:
    pid, host, expires = {
        "dead pid on this host": (dead_pid(), lease.host(), time.time() + 60),
        "expired": (os.getppid(), lease.host(), time.time() - 1),
        "our pid, another token": (os.getpid(), lease.host(), time.time() + 60),
        "other host expired": (1, "elsewhere.example", time.time() - 1),
    }[why]
    put(ledger, "j1", "old-owner", pid, host, expires)
    assert lease.acquire(ledger, "j1").owner == lease.token()
    assert [e["kind"] for e in ledger.events("j1")] == ["lease-takeover"]


def test_owning_counts_holders_and_releases_with_the_last(ledger: Ledger) -> None:
    with lease.owning(ledger, "j1"):
        with lease.owning(ledger, "j1"):
            assert lease.held_by_me(ledger, "j1")
        assert lease.holder(ledger, "j1") is not None
    assert lease.holder(ledger, "j1") is None
    assert not lease.held_by_me(ledger, "j1")


def test_keeping_holds_until_the_block_ends(ledger: Ledger) -> None:
    with lease.keeping():
        with lease.owning(ledger, "j1"):
            pass
        assert lease.holder(ledger, "j1") is not None, "kept: no gap between submit and wait"
        with lease.owning(ledger, "j1"):
            pass
    assert lease.holder(ledger, "j1") is None


def test_a_busy_owning_block_leaves_nothing_held(ledger: Ledger) -> None:
    put(ledger, "j1", "other", os.getppid(), lease.host(), time.time() + 60)
    with pytest.raises(JobBusyError), lease.owning(ledger, "j1"):
        pytest.fail("entered")
    assert not lease.held_by_me(ledger, "j1")
    assert lease.holder(ledger, "j1") is not None and lease.holder(ledger, "j1").owner == "other"  # type: ignore[union-attr]


def test_the_heartbeat_renews_a_held_lease(ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lease, "HEARTBEAT_SECONDS", 0.05)
    monkeypatch.setattr(lease, "LEASE_SECONDS", 0.5)
    with lease.owning(ledger, "j1"):
        first = lease.holder(ledger, "j1")
        assert first is not None
        time.sleep(1.0)  # twice the expiry: only the heartbeat keeps it alive
        later = lease.holder(ledger, "j1")
        assert later is not None and later.heartbeat_at > first.heartbeat_at
        assert lease.is_live(later)


def test_a_lost_lease_stops_the_next_step(ledger: Ledger) -> None:
    with lease.owning(ledger, "j1"):
        # suspended past the expiry, say, and taken over meanwhile by another process
        put(ledger, "j1", "thief", os.getppid(), lease.host(), time.time() + 60)
        with (
            pytest.raises(JobBusyError, match=f"process {os.getppid()}"),
            lease.owning(ledger, "j1"),
        ):
            pytest.fail("entered")
    assert lease.holder(ledger, "j1").owner == "thief"  # type: ignore[union-attr]


def test_an_older_ledger_gets_the_leases_table_on_open(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    Ledger(path).close()
    db = sqlite3.connect(path)
    db.execute("DROP TABLE leases")
    db.commit()
    db.close()
    assert lease.acquire(Ledger(path), "j1").job_id == "j1"


def test_an_exited_but_unreaped_holder_is_dead(ledger: Ledger) -> None:
    child = subprocess.Popen(["true"])  # a test that SIGKILLs a run and resumes before reaping it
    try:
        deadline = time.monotonic() + 10
        while not Path(f"/proc/{child.pid}/stat").read_text().rpartition(")")[2].startswith(" Z"):
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert not lease.pid_alive(child.pid)
        put(ledger, "j1", "killed", child.pid, lease.host(), time.time() + 60)
        assert lease.acquire(ledger, "j1").owner == lease.token()
    finally:
        child.wait()
    assert lease.pid_alive(os.getpid())
