"""Autograde beyond one machine: a SLURM job array, each task grading a chunk in its sandboxes.

The grader prepares every job on the login node (it alone reads the gradebook), writes a
manifest of chunks, and submits one array whose task ``k`` runs ``python -m
aifkit.grading.worker`` on chunk ``k`` and writes one result file per student. When the array
has left the queue the grader records each result; a student whose task failed or ran out of
time gets an ``error`` record naming the task and its log, and ``--retry-failed`` grades just
those again.

The array is a job like any other: its request (partition, account, time limit, CPUs) is checked
against the site profile by ``aifkit.course.jobs.validate``, its script is the site's
``grade-array.sbatch`` template, and ``aifkit.slurm`` submits, waits for and cancels it.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from aifkit import slurm, templates
from aifkit.course import jobs, tiers
from aifkit.course import site as site_mod
from aifkit.grading import records
from aifkit.grading.autograde import WORK_DIRECTORY, AutogradeOptions, select_students
from aifkit.grading.commit import commit
from aifkit.grading.course import Course, GradingError
from aifkit.grading.prepare import GradingJob, assignment_specs, prepare
from aifkit.grading.records import SubmissionResult
from aifkit.grading.worker import GradingOutcome

TEMPLATE = "grade-array.sbatch"


def array_spec(
    run_dir: Path,
    assignment: str,
    options: AutogradeOptions,
    *,
    site: site_mod.Site,
    chunk: int,
    partition: str | None = None,
) -> jobs.JobSpec:
    """The array's request, checked against the site like any job (account, partition limits).

    Its time limit covers a full chunk of slow notebooks: chunk x notebook timeout, +20% and
    5 minutes. Each task runs the worker on one CPU; the template adds ``--task``.
    """
    minutes = int(chunk * options.limits.notebook_timeout_s * 1.2 / 60) + 5
    worker = (
        *(sys.executable, "-m", "aifkit.grading.worker"),
        *("--manifest", str(run_dir / "manifest.json"), "--out", str(run_dir / "results")),
        *("--sandbox", options.sandbox, "--limits", json.dumps(asdict(options.limits))),
    )
    spec = jobs.JobSpec(
        command=worker,
        tier=tiers.CPU_TINY,  # the worker grades on CPUs, whatever the partition
        job_name=f"aifkit-grade-{assignment}",
        nodes=1,
        procs_per_node=1,
        cpus_per_task=1,
        time_minutes=minutes,
        partition=site.partition(partition).name,  # SiteError naming the site's partitions
        account=site.account,
        log_dir=str(run_dir / "logs"),
        signal_lead_s=0,
    )
    try:
        jobs.validate(spec, site)
    except jobs.JobError as error:
        raise jobs.JobError(
            f"{error}\n  (each array task asks for {jobs.format_time(minutes)}: --chunk {chunk} "
            f"submission(s) x {options.limits.notebook_timeout_s:.0f} s per notebook, +20% and "
            "5 min; a smaller --chunk or another partition fits)"
        ) from error
    return spec


def render_script(spec: jobs.JobSpec, site: site_mod.Site, *, tasks: int) -> str:
    """The array's sbatch script: the site's ``grade-array.sbatch`` for ``tasks`` chunks."""
    return templates.render(TEMPLATE, site.templates, spec=spec, site=site, tasks=tasks)


def autograde_array(
    course: Course,
    assignment: str,
    options: AutogradeOptions,
    *,
    chunk: int = 5,
    site: site_mod.Site | None = None,
    partition: str | None = None,
    timeout_s: float = 6 * 3600,
    on_start: Callable[[int], None] | None = None,
    on_result: Callable[[SubmissionResult], None] | None = None,
) -> list[SubmissionResult]:
    """Grade with a SLURM job array on ``site`` (default: $AIFKIT_SITE, else local); record
    every student's outcome or error."""
    site = site or site_mod.load()
    workroot = course.root / WORK_DIRECTORY / assignment
    run_dir = workroot / f"array-{time.strftime('%Y%m%d-%H%M%S')}"
    # checked first: a request the site refuses fails before anything is prepared
    request = array_spec(run_dir, assignment, options, site=site, chunk=chunk, partition=partition)
    specs = assignment_specs(course, assignment)
    students = select_students(course, assignment, options)
    if on_start is not None:
        on_start(len(students))
    (run_dir / "logs").mkdir(parents=True)
    (run_dir / "results").mkdir()
    results: dict[str, SubmissionResult] = {}

    def record(job: GradingJob | None, outcome: GradingOutcome) -> None:
        if job is not None:
            commit(course, job, outcome)
        else:
            records.save(course.root, outcome.result)
        results[outcome.result.student] = outcome.result
        if on_result is not None:
            on_result(outcome.result)

    prepared: list[GradingJob] = []
    for student in students:
        try:
            prepared.append(prepare(course, assignment, student, specs, workroot / "jobs"))
        except Exception as error:
            record(None, GradingOutcome.failed(assignment, student, f"cannot prepare: {error}"))
    chunks = [prepared[i : i + chunk] for i in range(0, len(prepared), chunk)]
    if chunks:
        manifest = {"chunks": [[str(Path(j.folder) / "job.json") for j in c] for c in chunks]}
        (run_dir / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
        script = run_dir / "grade.sbatch"
        script.write_text(render_script(request, site, tasks=len(chunks)), encoding="utf-8")
        array_id = slurm.submit(script)
        try:
            slurm.wait(array_id, timeout_s=timeout_s)
        except slurm.JobError as error:  # the grader gives up on the array: end it too
            with contextlib.suppress(slurm.JobError):
                slurm.cancel(array_id)
            raise GradingError(f"grading array {array_id}: {error}; cancelled") from error
    for task, members in enumerate(chunks):
        for job in members:
            path = run_dir / "results" / f"{job.student}.json"
            try:
                outcome = GradingOutcome.load(path)
                record(job, outcome)
            except Exception as error:
                log = run_dir / "logs" / f"task-{task}.log"
                tail = log.read_text(errors="replace")[-800:] if log.exists() else "(no log)"
                message = f"array task {task} left no result ({error}); its log ends:\n{tail}"
                record(None, GradingOutcome.failed(assignment, job.student, message))
    return [results[s] for s in students]
