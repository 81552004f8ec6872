"""Likely copying between learners' answers, found on this machine: no code leaves it.

Each learner's code cells (autograder tests excluded) are read from ``submitted/`` and reduced to
fingerprints, as MOSS and JPlag do:

- **Normalised tokens.** Python's tokenizer splits the code; comments, blank lines and layout go,
  every identifier the learner could rename becomes ``N`` (attribute names after a dot stay:
  ``.mean`` is the library's, not the learner's), every number ``#`` and every string ``"``.
  Renaming variables, reformatting and changing constants do not change the tokens.
- **Per-statement k-grams.** Each statement's tokens give its k-grams (a shorter statement is one
  gram of its own), hashed. Grams never span two statements, so reordering statements, or
  functions, keeps every gram.
- **What does not count.** Grams of the released notebook's code (the template every learner
  starts from) are removed, and so are grams more than ``common_share`` of the learners wrote:
  what everyone writes is no evidence that two copied.

A pair's score is the weighted Jaccard index of their gram multisets (shared / either), 0 to 1.
Nothing is penalised: the report ranks pairs for an instructor to read, with the matching
lines side by side. A submission that cannot be read safely (a link, a special file, bad JSON,
an oversized notebook) is listed as skipped with the reason; the rest are compared.
"""

from __future__ import annotations

import csv
import html
import io
import itertools
import json
import keyword
import re
import time
import tokenize
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aifkit.grading.course import Course, GradingError
from aifkit.grading.submission_files import unsafe_entries

GRAM = 4  # tokens per gram: "N = N (" or ". mean ( N"
COMMON_SHARE = 0.5  # a gram more than this share of learners wrote is common, not evidence
MAX_NOTEBOOK_BYTES = 20 * 2**20
TOP_HTML = 20  # pairs shown side by side in the HTML report
_WORDS = re.compile(r"[A-Za-z_]\w*|\d[\w.]*|\S")


@dataclass(frozen=True)
class Line:
    """One line of a learner's code, where it is, and the grams that start on it."""

    notebook: str
    cell: int
    number: int
    text: str


@dataclass
class Learner:
    """A learner's code for one assignment and its fingerprint."""

    student: str
    lines: list[Line] = field(default_factory=list)
    grams: Counter[int] = field(default_factory=Counter)
    where: dict[int, set[int]] = field(default_factory=dict)  # gram -> indexes into lines


@dataclass(frozen=True)
class Pair:
    """Two learners, how alike their code is, and the lines each shares with the other."""

    a: str
    b: str
    score: float
    shared: int  # grams in common (counted with multiplicity)
    a_lines: frozenset[int]
    b_lines: frozenset[int]


@dataclass
class Report:
    """Every pair, best first, and the learners whose submission was skipped (and why)."""

    assignment: str
    learners: list[str]
    pairs: list[Pair]
    skipped: dict[str, str]
    seconds: float
    code: dict[str, list[Line]]


def normalise(code: str) -> list[list[tuple[str, int]]]:
    """The statements of ``code`` as lists of (normalised token, line number from 1)."""
    try:
        return _python_statements(code)
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return _word_statements(code)  # not Python (half-typed code): words per line


def _python_statements(code: str) -> list[list[tuple[str, int]]]:
    statements: list[list[tuple[str, int]]] = [[]]
    previous = ""
    for token in tokenize.generate_tokens(io.StringIO(code).readline):
        kind, text, line = token.type, token.string, token.start[0]
        if kind in (tokenize.NEWLINE, tokenize.ENDMARKER) or (kind == tokenize.OP and text == ";"):
            statements.append([])
        elif kind == tokenize.NAME:
            word = text if keyword.iskeyword(text) or previous == "." else "N"
            statements[-1].append((word, line))
        elif kind == tokenize.NUMBER:
            statements[-1].append(("#", line))
        elif kind == tokenize.STRING:
            statements[-1].append(('"', line))
        elif kind in (tokenize.OP, tokenize.ERRORTOKEN) and text.strip():
            statements[-1].append((text, line))
        previous = text if kind != tokenize.NL else previous
    return [s for s in statements if s]


