"""nbgrader settings that make stock ``nbgrader`` commands use aifkit's guarantees."""

from __future__ import annotations

from typing import Any


def configure(c: Any) -> None:
    """Sandboxed, fail-closed autograde; feedback without hidden tests; sanitized HTML."""
    from nbconvert.preprocessors import ClearMetadataPreprocessor
    from nbgrader.preprocessors import (
        AssignLatePenalties,
        CheckCellMetadata,
        IgnorePattern,
        LimitOutput,
    )

    from aifkit.grading.feedback import feedback_config, formgrader_config
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
    c.OverwriteCells.add_missing_cells = True
    feedback_config(c)
    formgrader_config(c)  # formgrader shows learner HTML sanitized too


# Settings a course may still carry that aifkit's autograde never reads, and what to set instead.
# nbgrader's Execute is replaced by SandboxedExecute in autograde, so its timeout limits nothing
# there; it still applies where stock nbgrader executes unsandboxed (``nbgrader validate``).
UNREAD = {
    ("Execute", "timeout"): "c.SandboxedExecute.cell_timeout",
    ("ExecutePreprocessor", "timeout"): "c.SandboxedExecute.cell_timeout",
}


def unread_settings(c: Any) -> list[str]:
    """A warning for each setting in ``c`` that autograde ignores, naming the one to use."""
    return [
        f"c.{section}.{key} = {c[section][key]!r} does not limit autograde (SandboxedExecute "
        f"runs the notebooks there): set {instead} instead"
        for (section, key), instead in UNREAD.items()
        if section in c and key in c[section]
    ]
