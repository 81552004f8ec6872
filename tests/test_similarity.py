"""The similarity report on constructed submissions, with real nbgrader release folders.

One exercise (flag anomalies in a rolling window, then summarise them) solved four independent
ways and once copied with every usual disguise: renamed variables, reformatting, new comments
and docstring, changed constants, the two functions swapped. The copy must rank first by a wide
margin, independent solutions low, the released template never count, and unreadable or
hostile submissions be skipped with a reason while the rest are compared.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from builders import code
from grading_course import generated_course

from aifkit.grading import similarity
from aifkit.grading.course import Course

ASSIGNMENT = "anomalies"
STUB = "def rolling_anomalies(readings, window=5, threshold=3.0):\n"
SOLUTION = STUB + "    ### BEGIN SOLUTION\n    return []\n    ### END SOLUTION"
SUMMARY = "def summary(readings):\n    ### BEGIN SOLUTION\n    return {}\n    ### END SOLUTION"
TEST = "assert rolling_anomalies([1, 1, 1, 1, 1, 9]) == [5]"

ANA = (
    "import math\n\n"
    "def rolling_anomalies(readings, window=5, threshold=3.0):\n"
    '    """Indexes whose reading is more than `threshold` deviations from the last readings."""\n'
    "    flagged = []\n"
    "    for i in range(window, len(readings)):\n"
    "        recent = readings[i - window:i]\n"
    "        mean = sum(recent) / window\n"
    "        spread = math.sqrt(sum((r - mean) ** 2 for r in recent) / window)\n"
    "        if spread > 0 and abs(readings[i] - mean) / spread > threshold:\n"
    "            flagged.append(i)\n"
    "    return flagged\n",
    "def summary(readings):\n"
    "    found = rolling_anomalies(readings)\n"
    "    share = len(found) / len(readings)\n"
    '    return {"count": len(found), "share": share}\n',
)
BEN = (  # ANA's work, disguised; the functions swap cells
    "def summary(xs):\n"
    "    # how many anomalies, and which share of all readings\n"
    "    hits = rolling_anomalies( xs )\n"
    "    frac = len(hits)/len(xs)\n"
    "    return {'count': len(hits), 'share': frac}\n",
    "import math\n"
    "def rolling_anomalies(xs, w=7, threshold=2.5):\n"
    "    # my own detector\n"
    "    out = [ ]\n"
    "    for k in range(w, len(xs)):\n"
    "        chunk = xs[k-w:k]\n"
    "        mu = sum(chunk)/w\n"
    "        sd = math.sqrt(sum((c-mu)**2 for c in chunk)/w)\n"
    "        if sd > 0 and abs(xs[k]-mu)/sd > threshold:\n"
    "            out.append(k)\n"
    "    return out\n",
)
CLEO = (
    "import numpy as np\n\n"
    "def rolling_anomalies(readings, window=5, threshold=3.0):\n"
    "    x = np.asarray(readings, dtype=float)\n"
    "    windows = np.lib.stride_tricks.sliding_window_view(x[:-1], window)\n"
    "    centre = windows.mean(axis=1)\n"
    "    scale = windows.std(axis=1)\n"
    "    z = np.abs(x[window:] - centre) / np.where(scale > 0, scale, np.inf)\n"
    "    return list(np.nonzero(z > threshold)[0] + window)\n",
    "def summary(readings):\n"
    "    hits = rolling_anomalies(readings)\n"
    '    return {"count": len(hits), "share": len(hits) / len(readings)}\n',
)
DAN = (
    "from statistics import fmean, pstdev\n\n"
    "def rolling_anomalies(readings, window=5, threshold=3.0):\n"
    "    result, i = [], window\n"
    "    while i < len(readings):\n"
    "        past = readings[i - window:i]\n"
    "        sd = pstdev(past)\n"
    "        if sd and abs(readings[i] - fmean(past)) > threshold * sd:\n"
    "            result.append(i)\n"
    "        i += 1\n"
    "    return result\n",
    "def summary(readings):\n"
    "    n = len(rolling_anomalies(readings))\n"
    "    return dict(count=n, share=n / len(readings))\n",
)
EVE = (
    "from collections import deque\n\n"
    "def rolling_anomalies(readings, window=5, threshold=3.0):\n"
    "    buf = deque(maxlen=window)\n"
    "    out = []\n"
    "    for idx, value in enumerate(readings):\n"
    "        if len(buf) == window:\n"
    "            m = sum(buf) / window\n"
    "            var = sum(v * v for v in buf) / window - m * m\n"
    "            if var > 0 and (value - m) ** 2 > threshold ** 2 * var:\n"
    "                out.append(idx)\n"
    "        buf.append(value)\n"
    "    return out\n",
    "def summary(readings):\n"
    "    anomalies = rolling_anomalies(readings)\n"
    '    return {"count": len(anomalies), "share": len(anomalies) / max(1, len(readings))}\n',
)
INDEPENDENT = {"ana": ANA, "cleo": CLEO, "dan": DAN, "eve": EVE}


def _course(root: Path) -> Course:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.cells = [
        code("import math  # given: the template's own code never counts"),
        code(SOLUTION, solution=True, grade=False, grade_id="detector"),
        code(TEST, solution=False, grade=True, grade_id="test_detector", points=2, locked=True),
        code(SUMMARY, solution=True, grade=False, grade_id="summary"),
    ]
    return generated_course(root, ASSIGNMENT, nb, course_id="similarity")


def _release(course: Course) -> nbformat.NotebookNode:
    path = course.folder("release", ".", ASSIGNMENT) / f"{ASSIGNMENT}.ipynb"
    return nbformat.read(str(path), as_version=4)


def _submit(course: Course, student: str, answers: tuple[str, str] | None) -> Path:
    nb = _release(course)
    if answers is not None:
        cells = {c.metadata.get("nbgrader", {}).get("grade_id"): c for c in nb.cells}
        cells["detector"].source, cells["summary"].source = answers
    folder = course.folder("submitted", student, ASSIGNMENT)
    folder.mkdir(parents=True)
    nbformat.write(nb, str(folder / f"{ASSIGNMENT}.ipynb"))
    return folder


@pytest.fixture
def course(tmp_path: Path) -> Course:
    course = _course(tmp_path)
    for student, answers in INDEPENDENT.items():
        _submit(course, student, answers)
    _submit(course, "ben", BEN)
    _submit(course, "blank", None)  # the release as given
    _submit(course, "blank2", None)
    return course


def test_the_disguised_copy_ranks_first_and_independent_work_low(course: Course) -> None:
    report = similarity.compare(course, ASSIGNMENT)
    scores = {frozenset((p.a, p.b)): p.score for p in report.pairs}
    assert len(report.pairs) == 7 * 6 // 2 and not report.skipped
    top = report.pairs[0]
    assert {top.a, top.b} == {"ana", "ben"}, similarity.render(report)
    assert top.score >= 0.6, similarity.render(report)
    independent = [scores[frozenset(p)] for p in itertools.combinations(INDEPENDENT, 2)]
    assert max(independent) <= 0.25, similarity.render(report)
    assert top.score >= 3 * max(independent)
    assert top.a_lines and top.b_lines, "the matching lines are located on both sides"


def test_the_released_template_never_counts(course: Course) -> None:
    """Two learners who hand in the release unchanged share everything, and it scores 0."""
    report = similarity.compare(course, ASSIGNMENT)
    for pair in report.pairs:
        if "blank" in (pair.a, pair.b):
            assert pair.score == 0 and pair.shared == 0, pair


def test_renaming_reformatting_and_reordering_keep_the_fingerprint() -> None:
    plain = "total = 0\nfor item in items:\n    total += item.price * 2\nprint(total)\n"
    disguised = "acc=0 # sum\nfor x in things :\n    acc+=x.price*3\n\n\nprint( acc )\n"
    assert sorted(d for d, _ in similarity.grams(plain)) == sorted(
        d for d, _ in similarity.grams(disguised)
    )
    swapped = "def g():\n    return 2\ndef f(a):\n    return a + 1\n"
    original = "def f(a):\n    return a + 1\ndef g():\n    return 2\n"
    assert sorted(d for d, _ in similarity.grams(swapped)) == sorted(
        d for d, _ in similarity.grams(original)
    )
    assert similarity.grams("x.mean()") != similarity.grams("x.sum()"), "attributes are kept"
    assert similarity.grams("def f(:\n  ]]") != [], "code that does not tokenize still counts"


def test_unreadable_submissions_are_skipped_with_a_reason(course: Course, tmp_path: Path) -> None:
    secret = tmp_path / "secret.ipynb"
    secret.write_text('{"cells": []}', encoding="utf-8")
    linked = course.folder("submitted", "mallory", ASSIGNMENT)
    linked.mkdir(parents=True)
    (linked / f"{ASSIGNMENT}.ipynb").symlink_to(secret)
    broken = course.folder("submitted", "trudy", ASSIGNMENT)
    broken.mkdir(parents=True)
    (broken / f"{ASSIGNMENT}.ipynb").write_text("{not json", encoding="utf-8")
    deep = course.folder("submitted", "oscar", ASSIGNMENT)
    deep.mkdir(parents=True)
    (deep / f"{ASSIGNMENT}.ipynb").write_text("[" * 200_000 + "]" * 200_000, encoding="utf-8")
    odd = course.folder("submitted", "walter", ASSIGNMENT)
    odd.mkdir(parents=True)
    cells = [
        7,
        {"cell_type": "code", "metadata": [], "source": [1, "x = 1"]},
        {"cell_type": "code"},
    ]
    (odd / f"{ASSIGNMENT}.ipynb").write_text(json.dumps({"cells": cells}), encoding="utf-8")
    report = similarity.compare(course, ASSIGNMENT)
    assert "symbolic link" in report.skipped["mallory"]
    assert "not valid JSON" in report.skipped["trudy"]
    assert "too deeply" in report.skipped["oscar"]
    assert "walter" in report.learners, "malformed cells are passed over, the rest compared"
    assert "ana" in report.learners and len(report.learners) == 8


def test_the_cli_writes_csv_and_escaped_html(course: Course, tmp_path: Path) -> None:
    _submit(course, "xss", ("print('</pre><script>alert(1)</script>')", "x = 1"))
    out = tmp_path / "report"
    env = {**os.environ, "AIFKIT_COURSE_ROOT": str(course.root)}
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "aifkit"),
            "grade",
            "similarity",
            ASSIGNMENT,
            "-o",
            str(out),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "ana / ben" in done.stdout.splitlines()[2], done.stdout
    rows = (out / "similarity.csv").read_text(encoding="utf-8").splitlines()
    assert rows[0].startswith("rank,student_a,student_b,score") and len(rows) == 1 + 8 * 7 // 2
    page = (out / "similarity.html").read_text(encoding="utf-8")
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "class='hit'" in page


def test_two_hundred_submissions(tmp_path: Path) -> None:
    """Every pair of 200 learners is compared (the time is printed by benchmarks/similarity.py)."""
    course = _course(tmp_path)
    sources = list(INDEPENDENT.values())
    for n in range(200):
        detector, summary = sources[n % len(sources)]
        _submit(course, f"learner{n:03}", (detector.replace("readings", f"values{n}"), summary))
    report = similarity.compare(course, ASSIGNMENT)
    assert len(report.pairs) == 200 * 199 // 2
    assert report.pairs[0].score > 0.9, "renamed copies of one solution are found"
