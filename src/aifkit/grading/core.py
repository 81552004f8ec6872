"""The one grading core: what a submission earns, the same in both grading paths.

``aifkit grade autograde`` (``worker.py``) and stock ``nbgrader autograde`` with the course
configuration (``nbgrader_hooks.py``) are thin adapters around this module. Given a sanitized
notebook, its points from the gradebook (``NotebookSpec``), the code learners received (digests
of the release's code cells: trusted) and what the sandbox saw (``SandboxRun``), it decides:

* **inspection**: which cells are the learner's (everything but test cells and code still exactly
  as released) and what suspicious constructs they hold (``inspection.py``);
* **scoring**: each autograded test, failing closed (``scoring.py``);
* **answers**: a manually graded code answer left as released or whose execution raised scores
  zero at once, as nbgrader's ``determine_grade`` does for unanswered cells; others go to a human;
* **the submission rule**: a finding in any notebook of a submission withholds every autograded
  point of that submission and marks each test for review.
"""

from __future__ import annotations

import copy
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from aifkit.grading.execute import SandboxRun, run_notebook
from aifkit.grading.inspection import inspect_notebook
from aifkit.grading.limits import Limits
from aifkit.grading.prepare import NotebookSpec, digest, release_digests
from aifkit.grading.records import AnswerResult, Suspicion, TestResult
from aifkit.grading.sandbox import Sandbox
from aifkit.grading.scoring import score_test

__all__ = [
    "NotebookVerdict",
    "answer_cells",
    "execute",
    "guard_findings",
    "judge",
    "learner_findings",
    "not_graded",
    "release_digests",
    "test_cells",
    "withhold_flagged",
]


@dataclass
class NotebookVerdict:
    """What one notebook earned: its tests, its manually graded answers, its findings."""

    tests: list[TestResult] = field(default_factory=list)
    answers: list[AnswerResult] = field(default_factory=list)
    findings: list[Suspicion] = field(default_factory=list)


def _graded_ids(nb: nbformat.NotebookNode, wanted: Collection[str]) -> dict[int, str]:
    """Cell index -> grade_id for the first cell of each wanted grade_id (duplicates ignored)."""
    found: dict[int, str] = {}
    for index, cell in enumerate(nb.cells):
        meta = cell.get("metadata", {}).get("nbgrader", {})
        grade_id = meta.get("grade_id") if isinstance(meta, dict) else None
        if grade_id in wanted and grade_id not in found.values():
            found[index] = str(grade_id)
    return found


def test_cells(nb: nbformat.NotebookNode, spec: NotebookSpec) -> dict[int, str]:
    """The autograded test cells the gradebook knows, by index (code cells only)."""
    code = {i: g for i, g in _graded_ids(nb, spec.tests).items() if nb.cells[i].cell_type == "code"}
    return code


def answer_cells(nb: nbformat.NotebookNode, spec: NotebookSpec) -> dict[int, str]:
    """The manually graded answer cells the gradebook knows, by index."""
    return _graded_ids(nb, spec.manual)


def learner_findings(
    nb: nbformat.NotebookNode, name: str, spec: NotebookSpec, trusted: Collection[str]
) -> list[Suspicion]:
    """Findings in the learner's code: code still exactly as released is blanked first.

    What the released cells import and define is the instructor's: a learner's answer may use
    the ``signal`` module the lesson imported without being flagged for it.
    """
    marked: nbformat.NotebookNode = copy.deepcopy(nb)
    for cell in marked.cells:
        if cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        text = "".join(source) if isinstance(source, list) else str(source)
        if digest(text) in trusted:
            cell.source = ""
    return inspect_notebook(marked, name)


def execute(
    nb: nbformat.NotebookNode,
    spec: NotebookSpec,
    *,
    sandbox: Sandbox,
    limits: Limits,
    workdir: Path,
    threads: int = 1,
    student: str = "",
    course: str = "",
) -> SandboxRun:
    """Run ``nb`` (in place) in the sandbox, every known test cell with its proof, as
    ``student`` of ``course`` (their variants: ``aifkit.course.variants``)."""
    return run_notebook(
        nb,
        sandbox=sandbox,
        limits=limits,
        workdir=workdir,
        tests=set(test_cells(nb, spec)),
        threads=threads,
        learner=student,
        course=course,
    )


