"""Feedback carries no hidden test text and learner HTML is inert, checked with real nbgrader.

A throw-away course in a temporary folder: a learner whose answer prints the source notebook,
records every cell it sees and, in cells it adds after the tests, writes the hidden test out
reversed, base64, drawn into a PNG, rot13 in HTML, split across cells, in an exception and in a
widget's state; whose written answer carries script. nbgrader's own feedback leaks all of it;
``aifkit grade feedback`` none, while the formgrader still shows instructors everything.
"""

from __future__ import annotations

import base64
import codecs
import html
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbformat import NotebookNode
from traitlets.config import Config

from aifkit.grading.feedback import (
    HAS_HIDDEN,
    HIDDEN_PLACEHOLDER,
    RAN_AFTER,
    REDACTED,
    RedactHiddenTests,
    feedback_config,
    formgrader_config,
    remove_hidden_regions,
)
from aifkit.grading.safe_html import REMOVED, SanitizeHTML, sanitize_html, sanitize_markdown_cells

HIDDEN = ["assert add(40, 2) == 42", "assert add(-7, 7) == 0"]
VISIBLE = "assert add(2, 3) == 5"
TEST_SOURCE = "\n".join([VISIBLE, "### BEGIN HIDDEN TESTS", *HIDDEN, "### END HIDDEN TESTS"])
XSS = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    '<a href="javascript:alert(1)">x</a>',
]
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


def _meta(grade_id: str, **flags: Any) -> dict[str, Any]:
    base = {"grade": False, "solution": False, "locked": False, "task": False}
    return {"nbgrader": {"schema_version": 3, "grade_id": grade_id, **base, **flags}}


def _code(source: str, grade_id: str | None = None, **flags: Any) -> NotebookNode:
    cell = nbformat.v4.new_code_cell(source)
    if grade_id:
        cell.metadata.update(_meta(grade_id, **flags))
    return cell


def _markdown(source: str, grade_id: str | None = None, **flags: Any) -> NotebookNode:
    cell = nbformat.v4.new_markdown_cell(source)
    if grade_id:
        cell.metadata.update(_meta(grade_id, **flags))
    return cell


def _notebook(cells: list[NotebookNode]) -> NotebookNode:
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = KERNELSPEC
    return nb


def _text(page: str) -> str:
    """What a reader sees in the body: tags removed, entities decoded."""
    return html.unescape(re.sub(r"<[^>]+>", "", page[page.index("<body") :]))


# --- unit tests on hand-built notebooks ------------------------------------------------------


def test_hidden_region_becomes_one_placeholder_line() -> None:
    source = "x = 1\n    ### BEGIN HIDDEN TESTS\n    assert x == 1\n    ### END HIDDEN TESTS\ny"
    kept, removed = remove_hidden_regions(source, "BEGIN HIDDEN TESTS", "END HIDDEN TESTS")
    assert kept == f"x = 1\n    {HIDDEN_PLACEHOLDER}\ny"
    assert removed == ["    assert x == 1"]


def test_unterminated_hidden_region_runs_to_the_end() -> None:
    kept, removed = remove_hidden_regions("a\n# BEGIN HIDDEN TESTS\nsecret()\n", "BEGIN", "END")
    assert "secret" not in kept
    assert removed == ["secret()", ""]


def _error(line: str) -> NotebookNode:
    colored = f"\x1b[0;32m----> 3\x1b[0m \x1b[38;5;28;01massert\x1b[39;00m {line[7:]}"
    return nbformat.v4.new_output(
        "error",
        ename="AssertionError",
        evalue="",
        traceback=["\x1b[0;31mAssertionError\x1b[0m Traceback", colored, "AssertionError: "],
    )


def _redacted(nb: NotebookNode, config: Config | None = None) -> NotebookNode:
    nb, _ = RedactHiddenTests(config=config or Config()).preprocess(nb, {})
    return nb


def test_failing_hidden_assert_traceback_is_reduced_to_its_exception() -> None:
    test = _code(TEST_SOURCE, "t1", grade=True, locked=True, points=2)
    test.outputs = [_error(HIDDEN[0])]
    nb = _redacted(_notebook([test]))
    cell = nb.cells[0]
    assert VISIBLE in cell.source and HIDDEN_PLACEHOLDER in cell.source
    assert not any(line in cell.source for line in HIDDEN)
    assert cell.outputs[0].traceback == [
        f"AssertionError  (message and traceback withheld: {HAS_HIDDEN})"
    ]
    assert cell.outputs[0].ename == "AssertionError"


