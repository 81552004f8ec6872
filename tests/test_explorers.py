"""ipywidgets explorers (issue 12 item 5): every track has one, and each really reacts.

An explorer is a code cell tagged ``explorer`` that builds
``explorer = ipywidgets.interactive(update, ...)`` and displays it. Each one is executed here in
a real aifkit kernel at cpu-tiny (the notebook's cells up to and including it), then every
control is moved to another allowed value and ``explorer.result`` or the figure ``update``
draws must change: a slider that changes nothing is a broken explorer.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import nbformat
import pytest
from builders import COURSES

from aifkit import catalog
from aifkit.notebooks import reading
from aifkit.notebooks.execute import Job, execute

CATALOG = catalog.load(COURSES)
TAG = "explorer"
BUILDS_EXPLORER = re.compile(
    r"^explorer\s*=\s*(ipywidgets|widgets)\.interactive\(\s*update\b", re.M
)
TRACKS_STILL_BUILDING = {
    "E"
}  # its helpers add explorers to new notebooks; an empty track is skipped
PROBE_MARK = "EXPLORER_PROBE "

# Runs in the kernel after the explorer cell: records a fingerprint of every figure `update`
# shows, moves each control to another allowed value, and reports what changed.
PROBE = r'''
import hashlib as _hashlib
import json as _json
import math as _math

import ipywidgets as _widgets
import matplotlib.pyplot as _plt

_drawn = []
_show = _plt.show


def _fingerprint(figure):
    """What a figure shows (data, shapes, words), hashed without rendering it."""
    digest = _hashlib.sha256()
    for ax in figure.axes:
        for line in ax.get_lines():
            digest.update(line.get_xydata().tobytes())
        for patch in ax.patches:
            digest.update(repr(patch.get_extents().bounds).encode())
        for collection in ax.collections:
            digest.update(repr(collection.get_offsets().tolist()).encode())
        texts = [ax.get_title(), ax.get_xlabel(), ax.get_ylabel(), *(t.get_text() for t in ax.texts)]
        legend = ax.get_legend()
        if legend is not None:
            texts += [t.get_text() for t in legend.get_texts()]
        digest.update(repr(texts).encode())
    return digest.hexdigest()


def _recording_show(*args, **kwargs):
    _drawn.extend(_fingerprint(_plt.figure(number)) for number in _plt.get_fignums())
    return _show(*args, **kwargs)


def _move(control):
    """Set control to another value it allows; return a description of the move."""
    before = control.value
    if hasattr(control, "options") and hasattr(control, "index"):
        control.index = (control.index + 1) % len(control.options)
    elif isinstance(control, _widgets.FloatLogSlider):
        top, bottom = control.base ** control.max, control.base ** control.min
        control.value = bottom if _math.isclose(control.value, top) else top
    elif isinstance(control, (_widgets.Checkbox, _widgets.ToggleButton)):
        control.value = not control.value
    elif hasattr(control, "min") and hasattr(control, "max"):
        control.value = control.min if control.value == control.max else control.max
    else:
        raise TypeError(f"the probe cannot move a {type(control).__name__}")
    return f"{before!r} -> {control.value!r}"


_plt.show = _recording_show
_report = {"is_interactive": isinstance(explorer, _widgets.interactive), "controls": []}
explorer.update()
_report["initial_result"] = explorer.result is not None
_report["initial_figures"] = len(_drawn)
for _control in explorer.kwargs_widgets:
    _result, _figures = repr(explorer.result), list(_drawn)
    _drawn.clear()
    _move_text = _move(_control)
    _report["controls"].append({
        "control": _control.description or type(_control).__name__,
        "move": _move_text,
        "result_changed": repr(explorer.result) != _result,
        "figure_changed": bool(_drawn) and _drawn != _figures,
    })
_plt.show = _show
print("EXPLORER_PROBE " + _json.dumps(_report))
'''


def explorer_cells() -> list[tuple[Path, int]]:
    """(notebook, cell index) of every cell tagged 'explorer' in courses/*/*.ipynb."""
    found = []
    for path in sorted(COURSES.glob("*/*.ipynb")):
        for index, cell in reading.code_cells(reading.read(path)):
            if reading.has_tag(cell, TAG):
                found.append((path, index))
    return found


EXPLORERS = explorer_cells()


def track_notebooks() -> dict[str, list[Path]]:
    """Each catalog track's notebooks."""
    tracks: dict[str, list[Path]] = {}
    for assignment in CATALOG.assignments():
        tracks.setdefault(assignment.track, []).append(CATALOG.notebook_path(assignment))
    return tracks


def budget_of(path: Path) -> float:
    for assignment in CATALOG.assignments():
        if CATALOG.notebook_path(assignment) == path:
            return assignment.budget("cpu-tiny")
    return 120.0


