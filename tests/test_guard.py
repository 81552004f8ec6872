"""The grading guard (an audit hook installed by the launcher) in a real sandboxed grading kernel.

Each attack is one cell of a real notebook run by ``run_notebook`` in bubblewrap, reached the way
a learner who knows the static inspection would: names built at run time, no ``exec`` keyword,
classes made with ``type()``. Honest cells around them must still run.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import nbformat
import pytest

from aifkit import guard
from aifkit.grading import sandbox
from aifkit.grading.execute import SandboxRun, run_notebook

pytestmark = [
    pytest.mark.sandbox,
    pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap"),
]
LIMITS = sandbox.Limits(cell_timeout_s=20, notebook_timeout_s=120, memory_mb=2048, processes=64)
DENIED = "aifkit grading guard"

#: name -> (cell source, what the guard's log line says)
ATTACKS: dict[str, tuple[str, str]] = {
    "module written at run time": (
        "name = 'hel' + 'per'\n"
        "open(name + '.p' + 'y', 'w').write('def square(x):\\n    return 9\\n')\n",
        "writing the code file",
    ),
    "module renamed into place": (
        "import os\nopen('/tmp/m.txt', 'w').write('X = 1\\n')\nos.rename('/tmp/m.txt', '/tmp/m.py')",
        "creating the code file /tmp/m.py",
    ),
    "module loaded from a text file": (
        "open('/tmp/n.txt', 'w').write('import builtins\\nbuiltins.OWNED = 1\\n')\n"
        "import importlib.machinery as m\n"
        "m.SourceFileLoader('n', '/tmp/n.txt').load_module()",
        "importing code from /tmp/n.txt",
    ),
    "exec through a computed name": (
        "import builtins\ngetattr(builtins, 'ex' + 'ec')('OWNED = 2')",
        "compiling text from learner code",
    ),
    "eval through vars()": (
        "import builtins\nvars(builtins)['ev' + 'al']('1 + 1')",
        "compiling text from learner code",
    ),
    "code object through compile": (
        "import builtins\nf = getattr(builtins, 'comp' + 'ile')\nf('x = 1', 'y', 'exec')",
        "compiling text from learner code",
    ),
    "ctypes": ("import ctypes\nctypes.CDLL(None).getpid()", "ctypes"),
    "gc walk": ("import gc\ngetattr(gc, 'get_' + 'objects')()", "gc.get_objects"),
    "gc referrers": ("import gc\ngc.get_referrers(print)", "gc.get_referrers"),
    "tracing": ("import sys\nsys.settrace(lambda *a: None)", "sys.settrace"),
    "profiling": ("import sys\nsys.setprofile(lambda *a: None)", "sys.setprofile"),
    "all threads' frames": ("import sys\nsys._current_frames()", "sys._current_frames"),
    "own memory": ("open('/proc/self/mem', 'rb')", "reading the process's memory"),
    "code swap": (
        "def a():\n    return 1\ndef b():\n    return 2\nsetattr(a, '__co' + 'de__', b.__code__)",
        "replacing a function's __code__",
    ),
    "pth file": ("open('/tmp/evil.pth', 'w').write('import os')", "writing the code file"),
}


def _run(sources: list[str], tmp: Path, files: dict[str, str] | None = None) -> SandboxRun:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    workdir = tmp / "work"
    workdir.mkdir(exist_ok=True)
    for name, text in (files or {}).items():
        (workdir / name).write_text(text, encoding="utf-8")
    return run_notebook(
        nb, sandbox=sandbox.Bubblewrap(slot=9), limits=LIMITS, workdir=workdir, tests=set()
    )


def _text(run: SandboxRun, index: int) -> str:
    cell = run.nb.cells[index]
    return "\n".join(
        str(o.get("text", "")) + str(o.get("evalue", "")) + str(o.get("data", ""))
        for o in cell.outputs
    )


@pytest.mark.skipif(os.geteuid() != 0, reason="the sandbox's own uid needs root")
def test_every_attack_is_refused_and_logged_while_honest_cells_run(tmp_path: Path) -> None:
    """Is each attack refused with the guard's error, logged for the grader, honest code fine?"""
    honest_before = (
        "import numpy as np, json, dataclasses, collections, re\n"
        "P = collections.namedtuple('P', 'x y')\n"
        "@dataclasses.dataclass\nclass D:\n    a: int = 1\n"
        "print('honest', np.arange(3).sum(), json.dumps(P(1, 2)._asdict()), D().a)"
    )
    honest_after = "import math\nprint('still', math.sqrt(16), re.sub('a', 'b', 'aa'))"
    names = list(ATTACKS)
    run = _run([honest_before, *(ATTACKS[n][0] for n in names), honest_after], tmp_path)
    assert run.status == "completed", run.message
    assert "honest 3" in _text(run, 0), _text(run, 0)
    assert "still 4.0 bb" in _text(run, len(names) + 1), run.kernel_log
    logged = "\n".join(run.blocked)
    for position, name in enumerate(names, start=1):
        _, says = ATTACKS[name]
        assert run.cells[position].status == "error", f"{name}: {_text(run, position)}"
        assert DENIED in _text(run, position), f"{name}: {_text(run, position)}"
        assert says in logged, f"{name}: {says!r} not in the guard's log:\n{logged}"


@pytest.mark.skipif(os.geteuid() != 0, reason="the sandbox's own uid needs root")
def test_support_files_import_only_when_unchanged_and_not_shadowing(tmp_path: Path) -> None:
    """A helper shipped with the assignment imports; numpy.py beside it never runs.

    IPython puts the working folder back on ``sys.path``, so the shadow is found first: the
    guard refuses to run it (intake keeps such files out of the kernel in the first place)."""
    files = {
        "helpers.py": "def twice(x):\n    return 2 * x\n",
        "numpy.py": "FAKE = True\n",
    }
    run = _run(
        [
            "import helpers\nprint('twice', helpers.twice(4))",
            "import numpy",
            "import sys\nprint('ran', 'FAKE' in vars(sys.modules.get('numpy', sys)))",
        ],
        tmp_path,
        files,
    )
    assert "twice 8" in _text(run, 0), run.kernel_log
    assert DENIED in _text(run, 1), _text(run, 1)
    assert "ran False" in _text(run, 2), _text(run, 2)
    assert any("numpy.py (not installed)" in line for line in run.blocked), run.blocked


def test_blocked_lines_are_read_from_the_log() -> None:
    log = f"noise\n{guard.MARK} ctypes: ctypes is not allowed while grading\nmore\n"
    assert guard.blocked_lines(log) == ["ctypes: ctypes is not allowed while grading"]
