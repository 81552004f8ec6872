"""nbgrader settings that make stock ``nbgrader`` commands use aifkit's guarantees."""

from __future__ import annotations

from typing import Any


def configure(c: Any) -> None:
    """Sandboxed, fail-closed autograde; the course's late policy; feedback without hidden tests;
    sanitized HTML."""
    from nbconvert.preprocessors import ClearMetadataPreprocessor
    from nbgrader.preprocessors import (
        AssignLatePenalties,
        CheckCellMetadata,
        IgnorePattern,
        LimitOutput,
    )

    from aifkit.grading.feedback import feedback_config, formgrader_config
    from aifkit.grading.late import LatePolicy
    from aifkit.grading.nbgrader_hooks import FailClosedSaveAutoGrades, SandboxedExecute

    c.Autograde.autograde_preprocessors = [
        SandboxedExecute,
        IgnorePattern,
        ClearMetadataPreprocessor,
        LimitOutput,
        FailClosedSaveAutoGrades,
        AssignLatePenalties,
        CheckCellMetadata,
    ]
    c.AssignLatePenalties.plugin_class = LatePolicy  # the course's c.LatePolicy.rules
    c.OverwriteCells.add_missing_cells = True
    feedback_config(c)
    formgrader_config(c)  # formgrader shows learner HTML sanitized too
