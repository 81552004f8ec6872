"""Static inspection of learners' cells for code that could subvert the autograder's checks.

Learner code runs in the same IPython kernel as nbgrader's hidden tests, so it can patch the
kernel, the comparison helpers the tests call or the builtins they rely on, and make failing
tests look passed. The grader runs this inspector *outside* the kernel over the cells a learner
can edit; any finding sends the submission to a human instead of trusting its autograded score.

Each cell is first turned into plain Python by IPython's own input transformer (so ``%magic``,
``%%magic`` and ``!cmd`` appear as the ``get_ipython()`` calls the kernel would run) and then
walked with :mod:`ast`. Line numbers therefore refer to the transformed code, which keeps the
lines of the cell except where a multi-line construct (a ``%%`` cell magic) is folded into one.
A cell that does not parse gets no finding: it fails at run time and runs nothing.

The rules, in the order the tables below give them:

1. magics other than ``%matplotlib``, ``%time``, ``%timeit``, ``%%time``, ``%%timeit``, and
   every ``!cmd`` shell escape; the code under ``%time``/``%timeit`` is inspected too;
2. IPython's shell and history names (``get_ipython``, ``In``, ``Out``, ``_ih``, ``_i3``...);
3. attributes that reach IPython's or the interpreter's internals (:data:`RUNTIME_ATTRIBUTES`);
4. dynamic-code builtins, process-ending or tracing functions and hazardous modules;
5. assignment to an attribute of an imported module (``math.isclose = ...``) or to an
   attribute named like a comparison helper (``m.assert_allclose = ...``);
6. rebinding, at module level, of builtins the tests rely on (``print``, ``AssertionError``...);
   also of names the instructor's read-only cells imported or defined (notebook only);
7. classes defining comparison or coercion methods that can make any check pass (``__eq__``...);
8. strings naming the grader (``NBGRADER``, ``AIFKIT``) or a Python file, and environment
   reads other than the job's own ``SLURM_``/``CUDA_``/... variables;
9. ``while True`` loops with no way out (no ``break``, ``return``, ``yield`` or ``raise``).

Honest beginner code (numpy, torch, matplotlib, classes with ``__init__``/``forward``, ``sum = 0``)
must pass clean: flagged submissions lose their autograded points until someone reviews them.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Collection, Iterable, Iterator, Mapping
from typing import Any

import nbformat
from IPython.core.inputtransformer2 import TransformerManager

from aifkit.grading.records import Suspicion

Hit = tuple[int, str, str]  # (line, construct, reason)

# --- Rule 1: magics -----------------------------------------------------------------------------

ALLOWED_LINE_MAGICS = frozenset({"matplotlib", "time", "timeit"})
ALLOWED_CELL_MAGICS = frozenset({"time", "timeit"})
MAGIC_REASON = "runs an IPython magic that can change the kernel the tests run in"
SHELL_REASON = "runs a shell command from the notebook"
MAGIC_METHODS = frozenset({"run_line_magic", "run_cell_magic", "system", "getoutput"})
MATPLOTLIB_ARGUMENT = re.compile(r"[\w.:/ -]*")  # a backend name: nothing for {}/$ to expand
TIMEIT_FLAGS, TIMEIT_VALUED = "tcqo", "nrpv"  # %timeit's getopt spec "n:r:tcp:qov:"
TIME_OPTION = "--no-raise-error"  # %time's only option (argparse accepts a prefix of it)

# --- Rule 2: IPython's shell and history ---------------------------------------------------------

IPYTHON_NAMES: dict[str, str] = {
    "get_ipython": "reaches the IPython shell, which can rewire how tests run and report",
    "__IPYTHON__": "detects or reaches the IPython shell the tests run in",
    "In": "reads the input history, which can reveal the hidden tests' code",
    "Out": "reads the output history of other cells, including the tests'",
    "_ih": "reads the input history, which can reveal the hidden tests' code",
    "_oh": "reads the output history of other cells, including the tests'",
    "_i": "reads the input history, which can reveal the hidden tests' code",
    "_ii": "reads the input history, which can reveal the hidden tests' code",
    "_iii": "reads the input history, which can reveal the hidden tests' code",
}
INPUT_HISTORY_NAME = re.compile(r"_i\d+")

# --- Rule 3: runtime internals ------------------------------------------------------------------

_HIDES_FAILURES = "which can hide failing tests"
RUNTIME_ATTRIBUTES: dict[str, str] = {
    "showtraceback": f"replaces IPython's traceback display, {_HIDES_FAILURES}",
    "_showtraceback": f"replaces the kernel's error reporting, {_HIDES_FAILURES}",
    "showsyntaxerror": f"replaces IPython's syntax-error display, {_HIDES_FAILURES}",
    "set_custom_exc": f"installs a custom exception handler in IPython, {_HIDES_FAILURES}",
    "custom_exceptions": f"changes which exceptions IPython handles specially, {_HIDES_FAILURES}",
    "input_transformers_cleanup": "rewrites the source of later cells, tests included",
    "input_transformers_post": "rewrites the source of later cells, tests included",
    "input_transformer_manager": "rewrites the source of later cells, tests included",
    "ast_transformers": "rewrites the code of later cells, tests included",
    "run_cell": "runs code through the IPython shell, outside the learner's cell",
    "run_cell_async": "runs code through the IPython shell, outside the learner's cell",
    "run_code": "runs code through the IPython shell, outside the learner's cell",
    "run_ast_nodes": "runs code through the IPython shell, outside the learner's cell",
    "CustomTB": f"replaces IPython's traceback formatter, {_HIDES_FAILURES}",
    "InteractiveTB": f"replaces IPython's traceback formatter, {_HIDES_FAILURES}",
    "SyntaxTB": f"replaces IPython's traceback formatter, {_HIDES_FAILURES}",
    "excepthook": f"replaces the interpreter's exception hook, {_HIDES_FAILURES}",
    "displayhook": "replaces how results are displayed, which can fake test output",
    "user_ns": "reaches the kernel's namespace behind the tests' back",
    "user_global_ns": "reaches the kernel's namespace behind the tests' back",
    "settrace": "installs a tracer that can change code while the tests run",
    "setprofile": "installs a profiler hook that can change code while the tests run",
    "addaudithook": "installs an audit hook that runs code on interpreter events",
    "_getframe": "reaches the caller's stack frame and its variables",
    "f_back": "walks the stack to other frames and their variables",
    "f_globals": "reaches a frame's global variables, such as the tests'",
    "f_locals": "reaches a frame's local variables, such as the tests'",
    "f_builtins": "reaches the builtins a frame uses",
    "f_trace": "installs a tracer on a frame, which can change code while it runs",
    "tb_frame": "reaches the stack frame of an exception, and through it other code",
    "gi_frame": "reaches a generator's stack frame, and through it other code",
    "cr_frame": "reaches a coroutine's stack frame, and through it other code",
    "__code__": "reads or replaces a function's compiled code",
    "__globals__": "reaches the global variables a function sees, such as the tests'",
    "__closure__": "reaches or alters variables captured by a function",
    "__defaults__": "changes a function's default arguments behind its back",
    "__kwdefaults__": "changes a function's default arguments behind its back",
    "__builtins__": "reaches the builtins that the tests also use",
    "__dict__": "reads or writes an object's or module's namespace directly",
    "__self__": "reaches the module or object behind a builtin (print.__self__ is builtins)",
    "__subclasses__": "walks the class hierarchy to reach objects not otherwise importable",
    "__bases__": "walks or changes the class hierarchy",
    "__base__": "walks the class hierarchy to reach objects not otherwise importable",
    "__mro__": "walks the class hierarchy to reach objects not otherwise importable",
    "__reduce__": "controls unpickling, which can run arbitrary code",
    "__reduce_ex__": "controls unpickling, which can run arbitrary code",
    "__setattr__": "sets attributes around normal assignment, e.g. on modules",
    "__delattr__": "deletes attributes around normal deletion, e.g. on modules",
    "__getattribute__": "reads attributes around normal access, hiding what is reached",
    "__import__": "imports a module by a computed name",
    "__loader__": "reaches the import machinery",
    "get_ipython": IPYTHON_NAMES["get_ipython"],
    "InteractiveShell": IPYTHON_NAMES["get_ipython"],
}
STORE_ONLY_ATTRIBUTES: dict[str, str] = {
    "__class__": "changes an object's class, so it can pass type checks it should fail",
}
EVENT_METHODS = frozenset({"register", "unregister", "callbacks"})
EVENTS_REASON = "registers code that IPython runs around every cell, tests included"

# --- Rule 4: dynamic code, process control and hazardous modules -------------------------------

DYNAMIC_BUILTINS: dict[str, str] = {
    "exec": "runs code from a string, which hides what it does from inspection",
    "eval": "runs code from a string, which hides what it does from inspection",
    "compile": "builds code from a string, which hides what it does from inspection",
    "__import__": "imports a module by a computed name",
    "globals": "reads or writes the notebook's global variables by name",
    "locals": "reads or writes variables by name",
    "vars": "reads or writes an object's or module's namespace directly",
    "setattr": "sets an attribute by a computed name, e.g. on a module the tests use",
    "delattr": "deletes an attribute by a computed name, e.g. from a module the tests use",
    "getattr": "reads an attribute by a computed name, which hides what is reached",
    "breakpoint": "starts a debugger hook inside the kernel",
    "exit": "stops the kernel, so the tests never run",
    "quit": "stops the kernel, so the tests never run",
}

_RUNS_CODE = "can run code that this inspection cannot see"
FLAGGED_MODULES: dict[str, str] = {
    "importlib": "imports modules by computed names",
    "ctypes": "manipulates interpreter memory directly",
    "cffi": "manipulates interpreter memory directly",
    "builtins": "reaches the builtins that the tests also use",
    "IPython": "reaches the IPython shell the tests run in",
    "ipykernel": "reaches the kernel the tests run in",
    "jupyter_client": "reaches the kernel the tests run in",
    "traitlets": "reconfigures the IPython shell the tests run in",
    "nbformat": "reads or writes notebooks, such as the one being graded",
    "nbclient": "runs notebooks, such as the one being graded",
    "nbgrader": "reaches the grader itself",
    "inspect": "reaches stack frames and the source of other code",
    "gc": "finds any live object, the IPython shell and the tests' helpers included",
    "subprocess": "starts other programs",
    "multiprocessing": "starts other processes",
    "concurrent": "starts threads or processes that outlive the cell",
    "threading": "starts threads that outlive the cell and can run during the tests",
    "_thread": "starts threads that outlive the cell and can run during the tests",
    "signal": "installs signal handlers or sends signals to the kernel",
    "socket": "opens network connections",
    "urllib": "opens network connections",
    "urllib3": "opens network connections",
    "requests": "opens network connections",
    "httpx": "opens network connections",
    "http": "opens network connections",
    "pty": "starts other programs",
    "posix": "exposes the operating system's process calls directly",
    "pickle": f"unpickling {_RUNS_CODE}",
    "marshal": f"loads compiled code, which {_RUNS_CODE}",
    "dill": f"unpickling {_RUNS_CODE}",
    "cloudpickle": f"unpickling {_RUNS_CODE}",
    "shelve": f"unpickling {_RUNS_CODE}",
    "copyreg": "changes how objects are pickled and copied",
    "code": f"runs an interpreter that {_RUNS_CODE}",
    "codeop": f"compiles code that {_RUNS_CODE}",
    "runpy": f"runs modules or files, which {_RUNS_CODE}",
    "pdb": "starts a debugger, which traces and can change running code",
    "bdb": "starts a debugger, which traces and can change running code",
    "trace": "traces running code, which can change it while the tests run",
    "unittest.mock": "replaces objects with mocks that compare equal to anything",
    "mock": "replaces objects with mocks that compare equal to anything",
}
SAFE_SUBMODULES = frozenset({"IPython.display"})  # display(), clear_output(): honest notebooks
# Names taken to be these imports when a cell uses them without importing them itself (another
# cell did): only aliases nobody uses for a variable.
COMMON_ALIASES: dict[str, str] = {
    "np": "numpy",
    "numpy": "numpy",
    "npt": "numpy.testing",
    "pd": "pandas",
    "plt": "matplotlib.pyplot",
    "mpl": "matplotlib",
    "torch": "torch",
    "nn": "torch.nn",
    "F": "torch.nn.functional",
    "math": "math",
    "os": "os",
    "sys": "sys",
    "builtins": "builtins",
    "importlib": "importlib",
    "subprocess": "subprocess",
    "ctypes": "ctypes",
    "multiprocessing": "multiprocessing",
    "threading": "threading",
    "IPython": "IPython",
    "ipykernel": "ipykernel",
}

_ENDS_KERNEL = "ends the kernel process, so the tests never run"
_STARTS_PROGRAM = "starts another program"
DANGEROUS_OBJECTS: dict[str, str] = {
    "os._exit": _ENDS_KERNEL,
    "os.abort": _ENDS_KERNEL,
    "os.kill": "sends a signal to a process, possibly the kernel",
    "os.killpg": "sends a signal to a process group, possibly the kernel's",
    "os.fork": "forks the kernel process",
    "os.forkpty": "forks the kernel process",
    "os.setsid": "detaches processes from the job",
    "os.setpgrp": "detaches processes from the job",
    "os.system": _STARTS_PROGRAM,
    "os.popen": _STARTS_PROGRAM,
    "sys.exit": "stops the cell and may stop the kernel before the tests run",
    "sys.modules": "replaces imported modules, such as the ones the tests use",
    "sys.settrace": RUNTIME_ATTRIBUTES["settrace"],
    "sys.setprofile": RUNTIME_ATTRIBUTES["setprofile"],
    "sys.excepthook": RUNTIME_ATTRIBUTES["excepthook"],
    "sys.displayhook": RUNTIME_ATTRIBUTES["displayhook"],
    "sys.breakpointhook": "installs code that runs on breakpoint()",
    "sys.unraisablehook": "replaces the interpreter's error hook",
    "sys.meta_path": "changes how imports are resolved, e.g. for the tests' modules",
    "sys.path_hooks": "changes how imports are resolved, e.g. for the tests' modules",
    "sys.monitoring": "installs monitoring callbacks that run while the tests run",
    "sys._current_frames": RUNTIME_ATTRIBUTES["_getframe"],
    "asyncio.create_subprocess_exec": _STARTS_PROGRAM,
    "asyncio.create_subprocess_shell": _STARTS_PROGRAM,
}
DANGEROUS_PREFIXES: dict[str, str] = {
    "os.exec": "replaces the kernel process with another program",
    "os.spawn": _STARTS_PROGRAM,
    "os.posix_spawn": _STARTS_PROGRAM,
}
STREAMS = frozenset({"sys.stdout", "sys.stderr", "sys.stdin"})
STREAM_REASON = "replaces a standard stream, which can hide or fake the tests' output"
STAR_REASON = "imports every public name, process-ending ones included, under bare names"

# --- Rule 5: patching -----------------------------------------------------------------------------

PATCH_REASON = "changes a library the tests also use, which can make wrong answers pass"
COMPARISON_HELPERS = frozenset(
    {
        "assert_allclose",
        "assert_almost_equal",
        "assert_approx_equal",
        "assert_array_almost_equal",
        "assert_array_equal",
        "assert_array_less",
        "assert_equal",
        "assert_raises",
        "allclose",
        "isclose",
        "array_equal",
        "array_equiv",
        "approx",
        "assertEqual",
        "assertTrue",
        "assertAlmostEqual",
    }
)
CONFIG_PREFIXES = ("torch.backends.", "pandas.options.")  # honest settings, not comparisons

# --- Rule 6: rebinding ----------------------------------------------------------------------------

PROTECTED_BUILTINS = frozenset(
    {
        "AssertionError",
        "Exception",
        "BaseException",
        "AttributeError",
        "TypeError",
        "ValueError",
        "isinstance",
        "issubclass",
        "type",
        "print",
        "abs",
        "round",
        "float",
        "int",
        "bool",
        "len",
        "all",
        "any",
        "repr",
        "hasattr",
        "exit",
        "quit",
    }
)
REBIND_REASON = "rebinds the builtin {name}, which the tests rely on to check answers"
PROTECTED_REASON = "rebinds {name}, which the instructor's read-only cells {how}; tests use it"

# --- Rule 7: comparison and coercion methods -----------------------------------------------------

COMPARISON_DUNDERS = frozenset(
    {
        "__eq__",
        "__ne__",
        "__lt__",
        "__le__",
        "__gt__",
        "__ge__",
        "__bool__",
        "__float__",
        "__int__",
        "__index__",
        "__abs__",
        "__sub__",
        "__rsub__",
        "__contains__",
        "__getattr__",
        "__array__",
        "__array_ufunc__",
        "__array_function__",
        "__torch_function__",
        "__instancecheck__",
        "__subclasscheck__",
    }
)
DUNDER_REASON = "defines how objects compare or convert, which can make any check pass"

# --- Rule 8: the grader's environment -------------------------------------------------------------

GRADER_MARKER = re.compile(r"nbgrader|aifkit", re.IGNORECASE)
MARKER_REASON = "mentions the grader, e.g. to behave differently while being graded"
PYTHON_FILE = re.compile(r"\.py\s*$")
PYTHON_FILE_REASON = "names a Python file, e.g. to write a module and import it unchecked"
ENV_KEY_PREFIXES = (
    "SLURM_",
    "CUDA_",
    "TIER",
    "OMP_",
    "MASTER_",
    "RANK",
    "LOCAL_RANK",
    "WORLD_SIZE",
)
ENVIRON = frozenset({"os.environ", "os.environb"})
GETENV = frozenset({"os.getenv", "os.getenvb"})
ENV_READ_METHODS = frozenset({"get", "pop"})
ENV_WRITE_METHODS = frozenset({"update", "__setitem__"})
ENV_REASON = "reads environment variables, e.g. to detect the grader"

# --- Rule 9: hanging loops ---------------------------------------------------------------------

LOOP_REASON = "loops forever with no break, so the kernel hangs until the grader's timeout"
LOOP_EXITS = (ast.Break, ast.Return, ast.Yield, ast.YieldFrom, ast.Raise)

NESTED_REASON = "is nested too deeply to inspect"
SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)
COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)
SENSITIVE_STRINGS = frozenset(RUNTIME_ATTRIBUTES) | COMPARISON_DUNDERS | {"__IPYTHON__"}


# --- Public API ----------------------------------------------------------------------------------


def inspect_source(
    source: str,
    *,
    protected: Mapping[str, str] | None = None,
    imports: Mapping[str, str] | None = None,
) -> list[Hit]:
    """Findings ``(line, construct, reason)`` for one cell's code, sorted by line.

    ``protected`` maps names that the instructor's read-only cells bind to what they bind
    (an import's qualified name, or ``""`` for a def or class); rebinding them is flagged.
    ``imports`` maps names that other cells import to their qualified names.
    """
    tree = _parse(source)
    if tree is None:
        return []
    try:
        inspector = _CellInspector(tree, protected or {}, imports or {})
        inspector.visit(tree)
        inspector.check_bindings()
    except RecursionError:
        return [(1, "nesting", f"the cell {NESTED_REASON}")]
    return _unique_sorted(inspector.hits)


def inspect_notebook(
    nb: nbformat.NotebookNode, notebook: str, *, trusted_ids: Collection[str] | None = None
) -> list[Suspicion]:
    """Findings in the code cells a learner can edit: answer cells and cells they added.

    Read-only (locked) and test cells from the instructor are trusted, and names they import or
    define are protected from rebinding. Their nbgrader metadata comes from the submission, so
    run this after nbgrader has overwritten read-only cells from the source (it drops unknown
    grade_ids), or pass ``trusted_ids``: the grade_ids of the source's read-only and test cells.
    """
    cells = [(i, c) for i, c in enumerate(nb.cells) if c.get("cell_type") == "code"]
    trusted = {i for i, c in cells if _is_trusted(c, trusted_ids)}
    trees = {i: _parse(_source(c)) for i, c in cells}
    protected = _defined_names(t for i, t in trees.items() if i in trusted)
    imports = {k: v for k, v in _defined_names(trees.values()).items() if v}
    findings: list[Suspicion] = []
    for index, cell in cells:
        if index in trusted:
            continue
        label = _nbgrader(cell).get("grade_id") or f"cell {index}"
        hits = inspect_source(_source(cell), protected=protected, imports=imports)
        findings.extend(
            Suspicion(notebook=notebook, cell=str(label), line=line, pattern=pattern, reason=why)
            for line, pattern, why in hits
        )
    return findings


# --- Parsing -------------------------------------------------------------------------------------


def _parse(source: str) -> ast.Module | None:
    """The cell as the kernel would compile it, or None where the kernel would run nothing."""
    try:
        return ast.parse(TransformerManager().transform_cell(source))
    except Exception:  # SyntaxError and the like: IPython reports it and runs nothing
        return None


def _unique_sorted(hits: list[Hit]) -> list[Hit]:
    """One finding per (line, construct), the first reason kept, sorted by line."""
    seen: dict[tuple[int, str], str] = {}
    for line, construct, reason in hits:
        seen.setdefault((line, construct), reason)
    return sorted((line, construct, reason) for (line, construct), reason in seen.items())


def _walk_scope(node: ast.AST) -> Iterator[ast.AST]:
    """The nodes under ``node`` in its own scope: nested defs, lambdas and classes not entered."""
    for child in ast.iter_child_nodes(node):
        yield child
        if not isinstance(child, SCOPES):
            yield from _walk_scope(child)


def _target_names(target: ast.AST) -> Iterator[str]:
    """Names an assignment target binds: ``a``, ``a, (b, *c)``; not attributes or items."""
    if isinstance(target, ast.Name):
        yield target.id
    elif isinstance(target, ast.Tuple | ast.List):
        for element in target.elts:
            yield from _target_names(element)
    elif isinstance(target, ast.Starred):
        yield from _target_names(target.value)


def _import_bindings(node: ast.Import | ast.ImportFrom) -> Iterator[tuple[str, str]]:
    """(local name, qualified name) for each name an import binds; star imports bind none."""
    if isinstance(node, ast.Import):
        for alias in node.names:
            if alias.asname:
                yield alias.asname, alias.name
            else:
                top = alias.name.split(".")[0]
                yield top, top
        return
    module = "." * node.level + (node.module or "")
    for alias in node.names:
        if alias.name != "*":
            yield alias.asname or alias.name, f"{module}.{alias.name}".lstrip(".")


def _bindings(scope: ast.AST) -> Iterator[tuple[str, ast.AST, str | None, ast.AST | None]]:
    """(name, node, imported qualified name, assigned value) for each binding in a scope."""
    for node in _walk_scope(scope):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                for name in _target_names(target):
                    yield name, node, None, node.value
        elif isinstance(node, ast.AugAssign | ast.AnnAssign | ast.NamedExpr):
            for name in _target_names(node.target):
                yield name, node, None, node.value
        elif isinstance(node, ast.For | ast.AsyncFor):
            for name in _target_names(node.target):
                yield name, node, None, node.iter
        elif isinstance(node, ast.withitem) and node.optional_vars is not None:
            for name in _target_names(node.optional_vars):
                yield name, node.optional_vars, None, node.context_expr
        elif isinstance(node, ast.ExceptHandler | ast.MatchAs | ast.MatchStar) and node.name:
            yield node.name, node, None, None
        elif isinstance(node, ast.MatchMapping) and node.rest:
            yield node.rest, node, None, None
        elif isinstance(node, ast.Import | ast.ImportFrom):
            for name, qualified in _import_bindings(node):
                yield name, node, qualified, None
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            yield node.name, node, None, None


def _local_names(scope: ast.AST) -> set[str]:
    """Names local to a function, lambda or comprehension, where they shadow any builtin."""
    names: set[str] = set()
    if isinstance(scope, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
        arguments = scope.args
        every = [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]
        every += [a for a in (arguments.vararg, arguments.kwarg) if a is not None]
        names.update(a.arg for a in every)
        if not isinstance(scope, ast.Lambda):
            names.update(name for name, *_ in _bindings(scope))
            declared = (n for n in _walk_scope(scope) if isinstance(n, ast.Global | ast.Nonlocal))
            names.difference_update(name for node in declared for name in node.names)
    elif isinstance(scope, COMPREHENSIONS):
        for generator in scope.generators:
            names.update(_target_names(generator.target))
    return names


def _defined_names(trees: Iterable[ast.Module | None]) -> dict[str, str]:
    """Names cells import (to their qualified name) or define by def or class (to "")."""
    names: dict[str, str] = {}
    for tree in trees:
        if tree is None:
            continue
        for name, node, qualified, _ in _bindings(tree):
            if qualified is not None:
                names[name] = qualified
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names[name] = ""
    return names


# --- The inspector -------------------------------------------------------------------------------


class _CellInspector(ast.NodeVisitor):
    """Walks one parsed cell and collects findings in ``hits``."""

    def __init__(
        self, tree: ast.Module, protected: Mapping[str, str], imports: Mapping[str, str]
    ) -> None:
        self.tree = tree
        self.protected = protected
        self.hits: list[Hit] = []
        self.parents = {c: p for p in ast.walk(tree) for c in ast.iter_child_nodes(p)}
        self.deleted = {
            n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Del)
        }
        self.cell_imports = {
            name
            for node in ast.walk(tree)
            if isinstance(node, ast.Import | ast.ImportFrom)
            for name, _ in _import_bindings(node)
        }
        self.imports = self._collect_imports(imports)
        self.module_names = self._plain_module_names()
        self.scopes: list[set[str]] = []

    def hit(self, line: int, construct: str, reason: str) -> None:
        self.hits.append((line, construct, reason))

    # -- what names refer to --

    def _collect_imports(self, elsewhere: Mapping[str, str]) -> dict[str, str]:
        """Local name to qualified name: this cell's imports, then other cells' and the common
        aliases for names this cell does not bind otherwise, then aliases like ``t = np.testing``.
        """
        stores = (n for n in ast.walk(self.tree) if isinstance(n, ast.Name))
        bound = {n.id for n in stores if not isinstance(n.ctx, ast.Load)}
        bound |= {n.arg for n in ast.walk(self.tree) if isinstance(n, ast.arg)}
        imports = {k: v for k, v in {**COMMON_ALIASES, **elsewhere}.items() if k not in bound}
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                imports.update(_import_bindings(node))
        changed = True
        while changed:
            changed = False
            for node in ast.walk(self.tree):
                if not isinstance(node, ast.Assign):
                    continue
                qualified = _qualify(node.value, imports)
                for target in node.targets:
                    if qualified and isinstance(target, ast.Name) and target.id not in imports:
                        imports[target.id] = qualified
                        changed = True
        return imports

    def _plain_module_names(self) -> dict[str, int]:
        """Names a top-level statement binds to an innocent value, with the first such line.

        A later load of such a name is the learner's variable, not a builtin (``vars = [...]``;
        ``print(vars)``). Bindings under ``if``/``try``/``for`` don't count: they may not
        happen, which leaves the builtin in place.
        """
        plain: dict[str, int] = {}
        for statement in self.tree.body:
            if isinstance(statement, ast.AnnAssign) and statement.value is None:
                continue
            for name, node, _, value in _bindings(ast.Module(body=[statement], type_ignores=[])):
                ok = node is statement and name not in self.deleted and _innocent(value)
                if ok and not isinstance(statement, ast.AugAssign | ast.For | ast.AsyncFor):
                    plain.setdefault(name, statement.lineno)
        return plain

    def _shadowed(self, node: ast.Name) -> bool:
        """Does this name refer to the learner's own variable rather than a builtin?"""
        if any(node.id in scope for scope in self.scopes):
            return True
        line = self.module_names.get(node.id)
        return line is not None and line < node.lineno

    # -- scopes --

    def _visit_scope(self, node: ast.AST, outside: list[ast.AST], inside: list[ast.AST]) -> None:
        """Visit ``outside`` (decorators, defaults, a first iterable) in the enclosing scope and
        ``inside`` with the scope's local names shadowing builtins."""
        for child in outside:
            self.visit(child)
        self.scopes.append(_local_names(node))
        for child in inside:
            self.visit(child)
        self.scopes.pop()

    def _visit_function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        returns = [node.returns] if node.returns else []
        self._visit_scope(node, [*node.decorator_list, node.args, *returns], [*node.body])

    def _visit_comprehension(self, node: ast.ListComp | ast.SetComp | ast.GeneratorExp) -> None:
        first, *others = node.generators
        inside = [first.target, *first.ifs, *others, node.elt]
        self._visit_scope(node, [first.iter], inside)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._visit_function(node)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        self._visit_function(node)

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self._visit_scope(node, [node.args], [node.body])

    def visit_ListComp(self, node: ast.ListComp) -> None:
        self._visit_comprehension(node)

    def visit_SetComp(self, node: ast.SetComp) -> None:
        self._visit_comprehension(node)

    def visit_GeneratorExp(self, node: ast.GeneratorExp) -> None:
        self._visit_comprehension(node)

    def visit_DictComp(self, node: ast.DictComp) -> None:
        first, *others = node.generators
        inside = [first.target, *first.ifs, *others, node.key, node.value]
        self._visit_scope(node, [first.iter], inside)

    def visit_For(self, node: ast.For) -> None:
        """In its body, a module-level loop variable is the learner's (``for _i in ...``)."""
        names = set(_target_names(node.target)) - self.deleted
        for child in (node.target, node.iter):
            self.visit(child)
        self.scopes.append(names)
        for statement in node.body:
            self.visit(statement)
        self.scopes.pop()
        for statement in node.orelse:
            self.visit(statement)

    # -- rule 1: magics --

    def visit_Call(self, node: ast.Call) -> None:
        method = _magic_method(node)
        if method is not None:
            self._check_magic(node, method)
            return
        if isinstance(node.func, ast.Name) and node.func.id == "getattr":
            if not self._shadowed(node.func) and not _literal_getattr(node):
                self.hit(node.lineno, "getattr", DYNAMIC_BUILTINS["getattr"])
            for child in [*node.args, *node.keywords]:
                self.visit(child)
            return
        self._check_getenv(node)
        self.generic_visit(node)

    def _check_magic(self, node: ast.Call, method: str) -> None:
        """Flag a ``get_ipython()`` magic or shell call unless it is an allowed magic."""
        cell = method == "run_cell_magic"
        name = _string(node.args[0]) if node.args else None
        allowed = ALLOWED_CELL_MAGICS if cell else ALLOWED_LINE_MAGICS
        if name not in allowed or name == "matplotlib":
            for argument in [*node.args, *node.keywords]:
                self.visit(argument)  # strings naming the grader, say
        if method in ("system", "getoutput"):
            self.hit(node.lineno, "!", SHELL_REASON)
            return
        if name is None:
            self.hit(node.lineno, "get_ipython", IPYTHON_NAMES["get_ipython"])
            return
        construct = ("%%" if cell else "%") + name
        if name not in allowed:
            self.hit(node.lineno, construct, MAGIC_REASON)
            return
        texts = [_string(a) for a in node.args[1:]]
        if len(texts) != (2 if cell else 1) or None in texts or node.keywords:
            self.hit(node.lineno, construct, "runs a magic on computed code that cannot be checked")
            return
        self._check_magic_code(node.lineno, construct, [t or "" for t in texts])

    def _check_magic_code(self, line: int, construct: str, texts: list[str]) -> None:
        """Inspect what an allowed magic runs: a backend name, or the code it times."""
        if construct == "%matplotlib":
            if not MATPLOTLIB_ARGUMENT.fullmatch(texts[0]):
                self.hit(line, construct, "passes an argument that IPython expands as code")
            return
        code = _strip_time_options(construct.lstrip("%"), texts[0])
        if code is None:
            self.hit(line, construct, "passes options that cannot be checked")
            return
        codes = [(line, code)]
        if construct.startswith("%%"):  # %%timeit's line is setup code; the body starts below
            codes.append((line + 1, texts[1]))
        for start, text in codes:
            nested = inspect_source(text, protected=self.protected, imports=self.imports)
            for nested_line, what, reason in nested:
                self.hit(start + nested_line - 1, what, reason)

    # -- rules 2, 3, 4 and 8: imports, names and attributes --

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._check_import(node, alias.name)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = "." * node.level + (node.module or "")
        for alias in node.names:
            if alias.name == "*":
                self._check_import(node, module)
                if module in ("os", "sys"):
                    self.hit(node.lineno, f"from {module} import *", STAR_REASON)
            else:
                self._check_import(node, f"{module}.{alias.name}")

    def _check_import(self, node: ast.stmt, qualified: str) -> None:
        module = _flagged_module(qualified)
        if module is not None:
            self.hit(node.lineno, module, FLAGGED_MODULES[module])
        self._check_reached(node, qualified)

    def visit_Name(self, node: ast.Name) -> None:
        name, load = node.id, isinstance(node.ctx, ast.Load)
        if name in RUNTIME_ATTRIBUTES and name.startswith("__"):
            self.hit(node.lineno, name, RUNTIME_ATTRIBUTES[name])
        elif (name in IPYTHON_NAMES or INPUT_HISTORY_NAME.fullmatch(name)) and load:
            if not self._shadowed(node):
                self.hit(node.lineno, name, IPYTHON_NAMES.get(name, IPYTHON_NAMES["_i"]))
        elif name in DYNAMIC_BUILTINS and load and not self._shadowed(node):
            self.hit(node.lineno, name, DYNAMIC_BUILTINS[name])
        qualified = self.imports.get(name)
        if qualified is not None and qualified != name:
            self._check_object(node, qualified, name)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        attr, store = node.attr, isinstance(node.ctx, ast.Store | ast.Del)
        if attr in RUNTIME_ATTRIBUTES:
            self.hit(node.lineno, attr, RUNTIME_ATTRIBUTES[attr])
        if attr in STORE_ONLY_ATTRIBUTES and store:
            self.hit(node.lineno, attr, STORE_ONLY_ATTRIBUTES[attr])
        if attr in EVENT_METHODS and _dotted_tail(node.value) == "events":
            self.hit(node.lineno, "events", EVENTS_REASON)
        qualified = _qualify(node, self.imports)
        if qualified is not None:
            self._check_object(node, qualified, _root(node))
        elif (dotted := _dotted(node)) is not None:
            self._check_reached(node, dotted)
        if store:
            self._check_patch(node, qualified)
        self.generic_visit(node)

    def _check_object(self, node: ast.expr, qualified: str, root: str | None) -> None:
        """Rules 4 and 8 for a name or attribute chain that resolves to an imported object."""
        module = _flagged_module(qualified)
        imported_flagged = root in self.cell_imports and _flagged_module(self.imports[root or ""])
        if module is not None and not imported_flagged:  # else flagged at the import
            self.hit(node.lineno, module, FLAGGED_MODULES[module])
        self._check_reached(node, qualified)
        store = isinstance(getattr(node, "ctx", None), ast.Store | ast.Del)
        if qualified in STREAMS and store:
            self.hit(node.lineno, f"{qualified} =", STREAM_REASON)
        if qualified in ENVIRON:
            self._check_environ(node, qualified)
        elif qualified in GETENV and self._call_of(node) is None:
            self.hit(node.lineno, qualified, ENV_REASON)

    def _check_reached(self, node: ast.AST, dotted: str) -> None:
        """Rule 4: process, tracing and import-system objects, however they are reached."""
        line = getattr(node, "lineno", 1)
        for name, reason in DANGEROUS_OBJECTS.items():
            if dotted == name or dotted.endswith("." + name):
                self.hit(line, name, reason)
        last = dotted.rsplit(".", 2)[-2:]
        for prefix, reason in DANGEROUS_PREFIXES.items():
            module, function = prefix.split(".")
            if len(last) == 2 and last[0] == module and last[1].startswith(function):
                self.hit(line, ".".join(last), reason)

    def _call_of(self, node: ast.expr) -> ast.Call | None:
        """The call that calls ``node``, if any."""
        parent = self.parents.get(node)
        return parent if isinstance(parent, ast.Call) and parent.func is node else None

    # -- rule 5: patching --

    def _check_patch(self, node: ast.Attribute, qualified: str | None) -> None:
        """Assigning to, or deleting, an imported module's attribute or a comparison helper."""
        if qualified is not None:
            if not qualified.startswith(CONFIG_PREFIXES) and qualified not in STREAMS:
                self.hit(node.lineno, f"patch {qualified}", PATCH_REASON)
        elif node.attr in COMPARISON_HELPERS:
            self.hit(node.lineno, f"patch {_dotted(node) or node.attr}", PATCH_REASON)
        if node.attr in COMPARISON_DUNDERS:
            self.hit(node.lineno, node.attr, DUNDER_REASON)

    # -- rule 6: rebinding --

    def check_bindings(self) -> None:
        """Module-level rebinding of protected builtins and of the instructor's names."""
        for name, node, qualified, _ in _bindings(self.tree):
            line = getattr(node, "lineno", 1)
            if name in PROTECTED_BUILTINS:
                self.hit(line, f"rebind {name}", REBIND_REASON.format(name=name))
            if name in self.protected and (not qualified or qualified != self.protected[name]):
                self.hit(line, f"rebind {name}", self._protected_reason(name))
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Global):
                for name in sorted(set(node.names) & PROTECTED_BUILTINS):
                    self.hit(node.lineno, f"rebind {name}", REBIND_REASON.format(name=name))
                for name in sorted(set(node.names) & set(self.protected)):
                    self.hit(node.lineno, f"rebind {name}", self._protected_reason(name))

    def _protected_reason(self, name: str) -> str:
        original = self.protected[name]
        how = f"import as {original}" if original else "define"
        return PROTECTED_REASON.format(name=name, how=how)

    # -- rule 7: comparison methods --

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for statement in node.body:
            for name in _class_member_names(statement):
                if name in COMPARISON_DUNDERS:
                    self.hit(statement.lineno, name, DUNDER_REASON)
        self.generic_visit(node)

    # -- rule 8: strings and the environment --

    def visit_Constant(self, node: ast.Constant) -> None:
        value = node.value
        text = value.decode("latin-1") if isinstance(value, bytes) else value
        if not isinstance(text, str):
            return
        for marker in sorted({m.upper() for m in GRADER_MARKER.findall(text)}):
            self.hit(node.lineno, marker, MARKER_REASON)
        if PYTHON_FILE.search(text):
            self.hit(node.lineno, "python file", PYTHON_FILE_REASON)
        if text in SENSITIVE_STRINGS:
            reason = RUNTIME_ATTRIBUTES.get(text) or IPYTHON_NAMES.get(text) or DUNDER_REASON
            self.hit(node.lineno, text, reason)

    def _check_environ(self, node: ast.expr, qualified: str) -> None:
        """``os.environ``: writes, and reads of the job's own variables, are fine."""
        if not self._environ_use_allowed(node):
            self.hit(node.lineno, qualified, ENV_REASON)

    def _environ_use_allowed(self, node: ast.expr) -> bool:
        """``environ[KEY]``, ``environ.get(KEY)``, ``KEY in environ``, or any write."""
        parent = self.parents.get(node)
        if isinstance(parent, ast.Subscript) and parent.value is node:
            return isinstance(parent.ctx, ast.Store | ast.Del) or _allowed_key(parent.slice)
        if isinstance(parent, ast.Attribute) and parent.value is node:
            call = self._call_of(parent)
            key = call.args[0] if call is not None and call.args else None
            if parent.attr == "setdefault" and key is not None:  # a default for a library
                return _string(key) is not None
            if parent.attr in ENV_READ_METHODS and key is not None:
                return _allowed_key(key)
            return parent.attr in ENV_WRITE_METHODS
        if isinstance(parent, ast.Compare) and parent.comparators == [node]:
            membership = isinstance(parent.ops[0], ast.In | ast.NotIn)
            return membership and _allowed_key(parent.left)
        return False

    def _check_getenv(self, node: ast.Call) -> None:
        """``os.getenv(key)`` with a key other than the job's own variables."""
        if _qualify(node.func, self.imports) not in GETENV:
            return
        key = node.args[0] if node.args else next((k.value for k in node.keywords), None)
        if key is None or not _allowed_key(key):
            self.hit(node.lineno, "os.getenv", ENV_REASON)

    # -- rule 9: hanging loops --

    def visit_While(self, node: ast.While) -> None:
        test = node.test
        if isinstance(test, ast.Constant) and test.value and not _has_exit(node.body):
            self.hit(node.lineno, "while True", LOOP_REASON)
        self.generic_visit(node)


