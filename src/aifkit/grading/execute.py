"""Run one notebook's cells in a sandboxed kernel, talking to it from outside the sandbox.

The grader starts the kernel through a sandbox (see ``sandbox.py``) with ZeroMQ over Unix
sockets in a private runtime folder, so the sandbox needs no network at all. Cells are sent one
by one; the grader, not the kernel, assembles outputs, enforces the per-cell and per-notebook
wall-clock limits and the output budget, and notices a kernel that died. Every graded test cell
is sent as ``proof.py`` instruments it; the kernel's verifier thread writes a proof for each test
that ran to its end as sent, with a per-kernel key the learner's code cannot reach.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import os
import queue
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import nbformat
from jupyter_client.kernelspec import KernelSpec
from jupyter_client.manager import KernelManager

from aifkit import guard, processes, verifier
from aifkit.course import variants
from aifkit.grading import proof
from aifkit.grading.limits import Limits
from aifkit.grading.sandbox import INSIDE_HOME, Sandbox, claim_slot

CellStatus = Literal["ok", "error", "timeout", "dead", "output-limit", "not-run"]
INTERRUPT_GRACE_S = 5.0
KERNEL_START_TIMEOUT_S = 90.0
MATPLOTLIB_DIR = "matplotlib"  # in the kernel's runtime folder: its MPLCONFIGDIR


@dataclass
class CellRun:
    """What happened to one cell: the kernel's reply, whether its proof appeared, how long."""

    index: int
    status: CellStatus
    proven: bool = False
    seconds: float = 0.0
    detail: str = ""
    value: float | None = None  # a proven test's partial score, when its last line is a value


@dataclass
class SandboxRun:
    """An executed notebook and what the grader saw of each cell."""

    nb: nbformat.NotebookNode
    cells: dict[int, CellRun] = field(default_factory=dict)
    status: Literal["completed", "timeout", "kernel-died", "kernel-start"] = "completed"
    message: str = ""
    seconds: float = 0.0
    kernel_log: str = ""
    blocked: list[str] = field(default_factory=list)  # the guard's refusals (kernel stderr)


class _SandboxedKernelManager(KernelManager):
    """A KernelManager whose kernel command is the sandbox's command line."""

    sandbox_argv: list[str]  # set before the kernel starts

    @property
    def kernel_spec(self) -> KernelSpec:
        return KernelSpec(
            argv=self.sandbox_argv,
            display_name="aifkit grading kernel",
            language="python",
            interrupt_mode="message",  # a signal would hit the sandbox, not the kernel
            env={},
        )

    def format_kernel_cmd(self, extra_arguments: list[str] | None = None) -> list[str]:
        return [a.replace("{connection_file}", self.connection_file) for a in self.sandbox_argv]


def kernel_env(
    threads: int, runtime_dir: Path | None = None, *, learner: str = "", course: str = ""
) -> dict[str, str]:
    """The whole environment learner code sees: no grader secrets, no NBGRADER_* variables.

    ``learner`` and ``course`` (the student's and course's ids) make the notebook compute the
    student's own variant (``aifkit.course.variants``).

    matplotlib's folder is the kernel's runtime folder when given (``_kernel_with`` puts the
    grader's font list there), else a fresh one in the sandbox's /tmp.
    """
    bin_dir = str(Path(sys.executable).parent)
    matplotlib_dir = runtime_dir / MATPLOTLIB_DIR if runtime_dir else Path("/tmp/matplotlib")
    return {
        "PATH": f"{bin_dir}:/usr/local/bin:/usr/bin:/bin",
        "HOME": INSIDE_HOME,
        "LANG": "C.UTF-8",
        "MPLBACKEND": "module://matplotlib_inline.backend_inline",
        "MPLCONFIGDIR": str(matplotlib_dir),
        "PYTHONDONTWRITEBYTECODE": "1",
        "AIFKIT_THREADS": str(threads),
        "AIFKIT_TIER": "cpu-tiny",
        "AIFKIT_GRADING": "1",
        guard.GUARD_ENV: "1",  # the launcher installs the grading guard before ipykernel
        variants.LEARNER_ENV: learner,
        variants.COURSE_ENV: course,
    }


