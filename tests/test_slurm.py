"""The real SLURM test cluster: it comes up, runs jobs with fake GPUs, and a03's job completes.

Nothing here is mocked: Debian's slurm-wlm schedules the jobs. GPUs are fake (character devices
cloned from /dev/null), because this machine has none; SLURM still allocates and exports them.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import nbformat
import pytest
from builders import COURSES

from aifkit.notebooks.validate import validate

pytestmark = pytest.mark.usefixtures("slurm_cluster")
A03 = COURSES / "a03-slurm" / "a03-slurm.ipynb"


def scontrol_state(job_id: str) -> str:
    out = subprocess.run(
        ["scontrol", "show", "job", job_id], capture_output=True, text=True, timeout=30
    )
    match = re.search(r"JobState=(\S+)", out.stdout)
    assert match, f"scontrol knows no job {job_id}: {out.stdout}{out.stderr}"
    return match.group(1)


def test_node_offers_two_gpus() -> None:
    """Is the node idle with gpu:2 as GRES and the debug partition up?"""
    out = subprocess.run(
        ["sinfo", "-h", "-o", "%P %t %G"], capture_output=True, text=True, timeout=30
    )
    assert out.stdout.split() == ["debug*", "idle", "gpu:2"]


def test_batch_job_gets_its_gpu(tmp_path: Path) -> None:
    """Does a job asking for one GPU complete and see CUDA_VISIBLE_DEVICES set by SLURM?"""
    output = tmp_path / "job.out"
    submitted = subprocess.run(
        ["sbatch", "--wait", "--parsable", "--gres=gpu:1", "--time=00:01:00", f"--output={output}",
         "--wrap", "echo gpus=$CUDA_VISIBLE_DEVICES nodes=$SLURM_JOB_NUM_NODES"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.strip().split(";")[0]
    assert scontrol_state(job_id) == "COMPLETED"
    assert output.read_text().split() == ["gpus=0", "nodes=1"]


def test_too_many_gpus_is_rejected() -> None:
    """Is a request beyond the node's two GPUs refused at submission, not left pending?"""
    refused = subprocess.run(
        ["sbatch", "--gres=gpu:3", "--wrap", "true"], capture_output=True, text=True, timeout=60
    )
    assert (
        refused.returncode != 0
        and "Requested node configuration is not available" in refused.stderr
    )


@pytest.mark.notebook
def test_a03_submits_a_real_job_that_completes(tmp_path: Path) -> None:
    """Validated with the cluster up, does a03 take the real path and its job complete?"""
    (outcome,) = validate(
        [A03], tier="cpu-tiny", report_dir=tmp_path / "report", state_path=tmp_path / "s.json"
    )
    assert outcome.status == "passed", f"{outcome.kind}: {outcome.reason}\n{outcome.traceback}"
    text = json.dumps(
        [cell.get("outputs", []) for cell in nbformat.read(Path(outcome.output), 4).cells]
    )
    job_ids = re.findall(r"AIFKIT_A03_JOB_ID=(\d+)", text)
    assert len(job_ids) == 1, "a03 must print its submitted job id exactly once"
    assert scontrol_state(job_ids[0]) == "COMPLETED"
