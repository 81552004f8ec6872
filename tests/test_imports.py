"""aifkit's processes keep jsonschema's slow optional IRI checker out (aifkit/__init__.py)."""

from __future__ import annotations

import subprocess
import sys


def test_importing_aifkit_first_keeps_rfc3987_syntax_out_and_nbformat_validates() -> None:
    code = (
        "import sys, aifkit, nbformat\n"
        "nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell('1')])\n"
        "nbformat.validate(nb)\n"
        "print(sys.modules.get('rfc3987_syntax', 'absent'))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "None", out.stdout + out.stderr