def test_error_message_is_shown_only_when_the_instructor_wrote_it() -> None:
    """After a hidden test, does an error keep only a built-in name and a visible assert text?"""
    source = f"{VISIBLE}, 'add(2, 3) should be 5'\nraise_if_bad()\n" + TEST_SOURCE.split("\n", 1)[1]
    test = _code(source, "t1", grade=True, locked=True, points=2)
    authored = nbformat.v4.new_output(
        "error", ename="AssertionError", evalue="add(2, 3) should be 5", traceback=["..."]
    )
    learners = nbformat.v4.new_output(
        "error", ename="ValueError", evalue="24 == )2 ,04", traceback=[]
    )
    named = nbformat.v4.new_output("error", ename="Leak_MFZXG", evalue="", traceback=[])
    test.outputs = [authored, learners, named]
    outputs = _redacted(_notebook([test])).cells[0].outputs
    assert outputs[0].evalue == "add(2, 3) should be 5"
    assert outputs[0].traceback[0].startswith("AssertionError: add(2, 3) should be 5  (")
    assert (outputs[1].ename, outputs[1].evalue) == ("ValueError", "")
    assert "24 ==" not in json.dumps(outputs[1])
    assert outputs[2].ename == "Error" and "MFZXG" not in json.dumps(outputs[2])


def test_error_before_any_hidden_test_keeps_its_message_unless_it_quotes_one() -> None:
    learner = _code("check()")
    kept = nbformat.v4.new_output("error", ename="KeyError", evalue="'x'", traceback=["tb"])
    quoted = nbformat.v4.new_output("error", ename="MyError", evalue=f"bad: {HIDDEN[1]}")
    quoted.traceback = ["tb"]
    learner.outputs = [kept, quoted]
    test = _code(TEST_SOURCE, "t1", grade=True, locked=True, points=2)
    outputs = _redacted(_notebook([learner, test])).cells[0].outputs
    assert (outputs[0].ename, outputs[0].evalue, outputs[0].traceback) == (
        "KeyError",
        "'x'",
        ["tb"],
    )
    assert (outputs[1].ename, outputs[1].evalue) == ("MyError", REDACTED)


def test_outputs_quoting_hidden_lines_before_the_first_hidden_test_are_redacted() -> None:
    test = _code(TEST_SOURCE, "t1", grade=True, locked=True, points=2)
    learner = _code("print(open('source.ipynb').read())")
    learner.outputs = [
        nbformat.v4.new_output("stream", name="stdout", text=json.dumps(HIDDEN[0] + ' "q"')),
        nbformat.v4.new_output("stream", name="stderr", text="an honest warning\n"),
        nbformat.v4.new_output(
            "display_data", data={"text/html": f"<pre>{html.escape(HIDDEN[1])}</pre>"}
        ),
    ]
    split = _code("print in pieces")
    split.outputs = [
        nbformat.v4.new_output("stream", name="stdout", text=HIDDEN[0][:12]),
        nbformat.v4.new_output("stream", name="stdout", text=HIDDEN[0][12:] + "\n"),
    ]
    nb = _redacted(_notebook([learner, split, test]))
    out = nb.cells[0].outputs
    assert out[0].text == REDACTED + "\n"
    assert out[1].text == "an honest warning\n"
    assert out[2].data == {"text/plain": REDACTED}
    assert [o.text for o in nb.cells[1].outputs] == [REDACTED + "\n"] * 2


def _transformed_outputs(secret: str) -> list[NotebookNode]:
    """What learner code that read ``secret`` can print, draw or display, none of it verbatim."""
    encoded = base64.b64encode(secret.encode()).decode()
    return [
        nbformat.v4.new_output("stream", name="stdout", text=secret[::-1] + "\n"),
        nbformat.v4.new_output("stream", name="stderr", text=encoded + "\n"),
        nbformat.v4.new_output("display_data", data={"image/png": encoded, "text/plain": "<Fig>"}),
        nbformat.v4.new_output("display_data", data={"text/html": f"<b>{secret[::-1]}</b>"}),
        nbformat.v4.new_output("display_data", data={"application/json": {"k": encoded}}),
        nbformat.v4.new_output("execute_result", data={"text/plain": repr(encoded)}),
    ]


