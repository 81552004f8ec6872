"""What the capstones of track F share: a target on held-out data, the factory job, the request.

A capstone is graded on its **result**. Its hidden tests generate held-out data with a seed the
learner never sees (``aifkit.course.synthetic``), score the learner's trained model with the
capstone's metric and compare the score with a :class:`Target`, whose threshold the notebook
states (the given baseline misses it, a better model meets it).

:func:`run_training_job` runs the capstone's training script the way the factory would: a job
rendered from the site's template (what ``aifkit job render`` prints), submitted to SLURM when
the site's partition has a free node here, else the same script under ``torchrun`` on this
machine (the grading sandbox, a laptop). :func:`allocation_request` turns a measured throughput
into the GPU-hours, energy and CO2 of the full-size run: the numbers an allocation proposal asks
for.

Each capstone's task (how its data is split, its metric, the given baseline, its target) is a
module of this package, named as its generator in ``aifkit.course.synthetic``: ``fraud``,
``earth_observation``, ``network_flows``, ``energy``, ``ecg``.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from aifkit import processes, slurm
from aifkit.course import facts, jobs
from aifkit.course import site as site_mod

GRADING_ENV = "AIFKIT_GRADING"  # set by the grader in the learner's kernel (aifkit.grading)
__all__ = ["AllocationRequest", "JobRun", "Target", "allocation_request", "run_training_job"]


@dataclass(frozen=True)
class Target:
    """The score a capstone's model must reach on held-out data, and the given baseline's."""

    metric: str  # what is measured, e.g. "PR-AUC" or "MAPE (%)"
    threshold: float
    higher_is_better: bool = True
    baseline: float | None = None  # the given baseline's score, measured when calibrating

    def met(self, score: float) -> bool:
        """Whether ``score`` reaches the threshold (NaN never does)."""
        if math.isnan(score):
            return False
        return score >= self.threshold if self.higher_is_better else score <= self.threshold

    def describe(self, score: float) -> str:
        """One line: the score, the threshold, and the baseline's score when known."""
        sign = ">=" if self.higher_is_better else "<="
        line = f"{self.metric} {score:.4g} (target {sign} {self.threshold:g}"
        if self.baseline is not None:
            line += f"; the given baseline scores {self.baseline:.4g}"
        return line + ")"

    def check(self, score: float, *, on: str = "held-out data") -> None:
        """Raise AssertionError, with a message that teaches, when ``score`` misses the target."""
        if not self.met(float(score)):
            raise AssertionError(
                f"{self.describe(float(score))} on {on}: the model does not reach the target. "
                "Compare it with the baseline on your validation set first; a model that only "
                "does well on data it was trained on (or tuned on) will not do well here."
            )


@dataclass(frozen=True)
class JobRun:
    """How a training job ran: on SLURM or on this machine, and what it printed."""

    launch: str  # "slurm", "local", or "none" (not run: see run_training_job)
    job_id: str  # "" when it ran locally
    state: str  # SLURM's final state, or "COMPLETED"/"FAILED"/"TIMEOUT" for a local run
    seconds: float
    log: str  # the job's output (every log file of the job, each after a "--- name" line)

    @property
    def ok(self) -> bool:
        return self.state == "COMPLETED"

    def __str__(self) -> str:
        if self.launch == "none":
            return f"the job did not run ({self.log})"
        where = f"SLURM job {self.job_id}" if self.launch == "slurm" else "torchrun on this machine"
        return f"{where}: {self.state} after {self.seconds:.1f} s"


def free_nodes(partition: str, *, timeout_s: float = slurm.QUERY_TIMEOUT_S) -> int:
    """Idle or mixed nodes of ``partition`` that SLURM reports here (0: no SLURM, or no such partition)."""
    if not shutil.which("sinfo") or not shutil.which("sbatch"):
        return 0
    try:
        done = slurm.run(["sinfo", "-h", "-p", partition, "-o", "%D %t"], timeout_s)
    except (OSError, subprocess.TimeoutExpired):
        return 0
    rows = [line.split() for line in done.stdout.splitlines() if len(line.split()) == 2]
    return sum(int(count) for count, state in rows if state.rstrip("*~#") in {"idle", "mix"})


def _logs(folder: Path) -> str:
    if not folder.is_dir():
        return ""
    return "\n".join(
        f"--- {path.name}\n{path.read_text(encoding='utf-8', errors='replace').rstrip()}"
        for path in sorted(folder.glob("*.out"))
    )


