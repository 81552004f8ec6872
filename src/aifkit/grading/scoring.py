"""Fail-closed scores: a test earns points only when the grader saw it run to its end.

nbgrader's own rule gives full marks to any test cell without an error output, and the maximum to
a negative or non-numeric partial-credit value. Here a test cell scores only when all hold: the
kernel replied ``ok``, no error output was shown, and the kernel's verifier wrote the test's proof
(see ``proof.py``). Its partial credit, if its last line is a value, is the number the verifier
wrote beside the proof (never what the cell displays); it must be a finite number between 0 and
the cell's points, anything else scores zero. Points always come from the gradebook, never from
the (editable) cell metadata.
"""

from __future__ import annotations

import math

import nbformat

from aifkit.grading.execute import CellRun
from aifkit.grading.records import TestResult, TestStatus


def score_test(
    cell: nbformat.NotebookNode,
    run: CellRun | None,
    *,
    notebook: str,
    grade_id: str,
    max_score: float,
) -> TestResult:
    """The score of one autograded test cell, with the reason in plain words."""

    def result(score: float, status: TestStatus, detail: str) -> TestResult:
        return TestResult(
            notebook=notebook,
            grade_id=grade_id,
            max_score=max_score,
            score=score,
            status=status,
            detail=detail,
        )

    if run is None or run.status == "not-run":
        return result(0.0, "not-run", run.detail if run else "the test cell was never run")
    errors = [o for o in cell.get("outputs", []) if o.output_type == "error"]
    if run.status != "ok" or errors:
        reason = run.detail or (f"{errors[0].ename}: {errors[0].evalue}" if errors else "")
        return result(0.0, "failed", reason or f"the test did not pass ({run.status})")
    if not run.proven:
        return result(0.0, "failed", "the test cannot prove it ran to its end: it scores zero")
    number = run.value
    if number is None:
        return result(max_score, "passed", "")
    if math.isnan(number):
        return result(0.0, "failed", "the test's value is not a number: not a partial score")
    if not math.isfinite(number) or not 0.0 <= number <= max_score:
        return result(0.0, "failed", f"partial score {number:g} is outside 0..{max_score:g}")
    status: TestStatus = "passed" if number == max_score else "partial"
    return result(number, status, "" if status == "passed" else f"partial credit {number:g}")
