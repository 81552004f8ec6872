"""Accounting on the real test cluster (slurmdbd on MariaDB) and the learner's view of it.

The parsers are checked on output recorded from this cluster; the rest runs real jobs: sacct,
sreport and sshare must return their records, a job over the QOS "budget" limit must wait with
SLURM's reason, and ``aifkit.course.accounting`` must read the caller's own records and budget.
"""

from __future__ import annotations

import getpass
import subprocess
import time
from pathlib import Path

import pytest

from aifkit import doctor, slurm
from aifkit.course import accounting

on_cluster = pytest.mark.usefixtures("slurm_cluster")
ACCOUNT = "aifkit-course"

SACCT = """JobID|JobName|User|Account|QOS|Partition|State|Reason|ExitCode|ElapsedRaw|TimelimitRaw|TotalCPU|MaxRSS|ReqTRES|AllocTRES|NNodes
4|wrap|root|aifkit-course|budget|debug|COMPLETED|None|0:0|4|30|00:00.839||billing=1,cpu=1,gres/gpu=1,mem=11796M,node=1|billing=1,cpu=1,gres/gpu=1,node=1|1
4.batch|batch||aifkit-course|||COMPLETED||0:0|4||00:00.839|52148K||cpu=1,gres/gpu=1,mem=0,node=1|1
5|two|root|aifkit-course|normal|debug|CANCELLED by 0|None|0:0|3600|UNLIMITED|1-01:02:03|||billing=4,cpu=4,gres/gpu=4,node=2|2
5.0|python3||aifkit-course|||CANCELLED||0:0|3600||01:02.500|1.5G||cpu=4,gres/gpu=4,node=2|2
6|wrap|root|aifkit-course|budget|debug|PENDING|None|0:0|0|40|||billing=1,cpu=1,gres/gpu=2,mem=11796M,node=1||1
"""

ASSOC_MGR = """Current Association Manager state

Association Records

ClusterName=aifkit Account=aifkit-course UserName= Partition= Priority=0 ID=3
    GrpTRESMins=cpu=N(0),mem=N(0),gres/gpu=90000(1234)
ClusterName=aifkit Account=aifkit-course UserName=root(0) Partition= Priority=0 ID=4
    GrpTRESMins=cpu=N(0),mem=N(0),energy=N(0),gres/gpu=6000(42)
ClusterName=aifkit Account=aifkit-course UserName=ann(1001) Partition= Priority=0 ID=5
    GrpTRESMins=cpu=N(0),gres/gpu=10(10)

QOS Records

QOS=normal(1)
    GrpTRESMins=cpu=N(0),gres/gpu=N(0)
QOS=budget(2)
    GrpTRESMins=cpu=N(0),gres/gpu=60(3)
"""


# -- parsers -------------------------------------------------------------------------------------


def test_sacct_rows_fold_steps_into_their_job() -> None:
    """Are requested/allocated CPUs and GPUs, CPU time, peak memory and charges read per job?"""
    first, second, third = accounting.parse_sacct(SACCT)
    assert (first.job_id, first.state, first.qos, first.alloc_gpus, first.req_gpus) == (
        "4",
        "COMPLETED",
        "budget",
        1,
        1,
    )
    assert first.total_cpu_s == pytest.approx(0.839)
    assert first.cpu_efficiency == pytest.approx(0.839 / 4)
    assert first.max_rss_bytes == 52148 * 1024, "MaxRSS comes from the batch step"
    assert first.requested_gpu_minutes == 30 and first.gpu_hours == pytest.approx(4 / 3600)
    assert second.state == "CANCELLED" and second.time_limit_min is None
    assert second.total_cpu_s == 86400 + 3723 and second.nodes == 2
    assert second.max_rss_bytes == int(1.5 * 2**30) and second.gpu_hours == pytest.approx(4.0)
    assert second.idle_cpu_s == 0.0, "more CPU time than allocated counts as no idle time"
    assert (third.state, third.alloc_cpus, third.cpu_efficiency, third.req_gpus) == (
        "PENDING",
        0,
        None,
        2,
    )
    with pytest.raises(accounting.AccountingError, match="no header"):
        accounting.parse_sacct("sacct: error: Slurm accounting storage is disabled\n")


