"""Notebook lint: every finding says which file, which cell, what is wrong and how to fix it.

Rules run in order on one notebook; each is a small function returning findings, so each can
be read and tested alone. A notebook that is not even valid JSON or nbformat 4 stops at the
first rule: nothing else can be said about it reliably.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat

from aifkit.course.tiers import TIERS
from aifkit.errors import NotebookError
from aifkit.notebooks import fork_safety, reading

MAX_BYTES = 1024 * 1024


@dataclass(frozen=True)
class LintFinding:
    """One problem in one notebook (``cell`` is None for notebook-wide problems)."""

    path: Path
    cell: int | None
    rule: str
    message: str
    fix: str
    fixable: bool = False

    def __str__(self) -> str:
        where = f"{self.path}" if self.cell is None else f"{self.path}: cell {self.cell}"
        return f"{where}: [{self.rule}] {self.message} (fix: {self.fix})"


Rule = Callable[[Path, Any, "LintContext"], list[LintFinding]]


@dataclass(frozen=True)
class LintContext:
    """What rules need to know beyond the notebook: allowed kernels and the size limit."""

    kernels: frozenset[str]
    max_bytes: int = MAX_BYTES


# Patterns of run-time downloads and installs: compute nodes of a factory have no internet.
_DOWNLOADS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern, re.MULTILINE), what)
    for pattern, what in (
        (r"^\s*[!%]\s*(pip|pip3|conda|mamba|uv)\b", "installs packages at run time"),
        (r"^\s*!\s*(wget|curl|git\s+clone|apt(-get)?)\b", "downloads at run time"),
        (r"\b(import\s+urllib|from\s+urllib\b|urllib\.request)", "uses urllib to download"),
        (
            r"\b(import\s+requests|from\s+requests\b|requests\.(get|post))",
            "uses requests to download",
        ),
        (r"\b(import\s+httpx|from\s+httpx\b)", "uses httpx to download"),
        (r"\bsubprocess\.\w+\(.*\bpip\b.*install", "installs packages through subprocess"),
        (
            r"\.from_pretrained\(|\bhf_hub_download\(|\bsnapshot_download\(",
            "loads from a model hub",
        ),
        (r"\bload_dataset\(|\btorch\.hub\.load\(", "loads from a dataset or model hub"),
        (r"\bdownload\s*=\s*True\b", "asks a data set loader to download"),
        (
            r"\bfetch_(openml|california_housing|covtype|kddcup99|lfw_\w+|olivetti_faces|"
            r"rcv1|species_distributions|20newsgroups\w*)\(",
            "fetches a scikit-learn data set online",
        ),
    )
)


def _rule_metadata(path: Path, nb: Any, ctx: LintContext) -> list[LintFinding]:
    findings = []
    extra = sorted(set(nb.metadata) - reading.NOTEBOOK_METADATA_KEYS)
    if extra:
        findings.append(
            LintFinding(
                path,
                None,
                "metadata",
                f"notebook metadata keys not allowed: {', '.join(extra)}",
                f"aifkit nb strip {path}",
                fixable=True,
            )
        )
    for index, cell in enumerate(nb.cells):
        extra = sorted(set(cell.get("metadata", {})) - reading.CELL_METADATA_KEYS)
        if extra:
            findings.append(
                LintFinding(
                    path,
                    index,
                    "metadata",
                    f"cell metadata keys not allowed: {', '.join(extra)}",
                    f"aifkit nb strip {path}",
                    fixable=True,
                )
            )
    return findings


_AIFKIT_KEYS = {"id", "timeout", "min_seconds", "reads", "needs", "capstone"}
_NEEDS = {"slurm", "gpu", "multi-gpu"}


def _rule_aifkit_metadata(path: Path, nb: Any, ctx: LintContext) -> list[LintFinding]:
    """The notebook's aifkit metadata uses known keys with values of the right shape."""
    meta = nb.metadata.get("aifkit", {})
    fix = "see the metadata table in docs/notebooks.md"
    if not isinstance(meta, dict):
        return [LintFinding(path, None, "metadata", "aifkit metadata is not a mapping", fix)]
    problems = [f"unknown key {key!r}" for key in sorted(set(meta) - _AIFKIT_KEYS)]
    timeout = meta.get("timeout", {})
    if not isinstance(timeout, dict) or any(
        tier not in TIERS or isinstance(s, bool) or not isinstance(s, int | float) or s <= 0
        for tier, s in timeout.items()
    ):
        problems.append(
            f"timeout must map tiers ({', '.join(TIERS)}) to seconds > 0, got {timeout!r}"
        )
    needs = meta.get("needs", [])
    if not isinstance(needs, list) or not set(needs) <= _NEEDS:
        problems.append(f"needs must be a list drawn from {sorted(_NEEDS)}, got {needs!r}")
    if not isinstance(meta.get("reads", []), list):
        problems.append("reads must be a list of repo-relative globs")
    if "capstone" in meta:
        problems += _capstone_problems(nb, meta["capstone"])
    return [LintFinding(path, None, "metadata", f"aifkit metadata: {p}", fix) for p in problems]


