"""The one SLURM client (aifkit.slurm) and the real SLURM test cluster it talks to.

Nothing on the cluster is mocked: Debian's slurm-wlm schedules the jobs. GPUs are fake (character
devices cloned from /dev/null), because this machine has none; SLURM still allocates and exports
them. The parsers are also checked on recorded output of a production cluster (data/samples).
"""

from __future__ import annotations

import json
import re
import shutil
import stat
from pathlib import Path

import nbformat
import pytest
from builders import COURSES

from aifkit import slurm
from aifkit.course import datasets
from aifkit.notebooks.validate import validate

on_cluster = pytest.mark.usefixtures("slurm_cluster")
A03 = COURSES / "a03-slurm" / "a03-slurm.ipynb"
NODES = ("aifkit-n1", "aifkit-n2")  # scripts/slurm-up.sh


def script(folder: Path, name: str, body: str, *directives: str) -> Path:
    """A batch script in ``folder`` whose output goes to ``folder/<name>.out``."""
    lines = ["#!/bin/bash", f"#SBATCH --job-name={name}", f"#SBATCH --output={folder}/{name}.out"]
    lines += [f"#SBATCH {directive}" for directive in (*directives, "--time=00:02:00")]
    path = folder / f"{name}.sbatch"
    path.write_text("\n".join([*lines, body, ""]), encoding="utf-8")
    return path


# -- parsers, on recorded and made-up output ---------------------------------------------------


def test_scontrol_sample_of_a_production_array_task() -> None:
    """Is every field aifkit uses read from a real `scontrol show job` of an array task?"""
    (job,) = slurm.parse_scontrol(datasets.sample_text("a03-scontrol-job.txt"))
    assert job == slurm.JobStatus(
        job_id="482121",
        state="RUNNING",
        exit_code="0:0",
        reason="None",
        nodes="gpu0412",
        host="gpu0412",
        name="sweep-lr",
        user="mrossi",
        partition="gpu",
    )
    assert job.running and not job.pending and not job.finished
    oneliner = " ".join(datasets.sample_text("a03-scontrol-job.txt").split())
    assert slurm.parse_scontrol(oneliner) == [job], "--oneliner output reads the same"


def test_squeue_sample_of_a_busy_production_queue() -> None:
    """Are squeue's rows read right: array ids as text, reasons with spaces, node lists?"""
    rows = slurm.parse_squeue(datasets.sample_text("a03-squeue.txt"))
    assert len(rows) == 15 and rows[0].job_id == "482113_[12-31%4]"
    assert [r.state for r in rows].count("PENDING") == 7
    assert sum(r.running for r in rows) == 8, "7 RUNNING and 1 COMPLETING"
    by_id = {r.job_id: r for r in rows}
    assert by_id["482230"].reason == "ReqNodeNotAvail, Reserved for maintenance"
    assert (by_id["482190"].reason, by_id["482190"].nodes) == ("Priority", "")
    assert (by_id["481977"].reason, by_id["481977"].nodes) == ("", "gpu[0101-0132]")
    assert (by_id["482150"].user, by_id["482150"].name, by_id["482150"].partition) == (
        "kschmidt",
        "tokenize",
        "cpu",
    )
    (never_ran,) = slurm.parse_squeue("34 debug hub ann CANCELLED 0:00 1 \n")  # seen on the cluster
    assert (never_ran.state, never_ran.nodes, never_ran.reason) == ("CANCELLED", "", "")
    with pytest.raises(slurm.JobError, match="3 of 8 columns"):
        slurm.parse_squeue("42 debug hello")


@pytest.mark.parametrize(
    ("output", "job_id"),
    [("42\n", "42"), ("42;aifkit\n", "42"), ("sbatch: warning: x\n43\n", "43")],
)
def test_job_id_from_sbatch_parsable(output: str, job_id: str) -> None:
    """Is the job id taken from --parsable's last line, without the cluster name?"""
    assert slurm.parse_job_id(output) == job_id


def test_sbatch_messages_and_unreachable_controllers() -> None:
    """Is sbatch's complaint kept in one line, and a silent controller told from a lost job?"""
    with pytest.raises(slurm.JobError, match="sbatch printed no job id: Submitted batch job"):
        slurm.parse_job_id("Submitted batch job\n")
    stderr = (
        "sbatch: error: Memory specification can not be satisfied\n"
        "sbatch: error: Batch job submission failed: Requested node configuration is not available"
    )
    assert slurm.sbatch_message(stderr) == (
        "Memory specification can not be satisfied; "
        "Batch job submission failed: Requested node configuration is not available"
    )
    assert slurm.sbatch_message("") == "no reason given"
    assert slurm.controller_unreachable(
        "slurm_load_jobs error: Unable to contact slurm controller (connect failure)"
    )
    assert slurm.controller_unreachable(slurm.no_answer("scontrol", 30))
    assert not slurm.controller_unreachable("slurm_load_jobs error: Invalid job id specified")