def _word_statements(code: str) -> list[list[tuple[str, int]]]:
    statements = []
    for number, text in enumerate(code.splitlines(), start=1):
        words = [
            ("N" if w[0].isalpha() or w[0] == "_" else "#" if w[0].isdigit() else w, number)
            for w in _WORDS.findall(text)
        ]
        if words:
            statements.append(words)
    return statements


def grams(code: str, k: int = GRAM) -> list[tuple[int, set[int]]]:
    """Hashed k-grams of ``code``'s statements, each with the code lines it covers."""
    found = []
    for statement in normalise(code):
        windows = [statement] if len(statement) <= k else _windows(statement, k)
        for window in windows:  # hash(): grams live for one run, never stored or compared across
            found.append((hash(tuple(word for word, _ in window)), {line for _, line in window}))
    return found


def _windows(statement: list[tuple[str, int]], k: int) -> list[list[tuple[str, int]]]:
    return [statement[i : i + k] for i in range(len(statement) - k + 1)]


def code_cells(nb: dict[str, Any]) -> Iterable[tuple[int, str]]:
    """(index, source) of every code cell that is not an autograder test; malformed cells (a
    learner's notebook is any JSON) are passed over."""
    cells = nb.get("cells", [])
    for index, cell in enumerate(cells if isinstance(cells, list) else []):
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        meta = cell.get("metadata")
        nbgrader = meta.get("nbgrader") if isinstance(meta, dict) else None
        if isinstance(nbgrader, dict) and nbgrader.get("grade") and not nbgrader.get("solution"):
            continue
        source = cell.get("source", "")
        if isinstance(source, list):
            source = "".join(part for part in source if isinstance(part, str))
        if isinstance(source, str):
            yield index, source


def _read_notebook(path: Path) -> dict[str, Any]:
    size = path.stat().st_size
    if size > MAX_NOTEBOOK_BYTES:
        raise ValueError(
            f"{path.name} is {size / 2**20:.0f} MiB, over the {MAX_NOTEBOOK_BYTES // 2**20} MiB read"
        )
    try:
        nb = json.loads(path.read_bytes())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path.name} is not valid JSON ({error})") from None
    except RecursionError:
        raise ValueError(f"{path.name} nests its JSON too deeply to be a notebook") from None
    if not isinstance(nb, dict):
        raise ValueError(f"{path.name} is not a notebook (its JSON is not an object)")
    return nb


def _learner(student: str, folder: Path, notebooks: list[str]) -> Learner:
    """Read one learner's notebooks (only the release's names), safely; ValueError says why not."""
    problems = unsafe_entries(folder)
    if problems:
        raise ValueError(problems[0])
    learner = Learner(student)
    for name in notebooks:
        path = folder / name
        if not path.is_file():
            continue
        for cell, source in code_cells(_read_notebook(path)):
            first = len(learner.lines)
            learner.lines += [
                Line(name, cell, n, text) for n, text in enumerate(source.splitlines(), start=1)
            ]
            for digest, lines in grams(source):
                learner.grams[digest] += 1
                learner.where.setdefault(digest, set()).update(first + n - 1 for n in lines)
    if not learner.lines:
        raise ValueError("no code: none of the release's notebooks is in the submission")
    return learner


def _released_grams(course: Course, assignment: str) -> tuple[list[str], set[int]]:
    release = course.folder("release", ".", assignment)
    names = sorted(p.name for p in release.glob("*.ipynb"))
    if not names:
        raise GradingError(f"{release} has no notebook: generate the assignment first")
    released = {
        digest
        for name in names
        for _, source in code_cells(_read_notebook(release / name))
        for digest, _ in grams(source)
    }
    return names, released


def compare(course: Course, assignment: str, common_share: float = COMMON_SHARE) -> Report:
    """Fingerprint every learner's submission of ``assignment`` and score every pair."""
    started = time.monotonic()
    notebooks, released = _released_grams(course, assignment)
    learners: list[Learner] = []
    skipped: dict[str, str] = {}
    for student in course.submitted_students(assignment):
        folder = course.folder("submitted", student, assignment)
        try:
            learners.append(_learner(student, folder, notebooks))
        except (OSError, ValueError) as error:
            skipped[student] = str(error)
    writers = Counter(digest for learner in learners for digest in learner.grams)
    common = {d for d, n in writers.items() if n > max(2, common_share * len(learners))}
    for learner in learners:
        for digest in released | common:
            learner.grams.pop(digest, None)
    pairs = [_pair(a, b) for a, b in itertools.combinations(learners, 2)]
    pairs.sort(key=lambda p: (-p.score, -p.shared, p.a, p.b))
    return Report(
        assignment,
        [learner.student for learner in learners],
        pairs,
        skipped,
        time.monotonic() - started,
        {learner.student: learner.lines for learner in learners},
    )


