"""Proof that a test cell ran to its end: a secret printed after its last statement.

The grader makes a fresh random secret for every test cell of every run and sends the cell with
one extra statement that prints it. The secret is never written to the notebook or any file the
kernel can read before that statement runs, and the grader removes it from the outputs again.
A cell that raised, was emptied or rewritten by an input transformer, had its error display
patched away, or whose kernel died never prints it, so it earns nothing.

A test whose last statement is an expression keeps it as the cell's value (nbgrader's partial
credit): the value is computed, then the secret printed, then the value shown.
"""

from __future__ import annotations

import ast
import secrets

import nbformat
from IPython.core.inputtransformer2 import TransformerManager

VALUE_NAME = "__aifkit_test_value__"


def new_nonce() -> str:
    return f"aifkit-proof-{secrets.token_hex(16)}"


def instrument(source: str, nonce: str) -> str:
    """The code actually sent to the kernel for a test cell."""
    python = TransformerManager().transform_cell(source)
    try:
        tree = ast.parse(python)
    except SyntaxError:
        return source  # it fails in the kernel and never prints the secret
    stamp = f"print({nonce!r})"
    last = tree.body[-1] if tree.body else None
    if not isinstance(last, ast.Expr) or last.col_offset != 0:
        return f"{python.rstrip()}\n{stamp}\n"
    lines = python.splitlines()
    head = "\n".join(lines[: last.lineno - 1])
    value = ast.get_source_segment(python, last.value)
    return f"{head}\n{VALUE_NAME} = ({value})\n{stamp}\n{VALUE_NAME}\n"


def take(
    outputs: list[nbformat.NotebookNode], nonce: str
) -> tuple[list[nbformat.NotebookNode], bool]:
    """Remove the secret from a cell's outputs; True when it was printed as a line on stdout."""
    line = f"{nonce}\n"
    found = False
    kept: list[nbformat.NotebookNode] = []
    for output in outputs:
        if output.output_type == "stream" and output.name == "stdout" and line in output.text:
            found = found or output.text.startswith(line) or f"\n{line}" in output.text
            output.text = output.text.replace(line, "")
            if not output.text:
                continue
        kept.append(output)
    return kept, found
