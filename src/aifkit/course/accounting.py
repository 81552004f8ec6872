"""The learner's own accounting records: what jobs asked for, what they used, what is left.

``jobs`` reads ``sacct --parsable2`` for the calling user only (never ``--allusers``): requested
and allocated CPUs and GPUs, elapsed and CPU time, CPU efficiency, peak memory, GPU-hours charged,
state and reason. ``budget`` reads the GPU-minute limits (``GrpTRESMins=gres/gpu=N``) of the user's
association, its account and its default QOS from ``scontrol show assoc_mgr``, with what each has
used and what its running jobs still hold (``GrpTRESRunMins``): SLURM starts a job only while
used + held + the job's own GPU-minutes fit the limit. Without slurmdbd every call raises
``AccountingError`` saying so. Only the standard library
and ``aifkit.slurm`` are used: learners' kernels import this module.
"""

from __future__ import annotations

import getpass
import re
import time
from dataclasses import dataclass

from aifkit import slurm
from aifkit.errors import AifkitError

__all__ = [
    "AccountingError",
    "Budget",
    "GpuLimit",
    "JobUsage",
    "budget",
    "enabled",
    "jobs",
    "parse_assoc_mgr",
    "parse_sacct",
    "sacct_command",
    "settled_jobs",
]

SACCT_FIELDS = (
    "JobID",
    "JobName",
    "User",
    "Account",
    "QOS",
    "Partition",
    "State",
    "Reason",
    "ExitCode",
    "ElapsedRaw",
    "TimelimitRaw",
    "TotalCPU",
    "MaxRSS",
    "ReqTRES",
    "AllocTRES",
    "NNodes",
)
NO_ACCOUNTING = "no accounting on this cluster"
FINAL_STATES = frozenset(
    {
        "COMPLETED",
        "FAILED",
        "CANCELLED",
        "TIMEOUT",
        "OUT_OF_MEMORY",
        "NODE_FAIL",
        "PREEMPTED",
        "BOOT_FAIL",
        "DEADLINE",
    }
)
_GPU = "gres/gpu"
_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
_GPU_LIMIT = re.compile(r"(?:^|,)gres/gpu=(N|\d+)\((\d+)\)")
_GPU_RUNNING = re.compile(r"GrpTRESRunMins=(?:\S*?,)?gres/gpu=(?:N|\d+)\((\d+)\)")


class AccountingError(AifkitError):
    """The cluster keeps no accounting (no slurmdbd), or sacct/scontrol could not answer."""


@dataclass(frozen=True)
class JobUsage:
    """One job as the accounting database recorded it (its steps folded in)."""

    job_id: str
    name: str
    state: str  # COMPLETED, FAILED, PENDING, ... ("CANCELLED by 0" -> CANCELLED)
    reason: str  # why it waits (QOSMaxGRESMinutesPerJob...) or "None"
    account: str
    qos: str
    partition: str
    elapsed_s: int
    time_limit_min: int | None  # None: no limit recorded
    req_cpus: int
    alloc_cpus: int
    req_gpus: int
    alloc_gpus: int
    nodes: int
    total_cpu_s: float  # CPU time its processes used (user + system)
    max_rss_bytes: int | None  # peak memory of its largest task; None when not sampled

    @property
    def settled(self) -> bool:
        """Is the record final? slurmdbd gets a job's start and its end separately: until the
        start arrives, a short job that already ended shows as "allocation", with no partition."""
        return self.state in FINAL_STATES and bool(self.partition)

    @property
    def cpu_efficiency(self) -> float | None:
        """Used CPU time over allocated CPU time (alloc_cpus x elapsed); None before it ran."""
        core_s = self.alloc_cpus * self.elapsed_s
        return self.total_cpu_s / core_s if core_s else None

    @property
    def idle_cpu_s(self) -> float:
        """Allocated CPU-seconds nobody used: what the idle part of the allocation cost."""
        return max(0.0, self.alloc_cpus * self.elapsed_s - self.total_cpu_s)

    @property
    def gpu_hours(self) -> float:
        """GPU-hours charged: allocated GPUs x elapsed time, used or not."""
        return self.alloc_gpus * self.elapsed_s / 3600

    @property
    def requested_gpu_minutes(self) -> float | None:
        """What the request could charge at most (GPUs x time limit): what QOS limits compare."""
        return None if self.time_limit_min is None else self.req_gpus * self.time_limit_min


@dataclass(frozen=True)
class GpuLimit:
    """One GPU-minute limit on the learner: where it is set, its size and what was used."""

    scope: str  # "user root in aifkit-course", "account aifkit-course", "qos normal"
    limit_min: int
    used_min: int
    running_min: int = 0  # what running jobs still hold: GPUs x the rest of their time limits

    @property
    def remaining_min(self) -> int:
        """What a new job may still ask for: the limit less the used and the held minutes."""
        return max(0, self.limit_min - self.used_min - self.running_min)