def test_a_record_is_settled_once_final_with_its_start() -> None:
    """A finished job whose start slurmdbd has not yet received (no partition) is not settled."""
    first, second, third = accounting.parse_sacct(SACCT)
    assert first.settled and second.settled and not third.settled
    early = accounting.parse_sacct(SACCT.replace("|budget|debug|COMPLETED|", "|budget||COMPLETED|"))
    assert not early[0].settled, "no partition yet: the start has not reached the database"


def test_budget_limits_from_assoc_mgr() -> None:
    """Are the GPU-minute limits of the user, the account and the QOS read, with their usage?"""
    limits = accounting.parse_assoc_mgr(ASSOC_MGR, user="root", account=ACCOUNT)
    assert [(x.scope, x.limit_min, x.used_min) for x in limits] == [
        ("account aifkit-course", 90000, 1234),
        ("user root in aifkit-course", 6000, 42),
        ("qos budget", 60, 3),
    ]
    budget = accounting.Budget("root", ACCOUNT, tuple(limits[:2]))
    assert budget.remaining_min == 5958
    assert budget.describe() == (
        "5958 of 6000 GPU-minutes left (99.3 GPU-hours; user root in aifkit-course)"
    )
    spent = accounting.parse_assoc_mgr(ASSOC_MGR, user="ann", account=ACCOUNT)[1]
    assert (spent.scope, spent.limit_min) == ("user ann in aifkit-course", 10)
    assert spent.remaining_min == 0
    assert accounting.Budget("x", ACCOUNT, ()).remaining_min is None


def test_running_jobs_hold_budget_in_assoc_mgr() -> None:
    """Are the GPU-minutes held by running jobs (GrpTRESRunMins) read with the limit?"""
    text = (
        "ClusterName=aifkit Account=aifkit-course UserName=ann(1001) Partition= ID=5\n"
        "    GrpTRESMins=cpu=N(0),gres/gpu=30(4)\n"
        "    GrpTRESRunMins=cpu=N(7),mem=N(0),gres/gpu=N(19)\n"
        "QOS=budget(2)\n"
        "    GrpTRESMins=gres/gpu=60(0)\n"
        "    GrpTRESRunMins=gres/gpu=N(3)\n"
    )
    found = accounting.parse_assoc_mgr(text, user="ann", account="aifkit-course")
    assert [(x.scope, x.limit_min, x.used_min, x.running_min) for x in found] == [
        ("user ann in aifkit-course", 30, 4, 19),
        ("qos budget", 60, 0, 3),
    ]
    assert found[0].remaining_min == 7


def test_without_slurm_there_is_no_accounting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without SLURM's commands, do the library and doctor say there is no accounting?"""
    monkeypatch.setenv("PATH", str(tmp_path))
    assert not accounting.enabled()
    with pytest.raises(accounting.AccountingError, match="no accounting on this cluster"):
        accounting.jobs()
    with pytest.raises(accounting.AccountingError, match="no accounting on this cluster"):
        accounting.budget()
    check = doctor.check_budget({"PATH": str(tmp_path)})
    assert (check.status, check.value) == (
        doctor.OK,
        "no accounting on this cluster (no SLURM here)",
    )


# -- the real cluster ----------------------------------------------------------------------------


