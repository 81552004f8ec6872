"""Warm kernels, the caller's side: one zygote per validation run, and what it preloads.

``ZygoteProcess.start`` runs ``python -m aifkit.zygote`` with the environment every kernel of
the run gets, and waits until its preloads are done; the kernel manager of
``aifkit.notebooks.kernel`` then asks it for each kernel, and starts the kernel the usual way
whenever it refuses (see ``aifkit.zygote`` for what makes a forked kernel as fresh as a started
one, and when it refuses).
"""

from __future__ import annotations

import collections
import contextlib
import os
import select
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from aifkit.errors import NotebookError
from aifkit.notebooks import execute, reading
from aifkit.notebooks.fingerprint import code_only, imported_names

#: Packages whose modules the zygote imports ahead of the notebooks that import them: heavy, and
#: leaving nothing a fork would break (no thread but OpenBLAS's, which stops at fork; no CUDA,
#: event loop or socket). Not ipywidgets: it registers its comm targets only when imported in a
#: running kernel.
PRELOADABLE = frozenset({"numpy", "torch", "matplotlib", "scipy", "sklearn", "pandas"})
START_TIMEOUT_S = 180.0


def supported() -> bool:
    """Warm kernels need Linux's pidfd (a zygote's child is watched by descriptor)."""
    return sys.platform.startswith("linux") and hasattr(os, "pidfd_open")


def imported_modules(path: Path) -> set[str]:
    """Every module (and its parent packages) the code cells of a notebook may import."""
    try:
        nb = reading.read(path)
    except NotebookError:  # an unreadable notebook fails later, on its own
        return set()
    sources = (code_only(reading.source_of(cell)) for _, cell in reading.code_cells(nb))
    return set().union(*(imported_names(source) for source in sources))


def preloads_for(paths: Iterable[Path], *, shared_by: int = 2) -> list[str]:
    """Modules of preloadable packages that at least ``shared_by`` of these notebooks import,
    parents first. A module only one notebook imports would cost the same in the zygote, but
    before any notebook could start."""
    counts = collections.Counter(m for path in paths for m in imported_modules(path))
    return sorted(m for m, n in counts.items() if n >= shared_by and m.split(".")[0] in PRELOADABLE)


class ZygoteProcess:
    """A running ``aifkit.zygote``, stopped (with every kernel it forked) by ``close``."""

    def __init__(self, process: subprocess.Popen[bytes], folder: Path) -> None:
        self.process = process
        self.folder = folder
        self.socket_path = str(folder / "zygote.sock")

    @classmethod
    def start(
        cls, environment: Mapping[str, str], modules: list[str], timeout_s: float = START_TIMEOUT_S
    ) -> ZygoteProcess:
        """Start a zygote with ``environment`` (already fitted by the kernel launcher) and wait
        until it has imported ``modules``; raises RuntimeError when it does not get there."""
        folder = Path(tempfile.mkdtemp(prefix="aifkit-zygote-"))
        log = open(folder / "zygote.log", "wb")  # noqa: SIM115 (the process owns it)
        process = subprocess.Popen(
            [sys.executable, "-m", "aifkit.zygote", str(folder / "zygote.sock"), *modules],
            env=dict(environment),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            cwd=folder,
        )
        log.close()
        zygote = cls(process, folder)
        try:
            zygote._wait_ready(timeout_s)
        except RuntimeError:
            zygote.close()
            raise
        return zygote

    def _wait_ready(self, timeout_s: float) -> None:
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], timeout_s)
        line = self.process.stdout.readline() if ready else b""
        if not line.startswith(b"{"):
            tail = (self.folder / "zygote.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"the kernel zygote did not start: {tail.strip() or 'no output'}")

    def close(self) -> None:
        """Stop the zygote: closing its stdin makes it kill its kernels and leave."""
        if self.process.stdin is not None:
            with contextlib.suppress(OSError):
                self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> ZygoteProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def zygote_for(jobs: list[execute.Job]) -> Iterator[str | None]:
    """The socket of a zygote for these jobs' kernels while they run, or None: nothing to run,
    no pidfd here, or the zygote failed to start (every kernel then starts the usual way)."""
    if not (jobs and supported()):
        yield None
        return
    try:
        zygote = ZygoteProcess.start(
            execute.runner_environment(jobs[0]), preloads_for(job.path for job in jobs)
        )
    except (RuntimeError, OSError):
        yield None
        return
    with zygote:
        yield zygote.socket_path
