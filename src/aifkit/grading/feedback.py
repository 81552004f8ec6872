"""Feedback that carries nothing learner code saw of the hidden tests, and no active HTML.

nbgrader puts hidden tests back before autograding, so its feedback shows them; and learner code
that ran during or after a hidden test could have read it (history, IPython events, frames) and
written it anywhere it writes: a stream, an image, an exception, a later cell's HTML, a widget's
state, even an execution count. Matching the text cannot catch every transformation (reversed,
base64, drawn into a PNG), so :class:`RedactHiddenTests` decides by *when* an output was made
(which test cells hold hidden lines it reads from the gradebook's source cells as well as
from the graded copy):

- cells before the first hidden test keep their outputs (the learner's own work); any output that
  still repeats a hidden line verbatim (read from disk, say) is redacted;
- from the first hidden test on, every output is withheld behind a short note; an error keeps
  only its built-in exception name, and its message only when that message is an ``assert`` or
  ``raise`` text of the cell's visible source (the instructor's words, not the learner's);
- notebook and cell metadata keep only what nbgrader and the HTML template need; execution counts
  are renumbered.

Pass/fail is the score nbgrader's ``GetGrades`` reads from the gradebook, so it stays.
:class:`~aifkit.grading.safe_html.SanitizeHTML` then makes the learner's HTML inert;
:func:`feedback_config` wires both into ``generate_feedback`` and :func:`formgrader_config` wires
only the sanitizer into the formgrader: instructors see every output and all metadata.
"""

from __future__ import annotations

import ast
import builtins
import html
import json
import re
from typing import Any

from nbconvert.exporters.exporter import ResourcesDict
from nbformat import NotebookNode
from nbformat.v4 import new_output
from nbgrader import utils
from nbgrader.preprocessors import ClearHiddenTests, GetGrades, NbGraderPreprocessor
from traitlets.config import Config

from aifkit.grading.safe_html import SanitizeHTML

HIDDEN_PLACEHOLDER = "# hidden tests (not shown)"
REDACTED = "[redacted: this output contained hidden test source]"
MIN_SECRET_LENGTH = 8  # shorter hidden lines (``else:``, ``pass``) are too common to redact on
HAS_HIDDEN = "this test has hidden lines"
RAN_AFTER = "this cell ran after a hidden test"
# nbgrader's own cell keys (schema 3) and what GetGrades adds; nothing else reaches feedback.
NBGRADER_KEYS = frozenset(
    {"schema_version", "grade", "solution", "locked", "task", "points", "grade_id", "cell_type"}
    | {"score", "comment"}
)
# What the HTML template reads for highlighting; set before any learner code runs.
_NOTEBOOK_KEYS = {
    "kernelspec": {"name", "display_name", "language"},
    "language_info": {"name", "pygments_lexer", "file_extension", "mimetype", "version"},
}
BUILTIN_EXCEPTIONS = frozenset(
    name
    for name, value in vars(builtins).items()
    if isinstance(value, type) and issubclass(value, BaseException)
)

# --- hidden tests ---------------------------------------------------------------------------

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
_TAG = re.compile(r"<[^>]*>")


def _normalise(text: str) -> str:
    return " ".join(text.split())


def remove_hidden_regions(source: str, begin: str, end: str) -> tuple[str, list[str]]:
    """``source`` with each hidden region replaced by one placeholder line, and its lines.

    Markers match as nbgrader's ClearHiddenTests matches them (substring of a line). A region
    left open runs to the end of the cell (fail closed) instead of raising.
    """
    kept: list[str] = []
    removed: list[str] = []
    inside = False
    for line in source.split("\n"):
        if begin in line:
            if not inside:
                indent = line[: len(line) - len(line.lstrip())]
                kept.append(indent + HIDDEN_PLACEHOLDER)
            inside = True
        elif end in line:
            inside = False
        elif inside:
            removed.append(line)
        else:
            kept.append(line)
    return "\n".join(kept), removed


def secret_needles(hidden: list[str], visible: list[str]) -> set[str]:
    """Strings whose presence in an output means it leaks a hidden line.

    A hidden line counts when it is long enough and has letters or digits, and does not also
    appear in visible source. Each counts plainly and as JSON, repr and HTML would escape it.
    """
    shown = {_normalise(line) for line in visible}
    needles: set[str] = set()
    for line in hidden:
        text = _normalise(line)
        if len(text) < MIN_SECRET_LENGTH or text in shown or not re.search(r"\w", text):
            continue
        needles |= {
            text,
            json.dumps(text)[1:-1],
            json.dumps(text, ensure_ascii=False)[1:-1],
            repr(text)[1:-1],
            html.escape(text, quote=True),
            html.escape(text, quote=False),
        }
    return needles