@functools.cache
def _font_list() -> Path | None:
    """matplotlib's font list, built once per grader process; None without matplotlib.

    A kernel in a fresh sandbox would otherwise scan the system's fonts again (0.4-1 CPU-s each,
    on every notebook graded). The list names font files by path, the same inside the sandbox.
    """
    try:
        import matplotlib
        from matplotlib import font_manager
    except ImportError:
        return None
    name = f"fontlist-v{font_manager.FontManager.__version__}.json"
    path = Path(matplotlib.get_cachedir()) / name
    return path if path.is_file() else None


def _matplotlib_folder(runtime: Path) -> None:
    """The kernel's own matplotlib folder, holding a copy of the grader's font list."""
    folder = runtime / MATPLOTLIB_DIR
    folder.mkdir()
    fonts = _font_list()
    if fonts is not None:
        shutil.copyfile(fonts, folder / fonts.name)


def kernel_argv() -> list[str]:
    """The aifkit kernel (thread fitting included), started by the grader's own Python."""
    return [sys.executable, "-m", "aifkit.launcher", "-f", "{connection_file}"]


@dataclass
class _Kernel:
    """A started grading kernel: its manager, client, and the verifier's key and proofs."""

    km: KernelManager
    client: Any
    key: bytes
    proofs: Path


@contextlib.contextmanager
def _kernel(
    sandbox: Sandbox,
    limits: Limits,
    workdir: Path,
    env: Callable[[Path], dict[str, str]],
    log_path: Path,
) -> Iterator[_Kernel]:
    with contextlib.ExitStack() as stack:
        if getattr(sandbox, "uid", None) is not None:  # root grader: a uid of its own
            slot = stack.enter_context(claim_slot(sandbox.slot))
            sandbox = dataclasses.replace(sandbox, slot=slot)
        yield from _kernel_with(sandbox, limits, workdir, env, log_path)


def _kernel_with(
    sandbox: Sandbox,
    limits: Limits,
    workdir: Path,
    env: Callable[[Path], dict[str, str]],
    log_path: Path,
) -> Iterator[_Kernel]:
    """A started kernel in the sandbox; ``env(runtime_dir)`` is its whole environment."""
    runtime = Path(tempfile.mkdtemp(prefix="aifkit-kernel-"))
    uid = getattr(sandbox, "uid", None)
    km = _SandboxedKernelManager(transport="ipc", ip=str(runtime / "zmq"))
    km.connection_file = str(runtime / "kernel.json")
    km.write_connection_file()
    key, proofs = proof.new_key(), runtime / verifier.PROOFS_FILE
    key_path = runtime / verifier.KEY_FILE
    key_path.write_bytes(key)
    proofs.touch()
    key_path.chmod(0o400)
    proofs.chmod(0o600)
    _matplotlib_folder(runtime)
    if uid is not None:
        for path in (runtime, runtime / "kernel.json", key_path, proofs):
            os.chown(path, uid, uid)
        _chown_tree(runtime / MATPLOTLIB_DIR, uid)
        _chown_tree(workdir, uid)
    km.sandbox_argv = sandbox.wrap(
        kernel_argv(),
        workdir=workdir,
        runtime_dir=runtime,
        env=env(runtime),
        limits=limits,
    )
    client = None
    try:
        with open(log_path, "wb") as log:
            km.start_kernel(stdout=log, stderr=log, cwd=str(workdir))
            client = km.blocking_client()
            client.start_channels()
            client.wait_for_ready(timeout=KERNEL_START_TIMEOUT_S)
            yield _Kernel(km, client, key, proofs)
    finally:
        if client is not None:
            client.stop_channels()
        with contextlib.suppress(Exception):
            km.shutdown_kernel(now=True)
        if uid is not None:
            processes.kill_user(uid)  # daemons that escaped the kernel included
        shutil.rmtree(runtime, ignore_errors=True)


def _chown_tree(root: Path, uid: int) -> None:
    for folder, dirs, files in os.walk(root):
        os.chown(folder, uid, uid)
        for name in dirs + files:
            os.lchown(os.path.join(folder, name), uid, uid)


