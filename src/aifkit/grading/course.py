"""The nbgrader course a grading command works on: its folders, gradebook and configuration.

A course root holds ``nbgrader_config.py`` (the repository's loads ``grading/nbgrader_config.py``),
so stock ``nbgrader`` commands run from the root see the same configuration as ``aifkit grade``.
"""

from __future__ import annotations

import os
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from traitlets.config import Config
from traitlets.config.loader import PyFileConfigLoader

from aifkit.errors import AifkitError
from aifkit.grading import stock_intake

if TYPE_CHECKING:
    from aifkit.grading.late import LateRule
    from aifkit.grading.limits import Limits

CONFIG_FILE = "nbgrader_config.py"


class GradingError(AifkitError):
    """An instructor-level problem: no course, no gradebook entry, a bad configuration."""


@dataclass
class Course:
    """One nbgrader course directory and the configuration that applies to it."""

    root: Path
    config: Config

    @classmethod
    def load(cls, root: Path | str = ".", overrides: Config | None = None) -> Course:
        """Read ``<root>/nbgrader_config.py`` (when present) and apply ``overrides`` on top."""
        root = Path(root).resolve()
        config = Config()
        path = root / CONFIG_FILE
        if path.is_file():
            try:
                with stock_intake.aifkit_loading():  # aifkit's intake reads submissions itself
                    config.merge(PyFileConfigLoader(CONFIG_FILE, path=str(root)).load_config())
            except Exception as error:  # the file is Python: any error is the file's
                raise GradingError(
                    f"{path}: cannot load the nbgrader configuration: {error}"
                ) from error
        config.CourseDirectory.root = str(root)
        if overrides is not None:
            config.merge(overrides)
        from aifkit.grading.config import configure

        configure(config)  # aifkit's guarantees apply whatever the course file says
        _venv_on_path()
        course = cls(root=root, config=config)
        course.late_rules()  # a bad late rule stops here, named, before any grading
        return course

    def late_rules(self) -> dict[str, LateRule]:
        """The course's late rules by assignment (``c.LatePolicy.rules``), checked."""
        from aifkit.grading.late import LatePolicyError, parse_rules

        rules = self.config.LatePolicy.get("rules", {})
        try:
            if not isinstance(rules, dict):
                raise LatePolicyError("c.LatePolicy.rules must be a dict: assignment -> rule")
            return parse_rules(rules)
        except LatePolicyError as error:
            raise GradingError(f"{self._config_source()}: {error}") from None

    def limits(self, **flags: float | None) -> Limits:
        """The grading limits: defaults < this course's ``c.SandboxedExecute`` settings < ``flags``.

        ``flags`` are settings by name (``cell_timeout=30``), as ``aifkit grade autograde``
        passes its options; None means not given. The course's values are read through
        ``SandboxedExecute``, the class stock ``nbgrader autograde`` reads them with.
        """
        from traitlets import TraitError

        from aifkit.grading.limits import LimitError
        from aifkit.grading.nbgrader_hooks import SandboxedExecute

        try:
            configured = SandboxedExecute(config=self.config).limits()
        except (TraitError, LimitError) as error:
            raise GradingError(f"{self._config_source()}: {error}") from None
        given = {name: value for name, value in flags.items() if value is not None}
        return configured.with_settings(given, label=lambda s: s.flag)

    def _config_source(self) -> str:
        path = self.root / CONFIG_FILE
        where = f"{path} (or a file it loads)" if path.is_file() else f"the course at {self.root}"
        return f"nbgrader configuration of {where}"

    @property
    def coursedir(self) -> Any:
        from nbgrader.coursedir import CourseDirectory

        return CourseDirectory(config=self.config)

    @property
    def db_url(self) -> str:
        return str(self.coursedir.db_url)

    @property
    def course_id(self) -> str:
        return str(self.coursedir.course_id)

    def folder(self, step: str, student: str, assignment: str) -> Path:
        """``<root>/<step folder>/<student>/<assignment>`` as nbgrader lays it out."""
        coursedir = self.coursedir
        name = {
            "source": coursedir.source_directory,
            "release": coursedir.release_directory,
            "submitted": coursedir.submitted_directory,
            "autograded": coursedir.autograded_directory,
            "feedback": coursedir.feedback_directory,
        }[step]
        return Path(coursedir.format_path(name, student, assignment))

    def api(self) -> Any:
        """nbgrader's own API object over this course."""
        from nbgrader.apps import NbGraderAPI

        return NbGraderAPI(config=self.config)

    def gradebook(self) -> Any:
        from nbgrader.api import Gradebook
        from sqlalchemy.exc import SAWarning

        # nbgrader 0.9.6 with SQLAlchemy 2 warns on every submission; the grades are right
        warnings.filterwarnings("ignore", message=".*not in session.*", category=SAWarning)

        return Gradebook(self.db_url, self.course_id)

    def submitted_students(self, assignment: str) -> list[str]:
        """Students with a submission folder for ``assignment``, sorted."""
        submitted = self.root / self.coursedir.submitted_directory
        if not submitted.is_dir():
            return []
        return sorted(p.name for p in submitted.iterdir() if (p / assignment).is_dir())


def _venv_on_path() -> None:
    """nbgrader runs `alembic` by subprocess when it creates a gradebook: keep it findable."""
    bin_dir = str(Path(sys.executable).parent)
    path = os.environ.get("PATH", "")
    if bin_dir not in path.split(os.pathsep):
        os.environ["PATH"] = f"{bin_dir}{os.pathsep}{path}"
