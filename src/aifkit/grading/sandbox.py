"""Where learner code runs while it is graded: bubblewrap here, Apptainer on the factory.

A sandbox turns the kernel's command line into one that runs it with no network, a read-only
view of only the system and Python files it needs, one writable scratch folder (a copy of that
one submission's files, never the notebook with hidden tests), a private /tmp and PID namespace,
and resource limits set by ``prlimit``. When the grader runs as root the learner code also runs
under an unprivileged user id of its own (one per worker slot), because Linux applies the
process-count limit per user and never to root.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import sys
import sysconfig
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from aifkit.errors import AifkitError
from aifkit.grading.limits import Limits
from aifkit.resources import data_path

SANDBOX_UID_BASE = 61000  # one unprivileged uid per running kernel: 61000, 61001, ...
SANDBOX_SLOTS = 256
SLOT_LOCKS = Path("/run/aifkit-sandbox")  # root-only: one lock file per uid in use
INSIDE_WORKDIR = "/home/learner/work"  # where the submission's scratch copy appears
INSIDE_HOME = "/home/learner"
SANDBOX_HOSTNAME = "sandbox"  # resolves to 127.0.0.1 inside: see aifkit/data/sandbox/hosts

# Read-only parts of /etc that programs need; never the whole of /etc (secrets live there).
ETC_FILES = (
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
    "passwd",
    "group",
    "nsswitch.conf",
    "ssl",
    "ca-certificates",
    "fonts",
    "alternatives",
    "mime.types",
)


class SandboxError(AifkitError):
    """The sandbox cannot be set up (for example bubblewrap is missing)."""


@contextlib.contextmanager
def claim_slot(preferred: int = 0) -> Iterator[int]:
    """Hold a sandbox uid slot no other grader on this machine uses until we are done.

    Every grader process (parallel workers, SLURM tasks on one node, two instructors at once)
    takes an exclusive lock on its slot, so no two kernels ever share a uid: the uid is what the
    process limit counts and what the final clean-up kills.
    """
    SLOT_LOCKS.mkdir(mode=0o700, parents=True, exist_ok=True)
    for offset in range(SANDBOX_SLOTS):
        slot = (preferred + offset) % SANDBOX_SLOTS
        handle = open(SLOT_LOCKS / f"{slot}.lock", "a+")  # noqa: SIM115 - held until released
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        try:
            yield slot
        finally:
            handle.close()  # closing releases the lock
        return
    raise SandboxError(f"all {SANDBOX_SLOTS} sandbox uids are in use on this machine")


def python_paths() -> list[Path]:
    """The folders the grader's Python needs inside: its prefixes and the aifkit package."""
    import aifkit

    paths = {Path(sys.prefix), Path(sys.base_prefix), Path(sys.exec_prefix)}
    paths.add(Path(sysconfig.get_paths()["purelib"]))
    # The folder aifkit is imported from (site-packages, or src/ of an editable install), and
    # with it the package data: the kernelspecs notebooks may list (a04) are in there.
    paths.add(Path(aifkit.__file__).resolve().parent.parent)
    resolved = sorted({p.resolve() for p in paths if p.exists()})
    # keep only outermost folders: binding a parent already shows its children
    return [p for p in resolved if not any(q != p and q in p.parents for q in resolved)]


@dataclass(frozen=True)
class Bubblewrap:
    """Debian's bubblewrap: user, PID, network, IPC, UTS and mount namespaces, no root needed."""

    slot: int = 0  # worker slot: picks the sandbox uid when the grader is root
    executable: str = "bwrap"
    name: str = "bubblewrap"

    def check(self) -> None:
        if shutil.which(self.executable) is None:
            raise SandboxError(
                "bubblewrap is not installed: `apt-get install bubblewrap`, or grade with "
                "--sandbox apptainer on the factory (--no-sandbox only for trusted notebooks)"
            )

    @property
    def uid(self) -> int | None:
        """The uid learner code runs as when the grader is root, else None (the grader's own)."""
        return SANDBOX_UID_BASE + self.slot if os.geteuid() == 0 else None

    def wrap(
        self,
        argv: list[str],
        *,
        workdir: Path,
        runtime_dir: Path,
        env: dict[str, str],
        limits: Limits,
    ) -> list[str]:
        """The full command line: limits, then the uid drop, then bwrap, then ``argv``."""
        command = [*limits.prlimit_argv(), self.executable]
        if self.uid is None:  # unprivileged: a user namespace maps the caller inside
            command += ["--unshare-all"]
        else:  # root binds what it needs, then the child drops to the sandbox uid
            command += ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts"]
            command += ["--unshare-cgroup-try"]
        command += ["--die-with-parent", "--new-session"]
        command += ["--hostname", SANDBOX_HOSTNAME, "--proc", "/proc", "--dev", "/dev"]
        # Every tmpfs is sized (host memory otherwise): memory_mb / 4 in all, see Limits.
        sizes = {path: str(size) for path, size in limits.tmpfs_bytes().items()}
        command += ["--perms", "1777", "--size", sizes["/dev/shm"], "--tmpfs", "/dev/shm"]
        command += ["--perms", "1777", "--size", sizes["/tmp"], "--tmpfs", "/tmp"]
        command += ["--perms", "0755", "--size", sizes["/home"], "--tmpfs", "/home"]
        command += ["--perms", "1777", "--dir", INSIDE_HOME]
        command += ["--size", sizes["/run"], "--tmpfs", "/run"]
        command += _system_binds()
        for path in python_paths():
            command += [*_parents(path), "--ro-bind", str(path), str(path)]
        command += _parents(runtime_dir)
        command += ["--bind", str(workdir), INSIDE_WORKDIR]
        command += ["--bind", str(runtime_dir), str(runtime_dir)]
        command += ["--chdir", INSIDE_WORKDIR, "--clearenv"]
        for key, value in sorted(env.items()):
            command += ["--setenv", key, value]
        command.append("--")
        if self.uid is not None:
            command += ["setpriv", f"--reuid={self.uid}", f"--regid={self.uid}"]
            command += ["--clear-groups", "--inh-caps=-all", "--bounding-set=-all", "--"]
        return command + argv


