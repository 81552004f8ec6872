"""Every grading limit, defined once: its default, what it bounds, and the name it is set by.

A grading run takes each limit from, the last one winning:

1. the default here (``Limits``);
2. the course's nbgrader configuration, ``c.SandboxedExecute.<setting>`` — the traits that stock
   ``nbgrader autograde`` reads are made from this table (``nbgrader_hooks.py``), and
   ``aifkit grade autograde`` reads the same traits (``Course.limits``);
3. an explicit ``aifkit grade autograde --<setting>`` flag (flags are made from this table too).

This module imports nothing heavy: the command line builds its flags from it at start-up.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from aifkit.errors import AifkitError


class LimitError(AifkitError):
    """A grading limit set to a value it cannot have (not a number, zero or negative)."""


def _limit(default: float, help: str, *, setting: str | None = None) -> Any:
    """A ``Limits`` field: its default, its help text and, when not the field's, its setting."""
    return field(default=default, metadata={"help": help, "setting": setting})


@dataclass(frozen=True)
class Limits:
    """Resource limits for one submission's kernel and everything it starts."""

    memory_mb: int = _limit(
        4096,
        "Address space per process, MiB (RLIMIT_AS). The sandbox's tmpfs folders (/tmp, "
        "/dev/shm, the home folder, /run) are sized from it: a quarter of it, all together.",
    )
    cpu_seconds: int = _limit(600, "CPU seconds per process (RLIMIT_CPU).")
    processes: int = _limit(
        128, "Processes and threads of the sandbox user, all together (RLIMIT_NPROC)."
    )
    file_size_mb: int = _limit(256, "Largest file learner code may write, MiB (RLIMIT_FSIZE).")
    open_files: int = _limit(1024, "Open files per process (RLIMIT_NOFILE).")
    output_bytes: int = _limit(
        2_000_000,
        "Notebook output kept, all cells together, bytes: a cell printing past it is interrupted.",
    )
    cell_timeout_s: float = _limit(120.0, "Wall-clock seconds per cell.", setting="cell_timeout")
    notebook_timeout_s: float = _limit(
        900.0, "Wall-clock seconds per notebook.", setting="notebook_timeout"
    )

    def __post_init__(self) -> None:
        values = {s.name: getattr(self, s.field) for s in SETTINGS}
        _raise_problems(values, label=lambda s: f"Limits.{s.field}")
        for setting in SETTINGS:  # 6 -> 6.0: the JSON form and arithmetic keep their type
            object.__setattr__(self, setting.field, setting.kind(values[setting.name]))

    def with_settings(
        self, values: Mapping[str, object], *, label: Callable[[Setting], str]
    ) -> Limits:
        """A copy with ``values`` (by setting name) in place; a bad value is named by ``label``."""
        unknown = sorted(set(values) - set(BY_NAME))
        if unknown:
            known = ", ".join(BY_NAME)
            raise LimitError(f"no grading limit named {', '.join(unknown)}: use one of {known}")
        _raise_problems(values, label=label)
        changes: dict[str, Any] = {BY_NAME[name].field: value for name, value in values.items()}
        return replace(self, **changes)

    def prlimit_argv(self) -> list[str]:
        """``prlimit`` options that put these limits on the command it runs."""
        return [
            "prlimit",
            f"--as={self.memory_mb * 2**20}",
            f"--cpu={self.cpu_seconds}",
            f"--nproc={self.processes}",
            f"--fsize={self.file_size_mb * 2**20}",
            f"--nofile={self.open_files}",
            "--core=0",
            "--",
        ]

    def tmpfs_bytes(self) -> dict[str, int]:
        """The size of each in-memory folder of the sandbox: memory_mb / 4 in all.

        tmpfs pages are the host's memory and no process limit counts them, so they are part
        of the submission's budget: /tmp half of the quarter, /dev/shm (DataLoader workers) and
        the home folder a quarter each, /run a fixed MiB.
        """
        quarter = self.memory_mb * 2**20 // 4
        run = 2**20
        return {
            "/tmp": (quarter - run) // 2,
            "/dev/shm": (quarter - run) // 4,
            "/home": (quarter - run) // 4,
            "/run": run,
        }


@dataclass(frozen=True)
class Setting:
    """One limit as configuration sees it: ``c.SandboxedExecute.<name>`` and ``--<name>``."""

    name: str
    field: str  # the Limits attribute
    kind: type[int] | type[float]
    default: int | float
    help: str

    @property
    def config_key(self) -> str:
        return f"c.SandboxedExecute.{self.name}"

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def problem(self, value: object) -> str | None:
        """What is wrong with ``value`` for this limit, or None when nothing is."""
        number = (int,) if self.kind is int else (int, float)
        if isinstance(value, bool) or not isinstance(value, number):
            wanted = "a whole number" if self.kind is int else "a number"
            return f"must be {wanted}, not {type(value).__name__} (the default is {self.default})"
        if not 0 < value < math.inf:  # NaN included
            return f"must be greater than 0 and finite (the default is {self.default})"
        return None


SETTINGS: tuple[Setting, ...] = tuple(
    Setting(
        name=f.metadata["setting"] or f.name,
        field=f.name,
        kind=int if f.type == "int" else float,
        default=f.default,  # type: ignore[arg-type]  # every field has a number default
        help=f.metadata["help"],
    )
    for f in fields(Limits)
)
BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}


def _raise_problems(values: Mapping[str, object], *, label: Callable[[Setting], str]) -> None:
    problems = [
        f"{label(BY_NAME[name])} = {value!r}: {problem}"
        for name, value in values.items()
        if (problem := BY_NAME[name].problem(value)) is not None
    ]
    if problems:
        raise LimitError("; ".join(problems))


# Settings a course may still carry that aifkit's autograde never reads, and what to set instead.
# nbgrader's Execute is replaced by SandboxedExecute in autograde, so its timeout limits nothing
# there; it still applies where stock nbgrader executes unsandboxed (``nbgrader validate``).
UNREAD = {
    ("Execute", "timeout"): "c.SandboxedExecute.cell_timeout",
    ("ExecutePreprocessor", "timeout"): "c.SandboxedExecute.cell_timeout",
}


def unread_settings(c: Any) -> list[str]:
    """A warning for each setting in ``c`` that autograde ignores, naming the one to use."""
    return [
        f"c.{section}.{key} = {c[section][key]!r} does not limit autograde (SandboxedExecute "
        f"runs the notebooks there): set {instead} instead"
        for (section, key), instead in UNREAD.items()
        if section in c and key in c[section]
    ]
