"""Hostile and broken submissions, graded for real in the bubblewrap sandbox.

Every case goes through both paths: aifkit's, ``aifkit grade autograde --jobs 2`` on one copy of
the course, and one stock ``nbgrader autograde`` (the course's nbgrader_config.py) on another;
each batch has honest canaries. Each case asserts that its score is no higher than the honest
work it contains deserves, that both paths give the same score and the same flags (read back
from each gradebook), and that nothing outside its own submission changed: the source and
release notebooks, a canary file, the other students' grades, no process left behind, no
connection reached a server on 127.0.0.1. Cases that wait for another part of
issue #11 (the in-kernel guard, intake, feedback) are strict xfails naming it.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import hashlib
import os
import socket
import subprocess
import sys
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
    answer_grade,
    gradebook_scores,
    gradebook_view,
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
    pytest.mark.timeout(1800),  # the module's one fixture grades 86 submissions twice
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
    files: dict[str, str] | None = None  # support files placed in the submission folder
    link: str | None = None  # the notebook is a symbolic link to this path ({root} expanded)
    forbidden: tuple[str, ...] = ()  # texts that must not appear in the autograded outputs
    needs: str | None = None  # the part of issue #11 this case waits for (a strict xfail)


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
PATCH_BOTH = (
    "import math\nimport numpy.testing\nmath.isclose = lambda *a, **k: True\n"
    "numpy.testing.assert_allclose = lambda *a, **k: None\n"
)
MODULE_PATCH = "import math, numpy.testing\\nmath.isclose = lambda *a, **k: True\\nnumpy.testing.assert_allclose = lambda *a, **k: None\\n"
FAKE_NUMPY = (
    "import math\nmath.isclose = lambda *a, **k: True\n"
    "class testing:\n    @staticmethod\n    def assert_allclose(*a, **k):\n        return None\n"
)
REVERSED, BASE64 = HIDDEN_LINE[::-1], base64.b64encode(HIDDEN_LINE.encode()).decode()


def _mean(code: str) -> dict[str, str]:
    """An answer cell ``mean`` that runs ``code`` first and then answers wrongly."""
    return {"mean": f"{code}\ndef mean(xs):\n    return 0"}


def _raw_test_cell(nb: nbformat.NotebookNode) -> None:
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == "test_square":
            cell.cell_type, cell.source = "raw", "pass"
            cell.pop("outputs", None)
            cell.pop("execution_count", None)


def _pad(nb: nbformat.NotebookNode, count: int) -> None:
    nb.cells.extend(nbformat.v4.new_markdown_cell("") for _ in range(count))


def _fake_locked(nb: nbformat.NotebookNode) -> None:
    cell = nbformat.v4.new_code_cell(PATCH_BOTH)
    cell.metadata["nbgrader"] = {
        "grade_id": "helper",
        "locked": True,
        "grade": False,
        "solution": False,
        "schema_version": 3,
        "task": False,
    }
    nb.cells.insert(2, cell)


def _prefilled(nb: nbformat.NotebookNode) -> None:
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = [
                nbformat.v4.new_output(
                    "stream", name="stdout", text="aifkit-proof-" + "0" * 32 + "\n"
                )
            ]
            cell.execution_count = 1


CASES.update(
    {
        # code that runs without being in a cell
        "module_written_imported": Case(
            0,
            _mean(
                "import importlib, pathlib\nname = 'hel' + 'per'\n"
                f"pathlib.Path(name + '.py').write_text('{MODULE_PATCH}')\n"
                "importlib.import_module(name)"
            ),
        ),
        "module_in_tmp_sys_path": Case(
            0,
            _mean(
                "import os, sys\nos.makedirs('/tmp/m', exist_ok=True)\n"
                f"open('/tmp/m/' + 'zz' + '.py', 'w').write('{MODULE_PATCH}')\n"
                "sys.path.insert(0, '/tmp/m')\n__import__('z' + 'z')"
            ),
        ),
        "support_numpy_py": Case(0, _mean("import numpy as np"), files={"numpy.py": FAKE_NUMPY}),
        "support_numpy_package": Case(
            0,
            _mean("import numpy as np"),
            files={"numpy/__init__.py": FAKE_NUMPY},
        ),
        "runpy_file": Case(
            0,
            _mean(
                f"open('p.py', 'w').write('{MODULE_PATCH}')\nimport runpy\nrunpy.run_path('p.py')"
            ),
        ),
        "timeit_runs_text": Case(
            0, _mean(f"import timeit\ntimeit.timeit('{MODULE_PATCH}', number=1)")
        ),
        "interactive_interpreter": Case(
            0, _mean(f"import code\ncode.InteractiveInterpreter().runsource('{MODULE_PATCH}')")
        ),
        "pickle_reduce": Case(
            0,
            _mean(
                "import math, operator, pickle\nclass P:\n    def __reduce__(self):\n"
                "        return (setattr, (math, 'is' + 'close', operator.is_not))\n"
                "pickle.loads(pickle.dumps(P()))"
            ),
        ),
        # objects built without class syntax
        "type_eq_true": Case(
            0,
            {
                "square": "Yes = type('Yes', (float,), {'__eq__': lambda s, o: True, "
                "'__hash__': float.__hash__})\ndef square(x):\n    return Yes(0)"
            },
        ),
        "type_eq_computed_key": Case(
            0,
            {
                "square": "ns = {'__' + 'eq' + '__': lambda s, o: True, '__hash__': float.__hash__}\n"
                "Yes = type('Yes', (float,), ns)\ndef square(x):\n    return Yes(0)"
            },
        ),
        "types_new_class": Case(
            0,
            {
                "square": "import types\nYes = types.new_class('Yes', (float,), exec_body=lambda ns: "
                "ns.update({'__eq__': lambda s, o: True, '__hash__': float.__hash__}))\n"
                "def square(x):\n    return Yes(0)"
            },
        ),
        "setattr_eq_on_class": Case(
            0,
            {
                "square": "class Num(float):\n    pass\nsetattr(Num, '__e' + 'q__', lambda s, o: True)\n"
                "Num.__hash__ = float.__hash__\ndef square(x):\n    return Num(0)"
            },
        ),
        # builtins and modules patched through computed names
        "setattr_computed": Case(
            0,
            _mean(
                "import operator\nsetattr(__import__('ma' + 'th'), 'is' + 'close', operator.is_not)\n"
                "setattr(__import__('numpy').testing, 'assert_' + 'allclose', operator.is_not)"
            ),
        ),
        "vars_module_patch": Case(
            0,
            _mean(
                "import operator\nvars(__import__('ma' + 'th'))['is' + 'close'] = operator.is_not\n"
                "vars(__import__('numpy').testing)['assert_all' + 'close'] = operator.is_not"
            ),
        ),
        "dunder_dict_patch": Case(
            0,
            _mean(
                "import math, operator, numpy\nmath.__dict__['is' + 'close'] = operator.is_not\n"
                "numpy.testing.__dict__['assert_all' + 'close'] = operator.is_not"
            ),
        ),
        "sys_modules_swap": Case(
            0,
            _mean(
                "import sys, types, operator\nfake = types.ModuleType('math')\n"
                "fake.isclose = operator.is_not\nsys.modules['ma' + 'th'] = fake\n"
                "import numpy\nsetattr(numpy.testing, 'assert_' + 'allclose', operator.is_not)"
            ),
        ),
        "partial_setattr": Case(
            0,
            _mean(
                "import math, numpy, operator\nfrom functools import partial\n"
                "partial(setattr, math)('is' + 'close', operator.is_not)\n"
                "partial(setattr, numpy.testing)('assert_' + 'allclose', operator.is_not)"
            ),
        ),
        "code_claims_installed_file": Case(
            0,
            {
                "square": "import sys, types, numpy\ndef peek(x):\n    f = sys._getframe(1)\n"
                "    while f is not None and not any(type(c) is int for c in f.f_code.co_consts):\n"
                "        f = f.f_back\n    return max(c for c in f.f_code.co_consts if type(c) is int)\n"
                "square = types.FunctionType(peek.__code__.replace(co_filename=numpy.__file__), "
                "{'sys': sys})"
            },
        ),
        "code_file_name_lies": Case(
            0,
            {
                "square": "import sys, types\nS = type('S', (str,), {'startswith': lambda s, *a: True, "
                "'__eq__': lambda s, o: True, '__hash__': str.__hash__})\n"
                "def peek(x):\n    return sys._getframe(1).f_back.f_code.co_consts[-1]\n"
                "square = types.FunctionType(peek.__code__.replace(co_filename=S('x')), {'sys': sys})"
            },
        ),
        "gc_walk_scheduled_on_the_event_loop": Case(
            0,
            {
                "square": "import asyncio, gc, itertools\nseen = []\n"
                "asyncio.get_event_loop().call_soon(seen.extend, "
                "itertools.starmap(getattr(gc, 'get_' + 'objects'), [()]))\n"
                "def square(x):\n    return 0"
            },
        ),
        "function_code_swap": Case(
            0,
            {
                "mean": "import numpy\nf = numpy.testing.assert_allclose\n"
                "setattr(f, '__co' + 'de__', (lambda *a, **k: None).__code__)\n"
                "def mean(xs):\n    return 2.0"
            },
        ),
        "function_defaults_swap": Case(
            0,
            {
                "mean": "import numpy\nf = numpy.testing.assert_allclose\n"
                "setattr(f, '__def' + 'aults__', (1e9, 1e9, True, '', True, False))\n"
                "def mean(xs):\n    return 2.0"
            },
        ),
        "displayhook_swallowed": Case(
            0,
            {
                "square": "setattr(__import__('s' + 'ys'), 'display' + 'hook', lambda value: None)\n"
                "def square(x):\n    return 0"
            },
        ),
        "threading_timer_patch": Case(
            0,
            _mean(
                "import threading, operator\nthreading.Timer(0.2, lambda: setattr("
                "__import__('ma' + 'th'), 'is' + 'close', operator.is_not)).start()"
            ),
        ),
        # exec and eval without the words
        "getattr_builtin_exec": Case(
            0, _mean(f"import builtins\ngetattr(builtins, 'ex' + 'ec')('{MODULE_PATCH}')")
        ),
        "builtins_dict_eval": Case(
            0,
            _mean(
                "import builtins\nbuiltins.__dict__['ev' + 'al']("
                "\"setattr(__import__('math'), 'isclose', lambda *a, **k: True)\")"
            ),
        ),
        "compile_function_type": Case(
            0,
            _mean(
                "import types\nc = getattr(__builtins__, 'comp' + 'ile', None) or "
                "__import__('builtins').__dict__['comp' + 'ile']\n"
                f"types.FunctionType(c('{MODULE_PATCH}', 'x', 'ex' + 'ec'), {{}})()"
            ),
        ),
        # the proof and the history
        "frame_reads_history_reversed": Case(
            2,
            {
                "square": "def square(x):\n    import sys\n    f = sys._getframe(1)\n"
                "    print(f.f_globals.get('_ih', [''])[-1][::-1])\n    return x * x"
            },
            forbidden=(REVERSED,),
        ),
        "history_base64": Case(
            2,
            {
                "square": "def square(x):\n    import base64, sys\n"
                "    src = sys._getframe(1).f_globals.get('In', [''])[-1]\n"
                "    print(base64.b64encode(src.encode()).decode())\n    return x * x"
            },
            forbidden=(BASE64,),
        ),
        "frame_code_consts": Case(
            0,
            {
                "square": "def square(x):\n    import sys\n"
                "    print(sys._getframe(1).f_code.co_consts)\n    return 0"
            },
        ),
        # structure
        "symlink_notebook": Case(0, link="{root}/source/adv/adv.ipynb"),
        "symlink_support_file": Case(
            0,
            {"square": "print(open('data.txt', 'rb').read()[:64])\ndef square(x):\n    return 0"},
            files={"data.txt": "@link:{root}/gradebook.db"},
            forbidden=("SQLite format",),
        ),
        "huge_notebook": Case(AUTOGRADED_POINTS, base="honest", mutate=lambda nb: _pad(nb, 5_000)),
        "many_code_cells": Case(
            AUTOGRADED_POINTS,
            base="honest",
            mutate=lambda nb: nb.cells.extend(
                nbformat.v4.new_code_cell("x = 1") for _ in range(60)
            ),
        ),
        "big_source_cell": Case(
            AUTOGRADED_POINTS,
            base="honest",
            mutate=lambda nb: nb.cells.append(nbformat.v4.new_code_cell("#" + "x" * 1_000_000)),
        ),
        "deep_nesting": Case(0, {"square": "x = " + "(" * 50_000 + "1" + ")" * 50_000}),
        "null_bytes": Case(0, {"square": "def square(x):\n    return x * x\x00"}),
        "fake_locked_cell": Case(0, mutate=_fake_locked),
        "test_cell_raw": Case(0, mutate=_raw_test_cell),
        "homoglyph_grade_id": Case(
            0, mutate=_set_meta("test_square", grade_id="test_squаre", source="pass")
        ),
        "prefilled_outputs": Case(0, mutate=_prefilled),
        # floods
        "stderr_flood": Case(
            0, {"square": "import sys\nwhile True:\n    sys.stderr.write('y' * 10000)"}
        ),
        "display_flood": Case(
            0,
            {
                "square": "from IPython.display import HTML, display\n"
                "for _ in range(10**6):\n    display(HTML('z' * 10000))"
            },
        ),
        "tmpfs_flood": Case(
            0,
            {
                "square": "import os\nwrote = 0\nfor folder in ('/tmp', '/dev/shm'):\n"
                "    for i in range(8):\n        try:\n"
                "            with open(f'{folder}/f{i}', 'wb') as out:\n"
                "                out.write(b'0' * (128 * 2**20))\n            wrote += 128\n"
                "        except OSError:\n            break\nprint(f'WROTE {wrote} MB')"
            },
            forbidden=("WROTE 2048 MB",),
        ),
        # item 2: a manually graded code answer whose code raised scores 0 at once
        "code_answer_raises": Case(
            AUTOGRADED_POINTS, {"describe": "raise RuntimeError('not yet')"}, base="honest"
        ),
    }
)


CANARIES = {"honest_a": AUTOGRADED_POINTS, "honest_b": AUTOGRADED_POINTS, "blank": 0.0}


def _digest(paths: list[Path]) -> str:
    sha = hashlib.sha256()
    for path in sorted(paths):
        sha.update(str(path).encode() + path.read_bytes())
    return sha.hexdigest()


STOCK_CONFIG = """\
c = get_config()
c.CourseDirectory.root = {root!r}
c.CourseDirectory.course_id = "advcourse"
c.CourseDirectory.db_url = "sqlite:///{root}/gradebook.db"
c.Exchange.root = "{root}/exchange"
from aifkit.grading.config import configure
from aifkit.grading.stock_intake import exclude_unsafe_submissions
configure(c)
exclude_unsafe_submissions(c)
c.SandboxedExecute.cell_timeout = {limits.cell_timeout_s}
c.SandboxedExecute.notebook_timeout = {limits.notebook_timeout_s}
c.SandboxedExecute.memory_mb = {limits.memory_mb}
c.SandboxedExecute.processes = {limits.processes}
"""


def _submit_all(course: Course, values: dict[str, str], cases: set[str]) -> None:
    """These cases and every canary into ``course``'s submitted folder ({root} etc. expanded)."""

    def expand(text: str) -> str:
        for key, value in values.items():
            text = text.replace("{" + key + "}", value)
        return text

    release = release_notebook(course)
    for student, case in CASES.items():
        if student not in cases:
            continue
        if case.raw is not None:
            submit(course, student, raw=case.raw, name=case.name)
            continue
        nb = honest(course) if case.base.startswith("honest") else with_answers(release, **WRONG)
        nb = with_answers(nb, **{k: expand(v) for k, v in (case.answers or {}).items()})
        if case.mutate is not None:
            case.mutate(nb)
        if case.base == "honest-v3":
            nb = nbformat.convert(nb, 3)
        folder = submit(course, student, nb, name=case.name)
        if case.link is not None:
            (folder / case.name).unlink()
            (folder / case.name).symlink_to(expand(case.link))
        for name, text in (case.files or {}).items():
            target = folder / name
            target.parent.mkdir(parents=True, exist_ok=True)
            if text.startswith("@link:"):
                target.symlink_to(expand(text[len("@link:") :]))
            else:
                target.write_text(text, encoding="utf-8")
    for student in ("honest_a", "honest_b"):
        submit(course, student, with_answers(honest(course), describe="print('grows')"))
    submit(course, "blank", release)


