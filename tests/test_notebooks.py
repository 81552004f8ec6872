"""The kit's promise: every notebook in the catalog (and the template) runs at cpu-tiny in CI.

The notebooks this session selected are executed together by one ``aifkit validate --jobs 2``
run (papermill on the aifkit kernel, forked from one warm zygote), as ``make validate`` does;
each notebook's test then reads its own outcome. ``validate`` enforces the catalog's cpu-tiny
budget as a hard timeout and rejects suspiciously fast passes.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from builders import COURSES

from aifkit import catalog
from aifkit.notebooks import reading
from aifkit.notebooks.template import TEMPLATE_NAME
from aifkit.notebooks.validate import Outcome, validate

CATALOG = catalog.load(COURSES)
# Figures a notebook must print when run with the real cluster up (None: present, any value).
EXPECTED_FIGURES: dict[str, dict[str, str | None]] = {
    "d02-launching": {"AIFKIT_D02_JOB_NODES": "2", "AIFKIT_D02_JOB_WORLD_SIZE": "4"},
    "d04-scaling-efficiency": {
        "AIFKIT_D04_LAUNCH": "slurm",
        "AIFKIT_D04_NODES_USED": "2",
        "AIFKIT_D04_EFFICIENCY_2_NODES": None,
        "AIFKIT_D04_MODEL_EFFICIENCY_2_NODES": None,
        "AIFKIT_D04_JOB_S_1_NODE": None,
        "AIFKIT_D04_JOB_S_2_NODES": None,
    },
}
EXPECTED_FIGURES |= {  # every capstone's training job ran on the cluster and completed
    assignment: {f"AIFKIT_{assignment[:3].upper()}_LAUNCH": "slurm",
                 f"AIFKIT_{assignment[:3].upper()}_JOB_STATE": "COMPLETED"}
    for assignment in ("f01-finance-fraud", "f02-space-earth-observation",
                       "f03-cybersecurity-intrusion", "f04-green-energy-forecasting",
                       "f05-health-signals")
}  # fmt: skip
NOTEBOOKS = [CATALOG.notebook_path(a) for a in CATALOG.assignments()] + [COURSES / TEMPLATE_NAME]
JOBS = 2  # what CI's 2 cores and `make validate` use


def _needs(notebook: Path) -> list[str]:
    needs: list[str] = reading.read(notebook).metadata.get("aifkit", {}).get("needs", [])
    return needs


@pytest.fixture(scope="module")
def outcomes(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> dict[Path, Outcome]:
    """One validate run over the notebooks selected in this session (``-k`` keeps it short)."""
    selected = [
        item.callspec.params["notebook"]
        for item in request.session.items
        if item.originalname == "test_notebook_runs_at_cpu_tiny" and hasattr(item, "callspec")
    ]
    if any("slurm" in _needs(path) for path in selected):
        request.getfixturevalue("slurm_cluster")  # validated with the real cluster up
    work = tmp_path_factory.mktemp("validate")
    found = validate(
        selected,
        tier="cpu-tiny",
        jobs=JOBS,
        report_dir=work / "report",
        state_path=work / "state.json",
    )
    assert len(found) == len(selected), [o.notebook for o in found]
    for path, outcome in zip(selected, found, strict=True):
        assert outcome.notebook.endswith(path.name), (path, outcome.notebook)
    return dict(zip(selected, found, strict=True))


@pytest.mark.notebook
@pytest.mark.parametrize(
    "notebook",
    [
        pytest.param(
            path,
            id=path.parent.name if path.name != TEMPLATE_NAME else "template",
            marks=[pytest.mark.slurm] if "slurm" in _needs(path) else [],
        )
        for path in NOTEBOOKS
    ],
)
def test_notebook_runs_at_cpu_tiny(notebook: Path, outcomes: dict[Path, Outcome]) -> None:
    """Did the notebook execute end to end at cpu-tiny within its budget?"""
    outcome = outcomes[notebook]
    assert outcome.status == "passed", (
        f"{outcome.kind}: {outcome.reason} [cell {outcome.cell}]\n{outcome.traceback}"
    )
    for name, value in EXPECTED_FIGURES.get(notebook.parent.name, {}).items():
        assert name in outcome.figures, f"{name} not printed; figures: {outcome.figures}"
        if value is not None:
            assert outcome.figures[name] == value, (
                f"{name}={outcome.figures[name]}, expected {value}"
            )