class _CellReader:
    """Collects one cell's outputs from iopub, within the output budget."""

    def __init__(self, budget: list[int]) -> None:
        self.outputs: list[nbformat.NotebookNode] = []
        self.budget = budget  # bytes left for the whole notebook, shared between cells
        self.over_budget = False
        self.dropped = 0  # malformed messages from the kernel, left out
        self._clear_pending = False

    def handle(self, msg: dict[str, Any]) -> bool:
        """Take one iopub message; True when the kernel went idle. A message whose content is
        not what its type promises (the kernel may send anything) is dropped and counted."""
        try:
            return self._handle(msg)
        except Exception:  # any defect of a kernel's message is the kernel's
            self.dropped += 1
            return False

    def _handle(self, msg: dict[str, Any]) -> bool:
        kind, content = msg["msg_type"], msg["content"]
        if kind == "status":
            return bool(content.get("execution_state") == "idle")
        if kind == "clear_output":
            if content.get("wait"):
                self._clear_pending = True
            else:
                self.outputs.clear()
            return False
        if kind not in ("stream", "display_data", "execute_result", "error"):
            return False
        size = len(json.dumps(content))
        self.budget[0] -= size
        if self.budget[0] < 0:
            self.over_budget = True
            return False
        if self._clear_pending:
            self.outputs.clear()
            self._clear_pending = False
        output = nbformat.v4.output_from_msg(msg)
        last = self.outputs[-1] if self.outputs else None
        if (
            kind == "stream"
            and last is not None
            and last.output_type == "stream"
            and last.name == output.name
        ):
            last.text += output.text
        else:
            self.outputs.append(output)
        return False


def _run_cell(
    km: KernelManager,
    client: Any,
    code: str,
    deadline: float,
    budget: list[int],
    *,
    history: bool = True,
) -> tuple[CellStatus, list[nbformat.NotebookNode], int | None, str]:
    """Execute one cell; returns status, outputs, execution count and a detail.

    A test runs with ``history=False``: its text does not enter IPython's ``In`` and history.
    """
    msg_id = client.execute(code, store_history=history, allow_stdin=False, stop_on_error=False)
    reader = _CellReader(budget)
    reply: dict[str, Any] | None = None
    idle = False
    interrupted_at: float | None = None
    status: CellStatus = "ok"
    while not (idle and reply is not None):
        now = time.monotonic()
        if interrupted_at is None and (now > deadline or reader.over_budget):
            status = "timeout" if now > deadline else "output-limit"
            with contextlib.suppress(Exception):
                km.interrupt_kernel()
            interrupted_at = now
        if interrupted_at is not None and now - interrupted_at > INTERRUPT_GRACE_S:
            return status, reader.outputs, None, "the kernel did not stop when interrupted"
        msg = _receive(client.get_iopub_msg, 0.2, reader)
        if msg is None and not km.is_alive():
            return "dead", reader.outputs, None, "the kernel died"
        if msg is not None and msg["parent_header"].get("msg_id") == msg_id:
            idle = reader.handle(msg) or idle
        if reply is None:
            shell = _receive(client.get_shell_msg, 0, reader)
            if shell is not None and shell["parent_header"].get("msg_id") == msg_id:
                reply = shell["content"]
    if status == "ok" and reply.get("status") != "ok":
        status = "error"
    detail = {
        "timeout": "the cell ran past its time limit and was interrupted",
        "output-limit": "the cell printed more than the output limit and was interrupted",
        "error": f"{reply.get('ename', 'error')}: {reply.get('evalue', '')}".strip(),
    }.get(status, "")
    if reader.dropped:
        detail = f"{detail}; " if detail else ""
        detail += f"{reader.dropped} malformed message(s) from the kernel were left out"
    count = reply.get("execution_count")
    return status, reader.outputs, count if isinstance(count, int) else None, detail