def _not_run(notebook: str, grade_id: str, points: float, why: str) -> TestResult:
    return TestResult(
        notebook=notebook,
        grade_id=grade_id,
        max_score=points,
        score=0.0,
        status="not-run",
        detail=why,
    )


def _answer(
    cell: nbformat.NotebookNode,
    execution: SandboxRun,
    index: int,
    *,
    notebook: str,
    grade_id: str,
    max_score: float,
    trusted: Collection[str],
) -> AnswerResult:
    """Zero for a code answer left as released or whose code raised; else a human's call."""
    answer = AnswerResult(notebook=notebook, grade_id=grade_id, max_score=max_score)
    if cell.cell_type != "code":
        return answer
    run = execution.cells.get(index)
    raised = any(o.get("output_type") == "error" for o in cell.get("outputs", []))
    if digest(str(cell.source)) in trusted:
        answer.auto_score, answer.detail = 0.0, "No response: the answer is as released."
    elif raised or (run is not None and run.status == "error"):
        answer.auto_score, answer.detail = 0.0, "the answer's code raised an error"
    return answer


def judge(
    name: str,
    nb: nbformat.NotebookNode,
    spec: NotebookSpec,
    trusted: Collection[str],
    execution: SandboxRun,
) -> NotebookVerdict:
    """The verdict on one executed notebook (``nb`` holds the outputs of ``execution``)."""
    cells = test_cells(nb, spec)
    verdict = NotebookVerdict(findings=learner_findings(nb, name, spec, trusted))
    verdict.findings += guard_findings(name, execution)
    verdict.tests = [
        score_test(
            nb.cells[i], execution.cells.get(i), notebook=name, grade_id=g, max_score=spec.tests[g]
        )
        for i, g in cells.items()
    ]
    for grade_id in sorted(set(spec.tests) - set(cells.values())):
        verdict.tests.append(_not_run(name, grade_id, spec.tests[grade_id], "cell missing"))
    answers = answer_cells(nb, spec)
    verdict.answers = [
        _answer(
            nb.cells[i],
            execution,
            i,
            notebook=name,
            grade_id=g,
            max_score=spec.manual[g],
            trusted=trusted,
        )
        for i, g in answers.items()
    ]
    verdict.answers += [
        AnswerResult(notebook=name, grade_id=g, max_score=spec.manual[g], auto_score=0.0)
        for g in sorted(set(spec.manual) - set(answers.values()))
    ]
    return verdict


def guard_findings(name: str, execution: SandboxRun) -> list[Suspicion]:
    """What the kernel's guard refused (``aifkit.guard``): tampering attempts, for review."""
    found: dict[str, Suspicion] = {}
    for line in execution.blocked:
        event, _, reason = line.partition(": ")
        found.setdefault(
            line, Suspicion(notebook=name, cell="kernel", line=0, pattern=event, reason=reason)
        )
    return list(found.values())


def not_graded(name: str, spec: NotebookSpec, why: str) -> NotebookVerdict:
    """The verdict on a notebook that could not be run: nothing earned."""
    return NotebookVerdict(
        tests=[_not_run(name, g, p, why) for g, p in spec.tests.items()],
        answers=[
            AnswerResult(notebook=name, grade_id=g, max_score=p, auto_score=0.0, detail=why)
            for g, p in spec.manual.items()
        ],
    )


def withhold_flagged(tests: list[TestResult], findings: list[Suspicion]) -> str:
    """The submission rule: any finding zeroes every autograded test, marked for review.

    ``tests`` are changed in place; returns the message for the record ("" when nothing found).
    """
    if not findings:
        return ""
    would = sum(t.score for t in tests)
    for test in tests:
        if test.score or test.status in ("passed", "partial"):
            test.detail = f"flagged for review (the test itself gave {test.score:g})"
        test.score, test.status = 0.0, "flagged"
    return (
        f"{len(findings)} suspicious construct(s) in the learner's code: autograded "
        f"points withheld for manual review (the tests gave {would:g})"
    )
