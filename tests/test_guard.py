"""The grading guard (an audit hook installed by the launcher) in a real sandboxed grading kernel.

Each attack is one cell of a real notebook run by ``run_notebook`` in bubblewrap, reached the way
a learner who knows the static inspection would: names built at run time, no ``exec`` keyword,
classes made with ``type()``. Honest cells around them must still run.
"""

from __future__ import annotations

import math
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
        "import importlib, sys\nname = 'hel' + 'per'\nsys.path.insert(0, '/tmp')\n"
        "open('/tmp/' + name + '.p' + 'y', 'w').write('def square(x):\\n    return 9\\n')\n"
        "importlib.import_module(name)",
        "importing code from /tmp/helper.py",
    ),
    "compiled module renamed into place": (
        "import os\nopen('/tmp/m.txt', 'wb').write(b'x')\nos.rename('/tmp/m.txt', '/tmp/m.pyc')",
        "creating the code file /tmp/m.pyc",
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
    "code from marshal": (
        "import marshal\nmarshal.loads(marshal.dumps((lambda: 1).__code__))",
        "loading code with marshal outside the import system",
    ),
    "pth file": ("open('/tmp/evil.pth', 'w').write('import os')", "writing the code file"),
}


def _run(
    sources: list[str],
    tmp: Path,
    files: dict[str, str] | None = None,
    tests: set[int] | None = None,
) -> SandboxRun:
    """Run ``sources`` as a notebook in the sandbox; cell 1 is a graded test unless ``tests``."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    workdir = tmp / "work"
    workdir.mkdir(parents=True, exist_ok=True)
    for name, text in (files or {}).items():
        (workdir / name).write_text(text, encoding="utf-8")
    graded = tests if tests is not None else ({1} if len(sources) > 1 else set())
    return run_notebook(
        nb, sandbox=sandbox.Bubblewrap(slot=9), limits=LIMITS, workdir=workdir, tests=graded
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
    run = _run(
        [honest_before, *(ATTACKS[n][0] for n in names), honest_after], tmp_path, tests=set()
    )
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
        tests=set(),
    )
    assert "twice 8" in _text(run, 0), run.kernel_log
    assert DENIED in _text(run, 1), _text(run, 1)
    assert "ran False" in _text(run, 2), _text(run, 2)
    assert any("numpy.py (not installed)" in line for line in run.blocked), run.blocked


@pytest.mark.skipif(os.geteuid() != 0, reason="the sandbox's own uid needs root")
def test_builtins_run_for_the_learner_by_a_thread_or_the_event_loop_are_refused(
    tmp_path: Path,
) -> None:
    """No learner frame is on the stack when a thread or the kernel's event loop calls a builtin
    the learner handed it: introspection and ctypes are refused there too."""
    schedule = (
        "import asyncio, ctypes, gc, itertools, sys, threading\nfound = []\n"
        "asyncio.get_event_loop().call_soon(found.extend, "
        "itertools.starmap(getattr(gc, 'get_' + 'objects'), [()]))\n"
        "t = threading.Thread(target=found.extend, args=(itertools.starmap("
        "getattr(sys, '_current_' + 'frames'), [()]),))\nt.start()\nt.join()\n"
        "threading.Thread(target=ctypes.CDLL, args=(None,)).start()"
    )
    look = "import time\ntime.sleep(1)\nprint('found', len(found))"
    run = _run([schedule, look], tmp_path, tests=set())
    assert "found 0" in _text(run, 1), _text(run, 1)
    logged = "\n".join(run.blocked)
    for says in ("gc.get_objects", "sys._current_frames", "ctypes"):
        assert says in logged, f"{says!r} not in the guard's log:\n{logged}"


def test_blocked_lines_are_read_from_the_log() -> None:
    log = f"noise\n{guard.MARK} ctypes: ctypes is not allowed while grading\nmore\n"
    assert guard.blocked_lines(log) == ["ctypes: ctypes is not allowed while grading"]


#: name -> (answer cell, test cell): each must leave the test unproven (no points).
FORGERIES: dict[str, tuple[str, str]] = {
    "always-true object made with type()": (
        "Yes = type('Yes', (), {'__eq__': lambda s, o: True, '__hash__': lambda s: 0})\n"
        "def square(x):\n    return Yes()",
        "assert square(3) == 9",
    ),
    "float subclass whose __eq__ is a builtin": (
        "import operator\nY = type('Y', (float,), {'__eq__': operator.is_not, '__hash__': None})\n"
        "def square(x):\n    return Y(0)",
        "assert square(3) == 9",
    ),
    "array function override": (
        "class A:\n    def __array_function__(self, *a, **k):\n        return True\n"
        "def square(x):\n    return A()",
        "import numpy as np\nassert np.allclose(square(3), 9)",
    ),
    "object array of liars": (
        "import numpy as np\nYes = type('Yes', (), {'__eq__': lambda s, o: True, '__hash__': None})\n"
        "def square(x):\n    return np.array([Yes()], dtype=object)",
        "assert (square(3) == 9).all()",
    ),
    "library function replaced through a computed name": (
        "import numpy as np\nsetattr(np, 'all' + 'close', lambda *a, **k: True)\n"
        "def square(x):\n    return 0",
        "import numpy as np\nassert np.allclose(square(3), 9)",
    ),
    "fake module in sys.modules": (
        "import sys, types\nfake = types.ModuleType('math')\nfake.isclose = lambda *a, **k: True\n"
        "sys.modules['math'] = fake\ndef square(x):\n    return 0",
        "import math\nassert math.isclose(square(3), 9)",
    ),
    "library method replaced": (
        "import numpy as np\nclass Box(list):\n    pass\n"
        "def fake(self, other):\n    return True\nBox.__eq__ = fake\ndef square(x):\n    return Box([0])",
        "assert square(3) == [9]",
    ),
    "ast transformer drops the asserts": (
        "import ast\nclass Drop(ast.NodeTransformer):\n"
        "    def visit_Assert(self, node):\n        return None\n"
        "get_ipython().ast_transformers.append(Drop())\ndef square(x):\n    return 0",
        "assert square(3) == 9",
    ),
    "input transformer edits the test": (
        "get_ipython().input_transformers_post.append(lambda lines: [l.replace('9', '0') for l in lines])\n"
        "def square(x):\n    return 0",
        "assert square(3) == 9",
    ),
    "fake sentinel with the id from history": (
        "def square(x):\n    text = get_ipython().user_ns['In'][-1]\n"
        "    tid = text.split()[2]\n    (lambda: 'aifkit-end ' + tid).__code__\n    return 0",
        "assert square(3) == 9",
    ),
    "test's code replayed after a fix": (
        "import sys\ncaught = []\ndef square(x):\n    caught.append(sys._getframe(1).f_code)\n    return 0",
        "assert square(3) == 9",
    ),
    "expected value read from IPython's history": (
        "import re\ndef square(x):\n    for text in reversed(get_ipython().user_ns['In']):\n"
        "        m = re.search(r'square\\(%d\\) == (\\d+)' % x, text)\n"
        "        if m:\n            return int(m.group(1))\n    return 0",
        "assert square(3) == 9",
    ),
    "expected value read from linecache": (
        "import linecache, re\ndef square(x):\n    for entry in list(linecache.cache.values()):\n"
        "        m = re.search(r'square\\(%d\\) == (\\d+)' % x, ''.join(entry[2]))\n"
        "        if m:\n            return int(m.group(1))\n    return 0",
        "assert square(3) == 9",
    ),
    "expected value read from the test's constants": (
        "import sys\ndef square(x):\n    consts = sys._getframe(1).f_code.co_consts\n"
        "    return max(c for c in consts if type(c) is int)",
        "assert square(3) == 9",
    ),
    "input transformer keeps the test's text": (
        "seen = []\nget_ipython().input_transformers_post.append(lambda lines: seen.extend(lines) or lines)\n"
        "def square(x):\n    return 9 if any('== 9' in line for line in seen) else 0",
        "assert square(3) == 9",
    ),
    "event callback keeps the test's text": (
        "seen = []\nget_ipython().events.register('pre_run_cell', lambda info: seen.append(info.raw_cell))\n"
        "def square(x):\n    return 9 if any('== 9' in cell for cell in seen) else 0",
        "assert square(3) == 9",
    ),
    "expected value read from the kernel's request": (
        "import re\ndef square(x):\n    code = get_ipython().kernel.get_parent()['content']['code']\n"
        "    m = re.search(r'square\\(%d\\) == (\\d+)' % x, code)\n    return int(m.group(1)) if m else 0",
        "assert square(3) == 9",
    ),
    "expected value read from the cell's ExecutionInfo": (
        "import re\ndef square(x):\n    code = get_ipython().displayhook.exec_result.info.raw_cell\n"
        "    m = re.search(r'square\\(%d\\) == (\\d+)' % x, code)\n    return int(m.group(1)) if m else 0",
        "assert square(3) == 9",
    ),
    "expected value read from the kernel's frames": (
        "import inspect, re\ndef square(x):\n    frame = inspect.currentframe()\n"
        "    while frame is not None:\n        for value in frame.f_locals.values():\n"
        "            m = re.search(r'square\\(%d\\) == (\\d+)' % x, value) if isinstance(value, str) else None\n"
        "            if m:\n                return int(m.group(1))\n        frame = frame.f_back\n    return 0",
        "assert square(3) == 9",
    ),
    "expected value read by code that claims an installed file": (
        "import sys, types, numpy\ndef peek(x):\n    f = sys._getframe(1)\n"
        "    while f is not None and not any(type(c) is int for c in f.f_code.co_consts):\n"
        "        f = f.f_back\n    return max(c for c in f.f_code.co_consts if type(c) is int)\n"
        "square = types.FunctionType(peek.__code__.replace(co_filename=numpy.__file__), {'sys': sys})",
        "assert square(3) == 9",
    ),
    "expected value read by code whose file name is a lying str": (
        "import sys, types\nS = type('S', (str,), {'startswith': lambda s, *a: True, "
        "'__hash__': str.__hash__})\ndef peek(x):\n"
        "    f = sys._getframe(1)\n"
        "    while f is not None and not any(type(c) is int for c in f.f_code.co_consts):\n"
        "        f = f.f_back\n    return max(c for c in f.f_code.co_consts if type(c) is int)\n"
        "square = types.FunctionType(peek.__code__.replace(co_filename=S('x')), {'sys': sys})",
        "assert square(3) == 9",
    ),
    "partial score as a lying number": (
        "Two = type('Two', (float,), {})\ndef square(x):\n    return Two(2)",
        "square(3)",
    ),
}


@pytest.mark.skipif(os.geteuid() != 0, reason="the sandbox's own uid needs root")
def test_forged_passes_get_no_proof(tmp_path: Path) -> None:
    """Does each attack on the test itself leave the test without a proof (no points)?"""
    names = list(FORGERIES)
    replay = "square = lambda x: x * x\nfor code in caught:\n    exec(code)"
    for name in names:
        answer, test = FORGERIES[name]
        cells = [answer, test] + ([replay] if "replayed" in name else [])
        run = _run(cells, tmp_path / name.replace(" ", "-"))
        cell = run.cells[1]
        if name.startswith("partial score"):  # it ran, but its value is no number: zero
            assert cell.proven and cell.value is not None and math.isnan(cell.value), cell
            continue
        assert not cell.proven, f"{name}: proven\n{_text(run, 1)}\n{run.kernel_log[-1500:]}"


@pytest.mark.skipif(os.geteuid() != 0, reason="the sandbox's own uid needs root")
def test_honest_tests_are_proven_with_their_value(tmp_path: Path) -> None:
    """Comparisons, library calls, generators, tensors and a partial score still work."""
    answer = (
        "import numpy as np\nfrom dataclasses import dataclass\n"
        "def square(x):\n    return x * x\n"
        "def scaled(v):\n    return np.asarray(v) * 2.0\n"
        "@dataclass\nclass Point:\n    x: int\n    y: int\n"
    )
    tests = [
        "assert square(3) == 9, 'square(3) should be 9'\n"
        "assert all(square(x) == x * x for x in range(4))",
        "import numpy as np\nnp.testing.assert_allclose(scaled([1, 2]), [2.0, 4.0])\n"
        "assert np.allclose(scaled(np.arange(3)), [0, 2, 4]) and 1 < square(2) <= 4",
        "p = Point(1, 2)\nassert isinstance(p, Point) and (p.x, p.y) == (1, 2)",
        "points = 0\npoints += 1 if square(2) == 4 else 0\npoints += 0.5\npoints",
    ]
    run = _run([answer, *tests], tmp_path, tests={1, 2, 3, 4})
    for index in (1, 2, 3):
        assert run.cells[index].proven, (
            f"test {index}: {_text(run, index)}\n{run.kernel_log[-2000:]}"
        )
        assert run.cells[index].value is None
    assert run.cells[4].proven and run.cells[4].value == 1.5, _text(run, 4)
    assert not run.blocked, run.blocked