def test_every_output_from_the_first_hidden_test_on_is_withheld() -> None:
    """Reversed, base64, an image, HTML, JSON: withheld by when it ran, not by what it says."""
    own = _code("print('mine')")
    own.outputs = [
        nbformat.v4.new_output("stream", name="stdout", text="mine\n"),
        nbformat.v4.new_output("display_data", data={"image/png": "iVBORw0KGgo="}),
    ]
    test = _code(TEST_SOURCE, "t1", grade=True, locked=True, points=2)
    test.outputs = _transformed_outputs(HIDDEN[0])[:2]  # printed by learner code the test calls
    later = _code("print(''.join(reversed(In[-2])))")
    later.outputs = _transformed_outputs(HIDDEN[1])
    nb = _redacted(_notebook([own, test, later, _markdown("the end")]))
    assert nb.cells[0].outputs == own.outputs
    assert [o.text for o in nb.cells[1].outputs] == [f"[output withheld: {HAS_HIDDEN}]\n"]
    assert [o.text for o in nb.cells[2].outputs] == [f"[output withheld: {RAN_AFTER}]\n"]
    page = json.dumps(nb)
    for line in HIDDEN:
        assert line[::-1] not in page and base64.b64encode(line.encode()).decode() not in page
        for form in _transformed_outputs(line):
            assert json.dumps(form["text" if "text" in form else "data"])[1:-1] not in page


def test_metadata_learner_code_could_write_stays_out_of_feedback() -> None:
    """Do widget state, custom keys and unknown nbgrader keys go, nbgrader's own stay?"""
    test = _code(TEST_SOURCE, "t1", grade=True, locked=True, points=2)
    test.metadata["nbgrader"]["score"] = 0.0
    test.metadata["nbgrader"]["note"] = HIDDEN[0][::-1]
    test.metadata["tags"] = [base64.b64encode(HIDDEN[1].encode()).decode()]
    nb = _notebook([test])
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": HIDDEN}}
    nb.metadata["exfil"] = HIDDEN[0][::-1]
    nb.metadata["language_info"] = {"name": "python", "codemirror_mode": {"x": HIDDEN[0]}}
    nb = _redacted(nb)
    assert nb.metadata == {"kernelspec": KERNELSPEC, "language_info": {"name": "python"}}
    assert set(nb.cells[0].metadata) == {"nbgrader"}
    assert nb.cells[0].metadata["nbgrader"]["score"] == 0.0
    assert "note" not in nb.cells[0].metadata["nbgrader"]


def test_execution_counts_are_renumbered() -> None:
    """Can learner code that sets the kernel's counter write a number into the feedback?"""
    cells = [_code("a"), _code(TEST_SOURCE, "t1", grade=True, locked=True, points=2), _code("b")]
    for cell, count in zip(cells, (1, 2, 4242424242), strict=True):
        cell.execution_count = count
    cells[2].outputs = [nbformat.v4.new_output("execute_result", data={"text/plain": "1"})]
    cells[2].outputs[0].execution_count = 4242424242
    nb = _redacted(_notebook([*cells, _code("never run")]))
    assert [c.execution_count for c in nb.cells] == [1, 2, 3, None]
    assert "4242424242" not in json.dumps(nb)


def test_hidden_lines_that_are_short_or_also_visible_are_not_secrets() -> None:
    source = "x = 10\n### BEGIN HIDDEN TESTS\nx = 10\nok()\n### END HIDDEN TESTS"
    test = _code(source, "t1", grade=True, locked=True, points=1)
    learner = _code("print('x = 10; ok()')")
    learner.outputs = [nbformat.v4.new_output("stream", name="stdout", text="x = 10; ok()\n")]
    nb = _redacted(_notebook([learner, test]))
    assert nb.cells[0].outputs[0].text == "x = 10; ok()\n"


