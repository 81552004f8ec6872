"""The factory's spawner: each learner's server is a SLURM job, with messages a learner can act on.

``FactorySlurmSpawner`` is batchspawner's ``SlurmSpawner`` (behind wrapspawner's
``ProfilesSpawner``, one profile per spawn-page choice; see ``apply.py``) with:

- a batch script that names the job after the learner, logs to ``~/.aifkit-hub-slurm.log``,
  starts in the learner's home, exports only the variables the hub passes (never ``ALL``) and
  runs the absolute single-user command;
- a ``start()`` that never leaves the learner with a bare "Timeout": when sbatch refuses the
  request, when the job waits in the queue until shortly before ``start_timeout`` (it is then
  cancelled with ``scancel``), or when the job ends before its server answers, the spawn fails
  with a message that says what happened, with SLURM's own words, and what to do;
- the job id kept in the spawner's state (batchspawner's ``get_state``/``load_state``), so a
  restarted hub polls the job it already has instead of submitting another one; the state is
  stored right after sbatch, so a hub restarted while the job is queued finds it too (and
  cancels it, as its server cannot answer), rather than leaving an orphan job;
- only the profile decides the job: batchspawner would let a learner's user options override
  the template's variables (partition, options, even the command), and a profile name that is
  not configured is refused (apply.py makes the first profile wrapspawner's default child,
  instead of a LocalProcessSpawner on the hub's machine).

The hub runs SLURM's commands as the learner through ``exec_prefix`` (``sudo -E -u {username}``),
so learners are real Unix accounts and the hub's user may sudo to them (root, in the tests).

batchspawner has no type hints: its classes are ``Any`` to mypy (see pyproject's overrides).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from batchspawner import JobStatus, SlurmSpawner
from batchspawner.batchspawner import format_template
from traitlets import Float, Unicode, default

BATCH_SCRIPT = """#!/bin/bash
#SBATCH --job-name=aifkit-hub-{{username}}
#SBATCH --output={{logfile}}
#SBATCH --open-mode=truncate
#SBATCH --chdir={{homedir}}
#SBATCH --export={{keepvars}}
{% if partition %}#SBATCH --partition={{partition}}
{% endif %}{% if runtime %}#SBATCH --time={{runtime}}
{% endif %}{% if memory %}#SBATCH --mem={{memory}}
{% endif %}{% if gres %}#SBATCH --gres={{gres}}
{% endif %}{% if nprocs %}#SBATCH --cpus-per-task={{nprocs}}
{% endif %}{% if account %}#SBATCH --account={{account}}
{% endif %}{% if qos %}#SBATCH --qos={{qos}}
{% endif %}{% if reservation %}#SBATCH --reservation={{reservation}}
{% endif %}{% for option in option_list %}#SBATCH {{option}}
{% endfor %}
set -euo pipefail
trap 'echo "aifkit-hub: SIGTERM: server stopped, job cancelled or out of time"' TERM
echo "aifkit-hub: job ${SLURM_JOB_ID} for {{username}} on $(hostname) at $(date -Is)"
{{prologue}}
{% if srun %}{{srun}} {% endif %}{{cmd}}
echo "aifkit-hub: the server ended at $(date -Is)"
{{epilogue}}
"""

LOG_TAIL_LINES = 15
LOG_TAIL_CHARS = 2000


class SlurmSpawnError(RuntimeError):
    """A failed spawn, told to the learner: JupyterHub shows ``jupyterhub_message`` as is."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.jupyterhub_message = message


def sbatch_message(stderr: str) -> str:
    """sbatch's complaint in one line, without its ``sbatch: error:`` prefixes."""
    lines = [re.sub(r"^sbatch:\s*(error:\s*)?", "", line).strip() for line in stderr.splitlines()]
    return "; ".join(line for line in lines if line) or "no reason given"


def start_deadline(start_timeout: float, margin: float) -> float:
    """Seconds after which start() gives up by itself, before JupyterHub's bare timeout."""
    return max(start_timeout - margin, start_timeout / 2)


