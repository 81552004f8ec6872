"""Where a learner's pending server job stands in the SLURM queue, in words for the spawn page.

``queue_command`` lists every pending job, highest priority first, with SLURM's estimated start
time (``%S``: what ``squeue --start`` prints) and its reason; ``parse_pending`` turns that into
a ``PendingJob`` for one job id: its place among the pending jobs of its partition, the
estimate when SLURM has one, and the reason with a plain explanation. The spawner runs the
command as the learner (batchspawner's ``exec_prefix``) and shows ``PendingJob.describe()``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from aifkit import slurm

QUEUE_FORMAT = "%i|%P|%Q|%S|%r"  # job id, partition, priority, expected start, reason

# SLURM's reasons a learner meets while waiting, in plain words (others are shown as they are).
REASONS = {
    "Priority": "jobs with a higher priority are ahead of yours",
    "Resources": "it waits for a node with what the profile asks for to free up",
    "BeginTime": "it may not start before its begin time",
    "Reservation": "its reservation has not started yet",
    "ReqNodeNotAvail": "the nodes it needs are down, drained or reserved",
    "Dependency": "it waits for another job to finish",
    "PartitionTimeLimit": "its time limit is over the partition's",
    "QOSMaxGRESMinutesPerJob": "it asks for more GPU-minutes than its QOS allows a job",
    "AssocGrpGRESMinutes": "your GPU-minutes budget is spent",
    "QOSGrpGRESMinutes": "the GPU-minutes budget of its QOS is spent",
    "AssocGrpGRES": "your group already uses all the GPUs it may hold at once",
}


@dataclass(frozen=True)
class PendingJob:
    """A pending job as the queue shows it."""

    job_id: str
    partition: str
    reason: str
    position: int  # 1: next in its partition
    pending: int  # pending jobs in that partition, this one included
    start: datetime | None  # SLURM's estimate; None while it has none

    def explanation(self) -> str:
        """The reason in plain words ("" for a reason without one)."""
        key = self.reason.split(",")[0].strip()
        return REASONS.get(key, "")

    def place(self, now: datetime | None = None) -> str:
        """``position P of N in partition Q, SLURM expects it to start at T (in D)``."""
        where = f"position {self.position} of {self.pending} in partition {self.partition}"
        if self.start is None:
            return f"{where}, no start time estimated yet"
        now = now or datetime.now()
        return (
            f"{where}, SLURM expects it to start at {self.start:%Y-%m-%d %H:%M} "
            f"(in {_duration((self.start - now).total_seconds())})"
        )

    def describe(self, now: datetime | None = None) -> str:
        """``reason: X (why), `` and the place."""
        why = self.explanation()
        reason = f"reason: {self.reason or 'queued'}" + (f" ({why})" if why else "")
        return f"{reason}, {self.place(now)}"


def queue_command() -> list[str]:
    """``squeue`` of every pending job, highest priority first, in QUEUE_FORMAT."""
    return [
        "squeue",
        "--noheader",
        "--states=PENDING",
        "--sort=-p,i",
        f"--format={QUEUE_FORMAT}",
    ]


def _priority(text: str) -> int:
    return int(text) if text.isdigit() else 0


def parse_pending(text: str, job_id: str) -> PendingJob | None:
    """The job ``job_id`` among the lines of ``queue_command``; None when it is not pending.

    Its position counts the pending jobs that share a partition with it, by priority (ties in
    the order squeue printed them, which is by job id).
    """
    rows = [line.split("|", 4) for line in text.splitlines() if line.count("|") >= 4]
    mine = next((row for row in rows if row[0] == job_id), None)
    if mine is None:
        return None
    partitions = set(mine[1].split(","))
    ahead = sorted(
        (row for row in rows if partitions & set(row[1].split(","))),
        key=lambda row: -_priority(row[2]),
    )
    return PendingJob(
        job_id=job_id,
        partition=mine[1],
        reason=mine[4].strip(),
        position=[row[0] for row in ahead].index(job_id) + 1,
        pending=len(ahead),
        start=slurm.parse_time(mine[3].strip()),
    )


def _duration(seconds: float) -> str:
    """Seconds in the largest two units: '2 d 3 h', '4 h 5 min', '6 min', 'under a minute'."""
    seconds = max(0, int(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min" if minutes else "under a minute"


__all__ = ["QUEUE_FORMAT", "REASONS", "PendingJob", "parse_pending", "queue_command"]
