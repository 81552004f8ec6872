"""Feedback that shows learners neither the hidden tests nor anyone's active HTML.

nbgrader puts hidden tests back before autograding, so its feedback shows them, and its
feedback and formgrader templates render learner markdown and outputs unsanitised. Two
preprocessors close both holes; :func:`feedback_config` wires them into ``generate_feedback``
and :func:`formgrader_config` wires :class:`SanitizeHTML` into the formgrader's exporter.

nbconvert's own guard, ``HTMLExporter.sanitize_html = True``, is not enough alone: nbgrader's
``feedback`` and ``formgrade`` templates override the ``markdowncell`` block without its
``clean_html`` filter (learner markdown stays live), and image metadata reaches an unquoted
``width=`` attribute. Where it does apply it escapes every tag outside a short list, so
``text/html`` tables (``thead``, ``th``) and images show as tag soup. :func:`feedback_config`
sets it anyway, as defence in depth, unless told not to.
"""

from __future__ import annotations

import html
import json
import re
from typing import Any

import nh3
from nbconvert.exporters.exporter import ResourcesDict
from nbconvert.filters.markdown_mistune import IPythonRenderer, MarkdownWithMath
from nbformat import NotebookNode
from nbgrader import utils
from nbgrader.preprocessors import ClearHiddenTests, GetGrades, NbGraderPreprocessor
from traitlets.config import Config

HIDDEN_PLACEHOLDER = "# hidden tests (not shown)"
REDACTED = "[redacted: this output contained hidden test source]"
REMOVED = "[removed from feedback: active content]"
MIN_SECRET_LENGTH = 8  # shorter hidden lines (``else:``, ``pass``) are too common to redact on

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


class RedactHiddenTests(NbGraderPreprocessor):
    """Remove hidden tests from grade cells and every output that would show them.

    Add it to ``GenerateFeedback.preprocessors`` before the HTML export. Error outputs of
    grade cells keep ``ename`` and ``evalue`` but their traceback shrinks to one line, since
    a failing hidden assert prints its own source. The delimiters are ClearHiddenTests'.
    """

    def preprocess(self, nb: NotebookNode, resources: ResourcesDict) -> tuple[NotebookNode, Any]:
        markers = ClearHiddenTests(parent=self)
        begin, end = markers.begin_test_delimeter, markers.end_test_delimeter
        hidden: list[str] = []
        for cell in nb.cells:
            if utils.is_grade(cell):
                cell.source, removed = remove_hidden_regions(cell.source, begin, end)
                hidden += removed
        if not any(line.strip() for line in hidden):
            needles: set[str] = set()
        else:
            visible = [line for cell in nb.cells for line in cell.source.split("\n")]
            needles = secret_needles(hidden, visible)
        for cell in nb.cells:
            if cell.cell_type == "code":
                _redact_outputs(cell, needles, utils.is_grade(cell))
        return nb, resources


# --- active HTML ------------------------------------------------------------------------------