def run_training_job(
    spec: jobs.JobSpec, site: site_mod.Site, *, workdir: Path, wait_s: float = 120
) -> JobRun:
    """Run ``spec`` (from ``jobs.spec_for_tier``): on SLURM when a node is free, else locally.

    On SLURM the job is submitted from ``workdir`` and waited for (cancelled when it runs past
    ``wait_s``). Locally the same command runs under ``torchrun --standalone`` with the spec's
    processes per node (CPU and gloo unless this machine has GPUs) and the same time limit. The
    script writes its results into ``workdir``; its output is in ``JobRun.log``.

    In the grading sandbox (``AIFKIT_GRADING=1``, no SLURM) nothing runs (state ``SKIPPED``):
    no test grades the job, and a DDP run would cost every submission its seconds.
    """
    jobs.validate(spec, site)  # the same limits wherever it runs
    workdir.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    on_slurm = free_nodes(spec.partition) > 0
    if not on_slurm and os.environ.get(GRADING_ENV) == "1":
        return JobRun("none", "", "SKIPPED", 0.0, "not run: the grader grades the notebook")
    if on_slurm:
        job_id = jobs.submit(spec, site, workdir=workdir, timeout_s=30)
        try:
            records = slurm.wait(job_id, timeout_s=wait_s)
            state = records[0].state if records else "COMPLETED"
        except slurm.JobError:
            slurm.cancel(job_id)
            state = "TIMEOUT"
        return JobRun(
            "slurm", job_id, state, time.monotonic() - start, _logs(workdir / spec.log_dir)
        )
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={spec.procs_per_node}",
        *spec.command,
    ]
    with subprocess.Popen(
        command,
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # torchrun and its workers in one group, ended together
    ) as process:
        try:
            log, _ = process.communicate(timeout=wait_s)
            state = "COMPLETED" if process.returncode == 0 else "FAILED"
        except subprocess.TimeoutExpired:
            processes.kill_group(process.pid, grace_s=5)
            log, _ = process.communicate()
            state = "TIMEOUT"
    return JobRun("local", "", state, time.monotonic() - start, log)


@dataclass(frozen=True)
class AllocationRequest:
    """What to ask the factory for: GPUs, wall-clock time, GPU-hours, energy and CO2."""

    gpus: int
    wall_hours: float
    gpu_hours: float
    energy_kwh: float  # facility energy: the GPU nodes' power times the PUE
    co2_kg: float

    def describe(self) -> str:
        """The request as the lines of an allocation proposal."""
        return (
            f"{self.gpus} GPUs for {self.wall_hours:.2f} h: {self.gpu_hours:,.1f} GPU-hours, "
            f"{self.energy_kwh:,.1f} kWh at the facility, {self.co2_kg:,.1f} kg CO2e"
        )


def allocation_request(
    *,
    samples_per_s_per_gpu: float,
    samples: float,
    epochs: float,
    gpus: int,
    scaling_efficiency: float = 0.9,
    runs: int = 1,
) -> AllocationRequest:
    """The allocation a training run needs, from a measured throughput per GPU.

    ``runs`` covers the tuning runs as well as the final one. Throughput on ``gpus`` GPUs is
    ``gpus * samples_per_s_per_gpu * scaling_efficiency`` (1.0 on one GPU). Energy counts each
    GPU's share of a busy node (``gpu_node_power`` / ``gpus_per_node``) times the ``pue``;
    CO2 uses ``eu_grid_carbon_intensity`` (facts.yml: replace both with your site's figures).
    """
    if samples_per_s_per_gpu <= 0 or samples <= 0 or epochs <= 0 or gpus < 1 or runs < 1:
        raise ValueError(
            "throughput, samples and epochs must be > 0, gpus and runs at least 1: got "
            f"{samples_per_s_per_gpu=}, {samples=}, {epochs=}, {gpus=}, {runs=}"
        )
    if not 0 < scaling_efficiency <= 1:
        raise ValueError(f"scaling_efficiency must be in (0, 1], got {scaling_efficiency}")
    efficiency = 1.0 if gpus == 1 else scaling_efficiency
    seconds = runs * samples * epochs / (gpus * samples_per_s_per_gpu * efficiency)
    gpu_hours = gpus * seconds / 3600
    watts_per_gpu = facts.value("gpu_node_power") / facts.value("gpus_per_node")
    joules = gpus * seconds * watts_per_gpu * facts.value("pue")
    return AllocationRequest(
        gpus=gpus,
        wall_hours=seconds / 3600,
        gpu_hours=gpu_hours,
        energy_kwh=joules / 3.6e6,
        co2_kg=joules * facts.value("eu_grid_carbon_intensity"),
    )
