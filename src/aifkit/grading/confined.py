"""Run one step of the grader on learner input in a child process with hard limits.

Reading and sanitising a learner's notebook parses JSON the learner wrote: hundreds of
thousands of cells take gigabytes and minutes. The step runs in a child forked from a clean
forkserver with an address-space limit (``RLIMIT_AS``: what it may grow by, on top of what the
child already maps), a CPU-seconds limit and a wall-clock limit; the grader's own memory never
grows with the input, and a child past a limit becomes a sentence about that submission.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import resource
import traceback
from collections.abc import Callable
from typing import Any

import psutil

from aifkit.errors import AifkitError
from aifkit.processes import terminate

_CONTEXT = multiprocessing.get_context("forkserver")


class ConfinedError(AifkitError):
    """The confined step failed: past a limit, crashed, or raised (the message says which)."""


def run_confined(
    function: Callable[..., Any],
    *args: Any,
    seconds: float,
    memory_mb: int,
    what: str,
    preload: tuple[str, ...] = (),
) -> Any:
    """``function(*args)`` in a child limited to ``seconds`` and ``memory_mb`` more memory.

    Returns its (picklable) result; raises ``ConfinedError`` naming ``what`` and the limit hit.
    ``preload`` names modules the forkserver imports once when this call starts it, so each
    child does not import them again (seconds each on a loaded machine); it has no effect on
    a forkserver already running.
    """
    _CONTEXT.set_forkserver_preload([function.__module__, *preload])
    receive, send = _CONTEXT.Pipe(duplex=False)
    child = _CONTEXT.Process(
        target=_child, args=(send, function, args, seconds, memory_mb), daemon=True
    )
    child.start()
    send.close()
    try:
        if not receive.poll(seconds):
            raise ConfinedError(f"{what} ran past its {seconds:g} s limit and was stopped")
        try:
            ok, value = receive.recv()
        except EOFError:
            child.join(5)
            raise ConfinedError(_death(what, child.exitcode, memory_mb)) from None
    finally:
        receive.close()
        if child.is_alive():
            terminate([psutil.Process(child.pid)])
        child.join(5)
    if not ok:
        raise ConfinedError(f"{what} failed: {value}")
    return value


def _death(what: str, exitcode: int | None, memory_mb: int) -> str:
    return (
        f"{what} stopped without an answer (exit {exitcode}): most likely past its "
        f"{memory_mb} MiB memory limit or its CPU-time limit"
    )


def _child(
    send: multiprocessing.connection.Connection,
    function: Callable[..., Any],
    args: tuple[Any, ...],
    seconds: float,
    memory_mb: int,
) -> None:
    mapped = psutil.Process().memory_info().vms  # what the fork brought along is not the input's
    limit = mapped + memory_mb * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    cpu = int(seconds) + 1
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
    try:
        result: tuple[bool, Any] = (True, function(*args))
    except MemoryError:
        result = (False, f"past its {memory_mb} MiB memory limit")
    except Exception as error:  # reported to the parent as a sentence
        result = (False, f"{type(error).__name__}: {error}")
        if not str(error):
            result = (False, traceback.format_exc(limit=-3))
    send.send(result)
    send.close()
