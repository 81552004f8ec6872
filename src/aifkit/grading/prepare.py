"""Turn one submitted folder into a grading job: sanitized notebooks, support files, points.

Runs for the grader process, which alone reads the gradebook, in a confined child
(``confined.run_confined`` with the intake limits of ``intake.py``): cells the learner must not change
get their nbgrader flags and points back from the gradebook, locked and test cells their source
(hidden tests included), missing graded cells are re-added, duplicate ids dropped, kernelspec
reset (nbgrader's own sanitizers). The job it writes needs no gradebook to be graded, so workers
on this machine or on SLURM nodes never touch it.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Any

import nbformat
from pydantic import Field

from aifkit.grading.confined import ConfinedError, run_confined
from aifkit.grading.course import Course, GradingError
from aifkit.grading.intake import INTAKE_MEMORY_MB, INTAKE_SECONDS, read_submission
from aifkit.grading.submission_files import copy_declared, declared_files
from aifkit.models import MutableModel, load_json

JOB_FILE = "job.json"


class NotebookSpec(MutableModel):
    """What the gradebook says about one notebook of the assignment."""

    tests: dict[str, float] = Field(default_factory=dict)  # autograded test cells -> points
    manual: dict[str, float] = Field(default_factory=dict)  # manually graded cells -> points


class GradingJob(MutableModel):
    """Everything a worker needs to grade one submission, as JSON-able data."""

    assignment: str
    student: str
    folder: str  # job folder: job.json and files/ (the sandbox's scratch template)
    specs: dict[str, NotebookSpec]
    notebooks: dict[str, Any] = Field(default_factory=dict)  # name -> sanitized notebook JSON
    problems: dict[str, str] = Field(default_factory=dict)
    repairs: list[str] = Field(default_factory=list)
    trusted: list[str] = Field(default_factory=list)  # digests of the release's own code cells
    course: str = ""  # the course id: with the student, it picks the student's variants

    @property
    def files(self) -> Path:
        return Path(self.folder) / "files"

    def save(self) -> Path:
        path = Path(self.folder) / JOB_FILE
        path.write_text(self.model_dump_json(), encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: Path) -> GradingJob:
        """The job saved in ``path``; GradingError naming the file when it is unreadable or corrupt."""
        hint = "autograde the submission again: that prepares its job afresh"
        return load_json(cls, path, what="the grading job", error=GradingError, hint=hint)


def assignment_specs(course: Course, assignment: str) -> dict[str, NotebookSpec]:
    """Points of every graded cell, by notebook, from the gradebook."""
    from nbgrader.api import MissingEntry

    with course.gradebook() as gb:
        try:
            record = gb.find_assignment(assignment)
        except MissingEntry:
            raise GradingError(
                f"assignment {assignment!r} is not in the gradebook {course.db_url}: "
                f"run `aifkit grade release {assignment}` (nbgrader generate_assignment) first"
            ) from None
        specs: dict[str, NotebookSpec] = {}
        for notebook in record.notebooks:
            solutions = {c.name for c in notebook.solution_cells}
            spec = NotebookSpec()
            for cell in notebook.grade_cells:
                is_test = cell.cell_type == "code" and cell.name not in solutions
                (spec.tests if is_test else spec.manual)[cell.name] = float(cell.max_score)
            specs[notebook.name] = spec
        return specs


def prepare(
    course: Course, assignment: str, student: str, specs: dict[str, NotebookSpec], workroot: Path
) -> GradingJob:
    """Read, repair and sanitize one student's submission into ``workroot/<student>``.

    The work runs in a confined child; past a limit, every notebook of the submission gets a
    problem saying which, and the batch goes on.
    """
    folder = workroot / student
    shutil.rmtree(folder, ignore_errors=True)
    try:
        run_confined(
            _prepare_here,
            course,
            assignment,
            student,
            specs,
            workroot,
            seconds=INTAKE_SECONDS,
            memory_mb=INTAKE_MEMORY_MB,
            what=f"reading and sanitising {student}'s submission",
            preload=("nbgrader.preprocessors", "nbgrader.api", "aifkit.grading.worker"),
        )
    except ConfinedError as error:
        shutil.rmtree(folder, ignore_errors=True)
        job = _new_job(course, assignment, student, folder, specs)
        job.problems = {name: str(error) for name in specs}
        job.files.mkdir(parents=True)
        job.save()
        return job
    return GradingJob.load(folder / JOB_FILE)


def _new_job(
    course: Course, assignment: str, student: str, folder: Path, specs: dict[str, NotebookSpec]
) -> GradingJob:
    """An empty job for ``student``'s submission of ``assignment`` in ``course``."""
    return GradingJob(
        assignment=assignment,
        student=student,
        folder=str(folder),
        specs=specs,
        course=course.course_id,
    )


