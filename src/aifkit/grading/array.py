"""Autograde beyond one machine: a SLURM job array, each task grading a chunk in its sandboxes.

The grader prepares every job on the login node (it alone reads the gradebook), writes a
manifest of chunks, and submits one array whose task ``k`` runs ``python -m
aifkit.grading.worker`` on chunk ``k`` and writes one result file per student. When the array
has left the queue the grader records each result; a student whose task failed or ran out of
time gets an ``error`` record naming the task and its log, and ``--retry-failed`` grades just
those again.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from aifkit.grading import records
from aifkit.grading.autograde import WORK_DIRECTORY, Options, select_students
from aifkit.grading.commit import commit
from aifkit.grading.course import Course, GradingError
from aifkit.grading.prepare import Job, assignment_specs, prepare
from aifkit.grading.records import SubmissionResult
from aifkit.grading.worker import Outcome

POLL_S = 2.0


def render_script(
    run_dir: Path, tasks: int, options: Options, *, chunk: int, partition: str | None
) -> str:
    """The sbatch script of the array; its time limit covers a full chunk of slow notebooks."""
    minutes = int(chunk * options.limits.notebook_timeout_s * 1.2 / 60) + 5
    lines = [
        "#!/bin/bash",
        f"#SBATCH --job-name=aifkit-grade-{run_dir.parent.name}",
        f"#SBATCH --array=0-{tasks - 1}",
        "#SBATCH --ntasks=1",
        "#SBATCH --cpus-per-task=1",
        f"#SBATCH --time={minutes // 60:02d}:{minutes % 60:02d}:00",
        f"#SBATCH --output={run_dir}/logs/task-%a.log",
        "#SBATCH --requeue",
    ]
    if partition:
        lines.append(f"#SBATCH --partition={partition}")
    worker = [
        sys.executable,
        "-m",
        "aifkit.grading.worker",
        "--manifest",
        str(run_dir / "manifest.json"),
        "--task",
        "$SLURM_ARRAY_TASK_ID",
        "--out",
        str(run_dir / "results"),
        "--sandbox",
        options.sandbox,
        "--limits",
        json.dumps(asdict(options.limits)),
    ]
    command = " ".join(a if a.startswith("$") else shlex.quote(a) for a in worker)
    return "\n".join([*lines, "set -euo pipefail", f"exec {command}", ""])


def _sbatch(script: Path) -> str:
    done = subprocess.run(
        ["sbatch", "--parsable", str(script)], capture_output=True, text=True, timeout=60
    )
    if done.returncode != 0:
        raise GradingError(f"sbatch refused the grading array: {done.stderr.strip()}")
    return done.stdout.strip().split(";")[0]


def _wait(array_id: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        queued = subprocess.run(
            ["squeue", "-h", "-j", array_id, "-o", "%i"], capture_output=True, text=True, timeout=30
        )
        if queued.returncode == 0 and not queued.stdout.strip():
            return
        time.sleep(POLL_S)
    subprocess.run(["scancel", array_id], capture_output=True, timeout=30)
    raise GradingError(f"grading array {array_id} still queued after {timeout_s:.0f} s: cancelled")


def autograde_array(
    course: Course,
    assignment: str,
    options: Options,
    *,
    chunk: int = 5,
    partition: str | None = None,
    timeout_s: float = 6 * 3600,
    on_start: Callable[[int], None] | None = None,
    on_result: Callable[[SubmissionResult], None] | None = None,
) -> list[SubmissionResult]:
    """Grade with a SLURM job array; record every student's outcome or error."""
    specs = assignment_specs(course, assignment)
    students = select_students(course, assignment, options)
    if on_start is not None:
        on_start(len(students))
    workroot = course.root / WORK_DIRECTORY / assignment
    run_dir = workroot / f"array-{time.strftime('%Y%m%d-%H%M%S')}"
    (run_dir / "logs").mkdir(parents=True)
    (run_dir / "results").mkdir()
    results: dict[str, SubmissionResult] = {}

    def record(job: Job | None, outcome: Outcome) -> None:
        if job is not None:
            commit(course, job, outcome)
        else:
            records.save(course.root, outcome.result)
        results[outcome.result.student] = outcome.result
        if on_result is not None:
            on_result(outcome.result)

    jobs: list[Job] = []
    for student in students:
        try:
            jobs.append(prepare(course, assignment, student, specs, workroot / "jobs"))
        except Exception as error:
            record(None, Outcome.failed(assignment, student, f"cannot prepare: {error}"))
    chunks = [jobs[i : i + chunk] for i in range(0, len(jobs), chunk)]
    if chunks:
        manifest = {"chunks": [[str(Path(j.folder) / "job.json") for j in c] for c in chunks]}
        (run_dir / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
        script = run_dir / "grade.sbatch"
        script.write_text(
            render_script(run_dir, len(chunks), options, chunk=chunk, partition=partition),
            encoding="utf-8",
        )
        array_id = _sbatch(script)
        _wait(array_id, timeout_s)
    for task, members in enumerate(chunks):
        for job in members:
            path = run_dir / "results" / f"{job.student}.json"
            try:
                outcome = Outcome.load(path)
                record(job, outcome)
            except Exception as error:
                log = run_dir / "logs" / f"task-{task}.log"
                tail = log.read_text(errors="replace")[-800:] if log.exists() else "(no log)"
                message = f"array task {task} left no result ({error}); its log ends:\n{tail}"
                record(None, Outcome.failed(assignment, job.student, message))
    return [results[s] for s in students]
