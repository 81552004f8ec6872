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
- creating files that run by being there (``.pth``, ``.pyc``, ``.so`` ...) or
  ``sitecustomize``; a ``.py`` file may be written (a script for torchrun), not imported;
- compiling text from learner code (``exec``/``eval``/``compile`` however reached): notebook
  cells are compiled by IPython, not by learner code;
- ``ctypes`` from learner code, and from installed code unless it runs for a cell or is being
  imported; tracing and profiling hooks, ``gc`` and all-thread frame introspection, except in an
  installed module while it is imported (a learner can have the event loop or a thread call a
  builtin with no frame of theirs on the stack),
  replacing a function's ``__code__``, building a code object that claims an installed file or
  a test's (``code.replace(co_filename=...)``), unmarshalling outside the import system (code
  objects come out of ``marshal.loads`` without ``code.__new__``), and reading the process's
  own memory (``/proc/*/mem``).

"Learner code" is code whose file is not part of the installation: notebook cells (their file
is under ipykernel's temporary folder) and anything compiled at run time. Each refusal is also
written to the kernel's stderr (the grader's kernel log) as a line starting with ``MARK``, so the
grader can flag the submission for review; a learner who hides that line still got a refusal.

What the guard cannot do is in docs/grading.md ("Threat model"). This module must stay light: it
runs in every grading kernel before ipykernel is imported.
"""

from __future__ import annotations

import _thread
import linecache
import os
import stat
import sys
from collections.abc import Callable, Container, Iterable
from types import CodeType, FrameType, FunctionType
from typing import Any

from aifkit import trusted_values, verifier

GUARD_ENV = "AIFKIT_GUARD"
MARK = "aifkit-guard: blocked"
#: Files that run by being there (a .pth line, a compiled module, an extension). A ``.py`` file may
#: be written (a lesson writes a training script for torchrun); importing it is refused.
CODE_SUFFIXES = (".pyc", ".pyo", ".pth", ".so", ".pyd", ".dylib")
CODE_NAMES = ("sitecustomize", "usercustomize")
FROZEN_PREFIX = "<frozen "
HAND_MADE = "<code with a file name that is not a str>"  # neither installed nor a test
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
MARSHAL_EVENTS = frozenset({"marshal.loads", "marshal.load"})  # bytes -> code, no code.__new__
MARSHAL_CALLERS = frozenset({*IMPORTLIB_FILES, "<frozen zipimport>"})
#: The events ``check`` has a rule for (besides ``ctypes.*``); the hook returns at once on others.
CHECKED_EVENTS = frozenset(
    {"object.__getattr__", "object.__setattr__", "sys._getframe", "compile", "exec", "open"}
    | {"code.__new__"}
    | MARSHAL_EVENTS
    | FILE_EVENTS
    | INTROSPECTION
)
SCRATCH = ("/tmp", "/dev/shm", "/var/tmp")  # writable by anyone: code there is not installed


def trusted_roots(cwd: str, extra: Iterable[str] = ()) -> tuple[str, ...]:
    """Folders whose code counts as installed: Python's prefixes and ``sys.path``'s folders,
    except the working folder, the user's site-packages, and scratch folders (/tmp, /dev/shm,
    /var/tmp) this unprivileged process may write: what the learner can change is not
    installed code. In the sandbox the installation is bound read-only wherever it lives (a
    checkout under /tmp included), so it stays trusted there.
    """
    import site

    excluded = {cwd, os.path.realpath(site.getusersitepackages())}
    candidates = [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix, *extra]
    candidates += [entry for entry in sys.path if entry]
    unprivileged = os.geteuid() != 0
    roots: set[str] = set()
    for entry in candidates:
        for path in {os.path.abspath(entry), os.path.realpath(entry)}:  # code names either
            if not os.path.isdir(path) or any(_under(path, w) or _under(w, path) for w in excluded):
                continue
            scratch = any(_under(path, folder) for folder in SCRATCH)
            if scratch and unprivileged and os.access(path, os.W_OK):
                continue
            roots.add(path)
    return tuple(sorted(roots))


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _known_files(cwd: str, roots: tuple[str, ...]) -> dict[tuple[int, int], tuple[int, int]]:
    """The working folder's Python files at start that shadow no installed module:
    (device, inode) -> (size, mtime)."""
    from importlib.machinery import PathFinder

    known: dict[tuple[int, int], tuple[int, int]] = {}
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
            if stat.S_ISREG(st.st_mode) and st.st_nlink == 1:
                known[(st.st_dev, st.st_ino)] = (st.st_size, st.st_mtime_ns)
    return known


def install(
    cwd: str | None = None,
    *,
    key: bytes | None = None,
    proofs_fd: int | None = None,
    write: Callable[[int, bytes], Any] = os.write,
) -> None:
    """Install the guard's audit hook (for the rest of the process's life) and drop the
    working folder from ``sys.path``: imports come from the installation.

    With ``key`` and ``proofs_fd`` it also starts the test verifier (``aifkit.verifier``),
    which writes a proof for each test cell that ran to its end as the grader sent it.
    """
    cwd = os.path.realpath(cwd or os.getcwd())
    roots = trusted_roots(cwd)
    known = _known_files(cwd, roots)
    leave_working_folder(cwd)
    proofs = (key, proofs_fd) if key is not None and proofs_fd is not None else None
    sys.addaudithook(_make_hook(cwd, roots, known, write, proofs))


def leave_working_folder(cwd: str | None = None) -> None:
    """Drop the working folder (and "") from ``sys.path``: imports come from the installation."""
    cwd = os.path.realpath(cwd or os.getcwd())
    sys.path[:] = [p for p in sys.path if p and os.path.realpath(p) != cwd]


def _make_hook(
    cwd: str,
    roots: tuple[str, ...],
    known: dict[tuple[int, int], tuple[int, int]],
    write: Callable[[int, bytes], Any],
    proofs: tuple[bytes, int] | None = None,
    *,
    any: Callable[[Iterable[object]], bool] = any,
    type: Any = type,
    len: Callable[[Any], int] = len,
    next: Any = next,
    iter: Any = iter,
    bool: Any = bool,
    getattr: Any = getattr,
    list: Any = list,
    PermissionError: Any = PermissionError,
    OSError: Any = OSError,
) -> Callable[[str, tuple[Any, ...]], None]:
    """The audit hook; everything it uses is bound here, so later patches of modules do not
    reach it (learner code may replace ``os.stat`` in ``os``'s namespace, not this reference)."""
    # Builtins and module globals are looked up at call time: learner code could replace
    # ``builtins.any`` or ``aifkit.guard.CODE_SUFFIXES``. The hook uses only these references.
    getframe, stat_, write_flags, get_ident = sys._getframe, os.stat, WRITE_FLAGS, _thread.get_ident
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
    ctypes_events, max_stack = CTYPES_EVENTS, MAX_STACK
    checked_events, marshal_events, marshal_callers = (
        CHECKED_EVENTS,
        MARSHAL_EVENTS,
        MARSHAL_CALLERS,
    )
    test_mark, end_mark = verifier.TEST_MARK, verifier.END_MARK
    compare_mark, call_mark = verifier.COMPARE_MARK, verifier.CALL_MARK
    test_mark_bytes = test_mark.encode()
    proc_dev, mem_inodes = _proc_memory_files()
    mem_name: Any = "/mem"
    local = _thread._local()
    getpid, kernel_pid = os.getpid, os.getpid()
    test_files: set[str] = set()  # the cell files IPython compiled test texts under
    code_attributes = frozenset({"f_code", "__code__", "gi_code", "cr_code", "ag_code"})
    frame_attributes = frozenset({"tb_frame", "gi_frame", "cr_frame", "ag_frame"})
    frame_helpers = ("/inspect.py", "/traceback.py", "/logging/__init__.py", "/pdb.py", "/bdb.py")
    dict_type, dict_get, dict_pop = dict, dict.get, dict.pop
    module_dict = vars(type(sys))["__dict__"].__get__
    ask: verifier.Ask | None = None
    verifier_thread = -1

    trusted_names: dict[str, bool] = {}  # filename -> trusted: a pure function of the text

    def trusted_file(filename: str) -> bool:
        if type(filename) is not str_type:
            return False  # a code object built by hand can name a str subclass of the learner's
        known_answer = dict_get(trusted_names, filename)
        if known_answer is not None:
            return known_answer
        answer = filename.startswith(frozen) or any(under(filename, root) for root in roots)
        trusted_names[filename] = answer
        return answer

    def file_of(code: CodeType) -> str:
        """A code object's file name, if it is a plain ``str``: hashing or comparing a learner's
        str subclass would run learner code inside the hook."""
        filename = code.co_filename
        return filename if type(filename) is str_type else HAND_MADE

    def learner_frames(frame: FrameType | None) -> Iterable[FrameType]:
        depth = 0
        while frame is not None and depth < max_stack:
            filename = file_of(frame.f_code)
            if not trusted_file(filename) and filename not in test_files:
                yield frame
            frame = frame.f_back
            depth += 1

    def caller(origin: FrameType | None, skip: str = "") -> FrameType | None:
        """The frame that caused the event (past frames of files containing ``skip``)."""
        frame = origin
        while frame is not None and skip and skip in file_of(frame.f_code):
            frame = frame.f_back
        return frame

    def learner_called(origin: FrameType | None, skip: str = "") -> bool:
        frame = caller(origin, skip)
        return frame is not None and not trusted_file(file_of(frame.f_code))

    def file_on_stack(origin: FrameType | None, files: Container[str]) -> bool:
        """Whether a frame of one of ``files`` is on the stack."""
        frame, depth = origin, 0
        while frame is not None and depth < max_stack:
            if file_of(frame.f_code) in files:
                return True
            frame, depth = frame.f_back, depth + 1
        return False

    def importing(origin: FrameType | None) -> bool:
        """Whether the import system is on the stack (a module is being imported)."""
        return file_on_stack(origin, importlib_files)

    def learner_on_stack(origin: FrameType | None) -> bool:
        return next(iter(learner_frames(origin)), None) is not None

    def refuse(event: str, what: str, *, sentence: bool = False) -> None:
        message = what if sentence else f"{what} is not allowed while grading"
        try:  # noqa: SIM105 (contextlib.suppress is a global lookup: patchable)
            write(2, f"{mark} {event}: {message}\n".encode("utf-8", "replace"))
        except OSError:
            pass
        raise PermissionError(f"aifkit grading guard: {message}")

    def module_code_allowed(code: CodeType) -> bool:
        """Installed code, or a file of the working folder that was there at start, unchanged
        (compared by device and inode: no path resolution, which is Python code)."""
        filename = file_of(code)
        if trusted_file(filename):
            return True
        try:
            st = stat_(filename)
        except OSError:
            return False
        return known.get((st.st_dev, st.st_ino)) == (st.st_size, st.st_mtime_ns)

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
        """A process's memory file (``/proc/<pid>/mem``, reached by any path or link)."""
        if type(path) is bytes_type:
            path = path.decode("utf-8", "replace")
        if type(path) is not str_type:
            return False
        try:
            st = stat_(path)
        except OSError:
            return False
        return st.st_dev == proc_dev and (st.st_ino in mem_inodes or path.endswith(mem_name))

    def test_text(source: Any) -> bool:
        if type(source) is str_type:
            return source.startswith(test_mark)
        return type(source) is bytes_type and source.startswith(test_mark_bytes)

    def probe(function: Any) -> str:
        """Which of the test's probes a function is (its constant says), or "". Probes are
        compiled with their test's text: code from any other file is none (and needs no look
        at its constants, which makes reading ``__code__`` cheap everywhere else)."""
        if type(function) is not function_type:
            return ""
        code = function.__code__
        return probe_kind(code) if file_of(code) in test_files else ""

    def probe_kind(code: CodeType) -> str:
        for const in code.co_consts:
            if type(const) is str_type:
                if const.startswith(end_mark):
                    return end_mark
                if const in (compare_mark, call_mark):
                    return compare_mark if const == compare_mark else call_mark
        return ""

    def check_values(kind: str, function: Any) -> None:
        defaults = function.__defaults__
        if not defaults:
            return
        wrong = compare_values(defaults[0]) if kind == compare_mark else call_values(defaults[0])
        if wrong:
            refuse("test", wrong, sentence=True)

    def test_code(obj: Any, attribute: str) -> bool:
        """Whether ``obj.<attribute>`` is code of a test (a frame, function or generator)."""
        code = getattr(obj, attribute, None)
        return type(code) is code_type and file_of(code) in test_files

    def forget_source(filename: str) -> None:
        """IPython keeps each cell's text in linecache for tracebacks: not a test's."""
        for name in ("cache", "_ipython_cache"):
            cache: Any = dict_get(module_dict(linecache), name)
            if type(cache) is dict_type:
                dict_pop(cache, filename, None)

    def find_shell(origin: FrameType | None) -> Any:
        """The IPython shell running the cell (``self`` of its ``run_cell_async``), or None."""
        frame, depth = origin, 0
        while frame is not None and depth < max_stack:
            name = frame.f_code.co_name
            if (
                type(name) is str_type
                and name == "run_cell_async"
                and trusted_file(file_of(frame.f_code))
            ):
                return dict_get(frame.f_locals, "self")
            frame, depth = frame.f_back, depth + 1
        return None

    def shell_hooks(shell: Any) -> str:
        """Learner code the IPython shell would run on a test cell's text or code, if any:
        input and AST transformers, event callbacks, or an input log."""
        if shell is None:
            return ""
        manager = getattr(shell, "input_transformer_manager", None)
        groups = {
            "input transformers": [
                *(getattr(shell, "input_transformers_post", None) or []),
                *(getattr(manager, "cleanup_transforms", None) or []),
                *(getattr(manager, "line_transforms", None) or []),
                *(getattr(manager, "token_transformers", None) or []),
            ],
            "AST transformers": list(getattr(shell, "ast_transformers", None) or []),
        }
        events = getattr(getattr(shell, "events", None), "callbacks", None)
        if type(events) is dict_type:
            groups["event callbacks"] = [f for fs in events.values() for f in fs]
        found = [name for name, items in groups.items() if any(learner_code(f) for f in items)]
        logger = getattr(shell, "logger", None)
        if getattr(logger, "log_active", False) is True:
            found.append("an input log")
        return ", ".join(found)

    def scrub_request(shell: Any) -> None:
        """Blank the test's text where the kernel keeps the request: its parent message (shared
        by the shell, the display hooks and the streams) and the cell's ExecutionInfo."""
        kernel = getattr(shell, "kernel", None)
        get_parent = getattr(kernel, "get_parent", None)
        parent: Any = get_parent() if get_parent is not None else None
        content: Any = dict_get(parent, "content") if type(parent) is dict_type else None
        if type(content) is dict_type and "code" in content:
            content["code"] = ""
        result = getattr(getattr(shell, "displayhook", None), "exec_result", None)
        info = getattr(result, "info", None)
        if info is not None and type(getattr(info, "raw_cell", None)) is str_type:
            info.raw_cell = ""

    def asker(origin: FrameType | None) -> str:
        """Who asks (the first frame past the stdlib's frame helpers: inspect, traceback,
        logging, pdb) — "learner", "test" or "installed".
        PyTorch reading its caller's frame while a learner's function runs is not the learner."""
        frame, depth = origin, 0
        while frame is not None and depth < max_stack:
            filename = file_of(frame.f_code)
            if filename in test_files:
                return "test"
            if not trusted_file(filename):
                return "learner"
            if not filename.endswith(frame_helpers):
                return "installed"
            frame, depth = frame.f_back, depth + 1
        return ""

    def test_running(origin: FrameType | None) -> bool:
        """Whether a test's frame is on the stack."""
        return file_on_stack(origin, test_files)

    def during_test_by_learner(origin: FrameType | None) -> bool:
        """Learner code asks for a frame inside a test (a test's frame beneath it). Who asks
        comes first: most askers are installed code, and then the stack needs no longer walk."""
        return asker(origin) == "learner" and test_running(origin)

    def verify(kind: str, *payload: Any) -> None:
        if ask is None or getpid() != kernel_pid:
            return  # a forked child (a rank of run_local): the verifier thread is not in it
        answer = ask(kind, payload)
        if answer.startswith("refuse: "):
            refuse("test", answer[len("refuse: ") :])

    def check(event: str, args: tuple[Any, ...], origin: FrameType | None) -> None:
        if event == "object.__getattr__":
            kind = probe(args[0]) if len(args) >= 2 and args[1] == "__code__" else ""
            if kind == end_mark:
                verify("end", args[0])
            elif kind:
                check_values(kind, args[0])
            elif (
                len(args) >= 2
                and args[1] in code_attributes
                and test_code(args[0], args[1])
                and asker(origin) == "learner"
            ):
                refuse(event, "reading a test's code (its constants are the expected values)")
            elif len(args) >= 2 and args[1] in frame_attributes and during_test_by_learner(origin):
                refuse(event, "reaching stack frames from learner code during a test")
            return
        if event == "sys._getframe" and during_test_by_learner(origin):
            refuse(event, "reaching stack frames from learner code during a test")
        if event == "compile" and args and test_text(args[0]):
            shell = find_shell(origin)
            hooks = shell_hooks(shell)
            if hooks:
                refuse("test", f"the shell runs learner code on test cells ({hooks})")
            scrub_request(shell)
            filename: Any = args[1] if len(args) > 1 else None
            verify("text", args[0], filename)
            if type(filename) is str_type:
                test_files.add(filename)
                forget_source(filename)
            return
        if (
            event == "exec"
            and args
            and type(args[0]) is code_type
            and not trusted_file(file_of(args[0]))
        ):
            verify("exec", args[0])
        if event == "exec":
            code: Any = args[0] if args else None
            if (
                type(code) is code_type
                and origin is not None
                and file_of(origin.f_code) in importlib_files
                and not module_code_allowed(code)
            ):
                refuse(event, f"importing code from {file_of(code)} (not installed)")
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
            # installed code may (a module loading its library, threadpoolctl finding BLAS for
            # scikit-learn), while it is imported or runs for a cell; with no learner frame and
            # no import, it is a builtin the learner handed to a thread or to the event loop
            if learner_called(origin, skip="/ctypes/") or not (
                importing(origin) or learner_on_stack(origin)
            ):
                refuse(event, "ctypes")
        elif event in introspection:
            # the same: an installed module may while it is imported (debugpy sets a tracer)
            if learner_on_stack(origin) or not importing(origin):
                refuse(event, event)
        elif event == "code.__new__":
            filename = args[1] if len(args) > 1 else None
            if type(filename) is not str_type or trusted_file(filename) or filename in test_files:
                refuse(event, "building code that claims an installed file or a test's")
        elif event in marshal_events:
            if origin is None or file_of(origin.f_code) not in marshal_callers:
                refuse(event, "loading code with marshal outside the import system")
        elif (
            event == "object.__setattr__"
            and len(args) >= 2
            and type(args[0]) is function_type
            and args[1] == "__code__"
            and learner_on_stack(origin)
        ):
            refuse(event, "replacing a function's __code__")

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if event not in checked_events and not event.startswith(ctypes_events):
            return  # most events (import, builtins.id, marshal.loads ...) concern no rule
        if get_ident() == verifier_thread or getattr(local, "busy", False):
            return  # the verifier's own events; the hook's own frame and stat calls
        local.busy = True
        try:
            check(event, args, getframe(1))  # the frame whose code caused the event
        finally:
            local.busy = False

    compare_values, call_values, learner_code = trusted_values.checker(trusted_file)
    if proofs is not None:
        ask, verifier_thread = verifier.start(proofs[0], proofs[1], trusted_file, hook.__code__)
    return hook


def _proc_memory_files() -> tuple[int, frozenset[int]]:
    """procfs's device and the inodes of this process's memory files (any thread's)."""
    try:
        proc_dev = os.stat("/proc").st_dev
    except OSError:
        return -1, frozenset()
    inodes = set()
    for path in ("/proc/self/mem", "/proc/thread-self/mem"):
        try:
            inodes.add(os.stat(path).st_ino)
        except OSError:
            continue
    return proc_dev, frozenset(inodes)


def enabled(env: dict[str, str] | os._Environ[str]) -> bool:
    """Whether the grader asked for the guard (the launcher reads this)."""
    return env.get(GUARD_ENV) == "1"


def blocked_lines(log: str) -> list[str]:
    """The guard's refusals in a kernel log, for the grader's findings."""
    return [line[len(MARK) :].strip() for line in log.splitlines() if line.startswith(MARK)]


__all__ = ["GUARD_ENV", "MARK", "blocked_lines", "enabled", "install", "trusted_roots"]