def test_configured_delimiters_are_honoured() -> None:
    config = Config()
    config.ClearHiddenTests.begin_test_delimeter = "BEGIN SECRET"
    config.ClearHiddenTests.end_test_delimeter = "END SECRET"
    source = "# BEGIN SECRET\nassert deep_thought() == 42\n# END SECRET"
    test = _code(source, "t1", grade=True, locked=True, points=1)
    nb = _redacted(_notebook([test]), config)
    assert nb.cells[0].source == HIDDEN_PLACEHOLDER


def test_markdown_keeps_its_structure_and_loses_its_scripts() -> None:
    source = "# Title\n\n> quote with $a<b$\n\n| x | y |\n|---|---|\n| 1 | 2 |\n\n" + " ".join(XSS)
    nb = sanitize_markdown_cells(_notebook([_markdown(source, "essay", solution=True)]))
    page = nb.cells[0].source
    for tag in ("<h1", "<blockquote>", "<table>", "<td"):
        assert tag in page
    assert "$a&lt;b$" in page
    assert "\n" not in page  # one HTML block: markdown renders it unchanged
    for bad in ("<script", "onerror", "javascript:"):
        assert bad not in page


def test_outputs_keep_passive_content_only() -> None:
    cell = _code("display(...)")
    table = "<table><thead><tr><th>a</th></tr></thead><tbody><tr><td>1</td></tr></tbody></table>"
    cell.outputs = [
        nbformat.v4.new_output("display_data", data={"text/html": table + XSS[1]}),
        nbformat.v4.new_output("display_data", data={"application/javascript": "alert(1)"}),
        nbformat.v4.new_output(
            "display_data",
            data={"image/png": "iVBORw0KGgo=", "text/plain": "<Figure>"},
            metadata={"image/png": {"width": "1 onerror=alert(1)", "height": 20}},
        ),
        nbformat.v4.new_output("display_data", data={"image/png": 'x" onerror="alert(1)'}),
        nbformat.v4.new_output("display_data", data={"image/svg+xml": "<svg onload=alert(1)/>"}),
        nbformat.v4.new_output("display_data", data={"text/markdown": XSS[2] + " **b**"}),
    ]
    out = sanitize_markdown_cells(_notebook([cell])).cells[0].outputs
    assert out[0].data["text/html"] == table + "<img>"
    assert out[1].data == {"text/plain": REMOVED}
    assert out[2].metadata == {"image/png": {"height": 20}}
    assert out[3].data == {"text/plain": REMOVED}
    assert out[4].data == {"text/plain": REMOVED}
    assert out[5].data == {"text/html": "<p><a>x</a> <strong>b</strong></p>\n"}


def test_allow_list_keeps_safe_images_and_links() -> None:
    png = '<img alt="p" src="data:image/png;base64,iVBORw0KGgo=" width="10">'
    assert sanitize_html(png) == png
    assert sanitize_html('<img src="https://e.org/a.png">') == '<img src="https://e.org/a.png">'
    assert sanitize_html('<img src="data:image/svg+xml;base64,PHN2Zz4=">') == "<img>"
    assert sanitize_html('<a href="https://e.org" title="t">e</a>') == (
        '<a href="https://e.org" title="t">e</a>'
    )
    assert sanitize_html("<p>a<iframe src=x></iframe><style>*{}</style></p>") == "<p>a</p>"
    assert sanitize_html('<div class="navbar-fixed-top">x</div>') == "<div>x</div>"
    kept = '<div class="highlight"><pre><span class="kn">import</span></pre></div>'
    assert sanitize_html(kept) == kept  # syntax highlighting survives


def test_style_keeps_only_the_allowed_properties() -> None:
    """Does a style attribute keep colour and alignment but lose position, url() and the rest?"""
    hostile = "color: red; position: fixed; top: 0; background-image: url(javascript:alert(1))"
    assert sanitize_html(f'<span style="{hostile}">s</span>') == '<span style="color:red">s</span>'
    kept = sanitize_html('<p style="text-align:center;font-weight:bold;z-index:9">c</p>')
    assert kept == '<p style="text-align:center;font-weight:bold">c</p>'
    emptied = sanitize_html('<div style="width: 100vw; height: 100vh">x</div>')
    assert emptied in ("<div>x</div>", '<div style="">x</div>')


