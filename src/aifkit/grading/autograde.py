"""Autograde many submissions: prepared one by one, graded in parallel, recorded in order.

The grader process prepares each job (it alone reads and writes the gradebook), hands jobs to
``jobs`` worker processes (each with its own sandbox uid and a fresh kernel per notebook), and
records every outcome the moment it arrives. One student's failure never stops the batch.
"""

from __future__ import annotations

import concurrent.futures as futures
import multiprocessing
import multiprocessing.forkserver
import os
import shutil
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aifkit.grading import records
from aifkit.grading import sandbox as sandboxes
from aifkit.grading.commit import commit
from aifkit.grading.course import Course, GradingError
from aifkit.grading.limits import Limits
from aifkit.grading.prepare import GradingJob, assignment_specs, prepare
from aifkit.grading.records import SubmissionResult
from aifkit.grading.worker import GradingOutcome, grade

# one forkserver serves the intake's confined children (prepare) and the grading workers
FORKSERVER_PRELOAD = ["aifkit.grading.prepare", "aifkit.grading.worker"]
WORK_DIRECTORY = ".aifkit-grading"  # job folders, under the course root (shared with SLURM nodes)


@dataclass
class AutogradeOptions:
    jobs: int = 1
    sandbox: str = "bubblewrap"
    limits: Limits = field(default_factory=Limits)  # a course's own: ``course.limits()``
    students: list[str] | None = None  # None: every submitted student
    retry_failed: bool = False  # only students whose last record is an error, timeout or death


def select_students(course: Course, assignment: str, options: AutogradeOptions) -> list[str]:
    students = course.submitted_students(assignment)
    if options.students is not None:
        unknown = sorted(set(options.students) - set(students))
        if unknown:
            raise GradingError(f"no submission of {assignment} from: {', '.join(unknown)}")
        students = [s for s in students if s in options.students]
    if options.retry_failed:
        retry = {"error", "timeout", "kernel-died"}
        last = {r.student: r.status for r in records.load_all(course.root, assignment)}
        students = [s for s in students if last.get(s, "error") in retry]
    return students


_SLOT: list[int] = [0]


def _take_slot(slots: Any) -> None:
    _SLOT[0] = slots.get()


def _grade_in_worker(
    job: GradingJob, sandbox_kind: str, limits: Limits, threads: int
) -> dict[str, Any]:
    box = sandboxes.make(sandbox_kind, slot=_SLOT[0])
    return grade(job, box, limits, threads).to_json()


def _failed(
    job_or_student: GradingJob | str, assignment: str, error: BaseException
) -> GradingOutcome:
    student = job_or_student.student if isinstance(job_or_student, GradingJob) else job_or_student
    detail = "".join(traceback.format_exception_only(type(error), error)).strip()
    return GradingOutcome.failed(assignment, student, f"grader error: {detail}")


def autograde(
    course: Course,
    assignment: str,
    options: AutogradeOptions,
    on_start: Callable[[int], None] | None = None,
    on_result: Callable[[SubmissionResult], None] | None = None,
) -> list[SubmissionResult]:
    """Grade every selected submission of ``assignment``; a result per student, in order."""
    if options.jobs > 1:
        _start_forkserver()
    specs = assignment_specs(course, assignment)
    sandboxes.make(options.sandbox).check()
    students = select_students(course, assignment, options)
    if on_start is not None:
        on_start(len(students))
    workroot = course.root / WORK_DIRECTORY / assignment
    results: dict[str, SubmissionResult] = {}

    def record(job: GradingJob | None, student: str, outcome: GradingOutcome) -> None:
        try:
            if job is not None:
                commit(course, job, outcome)
            else:
                records.save(course.root, outcome.result)
        except Exception as error:  # a gradebook write that failed is this student's error
            outcome = _failed(student, assignment, error)
            records.save(course.root, outcome.result)
        results[student] = outcome.result
        if on_result is not None:
            on_result(outcome.result)

    for student, job_or_error in _grade_all(course, assignment, students, specs, workroot, options):
        if isinstance(job_or_error, tuple):
            job, outcome = job_or_error
            record(job, student, outcome)
        else:
            record(None, student, _failed(student, assignment, job_or_error))
    shutil.rmtree(workroot, ignore_errors=True)
    return [results[s] for s in students]


def _start_forkserver() -> None:
    """Start the forkserver now, importing what the intake's confined children and the workers
    need, while this process reads the course (else the first submission waits for both)."""
    multiprocessing.get_context("forkserver").set_forkserver_preload(FORKSERVER_PRELOAD)
    multiprocessing.forkserver.ensure_running()


def _grade_all(
    course: Course,
    assignment: str,
    students: list[str],
    specs: dict[str, Any],
    workroot: Path,
    options: AutogradeOptions,
) -> Iterable[tuple[str, tuple[GradingJob, GradingOutcome] | BaseException]]:
    """Prepare in this process, grade in ``options.jobs`` workers, yield as they finish."""
    threads = max(1, (os.cpu_count() or 1) // max(1, options.jobs))
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(FORKSERVER_PRELOAD)
    slots = context.Queue() if options.jobs > 1 else None
    if slots is not None:
        for slot in range(options.jobs):
            slots.put(slot)
    pool = (
        futures.ProcessPoolExecutor(
            options.jobs, mp_context=context, initializer=_take_slot, initargs=(slots,)
        )
        if options.jobs > 1
        else None
    )
    pending: dict[futures.Future[dict[str, Any]], GradingJob] = {}
    try:
        for student in students:
            try:
                job = prepare(course, assignment, student, specs, workroot)
            except Exception as error:
                yield student, error
                continue
            if pool is None:
                box = sandboxes.make(options.sandbox, slot=0)
                try:
                    yield student, (job, grade(job, box, options.limits, threads))
                except Exception as error:
                    yield student, error
                continue
            pending[
                pool.submit(_grade_in_worker, job, options.sandbox, options.limits, threads)
            ] = job
            while len(pending) >= 2 * options.jobs:
                yield from _collect(pending, futures.FIRST_COMPLETED)
        while pending:
            yield from _collect(pending, futures.FIRST_COMPLETED)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


def _collect(
    pending: dict[futures.Future[dict[str, Any]], GradingJob], when: str
) -> Iterable[tuple[str, tuple[GradingJob, GradingOutcome] | BaseException]]:
    done, _ = futures.wait(list(pending), return_when=when)
    for future in done:
        job = pending.pop(future)
        try:
            yield job.student, (job, GradingOutcome.from_json(future.result()))
        except Exception as error:  # a worker that crashed (BrokenProcessPool included)
            yield job.student, error


def status_table(results: list[SubmissionResult]) -> str:
    """One row per student: status, score, seconds and the first words of any message."""
    header = ("student", "status", "score", "seconds", "message")
    rows = [
        (
            r.student,
            r.status,
            f"{r.score:g}/{r.max_score:g}",
            f"{r.seconds:.1f}",
            r.message.splitlines()[0][:70] if r.message else "",
        )
        for r in results
    ]
    widths = [max([len(h)] + [len(row[i]) for row in rows]) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in rows]
    counts: dict[str, int] = {}
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
    lines.append(", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "no submissions")
    return "\n".join(lines)