def _stock_autograde(course: Course, log: Path) -> subprocess.Popen[bytes]:
    """One stock ``nbgrader autograde`` over every student, with the course's configuration,
    started in the background (it runs beside the aifkit batch: the two share no file)."""
    root = course.root
    (root / "nbgrader_config.py").write_text(
        STOCK_CONFIG.format(root=str(root), limits=LIMITS), encoding="utf-8"
    )
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    env.pop("AIFKIT_COURSE_ROOT", None)
    command = [str(bin_dir / "nbgrader"), "autograde", ASSIGNMENT, "--force"]
    with open(log, "wb") as out:
        return subprocess.Popen(command, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT)


@pytest.fixture(scope="module")
def batch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Grade every case and canary through both paths; keep what the checks need."""
    ours_root = tmp_path_factory.mktemp("adversarial")
    stock_root = tmp_path_factory.mktemp("adversarial-stock")
    course = make_course(ours_root, code_answer=True)
    stock = make_course(stock_root, code_answer=True)
    canary = tmp_path_factory.mktemp("outside") / "canary.txt"
    canary.write_text("untouched", encoding="utf-8")
    canary.chmod(0o666)  # even a world-writable file outside the sandbox must stay untouched
    server = socket.create_server(("127.0.0.1", 0))
    connections: list[Any] = []

    def accept() -> None:
        with contextlib.suppress(OSError):  # closed at the end of the batch: nobody came
            connections.append(server.accept())

    threading.Thread(target=accept, daemon=True).start()
    port, path = str(server.getsockname()[1]), str(canary)
    _submit_all(course, {"root": str(ours_root), "canary": path, "port": port}, set(CASES))
    _submit_all(stock, {"root": str(stock_root), "canary": path, "port": port}, set(CASES))
    protected = [
        p
        for root in (ours_root, stock_root)
        for p in sorted((root / "source").rglob("*")) + sorted((root / "release").rglob("*"))
        if p.is_file()
    ]
    before = _digest(protected)
    stock_log = stock_root / "stock-autograde.log"
    stock_run = _stock_autograde(stock, stock_log)
    try:
        results = autograde(course, ASSIGNMENT, AutogradeOptions(jobs=2, limits=LIMITS))
        stock_run.wait(timeout=1800)
    finally:
        if stock_run.poll() is None:
            stock_run.kill()
    server.close()
    yield {
        "course": course,
        "stock": stock,
        "stock_log": stock_log.read_text(encoding="utf-8", errors="replace")[-9000:],
        "results": {r.student: r for r in results},
        "protected_changed": _digest(protected) != before,
        "canary": canary.read_text(encoding="utf-8"),
        "connections": connections,
        "scores": gradebook_scores(course),
        "ours": gradebook_view(course),
        "theirs": gradebook_view(stock),
    }


def _autograded_outputs(course: Course, student: str) -> str:
    """Every output of the autograded notebook (its sources hold hidden tests, as in nbgrader)."""
    folder = course.folder("autograded", student, ASSIGNMENT)
    texts = []
    for path in folder.glob("*.ipynb"):
        nb = nbformat.read(str(path), as_version=4)
        texts += [str(o) for c in nb.cells for o in c.get("outputs", [])]
    return "\n".join(texts)


def _params() -> list[Any]:
    return [
        pytest.param(
            student,
            marks=pytest.mark.xfail(reason=f"needs {case.needs}", strict=True),
        )
        if case.needs
        else student
        for student, case in sorted(CASES.items())
    ]


@pytest.mark.parametrize("student", _params())
def test_no_higher_than_deserved_and_nothing_outside_changed(
    batch: dict[str, Any], student: str
) -> None:
    """Does the attack score no more than its honest part, the same in both paths, and leave
    everything else alone?"""
    case = CASES[student]
    result: SubmissionResult = batch["results"][student]
    assert result.status != "error", f"the grader failed on {student}: {result.message}"
    assert result.score <= case.deserved, f"{student} scored {result.score}: {result.tests}"
    assert batch["scores"].get(student, 0.0) <= case.deserved
    assert result.max_score == AUTOGRADED_POINTS, "points come from the gradebook, not the notebook"
    if case.status is not None:
        assert result.status == case.status or result.status in ("flagged", "graded")
    ours = batch["ours"].get(student, (0.0, False))
    if student not in batch["theirs"]:  # refused by the stock path's intake before any copy
        assert ours[0] == 0.0, f"{student}: refused by stock intake, scored {ours} by aifkit"
    elif not batch["stock"].folder("autograded", student, ASSIGNMENT).exists():
        # nbgrader's own conversion failed before aifkit's hooks ran (e.g. its KeyError on a
        # deleted cell): the submission is left to a human with nothing scored, fail-closed
        assert batch["theirs"][student] == (0.0, True), batch["theirs"][student]
    else:
        theirs = batch["theirs"][student]
        assert theirs[0] <= case.deserved, f"stock nbgrader gave {student} {theirs[0]}"
        assert ours == theirs, (
            f"{student}: aifkit {ours} != stock nbgrader {theirs}\n{batch['stock_log']}"
        )
    assert not batch["protected_changed"], "source or release files changed"
    assert batch["canary"] == "untouched", "a file outside the sandbox was written"
    assert not batch["connections"], "learner code reached a server on 127.0.0.1"
    for course in (batch["course"], batch["stock"]):
        outputs = _autograded_outputs(course, student)
        if student != "hidden_tests_via_history":  # that one prints it: see the feedback test
            assert HIDDEN_LINE not in outputs
        for text in case.forbidden:
            assert text not in outputs, f"{text[:40]!r} reached {course.root.name}'s outputs"
    for canary, points in CANARIES.items():
        assert batch["scores"][canary] == points, f"canary {canary} changed: {batch['scores']}"
        assert batch["theirs"][canary][0] == points, f"stock canary {canary}: {batch['theirs']}"


def test_raised_code_answer_scores_zero_without_review(batch: dict[str, Any]) -> None:
    """Is a graded code answer that raised, or left as released, 0 at once in both paths (as
    nbgrader's determine_grade does), while a working one waits for a human?"""
    for course in (batch["course"], batch["stock"]):
        assert answer_grade(course, "code_answer_raises", "describe") == (0.0, False)
        assert answer_grade(course, "blank", "describe") == (0.0, False)
        assert answer_grade(course, "honest_a", "describe") == (None, True)
    answers = {a.grade_id: a for a in batch["results"]["code_answer_raises"].answers}
    assert "raised" in answers["describe"].detail


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


def test_at_least_60_cases() -> None:
    assert len(CASES) >= 60
