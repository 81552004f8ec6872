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

from aifkit.grading import core
from aifkit.grading import sandbox as sandboxes
from aifkit.grading.course import GradingError
from aifkit.grading.limits import Limits
from aifkit.grading.prepare import GradingJob
from aifkit.grading.records import SubmissionResult
from aifkit.grading.sandbox import Sandbox
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
            verdict = core.not_graded(name, spec, problem)
        else:
            nb = nbformat.from_dict(job.notebooks[name])
            scratch = Path(tempfile.mkdtemp(prefix="aifkit-scratch-"))
            try:
                shutil.copytree(job.files, scratch, dirs_exist_ok=True)
                execution = core.execute(
                    nb,
                    spec,
                    sandbox=sandbox,
                    limits=limits,
                    workdir=scratch,
                    threads=threads,
                    student=job.student,
                    course=job.course,
                )
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
            if execution.status == "kernel-start":
                result.status = "error"  # the grader's problem, not the learner's: nothing recorded
                messages.append(f"{name}: {execution.message}\n{execution.kernel_log[-1500:]}")
            elif execution.status != "completed" and result.status == "graded":
                result.status = execution.status
                messages.append(f"{name}: {execution.message}")
            verdict = core.judge(name, nb, spec, job.trusted, execution)
            outcome.notebooks[name] = nb
        result.tests += verdict.tests
        result.answers += verdict.answers
        result.findings += verdict.findings
    if result.findings and result.status != "error":
        result.status = "flagged"
        messages.append(core.withhold_flagged(result.tests, result.findings))
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
