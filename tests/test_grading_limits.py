"""Grading limits: one default each, the course's nbgrader configuration, then explicit flags.

The fast tests read configuration only; the last one grades a real submission with stock
``nbgrader autograde`` and with ``aifkit grade autograde`` (bubblewrap) to show that a limit a
course sets reaches the kernel by both paths, and that a flag beats it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import nbformat
import pytest
from builders import REPO
from click.testing import CliRunner
from grading_course import ASSIGNMENT, make_course, release_notebook, submit, with_answers

from aifkit.grading import records
from aifkit.grading.commands import grade
from aifkit.grading.course import Course, GradingError
from aifkit.grading.limits import BY_NAME, SETTINGS, LimitError, Limits, unread_settings
from aifkit.grading.nbgrader_hooks import SandboxedExecute

BIN = Path(sys.executable).parent


def _course_with(root: Path, *lines: str) -> Course:
    """A course root whose nbgrader_config.py holds ``lines`` after the course id."""
    root.mkdir(parents=True, exist_ok=True)
    text = "\n".join(["c = get_config()", "c.CourseDirectory.course_id = 'limits'", *lines, ""])
    (root / "nbgrader_config.py").write_text(text, encoding="utf-8")
    return Course.load(root)


def test_each_limit_has_one_default_that_traits_and_flags_take() -> None:
    """Do the SandboxedExecute traits and the autograde flags all come from ``Limits``?"""
    traits = SandboxedExecute.class_own_traits(config=True)
    assert set(traits) == {"sandbox", *BY_NAME}, "a limit without a trait, or a stray trait"
    flags = {p.name: p for p in grade.commands["autograde"].params}
    for setting in SETTINGS:
        assert setting.default == getattr(Limits(), setting.field)
        assert traits[setting.name].default_value == setting.default
        assert traits[setting.name].help == setting.help
        assert flags[setting.name].default is None, f"{setting.flag} must mean 'not given'"
        assert setting.flag in flags[setting.name].opts


def test_the_grading_docs_list_every_limit_with_its_default() -> None:
    text = (REPO / "docs" / "grading.md").read_text(encoding="utf-8")
    for setting in SETTINGS:
        row = f"| `{setting.name}`, `{setting.flag}` | {setting.default:.0f} |"
        assert row in text, f"docs/grading.md lacks or misstates: {row}"


def test_defaults_then_the_course_config_then_flags(tmp_path: Path) -> None:
    assert Course.load(tmp_path).limits() == Limits(), "no setting: the defaults"
    course = _course_with(
        tmp_path / "c",
        "c.SandboxedExecute.cell_timeout = 7",
        "c.SandboxedExecute.memory_mb = 1000",
    )
    assert course.limits() == Limits(cell_timeout_s=7, memory_mb=1000)
    assert course.limits(cell_timeout=3, memory_mb=None, processes=9) == Limits(
        cell_timeout_s=3, memory_mb=1000, processes=9
    ), "a flag given beats the course; one not given (None) keeps it"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("-5", "c.SandboxedExecute.memory_mb = -5: must be greater than 0"),
        ("0", "c.SandboxedExecute.memory_mb = 0: must be greater than 0"),
        ("True", "c.SandboxedExecute.memory_mb = True: must be a whole number, not bool"),
        ("'lots'", "'memory_mb' trait of a SandboxedExecute instance expected an int"),
        ("2.5", "'memory_mb' trait of a SandboxedExecute instance expected an int"),
    ],
)
def test_a_bad_value_in_the_course_config_names_the_setting(
    value: str, expected: str, tmp_path: Path
) -> None:
    course = _course_with(tmp_path, f"c.SandboxedExecute.memory_mb = {value}")
    with pytest.raises(GradingError) as error:
        course.limits()
    assert expected in str(error.value)
    assert str(tmp_path / "nbgrader_config.py") in str(error.value), "it names the file too"


def test_a_bad_timeout_and_a_bad_flag_name_their_setting(tmp_path: Path) -> None:
    course = _course_with(tmp_path, "c.SandboxedExecute.notebook_timeout = float('inf')")
    with pytest.raises(GradingError, match=r"c\.SandboxedExecute\.notebook_timeout = inf: "):
        course.limits()
    course = _course_with(tmp_path)
    with pytest.raises(LimitError, match=r"--cell-timeout = -1\.0: must be greater than 0"):
        course.limits(cell_timeout=-1.0)
    with pytest.raises(LimitError, match="no grading limit named cell_timout"):
        course.limits(cell_timout=3)


def test_the_worker_json_keeps_its_form_and_is_checked() -> None:
    """The SLURM worker receives ``asdict(limits)`` as JSON: same keys, validated on arrival."""
    limits = Limits(cell_timeout_s=6, notebook_timeout_s=60, memory_mb=2048)
    data = json.loads(json.dumps(asdict(limits)))
    assert Limits(**data) == limits
    assert data["cell_timeout_s"] == 6.0 and isinstance(data["cell_timeout_s"], float)
    with pytest.raises(LimitError, match=r"Limits\.processes = 0: must be greater than 0"):
        Limits(**{**data, "processes": 0})


def test_the_cli_warns_about_execute_timeout_and_refuses_a_bad_flag(tmp_path: Path) -> None:
    """Does `Execute.timeout` get a warning naming the setting to use, and `-1` an exit 2?"""
    _course_with(tmp_path, "c.Execute.timeout = 60")
    done = CliRunner().invoke(
        grade, ["autograde", ASSIGNMENT, "--course", str(tmp_path), "--cell-timeout", "-1"]
    )
    assert done.exit_code == 2, done.output
    assert "c.Execute.timeout = 60 does not limit autograde" in done.output
    assert "set c.SandboxedExecute.cell_timeout instead" in done.output
    assert "--cell-timeout = -1.0: must be greater than 0" in done.output


def test_the_repository_config_sets_nothing_autograde_ignores() -> None:
    course = Course.load(REPO)
    assert unread_settings(course.config) == []
    assert course.limits() == Limits()


# --- both graders on a real submission ----------------------------------------------------------

NOTEBOOK_TIMEOUT = 10  # the course's; the default (900 s) would never stop this submission
SLOW_SQUARE = (
    "import resource, time\n"
    "as_mb = resource.getrlimit(resource.RLIMIT_AS)[0] // 2**20\n"
    "nproc = resource.getrlimit(resource.RLIMIT_NPROC)[0]\n"
    "print(f'limits: AS={as_mb} NPROC={nproc}')\n"
    "time.sleep(15)\n"
    "def square(x):\n"
    "    return x * x"
)


def _autograded_output(root: Path) -> str:
    path = root / "autograded" / "ada" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    nb = nbformat.read(str(path), as_version=4)
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)


def _run(args: list[str], root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    env.pop("AIFKIT_COURSE_ROOT", None)
    return subprocess.run(args, cwd=root, capture_output=True, text=True, timeout=300, env=env)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap (CI installs it)")
def test_a_course_limit_reaches_both_graders_and_a_flag_beats_it(tmp_path: Path) -> None:
    course = make_course(tmp_path)
    answers = {"square": SLOW_SQUARE, "mean": "def mean(xs):\n    return sum(xs) / len(xs)"}
    submit(course, "ada", with_answers(release_notebook(course), **answers))
    (tmp_path / "nbgrader_config.py").write_text(
        "from aifkit.grading.config import configure\n"
        "c = get_config()\n"
        "c.CourseDirectory.course_id = 'advcourse'\n"
        f"c.CourseDirectory.db_url = 'sqlite:///{tmp_path / 'gradebook.db'}'\n"
        "configure(c)\n"
        f"c.SandboxedExecute.notebook_timeout = {NOTEBOOK_TIMEOUT}\n"
        "c.SandboxedExecute.memory_mb = 3000\n"
        "c.SandboxedExecute.processes = 77\n",
        encoding="utf-8",
    )
    past_limit = f"ran past its {NOTEBOOK_TIMEOUT} s limit"

    stock = _run([str(BIN / "nbgrader"), "autograde", ASSIGNMENT, "--force"], tmp_path)
    assert stock.returncode == 0, stock.stderr[-3000:]
    assert past_limit in stock.stderr, stock.stderr[-3000:]
    assert "limits: AS=3000 NPROC=77" in _autograded_output(tmp_path)

    ours = _run([str(BIN / "aifkit"), "grade", "autograde", ASSIGNMENT], tmp_path)
    assert ours.returncode == 0, ours.stderr[-3000:]
    (result,) = records.load_all(tmp_path, ASSIGNMENT)
    assert result.status == "timeout" and past_limit in result.message, result
    assert "timeout" in ours.stdout
    assert "limits: AS=3000 NPROC=77" in _autograded_output(tmp_path)

    flags = ["--notebook-timeout", "120", "--memory-mb", "3500"]
    ours = _run([str(BIN / "aifkit"), "grade", "autograde", ASSIGNMENT, *flags], tmp_path)
    assert ours.returncode == 0, ours.stderr[-3000:]
    (result,) = records.load_all(tmp_path, ASSIGNMENT)
    assert result.status == "graded" and result.score == result.max_score, result
    assert "limits: AS=3500 NPROC=77" in _autograded_output(tmp_path), "flags beat the course"
