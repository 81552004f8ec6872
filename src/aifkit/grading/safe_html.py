"""Learner HTML made inert: an allow-list sanitizer for feedback and the formgrader.

nbgrader's ``feedback`` and ``formgrade`` templates render learner markdown and outputs
unsanitised. nbconvert's own guard, ``HTMLExporter.sanitize_html = True``, is not enough alone:
those templates override the ``markdowncell`` block without its ``clean_html`` filter (learner
markdown stays live), and image metadata reaches an unquoted ``width=`` attribute. Where it does
apply it escapes every tag outside a short list, so ``text/html`` tables (``thead``, ``th``) and
images show as tag soup. :class:`SanitizeHTML` closes both holes with nh3's allow-list.
"""

from __future__ import annotations

import html
import re
from typing import Any

import nh3
from nbconvert.exporters.exporter import ResourcesDict
from nbconvert.filters.markdown_mistune import IPythonRenderer, MarkdownWithMath
from nbformat import NotebookNode
from nbgrader.preprocessors import NbGraderPreprocessor

REMOVED = "[removed from feedback: active content]"
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
