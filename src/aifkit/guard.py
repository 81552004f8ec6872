"""The grading kernel's guard: an audit hook (PEP 578) installed before any learner code runs.

``aifkit.launcher`` installs it when the grader starts a kernel (``AIFKIT_GUARD=1``), then runs
ipykernel in the same process. An audit hook cannot be removed, and CPython calls it for the
events below wherever they come from, whatever name the learner's code reached them by
(``getattr(builtins, "ex" + "ec")``, a class made with ``type()``, a module written at run time).
The guard refuses, with ``PermissionError``, what would let learner code run code that is not in
a notebook cell or reach the machinery that runs tests:

- executing a module's code that is not installed (a ``.py`` the learner wrote at run time and
  imported under a computed name, a support file that shadows an installed module such as
  ``numpy.py``): importlib may only run code from the Python installation and aifkit, or from a
  file of the kernel's working folder that was there when the kernel started, is unchanged, and
  shadows no installed module;
- creating code files (``.py``, ``.pyc``, ``.pth``, ``.so`` ...) or ``sitecustomize``;
- compiling text from learner code (``exec``/``eval``/``compile`` however reached): notebook
  cells are compiled by IPython, not by learner code;
- ``ctypes``, tracing and profiling hooks, ``gc`` and all-thread frame introspection,
  replacing a function's ``__code__``, and reading the process's own memory (``/proc/*/mem``).

"Learner code" is code whose file is not part of the installation: notebook cells (their file
is under ipykernel's temporary folder) and anything compiled at run time. Each refusal is also
written to the kernel's stderr (the grader's kernel log) as a line starting with ``MARK``, so the
grader can flag the submission for review; a learner who hides that line still got a refusal.

What the guard cannot do is in docs/grading.md ("Threat model"). This module must stay light: it
runs in every grading kernel before ipykernel is imported.
"""

from __future__ import annotations

import _thread
import os
import sys
from collections.abc import Callable, Iterable
from types import CodeType, FrameType, FunctionType
from typing import Any

GUARD_ENV = "AIFKIT_GUARD"
MARK = "aifkit-guard: blocked"
CODE_SUFFIXES = (".py", ".pyc", ".pyo", ".pyw", ".pth", ".so", ".pyd", ".dylib")
CODE_NAMES = ("sitecustomize", "usercustomize")
FROZEN_PREFIX = "<frozen "
IMPORTLIB_FILES = ("<frozen importlib._bootstrap>", "<frozen importlib._bootstrap_external>")
CTYPES_EVENTS = "ctypes."
#: Events refused whenever learner code is on the stack.
INTROSPECTION = frozenset(
    {
        "sys.settrace",
        "sys.setprofile",
        "sys._current_frames",
        "gc.get_objects",
        "gc.get_referrers",
        "gc.get_referents",
    }
)
FILE_EVENTS = frozenset({"os.rename", "os.link", "os.symlink", "shutil.copyfile", "shutil.move"})
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
MAX_STACK = 200


def trusted_roots(cwd: str, extra: Iterable[str] = ()) -> tuple[str, ...]:
    """Folders whose code counts as installed: Python's prefixes and ``sys.path``'s folders,
    except the working folder, temporary folders and the home folder (learner-writable)."""
    writable = {cwd, "/tmp", "/dev/shm", "/var/tmp", os.path.expanduser("~")}
    candidates = [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix, *extra]
    candidates += [entry for entry in sys.path if entry]
    roots: set[str] = set()
    for entry in candidates:
        path = os.path.realpath(entry)
        if not os.path.isdir(path) or any(_under(path, w) or _under(w, path) for w in writable):
            continue
        roots.add(path)
    return tuple(sorted(roots))


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _known_files(cwd: str, roots: tuple[str, ...]) -> dict[str, tuple[int, int, int, int]]:
    """The working folder's Python files at start that shadow no installed module: path -> stat."""
    from importlib.machinery import PathFinder

    known: dict[str, tuple[int, int, int, int]] = {}
    for folder, dirs, files in os.walk(cwd):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            if not name.endswith(".py"):
                continue
            path = os.path.join(folder, name)
            top = os.path.relpath(path, cwd).split(os.sep)[0].removesuffix(".py")
            if PathFinder.find_spec(top, list(roots)) is not None:
                continue  # numpy.py beside the notebook: never importable
            st = os.lstat(path)
            known[path] = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    return known


def install(cwd: str | None = None, write: Callable[[int, bytes], Any] = os.write) -> None:
    """Install the guard's audit hook (for the rest of the process's life) and drop the
    working folder from ``sys.path``: imports come from the installation."""
    cwd = os.path.realpath(cwd or os.getcwd())
    roots = trusted_roots(cwd)
    known = _known_files(cwd, roots)
    sys.path[:] = [p for p in sys.path if p and os.path.realpath(p) != cwd]
    sys.addaudithook(_make_hook(cwd, roots, known, write))


