"""Hostile and broken submissions, graded for real in the bubblewrap sandbox.

One batch grades every case below together with honest canaries (``aifkit grade autograde
--jobs 2``). Each case asserts that its score is no higher than the honest work it contains
deserves, and every case asserts that nothing outside its own submission changed: the source
and release notebooks, a canary file, the other students' grades, no process left behind, no
connection reached a server on 127.0.0.1.
"""

from __future__ import annotations

import copy
import hashlib
import os
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import pytest
from grading_course import (
    ASSIGNMENT,
    AUTOGRADED_POINTS,
    HIDDEN_LINE,
    gradebook_scores,
    honest,
    make_course,
    release_notebook,
    submit,
    with_answers,
)

from aifkit.grading.autograde import AutogradeOptions, autograde
from aifkit.grading.course import Course
from aifkit.grading.limits import Limits
from aifkit.grading.records import SubmissionResult
from aifkit.grading.sandbox import SANDBOX_UID_BASE

pytestmark = [
    pytest.mark.sandbox,
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="the adversarial suite runs as root, as CI does"),
]

WRONG = {"square": "def square(x):\n    return 0", "mean": "def mean(xs):\n    return 0"}
LIMITS = Limits(cell_timeout_s=8, notebook_timeout_s=90, memory_mb=2048, processes=96)


@dataclass
class Case:
    """A submission and the most it may score (what its honest part deserves)."""

    deserved: float
    answers: dict[str, str] | None = None  # answer cells (grade_id -> code) on top of WRONG
    mutate: Callable[[nbformat.NotebookNode], None] | None = None
    raw: bytes | None = None
    name: str = f"{ASSIGNMENT}.ipynb"
    base: str = "wrong"  # "wrong" answers, or "honest" (correct) answers
    status: str | None = None  # expected record status, when it matters


def _set_meta(target: str, **changes: Any) -> Callable[[nbformat.NotebookNode], None]:
    def mutate(nb: nbformat.NotebookNode) -> None:
        for cell in nb.cells:
            meta = cell.metadata.get("nbgrader", {})
            if meta.get("grade_id") == target:
                for key, value in changes.items():
                    if value is None:
                        meta.pop(key, None)
                    elif key == "source":
                        cell.source = value
                    else:
                        meta[key] = value

    return mutate


def _insert_after(grade_id: str, source: str) -> Callable[[nbformat.NotebookNode], None]:
    def mutate(nb: nbformat.NotebookNode) -> None:
        index = next(
            i
            for i, c in enumerate(nb.cells)
            if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id
        )
        nb.cells.insert(index + 1, nbformat.v4.new_code_cell(source))

    return mutate


def _duplicate_tests(nb: nbformat.NotebookNode) -> None:
    test = next(
        c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "test_square"
    )
    nb.cells.insert(1, copy.deepcopy(test))


def _delete_graded(nb: nbformat.NotebookNode) -> None:
    nb.cells = [c for c in nb.cells if "grade_id" not in c.metadata.get("nbgrader", {})]


def _kernelspec(nb: nbformat.NotebookNode) -> None:
    nb.metadata["kernelspec"] = {"name": "evil", "display_name": "evil", "language": "python"}


def _markdown_script(nb: nbformat.NotebookNode) -> None:
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == "explain":
            cell.source = "<script>alert('xss')</script><img src=x onerror=\"alert('xss')\">"