# --- Small helpers -------------------------------------------------------------------------------


def _string(node: ast.AST) -> str | None:
    """The value of a literal string, else None."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


def _magic_method(node: ast.Call) -> str | None:
    """``run_line_magic`` etc. when the call is ``get_ipython().<method>(...)``."""
    func = node.func
    if not isinstance(func, ast.Attribute) or func.attr not in MAGIC_METHODS:
        return None
    shell = func.value
    if not isinstance(shell, ast.Call) or shell.args or shell.keywords:
        return None
    return (
        func.attr if isinstance(shell.func, ast.Name) and shell.func.id == "get_ipython" else None
    )


def _strip_time_options(name: str, line: str) -> str | None:
    """The code after ``%time``/``%timeit`` options, or None where the options look odd."""
    rest = line
    while True:
        match = re.match(r"\s*(\S+)", rest)
        if match is None:
            return ""
        token = match.group(1)
        if name == "time":
            if not (len(token) > 2 and TIME_OPTION.startswith(token)):
                return rest
            rest = rest[match.end() :]
            continue
        if token == "--":
            return rest[match.end() :]
        if not token.startswith("-") or len(token) < 2:
            return rest
        rest = rest[match.end() :]
        for position, flag in enumerate(token[1:], start=1):
            if flag in TIMEIT_VALUED:
                if position == len(token) - 1:  # the value is the next token
                    value = re.match(r"\s*\S+", rest)
                    if value is None:
                        return None
                    rest = rest[value.end() :]
                break
            if flag not in TIMEIT_FLAGS:
                return None  # getopt would refuse it: nothing runs, but don't guess


def _literal_getattr(node: ast.Call) -> bool:
    """``getattr(obj, "name"[, default])`` with a literal name."""
    return len(node.args) in (2, 3) and not node.keywords and _string(node.args[1]) is not None


def _dotted_tail(node: ast.expr) -> str | None:
    """The last name of an attribute chain or name: ``events`` for ``shell.events``."""
    if isinstance(node, ast.Attribute):
        return node.attr
    return node.id if isinstance(node, ast.Name) else None


def _root(node: ast.expr) -> str | None:
    """The name at the start of an attribute chain."""
    while isinstance(node, ast.Attribute):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def _dotted(node: ast.expr) -> str | None:
    """``a.b.c`` for an attribute chain on a name, else None."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return ".".join([node.id, *reversed(parts)])