@dataclass(frozen=True)
class Budget:
    """The learner's GPU-minute limits; the tightest decides what is left."""

    user: str
    account: str
    limits: tuple[GpuLimit, ...]

    @property
    def remaining_min(self) -> int | None:
        """GPU-minutes left under the tightest limit; None when no limit applies."""
        return min((limit.remaining_min for limit in self.limits), default=None)

    def describe(self) -> str:
        """One line: what is left, of what, where."""
        if not self.limits:
            return f"{self.user} in {self.account}: no GPU-minute limit"
        tight = min(self.limits, key=lambda limit: limit.remaining_min)
        held = f", {tight.running_min} held by running jobs" if tight.running_min else ""
        return (
            f"{tight.remaining_min} of {tight.limit_min} GPU-minutes left "
            f"({tight.remaining_min / 60:.1f} GPU-hours; {tight.scope}{held})"
        )


# -- commands and parsers --------------------------------------------------------------------------


def sacct_command(
    job_ids: list[str] | None = None, *, user: str | None = None, since: str | None = None
) -> list[str]:
    """``sacct --parsable2`` of the user's own jobs (all of them when job ids are given)."""
    return [
        "sacct",
        "--parsable2",
        f"--format={','.join(SACCT_FIELDS)}",
        f"--user={user or getpass.getuser()}",
        *([f"--jobs={','.join(job_ids)}"] if job_ids else []),
        *([f"--starttime={since}"] if since else []),
    ]


def _tres(text: str) -> dict[str, str]:
    return dict(item.split("=", 1) for item in text.split(",") if "=" in item)


def _count(tres: dict[str, str], name: str) -> int:
    value = tres.get(name, "0")
    return int(value) if value.isdigit() else 0


def _cpu_seconds(text: str) -> float:
    """sacct's TotalCPU: [DD-][HH:]MM:SS[.mmm] -> seconds."""
    if not text:
        return 0.0
    days, _, clock = text.rpartition("-")
    parts = [float(p) for p in clock.split(":")]
    seconds = sum(value * 60.0**power for power, value in enumerate(reversed(parts)))
    return seconds + (int(days) * 86400 if days else 0)


def _bytes(text: str) -> int | None:
    match = re.fullmatch(r"([\d.]+)([KMGT]?)", text.strip())
    return int(float(match[1]) * _UNITS[match[2]]) if match else None


def parse_sacct(text: str) -> list[JobUsage]:
    """The jobs of ``sacct --parsable2 --format=SACCT_FIELDS``; steps fold into their job."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines or lines[0].split("|") != list(SACCT_FIELDS):
        raise AccountingError(
            f"sacct printed no header of {','.join(SACCT_FIELDS)}: {text[:200]!r}"
        )
    rows = [dict(zip(SACCT_FIELDS, line.split("|"), strict=False)) for line in lines[1:]]
    peak: dict[str, int] = {}
    for row in rows:  # steps ("42.batch", "42.0") carry MaxRSS
        job_id, _, step = row["JobID"].partition(".")
        rss = _bytes(row["MaxRSS"])
        if step and rss is not None:
            peak[job_id] = max(peak.get(job_id, 0), rss)
    usages = []
    for row in rows:
        if "." in row["JobID"]:
            continue
        req, alloc = _tres(row["ReqTRES"]), _tres(row["AllocTRES"])
        limit = row["TimelimitRaw"]
        usages.append(
            JobUsage(
                job_id=row["JobID"],
                name=row["JobName"],
                state=row["State"].split()[0] if row["State"] else "",
                reason=row["Reason"],
                account=row["Account"],
                qos=row["QOS"],
                partition=row["Partition"],
                elapsed_s=int(row["ElapsedRaw"] or 0),
                time_limit_min=int(limit) if limit.isdigit() else None,
                req_cpus=_count(req, "cpu"),
                alloc_cpus=_count(alloc, "cpu"),
                req_gpus=_count(req, _GPU),
                alloc_gpus=_count(alloc, _GPU),
                nodes=int(row["NNodes"]) if row["NNodes"].isdigit() else 0,
                total_cpu_s=_cpu_seconds(row["TotalCPU"]),
                max_rss_bytes=peak.get(row["JobID"]),
            )
        )
    return usages


def parse_assoc_mgr(text: str, *, user: str, account: str) -> list[GpuLimit]:
    """GPU-minute limits (``GrpTRESMins=...gres/gpu=LIMIT(USED)``) on the user's association,
    its account's association and QOS records, from ``scontrol show assoc_mgr``; what running
    jobs hold comes from the same record's ``GrpTRESRunMins=...gres/gpu=N(HELD)``."""
    limits = []
    records = re.split(r"\n(?=\S)", text)
    for record in records:
        head = record.split("\n", 1)[0]
        found = re.search(r"GrpTRESMins=(\S+)", record)
        match = _GPU_LIMIT.search(found[1]) if found else None
        if not match or match[1] == "N":
            continue
        fields = dict(re.findall(r"(\w+)=(\S*)", head))
        if head.startswith("QOS="):
            scope = f"qos {head[4:].split('(')[0]}"
        elif fields.get("Account") == account and fields.get("UserName", "").split("(")[0] == user:
            scope = f"user {user} in {account}"
        elif fields.get("Account") == account and not fields.get("UserName"):
            scope = f"account {account}"
        else:
            continue
        running = _GPU_RUNNING.search(record)
        limits.append(
            GpuLimit(scope, int(match[1]), int(match[2]), int(running[1]) if running else 0)
        )
    return limits