def leaks(text: Any, needles: set[str]) -> bool:
    """Whether ``text`` (a string, lines, or JSON data) contains any needle."""
    if not needles:
        return False
    if isinstance(text, list) and all(isinstance(part, str) for part in text):
        text = "".join(text)
    elif not isinstance(text, str):
        text = json.dumps(text, ensure_ascii=False, default=str)  # e.g. application/json
    plain = _normalise(_ANSI.sub("", text))
    untagged = _normalise(html.unescape(_TAG.sub("", text)))
    return any(n in plain or n in untagged for n in needles)


def _redact_outputs(cell: NotebookNode, needles: set[str], grade: bool) -> None:
    for out in cell.get("outputs", []):
        kind = out.get("output_type")
        if kind == "stream" and leaks(out.get("text", ""), needles):
            out["text"] = REDACTED + "\n"
        elif kind == "error":
            if leaks(out.get("evalue", ""), needles):
                out["evalue"] = REDACTED
            if grade or leaks(out.get("traceback", []), needles):
                line = f"{out.get('ename', 'Error')}: {out.get('evalue', '')}".strip()
                out["traceback"] = [line[:300].rstrip(": ") + "  (traceback not shown)"]
        elif any(leaks(value, needles) for value in out.get("data", {}).values()):
            out["data"] = {"text/plain": REDACTED}
            out["metadata"] = {}
    # A line printed in pieces may span several stream outputs: judge each stream as a whole.
    for name in ("stdout", "stderr"):
        streams = [
            o
            for o in cell.get("outputs", [])
            if o.get("output_type") == "stream" and o.get("name") == name
        ]
        if leaks([s.get("text", "") for s in streams], needles):
            for out in streams:
                out["text"] = REDACTED + "\n"


def authored_messages(source: str) -> set[str]:
    """The literal texts of ``assert ..., "msg"`` and ``raise E("msg")`` in ``source``.

    Only these may be shown as an error's message once learner code could have seen a hidden
    test: they are the instructor's visible words, so showing one reveals nothing new.
    """
    try:
        tree = ast.parse(source)
    except SyntaxError:  # IPython magics, say: show no message rather than guess
        return set()
    messages: set[str] = set()
    for node in ast.walk(tree):
        texts: list[ast.expr] = []
        if isinstance(node, ast.Assert) and node.msg is not None:
            texts = [node.msg]
        elif isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
            texts = node.exc.args[:1]
        messages |= {t.value for t in texts if isinstance(t, ast.Constant) and type(t.value) is str}
    return messages


def _withheld_error(out: NotebookNode, reason: str, messages: set[str]) -> NotebookNode:
    ename = out.get("ename")
    name = ename if isinstance(ename, str) and ename in BUILTIN_EXCEPTIONS else None
    evalue = out.get("evalue")
    shown = evalue if name and isinstance(evalue, str) and evalue in messages else ""
    head = f"{name}: {shown}" if shown else (name or "an exception not built into Python")
    traceback = [f"{head}  (message and traceback withheld: {reason})"]
    return new_output("error", ename=name or "Error", evalue=shown, traceback=traceback)


def withhold_outputs(cell: NotebookNode, reason: str, messages: set[str]) -> None:
    """Replace ``cell``'s outputs by one note, keeping each error's built-in name (in place).

    ``messages`` are the error messages that may still be shown (:func:`authored_messages`).
    """
    kept: list[NotebookNode] = []
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            kept.append(_withheld_error(out, reason, messages))
        elif not any(o.get("output_type") == "stream" for o in kept):
            kept.append(new_output("stream", name="stdout", text=f"[output withheld: {reason}]\n"))
    cell.outputs = kept


