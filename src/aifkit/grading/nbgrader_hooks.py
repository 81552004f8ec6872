"""Stock ``nbgrader autograde`` through the grading core of ``aifkit grade autograde``.

``grading/nbgrader_config.py`` puts ``SandboxedExecute`` in place of nbgrader's ``Execute`` and
``FailClosedSaveAutoGrades`` in place of ``SaveAutoGrades``, so an instructor who runs plain
``nbgrader autograde`` gets sequential grading with the guarantees of ``aifkit grade autograde``.
Both are adapters: the sandbox run, inspection, trust, scoring and the submission rule are
``core.py``'s, with the gradebook for points and the release folder for trusted code.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import nbformat
from nbconvert.exporters.exporter import ResourcesDict
from nbformat.notebooknode import NotebookNode
from nbgrader.api import Gradebook
from nbgrader.coursedir import CourseDirectory
from nbgrader.preprocessors import (
    CheckCellMetadata,
    ClearOutput,
    DeduplicateIds,
    NbGraderPreprocessor,
    OverwriteCells,
    OverwriteKernelspec,
    SaveAutoGrades,
)
from traitlets import Float, Integer, TraitType, Unicode

from aifkit.grading import core
from aifkit.grading import sandbox as sandboxes
from aifkit.grading.limits import BY_NAME, SETTINGS, Limits, unread_settings
from aifkit.grading.prepare import NotebookSpec
from aifkit.grading.records import Suspicion
from aifkit.grading.submission_files import copy_declared, declared_files

KEY = "aifkit"


def _spec(gb: Gradebook, notebook: str, assignment: str) -> NotebookSpec:
    """Points of the notebook's graded cells, from the gradebook (as ``prepare`` reads them)."""
    record = gb.find_notebook(notebook, assignment)
    solutions = {c.name for c in record.solution_cells}
    spec = NotebookSpec()
    for cell in record.grade_cells:
        is_test = cell.cell_type == "code" and cell.name not in solutions
        (spec.tests if is_test else spec.manual)[cell.name] = float(cell.max_score)
    return spec


def _specs(resources: ResourcesDict) -> dict[str, NotebookSpec]:
    """Every notebook of the assignment and its points."""
    info = resources["nbgrader"]
    with Gradebook(info["db_url"]) as gb:
        names = [n.name for n in gb.find_assignment(info["assignment"]).notebooks]
        return {name: _spec(gb, name, info["assignment"]) for name in names}


def _limit_trait(name: str) -> TraitType[Any, Any]:
    """The configurable trait of one grading limit: default and help from ``limits.py``."""
    setting = BY_NAME[name]
    if setting.kind is int:
        return Integer(int(setting.default), help=setting.help).tag(config=True)
    return Float(float(setting.default), help=setting.help).tag(config=True)


