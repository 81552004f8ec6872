"""The same sandbox and fail-closed scoring inside stock ``nbgrader autograde``.

``grading/nbgrader_config.py`` puts ``SandboxedExecute`` in place of nbgrader's ``Execute`` and
``FailClosedSaveAutoGrades`` in place of ``SaveAutoGrades``, so an instructor who runs plain
``nbgrader autograde`` gets sequential grading with the guarantees of ``aifkit grade autograde``.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from nbconvert.exporters.exporter import ResourcesDict
from nbformat.notebooknode import NotebookNode
from nbgrader import utils
from nbgrader.api import Gradebook
from nbgrader.coursedir import CourseDirectory
from nbgrader.preprocessors import NbGraderPreprocessor, SaveAutoGrades
from traitlets import Float, Integer, TraitType, Unicode

from aifkit.grading import sandbox as sandboxes
from aifkit.grading.execute import run_notebook
from aifkit.grading.inspection import inspect_notebook
from aifkit.grading.limits import BY_NAME, SETTINGS, Limits, unread_settings
from aifkit.grading.scoring import score_test
from aifkit.grading.submission_files import copy_declared, declared_files

KEY = "aifkit"


def _tests(resources: ResourcesDict) -> dict[str, float]:
    info = resources["nbgrader"]
    with Gradebook(info["db_url"]) as gb:
        notebook = gb.find_notebook(info["notebook"], info["assignment"])
        solutions = {c.name for c in notebook.solution_cells}
        return {
            c.name: float(c.max_score)
            for c in notebook.grade_cells
            if c.cell_type == "code" and c.name not in solutions
        }


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
        tests = _tests(resources)
        test_cells = {
            i
            for i, c in enumerate(nb.cells)
            if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("grade_id") in tests
        }
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
            execution = run_notebook(
                nb, sandbox=box, limits=limits, workdir=scratch, tests=test_cells
            )
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        if execution.status != "completed":
            self.log.error("%s: %s", resources["nbgrader"]["notebook"], execution.message)
        resources[KEY] = {
            "runs": execution.cells,
            "tests": tests,
            "findings": inspect_notebook(nb, resources["nbgrader"]["notebook"]),
        }
        for finding in resources[KEY]["findings"]:
            self.log.warning("flagged: %s line %s: %s", finding.cell, finding.line, finding.reason)
        return nb, resources


class FailClosedSaveAutoGrades(SaveAutoGrades):
    """nbgrader's SaveAutoGrades with aifkit's fail-closed score (see ``scoring.py``)."""

    def preprocess(
        self, nb: NotebookNode, resources: ResourcesDict
    ) -> tuple[NotebookNode, ResourcesDict]:
        self._aifkit: dict[str, Any] = resources.get(KEY, {})
        return super().preprocess(nb, resources)

    def preprocess_cell(
        self, cell: NotebookNode, resources: ResourcesDict, cell_index: int
    ) -> tuple[NotebookNode, ResourcesDict]:
        self._index = cell_index
        return super().preprocess_cell(cell, resources, cell_index)

    def _add_score(self, cell: NotebookNode, resources: ResourcesDict) -> None:
        grade_id = cell.metadata["nbgrader"]["grade_id"]
        grade = self.gradebook.find_grade(
            grade_id, self.notebook_id, self.assignment_id, self.student_id
        )
        tests: dict[str, float] = self._aifkit.get("tests", {})
        if grade_id not in tests:  # a manually graded answer
            grade.auto_score, _ = utils.determine_grade(cell, self.log)
            grade.needs_manual_grade = True
        else:
            runs = self._aifkit.get("runs", {})
            test = score_test(
                cell,
                runs.get(self._index),
                notebook=self.notebook_id,
                grade_id=grade_id,
                max_score=tests[grade_id],
            )
            flagged = bool(self._aifkit.get("findings"))
            grade.auto_score = 0.0 if flagged else test.score
            grade.needs_manual_grade = flagged or grade.manual_score is not None
        self.gradebook.db.commit()
