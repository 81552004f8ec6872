"""Per-learner variants: values per learner, bound into the tests by the grader, in both paths.

The end-to-end test grades one real nbgrader assignment whose answer depends on the learner's
variant with ``aifkit grade autograde`` and with stock ``nbgrader autograde``: each honest
learner earns full marks for their own variant; a correct answer to another learner's variant,
copied or computed after changing the kernel's environment, earns nothing.
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import nbformat
import pytest
from builders import AIFKIT_KERNEL, COURSES
from grading_course import (
    ASSIGNMENT,
    generated_course,
    gradebook_scores,
    release_notebook,
    stock_autograde,
    submit,
    with_answers,
)
from traitlets.config import Config

from aifkit.course import facts, variants
from aifkit.grading import proof, workflow
from aifkit.grading.autograde import AutogradeOptions, autograde
from aifkit.grading.course import Course

COURSE = "advcourse"
SETUP = "from aifkit.course import variants\nN = variants.Variant('adv').integer('n', 10, 10_000)"
ANSWER = "def answer():\n    ### BEGIN SOLUTION\n    return N * N\n    ### END SOLUTION"
TEST = (
    "from aifkit.course import variants\n"
    "mine = variants.Variant('adv').integer('n', 10, 10_000)\n"
    "assert answer() == mine * mine, 'answer() should be the square of YOUR n'\n"
)
CONFIG = """\
from aifkit.grading.config import configure
c = get_config()
c.CourseDirectory.course_id = "{course}"
c.CourseDirectory.db_url = "sqlite:///{root}/gradebook.db"
c.Exchange.root = "{root}/exchange"
configure(c)
"""


def test_values_depend_on_course_assignment_learner_and_name_only() -> None:
    alice = variants.Variant("a03", learner="alice", course="c1")
    assert alice.integer("gpus", 16, 64) == variants.Variant("a03", "alice", "c1").integer(
        "gpus", 16, 64
    ), "the same inputs give the same value"
    others = [
        variants.Variant("a03", learner="bob", course="c1"),
        variants.Variant("a04", learner="alice", course="c1"),
        variants.Variant("a03", learner="alice", course="c2"),
    ]
    values = {v.integer("gpus", 0, 10**9) for v in [alice, *others]}
    assert len(values) == 4, "learner, assignment and course each change the value"
    assert alice.seed("data") != alice.seed("model"), "each parameter has its own value"
    picks = [
        variants.Variant("a03", f"l{i}", "c1").integer("k", 16, 64, step=8) for i in range(200)
    ]
    assert set(picks) == {16, 24, 32, 40, 48, 56, 64}, "every value on the grid is reached"
    floats = [variants.Variant("a03", f"l{i}", "c1").uniform("x", 0.5, 2.0) for i in range(200)]
    assert all(0.5 <= x <= 2.0 and round(x, 2) == x for x in floats)
    forms = ["latency", "throughput", "memory"]
    assert {variants.Variant("a03", f"l{i}").choice("form", forms) for i in range(60)} == set(forms)
    for bad in (lambda: alice.integer("x", 5, 1), lambda: alice.choice("x", [])):
        with pytest.raises(ValueError, match="x"):
            bad()


def test_the_learner_is_the_graders_student_else_the_hub_user(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(variants.HUB_USER_ENV, "hubuser")
    monkeypatch.delenv(variants.LEARNER_ENV, raising=False)
    monkeypatch.setenv(variants.COURSE_ENV, "bootcamp")
    assert (variants.current_learner(), variants.current_course()) == ("hubuser", "bootcamp")
    assert variants.Variant("a03") == variants.Variant("a03", "hubuser", "bootcamp")
    monkeypatch.setenv(variants.LEARNER_ENV, "student7")
    assert variants.current_learner() == "student7"


def test_the_grader_binds_every_variant_of_a_test_to_the_student() -> None:
    source = (
        "import os\n"
        "os.environ['AIFKIT_LEARNER'] = 'alice'\n"
        "a = variants.Variant('adv').integer('n', 1, 9)\n"
        "b = Variant('adv', 'alice', course='c9').seed('s')\n"
        "assert variants.current_learner() != current_course()\n"
    )
    sent = proof.instrument(source, "abc", b"k" * 32, learner="bob'\n", course="c1")
    body = sent.split("\n", 1)[1]
    assert body.count("learner=\"bob'\\n\", course='c1'") == 2, body
    assert "alice'" not in body.split("os.environ")[1].split("\n", 1)[1], body
    assert "'c9'" not in body and "current_learner()" not in body and "current_course()" not in body
    unbound = proof.instrument(source, "abc", b"k" * 32)
    assert "current_learner" in unbound, "without a student nothing is bound"


def _variant_notebook() -> nbformat.NotebookNode:
    def graded(cell: nbformat.NotebookNode, **meta: object) -> nbformat.NotebookNode:
        cell.metadata["nbgrader"] = {"schema_version": 3, "locked": False, "task": False, **meta}
        return cell

    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": dict(AIFKIT_KERNEL)}
    nb.cells = [
        nbformat.v4.new_code_cell(SETUP),
        graded(nbformat.v4.new_code_cell(ANSWER), grade=False, solution=True, grade_id="answer"),
        graded(
            nbformat.v4.new_code_cell(TEST),
            grade=True,
            solution=False,
            grade_id="test_answer",
            points=2,
        ),
    ]
    return nb


def _n(learner: str) -> int:
    return variants.Variant(ASSIGNMENT, learner=learner, course=COURSE).integer("n", 10, 10_000)


@pytest.mark.sandbox
@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap (bwrap) is not installed")
def test_each_learner_earns_marks_for_their_own_variant_only(tmp_path: Path) -> None:
    """Own variant: full marks; another learner's answer, copied or recomputed: zero."""
    assert len({_n(who) for who in ("alice", "bob", "carol", "dave")}) == 4
    course = generated_course(tmp_path, ASSIGNMENT, _variant_notebook(), course_id=COURSE)
    release = release_notebook(course)
    square = "def answer():\n    return N * N"
    submissions = {
        "alice": with_answers(release, answer=square),
        "dave": with_answers(release, answer=square),
        "bob": with_answers(release, answer=f"def answer():\n    return {_n('alice') ** 2}"),
        "carol": with_answers(
            release,
            answer=(
                "import os\nos.environ['AIFKIT_LEARNER'] = 'alice'\n"
                "from aifkit.course import variants\n"
                "def answer():\n    return variants.Variant('adv').integer('n', 10, 10_000) ** 2"
            ),
        ),
    }
    for student, nb in submissions.items():
        submit(course, student, nb)
    expected = {"alice": 2.0, "dave": 2.0, "bob": 0.0, "carol": 0.0}

    results = {r.student: r for r in autograde(course, ASSIGNMENT, AutogradeOptions(jobs=2))}
    assert {s: r.score for s, r in results.items()} == expected, [
        (r.student, r.status, [t.detail for t in r.tests]) for r in results.values()
    ]
    assert gradebook_scores(course) == expected

    (tmp_path / "nbgrader_config.py").write_text(
        CONFIG.format(course=COURSE, root=tmp_path), encoding="utf-8"
    )
    with course.gradebook() as gb:  # forget the grades: the stock path must give them again
        for submission in gb.find_assignment(ASSIGNMENT).submissions:
            for notebook in submission.notebooks:
                for grade in notebook.grades:
                    grade.auto_score = None
        gb.db.commit()
    stock = stock_autograde(tmp_path)
    assert stock.returncode == 0, stock.stderr[-3000:]
    assert gradebook_scores(course) == expected