ALLOWED_TAGS = frozenset(
    {"a", "abbr", "b", "blockquote", "br", "caption", "code", "dd", "del", "details", "div"}
    | {"dl", "dt", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "kbd", "li"}
    | {"ol", "p", "pre", "q", "s", "samp", "small", "span", "strong", "sub", "summary", "sup"}
    | {"table", "tbody", "td", "tfoot", "th", "thead", "tr", "u", "ul", "var"}
)
# Dropped with their content; any other unknown tag is stripped and its text kept.
DROPPED_TAGS = frozenset(
    {"script", "style", "iframe", "frame", "frameset", "object", "embed", "applet"}
    | {"noscript", "template", "form", "textarea", "select", "button", "input"}
    | {"link", "meta", "base", "svg", "math", "audio", "video", "canvas", "portal"}
    | {"noembed", "noframes"}
)
ALLOWED_CSS = frozenset(
    {"text-align", "vertical-align", "color", "background-color", "font-weight"}
    | {"font-style", "text-decoration", "white-space"}
)
# Attributes that may pass at all; _allow_attribute then judges each value.
_ATTRIBUTES = {
    "*": {"title", "class", "style"},
    **{f"h{level}": {"id"} for level in range(1, 7)},
    "a": {"href"},
    "img": {"src", "alt", "width", "height"},
    "td": {"colspan", "rowspan", "align"},
    "th": {"colspan", "rowspan", "align"},
    "ol": {"start"},
    "details": {"open"},
}
_DATA_IMAGE = re.compile(r"data:image/(png|jpeg|gif);base64,[A-Za-z0-9+/=\s]+", re.IGNORECASE)
_SCHEME = re.compile(r"^\s*([A-Za-z][A-Za-z0-9+.-]*):")
_NUMBER = re.compile(r"\d{1,5}%?")
# Pygments token classes and nbconvert's own; no page class (bootstrap's could overlay it).
_CLASS = re.compile(r"[a-z]{1,3}[0-9]?|highlight|anchor-link|task-list-item")
_BASE64 = re.compile(r"[A-Za-z0-9+/=\s]*")
_ACTIVE_SVG = re.compile(
    r"<\s*(script|foreignobject|iframe|embed|object|use|animate|set)\b|\son\w+\s*=|javascript:"
    r"|data:text/html|href\s*=\s*[\"']?\s*data:",
    re.IGNORECASE,
)
_GRADE_ID = re.compile(r"[A-Za-z0-9_.:-]+")


def _allow_attribute(tag: str, name: str, value: str) -> bool:
    if name == "title":
        return True
    if name == "class":
        return all(_CLASS.fullmatch(token) for token in value.split())
    if name == "style":
        return True  # nh3 keeps only the ALLOWED_CSS properties
    if name == "id":
        return tag in {"h1", "h2", "h3", "h4", "h5", "h6"}
    if tag == "a" and name == "href":
        scheme = _SCHEME.match(value)
        return scheme is None or scheme.group(1).lower() in {"http", "https", "mailto"}
    if tag == "img" and name == "src":
        scheme = _SCHEME.match(value)
        ok = scheme is not None and scheme.group(1).lower() in {"http", "https"}
        return ok or _DATA_IMAGE.fullmatch(value.strip()) is not None
    if tag == "img":
        return name == "alt" or (name in {"width", "height"} and bool(_NUMBER.fullmatch(value)))
    if tag in {"td", "th"} and name in {"colspan", "rowspan"}:
        return bool(_NUMBER.fullmatch(value))
    return (tag, name) in {("ol", "start"), ("details", "open"), ("td", "align"), ("th", "align")}


def _filter_attribute(tag: str, name: str, value: str) -> str | None:
    return value if _allow_attribute(tag, name, value) else None


# nh3 (ammonia) parses as browsers do (html5ever), so what it keeps is what a browser would see.
_CLEANER = nh3.Cleaner(
    tags=set(ALLOWED_TAGS),
    clean_content_tags=set(DROPPED_TAGS),
    attributes=_ATTRIBUTES,
    attribute_filter=_filter_attribute,
    url_schemes={"http", "https", "mailto", "data"},
    strip_comments=True,
    link_rel=None,  # links keep the attributes they had; no rel is added
    filter_style_properties=set(ALLOWED_CSS),
)


def sanitize_html(fragment: str) -> str:
    """An HTML fragment reduced to an explicit allow-list: no script, handler or active URL."""
    return _CLEANER.clean(fragment)


def render_markdown(source: str, attachments: dict[str, Any] | None = None) -> str:
    """Markdown to HTML exactly as nbconvert's exporter renders it (math kept as text)."""
    renderer = IPythonRenderer(escape=False, attachments=dict(attachments or {}))
    return MarkdownWithMath(renderer=renderer).render(source)


def as_markdown(safe_html: str) -> str:
    """Sanitised HTML as markdown that renders to itself: one HTML block, no blank line."""
    flat = safe_html.replace("\r", "").replace("\n", "&#10;")
    return f'<div class="aifkit-sanitized">{flat}</div>'


