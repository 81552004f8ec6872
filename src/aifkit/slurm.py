"""The one SLURM client: command lines, the parsing of their answers, submit/status/wait/cancel.

Everything that talks to the scheduler goes through here: ``aifkit.course.jobs`` (learners'
torchrun jobs), ``aifkit.grading.array`` (the grading job array) and ``aifkit.hub.spawner``
(learners' servers). The spawner runs the commands itself, asynchronously and as the learner
(batchspawner's ``exec_prefix``), so this module offers them in three layers:

- command builders (``submit_command``, ``status_command``, ``queue_command``,
  ``cancel_command``): argument lists, never run here;
- parsers of what those commands print (``parse_job_id``, ``parse_scontrol``, ``parse_squeue``,
  ``sbatch_message``, ``controller_unreachable``) and SLURM's time format (``format_time``);
- a synchronous client (``submit``, ``status``, ``queue``, ``wait``, ``cancel``) where every
  call has a timeout and every failure is a ``JobError`` in SLURM's own words.

It imports only the standard library: learners' kernels import it through aifkit.course.jobs.
"""

from __future__ import annotations

import re
import subprocess
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from aifkit.errors import AifkitError

SUBMIT_TIMEOUT_S = 60.0  # sbatch answers in well under a second on a healthy controller
QUERY_TIMEOUT_S = 30.0
QUEUE_FORMAT = "%i %P %j %u %T %M %D %R"  # squeue's columns, as aifkit reads (and a03 teaches) them

FINISHED_STATES = frozenset(
    {
        "COMPLETED",
        "FAILED",
        "CANCELLED",
        "TIMEOUT",
        "NODE_FAIL",
        "OUT_OF_MEMORY",
        "PREEMPTED",
        "BOOT_FAIL",
        "DEADLINE",
    }
)
PENDING_STATES = frozenset({"PENDING", "CONFIGURING", "REQUEUED"})
RUNNING_STATES = frozenset({"RUNNING", "COMPLETING"})

_UNREACHABLE = re.compile(
    r"Socket timed out on send/recv|Unable to contact slurm controller|did not answer within"
)
_FIELD = re.compile(r"([\w/:]+)=(\S*)")


class JobError(AifkitError):
    """A job request does not fit the site, or the scheduler refused, lost or ignored it."""


@dataclass(frozen=True)
class JobStatus:
    """What the scheduler says about one job (or one task of an array)."""

    job_id: str
    state: str
    exit_code: str = ""  # "0:0": the script's exit status and the signal that ended it
    reason: str = ""  # why it waits or ended ("Priority", "BeginTime", "NonZeroExitCode"...)
    nodes: str = ""  # where it runs ("gpu[0101-0132]"); empty while pending
    host: str = ""  # the node that runs the batch script (scontrol's BatchHost)
    name: str = ""
    user: str = ""
    partition: str = ""

    @property
    def finished(self) -> bool:
        return self.state in FINISHED_STATES

    @property
    def pending(self) -> bool:
        return self.state in PENDING_STATES

    @property
    def running(self) -> bool:
        return self.state in RUNNING_STATES


# -- command lines --------------------------------------------------------------------------


def submit_command(script: Path | None = None, *, chdir: Path | None = None) -> list[str]:
    """``sbatch --parsable [--chdir=DIR] [SCRIPT]``; without SCRIPT sbatch reads it from stdin."""
    return [
        "sbatch",
        "--parsable",
        *([f"--chdir={chdir}"] if chdir is not None else []),
        *([str(script)] if script is not None else []),
    ]


def status_command(job_id: str) -> list[str]:
    """``scontrol show job ID``: every field of the job, or one record per task of an array."""
    return ["scontrol", "show", "job", job_id]


def queue_command(*, user: str | None = None, job_id: str | None = None) -> list[str]:
    """``squeue`` in QUEUE_FORMAT, finished jobs included (while the controller keeps them)."""
    return [
        "squeue",
        "--noheader",
        "--states=all",
        f"--format={QUEUE_FORMAT}",
        *([f"--user={user}"] if user else []),
        *([f"--jobs={job_id}"] if job_id else []),
    ]


