"""The factory spawner's queue view, GPU budget and reservation check, without a cluster.

The parsers read output recorded from the test cluster (scripts/slurm-up.sh); the real cluster
and hub versions of these checks are in tests/test_hub_slurm.py.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from traitlets.config import Config

from aifkit.course import accounting
from aifkit.hub import budget, check, queue, reservation

# squeue --noheader --states=PENDING --sort=-p,i --format=%i|%P|%Q|%S|%r
SQUEUE = """\
17|debug|20|2026-12-03T04:17:41|BeginTime
12|debug|5|N/A|Priority
18|gpu|9|N/A|Resources
15|debug|5|2026-12-05T03:17:49|Reservation
"""

RESERVATIONS = """\
ReservationName=class-a StartTime=2026-12-05T03:17:49 EndTime=2026-12-05T03:27:49 Duration=00:10:00
   Nodes=aifkit-n[1-2] NodeCnt=2 CoreCnt=4 Features=(null) PartitionName=(null) Flags=SPEC_NODES
   TRES=cpu=4
   Users=(null) Groups=(null) Accounts=aifkit-course Licenses=(null) State=INACTIVE BurstBuffer=(null)
   MaxStartDelay=(null)

ReservationName=gpu-only StartTime=2026-12-01T08:00:00 EndTime=2026-12-01T09:00:00 Duration=01:00:00 Nodes=gpu[07-08] NodeCnt=2 CoreCnt=4 Features=(null) PartitionName=gpu Flags= TRES=cpu=4 Users=ann Groups=(null) Accounts=(null) Licenses=(null) State=ACTIVE BurstBuffer=(null) MaxStartDelay=(null)
"""
NOW = datetime(2026, 12, 3, 4, 0, 0)


def test_pending_job_position_estimate_and_reason() -> None:
    """Is a job's place counted in its own partition by priority, with SLURM's estimate?"""
    found = queue.parse_pending(SQUEUE, "15")
    assert found is not None
    assert (found.position, found.pending, found.partition) == (3, 3, "debug")  # 12 came first
    assert found.start == datetime(2026, 12, 5, 3, 17, 49)
    assert found.describe(NOW) == (
        "reason: Reservation (its reservation has not started yet), position 3 of 3 in "
        "partition debug, SLURM expects it to start at 2026-12-05 03:17 (in 1 d 23 h)"
    )
    first = queue.parse_pending(SQUEUE, "17")
    assert first is not None and first.position == 1
    assert "in 17 min" in first.describe(NOW)
    other = queue.parse_pending(SQUEUE, "12")
    assert other is not None and other.start is None
    assert other.describe(NOW).endswith(
        "position 2 of 3 in partition debug, no start time estimated yet"
    )
    odd = queue.parse_pending("9|debug|1|N/A|SomethingNew\n", "9")
    assert odd is not None and odd.describe(NOW).startswith("reason: SomethingNew, position 1 of 1")
    assert queue.parse_pending(SQUEUE, "99") is None, "not pending (started, or gone)"
    assert queue.parse_pending("", "15") is None


def test_budget_refusal_counts_gpus_times_the_time_limit() -> None:
    """Is a spawn over the tightest GPU-minute limit refused with what is left, others not?"""
    mine = accounting.GpuLimit("user ann in aifkit-course", 30, 5, running_min=20)
    assert mine.remaining_min == 5
    left = accounting.Budget("ann", "aifkit-course", (mine,))
    spawn = budget.cost("gpu", 1, "00:40:00")
    assert spawn.gpu_minutes == 40
    told = budget.refusal(spawn, left)
    assert told.startswith(
        "Profile gpu would use up to 40 GPU-minutes (1 GPU x 40 min) but you have"
    )
    assert (
        "5 of 30 GPU-minutes left (0.1 GPU-hours; user ann in aifkit-course, 20 held by running jobs)"
        in told
    )
    assert "nothing was submitted" in told
    assert budget.refusal(budget.cost("tiny", 1, "00:05:00"), left) == ""
    assert budget.refusal(budget.cost("cpu", 0, "02:00:00"), left) == "", "no GPUs, no cost"
    assert budget.refusal(spawn, None) == "", "no accounting: SLURM decides"
    assert budget.refusal(spawn, accounting.Budget("ann", "a", ())) == "", "no limit"
    note = budget.form_note([(spawn, left), (budget.cost("tiny", 1, "00:05:00"), left)])
    assert "<p>GPU budget: 5 of 30 GPU-minutes left" in note
    assert "<li>gpu: up to 40 GPU-minutes (over your budget)</li>" in note
    assert "<li>tiny: up to 5 GPU-minutes</li>" in note
    assert budget.form_note([(spawn, None)]) == ""
    evil = budget.form_note([(budget.cost("<script>", 1, "00:01:00"), left)])
    assert "<script>" not in evil and "&lt;script&gt;" in evil


def test_reservations_parse_and_problems() -> None:
    """Are reservations read (nodes expanded), and a missing, ended or misplaced one told?"""
    found = reservation.parse(RESERVATIONS)
    assert set(found) == {"class-a", "gpu-only"}
    assert found["class-a"].nodes == {"aifkit-n1", "aifkit-n2"}
    assert found["class-a"].partition == "" and found["gpu-only"].partition == "gpu"
    assert found["gpu-only"].nodes == {"gpu07", "gpu08"}
    nodes = {"debug": frozenset({"aifkit-n1", "aifkit-n2"}), "cpu": frozenset({"cpu01"})}
    assert reservation.problems("class-a", "debug", found, nodes, NOW) == []
    assert reservation.problems("nosuch", "debug", found, nodes, NOW) == [
        "the cluster has no reservation 'nosuch' (it has: class-a, gpu-only)"
    ]
    assert reservation.problems("gpu-only", "gpu", found, nodes, NOW) == [
        "reservation 'gpu-only' ended at 2026-12-01 09:00"
    ]
    later = datetime(2026, 11, 30)
    assert reservation.problems("gpu-only", "debug", found, nodes, later) == [
        "reservation 'gpu-only' is for partition gpu, not debug"
    ]
    assert reservation.problems("class-a", "cpu", found, nodes, NOW) == [
        "reservation 'class-a' holds nodes aifkit-n1, aifkit-n2, none of them in partition cpu"
    ]
    assert reservation.expand_nodes("n[01-03,07],x") == {"n01", "n02", "n03", "n07", "x"}
    assert reservation.parse("No reservations in the system\n") == {}


def _profiles(child: dict[str, str]) -> Config:
    c = Config()
    c.JupyterHub.spawner_class = "aifkit.hub.spawner.FactoryProfilesSpawner"
    c.ProfilesSpawner.profiles = [
        (
            "Class",
            "class",
            "aifkit.hub.spawner.FactorySlurmSpawner",
            {"req_partition": "debug", **child},
        )
    ]
    return c


def test_reservations_rule_without_a_cluster(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Without SLURM's commands: bad names are errors, the rest a warning that it went unchecked."""
    monkeypatch.setenv("PATH", str(tmp_path))
    findings = [f for f in check.check(_profiles({"req_reservation": "class-a", "req_qos": "budget"}))
                if f.rule == "reservations"]  # fmt: skip
    assert [(f.severity, f.setting) for f in findings] == [
        ("warning", "c.ProfilesSpawner.profiles['class']")
    ]
    assert "were not checked: scontrol not found" in findings[0].message
    bad = [f for f in check.check(_profiles({"req_reservation": "a b", "req_options": "--reservation=x"}))
           if f.rule == "reservations"]  # fmt: skip
    assert sorted((f.severity, f.message) for f in bad) == [
        ("error", "reservation 'a b' is not a SLURM name (letters, digits, _ . -)"),
        (
            "warning",
            "--reservation or --qos in the extra options (--reservation=x): nothing checks them there",
        ),
    ]
    assert not [f for f in check.check(_profiles({})) if f.rule == "reservations"]