# -- the calls -------------------------------------------------------------------------------------


def enabled(*, timeout_s: float = slurm.QUERY_TIMEOUT_S) -> bool:
    """Whether the cluster stores accounting in slurmdbd (``scontrol show config``)."""
    try:
        done = slurm.run(["scontrol", "show", "config"], timeout_s)
    except slurm.JobError:
        return False
    match = re.search(r"^AccountingStorageType\s*=\s*(\S+)", done.stdout, flags=re.MULTILINE)
    return done.returncode == 0 and match is not None and match[1] == "accounting_storage/slurmdbd"


def _require(timeout_s: float) -> None:
    if not enabled(timeout_s=timeout_s):
        raise AccountingError(
            f"{NO_ACCOUNTING}: SLURM stores no job records here (no slurmdbd); "
            "read `scontrol show job` while the controller keeps the job, or use the factory"
        )


def jobs(
    job_ids: list[str] | None = None,
    *,
    since: str | None = None,
    timeout_s: float = slurm.QUERY_TIMEOUT_S,
) -> list[JobUsage]:
    """The calling user's own job records (the given jobs, or those since ``since``).

    A pending job's reason comes from the controller (sacct records it only later).
    """
    _require(timeout_s)
    done = slurm.run(sacct_command(job_ids, since=since), timeout_s)
    if done.returncode != 0:
        raise AccountingError(f"sacct failed: {done.stderr.strip()}")
    found = parse_sacct(done.stdout)
    return [_with_live_reason(usage, timeout_s) for usage in found]


def settled_jobs(
    job_ids: list[str], *, deadline_s: float = 60, poll_s: float = 0.5
) -> list[JobUsage]:
    """``jobs(job_ids)``, asked again until every one is ``settled``.

    Raises ``AccountingError`` naming the jobs still open after ``deadline_s``.
    """
    start = time.monotonic()
    while True:
        found = jobs(job_ids)
        open_ids = set(job_ids) - {job.job_id for job in found if job.settled}
        if not open_ids:
            return found
        if time.monotonic() - start > deadline_s:
            raise AccountingError(
                f"jobs {', '.join(sorted(open_ids))} have no final record after {deadline_s:g} s: "
                "see `squeue --me` (still queued or running?)"
            )
        time.sleep(poll_s)


def _with_live_reason(usage: JobUsage, timeout_s: float) -> JobUsage:
    if usage.state != "PENDING":
        return usage
    live = slurm.queue(job_id=usage.job_id, timeout_s=timeout_s)
    if not live or not live[0].reason:
        return usage
    return JobUsage(**{**usage.__dict__, "reason": live[0].reason})


def budget(
    *,
    user: str | None = None,
    account: str | None = None,
    qos: str | None = None,
    timeout_s: float = slurm.QUERY_TIMEOUT_S,
) -> Budget:
    """The user's GPU-minute limits in ``account`` (default: the user's default account).

    The limits are those of the user's association, of its account and of ``qos`` (default:
    the association's default QOS, the one a job without ``--qos`` gets).
    """
    _require(timeout_s)
    user = user or getpass.getuser()
    if not account:
        account = _sacctmgr(["user", user, "format=defaultaccount"], timeout_s)
    default_qos = _sacctmgr(
        ["assoc", f"user={user}", f"account={account}", "format=defaultqos"], timeout_s
    )
    if not account or default_qos is None:
        raise AccountingError(
            f"user {user} has no association{f' in {account}' if account else ''} on this "
            "cluster: ask the site for an account"
        )
    done = slurm.run(
        [
            "scontrol",
            "show",
            "assoc_mgr",
            f"users={user}",
            f"accounts={account}",
            "flags=assoc,qos",
        ],
        timeout_s,
    )
    if done.returncode != 0:
        raise AccountingError(f"scontrol show assoc_mgr failed: {done.stderr.strip()}")
    qos_scope = f"qos {qos or default_qos or 'normal'}"
    limits = [
        limit
        for limit in parse_assoc_mgr(done.stdout, user=user, account=account)
        if not limit.scope.startswith("qos ") or limit.scope == qos_scope
    ]
    return Budget(user=user, account=account, limits=tuple(limits))


def _sacctmgr(query: list[str], timeout_s: float) -> str | None:
    """The first line ``sacctmgr -n -P show QUERY`` prints; None when it prints nothing."""
    done = slurm.run(["sacctmgr", "-n", "-P", "show", *query], timeout_s)
    if done.returncode != 0:
        raise AccountingError(f"sacctmgr show {query[0]} failed: {done.stderr.strip()}")
    lines = done.stdout.strip().splitlines()
    return lines[0].strip() if lines else None