def _parents(path: Path) -> list[str]:
    """Create a bind target's parent folders world-traversable (bwrap makes them 0700)."""
    options: list[str] = []
    for parent in reversed(path.parents[:-1]):
        if str(parent) not in ("/tmp", "/home", "/run", "/usr"):
            options += ["--perms", "0755", "--dir", str(parent)]
    return options


def _system_binds() -> list[str]:
    binds: list[str] = ["--ro-bind", "/usr", "/usr"]
    for top in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        path = Path("/") / top
        if path.is_symlink():
            binds += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            binds += ["--ro-bind", str(path), str(path)]
    binds += ["--perms", "0755", "--dir", "/etc"]  # bwrap would make it 0700: unreadable
    for name in ETC_FILES:
        binds += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    binds += ["--ro-bind", str(data_path("sandbox", "hosts")), "/etc/hosts"]
    cpu = "/sys/devices/system/cpu"  # lscpu and os.sched_getaffinity's neighbours read it (a02)
    if Path(cpu).is_dir():
        binds += [*_parents(Path(cpu)), "--ro-bind", cpu, cpu]
    return binds


@dataclass(frozen=True)
class Apptainer:
    """Apptainer on the factory: the same isolation from a container image.

    ``--containall`` gives private /tmp, /home, PID and IPC namespaces and no host files beyond
    the binds; ``--net --network none`` removes the network; limits come from ``prlimit``.
    Apptainer has no per-run tmpfs size option: /tmp and the home folder of ``--containall``
    live in its session directory, a tmpfs sized by the site's ``sessiondir max size`` in
    ``apptainer.conf`` (64 MiB by default); sites keep it at or below memory_mb / 4
    (``Limits.tmpfs_bytes``). Whether /dev/shm is private and sized is also the site's
    configuration (``mount dev``), not a command-line option: not verified here (no Apptainer).
    """

    image: str = "aifkit-grader.sif"
    executable: str = "apptainer"
    name: str = "apptainer"
    slot: int = 0

    def check(self) -> None:
        if shutil.which(self.executable) is None:
            raise SandboxError(
                f"{self.executable} is not installed here: `module load apptainer` on the "
                "factory, or use --sandbox bubblewrap"
            )

    def wrap(
        self,
        argv: list[str],
        *,
        workdir: Path,
        runtime_dir: Path,
        env: dict[str, str],
        limits: Limits,
    ) -> list[str]:
        command = limits.prlimit_argv()
        command += [self.executable, "exec", "--containall", "--cleanenv", "--no-home"]
        command += ["--net", "--network", "none", "--no-mount", "home,cwd"]
        command += ["--bind", f"{workdir}:{INSIDE_WORKDIR}", "--pwd", INSIDE_WORKDIR]
        command += ["--bind", f"{runtime_dir}:{runtime_dir}"]
        for key, value in sorted(env.items()):
            command += ["--env", f"{key}={value}"]
        return [*command, self.image, *argv]


@dataclass(frozen=True)
class NoSandbox:
    """Learner code with the grader's own rights: only limits apply. For trusted notebooks."""

    name: str = "none"
    slot: int = 0

    def check(self) -> None:
        warnings.warn(
            "grading WITHOUT a sandbox: learner code can read the gradebook, the hidden tests "
            "and other students' work; use this only for notebooks you trust",
            stacklevel=2,
        )

    def wrap(
        self,
        argv: list[str],
        *,
        workdir: Path,
        runtime_dir: Path,
        env: dict[str, str],
        limits: Limits,
    ) -> list[str]:
        return [*limits.prlimit_argv(), "env", "-i", *(f"{k}={v}" for k, v in env.items()), *argv]


Sandbox = Bubblewrap | Apptainer | NoSandbox


def make(kind: str, *, slot: int = 0, image: str | None = None) -> Sandbox:
    """A sandbox by name: ``bubblewrap`` (default), ``apptainer`` or ``none``."""
    if kind == "bubblewrap":
        return Bubblewrap(slot=slot)
    if kind == "apptainer":
        return Apptainer(slot=slot, image=image or Apptainer.image)
    if kind == "none":
        return NoSandbox(slot=slot)
    raise SandboxError(f"unknown sandbox {kind!r}: use bubblewrap, apptainer or none")
