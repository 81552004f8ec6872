"""Kernel zygote: fork fresh ipykernels from a process whose heavy imports are done.

A kernel start costs a Python start, ipykernel's import and then, in the notebook, torch, numpy
and matplotlib: about 4 CPU-seconds per notebook before its first lesson line runs. The zygote
pays that once. It is started with exactly the environment a kernel gets (the kernel
launcher's thread fitting applied), imports ipykernel and the modules it is asked to preload,
then forks one kernel per request on its Unix socket.

What makes a forked kernel as fresh as a started one:
- it is forked only for a request whose fitted environment equals the zygote's (what libraries
  read at import), only while CUDA is uninitialised, no event loop or ZeroMQ context exists,
  and no thread survives the fork (OpenBLAS stops its workers at fork; any other thread makes
  the zygote refuse, and the caller starts the kernel the usual way);
- the child starts a new session, closes every socket and descriptor of the zygote, gets the
  request's working directory, log, environment, ``sys.path`` and ``sys.argv`` as
  ``python -m ipykernel_launcher`` would, re-seeds the generators that preloaded modules seeded
  from the OS, and becomes ipykernel; it leaves with ``os._exit``, never into zygote code;
- a kernel is killed with its process group when the connection that asked for it closes,
  every kernel when the zygote's standard input closes (its owner is gone), and the kernels
  die with the zygote if it is killed outright (``PR_SET_PDEATHSIG``).

What still differs, by design: the kernels of one zygote share its string-hash seed; their stdin
is /dev/null rather than a pipe nobody writes to; and a cell that changes a variable such as
MPLBACKEND or OMP_NUM_THREADS before importing a preloaded module gets the module as the
zygote's environment configured it (thread and backend settings belong to the kernel's
environment, which the launcher fits; no course notebook sets them in a cell).

Protocol (one connection per kernel, JSON lines): the client sends ``{"cmd": [...], "env":
{...}, "cwd": ..., "log": ...}`` (the command line jupyter_client built); the zygote answers
``{"pid": N}`` or ``{"refused": "why"}``, and later ``{"exit": code}`` when the kernel ends.

Run by ``aifkit.notebooks.warm``: ``python -m aifkit.zygote SOCKET [MODULE ...]``. Linux only
(``os.pidfd_open``). This module imports nothing heavy itself.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import json
import os
import selectors
import signal
import socket
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aifkit.launcher import kernel_arguments, kernel_environment
from aifkit.processes import kill_now

#: Set per kernel by jupyter_client, never read at import time: allowed to differ.
PER_KERNEL = frozenset({"JPY_PARENT_PID", "JPY_SESSION_NAME"})
#: ipykernel's default backend, set while the kernel starts, so before any notebook import.
MPLBACKEND_INLINE = "module://matplotlib_inline.backend_inline"
_MAX_REQUEST = 1 << 20


def import_environment(env: Mapping[str, str]) -> dict[str, str]:
    """The environment a kernel started with ``env`` has when the notebook's first import runs:
    the launcher's fitting, and ipykernel's default matplotlib backend. Per-kernel variables,
    which no library reads at import, are left out: two requests compare equal on this."""
    fitted = kernel_environment(env, warn=False)
    if not fitted.get("MPLBACKEND"):
        fitted["MPLBACKEND"] = MPLBACKEND_INLINE
    return {k: v for k, v in fitted.items() if k not in PER_KERNEL}


def kernel_argv(cmd: list[str]) -> list[str] | None:
    """ipykernel's arguments when ``cmd`` starts an ipykernel with this very Python, else None."""
    if len(cmd) < 3 or cmd[1] != "-m" or os.path.abspath(cmd[0]) != os.path.abspath(sys.executable):
        return None
    if cmd[2] == "ipykernel_launcher":
        return cmd[3:]
    if cmd[2] == "aifkit.launcher":
        return kernel_arguments(cmd[3:])
    return None


def _threads() -> int:
    """Threads of this process, native ones included."""
    return len(os.listdir("/proc/self/task"))


