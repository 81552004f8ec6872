"""Measure what the grading guard costs: one notebook graded with and without it, in one run.

The notebook is courses/c01-pytorch-basics with its solutions (every cell imports or trains with
torch; its graded tests are sent as the grader sends them: signed, with their comparisons and
calls checked). Both ways run it in the same bubblewrap sandbox with the same limits:
(a) baseline: the kernel without the guard (``AIFKIT_GUARD`` left out of its environment; the
    tests then get no proof, which does not change how long they take);
(b) the grading kernel as shipped: audit hook, verifier thread, value checks.
Rounds alternate (a) and (b); the script prints each round and the ratio of the medians, and
that every test was proven in (b).

Usage: python benchmarks/guard.py [--rounds N]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import nbformat

from aifkit import guard
from aifkit.grading import execute, sandbox

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "courses" / "c01-pytorch-basics" / "c01-pytorch-basics.ipynb"
LIMITS = sandbox.Limits(cell_timeout_s=300, notebook_timeout_s=900)


def graded_tests(nb: nbformat.NotebookNode) -> set[int]:
    """The autograded test cells: graded, not a solution."""
    return {
        i
        for i, cell in enumerate(nb.cells)
        if cell.cell_type == "code"
        and cell.metadata.get("nbgrader", {}).get("grade")
        and not cell.metadata.get("nbgrader", {}).get("solution")
    }


def run_once(guarded: bool) -> tuple[float, int, int]:
    """Seconds for one notebook, tests proven, tests in all."""
    nb = nbformat.read(str(NOTEBOOK), as_version=4)
    tests = graded_tests(nb)
    original = execute.kernel_env

    def without_guard(
        threads: int, runtime_dir: Path | None = None, **identity: str
    ) -> dict[str, str]:
        env = original(threads, runtime_dir, **identity)
        env.pop(guard.GUARD_ENV, None)
        return env

    execute.kernel_env = original if guarded else without_guard  # type: ignore[assignment]
    try:
        with tempfile.TemporaryDirectory(prefix="aifkit-bench-guard-") as work:
            began = time.monotonic()
            run = execute.run_notebook(
                nb,
                sandbox=sandbox.Bubblewrap(slot=40),
                limits=LIMITS,
                workdir=Path(work),
                tests=tests,
            )
            seconds = time.monotonic() - began
    finally:
        execute.kernel_env = original  # type: ignore[assignment]
    if run.status != "completed":
        raise SystemExit(f"the notebook did not complete ({run.status}): {run.message}")
    return seconds, sum(run.cells[i].proven for i in tests), len(tests)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    plain: list[float] = []
    guarded: list[float] = []
    for round_ in range(1, args.rounds + 1):
        seconds, _, _ = run_once(guarded=False)
        plain.append(seconds)
        seconds_b, proven, total = run_once(guarded=True)
        guarded.append(seconds_b)
        print(
            f"round {round_}: without guard {seconds:.2f} s, with guard {seconds_b:.2f} s "
            f"({proven}/{total} tests proven)"
        )
        if proven != total:
            raise SystemExit("the solution's tests were not all proven with the guard on")
    a, b = statistics.median(plain), statistics.median(guarded)
    print(
        f"median: without {a:.2f} s, with {b:.2f} s: the guard costs {b / a:.2f}x ({b - a:+.2f} s)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
