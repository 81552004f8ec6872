"""Notebook lint: each rule fires on its fixture, says where, and clean notebooks stay clean."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat
import pytest
from builders import COURSES, answer, code, further_reading, grader_cell, parameters

from aifkit.notebooks import lint, strip


@pytest.fixture
def write_nb(write_nb: Callable[..., Path]) -> Callable[..., Path]:
    """conftest's write_nb, but the notebooks end in a Further reading cell as lint requires."""

    def _write(name: str, cells: list[nbformat.NotebookNode], **kwargs: Any) -> Path:
        kwargs.setdefault("with_reading", True)
        return write_nb(name, cells, **kwargs)

    return _write


def rules(path: Path) -> list[str]:
    return sorted({f.rule for f in lint.lint([path])})


def test_valid_notebook_is_clean(good_nb: Path) -> None:
    """Does a valid notebook produce no findings at all?"""
    assert lint.lint([good_nb]) == []


def test_course_notebooks_are_clean() -> None:
    """Is every committed course notebook (and the template) lint clean?"""
    findings = lint.lint([COURSES])
    assert findings == [], "\n".join(map(str, findings))


def test_invalid_json_is_one_format_finding(tmp_path: Path) -> None:
    """Does broken JSON stop at a single, located format finding?"""
    path = tmp_path / "broken.ipynb"
    path.write_text('{"cells": [', encoding="utf-8")
    findings = lint.lint([path])
    assert [f.rule for f in findings] == ["format"]
    assert "not valid JSON" in findings[0].message and "line 1" in findings[0].message


def test_nbformat_3_is_rejected(tmp_path: Path) -> None:
    """Is an nbformat-3 notebook reported with how to upgrade it?"""
    path = tmp_path / "old.ipynb"
    path.write_text('{"nbformat": 3, "nbformat_minor": 0, "worksheets": [], "metadata": {}}')
    (finding,) = lint.lint([path])
    assert finding.rule == "format" and "upgrade" in finding.message


def test_outputs_left_in_are_found_and_fixable(write_nb, tmp_path: Path) -> None:
    """Are committed outputs found per cell, and does strip fix them without touching nbgrader?"""
    cell = code("print(1)")
    cell.outputs = [nbformat.v4.new_output("stream", text="1\n")]
    cell.execution_count = 3
    path = write_nb("outputs", [cell, answer("ex1"), grader_cell("t1")])
    findings = lint.lint([path])
    assert [(f.rule, f.cell, f.fixable) for f in findings] == [("outputs", 1, True)]
    strip.strip([path])
    assert lint.lint([path]) == []
    assert nbformat.read(path, 4).cells[2].metadata["nbgrader"]["grade_id"] == "ex1"


def test_unknown_metadata_is_stripped_but_nbgrader_kept(write_nb) -> None:
    """Does strip drop metadata outside the allow-list and keep nbgrader/aifkit/tags?"""
    path = write_nb("meta", [answer("ex1"), grader_cell("t1")], aifkit={"min_seconds": 1})
    nb = nbformat.read(path, 4)
    nb.metadata["language_info"] = {"name": "python"}
    nb.cells[1].metadata["collapsed"] = True
    nbformat.write(nb, str(path))
    assert rules(path) == ["metadata"]
    (result,) = strip.strip([path])
    assert any("language_info" in c for c in result.changes)
    nb = nbformat.read(path, 4)
    assert set(nb.metadata) == {"kernelspec", "aifkit"}
    assert set(nb.cells[1].metadata) == {"nbgrader"}
    assert strip.strip([path], check=True)[0].changes == ()


def test_duplicate_grade_id(write_nb) -> None:
    """Is a reused grade_id reported at the second cell, naming the first?"""
    path = write_nb("dup", [answer("ex1"), grader_cell("ex1")])
    (finding,) = lint.lint([path])
    assert finding.rule == "nbgrader" and finding.cell == 2 and "cell 1" in finding.message


def test_missing_parameters_cell(write_nb) -> None:
    """Is a notebook without a parameters cell told how to add one?"""
    path = write_nb("noparams", [code("x = 1")], with_parameters=False)
    (finding,) = lint.lint([path])
    assert finding.rule == "parameters" and "TIER" in finding.fix


def test_parameters_cell_must_define_tier(write_nb) -> None:
    """Does a parameters cell that forgets TIER get flagged?"""
    path = write_nb("notier", [parameters("SEED = 0"), code("x = 1")], with_parameters=False)
    (finding,) = lint.lint([path])
    assert finding.rule == "parameters" and finding.cell == 0


@pytest.mark.parametrize(
    "source",
    [
        "!wget https://example.org/data.csv",
        "!pip install transformers",
        "%pip install torch",
        "import urllib.request\nurllib.request.urlretrieve('http://x', 'y')",
        "import requests",
        "model = AutoModel.from_pretrained('bert-base-uncased')",
        "ds = load_dataset('imdb')",
        "torchvision.datasets.MNIST('.', download=True)",
        "from sklearn.datasets import fetch_openml\nX = fetch_openml('mnist_784')",
    ],
)
def test_downloads_are_rejected(write_nb, source: str) -> None:
    """Is every kind of run-time download or install caught in the cell that does it?"""
    path = write_nb("download", [code("x = 1"), code(source)])
    findings = lint.lint([path])
    assert [(f.rule, f.cell) for f in findings] == [("downloads", 2)]
    assert "no internet" in findings[0].fix