def sbatch(*args: str) -> str:
    done = subprocess.run(
        ["sbatch", "--parsable", "--output=/dev/null", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return slurm.parse_job_id(done.stdout)


@on_cluster
def test_two_nodes_are_idle_and_a_job_spans_both() -> None:
    """Does sinfo show two nodes, and a 2-task job run one task on each (SLURMD_NODENAME)?"""
    nodes = slurm.run(["sinfo", "-h", "-N", "-o", "%N %c %G"], 30).stdout.splitlines()
    assert [line.split() for line in nodes] == [
        ["aifkit-n1", "2", "gpu:2"],
        ["aifkit-n2", "2", "gpu:2"],
    ]
    done = subprocess.run(
        [
            "srun",
            "--immediate=60",
            "-N2",
            "-n2",
            "--ntasks-per-node=1",
            "--time=2",
            "bash",
            "-c",
            'echo "$SLURM_PROCID $SLURMD_NODENAME"',
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert sorted(done.stdout.split("\n")[:2]) == ["0 aifkit-n1", "1 aifkit-n2"]


@on_cluster
def test_sacct_records_cpu_time_memory_and_gpus_of_my_job() -> None:
    """Does the accounting database keep a finished job's CPU time, MaxRSS and GPUs?"""
    busy = "import time\nx = bytearray(64 * 2**20)\nt = time.process_time()\nwhile time.process_time() - t < 1.5: pass"
    job_id = sbatch(
        "--gres=gpu:1", "--time=2", "--job-name=acct-busy", f"--wrap=python3 -c '{busy}'"
    )
    (usage,) = accounting.settled_jobs([job_id])
    assert (usage.state, usage.name, usage.account) == ("COMPLETED", "acct-busy", ACCOUNT)
    assert (usage.req_gpus, usage.alloc_gpus, usage.alloc_cpus) == (1, 1, 1)
    assert usage.total_cpu_s >= 1.4, f"the job burnt 1.5 s of CPU, sacct says {usage.total_cpu_s}"
    assert usage.max_rss_bytes and usage.max_rss_bytes >= 64 * 2**20, (
        "jobacct_gather/linux samples memory"
    )
    # Elapsed has whole seconds: a 1.5 CPU-s job may show 1 s of wall time (efficiency 1.55)
    assert usage.cpu_efficiency is not None and 0 < usage.cpu_efficiency <= 2.0
    assert usage.gpu_hours == pytest.approx(usage.elapsed_s / 3600)
    me = getpass.getuser()
    share = slurm.run(
        ["sshare", "-n", "-P", "-U", "-A", ACCOUNT, "-o", "Account,User,RawUsage"], 30
    )
    rows = [line.strip().split("|") for line in share.stdout.splitlines()]
    (mine,) = [row for row in rows if row[:2] == [ACCOUNT, me]]
    assert int(mine[2]) > 0, f"sshare counts my usage: {share.stdout}"
    # sreport reads slurmdbd's hourly rollups: this hour's jobs appear once the hour is over,
    # so a fresh cluster can only show that it answers for this cluster, in its own format.
    report = slurm.run(
        ["sreport", "-P", "cluster", "AccountUtilizationByUser", "start=now-1days", "end=now"], 30
    )
    assert report.returncode == 0 and "Cluster|Account|Login|Proper Name|Used" in report.stdout


@on_cluster
def test_a_job_over_the_qos_gpu_minutes_waits_with_the_reason() -> None:
    """Is a job asking for more GPU-minutes than QOS budget allows held PENDING, reason given?"""
    job_id = sbatch("--qos=budget", "--gres=gpu:2", "--time=31", "--wrap=true")  # 62 > 60 GPU-min
    try:
        deadline = time.monotonic() + 30
        while (found := slurm.status(job_id)).reason in (
            "None",
            "",
        ) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert (found.state, found.reason) == ("PENDING", "QOSMaxGRESMinutesPerJob")
        while not (records := accounting.jobs([job_id])) and time.monotonic() < deadline:
            time.sleep(0.5)  # the controller sends the new job to slurmdbd asynchronously
        (usage,) = records
        assert (usage.state, usage.reason, usage.qos) == (
            "PENDING",
            "QOSMaxGRESMinutesPerJob",
            "budget",
        )
        assert usage.requested_gpu_minutes == 62
    finally:
        slurm.cancel(job_id)
    small = sbatch("--qos=budget", "--gres=gpu:2", "--time=30", "--wrap=true")  # 60: fits
    assert accounting.settled_jobs([small])[0].state == "COMPLETED"


@on_cluster
def test_my_budget_and_doctor_show_it() -> None:
    """Does budget read my association's GPU-minute limit, and doctor print what is left?"""
    found = accounting.budget()
    assert found.account == ACCOUNT
    mine = [x for x in found.limits if x.scope == f"user {getpass.getuser()} in {ACCOUNT}"]
    assert mine and mine[0].limit_min == 6000 and found.remaining_min is not None
    check = doctor.check_budget({"PATH": slurm.run(["sh", "-c", "echo $PATH"], 5).stdout.strip()})
    assert check.status == doctor.OK and check.value == found.describe()
    with pytest.raises(accounting.AccountingError, match="no association"):
        accounting.budget(user="nobody-here")


@on_cluster
def test_budget_of_a_named_qos() -> None:
    """Does budget(qos=...) read that QOS's GPU-minute limit instead of the default QOS's?"""
    named = accounting.budget(qos="budget")
    assert [x.limit_min for x in named.limits if x.scope == "qos budget"] == [60]
    default = accounting.budget()
    assert not [x for x in default.limits if x.scope == "qos budget"], "normal has no limit"
