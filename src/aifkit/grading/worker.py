"""Grade one prepared job: run each notebook in its sandbox and score it, failing closed.

A worker reads only its job folder and writes only a fresh scratch copy; it never opens the
gradebook. It runs in a process pool on this machine or as a task of a SLURM job array
(``python -m aifkit.grading.worker``), and returns the executed notebooks with a
``SubmissionResult`` for the grader to record.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import nbformat
from pydantic import Field

from aifkit.grading import sandbox as sandboxes
from aifkit.grading.course import GradingError
from aifkit.grading.execute import SandboxRun, run_notebook
from aifkit.grading.inspection import inspect_notebook
from aifkit.grading.limits import Limits
from aifkit.grading.prepare import GradingJob, digest
from aifkit.grading.records import SubmissionResult, TestResult
from aifkit.grading.sandbox import Sandbox
from aifkit.grading.scoring import score_test
from aifkit.models import MutableModel, load_json, validate


class GradingOutcome(MutableModel):
    """A graded submission: the record and the executed notebooks (name -> notebook JSON)."""

    result: SubmissionResult
    notebooks: dict[str, Any] = Field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"result": self.result.to_json(), "notebooks": self.notebooks}

    @classmethod
    def failed(cls, assignment: str, student: str, message: str) -> GradingOutcome:
        """The outcome of a submission the grader could not grade: an error, nothing scored."""
        return cls(
            result=SubmissionResult(
                assignment=assignment, student=student, status="error", message=message
            )
        )

    @classmethod
    def from_json(cls, data: Any, *, source: str | Path = "a worker's outcome") -> GradingOutcome:
        """An outcome from its JSON data; GradingError naming ``source`` and the bad keys."""
        return validate(cls, data, source=source, error=GradingError)

    @classmethod
    def load(cls, path: Path) -> GradingOutcome:
        """The outcome a worker wrote to ``path``; GradingError naming the file if corrupt."""
        return load_json(cls, path, what="the worker's outcome", error=GradingError)


def _test_cells(nb: nbformat.NotebookNode, tests: dict[str, float]) -> dict[int, str]:
    found: dict[int, str] = {}
    for index, cell in enumerate(nb.cells):
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if cell.cell_type == "code" and grade_id in tests and grade_id not in found.values():
            found[index] = grade_id
    return found


def _score(
    name: str, nb: nbformat.NotebookNode, tests: dict[str, float], execution: SandboxRun
) -> list[TestResult]:
    cells = _test_cells(nb, tests)
    results = [
        score_test(
            nb.cells[i],
            execution.cells.get(i),
            notebook=name,
            grade_id=grade_id,
            max_score=tests[grade_id],
        )
        for i, grade_id in cells.items()
    ]
    for grade_id in sorted(set(tests) - set(cells.values())):
        results.append(_not_run(name, grade_id, tests[grade_id], "cell missing"))
    return results


def _not_run(notebook: str, grade_id: str, points: float, why: str) -> TestResult:
    return TestResult(
        notebook=notebook,
        grade_id=grade_id,
        max_score=points,
        score=0.0,
        status="not-run",
        detail=why,
    )


def _learner_code(nb: nbformat.NotebookNode, trusted: set[str]) -> nbformat.NotebookNode:
    """A copy in which code still exactly as released is blanked: only learners' code is read."""
    copy: nbformat.NotebookNode = nbformat.from_dict(json.loads(json.dumps(nb)))
    for cell in copy.cells:
        if cell.cell_type == "code" and digest(cell.source) in trusted:
            cell.source = ""
    return copy


def grade(job: GradingJob, sandbox: Sandbox, limits: Limits, threads: int = 1) -> GradingOutcome:
    """Run and score every notebook of a job. Never raises for anything the learner did."""
    started = time.monotonic()
    result = SubmissionResult(
        assignment=job.assignment, student=job.student, status="graded", repairs=list(job.repairs)
    )
    outcome = GradingOutcome(result=result)
    messages: list[str] = []
    for name, spec in sorted(job.specs.items()):
        if name not in job.notebooks:
            problem = job.problems.get(name, f"{name}.ipynb was not graded")
            messages.append(problem)
            result.tests += [_not_run(name, g, p, problem) for g, p in spec.tests.items()]
            continue
        nb = nbformat.from_dict(job.notebooks[name])
        result.findings += inspect_notebook(_learner_code(nb, set(job.trusted)), name)
        scratch = Path(tempfile.mkdtemp(prefix="aifkit-scratch-"))
        try:
            shutil.copytree(job.files, scratch, dirs_exist_ok=True)
            execution = run_notebook(
                nb,
                sandbox=sandbox,
                limits=limits,
                workdir=scratch,
                tests=set(_test_cells(nb, spec.tests)),
                threads=threads,
            )
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        if execution.status == "kernel-start":
            result.status = "error"  # the grader's problem, not the learner's: nothing recorded
            messages.append(f"{name}: {execution.message}\n{execution.kernel_log[-1500:]}")
        elif execution.status != "completed" and result.status == "graded":
            result.status = execution.status
            messages.append(f"{name}: {execution.message}")
        result.tests += _score(name, nb, spec.tests, execution)
        outcome.notebooks[name] = nb
    if result.findings and result.status != "error":
        result.status = "flagged"
        would = sum(t.score for t in result.tests)
        for test in result.tests:
            if test.score or test.status in ("passed", "partial"):
                test.detail = f"flagged for review (the test itself gave {test.score:g})"
            test.score, test.status = 0.0, "flagged"
        messages.append(
            f"{len(result.findings)} suspicious construct(s) in the learner's code: autograded "
            f"points withheld for manual review (the tests gave {would:g})"
        )
    result.message = "; ".join(messages)
    result.seconds = time.monotonic() - started
    return outcome


def main(argv: list[str] | None = None) -> int:
    """A SLURM array task: grade this task's chunk of jobs, one result file per student."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--manifest", type=Path, required=True, help="JSON: chunks of job files")
    parser.add_argument("--task", type=int, required=True, help="index of this task's chunk")
    parser.add_argument("--out", type=Path, required=True, help="folder for result files")
    parser.add_argument("--sandbox", default="bubblewrap")
    parser.add_argument("--limits", default="{}", help="JSON of Limits fields")
    args = parser.parse_args(argv)
    manifest = json.loads(args.manifest.read_text(encoding="utf-8"))
    limits = Limits(**json.loads(args.limits))
    box = sandboxes.make(args.sandbox, slot=args.task % 64)
    box.check()
    args.out.mkdir(parents=True, exist_ok=True)
    for job_file in manifest["chunks"][args.task]:
        job = GradingJob.load(Path(job_file))
        outcome = grade(job, box, limits)
        target = args.out / f"{job.student}.json"
        tmp = target.with_suffix(".tmp")
        tmp.write_text(json.dumps(outcome.to_json()), encoding="utf-8")
        tmp.replace(target)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