def test_parsed_as_a_browser_parses() -> None:
    """Does script hidden in other tags' content (as a browser would parse it) come out inert?"""
    for hidden in (
        "<noscript><img src=x onerror=alert(1)></noscript>",
        "<template><script>alert(1)</script></template>",
        "<textarea><script>alert(1)</script></textarea>",
        "<svg><style><img src=x onerror=alert(1)></style></svg>",
        '<math><mtext><table><mglyph><style><img src=x onerror="alert(1)">',
    ):
        page = sanitize_html(f"<p>a{hidden}</p>")
        assert page.startswith("<p>a") and not re.search("script|onerror|alert", page), page


def test_feedback_config_wires_the_preprocessors() -> None:
    c = feedback_config(Config())
    names = [p.__name__ for p in c.GenerateFeedback.preprocessors]
    assert names == ["GetGrades", "RedactHiddenTests", "SanitizeHTML", "CSSHTMLHeaderPreprocessor"]
    assert c.HTMLExporter.sanitize_html is True
    assert SanitizeHTML().enabled and RedactHiddenTests().enabled


def test_nbconvert_guard_alone_lets_image_metadata_inject_a_handler() -> None:
    from nbconvert import HTMLExporter

    cell = _code("plot()")
    cell.outputs = [
        nbformat.v4.new_output(
            "display_data",
            data={"image/png": "iVBORw0KGgo="},
            metadata={"image/png": {"width": "1 onerror=alert(1)"}},
        )
    ]
    essay = _markdown(XSS[1], "essay", solution=True, grade=True, points=1)
    guard = Config()
    guard.HTMLExporter.sanitize_html = True
    guard.HTMLExporter.template_name = "classic"
    page, _ = HTMLExporter(config=guard).from_notebook_node(_notebook([cell]))
    assert 'onerror="alert(1)"' in page  # nbconvert's sanitize_html does not see metadata

    ours = formgrader_config(Config())
    ours.HTMLExporter.template_name = "classic"
    page, _ = HTMLExporter(config=ours).from_notebook_node(_notebook([cell, essay]))
    assert "onerror" not in page and 'width="1"' not in page


