"""Find CUDA initialised in a notebook's kernel before the kernel forks worker processes.

A process that has initialised CUDA cannot hand it to a forked child: the child's first CUDA
call fails ("Cannot re-initialize CUDA in forked subprocess"), on a GPU node only, so a
notebook that runs clean on a laptop breaks on the factory. The kit's launchers
(``aifkit.course.dist.run_local``/``launch``) fork, as do ``os.fork`` and multiprocessing.

The check is static and cell-ordered: a CUDA call that runs when its cell runs (not inside a
``def``, ``lambda`` or ``class``, whose bodies may run in the forked ranks) marks the kernel as
CUDA-initialised; any fork in a later cell (or later in the same cell) is then reported.
``torch.cuda.device_count()`` asks NVML and leaves CUDA uninitialised, and ``torch.device("cuda")``
only names a device: both are allowed. ``.to(device)`` with a CUDA device in a variable is not
seen; the rule catches the explicit cases. A fork whose ranks never touch CUDA (CPU ranks on
gloo) is safe: say so on its line with a ``# fork-safe: <reason>`` comment.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass

# torch.cuda functions that do not initialise CUDA (NVML or pure bookkeeping).
_SAFE_CUDA_CALLS = frozenset({"device_count", "is_initialized"})
# Calls that start processes by forking this kernel.
_FORK_CALLS = frozenset({"run_local", "launch", "spawn", "start_processes", "fork", "Process"})
SAFE_MARKER = "# fork-safe:"


@dataclass(frozen=True)
class ForkHazard:
    """A fork in ``fork_cell`` after CUDA was initialised by ``cuda_call`` in ``cuda_cell``."""

    cuda_cell: int
    cuda_call: str
    fork_cell: int
    fork_call: str


def _dotted(node: ast.expr) -> str:
    """``torch.cuda.is_available`` for that attribute chain, the bare name for a Name, else ''."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else node.attr
    return ""


def _immediate_calls(tree: ast.AST) -> Iterator[ast.Call]:
    """Calls that run when the cell runs: not those in function, lambda or class bodies."""
    for child in ast.iter_child_nodes(tree):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | ast.ClassDef):
            continue
        if isinstance(child, ast.Call):
            yield child
        yield from _immediate_calls(child)


def _all_calls(tree: ast.AST) -> Iterator[ast.Call]:
    return (node for node in ast.walk(tree) if isinstance(node, ast.Call))


def _cuda_initialising(call: ast.Call) -> str | None:
    """The call as text if it initialises CUDA in the calling process, else None."""
    name = _dotted(call.func)
    parts = name.split(".")
    if "cuda" in parts[:-1] and parts[-1] not in _SAFE_CUDA_CALLS:
        return name  # torch.cuda.is_available(), torch.cuda.synchronize(), ...
    if isinstance(call.func, ast.Attribute) and call.func.attr == "cuda" and parts[0] != "torch":
        return f"{name}()"  # tensor.cuda(), model.cuda()
    if isinstance(call.func, ast.Attribute) and call.func.attr == "to":
        for argument in [*call.args, *(keyword.value for keyword in call.keywords)]:
            if isinstance(argument, ast.Constant) and str(argument.value).startswith("cuda"):
                return f"{name}({argument.value!r})"  # .to("cuda")
    return None


def _forking(call: ast.Call) -> str | None:
    name = _dotted(call.func)
    return name if name.split(".")[-1] in _FORK_CALLS else None


def find_hazards(sources: list[tuple[int, str]]) -> list[ForkHazard]:
    """Every fork after CUDA was initialised, for code cells given as (index, source)."""
    hazards: list[ForkHazard] = []
    initialised: tuple[int, str] | None = None
    for index, source in sources:
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue  # IPython magics or a syntax error: other rules and the kernel say so
        lines = source.splitlines()
        events: list[tuple[int, int, str, str]] = []  # (line, column, kind, text)
        for call in _immediate_calls(tree):
            cuda = _cuda_initialising(call)
            if cuda:
                events.append((call.lineno, call.col_offset, "cuda", cuda))
        for call in _all_calls(tree):
            fork = _forking(call)
            if fork and SAFE_MARKER not in lines[call.lineno - 1]:
                events.append((call.lineno, call.col_offset, "fork", fork))
        for _, _, kind, text in sorted(events):
            if kind == "cuda" and initialised is None:
                initialised = (index, text)
            elif kind == "fork" and initialised is not None:
                hazards.append(ForkHazard(initialised[0], initialised[1], index, text))
    return hazards