def _receive(get: Any, timeout: float, reader: _CellReader) -> dict[str, Any] | None:
    """The next message of one channel, or None when none came within ``timeout``.

    The kernel runs the learner's code, which can reach its sockets: a message that does not
    decode (bad or replayed signature, no delimiter, not JSON) or lacks a dict header, parent or
    content is dropped and counted on ``reader``, never raised as a grader error.
    """
    try:
        msg = get(timeout=timeout)
    except queue.Empty:
        return None
    except Exception:  # jupyter_client raises ValueError, TypeError, KeyError...
        reader.dropped += 1
        return None
    if not all(isinstance(msg.get(part), dict) for part in ("parent_header", "content")):
        reader.dropped += 1
        return None
    return msg  # type: ignore[no-any-return]


def run_notebook(
    nb: nbformat.NotebookNode,
    *,
    sandbox: Sandbox,
    limits: Limits,
    workdir: Path,
    tests: set[int],
    threads: int = 1,
    learner: str = "",
    course: str = "",
) -> SandboxRun:
    """Execute every code cell of ``nb`` (in place) in the sandbox; ``tests`` get a proof.

    ``learner`` and ``course`` are the student's and course's ids: the kernel's environment
    says them (``aifkit.course.variants``) and every test is bound to them.
    """
    started = time.monotonic()
    execution = SandboxRun(nb=nb)
    nb_deadline = started + limits.notebook_timeout_s
    budget = [limits.output_bytes]
    code_cells = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    log_fd, log_name = tempfile.mkstemp(prefix="aifkit-kernel-", suffix=".log")
    os.close(log_fd)
    log_path = Path(log_name)
    try:
        env = functools.partial(kernel_env, threads, learner=learner, course=course)
        with _kernel(sandbox, limits, workdir, env, log_path) as kernel:
            km, client = kernel.km, kernel.client
            for position, index in enumerate(code_cells):
                cell = nb.cells[index]
                test_id = proof.new_test_id() if index in tests else None
                code = (
                    proof.instrument(
                        cell.source, test_id, kernel.key, learner=learner, course=course
                    )
                    if test_id
                    else cell.source
                )
                cell_start = time.monotonic()
                deadline = min(cell_start + limits.cell_timeout_s, nb_deadline)
                status, outputs, count, detail = _run_cell(
                    km, client, code, deadline, budget, history=test_id is None
                )
                proofs = proof.read(kernel.proofs, kernel.key) if test_id else {}
                cell.outputs, cell.execution_count = outputs, count
                execution.cells[index] = CellRun(
                    index,
                    status,
                    test_id in proofs and status == "ok",
                    time.monotonic() - cell_start,
                    detail,
                    proofs.get(test_id) if test_id else None,
                )
                if status in ("dead", "timeout") and count is None:
                    execution.status = "kernel-died" if status == "dead" else "timeout"
                    execution.message = f"cell {index}: {detail}"
                    for rest in code_cells[position + 1 :]:
                        execution.cells[rest] = CellRun(rest, "not-run", detail=detail)
                    break
                if time.monotonic() > nb_deadline:
                    execution.status = "timeout"
                    execution.message = (
                        f"the notebook ran past its {limits.notebook_timeout_s:.0f} s limit"
                    )
                    for rest in code_cells[position + 1 :]:
                        execution.cells[rest] = CellRun(rest, "not-run", detail="not reached")
                    break
    except RuntimeError as error:  # jupyter_client: the kernel never became ready
        execution.status = "kernel-start"
        execution.message = f"the kernel did not start: {error}"
        for index in code_cells:
            execution.cells.setdefault(index, CellRun(index, "not-run", detail="no kernel"))
    finally:
        execution.kernel_log = _tail(log_path)
        execution.blocked = guard.blocked_lines(_head(log_path))
        log_path.unlink(missing_ok=True)
    execution.seconds = time.monotonic() - started
    return execution


def _head(path: Path, limit: int = 1_000_000) -> str:
    try:
        with open(path, "rb") as log:
            return log.read(limit).decode("utf-8", "replace")
    except OSError:
        return ""


def _tail(path: Path, limit: int = 4000) -> str:
    try:
        return path.read_bytes()[-limit:].decode("utf-8", "replace")
    except OSError:
        return ""