def _prepare_here(
    course: Course, assignment: str, student: str, specs: dict[str, NotebookSpec], workroot: Path
) -> None:
    """``prepare``'s work, in the confined child: the job is saved in its folder."""
    folder = workroot / student
    job = _new_job(course, assignment, student, folder, specs)
    submitted = course.folder("submitted", student, assignment)
    intake = read_submission(submitted, sorted(specs))
    job.problems, job.repairs = dict(intake.problems), list(intake.repairs)
    release = course.folder("release", ".", assignment)
    job.files.mkdir(parents=True, exist_ok=True)
    if not intake.refused:  # only the assignment's own files, from a folder checked whole
        left_out = copy_declared(submitted, declared_files(release), job.files)
        if left_out:
            shown = ", ".join(left_out[:8]) + (", ..." if len(left_out) > 8 else "")
            job.repairs.append(f"files the assignment does not declare were left out: {shown}")
    _copy_files(course.folder("source", ".", assignment), job.files)  # instructor's files win
    job.trusted = release_digests(release)
    for name, nb in intake.notebooks.items():
        try:
            job.notebooks[name] = sanitize(course, assignment, student, name, nb)
        except Exception as error:  # nbgrader raises plain exceptions on mangled notebooks
            try:
                rebuilt = rebuild_from_release(release / f"{name}.ipynb", nb)
                job.notebooks[name] = sanitize(course, assignment, student, name, rebuilt)
            except Exception as second:
                job.problems[name] = f"{name}.ipynb: cannot restore it from the source: {second!r}"
            else:
                job.repairs.append(
                    f"{name}.ipynb: rebuilt from the release with the learner's answers "
                    f"(nbgrader could not repair it: {error!r})"
                )
    job.save()


def digest(source: str) -> str:
    return hashlib.sha256(source.strip().encode("utf-8")).hexdigest()


def release_digests(release: Path) -> list[str]:
    """Digests of every code cell learners received: code that is still as released is trusted."""
    digests: set[str] = set()
    for path in sorted(release.glob("*.ipynb")):
        nb = nbformat.read(str(path), as_version=4)
        digests.update(digest(c.source) for c in nb.cells if c.cell_type == "code")
    return sorted(digests)


def _copy_files(source: Path, target: Path) -> None:
    """Every file but notebooks and hidden folders; symbolic links are never followed."""
    target.mkdir(parents=True, exist_ok=True)
    if not source.is_dir():
        return
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source)
        if any(part.startswith(".") for part in relative.parts) or path.is_symlink():
            continue
        if path.is_dir():
            (target / relative).mkdir(parents=True, exist_ok=True)
        elif path.suffix != ".ipynb" and path.is_file():
            (target / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target / relative)


def rebuild_from_release(release: Path, nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The released notebook with each answer cell replaced by the learner's cell of that id.

    For notebooks nbgrader cannot repair (graded cells deleted or mangled): the learner's own
    extra cells are dropped, every answer they wrote under its id is kept.
    """
    answers: dict[str, str] = {}
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader")
        grade_id = meta.get("grade_id") if isinstance(meta, dict) else None
        if isinstance(grade_id, str) and grade_id not in answers:
            answers[grade_id] = str(cell.get("source", ""))
    rebuilt: nbformat.NotebookNode = nbformat.read(str(release), as_version=4)
    for cell in rebuilt.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution") and meta.get("grade_id") in answers:
            cell.source = answers[meta["grade_id"]]
    return rebuilt


def restore_flags(nb: nbformat.NotebookNode, gb: Any, notebook: str, assignment: str) -> None:
    """Reset the nbgrader flags and points of every known cell from the gradebook."""
    record = gb.find_notebook(notebook, assignment)
    grades = {c.name: float(c.max_score) for c in record.grade_cells}
    solutions = {c.name for c in record.solution_cells}
    tasks = {c.name for c in record.task_cells}
    sources = {c.name: c for c in record.source_cells}
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader")
        grade_id = meta.get("grade_id") if isinstance(meta, dict) else None
        if not isinstance(grade_id, str) or grade_id not in sources:
            cell.metadata.pop("nbgrader", None)  # unknown to the gradebook: a learner's own cell
            continue
        flags = {
            "grade_id": grade_id,
            "grade": grade_id in grades,
            "solution": grade_id in solutions,
            "locked": bool(sources[grade_id].locked),
            "task": grade_id in tasks,
            "schema_version": 3,
        }
        if grade_id in grades or grade_id in tasks:
            flags["points"] = grades.get(grade_id, 0.0)
        cell.metadata["nbgrader"] = flags
        cell.cell_type = sources[grade_id].cell_type
        if cell.cell_type != "code":
            cell.pop("outputs", None)
            cell.pop("execution_count", None)
        else:
            cell.setdefault("outputs", [])
            cell.setdefault("execution_count", None)


def sanitize(
    course: Course, assignment: str, student: str, notebook: str, nb: nbformat.NotebookNode
) -> Any:
    """nbgrader's sanitizing preprocessors, missing graded cells added back."""
    from nbgrader.preprocessors import (
        CheckCellMetadata,
        ClearOutput,
        DeduplicateIds,
        OverwriteCells,
        OverwriteKernelspec,
    )

    resources: dict[str, Any] = {
        "nbgrader": {
            "notebook": notebook,
            "assignment": assignment,
            "student": student,
            "db_url": course.db_url,
        }
    }
    nb, resources = DeduplicateIds(config=course.config).preprocess(nb, resources)
    with course.gradebook() as gb:
        restore_flags(nb, gb, notebook, assignment)
    overwrite = OverwriteCells(config=course.config, add_missing_cells=True)
    for preprocessor in (
        ClearOutput(config=course.config),
        OverwriteKernelspec(config=course.config),
        overwrite,
        CheckCellMetadata(config=course.config),
    ):
        nb, resources = preprocessor.preprocess(nb, resources)
    return nbformat.from_dict(nb)