def test_missing_and_silent_commands_say_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without SLURM's commands, or with one that hangs, is the error clear and prompt?"""
    sleep = shutil.which("sleep")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(slurm.JobError, match="sbatch not found: run this on a SLURM login node"):
        slurm.submit(tmp_path / "job.sbatch")
    hanging = tmp_path / "scontrol"
    hanging.write_text(f"#!/bin/sh\nexec {sleep} 30\n", encoding="utf-8")
    hanging.chmod(hanging.stat().st_mode | stat.S_IXUSR)
    with pytest.raises(slurm.JobError, match="scontrol did not answer within 1 s"):
        slurm.status("1", timeout_s=1)


# -- the client on the real cluster ------------------------------------------------------------


@on_cluster
def test_two_nodes_offer_two_gpus_each() -> None:
    """Is the debug partition up with two nodes, each with gpu:2 as GRES?"""
    out = slurm.run(["sinfo", "-h", "-o", "%P %D %G %N"], 30)
    assert out.stdout.split() == ["debug*", "2", "gpu:2", "aifkit-n[1-2]"]


@on_cluster
def test_batch_job_gets_its_gpu(tmp_path: Path) -> None:
    """Does a job asking for one GPU complete and see CUDA_VISIBLE_DEVICES set by SLURM?"""
    path = script(
        tmp_path,
        "gpu",
        "echo gpus=$CUDA_VISIBLE_DEVICES nodes=$SLURM_JOB_NUM_NODES",
        "--gres=gpu:1",
    )
    job_id = slurm.submit(path)
    (done,) = slurm.wait(job_id, timeout_s=120)
    assert (done.state, done.exit_code, done.name) == ("COMPLETED", "0:0", "gpu")
    assert done.host in NODES and done.nodes == done.host
    assert slurm.status(job_id) == done
    assert (tmp_path / "gpu.out").read_text().split() == ["gpus=0", "nodes=1"]


@on_cluster
def test_too_many_gpus_is_refused_in_sbatchs_words(tmp_path: Path) -> None:
    """Is a request beyond the node's two GPUs refused at submission, not left pending?"""
    with pytest.raises(
        slurm.JobError,
        match=r"sbatch refused greedy\.sbatch: .*Requested node configuration is not available",
    ):
        slurm.submit(script(tmp_path, "greedy", "true", "--gres=gpu:3"))


@on_cluster
def test_failed_job_reports_its_exit_code(tmp_path: Path) -> None:
    """Does a script that exits 3 end FAILED with exit code 3:0 and SLURM's reason?"""
    job_id = slurm.submit(script(tmp_path, "exit3", "exit 3"), chdir=tmp_path)
    (done,) = slurm.wait(job_id, timeout_s=120)
    assert (done.state, done.exit_code, done.reason) == ("FAILED", "3:0", "NonZeroExitCode")


@on_cluster
def test_wait_covers_every_task_of_an_array(tmp_path: Path) -> None:
    """Does wait return only once all of an array's tasks ended, one record each?"""
    path = script(tmp_path, "arr", 'echo "task $SLURM_ARRAY_TASK_ID"', "--array=0-2")
    array_id = slurm.submit(path)
    records = slurm.wait(array_id, timeout_s=120)
    assert len(records) == 3 and all(r.state == "COMPLETED" for r in records), records
    assert len({r.job_id for r in records}) == 3


@on_cluster
def test_pending_job_waits_with_its_reason_then_is_cancelled(tmp_path: Path) -> None:
    """Does a job held for an hour show BeginTime, time out wait, and end CANCELLED by cancel?"""
    job_id = slurm.submit(script(tmp_path, "later", "true", "--begin=now+3600"))
    try:
        with pytest.raises(
            slurm.JobError, match=rf"job {job_id} has not finished after 1 s \(PENDING\)"
        ):
            slurm.wait(job_id, timeout_s=1)
        (queued,) = slurm.queue(job_id=job_id)
        assert (queued.state, queued.reason, queued.name, queued.user) == (
            "PENDING",
            "BeginTime",
            "later",
            "root",
        )
        assert slurm.status(job_id).reason == "BeginTime"
    finally:
        slurm.cancel(job_id)
    (done,) = slurm.wait(job_id, timeout_s=60)
    assert done.state == "CANCELLED"
    slurm.cancel(job_id)  # cancelling an ended job is not an error


@on_cluster
def test_unknown_job_is_an_error_naming_it() -> None:
    """Is a job id the controller never had an error that says so, and an empty queue for it?"""
    with pytest.raises(slurm.JobError, match="scontrol knows no job 99999999"):
        slurm.status("99999999")
    assert slurm.queue(job_id="99999999") == []
    assert slurm.wait("99999999", timeout_s=5) == [], "a forgotten job counts as ended"


@on_cluster
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
    assert slurm.status(job_ids[0]).state == "COMPLETED"
