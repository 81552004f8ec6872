"""Execute one notebook with papermill in a child process that can be killed with its kernel.

The child is forked from a fork server that has papermill imported already (the "in-process
engine": no interpreter start-up per notebook), gets a fresh kernel, and reports what happens
over a pipe: kernel ready, each cell it starts, and the end. The parent owns the wall-clock
budget: at the deadline it kills the child and every process below it, kernel included, and
knows from the events which cell was running. Every failure becomes a one-line reason.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import multiprocessing.connection
import os
import re
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from aifkit import processes
from aifkit.errors import NotebookError
from aifkit.notebooks import reading

# Kinds of failure; only KERNEL_START is retried (the known ZMQ port race), never a cell error.
PASSED, FAILED = "passed", "failed"
CELL_ERROR, TIMEOUT, DEAD_KERNEL = "cell-error", "timeout", "dead-kernel"
KERNEL_START, INVALID, CRASH = "kernel-start", "invalid-notebook", "runner-crash"

_NOISE = re.compile(r"Kernel is running over TCP without encryption")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_EXCERPT_LINES = 12
STACK_SIGNAL = signal.SIGRTMIN + 2  # asks a kernel for its stacks (see _stack_dump_on_signal)
_GRACE_S = 10.0  # nbclient's own cell timeout sits this far beyond the notebook's budget
_CONTEXT = multiprocessing.get_context("forkserver")
# aifkit.notebooks first: it spares every later import the slow optional jsonschema extra.
_CONTEXT.set_forkserver_preload(["aifkit.notebooks", "papermill", "psutil"])


@dataclass(frozen=True)
class Job:
    """One notebook to execute: where, at which tier, with what budget and parameters."""

    path: Path
    output: Path
    tier: str
    timeout_s: float
    parameters: dict[str, Any] = field(default_factory=dict)
    kernel_name: str | None = None
    jupyter_path: str | None = None
    environment: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    start_timeout_s: float = 60.0

    @property
    def log(self) -> Path:
        """Where the kernel's own stdout and stderr go."""
        return self.output.with_suffix(".log")


@dataclass
class Execution:
    """What happened to one attempt at executing a notebook."""

    status: str
    seconds: float
    kind: str = ""
    reason: str = ""
    cell: int | None = None
    traceback: str = ""
    executed_cells: int = 0


def excerpt(lines: list[str] | str, limit: int = _EXCERPT_LINES) -> str:
    """The last ``limit`` lines of a traceback, without terminal colours."""
    text = "\n".join(lines) if isinstance(lines, list) else lines
    clean = _ANSI.sub("", text).rstrip().splitlines()
    return "\n".join(clean[-limit:])


def _source_cell(output_index: int | None, injected_at: int | None) -> int | None:
    """Map an index in papermill's output (with its injected cell) to the source notebook."""
    if output_index is None or injected_at is None or output_index < injected_at:
        return output_index
    return output_index - 1 if output_index > injected_at else None


