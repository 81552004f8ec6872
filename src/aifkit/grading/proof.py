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
"""

from __future__ import annotations

import ast
import secrets
from pathlib import Path

from IPython.core.inputtransformer2 import TransformerManager

from aifkit import verifier

VALUE_NAME = "__aifkit_test_value__"


def new_key() -> bytes:
    """A key for one kernel's verifier."""
    return secrets.token_bytes(32)


def new_test_id() -> str:
    return secrets.token_hex(8)


def instrument(source: str, test_id: str, key: bytes) -> str:
    """The text actually sent to the kernel for a test cell."""
    python = TransformerManager().transform_cell(source)
    try:
        tree = ast.parse(python)
    except SyntaxError:
        return source  # it fails in the kernel and never proves anything
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