def _capstone_problems(nb: Any, capstone: Any) -> list[str]:
    """``capstone``: ``baseline`` maps answer cells to the given baseline's code, ``held_out``
    names the test cells that grade the trained model on held-out data (the nbgrader proof
    submits the baseline and requires it to fail every one of them)."""
    if not isinstance(capstone, dict) or set(capstone) != {"baseline", "held_out"}:
        return ["capstone must be a mapping with exactly the keys 'baseline' and 'held_out'"]
    grading = [c.get("metadata", {}).get("nbgrader", {}) for c in nb.cells]
    answers = {m.get("grade_id") for m in grading if m.get("solution") and not m.get("grade")}
    tests = {m.get("grade_id") for m in grading if m.get("grade") and not m.get("solution")}
    baseline, held_out = capstone["baseline"], capstone["held_out"]
    problems = []
    if (
        not isinstance(baseline, dict)
        or not baseline
        or not all(isinstance(code, str) and code.strip() for code in baseline.values())
    ):
        problems.append("capstone.baseline must map answer cells' grade_ids to code")
    else:
        problems += [
            f"capstone.baseline: {g!r} is not an answer cell" for g in baseline if g not in answers
        ]
    if not isinstance(held_out, list) or not held_out:
        problems.append("capstone.held_out must list the grade_ids of the held-out test cells")
    else:
        problems += [
            f"capstone.held_out: {g!r} is not a test cell" for g in held_out if g not in tests
        ]
    return problems


def _rule_outputs(path: Path, nb: Any, ctx: LintContext) -> list[LintFinding]:
    findings = []
    for index, cell in reading.code_cells(nb):
        if cell.get("outputs") or cell.get("execution_count") is not None:
            findings.append(
                LintFinding(
                    path,
                    index,
                    "outputs",
                    "outputs or an execution count are committed",
                    f"aifkit nb strip {path}",
                    fixable=True,
                )
            )
    return findings


def _rule_kernelspec(path: Path, nb: Any, ctx: LintContext) -> list[LintFinding]:
    name = nb.metadata.get("kernelspec", {}).get("name")
    if name in ctx.kernels:
        return []
    known = ", ".join(sorted(ctx.kernels)) or "none found"
    return [
        LintFinding(
            path,
            None,
            "kernelspec",
            f"kernelspec {name!r} is not one of the kernels aifkit ships ({known})",
            "choose the 'Python 3 (AI Factory)' kernel in JupyterLab, or set metadata.kernelspec.name "
            "to 'aifkit'",
        )
    ]


def _defines_tier(source: str) -> bool:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return False
    for node in ast.walk(tree):
        targets = (
            node.targets
            if isinstance(node, ast.Assign)
            else ([node.target] if isinstance(node, ast.AnnAssign) else [])
        )
        if any(isinstance(t, ast.Name) and t.id == "TIER" for t in targets):
            return True
    return False


def _rule_parameters(path: Path, nb: Any, ctx: LintContext) -> list[LintFinding]:
    cells = [(i, c) for i, c in reading.code_cells(nb) if reading.has_tag(c, "parameters")]
    if not cells:
        return [
            LintFinding(
                path,
                None,
                "parameters",
                "no code cell tagged 'parameters'",
                "add a code cell `TIER = \"auto\"` near the top and tag it 'parameters' (see "
                "courses/TEMPLATE.ipynb)",
            )
        ]
    findings = []
    if len(cells) > 1:
        findings.append(
            LintFinding(
                path,
                cells[1][0],
                "parameters",
                "more than one cell is tagged 'parameters'",
                "keep one parameters cell; papermill injects values after the first",
            )
        )
    index, cell = cells[0]
    if not _defines_tier(reading.source_of(cell)):
        findings.append(
            LintFinding(
                path,
                index,
                "parameters",
                "the parameters cell does not define TIER",
                'add `TIER = "auto"` to the parameters cell',
            )
        )
    return findings