def cancel_command(job_id: str) -> list[str]:
    """``scancel ID``: a job, or every task of an array."""
    return ["scancel", job_id]


# -- parsers --------------------------------------------------------------------------------


def parse_job_id(output: str) -> str:
    """The job id that ``sbatch --parsable`` printed ("42" or "42;cluster", on its last line)."""
    lines = output.strip().splitlines()
    job_id = lines[-1].split(";")[0].strip() if lines else ""
    if not job_id.isdigit():
        raise JobError(f"sbatch printed no job id: {output.strip() or '(nothing)'}")
    return job_id


def sbatch_message(stderr: str) -> str:
    """sbatch's complaint in one line, without its ``sbatch: error:`` prefixes."""
    lines = [re.sub(r"^sbatch:\s*(error:\s*)?", "", line).strip() for line in stderr.splitlines()]
    return "; ".join(line for line in lines if line) or "no reason given"


def controller_unreachable(text: str) -> bool:
    """Whether a command's answer says the controller did not answer (so the job may live on)."""
    return bool(_UNREACHABLE.search(text))


def scontrol_records(text: str, first_key: str) -> list[dict[str, str]]:
    """The ``Key=value`` fields of each record ``scontrol show ...`` printed (multi-line or
    ``--oneliner``), a record starting at each line that begins with ``first_key=``."""
    starts = re.compile(rf"^(?={re.escape(first_key)}=)", flags=re.MULTILINE)
    return [dict(_FIELD.findall(record)) for record in starts.split(text)]


def parse_scontrol(text: str) -> list[JobStatus]:
    """The records of ``scontrol show job`` (multi-line or ``--oneliner``): one per job or task."""
    jobs = []
    for fields in scontrol_records(text, "JobId"):
        if "JobId" not in fields or "JobState" not in fields:
            continue
        jobs.append(
            JobStatus(
                job_id=fields["JobId"],
                state=fields["JobState"],
                exit_code=fields.get("ExitCode", ""),
                reason=fields.get("Reason", ""),
                nodes=_known(fields.get("NodeList", "")),
                host=_known(fields.get("BatchHost", "")),
                name=fields.get("JobName", ""),
                user=fields.get("UserId", "").split("(")[0],
                partition=fields.get("Partition", ""),
            )
        )
    return jobs


def parse_squeue(text: str) -> list[JobStatus]:
    """The rows of squeue in QUEUE_FORMAT (a header line, if any, is skipped).

    The last column is the node list, or the reason in parentheses while a job waits; it may
    hold spaces ("(ReqNodeNotAvail, Reserved for maintenance)"), or be empty (a job cancelled
    before it ran).
    """
    jobs = []
    for line in text.splitlines():
        columns = line.split(maxsplit=7)
        if not columns or columns[0] == "JOBID":
            continue
        if len(columns) < 7:
            raise JobError(f"squeue line with {len(columns)} of 8 columns: {line!r}")
        job_id, partition, name, user, state, _elapsed, _count, where = [*columns, ""][:8]
        waiting = where.startswith("(") and where.endswith(")")
        jobs.append(
            JobStatus(
                job_id=job_id,
                state=state,
                reason=where[1:-1] if waiting else "",
                nodes="" if waiting else where,
                name=name,
                user=user,
                partition=partition,
            )
        )
    return jobs


def format_time(minutes: int) -> str:
    """SLURM's time format: 90 -> '01:30:00', 1500 -> '1-01:00:00'."""
    days, rest = divmod(int(minutes), 24 * 60)
    clock = f"{rest // 60:02d}:{rest % 60:02d}:00"
    return f"{days}-{clock}" if days else clock


def parse_time(text: str) -> datetime | None:
    """A timestamp as SLURM prints it ("2026-12-03T09:00:00"); None for "N/A", "Unknown", ""."""
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _known(value: str) -> str:
    return "" if value in ("(null)", "None") else value