def weighted_jaccard(a: Counter[int], b: Counter[int]) -> tuple[float, int, set[int]]:
    """Grams both have over grams either has (with multiplicity): the score, the shared count
    and the shared grams. Only the common keys are visited (a C-level set intersection)."""
    common = a.keys() & b.keys()
    shared = sum(min(a[d], b[d]) for d in common)
    either = a.total() + b.total() - shared
    return (shared / either if either else 0.0), shared, common


def _pair(a: Learner, b: Learner) -> Pair:
    score, shared, common = weighted_jaccard(a.grams, b.grams)
    return Pair(
        a.student,
        b.student,
        score,
        shared,
        frozenset(i for d in common for i in a.where[d]),
        frozenset(i for d in common for i in b.where[d]),
    )


def write_csv(report: Report, path: Path) -> Path:
    """One row per pair, best first: rank, both learners, score, shared grams, matched lines."""
    with open(path, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(
            ["rank", "student_a", "student_b", "score", "shared_grams", "lines_a", "lines_b"]
        )
        for rank, pair in enumerate(report.pairs, start=1):
            writer.writerow(
                [
                    rank,
                    pair.a,
                    pair.b,
                    f"{pair.score:.3f}",
                    pair.shared,
                    len(pair.a_lines),
                    len(pair.b_lines),
                ]
            )
    return path


def write_html(report: Report, path: Path, top: int = TOP_HTML) -> Path:
    """The ``top`` pairs side by side, matching lines highlighted; every learner byte escaped."""
    parts = [
        "<!doctype html><meta charset='utf-8'>",
        f"<title>Similarity: {html.escape(report.assignment)}</title>",
        "<style>body{font-family:sans-serif}table.code{width:100%;table-layout:fixed}"
        "td{vertical-align:top}pre{margin:0;white-space:pre-wrap}"
        "pre.hit{background:#ffe08a}h2{margin-top:2em}</style>",
        f"<h1>Similarity report: {html.escape(report.assignment)}</h1>",
        f"<p>{len(report.learners)} learners, {len(report.pairs)} pairs, "
        f"{report.seconds:.1f} s. Scores rank pairs for reading; nothing is penalised.</p>",
    ]
    if report.skipped:
        parts.append("<p>Skipped:</p><ul>")
        parts += [f"<li>{html.escape(s)}: {html.escape(r)}</li>" for s, r in report.skipped.items()]
        parts.append("</ul>")
    for rank, pair in enumerate(report.pairs[:top], start=1):
        parts.append(
            f"<h2>{rank}. {html.escape(pair.a)} and {html.escape(pair.b)}: "
            f"{pair.score:.0%} ({pair.shared} shared grams)</h2><table class='code'><tr>"
        )
        for student, hits in ((pair.a, pair.a_lines), (pair.b, pair.b_lines)):
            parts.append("<td>")
            for index, line in enumerate(report.code[student]):
                css = " class='hit'" if index in hits else ""
                parts.append(f"<pre{css}>{html.escape(line.text) or ' '}</pre>")
            parts.append("</td>")
        parts.append("</tr></table>")
    path.write_text("\n".join(parts) + "\n", encoding="utf-8")
    return path


def render(report: Report, top: int = TOP_HTML) -> str:
    """The plain-text summary: the best pairs and the skipped learners."""
    lines = [
        f"{report.assignment}: {len(report.learners)} learners, {len(report.pairs)} pairs "
        f"compared in {report.seconds:.1f} s",
        f"{'rank':>4}  {'score':>5}  {'shared':>6}  pair",
    ]
    lines += [
        f"{rank:>4}  {pair.score:>5.0%}  {pair.shared:>6}  {pair.a} / {pair.b}"
        for rank, pair in enumerate(report.pairs[:top], start=1)
    ]
    lines += [f"skipped {student}: {reason}" for student, reason in report.skipped.items()]
    return "\n".join(lines) + "\n"