def _rule_nbgrader(path: Path, nb: Any, ctx: LintContext) -> list[LintFinding]:
    findings: list[LintFinding] = []
    seen: dict[str, int] = {}
    for index, cell in enumerate(nb.cells):
        meta = reading.nbgrader_meta(cell)
        if not (meta.get("grade") or meta.get("solution") or meta.get("task")):
            continue
        grade_id = meta.get("grade_id")
        if not isinstance(grade_id, str) or not grade_id:
            findings.append(
                LintFinding(
                    path,
                    index,
                    "nbgrader",
                    "graded cell has no grade_id",
                    "set a unique grade_id in the nbgrader cell toolbar",
                )
            )
        elif grade_id in seen:
            findings.append(
                LintFinding(
                    path,
                    index,
                    "nbgrader",
                    f"grade_id {grade_id!r} already used by cell {seen[grade_id]}",
                    "give every graded cell its own grade_id",
                )
            )
        else:
            seen[grade_id] = index
        points = meta.get("points")
        if (meta.get("grade") or meta.get("task")) and (
            isinstance(points, bool) or not isinstance(points, int | float) or points <= 0
        ):
            findings.append(
                LintFinding(
                    path,
                    index,
                    "nbgrader",
                    f"graded cell has points {points!r}",
                    "give graded cells points > 0",
                )
            )
        if meta.get("schema_version") != 3:
            findings.append(
                LintFinding(
                    path,
                    index,
                    "nbgrader",
                    "nbgrader schema_version is not 3",
                    "set schema_version 3 (re-save with nbgrader's cell toolbar)",
                )
            )
    return findings + _answers_followed_by_tests(path, nb)


def _answers_followed_by_tests(path: Path, nb: Any) -> list[LintFinding]:
    """Every autograded answer has at least one test cell before the next answer (or the end)."""
    findings = []
    cells = nb.cells
    for index, cell in enumerate(cells):
        if not reading.is_autograded_answer(cell):
            continue
        later = cells[index + 1 :]
        stop = next((i for i, c in enumerate(later) if reading.is_solution_cell(c)), len(later))
        if not any(reading.is_test_cell(c) for c in later[:stop]):
            findings.append(
                LintFinding(
                    path,
                    index,
                    "nbgrader",
                    "autograded answer cell has no test cell after it",
                    "add a graded test cell (grade: true, points > 0) after the answer, or make the "
                    "answer manually graded",
                )
            )
    return findings


def _rule_markers(path: Path, nb: Any, ctx: LintContext) -> list[LintFinding]:
    findings = []
    for index, cell in enumerate(nb.cells):
        source = reading.source_of(cell)
        if any(m in source for m in reading.HIDDEN_MARKERS) and not reading.is_test_cell(cell):
            findings.append(
                LintFinding(
                    path,
                    index,
                    "markers",
                    "hidden-test markers outside a graded test cell",
                    "move the hidden tests into an autograder test cell; elsewhere learners see them",
                )
            )
        if any(m in source for m in reading.SOLUTION_MARKERS) and not reading.is_solution_cell(
            cell
        ):
            findings.append(
                LintFinding(
                    path,
                    index,
                    "markers",
                    "solution markers outside a solution cell",
                    "mark the cell as an answer cell (solution: true) or remove the markers; "
                    "otherwise the solution is released to learners",
                )
            )
    return findings


def _rule_downloads(path: Path, nb: Any, ctx: LintContext) -> list[LintFinding]:
    findings = []
    for index, cell in reading.code_cells(nb):
        source = reading.source_of(cell)
        for pattern, what in _DOWNLOADS:
            match = pattern.search(source)
            if match:
                findings.append(
                    LintFinding(
                        path,
                        index,
                        "downloads",
                        f"{what}: {match.group(0).strip()!r}",
                        "compute nodes have no internet: bundle the data (aifkit.data), generate it, "
                        "or use a data set shipped inside a package; add packages to requirements.lock",
                    )
                )
    return findings


# Further reading (issue 12 item 5): the last cell sends the learner to the real documentation.
FURTHER_READING = "## Further reading"
MIN_READING_LINKS = 2
_MARKDOWN_LINK = re.compile(r"\[[^\]\n]+\]\((https://[^\s)]+)\)")