def _qualify(node: ast.expr, imports: Mapping[str, str]) -> str | None:
    """``numpy.testing.assert_allclose`` for ``npt.assert_allclose`` after an import."""
    dotted = _dotted(node)
    if dotted is None:
        return None
    root, _, rest = dotted.partition(".")
    if root not in imports:
        return None
    return f"{imports[root]}.{rest}" if rest else imports[root]


def _flagged_module(qualified: str) -> str | None:
    """The entry of :data:`FLAGGED_MODULES` that ``qualified`` is or lies in."""
    if any(qualified == s or qualified.startswith(s + ".") for s in SAFE_SUBMODULES):
        return None
    for module in FLAGGED_MODULES:
        if qualified == module or qualified.startswith(module + "."):
            return module
    return None


def _innocent(value: ast.AST | None) -> bool:
    """Does a bound value avoid every name this module watches (so ``eval = eval`` is not)?"""
    if value is None:
        return True
    watched = DYNAMIC_BUILTINS.keys() | IPYTHON_NAMES.keys() | RUNTIME_ATTRIBUTES.keys()
    return not any(isinstance(n, ast.Name) and n.id in watched for n in ast.walk(value))


def _allowed_key(node: ast.AST) -> bool:
    """Is this a literal name of one of the job's own environment variables?"""
    key = _string(node)
    return key is not None and key.startswith(ENV_KEY_PREFIXES)