def keep_public_metadata(nb: NotebookNode) -> None:
    """Drop the metadata learner code or the learner could have written, in place.

    Widget state, custom keys and unknown nbgrader keys go; the kernelspec and language (for
    highlighting, fixed before learner code runs) and nbgrader's own cell keys stay.
    """
    public = NotebookNode()
    for key, fields in _NOTEBOOK_KEYS.items():
        value = nb.metadata.get(key)
        if isinstance(value, dict):
            public[key] = NotebookNode(
                {k: v for k, v in value.items() if k in fields and isinstance(v, str)}
            )
    nb.metadata = public
    for cell in nb.cells:
        grader = cell.metadata.get("nbgrader")
        cell.metadata = NotebookNode()
        if isinstance(grader, dict):
            cell.metadata["nbgrader"] = NotebookNode(
                {k: v for k, v in grader.items() if k in NBGRADER_KEYS}
            )


def _renumber(nb: NotebookNode) -> None:
    """Execution counts 1, 2, 3... in cell order: learner code can set the kernel's counter."""
    count = 0
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        if cell.get("execution_count") is not None:
            count += 1
            cell.execution_count = count
        for out in cell.get("outputs", []):
            if out.get("output_type") == "execute_result":
                out["execution_count"] = cell.get("execution_count")


def hidden_in_gradebook(resources: Any, begin: str, end: str) -> dict[str, list[str]]:
    """Hidden lines by grade_id of each cell whose instructor source holds some, per the gradebook.

    The autograded copy of a test cell is not trusted to show its hidden region (a grading path
    may run hidden tests without writing them into the notebook); nbgrader's gradebook keeps
    each source cell as the instructor wrote it. Empty when ``resources`` name no gradebook.
    """
    info = resources.get("nbgrader") if isinstance(resources, dict) else None
    if not isinstance(info, dict) or not info.get("db_url"):
        return {}
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(info["db_url"]) as gradebook:
        try:
            notebook = gradebook.find_notebook(info["notebook"], info["assignment"])
        except MissingEntry:
            return {}
        sources = {cell.name: cell.source or "" for cell in notebook.source_cells}
    return {
        name: remove_hidden_regions(source, begin, end)[1]
        for name, source in sources.items()
        if begin in source
    }


class RedactHiddenTests(NbGraderPreprocessor):
    """Remove hidden tests from feedback and everything learner code could have copied them into.

    Add it to ``GenerateFeedback.preprocessors`` after ``GetGrades`` and before the HTML export.
    See the module docstring for what is kept. The delimiters are ClearHiddenTests'.
    """

    def preprocess(self, nb: NotebookNode, resources: ResourcesDict) -> tuple[NotebookNode, Any]:
        markers = ClearHiddenTests(parent=self)
        begin, end = markers.begin_test_delimeter, markers.end_test_delimeter
        hidden: list[str] = []
        has_hidden: set[int] = set()
        known = hidden_in_gradebook(resources, begin, end)
        for index, cell in enumerate(nb.cells):
            grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
            if utils.is_grade(cell) and (begin in cell.source or grade_id in known):
                cell.source, removed = remove_hidden_regions(cell.source, begin, end)
                hidden += removed + known.get(grade_id, [])
                has_hidden.add(index)
        visible = [line for cell in nb.cells for line in cell.source.split("\n")]
        needles = secret_needles(hidden, visible)
        first = min((i for i in has_hidden if nb.cells[i].cell_type == "code"), default=None)
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            if first is None or index < first:
                _redact_outputs(cell, needles, utils.is_grade(cell))
            else:
                reason = HAS_HIDDEN if index in has_hidden else RAN_AFTER
                withhold_outputs(cell, reason, authored_messages(cell.source))
        _renumber(nb)
        keep_public_metadata(nb)
        return nb, resources


# --- configuration ----------------------------------------------------------------------------


def feedback_config(c: Config, nbconvert_sanitize: bool = True) -> Config:
    """Make ``generate_feedback`` hide hidden tests and sanitise learner HTML (mutates ``c``).

    ``nbconvert_sanitize`` sets ``HTMLExporter.sanitize_html``, defence in depth: it catches
    nothing :class:`SanitizeHTML` misses and escapes ``text/html`` tables (see ``safe_html``).
    """
    from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor

    c.GenerateFeedback.preprocessors = [
        GetGrades,
        RedactHiddenTests,
        SanitizeHTML,
        CSSHTMLHeaderPreprocessor,
    ]
    c.HTMLExporter.sanitize_html = nbconvert_sanitize
    return c


def formgrader_config(c: Config) -> Config:
    """Sanitise the HTML the formgrader renders; instructors still see every output and test."""
    c.HTMLExporter.preprocessors = [SanitizeHTML]
    return c
