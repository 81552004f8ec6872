"""Measured figures a notebook prints as ``AIFKIT_<NAME>=<value>`` lines, gathered for reports.

A notebook that measures something worth recording (c03's training throughput on the tier it
ran at, d01's DDP throughput) prints one such line on stdout; ``aifkit validate`` lists them
next to the notebook's seconds, so a GPU run's figures come out of one command.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from aifkit.errors import NotebookError
from aifkit.notebooks import reading

FIGURE_LINE = re.compile(r"^(AIFKIT_[A-Z0-9_]+)=(\S+)[ \t]*$", re.MULTILINE)


def _stdout_text(output: dict[str, Any]) -> str:
    if output.get("output_type") != "stream" or output.get("name") != "stdout":
        return ""
    text = output.get("text", "")
    return "".join(text) if isinstance(text, list) else str(text)


def figures_in(nb: dict[str, Any]) -> dict[str, str]:
    """Every ``AIFKIT_<NAME>=<value>`` line on the code cells' stdout; the last one wins."""
    found: dict[str, str] = {}
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        for output in cell.get("outputs", []):
            for name, value in FIGURE_LINE.findall(_stdout_text(output)):
                found[name] = value
    return found


def figures_of(executed: Path) -> dict[str, str]:
    """The figures of an executed notebook file; none when it is missing or unreadable."""
    if not executed.is_file():
        return {}
    try:
        return figures_in(reading.read_json(executed))
    except NotebookError:
        return {}