def run_probe(path: Path, index: int, tmp_path: Path) -> dict[str, Any]:
    """Execute the notebook up to and including its explorer cell, then the probe; its report."""
    nb = reading.read(path)
    probe = nbformat.v4.new_code_cell(PROBE)
    nb.cells = [*nb.cells[: index + 1], probe]
    truncated = tmp_path / path.name
    nbformat.write(nb, str(truncated))
    output = tmp_path / "executed" / path.name
    # The probe redraws once per control: allow it a minute beyond the notebook's budget.
    timeout_s = budget_of(path) + 60
    outcome = execute(Job(path=truncated, output=output, tier="cpu-tiny", timeout_s=timeout_s))
    assert outcome.status == "passed", (
        f"{path.name}: running up to the explorer (cell {index}) failed: {outcome.kind} "
        f"{outcome.reason} [cell {outcome.cell}]\n{outcome.traceback}"
    )
    executed = nbformat.read(output, 4)
    text = "".join(
        out.get("text", "") for out in executed.cells[-1].outputs if out.output_type == "stream"
    )
    lines = [line for line in text.splitlines() if line.startswith(PROBE_MARK)]
    assert lines, f"{path.name}: the probe printed no report:\n{text[-2000:]}"
    report: dict[str, Any] = json.loads(lines[-1].removeprefix(PROBE_MARK))
    return report


@pytest.mark.parametrize("track", sorted(track_notebooks()))
def test_every_track_has_an_explorer(track: str) -> None:
    """Does every track with notebooks have at least one explorer cell?"""
    notebooks = track_notebooks()[track]
    with_explorer = {path for path, _ in EXPLORERS if path in notebooks}
    if not with_explorer and track in TRACKS_STILL_BUILDING:
        pytest.skip(f"track {track} is still being written; its explorer comes with it")
    assert with_explorer, (
        f"track {track} has no explorer: tag a code cell '{TAG}' in one of "
        f"{', '.join(p.name for p in notebooks)} that builds "
        "`explorer = ipywidgets.interactive(update, ...)` and displays it"
    )


@pytest.mark.parametrize(
    ("path", "index"), EXPLORERS, ids=[f"{p.parent.name}-cell{i}" for p, i in EXPLORERS]
)
def test_explorer_cell_follows_the_contract(path: Path, index: int) -> None:
    """Does the explorer cell build `explorer = ipywidgets.interactive(update, ...)` and display it?"""
    source = reading.source_of(reading.read(path).cells[index])
    assert BUILDS_EXPLORER.search(source), (
        f"{path.name} cell {index}: build the explorer as `explorer = ipywidgets.interactive(update, ...)`"
    )
    assert "display(explorer)" in source, f"{path.name} cell {index}: end with `display(explorer)`"
    assert "plt.show()" in source, (
        f"{path.name} cell {index}: `update` must redraw a matplotlib plot"
    )


@pytest.mark.notebook
@pytest.mark.parametrize(
    ("path", "index"), EXPLORERS, ids=[f"{p.parent.name}-cell{i}" for p, i in EXPLORERS]
)
def test_every_control_changes_the_explorer(path: Path, index: int, tmp_path: Path) -> None:
    """Headless in a real kernel: does moving each control change the result or the plot?"""
    report = run_probe(path, index, tmp_path)
    assert report["is_interactive"], f"{path.name}: `explorer` is not an ipywidgets.interactive"
    assert report["initial_result"], f"{path.name}: `update` must return its numbers"
    assert report["initial_figures"] >= 1, f"{path.name}: `update` drew no figure (plt.show())"
    assert report["controls"], f"{path.name}: the explorer has no controls"
    dead = [c for c in report["controls"] if not (c["result_changed"] or c["figure_changed"])]
    assert not dead, f"{path.name}: these controls change nothing: " + "; ".join(
        f"{c['control']} ({c['move']})" for c in dead
    )


@pytest.mark.notebook
def test_a_control_that_changes_nothing_is_caught(write_nb, tmp_path: Path) -> None:
    """Does the probe tell a live control from a dead one (so the test above can fail)?"""
    cell = nbformat.v4.new_code_cell(
        "import ipywidgets\nimport matplotlib.pyplot as plt\nfrom IPython.display import display\n\n"
        "def update(height, colour):\n    plt.plot([0, height])\n    plt.show()\n    return height\n\n"
        "explorer = ipywidgets.interactive(update, height=ipywidgets.IntSlider(value=1, min=0, max=5),"
        " colour=ipywidgets.Dropdown(options=['red', 'blue']))\ndisplay(explorer)"
    )
    cell.metadata["tags"] = [TAG]
    path = write_nb("explorer", [cell], with_reading=False)
    report = run_probe(path, 1, tmp_path)
    changed = {
        c["control"] or "": c["result_changed"] or c["figure_changed"] for c in report["controls"]
    }
    assert report["initial_figures"] == 1 and list(changed.values()) == [True, False], report