class FactorySlurmSpawner(SlurmSpawner):
    """batchspawner's SlurmSpawner with the factory's batch script and clear failure messages."""

    batch_script = Unicode(BATCH_SCRIPT).tag(config=True)

    start_margin = Float(
        5.0,
        help="start() gives up this many seconds before start_timeout (at least 5 percent of it): "
        "the pending job is cancelled and the learner told why, instead of a bare timeout.",
    ).tag(config=True)

    job_check_interval = Float(
        2.0, help="Seconds between job checks while waiting for the server to answer."
    ).tag(config=True)

    req_logfile = Unicode(
        help="The job's output file: the learner's home unless configured (per user, "
        "overwritten by each job). Its last lines are shown when the job ends early."
    ).tag(config=True)

    @default("req_logfile")
    def _req_logfile_default(self) -> str:
        return str(Path(self.req_homedir) / ".aifkit-hub-slurm.log")

    @default("batchspawner_singleuser_cmd")
    def _batchspawner_singleuser_cmd_default(self) -> str:
        # absolute: sudo's secure_path replaces PATH, and the job must not depend on it
        return str(Path(sys.executable).parent / "batchspawner-singleuser")

    _pending_since = 0.0  # when start() began (monotonic), for the progress messages
    _pending_reason = ""  # squeue's reason while the job is queued
    _limit = 0.0  # seconds after which start() gives up

    # -- what the learner chose ---------------------------------------------------------------

    @property
    def profile_name(self) -> str:
        """The spawn-page choice (the ``profile`` user option); none given: the first profile."""
        options = self.user_options if isinstance(self.user_options, dict) else {}
        keys = self.profile_keys()
        return str(options.get("profile") or (keys[0] if keys else self.req_partition))

    def profile_keys(self) -> list[str]:
        """The keys of the configured profiles (ProfilesSpawner's, from the hub's config)."""
        profiles = self.config.get("ProfilesSpawner", {}).get("profiles", [])
        return [str(p[1]) for p in profiles]

    def get_req_subvars(self) -> dict[str, Any]:
        subvars: dict[str, Any] = super().get_req_subvars()
        subvars["option_list"] = shlex.split(self.req_options)  # one #SBATCH line each
        return subvars

    async def _get_batch_script(self, **subvars: Any) -> str:
        # batchspawner lets user_options override the template's variables: a learner posting
        # {"profile": "cpu", "partition": "gpu"} would get a GPU. Only the profile decides.
        trusted = {**self.get_req_subvars(), "cmd": self.cmd_formatted_for_batch()}
        script: str = format_template(self.batch_script, **{**subvars, **trusted})
        return script

    # -- SLURM queries ------------------------------------------------------------------------

    async def _slurm(self, command: str) -> str:
        """A SLURM client command run as the learner (exec_prefix); stdout, or "" on failure."""
        subvars = self.get_req_subvars()
        prefix = format_template(self.exec_prefix, **subvars)
        try:
            out: str = await self.run_command(f"{prefix} {command}")
        except Exception as error:  # the job or the controller may be gone: report, not fail
            self.log.warning("%s failed: %s", command, error)
            return ""
        return out.strip()

    async def job_field(self, job_id: str, fmt: str) -> str:
        """One squeue field of a job in any state (``-t all``: finished jobs too)."""
        return await self._slurm(f"squeue -h -t all -j {job_id} -o '{fmt}'")

    def log_tail(self, since: float) -> str:
        """The job's log, its last lines, when it was written by this job (after ``since``)."""
        path = Path(self.req_logfile)
        try:
            if path.stat().st_mtime < since - 1:
                return f"(no output from this job in {path})"
            lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        except PermissionError:
            return f"(see {path})"
        except OSError:
            return f"(no log at {path})"
        tail = "\n".join(lines[-LOG_TAIL_LINES:])[-LOG_TAIL_CHARS:]
        return f"{path}:\n{tail}" if tail else f"(empty log {path})"

    # -- start --------------------------------------------------------------------------------

    async def start(self) -> tuple[str, int]:
        """Submit the job, wait until it runs and its server listens; fail with a clear message."""
        self.ip = self.traits()["ip"].default_value
        self.port = self.traits()["port"].default_value
        if self.server:
            self.server.port = self.port
        began, wall_began = time.monotonic(), time.time()
        limit = start_deadline(
            float(self.start_timeout), max(self.start_margin, 0.05 * self.start_timeout)
        )
        self._pending_since = began
        self._pending_reason = ""
        self._limit = limit
        keys = self.profile_keys()
        if keys and self.profile_name not in keys:  # wrapspawner kept its default child
            raise SlurmSpawnError(
                f"There is no profile {self.profile_name!r}; choose one of {', '.join(keys)}."
            )
        try:
            await self.submit_batch_script()
        except Exception as error:
            self.forget_job()
            raise SlurmSpawnError(
                f"SLURM rejected the request for profile {self.profile_name}: "
                f"{sbatch_message(str(error))}. Pick a smaller profile or ask the support team."
            ) from error
        if not self.job_id:
            raise SlurmSpawnError(
                f"SLURM gave no job id for profile {self.profile_name}; ask the support team."
            )
        job_id = self.job_id
        self.save_state_now()
        next_reason = 0.0
        while True:  # queued until it runs
            status = await self.query_job_status()
            if status == JobStatus.RUNNING:
                break
            if status not in (JobStatus.PENDING, JobStatus.UNKNOWN):
                await self._ended(job_id, wall_began)
            waited = time.monotonic() - began
            if waited >= next_reason:
                self._pending_reason = await self.job_field(job_id, "%r")
                next_reason = waited + 5
            if waited >= limit:
                await self._give_up_pending(job_id, waited)
            await asyncio.sleep(self.startup_poll_interval)
        self.ip = self.state_gethost() or self.ip
        self.log.info("job %s of %s runs on %s", job_id, self.user.name, self.ip)
        next_check = time.monotonic() + self.job_check_interval
        while not (self.port and await self._listening()):  # until its server answers
            await asyncio.sleep(self.startup_poll_interval)
            if time.monotonic() < next_check:
                continue
            next_check = time.monotonic() + self.job_check_interval
            if await self.query_job_status() not in (JobStatus.RUNNING, JobStatus.UNKNOWN):
                await self._ended(job_id, wall_began)
            if time.monotonic() - began >= limit:
                await self._cancel_quietly()
                self.forget_job()
                raise SlurmSpawnError(
                    f"Your job {job_id} started on {self.ip} but its server did not answer "
                    f"within {limit:.0f} s, so the job was cancelled; its log "
                    f"{self.log_tail(wall_began)}"
                )
        self.log.info("server of job %s listens at %s:%s", job_id, self.ip, self.port)
        return self.ip, self.port

    async def _listening(self) -> bool:
        """Whether the job's server accepts connections at (ip, port) yet."""
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(self.ip, self.port), 2)
        except (TimeoutError, OSError):
            return False
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return True

    def save_state_now(self) -> None:
        """Store the job id in the hub's database at once, not only when start() returns.

        A hub restarted while the job is still queued or starting then finds the job (and
        cancels it when no server answers) instead of leaving it running unknown to anyone.
        """
        for spawner in getattr(self.user, "spawners", {}).values():
            if spawner is self or getattr(spawner, "child_spawner", None) is self:
                try:
                    spawner.orm_spawner.state = spawner.get_state()
                    self.user.db.commit()
                except Exception as error:  # the state is saved again when start() returns
                    self.log.warning("could not save the state of job %s: %s", self.job_id, error)
                return

    def forget_job(self) -> None:
        """No job any more: the next poll says "not running" and the next spawn submits anew.

        Only the job's fields: clear_state() would also drop the API token the hub still revokes.
        """
        self.job_id = ""
        self.job_status = ""

    async def _cancel_quietly(self) -> None:
        try:
            await self.cancel_batch_job()
        except Exception as error:  # already gone: nothing to cancel
            self.log.warning("scancel %s: %s", self.job_id, error)

    async def _give_up_pending(self, job_id: str, waited: float) -> None:
        reason = await self.job_field(job_id, "%r") or self._pending_reason or "unknown"
        await self._cancel_quietly()
        self.forget_job()
        raise SlurmSpawnError(
            f"Your job {job_id} waited {waited:.0f} s in the queue (reason: {reason}) and was "
            f"cancelled; try a smaller profile than {self.profile_name}, or try later."
        )

    async def _ended(self, job_id: str, since: float) -> None:
        state = await self.job_field(job_id, "%T, reason %r") or "no longer known to SLURM"
        self.forget_job()
        raise SlurmSpawnError(
            f"Your job {job_id} ended before the server started (state {state}); "
            f"its log {self.log_tail(since)}"
        )

    # -- progress on the spawn page -----------------------------------------------------------

    async def progress(self) -> Any:
        """Events for the spawn page: submitted, queued (reason, time), running, waiting."""
        last = ""
        while True:
            if not self.job_id:
                message = "Submitting the job to SLURM ..."
            elif self.state_isrunning():
                message = f"Job {self.job_id} runs on {self.state_gethost()}; the server starts ..."
            else:
                waited = int((time.monotonic() - self._pending_since) // 10 * 10)
                message = (
                    f"Job {self.job_id} waits in the SLURM queue "
                    f"(reason: {self._pending_reason or 'queued'}), "
                    f"{waited} s of at most {self._limit:.0f} s"
                )
            if message != last:
                yield {"message": message}
                last = message
            await asyncio.sleep(1)


__all__ = ["FactorySlurmSpawner", "SlurmSpawnError", "sbatch_message", "start_deadline"]