def _safe_markdown(source: str, attachments: dict[str, Any] | None = None) -> str:
    try:
        rendered = render_markdown(source, attachments)
    except Exception:  # e.g. a missing attachment: show the text rather than fail the export
        rendered = f"<pre>{html.escape(source)}</pre>"
    return as_markdown(sanitize_html(rendered))


def _kept(mime: str, text: str, data: dict[str, Any]) -> tuple[str, str] | None:
    """The (mimetype, value) an output keeps for ``mime``, or None to drop it."""
    if mime in ("text/plain", "text/latex"):
        return mime, text
    if mime == "text/html":
        return mime, sanitize_html(text)
    if mime == "text/markdown" and "text/html" not in data:
        return "text/html", sanitize_html(render_markdown(text))
    raster = mime in ("image/png", "image/jpeg", "image/gif") and _BASE64.fullmatch(text)
    if raster or (mime == "image/svg+xml" and not _ACTIVE_SVG.search(text)):
        return mime, text
    return None


def _clean_output(out: NotebookNode) -> None:
    data = out.get("data")
    if data is None:
        return
    kept: dict[str, Any] = {}
    for mime, value in data.items():
        text = "".join(value) if isinstance(value, list) else value
        pair = _kept(mime, text, data) if isinstance(text, str) else None
        if pair is not None:
            kept[pair[0]] = pair[1]
    out["data"] = kept or {"text/plain": REMOVED}
    metadata: dict[str, Any] = {}  # only sizes and alt text: templates paste them unquoted
    for mime, meta in dict(out.get("metadata", {})).items():
        if mime in kept and isinstance(meta, dict):
            size = {k: v for k, v in meta.items() if k in ("width", "height") and _is_size(v)}
            if isinstance(meta.get("alt"), str):
                size["alt"] = meta["alt"]
            metadata[mime] = size
    out["metadata"] = metadata


def _is_size(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and 0 < value < 1e5


def sanitize_markdown_cells(nb: NotebookNode) -> NotebookNode:
    """Make every learner-controlled piece of HTML in ``nb`` inert, in place.

    Markdown cells and grader comments are rendered as nbconvert would, sanitised, and stored
    as HTML that renders to itself; ``text/html`` and ``text/markdown`` outputs are
    sanitised; only plain text, LaTeX, base64 PNG/JPEG/GIF and passive SVG outputs are kept.
    """
    nb.metadata.pop("widgets", None)
    if isinstance(nb.metadata.get("title"), str):
        nb.metadata["title"] = html.escape(nb.metadata["title"])
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        grade_id = meta.get("grade_id")
        if isinstance(grade_id, str) and not _GRADE_ID.fullmatch(grade_id):
            meta["grade_id"] = html.escape(grade_id)
        if isinstance(meta.get("comment"), str):
            meta["comment"] = _safe_markdown(meta["comment"])
        if cell.cell_type == "markdown":
            cell.source = _safe_markdown(cell.source, cell.get("attachments"))
            cell.pop("attachments", None)
        elif cell.cell_type == "raw":
            cell.source = sanitize_html(cell.source)
        for out in cell.get("outputs", []):
            _clean_output(out)
    return nb


class SanitizeHTML(NbGraderPreprocessor):
    """Preprocessor form of :func:`sanitize_markdown_cells`, for feedback and formgrader."""

    def preprocess(self, nb: NotebookNode, resources: ResourcesDict) -> tuple[NotebookNode, Any]:
        return sanitize_markdown_cells(nb), resources


# --- configuration ----------------------------------------------------------------------------


def feedback_config(c: Config, nbconvert_sanitize: bool = True) -> Config:
    """Make ``generate_feedback`` hide hidden tests and sanitise learner HTML (mutates ``c``).

    ``nbconvert_sanitize`` sets ``HTMLExporter.sanitize_html``; see the module docstring for
    what it adds (nothing :class:`SanitizeHTML` misses) and what it costs (escaped tables).
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
    """Sanitise the autograded notebooks the formgrader renders (hidden tests stay visible)."""
    c.HTMLExporter.preprocessors = [SanitizeHTML]
    return c