def _make_hook(
    cwd: str,
    roots: tuple[str, ...],
    known: dict[str, tuple[int, int, int, int]],
    write: Callable[[int, bytes], Any],
    *,
    any: Callable[[Iterable[object]], bool] = any,
    type: Any = type,
    len: Callable[[Any], int] = len,
    next: Any = next,
    iter: Any = iter,
    bool: Any = bool,
    getattr: Any = getattr,
    PermissionError: Any = PermissionError,
    OSError: Any = OSError,
) -> Callable[[str, tuple[Any, ...]], None]:
    """The audit hook; everything it uses is bound here, so later patches of modules do not
    reach it (learner code may replace ``os.stat`` in ``os``'s namespace, not this reference)."""
    # Builtins and module globals are looked up at call time: learner code could replace
    # ``builtins.any`` or ``aifkit.guard.CODE_SUFFIXES``. The hook uses only these references.
    getframe, lstat, realpath, write_flags = sys._getframe, os.lstat, os.path.realpath, WRITE_FLAGS
    str_type, bytes_type, int_type, code_type, function_type = (
        str,
        bytes,
        int,
        CodeType,
        FunctionType,
    )
    under, mark, frozen, importlib_files = _under, MARK, FROZEN_PREFIX, IMPORTLIB_FILES
    code_suffixes, code_names, file_events, introspection = (
        CODE_SUFFIXES,
        CODE_NAMES,
        FILE_EVENTS,
        INTROSPECTION,
    )
    ctypes_events, max_stack, mem_suffix = CTYPES_EVENTS, MAX_STACK, "/mem"
    local = _thread._local()

    def trusted_file(filename: str) -> bool:
        if filename.startswith(frozen):
            return True
        return any(under(filename, root) for root in roots)

    def learner_frames(frame: FrameType | None) -> Iterable[FrameType]:
        depth = 0
        while frame is not None and depth < max_stack:
            if not trusted_file(frame.f_code.co_filename):
                yield frame
            frame = frame.f_back
            depth += 1

    def caller(origin: FrameType | None, skip: str = "") -> FrameType | None:
        """The frame that caused the event (past frames of files containing ``skip``)."""
        frame = origin
        while frame is not None and skip and skip in frame.f_code.co_filename:
            frame = frame.f_back
        return frame

    def learner_called(origin: FrameType | None, skip: str = "") -> bool:
        frame = caller(origin, skip)
        return frame is not None and not trusted_file(frame.f_code.co_filename)

    def learner_on_stack(origin: FrameType | None) -> bool:
        return next(iter(learner_frames(origin)), None) is not None

    def refuse(event: str, what: str) -> None:
        message = f"{what} is not allowed while grading"
        try:  # noqa: SIM105 (contextlib.suppress is a global lookup: patchable)
            write(2, f"{mark} {event}: {message}\n".encode("utf-8", "replace"))
        except OSError:
            pass
        raise PermissionError(f"aifkit grading guard: {message}")

    def known_unchanged(path: str) -> bool:
        stat = known.get(path)
        if stat is None:
            return False
        try:
            st = lstat(path)
        except OSError:
            return False
        return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns) == stat

    def module_code_allowed(code: CodeType) -> bool:
        filename = code.co_filename
        if trusted_file(filename):
            return True
        path = realpath(filename)
        return under(path, cwd) and known_unchanged(path)

    def writes(mode: Any, flags: Any) -> bool:
        if type(mode) is str_type and any(c in mode for c in "wax+"):
            return True
        return type(flags) is int_type and bool(flags & write_flags)

    def code_file(path: Any) -> bool:
        if type(path) is bytes_type:
            path = path.decode("utf-8", "replace")
        if type(path) is not str_type:
            return False
        name = path.rstrip("/").rsplit("/", 1)[-1].lower()
        return name.endswith(code_suffixes) or name.split(".")[0] in code_names

    def process_memory(path: Any) -> bool:
        if type(path) is bytes_type:
            path = path.decode("utf-8", "replace")
        if type(path) is not str_type or "/proc" not in path:
            return False
        resolved = realpath(path)
        return resolved.startswith("/proc/") and resolved.endswith(mem_suffix)

    def check(event: str, args: tuple[Any, ...], origin: FrameType | None) -> None:
        if event == "exec":
            code: Any = args[0] if args else None
            if (
                type(code) is code_type
                and origin is not None
                and origin.f_code.co_filename in importlib_files
                and not module_code_allowed(code)
            ):
                refuse(event, f"importing code from {code.co_filename} (not installed)")
        elif event == "compile":
            if learner_called(origin):
                refuse(event, "compiling text from learner code (exec, eval, compile)")
        elif event == "open":
            path = args[0] if args else None
            if process_memory(path):
                refuse(event, f"reading the process's memory ({path})")
            if (
                len(args) >= 3
                and writes(args[1], args[2])
                and code_file(path)
                and learner_on_stack(origin)
            ):
                refuse(event, f"writing the code file {path}")
        elif event in file_events:
            if len(args) >= 2 and code_file(args[1]) and learner_on_stack(origin):
                refuse(event, f"creating the code file {args[1]}")
        elif event.startswith(ctypes_events):
            if learner_called(origin, skip="/ctypes/"):
                refuse(event, "ctypes")
        elif event in introspection:
            if learner_on_stack(origin):
                refuse(event, event)
        elif (
            event == "object.__setattr__"
            and len(args) >= 2
            and type(args[0]) is function_type
            and args[1] == "__code__"
            and learner_on_stack(origin)
        ):
            refuse(event, "replacing a function's __code__")

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if getattr(local, "busy", False):  # the hook's own frame and stat calls
            return
        local.busy = True
        try:
            check(event, args, getframe(1))  # the frame whose code caused the event
        finally:
            local.busy = False

    return hook


def enabled(env: dict[str, str] | os._Environ[str]) -> bool:
    """Whether the grader asked for the guard (the launcher reads this)."""
    return env.get(GUARD_ENV) == "1"


def blocked_lines(log: str) -> list[str]:
    """The guard's refusals in a kernel log, for the grader's findings."""
    return [line[len(MARK) :].strip() for line in log.splitlines() if line.startswith(MARK)]


__all__ = ["GUARD_ENV", "MARK", "blocked_lines", "enabled", "install", "trusted_roots"]