def _child(job: Job, conn: multiprocessing.connection.Connection) -> None:
    """Runs in the forked child: execute the notebook, send events, kill leftovers at the end."""
    import papermill
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    os.environ.clear()  # the fork server's environment is stale: use the caller's, as of the job
    os.environ.update(job.environment)
    if job.jupyter_path:
        os.environ["JUPYTER_PATH"] = os.pathsep.join(
            p for p in (job.jupyter_path, os.environ.get("JUPYTER_PATH", "")) if p
        )
    os.environ["AIFKIT_TIER"] = job.tier
    log = os.open(job.log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(log, 1)  # the kernel's own stdout/stderr go to a log kept beside the output
    os.dup2(log, 2)
    started = False

    def on_start(**_: Any) -> None:
        nonlocal started
        started = True
        conn.send(("kernel-ready", None))

    def on_cell(cell: Any, cell_index: int, **_: Any) -> None:
        injected = reading.has_tag(cell, "injected-parameters")
        conn.send(("cell", None if injected else cell_index))

    try:
        papermill.execute_notebook(
            str(job.path),
            str(job.output),
            parameters={"TIER": job.tier, **job.parameters},
            kernel_name=job.kernel_name,
            cwd=str(job.path.parent),
            progress_bar=False,
            log_output=False,
            start_timeout=job.start_timeout_s,
            execution_timeout=job.timeout_s + _GRACE_S,  # a safety net: the parent times out first
            on_notebook_start=on_start,
            on_cell_execute=on_cell,
            extra_arguments=[_stack_dump_on_signal(job.log)],
        )
        conn.send(("done", None))
    except PapermillExecutionError as error:
        conn.send(
            (
                "error",
                (
                    CELL_ERROR,
                    error.cell_index,
                    f"{error.ename}: {error.evalue}",
                    excerpt(error.traceback),
                ),
            )
        )
    except CellTimeoutError as error:
        conn.send(("error", (TIMEOUT, None, f"a cell ran past {job.timeout_s:.0f} s", str(error))))
    except DeadKernelError as error:
        conn.send(
            (
                "error",
                (
                    DEAD_KERNEL,
                    None,
                    f"the kernel died ({error}): os._exit, out of memory or a crash in native code",
                    "",
                ),
            )
        )
    except Exception as error:  # anything before the kernel answered is a start failure
        kind = DEAD_KERNEL if started else KERNEL_START
        conn.send(("error", (kind, None, f"{type(error).__name__}: {error}", "")))
    finally:
        processes.kill_tree(os.getpid(), include_root=False)
        conn.close()


def _stack_dump_on_signal(log: Path) -> str:
    """Kernel argument: on STACK_SIGNAL the kernel writes every thread's Python stack to ``log``.

    A real-time signal, because lessons install their own SIGUSR1/SIGTERM handlers (preemption).
    """
    code = (
        "import faulthandler as _aifkit_fh; "
        f"_aifkit_fh.register({int(STACK_SIGNAL)}, file=open({str(log)!r}, 'a'), all_threads=True)"
    )
    return f"--IPKernelApp.exec_lines={json.dumps([code])}"


def _dump_kernel_stacks(pid: int | None) -> None:
    """Ask every kernel below ``pid`` to write its Python stack to its log, before it is killed,
    so that a timeout report says which line was running, not just which cell."""
    if pid is None:
        return
    try:
        kernels = [p for p in processes.descendants(pid) if "ipykernel" in " ".join(p.cmdline())]
    except psutil.Error:
        return
    for kernel in kernels:
        with contextlib.suppress(psutil.Error):
            kernel.send_signal(STACK_SIGNAL)
    time.sleep(0.5)  # faulthandler writes from the signal handler, at once


def _log_tail(log: Path) -> str:
    """The end of the kernel's log: why a kernel died is usually written there."""
    try:
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    return excerpt([line for line in lines if not _NOISE.search(line)])


def _main_thread_stack(log: Path, frames: int = 10) -> str:
    """The innermost frames of the kernel's main thread, from the dump _dump_kernel_stacks asked for."""
    try:
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    starts = [i for i, line in enumerate(lines) if line.startswith("Current thread")]
    if not starts:
        return ""
    block = lines[starts[-1] + 1 : starts[-1] + 1 + frames]
    return "the kernel's main thread when it was stopped (innermost call first):\n" + "\n".join(
        block
    )


def _injected_index(output: Path) -> int | None:
    """Index of papermill's injected-parameters cell in the output notebook, if it got that far."""
    try:
        nb = reading.read(output)
    except (NotebookError, OSError):
        return None
    for index, cell in enumerate(nb.cells):
        if reading.has_tag(cell, "injected-parameters"):
            return index
    return None


def execute(job: Job) -> Execution:
    """Execute ``job`` once and classify the outcome; never raises for a notebook's own fault."""
    try:
        reading.read(job.path)
    except NotebookError as error:
        return Execution(status=FAILED, seconds=0.0, kind=INVALID, reason=str(error))
    job.output.parent.mkdir(parents=True, exist_ok=True)
    receiver, sender = _CONTEXT.Pipe(duplex=False)
    start = time.perf_counter()
    process = _CONTEXT.Process(target=_child, args=(job, sender), daemon=True)
    process.start()
    sender.close()
    deadline = start + job.timeout_s
    running: int | None = None
    executed = 0
    outcome: tuple[str, int | None, str, str] | None = None
    try:
        while True:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                _dump_kernel_stacks(process.pid)
                outcome = (TIMEOUT, running, f"ran past its {job.timeout_s:.0f} s budget", "")
                break
            if not receiver.poll(min(remaining, 1.0)):
                if not process.is_alive() and not receiver.poll(0):
                    outcome = (CRASH, running, f"runner exited with code {process.exitcode}", "")
                    break
                continue
            try:
                event, payload = receiver.recv()
            except EOFError:
                outcome = (CRASH, running, f"runner exited with code {process.exitcode}", "")
                break
            if event == "cell":
                running = payload
                executed += payload is not None
            elif event == "done":
                break
            elif event == "error":
                outcome = payload
                break
    finally:
        if process.pid is not None:
            processes.kill_tree(process.pid)
        process.join(timeout=5)
        receiver.close()
    seconds = time.perf_counter() - start
    if outcome is None:
        return Execution(status=PASSED, seconds=seconds, executed_cells=executed)
    kind, cell, reason, trace = outcome
    if kind == TIMEOUT and not trace:
        trace = _main_thread_stack(job.log)
    if kind in {DEAD_KERNEL, KERNEL_START, CRASH} and not trace:
        trace = _log_tail(job.log)
    cell = _source_cell(cell if kind == CELL_ERROR else running, _injected_index(job.output))
    return Execution(
        status=FAILED,
        seconds=seconds,
        kind=kind,
        reason=reason,
        cell=cell,
        traceback=trace,
        executed_cells=executed,
    )
