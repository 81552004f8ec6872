"""Kernel launcher: fit threads and device settings to the allocation, then become ipykernel.

The aifkit kernelspec runs ``python -m aifkit.launcher -f {connection_file}``. The launcher
computes the kernel's environment with the pure function ``fit_environment`` and replaces
itself (``os.execve``: same PID, so Jupyter's interrupts and restarts reach the kernel) with
``python -m ipykernel_launcher`` and the same arguments.

``python -m aifkit.launcher --print-env`` prints what it would set, for site admins.
A grading kernel (``AIFKIT_GUARD=1``, set by the grader) is not exec'd: the launcher installs
the grading guard's audit hook and runs ipykernel in its own process (``run_guarded``).
This module must stay light: it runs before every kernel start and never imports torch.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from aifkit import guard
from aifkit.errors import LauncherError

ENV_THREADS = "AIFKIT_THREADS"
ENV_RECORD = "AIFKIT_KERNEL_THREADS"
SLURM_CPUS = "SLURM_CPUS_PER_TASK"
PR_SET_DUMPABLE = 4  # prctl(2)

#: Thread-pool sizes of OpenMP (torch reads it at import), MKL, OpenBLAS, numexpr, Accelerate.
THREAD_VARS: tuple[str, ...] = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
)
#: Always set, whatever the user's environment says.
FORCED: Mapping[str, str] = {
    # MKL's default (dynamic) caps its pool at the physical cores, and torch sizes its own pool
    # from MKL's, so without this an allocation's word would be silently cut down.
    "MKL_DYNAMIC": "FALSE",
    # Nothing loads from a model or data set hub at run time (compute nodes have no internet, and
    # a course must run the same everywhere): Hugging Face libraries read these when they import.
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
}
#: Set only when absent: a site or user value always wins.
DEFAULTS: Mapping[str, str] = {
    "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
    "TORCH_NCCL_ASYNC_ERROR_HANDLING": "1",
}
#: torch >= 2.9 also reads PYTORCH_ALLOC_CONF; either one set by the user is kept.
ALLOC_CONF_VARS: tuple[str, ...] = ("PYTORCH_CUDA_ALLOC_CONF", "PYTORCH_ALLOC_CONF")
ALLOC_CONF_DEFAULT = "expandable_segments:True"


@dataclass(frozen=True)
class ThreadChoice:
    """How many threads the kernel gets and which setting decided it."""

    count: int
    source: str


def _positive_int(raw: str | None) -> int | None:
    """``raw`` as a positive integer, or None when it is unset or not one."""
    if raw is None or not raw.strip().isdigit():
        return None
    value = int(raw.strip())
    return value if value > 0 else None


def choose_threads(env: Mapping[str, str], *, affinity: int) -> ThreadChoice:
    """Threads for the kernel: AIFKIT_THREADS, else SLURM_CPUS_PER_TASK, else ``affinity``.

    The allocation's word wins over the local affinity even when it is larger; an explicit
    AIFKIT_THREADS wins over both and must be a positive integer (LauncherError otherwise).
    """
    explicit = env.get(ENV_THREADS)
    if explicit is not None and explicit.strip():
        count = _positive_int(explicit)
        if count is None:
            raise LauncherError(
                f"{ENV_THREADS}={explicit!r} is not a positive integer: "
                f"set it to a thread count (e.g. {ENV_THREADS}=4) or unset it"
            )
        return ThreadChoice(count, ENV_THREADS)
    slurm = _positive_int(env.get(SLURM_CPUS))
    if slurm is not None:
        return ThreadChoice(slurm, SLURM_CPUS)
    return ThreadChoice(max(affinity, 1), "CPU affinity")


def fit_environment(env: Mapping[str, str], *, affinity: int) -> dict[str, str]:
    """Return a copy of ``env`` fitted to the allocation (``env`` itself is not changed).

    Every thread-pool variable is set to the chosen thread count (recorded as
    AIFKIT_KERNEL_THREADS); CUDA/NCCL defaults are only added where absent.
    """
    threads = choose_threads(env, affinity=affinity)
    fitted = dict(env)
    for name in THREAD_VARS:
        fitted[name] = str(threads.count)
    fitted.update(FORCED)
    fitted[ENV_RECORD] = str(threads.count)
    for name, value in DEFAULTS.items():
        fitted.setdefault(name, value)
    if not any(fitted.get(name) for name in ALLOC_CONF_VARS):
        fitted[ALLOC_CONF_VARS[0]] = ALLOC_CONF_DEFAULT
    return fitted


def kernel_environment(env: Mapping[str, str], *, warn: bool = True) -> dict[str, str]:
    """What a kernel started with ``env`` runs with: ``fit_environment`` at this process's
    affinity, where a bad AIFKIT_THREADS is ignored (with a warning on stderr) rather than
    stopping a learner's kernel from starting. The kernel zygote applies the same function."""
    affinity = affinity_count()
    try:
        return fit_environment(env, affinity=affinity)
    except LauncherError as exc:
        if warn:
            print(f"aifkit.launcher: warning: {exc}; ignoring {ENV_THREADS}", file=sys.stderr)
        rest = {k: v for k, v in env.items() if k != ENV_THREADS}
        return fit_environment(rest, affinity=affinity)