# -- the synchronous client ------------------------------------------------------------------


def run(args: list[str], timeout_s: float) -> subprocess.CompletedProcess[str]:
    """Run one SLURM command with a timeout; JobError when it is missing or does not answer."""
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=timeout_s)
    except FileNotFoundError as error:
        raise JobError(
            f"{args[0]} not found: run this on a SLURM login node (or start scripts/slurm-up.sh)"
        ) from error
    except subprocess.TimeoutExpired as error:
        raise JobError(no_answer(args[0], timeout_s)) from error


def no_answer(program: str, timeout_s: float) -> str:
    """The message for a SLURM command that timed out (``controller_unreachable`` knows it)."""
    return f"{program} did not answer within {timeout_s:.0f} s: is slurmctld up?"


def submit(script: Path, *, chdir: Path | None = None, timeout_s: float = SUBMIT_TIMEOUT_S) -> str:
    """Submit a batch script; the job id, or JobError with sbatch's reason."""
    done = run(submit_command(script, chdir=chdir), timeout_s)
    if done.returncode != 0:
        raise JobError(f"sbatch refused {script.name}: {sbatch_message(done.stderr)}")
    return parse_job_id(done.stdout)


def query(job_id: str, *, timeout_s: float = QUERY_TIMEOUT_S) -> list[JobStatus]:
    """Every record SLURM keeps for ``job_id`` (one per array task); [] once it forgot the job."""
    done = run(status_command(job_id), timeout_s)
    if done.returncode != 0:
        if "Invalid job id" in done.stderr:
            return []
        raise JobError(f"scontrol cannot show job {job_id}: {done.stderr.strip()}")
    return parse_scontrol(done.stdout)


def status(job_id: str, *, timeout_s: float = QUERY_TIMEOUT_S) -> JobStatus:
    """State, exit code and reason of a job, from ``scontrol show job``."""
    found = query(job_id, timeout_s=timeout_s)
    if not found:
        raise JobError(f"scontrol knows no job {job_id}: it never existed or ended long ago")
    return found[0]


def queue(
    *, user: str | None = None, job_id: str | None = None, timeout_s: float = QUERY_TIMEOUT_S
) -> list[JobStatus]:
    """The jobs squeue lists (all states), for one user or one job if given."""
    done = run(queue_command(user=user, job_id=job_id), timeout_s)
    if done.returncode != 0:
        if job_id and "Invalid job id" in done.stderr:
            return []
        raise JobError(f"squeue failed: {done.stderr.strip()}")
    return parse_squeue(done.stdout)


def wait(
    job_id: str, *, timeout_s: float, poll_s: float = 0.5, max_poll_s: float = 2.0
) -> list[JobStatus]:
    """Poll until every record of the job (every task of an array) has finished; return them.

    Raises JobError when ``timeout_s`` passes first (the job is left alone: cancel it if
    needed). A job the controller has already forgotten counts as finished (returns []).
    """
    deadline = time.monotonic() + timeout_s
    while True:
        remaining = deadline - time.monotonic()
        records = query(job_id, timeout_s=max(1.0, min(QUERY_TIMEOUT_S, remaining)))
        if all(record.finished for record in records):
            return records
        if remaining <= 0:
            states = ", ".join(sorted({record.state for record in records}))
            raise JobError(f"job {job_id} has not finished after {timeout_s:.0f} s ({states})")
        time.sleep(min(poll_s, max(remaining, 0.0)))
        poll_s = min(poll_s * 1.5, max_poll_s)


def cancel(job_id: str, *, timeout_s: float = QUERY_TIMEOUT_S) -> None:
    """Cancel a job (every task of an array); one that already ended is not an error."""
    done = run(cancel_command(job_id), timeout_s)
    if done.returncode != 0 and "already completing or completed" not in done.stderr:
        raise JobError(f"scancel {job_id} failed: {done.stderr.strip()}")