CASES: dict[str, Case] = {
    "showtraceback": Case(
        0,
        {
            "square": "get_ipython().showtraceback = lambda *a, **k: None\ndef square(x):\n    raise ValueError"
        },
    ),
    "transformer_empties": Case(
        0, {"square": "get_ipython().input_transformers_cleanup.append(lambda lines: [])"}
    ),
    "transformer_pass": Case(
        0,
        {
            "square": "ip = get_ipython()\nip.input_transformers_post.append(lambda lines: ['pass\\n'])"
        },
    ),
    "custom_exc": Case(
        0,
        {
            "square": "get_ipython().set_custom_exc((BaseException,), lambda *a, **k: None)\ndef square(x):\n    raise ValueError"
        },
    ),
    "eq_always_true": Case(
        0,
        {
            "square": "class Yes(float):\n    def __eq__(self, other):\n        return True\n    __hash__ = float.__hash__\ndef square(x):\n    return Yes(0)",
            "mean": "def mean(xs):\n    return Yes(0)",
        },
    ),
    "numpy_testing_patched": Case(
        0,
        {
            "mean": "import numpy.testing as npt\nnpt.assert_allclose = lambda *a, **k: None\ndef mean(xs):\n    return 0"
        },
    ),
    "math_isclose_patched": Case(
        0, {"mean": "import math\nmath.isclose = lambda *a, **k: True\ndef mean(xs):\n    return 0"}
    ),
    "builtins_patched": Case(
        0,
        {
            "square": "import builtins\nbuiltins.print = lambda *a, **k: None\nbuiltins.isinstance = lambda *a: True\ndef square(x):\n    return 0"
        },
    ),
    "assertionerror_rebound": Case(
        0, {"square": "AssertionError = Warning\ndef square(x):\n    return 0"}
    ),
    "nbgrader_execution_branch": Case(
        0,
        {
            "square": "import os\nif os.environ.get('NBGRADER_EXECUTION') or os.environ.get('AIFKIT_GRADING'):\n    get_ipython().input_transformers_cleanup.append(lambda lines: [])\ndef square(x):\n    return 0"
        },
    ),
    "read_hidden_tests": Case(
        0,
        {
            "square": "import glob\nfound = []\nfor path in glob.glob('{root}/**/*.ipynb', recursive=True):\n    try:\n        found.append(open(path).read())\n    except OSError as error:\n        found.append(repr(error))\nprint('LEAK', [f for f in found if 'HIDDEN' in f])\ndef square(x):\n    return 0"
        },
    ),
    "hidden_tests_via_history": Case(
        2,
        {
            "square": "def square(x):\n    import IPython\n    print(IPython.get_ipython().user_ns['In'][-1])\n    return x * x"
        },
    ),
    "gradebook_write": Case(
        0,
        {
            "square": "import sqlite3\ntry:\n    db = sqlite3.connect('{root}/gradebook.db')\n    db.execute('UPDATE grade SET auto_score = 1000')\n    db.commit()\n    print('WROTE')\nexcept Exception as error:\n    print('blocked', error)\ndef square(x):\n    return 0"
        },
    ),
    "network_egress": Case(
        0,
        {
            "square": "import socket\ntry:\n    socket.create_connection(('127.0.0.1', {port}), timeout=3).sendall(b'leak')\n    print('CONNECTED')\nexcept OSError as error:\n    print('blocked', error)\ndef square(x):\n    return 0"
        },
    ),
    "write_canary": Case(
        0,
        {
            "square": "try:\n    open('{canary}', 'w').write('owned')\nexcept OSError as error:\n    print('blocked', error)\ndef square(x):\n    return 0"
        },
    ),
    "sys_exit_cell": Case(0, {"square": "import sys\nsys.exit(0)"}),
    "sys_exit_in_test": Case(0, {"square": "def square(x):\n    import sys\n    sys.exit(0)"}),
    "os_exit": Case(
        0, {"square": "def square(x):\n    import os\n    os._exit(0)"}, status="flagged"
    ),
    "infinite_loop": Case(0, {"square": "while True:\n    pass"}),
    "loop_ignoring_interrupt": Case(
        0,
        {
            "square": "def square(x):\n    while True:\n        try:\n            while True:\n                pass\n        except KeyboardInterrupt:\n            pass"
        },
    ),
    "print_flood": Case(0, {"square": "while True:\n    print('x' * 10000)"}),
    "fork_bomb": Case(
        0,
        {
            "square": "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass"
        },
    ),
    "setsid_daemon": Case(
        0,
        {
            "square": "import subprocess\nsubprocess.Popen(['setsid', 'sh', '-c', 'sleep 317; echo late > late.txt'], start_new_session=True)\ndef square(x):\n    return 0"
        },
    ),
    "memory_bomb": Case(
        0, {"square": "chunks = []\nwhile True:\n    chunks.append(bytearray(64 * 2**20))"}
    ),
    "fake_proof_line": Case(
        0, {"square": "def square(x):\n    print('aifkit-proof-' + '0' * 32)\n    raise ValueError"}
    ),
    "points_1000": Case(
        AUTOGRADED_POINTS, base="honest", mutate=_set_meta("test_square", points=1000)
    ),
    "grade_id_deleted": Case(0, mutate=_set_meta("test_square", grade_id=None, source="pass")),
    "edited_test_cell": Case(0, mutate=_set_meta("test_mean", source="pass")),
    "unlocked_test_cell": Case(
        0,
        mutate=_set_meta("test_partial", locked=False, solution=True, source="points = 2\npoints"),
    ),
    "duplicated_test_cell": Case(0, mutate=_duplicate_tests),
    "deleted_graded_cells": Case(0, mutate=_delete_graded),
    "inserted_patch_cell": Case(
        2,
        base="wrong",
        answers={"square": "def square(x):\n    return x * x"},
        mutate=_insert_after("square", "import math\nmath.isclose = lambda *a, **k: True"),
    ),
    "changed_kernelspec": Case(AUTOGRADED_POINTS, base="honest", mutate=_kernelspec),
    "markdown_script": Case(0, mutate=_markdown_script),
    "invalid_json": Case(0, raw=b'{"cells": [', status="graded"),
    "zero_byte": Case(0, raw=b"", status="graded"),
    "renamed": Case(AUTOGRADED_POINTS, base="honest", name="adv-final-copy.ipynb", status="graded"),
    "nbformat3": Case(AUTOGRADED_POINTS, base="honest-v3", status="graded"),
}
CANARIES = {"honest_a": AUTOGRADED_POINTS, "honest_b": AUTOGRADED_POINTS, "blank": 0.0}