def _class_member_names(statement: ast.stmt) -> Iterator[str]:
    """Names a statement in a class body defines."""
    if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef):
        yield statement.name
    elif isinstance(statement, ast.Assign):
        for target in statement.targets:
            yield from _target_names(target)
    elif isinstance(statement, ast.AnnAssign):
        yield from _target_names(statement.target)


def _has_exit(body: list[ast.stmt]) -> bool:
    """Does a loop body contain a way out, outside nested functions and classes?"""
    module = ast.Module(body=body, type_ignores=[])
    return any(isinstance(n, LOOP_EXITS) for n in _walk_scope(module))


def _nbgrader(cell: nbformat.NotebookNode) -> dict[str, Any]:
    metadata = cell.get("metadata", {}).get("nbgrader", {})
    return dict(metadata) if isinstance(metadata, Mapping) else {}


def _source(cell: nbformat.NotebookNode) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def _is_trusted(cell: nbformat.NotebookNode, trusted_ids: Collection[str] | None) -> bool:
    """A read-only or test cell of the instructor's; an answer cell never is."""
    meta = _nbgrader(cell)
    grade_id = meta.get("grade_id")
    if not grade_id or meta.get("solution"):
        return False
    if trusted_ids is not None and grade_id not in trusted_ids:
        return False
    return bool(meta.get("locked") or meta.get("grade"))
