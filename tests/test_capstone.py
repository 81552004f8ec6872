"""What every capstone shares (aifkit.course.capstone): targets, the allocation request, the job.

The job tests run a real two-rank torch.distributed script: on the real SLURM test cluster, and
under torchrun on this machine as the grading sandbox does when no SLURM node is free (there the
"no free node" answer is stubbed: it is the one thing a machine with a cluster cannot be).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import psutil
import pytest
from builders import REPO

from aifkit import slurm
from aifkit.course import capstone, facts, jobs, site

LOCAL = site.load("local")
ALLREDUCE = REPO / "tests" / "fixtures" / "allreduce_job.py"


def test_a_target_says_the_score_the_threshold_and_the_baseline() -> None:
    """Is a target met from the right side, never by NaN, and does its failure teach?"""
    auc = capstone.Target("PR-AUC", 0.6, baseline=0.41)
    assert auc.met(0.6) and auc.met(0.9) and not auc.met(0.59) and not auc.met(math.nan)
    mape = capstone.Target("MAPE (%)", 12.0, higher_is_better=False)
    assert mape.met(11.9) and mape.met(12.0) and not mape.met(12.1) and not mape.met(math.nan)
    auc.check(0.7)
    with pytest.raises(AssertionError) as failed:
        auc.check(0.45, on="held-out transactions")
    message = str(failed.value)
    assert "PR-AUC 0.45" in message and ">= 0.6" in message and "baseline scores 0.41" in message
    assert "held-out transactions" in message
    assert "<= 12" in mape.describe(13.0)


def test_the_allocation_request_by_hand() -> None:
    """GPU-hours, energy and CO2 of 10 epochs of 3.6 M samples at 1,000 samples/s on 4 GPUs."""
    request = capstone.allocation_request(
        samples_per_s_per_gpu=1000, samples=3.6e6, epochs=10, gpus=4, scaling_efficiency=0.9
    )
    seconds = 3.6e7 / (4 * 1000 * 0.9)  # 10,000 s
    joules = 4 * seconds * facts.value("gpu_node_power") / facts.value("gpus_per_node")
    joules *= facts.value("pue")
    assert request.gpus == 4
    assert request.wall_hours == pytest.approx(seconds / 3600)
    assert request.gpu_hours == pytest.approx(4 * seconds / 3600)
    assert request.energy_kwh == pytest.approx(joules / 3.6e6)
    assert request.co2_kg == pytest.approx(joules * facts.value("eu_grid_carbon_intensity"))
    assert "4 GPUs" in request.describe() and "GPU-hours" in request.describe()
    one = capstone.allocation_request(samples_per_s_per_gpu=1000, samples=3.6e6, epochs=1, gpus=1)
    assert one.wall_hours == pytest.approx(1.0), "one GPU scales perfectly with itself"
    twice = capstone.allocation_request(
        samples_per_s_per_gpu=1000, samples=3.6e6, epochs=1, gpus=1, runs=2
    )
    assert twice.gpu_hours == pytest.approx(2 * one.gpu_hours)


@pytest.mark.parametrize(
    "bad",
    [
        {"samples_per_s_per_gpu": 0},
        {"samples": -1},
        {"epochs": 0},
        {"gpus": 0},
        {"runs": 0},
        {"scaling_efficiency": 1.5},
        {"scaling_efficiency": 0},
    ],
)
def test_the_allocation_request_refuses_nonsense(bad: dict[str, float]) -> None:
    arguments = {"samples_per_s_per_gpu": 10.0, "samples": 100.0, "epochs": 1.0, "gpus": 2}
    with pytest.raises(ValueError, match="must be"):
        capstone.allocation_request(**(arguments | bad))  # type: ignore[arg-type]


def _spec(command: list[str], name: str) -> jobs.JobSpec:
    return jobs.spec_for_tier(command, tier="cpu-tiny", site=LOCAL, time_minutes=5, job_name=name)


def _ranks(folder: Path) -> list[tuple[int, int, float]]:
    records = [json.loads(path.read_text()) for path in sorted(folder.glob("rank*.json"))]
    return [(r["rank"], r["world_size"], r["sum"]) for r in records]


@pytest.mark.usefixtures("slurm_cluster")
def test_the_job_runs_on_slurm_when_a_node_is_free(tmp_path: Path) -> None:
    """Does a free node mean a real SLURM job, COMPLETED, with every rank's log?"""
    run = capstone.run_training_job(
        _spec([str(ALLREDUCE), str(tmp_path)], "capstone"), LOCAL, workdir=tmp_path, wait_s=180
    )
    assert (run.launch, run.state, run.ok) == ("slurm", "COMPLETED", True), run
    assert run.job_id and str(run).startswith(f"SLURM job {run.job_id}: COMPLETED")
    assert _ranks(tmp_path) == [(0, 2, 3.0), (1, 2, 3.0)]
    assert "rank 0 sum 3.0" in run.log and "rank 1 sum 3.0" in run.log, run.log