def _unsafe_state() -> str:
    """Why forking now would not give a fresh kernel, or '' when it would."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        return "CUDA is initialised in the zygote"
    zmq = sys.modules.get("zmq")
    if zmq is not None and zmq.Context._instance is not None:
        return "a ZeroMQ context exists in the zygote"
    asyncio = sys.modules.get("asyncio")
    if asyncio is not None and asyncio.events._get_running_loop() is not None:
        return "an event loop runs in the zygote"
    return ""


@dataclass
class _Kernel:
    """A forked kernel and the connection that asked for it."""

    pid: int
    pidfd: int
    conn: socket.socket


@dataclass
class Zygote:
    """The serving side: preloaded modules, the listening socket and the kernels it forked."""

    path: str
    baseline: dict[str, str]
    base_sys_path: list[str]
    unsafe: str = ""
    selector: selectors.BaseSelector = field(default_factory=selectors.DefaultSelector)
    kernels: dict[int, _Kernel] = field(default_factory=dict)
    pending: dict[socket.socket, bytes] = field(default_factory=dict)

    def serve(self) -> None:
        """Answer requests until standard input closes, then kill every kernel."""
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(self.path)
        listener.listen(64)
        self.selector.register(listener, selectors.EVENT_READ, "accept")
        self.selector.register(sys.stdin.fileno(), selectors.EVENT_READ, "owner")
        print(json.dumps({"ready": True, "unsafe": self.unsafe}), flush=True)
        try:
            while True:
                for key, _ in self.selector.select():
                    if key.data == "owner":
                        if not os.read(sys.stdin.fileno(), 4096):
                            return
                    elif key.data == "accept":
                        conn, _ = listener.accept()
                        self.pending[conn] = b""
                        self.selector.register(conn, selectors.EVENT_READ, "request")
                    elif key.data == "request":
                        self._read_request(key.fileobj, listener)  # type: ignore[arg-type]
                    elif isinstance(key.data, _Kernel):
                        self._reap(key.data)
        finally:
            for kernel in list(self.kernels.values()):
                kill_now(kernel.pid)
                self._reap(kernel)
            listener.close()

    def _read_request(self, conn: socket.socket, listener: socket.socket) -> None:
        """Read a request line; fork on a full one; a closed connection kills its kernel."""
        try:
            data = conn.recv(65536)
        except OSError:  # reset by a runner that was killed: the same as closed
            data = b""
        kernel = next((k for k in self.kernels.values() if k.conn is conn), None)
        if not data:  # the runner is gone: so is its kernel
            self.selector.unregister(conn)
            self.pending.pop(conn, None)
            if kernel is not None:
                kill_now(kernel.pid)
            else:
                conn.close()
            return
        if kernel is not None or conn not in self.pending:
            return  # nothing more is expected on a served connection
        buffer = self.pending[conn] + data
        if b"\n" not in buffer and len(buffer) < _MAX_REQUEST:
            self.pending[conn] = buffer
            return
        del self.pending[conn]
        try:
            request = json.loads(buffer.split(b"\n", 1)[0])
            reason = self._refusal(request)
        except (ValueError, TypeError, KeyError) as error:
            request, reason = {}, f"bad request: {error}"
        if reason:
            _send(conn, {"refused": reason})
            return
        self._fork(request, conn, listener)

    def _refusal(self, request: dict[str, Any]) -> str:
        """Why a request cannot have a forked kernel, or '' when it can."""
        if self.unsafe:
            return self.unsafe
        if kernel_argv(request["cmd"]) is None:
            return "not an ipykernel of this Python: " + " ".join(request["cmd"][:3])
        env = import_environment(request["env"])
        if env != self.baseline:
            differ = sorted(k for k in {*env, *self.baseline} if env.get(k) != self.baseline.get(k))
            return f"its environment differs from the zygote's in {', '.join(differ[:5])}"
        return _unsafe_state()

    def _fork(self, request: dict[str, Any], conn: socket.socket, listener: socket.socket) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:  # the kernel; it never returns
            closables = [listener, *self.pending, *(k.conn for k in self.kernels.values()), conn]
            fds = [k.pidfd for k in self.kernels.values()]
            _become_kernel(parent, request, self.base_sys_path, self.selector, closables, fds)
        if _threads() > 1:  # a thread ran through the fork: the child may hold a dead lock
            kill_now(pid, group=False)
            os.waitpid(pid, 0)
            self.unsafe = "a thread of the zygote survived a fork"
            _send(conn, {"refused": self.unsafe})
            return
        kernel = _Kernel(pid=pid, pidfd=os.pidfd_open(pid), conn=conn)
        self.kernels[pid] = kernel
        self.selector.register(kernel.pidfd, selectors.EVENT_READ, kernel)
        _send(conn, {"pid": pid})

    def _reap(self, kernel: _Kernel) -> None:
        """Collect an ended kernel, tell its runner how it ended, forget it."""
        _, status = os.waitpid(kernel.pid, 0)
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(kernel.pidfd)
        os.close(kernel.pidfd)
        self.kernels.pop(kernel.pid, None)
        _send(kernel.conn, {"exit": os.waitstatus_to_exitcode(status)})
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(kernel.conn)
        kernel.conn.close()


def _send(conn: socket.socket, message: dict[str, Any]) -> None:
    """Answer a runner; one that has gone away learns nothing, and its kernel dies on EOF."""
    with contextlib.suppress(OSError):
        conn.sendall(json.dumps(message).encode() + b"\n")


def _die_with(parent: int) -> None:
    """Have the kernel killed if the zygote dies (by SIGKILL, say) before it can kill it."""
    import ctypes

    pr_set_pdeathsig = 1
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() != parent:  # it died before the line above
        os._exit(1)


def _become_kernel(
    zygote: int,
    request: dict[str, Any],
    base_sys_path: list[str],
    selector: selectors.BaseSelector,
    closables: list[socket.socket],
    fds: list[int],
) -> None:
    """In the forked child: turn into ``python -m ipykernel_launcher ARGV``; never returns."""
    code = 1
    argv = kernel_argv(request["cmd"]) or []
    try:
        os.setsid()
        _die_with(zygote)
        selector.close()
        for sock in closables:
            sock.close()
        for fd in fds:
            os.close(fd)
        null = os.open(os.devnull, os.O_RDONLY)
        log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(null, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(null)
        os.close(log)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(kernel_environment(request["env"]))
        _reseed()
        launcher = importlib.util.find_spec("ipykernel_launcher")
        sys.argv = [launcher.origin if launcher and launcher.origin else "", *argv]
        sys.path[:] = base_sys_path  # as ipykernel_launcher leaves it; the kernel adds '' back
        for name in [m for m in sys.modules if m == "aifkit" or m.startswith("aifkit.")]:
            del sys.modules[name]  # a started kernel has imported nothing of aifkit yet
        from ipykernel import kernelapp

        # IPKernelApp reads JPY_PARENT_PID into a default when its module is imported, which
        # the zygote did before this kernel's environment existed: pass it in.
        parent = int(os.environ.get("JPY_PARENT_PID") or 0)
        kernelapp.IPKernelApp.launch_instance(parent_handle=parent)
        code = 0
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else 1
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        with contextlib.suppress(BaseException):
            import atexit

            atexit._run_exitfuncs()  # what a started kernel's interpreter runs on its way out
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _reseed() -> None:
    """Re-seed what preloaded modules seeded from the OS (Python's random re-seeds itself)."""
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        numpy.random.seed()
    multiprocessing = sys.modules.get("multiprocessing")
    if multiprocessing is not None:
        multiprocessing.current_process().authkey = os.urandom(32)


def preload(modules: list[str]) -> str:
    """Import ``modules`` (a missing one is skipped); why forking is unsafe now, or ''."""
    importlib.import_module("ipykernel.kernelapp")
    importlib.import_module("ipykernel.ipkernel")
    for name in modules:
        with contextlib.suppress(Exception):  # not a module, or broken: the notebook will say
            importlib.import_module(name)
    return _unsafe_state()


def main(argv: list[str]) -> int:
    """``python -m aifkit.zygote SOCKET [MODULE ...]``: preload, then serve until stdin closes."""
    path, modules = argv[0], argv[1:]
    base_sys_path = sys.path[1:]  # without the zygote's own '-m' entry
    baseline = import_environment(os.environ)
    os.environ.update(baseline)  # what the preloaded modules read, as in a kernel
    zygote = Zygote(path=path, baseline=baseline, base_sys_path=base_sys_path)
    zygote.unsafe = preload(modules)
    zygote.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
