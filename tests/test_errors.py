"""AifkitError: one way for every command to report it, a plain exception everywhere else."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from aifkit.cli import main
from aifkit.errors import AifkitError, TierError


@pytest.mark.parametrize(
    "args",
    [
        ["catalog", "check", "{tmp}"],
        ["catalog", "list", "{tmp}"],
        ["job", "render", "--site", "{tmp}/nowhere.yml", "true"],
        ["grade", "release", "nope", "--course", "{tmp}"],
        ["hub", "check", "{tmp}/hub.yml"],
    ],
    ids=lambda args: " ".join(args[:2]),
)
def test_every_command_reports_an_aifkit_error_the_same_way(
    args: list[str], tmp_path: Path
) -> None:
    """Does an error in any command group end as one `Error: ...` line and exit status 2,
    without a traceback?"""
    (tmp_path / "hub.yml").write_text("profile: [not, a, mapping\n")
    result = CliRunner().invoke(main, [arg.format(tmp=tmp_path) for arg in args])
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    assert result.output.startswith("Error: "), result.output
    assert "Traceback" not in result.output


def test_outside_the_command_it_is_a_plain_exception() -> None:
    """Is str() the message, does it survive pickling (worker processes), and does a traceback
    end with the class and the message, as in a learner's kernel?"""
    error = TierError("unknown tier 'tpu': use one of cpu-tiny, gpu, multi-gpu or 'auto'")
    assert str(error) == error.message
    assert isinstance(error, AifkitError) and isinstance(error, Exception)
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is TierError and str(copy) == str(error)

    done = subprocess.run(
        [sys.executable, "-c", "from aifkit.course import tiers; tiers.validate('tpu')"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    last = done.stderr.strip().splitlines()[-1]
    assert last == "aifkit.errors.TierError: " + str(error), done.stderr