@pytest.mark.usefixtures("slurm_cluster")
def test_a_failing_or_overlong_job_says_so_and_leaves_nothing_queued(tmp_path: Path) -> None:
    """A script that fails ends FAILED; one past the wait ends TIMEOUT and is cancelled."""
    failed = capstone.run_training_job(
        _spec([str(tmp_path / "missing.py")], "missing"), LOCAL, workdir=tmp_path, wait_s=180
    )
    assert (failed.launch, failed.state, failed.ok) == ("slurm", "FAILED", False), failed
    sleeper = tmp_path / "sleep.py"
    sleeper.write_text("import time\ntime.sleep(600)\n")
    slow = capstone.run_training_job(
        _spec([str(sleeper)], "sleeper"), LOCAL, workdir=tmp_path / "slow", wait_s=3
    )
    assert (slow.launch, slow.state) == ("slurm", "TIMEOUT"), slow
    records = slurm.wait(slow.job_id, timeout_s=60)
    assert all(r.state == "CANCELLED" for r in records), records


def test_the_same_job_runs_under_torchrun_where_no_node_is_free(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a free node (the grading sandbox, a laptop) the same command runs here."""
    monkeypatch.setattr(capstone, "free_nodes", lambda partition: 0)
    run = capstone.run_training_job(
        _spec([str(ALLREDUCE), str(tmp_path)], "capstone"), LOCAL, workdir=tmp_path, wait_s=120
    )
    assert (run.launch, run.job_id, run.state) == ("local", "", "COMPLETED"), run.log
    assert _ranks(tmp_path) == [(0, 2, 3.0), (1, 2, 3.0)]
    assert str(run).startswith("torchrun on this machine: COMPLETED")
    sleeper = tmp_path / "sleep.py"
    sleeper.write_text("import time\ntime.sleep(600)\n")
    slow = capstone.run_training_job(_spec([str(sleeper)], "s"), LOCAL, workdir=tmp_path, wait_s=3)
    assert slow.state == "TIMEOUT"
    left = [
        p.info
        for p in psutil.process_iter(["pid", "cmdline"])
        if str(sleeper) in " ".join(p.info["cmdline"] or [])
    ]
    assert not left, f"torchrun's workers outlived the timeout: {left}"


def test_a_job_that_does_not_fit_the_site_is_refused_before_it_runs(tmp_path: Path) -> None:
    spec = _spec([str(ALLREDUCE), str(tmp_path)], "too-long")
    too_long = jobs.JobSpec(**{**spec.__dict__, "time_minutes": 10**6})
    with pytest.raises(jobs.JobError, match="allows at most"):
        capstone.run_training_job(too_long, LOCAL, workdir=tmp_path)
    assert not list(tmp_path.iterdir()), "nothing ran"


def test_the_grading_sandbox_runs_no_job(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Graded, without SLURM: nothing runs (no test grades the job), and the notebook is told."""
    monkeypatch.setenv(capstone.GRADING_ENV, "1")
    monkeypatch.setattr(capstone, "free_nodes", lambda partition: 0)
    run = capstone.run_training_job(
        _spec([str(ALLREDUCE), str(tmp_path)], "capstone"), LOCAL, workdir=tmp_path, wait_s=120
    )
    assert (run.launch, run.state, run.ok) == ("none", "SKIPPED", False)
    assert str(run).startswith("the job did not run") and not _ranks(tmp_path)