def _digest(paths: list[Path]) -> str:
    sha = hashlib.sha256()
    for path in sorted(paths):
        sha.update(str(path).encode() + path.read_bytes())
    return sha.hexdigest()


@pytest.fixture(scope="module")
def batch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Grade every case and canary in one parallel batch; keep what the checks need."""
    root = tmp_path_factory.mktemp("adversarial")
    course = make_course(root)
    canary = tmp_path_factory.mktemp("outside") / "canary.txt"
    canary.write_text("untouched", encoding="utf-8")
    canary.chmod(0o666)  # even a world-writable file outside the sandbox must stay untouched
    server = socket.create_server(("127.0.0.1", 0))
    connections: list[Any] = []
    threading.Thread(target=lambda: connections.append(server.accept()), daemon=True).start()
    values = {"root": str(root), "canary": str(canary), "port": server.getsockname()[1]}
    release = release_notebook(course)
    for student, case in CASES.items():
        if case.raw is not None:
            submit(course, student, raw=case.raw, name=case.name)
            continue
        nb = honest(course) if case.base.startswith("honest") else with_answers(release, **WRONG)
        answers = {
            k: v.replace("{root}", values["root"])
            .replace("{canary}", values["canary"])
            .replace("{port}", str(values["port"]))
            for k, v in (case.answers or {}).items()
        }
        nb = with_answers(nb, **answers)
        if case.mutate is not None:
            case.mutate(nb)
        if case.base == "honest-v3":
            nb = nbformat.convert(nb, 3)
        submit(course, student, nb, name=case.name)
    for student in ("honest_a", "honest_b"):
        submit(course, student, honest(course))
    submit(course, "blank", release)
    protected = sorted((root / "source").rglob("*")) + sorted((root / "release").rglob("*"))
    protected = [p for p in protected if p.is_file()]
    before = _digest(protected)
    results = autograde(course, ASSIGNMENT, AutogradeOptions(jobs=2, limits=LIMITS))
    server.close()
    yield {
        "course": course,
        "results": {r.student: r for r in results},
        "protected_changed": _digest(protected) != before,
        "canary": canary.read_text(encoding="utf-8"),
        "connections": connections,
        "scores": gradebook_scores(course),
    }


def _autograded_outputs(course: Course, student: str) -> str:
    """Every output of the autograded notebook (its sources hold hidden tests, as in nbgrader)."""
    folder = course.folder("autograded", student, ASSIGNMENT)
    texts = []
    for path in folder.glob("*.ipynb"):
        nb = nbformat.read(str(path), as_version=4)
        texts += [str(o) for c in nb.cells for o in c.get("outputs", [])]
    return "\n".join(texts)


@pytest.mark.parametrize("student", sorted(CASES))
def test_no_higher_than_deserved_and_nothing_outside_changed(
    batch: dict[str, Any], student: str
) -> None:
    """Does the attack score no more than its honest part, and leave everything else alone?"""
    case = CASES[student]
    result: SubmissionResult = batch["results"][student]
    assert result.status != "error", f"the grader failed on {student}: {result.message}"
    assert result.score <= case.deserved, f"{student} scored {result.score}: {result.tests}"
    assert batch["scores"].get(student, 0.0) <= case.deserved
    assert result.max_score == AUTOGRADED_POINTS, "points come from the gradebook, not the notebook"
    if case.status is not None:
        assert result.status == case.status or result.status in ("flagged", "graded")
    assert not batch["protected_changed"], "source or release files changed"
    assert batch["canary"] == "untouched", "a file outside the sandbox was written"
    assert not batch["connections"], "learner code reached a server on 127.0.0.1"
    if student != "hidden_tests_via_history":  # that one prints it: see the feedback test
        assert HIDDEN_LINE not in _autograded_outputs(batch["course"], student)
    for canary, points in CANARIES.items():
        assert batch["scores"][canary] == points, f"canary {canary} changed: {batch['scores']}"


def test_structural_repairs_keep_honest_work(batch: dict[str, Any]) -> None:
    """Renamed, nbformat-3 and re-kernelled honest notebooks still earn their marks."""
    for student in ("renamed", "nbformat3", "changed_kernelspec", "points_1000"):
        result = batch["results"][student]
        assert result.score == AUTOGRADED_POINTS, f"{student}: {result.message} {result.tests}"
    assert any("renamed" in r for r in batch["results"]["renamed"].repairs)
    assert any("nbformat 3" in r for r in batch["results"]["nbformat3"].repairs)


def test_broken_files_get_a_clear_message(batch: dict[str, Any]) -> None:
    assert "not valid JSON" in batch["results"]["invalid_json"].message
    assert "empty" in batch["results"]["zero_byte"].message


def test_runaway_code_is_stopped_and_reported(batch: dict[str, Any]) -> None:
    results = batch["results"]
    for student in ("infinite_loop", "loop_ignoring_interrupt", "print_flood", "fork_bomb"):
        details = " ".join(t.detail for t in results[student].tests) + results[student].message
        assert results[student].score == 0
        assert (
            "time limit" in details
            or "output limit" in details
            or "interrupted" in details
            or (results[student].status in ("timeout", "flagged"))
        ), f"{student}: {details}"
    flood = _autograded_outputs(batch["course"], "print_flood")
    assert len(flood) < LIMITS.output_bytes + 200_000, "outputs beyond the limit were kept"


def test_nothing_outlives_the_batch(batch: dict[str, Any]) -> None:
    """No process of a sandbox uid survives: daemons, fork bombs and dead kernels included."""
    survivors = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            uid = proc.stat().st_uid
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if SANDBOX_UID_BASE <= uid < SANDBOX_UID_BASE + 64 or b"sleep 317" in cmdline:
            survivors.append((proc.name, uid, cmdline[:80]))
    assert not survivors, survivors


def test_flagged_submissions_name_the_construct(batch: dict[str, Any]) -> None:
    result = batch["results"]["showtraceback"]
    assert result.status == "flagged"
    assert any(f.pattern in ("showtraceback", "get_ipython") for f in result.findings)
    assert all(t.status == "flagged" and t.score == 0 for t in result.tests)


def test_at_least_25_cases() -> None:
    assert len(CASES) >= 25