class SandboxedExecute(NbGraderPreprocessor):
    """Executes the notebook in the aifkit sandbox, with a proof for every test cell.

    Its traits are the grading limits (``c.SandboxedExecute.cell_timeout = 60``): stock
    ``nbgrader autograde`` and ``aifkit grade autograde`` both read them through this class.
    """

    sandbox = Unicode("bubblewrap", help="bubblewrap, apptainer or none").tag(config=True)
    memory_mb = _limit_trait("memory_mb")
    cpu_seconds = _limit_trait("cpu_seconds")
    processes = _limit_trait("processes")
    file_size_mb = _limit_trait("file_size_mb")
    open_files = _limit_trait("open_files")
    output_bytes = _limit_trait("output_bytes")
    cell_timeout = _limit_trait("cell_timeout")
    notebook_timeout = _limit_trait("notebook_timeout")

    def limits(self) -> Limits:
        """The limits these traits set; a bad value raises ``LimitError`` naming its setting."""
        values = {s.name: getattr(self, s.name) for s in SETTINGS}
        return Limits().with_settings(values, label=lambda s: s.config_key)

    def preprocess(
        self, nb: NotebookNode, resources: ResourcesDict
    ) -> tuple[NotebookNode, ResourcesDict]:
        info = resources["nbgrader"]
        specs = _specs(resources)
        spec = specs.get(info["notebook"], NotebookSpec())
        coursedir = CourseDirectory(config=self.config)
        release = coursedir.format_path(coursedir.release_directory, ".", info["assignment"])
        trusted = set(core.release_digests(Path(release)))
        for message in unread_settings(self.config):
            self.log.warning(message)
        limits = self.limits()
        box = sandboxes.make(self.sandbox)
        box.check()
        scratch = Path(tempfile.mkdtemp(prefix="aifkit-scratch-"))
        try:
            folder = Path(resources.get("metadata", {}).get("path") or ".")
            coursedir = CourseDirectory(config=self.config)  # only the assignment's own files
            release = coursedir.format_path(
                coursedir.release_directory, ".", resources["nbgrader"]["assignment"]
            )
            copy_declared(folder, declared_files(Path(release)), scratch)
            execution = core.execute(
                nb,
                spec,
                sandbox=box,
                limits=limits,
                workdir=scratch,
                student=str(info["student"]),
                course=str(coursedir.course_id),
            )
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        if execution.status != "completed":
            self.log.error("%s: %s", info["notebook"], execution.message)
        verdict = core.judge(info["notebook"], nb, spec, trusted, execution)
        findings = verdict.findings + self._other_findings(resources, specs, coursedir, trusted)
        message = core.withhold_flagged(verdict.tests, findings)
        if message:
            self.log.warning("%s/%s: %s", info["student"], info["assignment"], message)
        for finding in findings:
            self.log.warning(
                "flagged: %s %s line %s: %s",
                finding.notebook,
                finding.cell,
                finding.line,
                finding.reason,
            )
        resources[KEY] = verdict
        return nb, resources

    def _other_findings(
        self,
        resources: ResourcesDict,
        specs: dict[str, NotebookSpec],
        coursedir: CourseDirectory,
        trusted: set[str],
    ) -> list[Suspicion]:
        """Findings in the submission's other notebooks, sanitized as nbgrader will sanitize them.

        The submission rule needs them before this notebook's grades are saved: nbgrader grades
        one notebook at a time.
        """
        info = resources["nbgrader"]
        submitted = Path(
            coursedir.format_path(
                coursedir.submitted_directory, info["student"], info["assignment"]
            )
        )
        findings: list[Suspicion] = []
        for name, spec in sorted(specs.items()):
            path = submitted / f"{name}.ipynb"
            if name == info["notebook"] or path.is_symlink() or not path.is_file():
                continue
            other = {**resources, "nbgrader": {**info, "notebook": name}}
            try:
                nb = nbformat.read(str(path), as_version=4)
                for step in (
                    ClearOutput,
                    DeduplicateIds,
                    OverwriteKernelspec,
                    OverwriteCells,
                    CheckCellMetadata,
                ):
                    nb, other = step(config=self.config).preprocess(nb, other)
            except Exception as error:  # nbgrader fails that notebook itself and says why
                self.log.warning("%s.ipynb not inspected: %r", name, error)
                continue
            findings += core.learner_findings(nb, name, spec, trusted)
        return findings


class FailClosedSaveAutoGrades(SaveAutoGrades):
    """nbgrader's SaveAutoGrades with aifkit's fail-closed score (see ``scoring.py``)."""

    def preprocess(
        self, nb: NotebookNode, resources: ResourcesDict
    ) -> tuple[NotebookNode, ResourcesDict]:
        verdict = resources.get(KEY)
        if not isinstance(verdict, core.NotebookVerdict):  # SandboxedExecute did not run: no score
            verdict = core.not_graded(
                resources["nbgrader"]["notebook"], NotebookSpec(), "not run in the sandbox"
            )
        self._tests = {t.grade_id: t for t in verdict.tests}
        self._answers = {a.grade_id: a for a in verdict.answers}
        return super().preprocess(nb, resources)

    def _add_score(self, cell: NotebookNode, resources: ResourcesDict) -> None:
        grade_id = cell.metadata["nbgrader"]["grade_id"]
        grade = self.gradebook.find_grade(
            grade_id, self.notebook_id, self.assignment_id, self.student_id
        )
        test = self._tests.get(grade_id)
        if test is not None:
            grade.auto_score = test.score
            flagged = test.status == "flagged"
            grade.needs_manual_grade = flagged or grade.manual_score is not None
        else:  # a manually graded answer; an unknown cell scores nothing
            answer = self._answers.get(grade_id)
            grade.auto_score = answer.auto_score if answer is not None else 0.0
            grade.needs_manual_grade = grade.auto_score is None or grade.manual_score is not None
        self.gradebook.db.commit()
