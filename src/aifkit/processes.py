"""End processes: a process tree, a process group, or every process of a uid, on psutil.

The one place aifkit ends processes by pid rather than through the ``Popen`` or
``multiprocessing`` object that started them. Every function tolerates processes that vanish
while it works (they were leaving anyway) and skips those it may not signal. None of them reaps
a child: a zombie counts as dead and keeps its exit status for its parent
(``subprocess.Popen.wait``, ``multiprocessing.Process.join``) to read, which is why the waiting
here is not ``psutil.wait_procs`` (it reaps our own children and waits out the timeout on
another parent's zombie).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterable
from pathlib import Path

import psutil

KILL_WAIT_S = 5.0  # how long a SIGKILLed process is given to disappear
KILL_USER_TIMEOUT_S = 5.0  # how long kill_user keeps going after processes that keep forking


def descendants(pid: int) -> list[psutil.Process]:
    """Every live process below ``pid``, those in sessions of their own included; [] once gone."""
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []
    return [child for child in children if _alive(child)]


def from_pid_file(path: Path, *, command_contains: str) -> psutil.Process | None:
    """The live process a pid file names, if its command line contains ``command_contains``
    (a stale file's pid may belong to someone else by now)."""
    try:
        process = psutil.Process(int(path.read_text().strip()))
        if command_contains in " ".join(process.cmdline()) and _alive(process):
            return process
    except (OSError, ValueError, psutil.Error):
        pass
    return None


def terminate(processes: Iterable[psutil.Process], *, grace_s: float = 0.0) -> int:
    """End ``processes``: SIGTERM and up to ``grace_s`` to exit when a grace is given, then
    SIGKILL for whatever is left. Returns how many live processes were signalled."""
    survivors = [process for process in processes if _alive(process)]
    signalled: set[psutil.Process] = set()
    if grace_s > 0:
        asked = _signal(survivors, signal.SIGTERM)
        signalled.update(asked)
        survivors = _wait_dead(asked, grace_s)
    killed = _signal(survivors, signal.SIGKILL)
    signalled.update(killed)
    _wait_dead(killed, KILL_WAIT_S)
    return len(signalled)


def kill_tree(pid: int, *, include_root: bool = True, grace_s: float = 0.0) -> int:
    """End ``pid``'s descendants and, with ``include_root``, ``pid`` itself (see terminate).

    The tree is listed before anything is signalled: once a parent dies its children move to
    another parent and can no longer be found below it.
    """
    victims = descendants(pid)
    if include_root:
        with contextlib.suppress(psutil.Error):
            victims.insert(0, psutil.Process(pid))
    return terminate(victims, grace_s=grace_s)


def kill_group(pgid: int, *, grace_s: float = 0.0) -> int:
    """End process group ``pgid`` (SIGTERM, then SIGKILL after ``grace_s``); returns how many
    live members it had. The signal goes to the group with killpg, members forked meanwhile
    included."""
    members = _group(pgid)
    if not members:
        return 0
    if grace_s > 0:
        _signal_group(pgid, signal.SIGTERM)
        _wait_dead(members, grace_s)
    if _group(pgid):
        _signal_group(pgid, signal.SIGKILL)
        _wait_dead(members, KILL_WAIT_S)
    return len(members)


def kill_now(pid: int, *, group: bool = True) -> None:
    """SIGKILL ``pid``, then its process group, without waiting: for an event loop that must
    not block (the zygote reaps its kernels through their pidfds). ``pid`` first: a child
    killed before its ``setsid`` has no group of its own yet."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGKILL)
    if group:
        _signal_group(pid, signal.SIGKILL)


def kill_user(uid: int, *, timeout_s: float = KILL_USER_TIMEOUT_S) -> int:
    """SIGKILL every process whose real or effective uid is ``uid``, round after round until
    none is left (daemons that escaped their parent, processes forked meanwhile) or
    ``timeout_s`` passed. Returns how many distinct processes were killed.

    Refuses root and this process's own uid: that would include the caller.
    """
    if uid in (0, os.getuid(), os.geteuid()):
        raise ValueError(f"refusing to kill every process of uid {uid}: this process is one")
    killed: set[psutil.Process] = set()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        owned = _owned_by(uid)
        if not owned:
            break
        signalled = _signal(owned, signal.SIGKILL)
        killed.update(signalled)
        _wait_dead(signalled, min(0.5, max(0.0, deadline - time.monotonic())))
    return len(killed)


def _alive(process: psutil.Process) -> bool:
    """Running and not a zombie (a zombie has exited; only its parent's wait is missing)."""
    try:
        return bool(process.is_running() and process.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True


def _signal(processes: list[psutil.Process], signum: int) -> list[psutil.Process]:
    """Send ``signum`` to each process; return those that received it."""
    sent = []
    for process in processes:
        try:
            process.send_signal(signum)  # psutil checks the pid was not reused
        except psutil.Error:  # gone meanwhile, or not ours to signal
            continue
        sent.append(process)
    return sent


def _wait_dead(processes: list[psutil.Process], timeout_s: float) -> list[psutil.Process]:
    """Wait up to ``timeout_s`` for ``processes`` to exit, without reaping; return survivors."""
    deadline = time.monotonic() + timeout_s
    interval = 0.005
    alive = [process for process in processes if _alive(process)]
    while alive and time.monotonic() < deadline:
        time.sleep(min(interval, max(0.0, deadline - time.monotonic())))
        interval = min(interval * 2, 0.05)
        alive = [process for process in alive if _alive(process)]
    return alive


def _group(pgid: int) -> list[psutil.Process]:
    """The live members of process group ``pgid``."""
    members = []
    for process in psutil.process_iter():
        with contextlib.suppress(OSError, psutil.Error):
            if os.getpgid(process.pid) == pgid and _alive(process):
                members.append(process)
    return members


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def _owned_by(uid: int) -> list[psutil.Process]:
    """Live processes whose real or effective uid is ``uid``."""
    owned = []
    for process in psutil.process_iter(["uids"]):
        uids = process.info["uids"]
        if uids is not None and uid in (uids.real, uids.effective) and _alive(process):
            owned.append(process)
    return owned
