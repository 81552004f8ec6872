"""aifkit.processes against real process trees, sessions, groups and uids."""

from __future__ import annotations

import contextlib
import os
import pwd
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from aifkit import processes

# A child that says "ready" once its SIGTERM handler is in place, then sleeps.
IGNORES_TERM = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "print('ready', flush=True); time.sleep(300)"
)
LEAVES_ON_TERM = (
    "import pathlib, signal, sys, time\n"
    "def leave(*_):\n"
    "    pathlib.Path(sys.argv[1]).write_text('terminated')\n"
    "    sys.exit(3)\n"
    "signal.signal(signal.SIGTERM, leave)\n"
    "print('ready', flush=True)\n"
    "time.sleep(300)\n"
)
OWN_SESSION = "import os, time; os.setsid(); time.sleep(300)"


def wait_for(condition: Callable[[], bool], what: str, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def running(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def group_members(pgid: int) -> list[int]:
    """Pids of the running members of process group ``pgid``, seen independently of aifkit."""
    members = []
    for process in psutil.process_iter():
        with contextlib.suppress(OSError, psutil.Error):
            if os.getpgid(process.pid) == pgid and running(process):
                members.append(process.pid)
    return members


def owned_by(uid: int) -> list[int]:
    """Pids of the running processes of ``uid``."""
    return [
        p.pid
        for p in psutil.process_iter(["uids"])
        if p.info["uids"] and p.info["uids"].real == uid and running(p)
    ]


def gone(pids: list[int]) -> bool:
    """True when none of ``pids`` runs any more (a zombie waiting for its parent has exited)."""
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                return False
        except psutil.NoSuchProcess:
            pass
    return True


@pytest.fixture
def spawn() -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """Start processes for a test; whatever a failing test leaves is SIGKILLed by hand."""
    started: list[subprocess.Popen[str]] = []

    def _spawn(argv: list[str], **kwargs: object) -> subprocess.Popen[str]:
        process = subprocess.Popen(argv, text=True, **kwargs)  # type: ignore[call-overload]
        started.append(process)
        return process

    yield _spawn
    for process in started:
        try:
            tree = [
                *psutil.Process(process.pid).children(recursive=True),
                psutil.Process(process.pid),
            ]
        except psutil.NoSuchProcess:
            tree = []
        for leftover in tree:
            with contextlib.suppress(psutil.NoSuchProcess):
                leftover.kill()
        process.wait(timeout=10)


def sessions(pids: list[int]) -> set[int]:
    found = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            found.add(os.getsid(pid))
    return found


def tree_pids(root: int, count: int, *, session_count: int = 1) -> list[int]:
    """Wait until ``count`` processes in ``session_count`` sessions run below ``root`` (each
    has started and, where it will, left for a session of its own); return their pids."""

    def ready() -> bool:
        below = [p.pid for p in processes.descendants(root)]
        return len(below) == count and len(sessions(below)) == session_count

    wait_for(ready, f"{count} descendants of {root} in {session_count} session(s)")
    return [p.pid for p in processes.descendants(root)]


def test_kill_tree_ends_grandchildren_and_a_process_in_its_own_session(spawn) -> None:
    """Does kill_tree end children, grandchildren and a descendant that left for its own
    session, and leave the root's exit status for its parent to read?"""
    script = f"{sys.executable} -c '{OWN_SESSION}' & sh -c 'sleep 300 & sleep 300 & wait' & wait"
    root = spawn(["sh", "-c", script])
    below = tree_pids(root.pid, 4, session_count=2)  # python (own session), sh, two sleeps

    assert processes.kill_tree(root.pid) == 5
    assert gone(below)
    assert root.wait(timeout=5) == -signal.SIGKILL, "the root was reaped by someone else"


def test_kill_tree_can_spare_the_root(spawn) -> None:
    """With include_root=False, are the descendants gone while the root keeps running?"""
    root = spawn(["sh", "-c", "sleep 300 & sleep 300 & wait; sleep 300"])
    below = tree_pids(root.pid, 2)
    assert processes.kill_tree(root.pid, include_root=False) == 2
    assert gone(below)
    assert root.poll() is None


def test_grace_gives_sigterm_first(spawn, tmp_path: Path) -> None:
    """With a grace, does a process that handles SIGTERM leave on its own, and without one,
    is it SIGKILLed before it can?"""
    marker = tmp_path / "left"
    polite = spawn([sys.executable, "-c", LEAVES_ON_TERM, str(marker)], stdout=subprocess.PIPE)
    assert polite.stdout is not None and polite.stdout.readline().strip() == "ready"
    assert processes.kill_tree(polite.pid, grace_s=10.0) == 1
    assert polite.wait(timeout=5) == 3 and marker.read_text() == "terminated"

    marker.unlink()
    abrupt = spawn([sys.executable, "-c", LEAVES_ON_TERM, str(marker)], stdout=subprocess.PIPE)
    assert abrupt.stdout is not None and abrupt.stdout.readline().strip() == "ready"
    processes.kill_tree(abrupt.pid)
    assert abrupt.wait(timeout=5) == -signal.SIGKILL and not marker.exists()


def test_a_process_ignoring_sigterm_is_killed_after_the_grace(spawn) -> None:
    """Does a process that ignores SIGTERM get SIGKILL once the grace is over, not before?"""
    stubborn = spawn([sys.executable, "-c", IGNORES_TERM], stdout=subprocess.PIPE)
    assert stubborn.stdout is not None and stubborn.stdout.readline().strip() == "ready"
    start = time.monotonic()
    assert processes.kill_tree(stubborn.pid, grace_s=0.5) == 1
    waited = time.monotonic() - start
    assert stubborn.wait(timeout=5) == -signal.SIGKILL
    assert 0.5 <= waited < 5.0, f"took {waited:.2f} s"


def test_kill_group_reaches_members_that_left_the_tree(spawn) -> None:
    """Does kill_group end every member of a group, one whose parent already died included?"""
    # The subshell exits at once: its sleep is orphaned but stays in the leader's group.
    leader = spawn(["sh", "-c", "(sleep 300 &); sleep 300 & wait"], start_new_session=True)

    def orphans() -> set[int]:
        below = {leader.pid} | {p.pid for p in processes.descendants(leader.pid)}
        return set(group_members(leader.pid)) - below

    wait_for(
        lambda: len(group_members(leader.pid)) == 3 and len(orphans()) == 1,
        "three members in the group, one of them no longer below the leader",
    )
    members = group_members(leader.pid)

    assert processes.kill_group(leader.pid, grace_s=0.2) == 3
    assert gone(members)
    assert leader.wait(timeout=5) == -signal.SIGTERM
    assert processes.kill_group(leader.pid) == 0


def test_processes_that_vanished_are_no_error(spawn, tmp_path: Path) -> None:
    """Are an exited (zombie) process, an unknown pid and a stale pid file simply nothing?"""
    done = spawn(["true"])
    wait_for(lambda: gone([done.pid]), "true to exit")
    assert processes.kill_tree(done.pid, grace_s=0.1) == 0
    assert processes.descendants(done.pid) == []
    assert done.wait(timeout=5) == 0, "the zombie's exit status is still its parent's to read"

    stale = tmp_path / "proxy.pid"
    stale.write_text(str(os.getpid()))
    assert processes.from_pid_file(stale, command_contains="configurable-http-proxy") is None
    assert processes.from_pid_file(stale, command_contains="pytest") is not None
    assert processes.from_pid_file(tmp_path / "missing.pid", command_contains="x") is None
    assert processes.terminate([]) == 0


def free_uid() -> int:
    """A uid with no account and no process (outside the grading sandbox's 61000-61255)."""
    running = {p.info["uids"].real for p in psutil.process_iter(["uids"]) if p.info["uids"]}
    for uid in range(62000, 63000):
        try:
            pwd.getpwuid(uid)
        except KeyError:
            if uid not in running:
                return uid
    raise AssertionError("no free uid between 62000 and 63000")


@pytest.mark.skipif(os.geteuid() != 0, reason="starting processes as another uid needs root")
def test_kill_user_ends_escaped_daemons_and_respawners(spawn) -> None:
    """Does kill_user end every process of a uid (an escaped daemon and a loop that keeps
    forking included) and touch nothing of anyone else's?"""
    uid = free_uid()
    bystander = spawn(["sleep", "300"])
    script = "(setsid sleep 300 &); while :; do sleep 300 & sleep 0.01; done"
    spawn(["sh", "-c", script], user=uid, group=uid, cwd="/")
    wait_for(lambda: len(owned_by(uid)) >= 5, "the uid's processes")

    assert processes.kill_user(uid) >= 5
    assert owned_by(uid) == []
    assert bystander.poll() is None


def test_kill_user_refuses_the_callers_own_uid() -> None:
    """Is killing every process of root or of our own uid refused instead of done?"""
    for uid in {0, os.getuid()}:
        with pytest.raises(ValueError, match="refusing"):
            processes.kill_user(uid)
