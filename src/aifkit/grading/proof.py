"""Proof that a test cell ran to its end, as the grader sent it: made where learner code cannot.

The grader sends each test cell as one statement, ``if True:`` around the test's code, and ends
it with a *sentinel*, ``(lambda: "aifkit-end <id>").__code__ and None``. The first line is a
marker with the test's id and an HMAC of the rest, made with a key that only the grader and the
kernel's verifier thread know (``aifkit.verifier``; the launcher deletes the key's file before
any learner code runs). When the sentinel is reached by the test's own code, run as sent, the
verifier appends ``<id> <proof>`` to a proofs file; the proof is an HMAC of the id, which learner
code cannot compute. A test that raised, was rewritten by an input or AST transformer, replayed
by learner code, had its error display patched away, or whose kernel died has no proof.

A test whose last statement is an expression keeps it as the test's value (nbgrader's partial
credit): it is the sentinel's default argument, and the verifier writes it beside the proof, as a
number only when it is one of a C number type (a learner's class cannot pretend to be 2).

Comparisons and calls in a test are rewritten so the values they touch pass the guard first
(``COMPARE_MARK``, ``CALL_MARK``; see ``aifkit.guard``): a value whose ``__eq__``, ``__bool__``,
``__array_function__``... the learner wrote is refused before it can answer "equal".
"""

from __future__ import annotations

import ast
import secrets
from pathlib import Path

from IPython.core.inputtransformer2 import TransformerManager

from aifkit import verifier

VALUE_NAME = "__aifkit_test_value__"
COMPARE_MARK = verifier.COMPARE_MARK
CALL_MARK = verifier.CALL_MARK


def new_key() -> bytes:
    """A key for one kernel's verifier."""
    return secrets.token_bytes(32)


def new_test_id() -> str:
    return secrets.token_hex(8)


def instrument(
    source: str, test_id: str, key: bytes, *, learner: str | None = None, course: str = ""
) -> str:
    """The text actually sent to the kernel for a test cell.

    With ``learner``, every ``Variant(...)`` and ``current_learner()``/``current_course()`` call
    of the test is bound to that student and course (``aifkit.course.variants``) before the text
    is signed: the test checks the student's own variant whatever the kernel's environment says.
    """
    python = TransformerManager().transform_cell(source)
    try:
        tree = ast.parse(python)
    except SyntaxError:
        return source  # it fails in the kernel and never proves anything
    if learner is not None:
        tree = _BoundIdentity(learner, course).visit(tree)
    tree = _Checked().visit(tree)
    body = list(tree.body)
    value = body.pop().value if body and isinstance(body[-1], ast.Expr) else None
    parameters = [ast.arg(VALUE_NAME)] if value is not None else []
    sentinel = ast.Lambda(
        args=ast.arguments(
            posonlyargs=[],
            args=parameters,
            kwonlyargs=[],
            kw_defaults=[],
            defaults=[value] if value is not None else [],
        ),
        body=ast.Constant(f"{verifier.END_MARK}{test_id}"),
    )
    end = ast.Expr(
        ast.BoolOp(
            op=ast.And(),
            values=[
                ast.Attribute(value=sentinel, attr="__code__", ctx=ast.Load()),
                ast.Constant(None),
            ],
        )
    )
    one = ast.If(test=ast.Constant(True), body=[*body, end], orelse=[])
    text = ast.unparse(ast.fix_missing_locations(ast.Module(body=[one], type_ignores=[])))
    return f"{verifier.TEST_MARK}{test_id} {verifier.mac(key, test_id, text)}\n{text}\n"