# --- real nbgrader ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def _venv_on_path() -> Iterator[None]:
    """nbgrader runs `alembic` by subprocess when it creates the gradebook."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
        yield


def _api(root: Path, extra: Config | None = None) -> Any:
    from nbgrader.apps import NbGraderAPI

    config = Config()
    config.CourseDirectory.root = str(root)
    config.CourseDirectory.course_id = "feedback-test"
    config.CourseDirectory.db_url = f"sqlite:///{root / 'gradebook.db'}"
    config.Execute.timeout = 60
    config.merge(extra or Config())
    return NbGraderAPI(config=config)


def _ok(result: dict[str, Any]) -> None:
    assert result["success"], result.get("error", "") + result.get("log", "")


# Learner code that records every cell it sees (a hidden test included) and, in cells it adds
# after the tests, writes that text out transformed: nothing a verbatim match could catch.
RECORDER = (
    "import IPython\n"
    "SEEN = []\n"
    "IPython.get_ipython().events.register('pre_run_cell', lambda i: SEEN.append(i.raw_cell))\n"
    "import sys\n"
    "print('alice', 'was here', file=sys.stderr)  # her own output: the source never says it\n"
)
LATER_CELLS = [
    "import base64, codecs, html\n"
    "secret = next(s for s in SEEN if 'HIDDEN TESTS' in s)\n"
    "lines = secret.split('\\n')[2:4]\n"
    "print(secret[::-1])\n"
    "print(base64.b64encode(secret.encode()).decode())",
    "import io\nfrom matplotlib.figure import Figure\nfrom IPython.display import Image\n"
    "figure, drawn = Figure(figsize=(6, 1)), io.BytesIO()\n"
    "figure.text(0, 0.5, secret, fontsize=6)\n"
    "figure.savefig(drawn, format='png')\n"
    "display(Image(drawn.getvalue()))",
    "from IPython.display import HTML\n"
    "display(HTML('<b>' + html.escape(codecs.encode(secret, 'rot13')) + '</b>'))",
    "print('\\n'.join(line[: len(line) // 2] for line in lines))",
    "print('\\n'.join(line[len(line) // 2 :] for line in lines))",
    "name = 'Leak_' + base64.b32encode(lines[0].encode()).decode().strip('=')\n"
    "raise type(name, (Exception,), {})(lines[1][::-1])",
    "import ipywidgets\ndisplay(ipywidgets.Text(value=secret[::-1]))",
]


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.fixture(scope="module")
def graded_course(tmp_path_factory: pytest.TempPathFactory, _venv_on_path: None) -> Path:
    """ps1/p1 generated, and alice's exfiltrating, XSS-carrying submission autograded.

    Autograde is stock nbgrader's, unsandboxed: learner code can read the source notebook and
    its kernel's history, which is what feedback must hold against. The root's
    ``nbgrader_config.py`` names the course for ``aifkit grade feedback``.
    """
    tmp_path = tmp_path_factory.mktemp("course")
    answer = "def add(a, b):\n    ### BEGIN SOLUTION\n    return a + b\n    ### END SOLUTION"
    source = tmp_path / "source" / "ps1" / "p1.ipynb"
    source.parent.mkdir(parents=True)
    cells = [
        _markdown("Implement `add`."),
        _code(answer, "answer", solution=True),
        _code("assert add(1, 1) == 2", "test_visible", grade=True, locked=True, points=1),
        _code(TEST_SOURCE, "test_hidden", grade=True, locked=True, points=2),
        _markdown("YOUR ANSWER HERE", "essay", solution=True, grade=True, points=1),
    ]
    nbformat.write(_notebook(cells), source)
    _ok(_api(tmp_path).generate_assignment("ps1"))
    (tmp_path / "nbgrader_config.py").write_text(
        "c = get_config()\n"
        "c.CourseDirectory.course_id = 'feedback-test'\n"
        f"c.CourseDirectory.db_url = 'sqlite:///{tmp_path / 'gradebook.db'}'\n",
        encoding="utf-8",
    )

    submission = nbformat.read(tmp_path / "release" / "ps1" / "p1.ipynb", as_version=4)
    submission.cells[1].source = (
        f"print(open({str(source)!r}).read())  # the source holds the hidden tests\n"
        + RECORDER
        + "def add(a, b):\n    return a + b if a < 10 else 0"
    )
    submission.cells[4].source = "Addition is commutative.\n\n" + "\n".join(XSS)
    submission.cells[4:4] = [_code(later) for later in LATER_CELLS]
    submission.cells[1].metadata["exfil"] = "canary-cell-metadata"
    submission.metadata["exfil"] = "canary-notebook-metadata"
    target = tmp_path / "submitted" / "alice" / "ps1" / "p1.ipynb"
    target.parent.mkdir(parents=True)
    nbformat.write(submission, target)
    _ok(_api(tmp_path).autograde("ps1", "alice"))
    return tmp_path


def _feedback(root: Path, extra: Config) -> str:
    _ok(_api(root, extra).generate_feedback("ps1", "alice", force=True))
    return (root / "feedback" / "alice" / "ps1" / "p1.html").read_text(encoding="utf-8")


@pytest.mark.slow
def test_feedback_hides_hidden_tests_and_learner_script(graded_course: Path) -> None:
    stock = _feedback(graded_course, Config())
    assert HIDDEN[0] in _text(stock) and 'onerror="alert' in stock  # the threat is real

    guard_only = Config()
    guard_only.HTMLExporter.sanitize_html = True
    assert 'onerror="alert' in _feedback(graded_course, guard_only)  # nbconvert's guard alone

    page = _feedback(graded_course, feedback_config(Config()))
    seen = _text(page)
    for line in HIDDEN:
        for form in (line, json.dumps(line)[1:-1], html.escape(line)):
            assert form not in page and form not in seen
    assert "add(40" not in seen and "add(-7" not in seen
    lowered = page.lower()
    assert "<script>alert" not in lowered
    assert "javascript:" not in lowered[lowered.index("<body") :]  # bootstrap's CSS names it
    assert not re.search(r"<[^>]*\son\w+\s*=", lowered)  # no event handler on any tag

    assert "assert add(1, 1) == 2" in seen and VISIBLE in seen
    assert HIDDEN_PLACEHOLDER in seen
    assert "return a + b if a < 10 else 0" in seen
    assert "Addition is commutative." in seen
    assert "AssertionError" in seen and REDACTED in seen
    assert "Score: 1.0 / 4.0" in seen


def _leaked_forms() -> list[str]:
    """Each transformed copy LATER_CELLS write, as it appears in a notebook's JSON."""
    reversed_line, rot13 = HIDDEN[0][::-1], codecs.encode(HIDDEN[0], "rot13")
    second_halves = [line[len(line) // 2 :] for line in HIDDEN]
    b32 = base64.b32encode(HIDDEN[0].encode()).decode().strip("=")
    return [reversed_line, _b64(TEST_SOURCE), html.escape(rot13), *second_halves, "Leak_" + b32]


@pytest.mark.slow
def test_aifkit_grade_feedback_withholds_what_ran_after_a_hidden_test(graded_course: Path) -> None:
    """Does ``aifkit grade feedback`` keep transformed copies out, and the learner's own work in?"""
    autograded = graded_course / "autograded" / "alice" / "ps1" / "p1.ipynb"
    graded = nbformat.read(autograded, as_version=4)
    raw = json.dumps(graded)
    for form in _leaked_forms():
        assert json.dumps(form)[1:-1] in raw, form  # the threat is real: each copy was made
    outputs = [o for cell in graded.cells for o in cell.get("outputs", [])]
    pngs = [o.data["image/png"] for o in outputs if "image/png" in o.get("data", {})]
    assert pngs, "matplotlib drew the hidden test into a PNG"
    assert HIDDEN[0][::-1] in json.dumps(graded.metadata.get("widgets"))  # nbclient kept it

    aifkit = str(Path(sys.executable).parent / "aifkit")
    done = subprocess.run(
        [aifkit, "grade", "feedback", "ps1", "--course", str(graded_course), "--no-exchange"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    page = (graded_course / "feedback" / "alice" / "ps1" / "p1.html").read_text(encoding="utf-8")
    seen = _text(page)
    for form in _leaked_forms():
        assert form not in page and form not in seen, form
    assert not any(png[:200] in page for png in pngs)
    assert _b64(TEST_SOURCE)[:40] not in page and "canary-" not in page
    assert "add(40" not in seen and "add(-7" not in seen
    assert "alice was here" in seen  # the learner's own output before any hidden test
    assert f"[output withheld: {HAS_HIDDEN}]" not in seen  # the hidden test itself printed nothing
    assert seen.count(f"[output withheld: {RAN_AFTER}]") == len(LATER_CELLS) - 1
    assert "AssertionError  (message and traceback withheld" in seen
    assert "an exception not built into Python  (message and traceback withheld" in seen
    assert "Score: 1.0 / 4.0" in seen


@pytest.mark.slow
def test_formgrader_still_shows_instructors_everything(graded_course: Path) -> None:
    """Does the instructor's view keep hidden tests and every later output, sanitised only?"""
    from nbconvert import HTMLExporter

    config = formgrader_config(Config())
    config.HTMLExporter.template_name = "classic"
    autograded = graded_course / "autograded" / "alice" / "ps1" / "p1.ipynb"
    page, _ = HTMLExporter(config=config).from_filename(str(autograded))
    seen = _text(page)
    assert all(line in seen for line in HIDDEN)
    assert HIDDEN[0][::-1] in seen and _b64(TEST_SOURCE) in seen and "Leak_" in seen
    assert "data:image/png;base64," in page and "withheld" not in seen
    assert "<script>alert" not in page.lower()


@pytest.mark.slow
def test_hidden_tests_are_known_from_the_gradebook_not_the_graded_copy(
    graded_course: Path, tmp_path: Path
) -> None:
    """If a grading path leaves the hidden region out of the graded cell, is it still withheld?"""
    course = Path(shutil.copytree(graded_course, tmp_path / "course"))
    autograded = course / "autograded" / "alice" / "ps1" / "p1.ipynb"
    nb = nbformat.read(autograded, as_version=4)
    nb.cells[3].source = VISIBLE  # as a trusted path that ran the hidden lines elsewhere would
    autograded.chmod(0o644)
    nbformat.write(nb, autograded)
    page = _feedback(course, feedback_config(Config()))
    seen = _text(page)
    assert all(form not in page and form not in seen for form in _leaked_forms())
    assert "add(40" not in seen and REDACTED in seen  # needles come from the gradebook too
    assert "AssertionError  (message and traceback withheld" in seen
    assert seen.count(f"[output withheld: {RAN_AFTER}]") == len(LATER_CELLS) - 1
