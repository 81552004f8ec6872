"""a03's and a06's budget exercises: graded against the learner's own accounting records.

The instructor's solutions are run here on the recorded fallback runs (what the grader's sandbox,
which has no SLURM, grades against) and must agree with ``aifkit.course.accounting``; the hidden
tests must compare with the records the notebook's own jobs left, not with fixed numbers. Each
test fails on the notebooks as they were before the exercises (no such cells, no samples).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import nbformat
import pytest
from builders import COURSES

from aifkit.course import accounting, datasets

A03 = COURSES / "a03-slurm" / "a03-slurm.ipynb"
A06 = COURSES / "a06-allocation" / "a06-allocation.ipynb"


def _cell(path: Path, cell_id: str) -> str:
    """Source of the cell with this id (nbgrader grade_id and cell id agree)."""
    nb = nbformat.read(path, as_version=4)
    found = [cell.source for cell in nb.cells if cell.get("id") == cell_id]
    assert found, f"{path.name} has no cell {cell_id!r}: the budget exercise is missing"
    return found[0]


def _solution(path: Path, cell_id: str) -> dict[str, Any]:
    """The namespace the instructor's answer cell defines."""
    namespace: dict[str, Any] = {"math": math}
    exec(compile(_cell(path, cell_id), f"{path.name}:{cell_id}", "exec"), namespace)
    return namespace


def test_a03_solution_reads_the_recorded_records_like_the_library() -> None:
    text = datasets.sample_text("a03-sacct.txt")  # checksum-verified against SHA256SUMS
    solution = _solution(A03, "read-sacct")
    mine = solution["read_sacct"](text)
    reference = {job.job_id: job for job in accounting.parse_sacct(text)}
    assert list(mine) == list(reference)
    for job_id, job in reference.items():
        record = mine[job_id]
        assert (record["state"], record["elapsed_s"], record["alloc_cpus"], record["req_gpus"]) == (
            job.state,
            job.elapsed_s,
            job.alloc_cpus,
            job.req_gpus,
        )
        assert math.isclose(record["total_cpu_s"], job.total_cpu_s)
        assert solution["cpu_efficiency"](record) == job.cpu_efficiency
        assert solution["requested_gpu_minutes"](record) == job.requested_gpu_minutes


def test_a03_recorded_run_has_the_four_jobs_and_the_held_one() -> None:
    jobs = {job.name: job for job in accounting.parse_sacct(datasets.sample_text("a03-sacct.txt"))}
    assert set(jobs) == {"a03-sleep", "a03-busy", "a03-gpu", "a03-held"}
    held = jobs["a03-held"]
    assert (held.qos, held.state, held.elapsed_s) == ("budget", "CANCELLED", 0)
    assert held.requested_gpu_minutes is not None and held.requested_gpu_minutes > 60
    busy, sleep = jobs["a03-busy"].cpu_efficiency, jobs["a03-sleep"].cpu_efficiency
    assert busy is not None and sleep is not None and busy > 0.5 > sleep
    assert jobs["a03-gpu"].alloc_gpus == 1 and jobs["a03-gpu"].gpu_hours > 0


@pytest.mark.parametrize(
    ("path", "cell_ids"),
    [
        (A03, ["read-sacct-records", "read-sacct-cpu-time", "cpu-efficiency", "held-job"]),
        (A06, ["budget-report-hours", "budget-report-fit"]),
    ],
    ids=["a03", "a06"],
)
def test_hidden_tests_grade_against_the_notebooks_own_records(
    path: Path, cell_ids: list[str]
) -> None:
    for cell_id in cell_ids:
        source = _cell(path, cell_id)
        hidden = source.split("### BEGIN HIDDEN TESTS", 1)[1]
        own = ("SACCT_TEXT", "HELD_JOB_ID") if path == A03 else ("RECORDS", "REMAINING_MIN")
        assert any(name in hidden for name in own), (
            f"{cell_id}: hidden tests ignore the own records"
        )


def test_a03_submits_and_cancels_a_job_held_by_the_qos() -> None:
    source = _cell(A03, "acct-jobs")
    assert '"--qos=' in source or "--qos={" in source
    assert '"scancel"' in source and "squeue" in source and "a03-sacct.txt" in source


def test_a06_solution_on_the_recorded_run() -> None:
    usage = accounting.parse_sacct(datasets.sample_text("a06-sacct.txt"))
    records = [
        {
            "alloc_gpus": job.alloc_gpus,
            "alloc_cpus": job.alloc_cpus,
            "elapsed_s": job.elapsed_s,
            "total_cpu_s": job.total_cpu_s,
        }
        for job in usage
    ]
    report = _solution(A06, "budget-report")["budget_report"](records, 6000, 2, 30)
    charged = sum(job.gpu_hours for job in usage)
    idle = {job.name: job for job in usage}["a06-idle"]
    assert math.isclose(report["charged_gpu_h"], charged)
    assert report["idle_gpu_h"] >= 0.9 * idle.gpu_hours > 0
    assert report["jobs_that_fit"] == 100
    limits = accounting.parse_assoc_mgr(
        datasets.sample_text("a06-assoc-mgr.txt"), user="root", account="aifkit-course"
    )
    assert limits and all(limit.limit_min > 0 for limit in limits)


def test_a06_names_the_eurohpc_access_modes_with_the_source() -> None:
    text = _cell(A06, "md-access-modes")
    for mode in ("Playground", "Fast Lane", "Large Scale"):
        assert f"**{mode}**" in text
    assert "https://eurohpc-ju.europa.eu/" in text