def read(path: Path, key: bytes) -> dict[str, float | None]:
    """The genuine proofs in the kernel's proofs file: test id -> partial score or None."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return {}
    return verifier.read_proofs(text, key)


def _name(name: str) -> ast.Name:
    return ast.Name(name, ast.Load())


def _lambda(params: list[str], body: ast.expr, *, star: str = "", stars: str = "") -> ast.Lambda:
    return ast.Lambda(
        args=ast.arguments(
            posonlyargs=[],
            args=[ast.arg(p) for p in params],
            vararg=ast.arg(star) if star else None,
            kwonlyargs=[],
            kw_defaults=[],
            kwarg=ast.arg(stars) if stars else None,
            defaults=[],
        ),
        body=body,
    )


def _checkpoint(mark: str, values: ast.expr) -> ast.expr:
    """``(lambda v=values: mark).__code__``: the guard sees ``values`` when ``__code__`` is read."""
    probe = ast.Lambda(
        args=ast.arguments(
            posonlyargs=[],
            args=[ast.arg("__aifkit_values")],
            kwonlyargs=[],
            kw_defaults=[],
            defaults=[values],
        ),
        body=ast.Constant(mark),
    )
    return ast.Attribute(value=probe, attr="__code__", ctx=ast.Load())


def _called(node: ast.Call) -> str:
    """The name a call is made through: ``f`` for ``f(...)`` and ``m.f(...)``."""
    func = node.func
    return (
        func.id
        if isinstance(func, ast.Name)
        else func.attr
        if isinstance(func, ast.Attribute)
        else ""
    )


class _BoundIdentity(ast.NodeTransformer):
    """Bind a test's variants to the student being graded and the course (literals)."""

    def __init__(self, learner: str, course: str) -> None:
        self.learner, self.course = learner, course

    def visit_Call(self, node: ast.Call) -> ast.AST:
        self.generic_visit(node)
        name = _called(node)
        if name == "current_learner" and not node.args and not node.keywords:
            return ast.copy_location(ast.Constant(self.learner), node)
        if name == "current_course" and not node.args and not node.keywords:
            return ast.copy_location(ast.Constant(self.course), node)
        if name == "Variant":
            node.args = node.args[:1]
            node.keywords = [k for k in node.keywords if k.arg not in ("learner", "course")] + [
                ast.keyword("learner", ast.Constant(self.learner)),
                ast.keyword("course", ast.Constant(self.course)),
            ]
        return node


class _Checked(ast.NodeTransformer):
    """Route the test's comparisons and calls through the guard's value check.

    ``a == b`` becomes ``(lambda l, r: <check (l, r)> and l == r)(a, b)``; ``f(x)`` becomes
    ``(lambda f, *a, **k: <check (f, a, k)> and f(*a, **k))(f, x)``, and ``m.f(x)`` hands the
    guard ``(m, "f", a, k)`` so it sees where the function came from. Operands are evaluated once,
    in order; lambda parameters are local names, so learner code cannot shadow them. Code inside
    functions and classes a test defines is left as written (``super()`` needs its frame).
    """

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:
        return node

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> ast.AST:
        return node

    def visit_ClassDef(self, node: ast.ClassDef) -> ast.AST:
        return node

    def visit_Lambda(self, node: ast.Lambda) -> ast.AST:
        return node

    def visit_Compare(self, node: ast.Compare) -> ast.AST:
        self.generic_visit(node)
        names = [f"__aifkit_{i}" for i in range(len(node.comparators) + 1)]
        values = ast.Tuple([_name(n) for n in names], ast.Load())
        compare = ast.Compare(_name(names[0]), node.ops, [_name(n) for n in names[1:]])
        body = ast.BoolOp(ast.And(), [_checkpoint(COMPARE_MARK, values), compare])
        return ast.Call(_lambda(names, body), [node.left, *node.comparators], [])

    def visit_Call(self, node: ast.Call) -> ast.AST:
        self.generic_visit(node)
        if isinstance(node.func, ast.Attribute):  # obj.name(...): the guard sees obj and name
            head = [_name("__aifkit_o"), ast.Constant(node.func.attr)]
            callee: ast.expr = ast.Attribute(_name("__aifkit_o"), node.func.attr, ast.Load())
            first, target = "__aifkit_o", node.func.value
        else:
            head = [_name("__aifkit_f")]
            callee, first, target = _name("__aifkit_f"), "__aifkit_f", node.func
        values = ast.Tuple([*head, _name("__aifkit_a"), _name("__aifkit_k")], ast.Load())
        call = ast.Call(
            callee,
            [ast.Starred(_name("__aifkit_a"), ast.Load())],
            [ast.keyword(None, _name("__aifkit_k"))],
        )
        body = ast.BoolOp(ast.And(), [_checkpoint(CALL_MARK, values), call])
        wrapper = _lambda([first], body, star="__aifkit_a", stars="__aifkit_k")
        return ast.Call(wrapper, [target, *node.args], node.keywords)