def affinity_count() -> int:
    """CPUs this process may run on (its affinity mask), or os.cpu_count() where unknown."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # macOS has no sched_getaffinity
        return os.cpu_count() or 1


def managed_names() -> tuple[str, ...]:
    """Every variable the launcher may set, in the order --print-env shows them."""
    return (*THREAD_VARS, *FORCED, ENV_RECORD, *DEFAULTS, *ALLOC_CONF_VARS)


def describe(env: Mapping[str, str], *, affinity: int) -> str:
    """Shell-style listing of what the launcher sets, with a comment saying why."""
    threads = choose_threads(env, affinity=affinity)
    fitted = fit_environment(env, affinity=affinity)
    lines = [
        f"# aifkit kernel: {threads.count} threads from {threads.source} "
        f"({affinity} CPUs in this process's affinity)"
    ]
    for name in managed_names():
        if name in fitted:
            kept = "" if env.get(name) != fitted[name] else "  # already set"
            lines.append(f"{name}={shlex.quote(fitted[name])}{kept}")
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    """Command line: --print-env, everything else goes to ipykernel_launcher."""
    parser = argparse.ArgumentParser(
        prog="python -m aifkit.launcher",
        description="Start an ipykernel with threads fitted to the allocation; "
        "unknown arguments (e.g. -f CONNECTION_FILE) are passed to ipykernel_launcher.",
        allow_abbrev=False,
    )
    parser.add_argument("--print-env", action="store_true", help="print what would be set and exit")
    return parser


def kernel_arguments(argv: Sequence[str]) -> list[str] | None:
    """ipykernel_launcher's arguments in the launcher's command line (None for --print-env)."""
    args, rest = _parser().parse_known_args(list(argv))
    return None if args.print_env else rest


def main(argv: Sequence[str] | None = None) -> int:
    """Fit the environment and exec ipykernel_launcher (returns only for --print-env/errors)."""
    args, rest = _parser().parse_known_args(sys.argv[1:] if argv is None else list(argv))
    affinity = affinity_count()
    if args.print_env:
        try:
            print(describe(os.environ, affinity=affinity))
        except LauncherError as exc:
            print(f"aifkit.launcher: error: {exc}", file=sys.stderr)
            return 2
        return 0
    env = kernel_environment(os.environ)
    sys.stdout.flush()
    sys.stderr.flush()
    if guard.enabled(env):  # a grading kernel: the guard first, then ipykernel in this process
        return run_guarded(rest, env)
    os.execve(sys.executable, [sys.executable, "-m", "ipykernel_launcher", *rest], env)


def run_guarded(kernel_args: Sequence[str], env: Mapping[str, str]) -> int:
    """Install the grading guard (an audit hook, see ``aifkit.guard``), then run ipykernel here:
    a hook lives as long as its process, so the kernel cannot be exec'd into a fresh one.

    The grader leaves the test verifier's key and proofs file beside the connection file; the
    key file is deleted before any learner code runs (``aifkit.verifier``).
    """
    os.environ.clear()
    os.environ.update(env)
    _not_dumpable()
    key, proofs_fd = _verifier_files(kernel_args)
    # The kernel's own modules are imported before the hook, from the installation only (the
    # working folder is off the path first): no learner code has run yet, and the hook then
    # does not check the ~3,000 events of importing them (0.4 s of every graded notebook).
    guard.leave_working_folder()
    from ipykernel import ipkernel, kernelapp  # noqa: F401

    guard.install(key=key, proofs_fd=proofs_fd)
    del key

    sys.argv = [sys.argv[0], *kernel_args]
    kernelapp.launch_new_instance()
    return 0


def _not_dumpable() -> None:
    """PR_SET_DUMPABLE 0: no process of the learner's uid may read this one's memory or ptrace
    it (a subprocess the learner starts has no guard), only root. Linux only."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _verifier_files(kernel_args: Sequence[str]) -> tuple[bytes | None, int | None]:
    """The verifier's key (its file removed) and the proofs file open for appending."""
    from aifkit import verifier

    args = list(kernel_args)
    if "-f" not in args or args.index("-f") + 1 >= len(args):
        return None, None
    folder = os.path.dirname(os.path.abspath(args[args.index("-f") + 1]))
    key_path = os.path.join(folder, verifier.KEY_FILE)
    try:
        with open(key_path, "rb") as key_file:
            key = key_file.read()
        os.unlink(key_path)
        proofs = os.open(os.path.join(folder, verifier.PROOFS_FILE), os.O_WRONLY | os.O_APPEND)
    except OSError as error:
        print(f"aifkit.launcher: no test verifier ({error}): no test can pass", file=sys.stderr)
        return None, None
    return key, proofs


if __name__ == "__main__":
    sys.exit(main())