def test_bundled_sklearn_data_is_allowed(write_nb) -> None:
    """Are scikit-learn's bundled loaders (no network) allowed?"""
    path = write_nb(
        "digits",
        [code("from sklearn.datasets import load_digits\nX, y = load_digits(return_X_y=True)")],
    )
    assert lint.lint([path]) == []


def test_answer_without_tests(write_nb) -> None:
    """Is an autograded answer with no test cell before the next answer reported?"""
    path = write_nb("notests", [answer("ex1"), answer("ex2"), grader_cell("t2")])
    (finding,) = lint.lint([path])
    assert finding.rule == "nbgrader" and finding.cell == 1


def test_graded_cell_needs_points(write_nb) -> None:
    """Does a graded test cell with zero points get flagged?"""
    path = write_nb("nopoints", [answer("ex1"), grader_cell("t1", points=0)])
    assert [f.rule for f in lint.lint([path])] == ["nbgrader"]


def test_markers_outside_their_cells(write_nb) -> None:
    """Are hidden tests outside test cells and solutions outside answer cells flagged?"""
    hidden = code("### BEGIN HIDDEN TESTS\nassert True\n### END HIDDEN TESTS")
    solution = code("### BEGIN SOLUTION\nx = 1\n### END SOLUTION")
    path = write_nb("markers", [hidden, solution])
    findings = lint.lint([path])
    assert [(f.rule, f.cell) for f in findings] == [("markers", 1), ("markers", 2)]


def test_unknown_kernelspec(write_nb) -> None:
    """Is a notebook on a kernel that aifkit does not ship flagged?"""
    path = write_nb("kernel", [code("x = 1")])
    nb = nbformat.read(path, 4)
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, str(path))
    (finding,) = lint.lint([path])
    assert finding.rule == "kernelspec" and "aifkit" in finding.fix


def test_size_limit(write_nb) -> None:
    """Is an oversized notebook flagged?"""
    path = write_nb("big", [code("x = 1")])
    assert [f.rule for f in lint.lint([path], max_bytes=100)] == ["size"]


def test_finding_names_file_cell_and_fix(write_nb) -> None:
    """Does the printed finding carry file, cell index, problem and fix?"""
    path = write_nb("dl", [code("!curl -O http://x")])
    text = str(lint.lint([path])[0])
    assert str(path) in text and "cell 1" in text and "[downloads]" in text and "fix:" in text


def test_aifkit_metadata_shape(write_nb) -> None:
    """Are unknown aifkit keys, bad timeouts and unknown needs reported?"""
    path = write_nb(
        "meta", [code("x = 1")], aifkit={"timeout": {"tpu": 5}, "needs": ["internet"], "speed": 1}
    )
    messages = [f.message for f in lint.lint([path])]
    assert len(messages) == 3 and all(m.startswith("aifkit metadata:") for m in messages)
    path = write_nb("ok", [code("x = 1")], aifkit={"timeout": {"cpu-tiny": 30}, "needs": ["slurm"]})
    assert lint.lint([path]) == []


def test_further_reading_with_two_links_is_clean(write_nb) -> None:
    """Does a notebook ending in '## Further reading' with two https links pass the rule?"""
    path = write_nb("reading", [code("x = 1")])
    assert lint.lint([path]) == []


@pytest.mark.parametrize(
    ("last", "expected"),
    [
        (None, "the last cell is not '## Further reading' (a code cell"),
        (further_reading(heading="## Summary"), "starting '## Summary'"),
        (further_reading(heading="## Further Reading"), "the last cell is not"),
        (
            further_reading(links=("[SLURM](https://slurm.schedmd.com/sbatch.html)",)),
            "1 distinct https link(s), needs at least 2",
        ),
        (
            further_reading(
                links=(
                    "[SLURM](http://slurm.schedmd.com/sbatch.html)",
                    "[SLURM again](https://slurm.schedmd.com/sbatch.html)",
                    "<https://pytorch.org/docs/stable/>",
                )
            ),
            "1 distinct https link(s)",
        ),
    ],
)
def test_missing_or_thin_further_reading_is_named(write_nb, last, expected: str) -> None:
    """Is a notebook without a last 'Further reading' cell of >= 2 https links reported by name?"""
    cells = [code("x = 1")] + ([last] if last is not None else [])
    path = write_nb("noreading", cells, with_reading=False)
    (finding,) = lint.lint([path])
    assert finding.rule == "reading" and expected in finding.message, finding.message
    assert finding.cell == len(cells) and str(path) in str(finding)
    assert "## Further reading" in finding.fix


def test_further_reading_must_be_the_last_cell(write_nb) -> None:
    """Is a Further reading section followed by another cell still reported?"""
    path = write_nb("reading-early", [further_reading(), code("x = 1")], with_reading=False)
    assert [f.rule for f in lint.lint([path])] == ["reading"]