@pytest.mark.notebook
@pytest.mark.sandbox
@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap (bwrap) is not installed")
def test_a06s_project_is_each_learners_own(tmp_path: Path) -> None:
    """a06's solution earns full marks as alice and as bob; alice's number in the notebook of
    a third learner loses exactly the test of the variant."""
    assignment = "a06-allocation"
    shutil.copytree(COURSES / assignment, tmp_path / "source" / assignment)
    config = Config()
    config.CourseDirectory.course_id = COURSE
    config.CourseDirectory.db_url = f"sqlite:///{tmp_path / 'gradebook.db'}"
    config.Exchange.root = str(tmp_path / "exchange")
    (tmp_path / "exchange").mkdir()
    course = Course.load(tmp_path, config)
    workflow.generate(course, assignment)

    alice = variants.Variant(assignment, learner="alice", course=COURSE)
    n_params = alice.integer("params_billion", 1, 30) * 1e9
    peak = facts.value("factory_accelerator_bf16_dense")
    alices_hours = 6 * n_params * 20 * n_params / (peak * alice.uniform("mfu", 0.3, 0.5) * 3600)
    source = nbformat.read(str(tmp_path / "source" / assignment / f"{assignment}.ipynb"), 4)
    for student in ("alice", "bob", "copier"):
        folder = course.folder("submitted", student, assignment)
        shutil.copytree(tmp_path / "source" / assignment, folder)
        if student == "copier":
            nb = copy.deepcopy(source)
            cell = next(
                c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "gpu-hours"
            )
            cell.source = (
                cell.source.split("# Your project's GPU-hours")[0]
                + f"MY_GPU_HOURS = {alices_hours!r}\n"
            )
            nbformat.write(nb, str(folder / f"{assignment}.ipynb"))

    results = {r.student: r for r in autograde(course, assignment, AutogradeOptions(jobs=2))}
    lost = {
        s: sorted(t.grade_id for t in r.tests if t.score < t.max_score) for s, r in results.items()
    }
    assert lost == {"alice": [], "bob": [], "copier": ["gpu-hours-values"]}, [
        (r.student, r.status, r.message) for r in results.values()
    ]


def test_a_learner_of_several_courses_gets_the_course_of_the_notebooks_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """On a hub of several courses nbgrader files assignments under <course>/<assignment>."""
    monkeypatch.delenv(variants.COURSE_ENV, raising=False)
    monkeypatch.setenv(variants.COURSES_ENV, "ml101,hpc201")
    monkeypatch.setenv(variants.LEARNER_ENV, "bob")
    for course in ("ml101", "hpc201", "elsewhere"):
        folder = tmp_path / course / "d04-scaling-efficiency"
        folder.mkdir(parents=True)
        monkeypatch.chdir(folder)
        expected = course if course != "elsewhere" else ""
        assert variants.Variant("d04-scaling-efficiency").course == expected
        assert variants.Variant("a03").course == "", "another assignment's folder says nothing"