def _rule_further_reading(path: Path, nb: Any, ctx: LintContext) -> list[LintFinding]:
    """The last cell is markdown headed '## Further reading' with >= 2 https documentation links."""
    fix = (
        f"end the notebook with a markdown cell whose first line is '{FURTHER_READING}' and which "
        f"lists at least {MIN_READING_LINKS} links [title](https://...) to the documentation of "
        "what it taught (see courses/TEMPLATE.ipynb)"
    )
    if not nb.cells:
        return [LintFinding(path, None, "reading", "the notebook has no cells", fix)]
    index, last = len(nb.cells) - 1, nb.cells[-1]
    source = reading.source_of(last)
    first_line = source.strip().splitlines()[0].strip() if source.strip() else ""
    if last.get("cell_type") != "markdown" or first_line != FURTHER_READING:
        what = f"a {last.get('cell_type')} cell starting {first_line[:40]!r}"
        return [
            LintFinding(
                path, index, "reading", f"the last cell is not '{FURTHER_READING}' ({what})", fix
            )
        ]
    links = set(_MARKDOWN_LINK.findall(source))
    if len(links) < MIN_READING_LINKS:
        return [
            LintFinding(
                path,
                index,
                "reading",
                f"'{FURTHER_READING}' has {len(links)} distinct https link(s), "
                f"needs at least {MIN_READING_LINKS}",
                fix,
            )
        ]
    return []


def _rule_fork_safety(path: Path, nb: Any, ctx: LintContext) -> list[LintFinding]:
    sources = [(index, reading.source_of(cell)) for index, cell in reading.code_cells(nb)]
    return [
        LintFinding(
            path,
            hazard.fork_cell,
            "fork-safety",
            f"{hazard.fork_call}() forks the kernel after cell {hazard.cuda_cell} initialised CUDA "
            f"with {hazard.cuda_call}: the forked ranks fail on a GPU node",
            "ask torch.cuda.device_count() (NVML, CUDA stays uninitialised) in the kernel and use "
            "the GPU only inside the ranks' functions, or after the last fork",
        )
        for hazard in fork_safety.find_hazards(sources)
    ]


RULES: tuple[Rule, ...] = (
    _rule_metadata,
    _rule_aifkit_metadata,
    _rule_outputs,
    _rule_kernelspec,
    _rule_parameters,
    _rule_nbgrader,
    _rule_markers,
    _rule_downloads,
    _rule_further_reading,
    _rule_fork_safety,
)


def _default_kernels() -> frozenset[str]:
    from aifkit import kernels

    return frozenset(kernels.sources())


def lint_notebook(path: Path, ctx: LintContext | None = None) -> list[LintFinding]:
    """All findings for one notebook file."""
    ctx = ctx or LintContext(kernels=_default_kernels())
    size = path.stat().st_size if path.is_file() else 0
    findings = []
    if size > ctx.max_bytes:
        findings.append(
            LintFinding(
                path,
                None,
                "size",
                f"{size} bytes, over the {ctx.max_bytes} byte limit",
                "strip outputs, and move data or images into files the notebook reads",
            )
        )
    try:
        nb = reading.read(path)
    except NotebookError as error:
        return [
            *findings,
            LintFinding(
                path,
                None,
                "format",
                str(error).removeprefix(f"{path}: "),
                "restore the file from git or re-save it in JupyterLab",
            ),
        ]
    try:
        nbformat.validate(nb)
    except nbformat.ValidationError as error:
        findings.append(
            LintFinding(
                path,
                None,
                "format",
                f"not valid nbformat 4: {error.message}",
                f"aifkit nb strip {path} (re-saving in JupyterLab also repairs it)",
            )
        )
    for rule in RULES:
        findings.extend(rule(path, nb, ctx))
    return findings


def lint(
    paths: Iterable[Path], *, kernels: Iterable[str] | None = None, max_bytes: int = MAX_BYTES
) -> list[LintFinding]:
    """Lint every notebook named or found below ``paths`` (a keyword-only API for the CLI)."""
    ctx = LintContext(
        kernels=frozenset(kernels) if kernels is not None else _default_kernels(),
        max_bytes=max_bytes,
    )
    notebooks = reading.find_notebooks(paths)
    return [finding for path in notebooks for finding in lint_notebook(path, ctx)]
