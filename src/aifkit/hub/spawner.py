"""The factory's spawner: each learner's server is a SLURM job, with messages a learner can act on.

``FactorySlurmSpawner`` is batchspawner's ``SlurmSpawner`` (behind wrapspawner's
``ProfilesSpawner``, one profile per spawn-page choice; see ``apply.py``) with:

- a batch script that names the job after the learner, logs to ``~/.aifkit-hub-slurm.log``,
  starts in the learner's home, exports only the variables the hub passes (never ``ALL``) and
  runs the absolute single-user command: the template ``hub-spawner.sbatch`` (aifkit/data/
  templates; a site profile's templates folder may replace it, ``batch_script`` too), rendered
  by ``aifkit.templates`` like every batch script;
- SLURM's commands and the parsing of their answers from ``aifkit.slurm`` (``scontrol show
  job`` for state, reason and host), each command with a time limit (``slurm_timeout``);
- a ``start()`` that never leaves the learner with a bare "Timeout": when sbatch refuses the
  request, when the job waits in the queue until shortly before ``start_timeout`` (it is then
  cancelled with ``scancel``), or when the job ends before its server answers, the spawn fails
  with a message that says what happened, with SLURM's own words, and what to do;
- while the job is queued, the spawn page's progress shows its id, its place in its partition's
  queue, SLURM's estimated start time and the reason in plain words (``aifkit.hub.queue``);
  Stop Server on that page (JupyterHub cancels ``start()``, then calls ``stop``) cancels the
  job with ``scancel`` and the learner lands on the "not running" page; a ``start()`` that was
  not cancelled sees the stop and ends with "Spawn cancelled";
- a profile's SLURM reservation and QOS (``req_reservation``, ``req_qos``) in the batch script;
- with accounting on the cluster, a profile whose GPUs x time limit does not fit the learner's
  GPU-minute budget is refused before sbatch, saying what is left (``aifkit.hub.budget``);
  ``FactoryProfilesSpawner`` shows that budget on the profile form;
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
import os
import shlex
import signal
import sys
import time
from pathlib import Path
from typing import Any

from batchspawner import JobStatus, SlurmSpawner
from batchspawner.batchspawner import format_template
from traitlets import Float, Integer, Unicode, default
from wrapspawner import ProfilesSpawner

from aifkit import slurm, templates
from aifkit.course import accounting
from aifkit.course import site as site_mod
from aifkit.hub import budget as budget_mod
from aifkit.hub import queue as queue_mod

TEMPLATE = "hub-spawner.sbatch"
LOG_TAIL_LINES = 15
LOG_TAIL_CHARS = 2000
CANCEL_TRIES = 2  # scancel attempts before the learner is told it failed
CANCEL_CHECKS = 2  # queue checks, a second apart, after each attempt (all within start_margin)


class SlurmSpawnError(RuntimeError):
    """A failed spawn, told to the learner: JupyterHub shows ``jupyterhub_message`` as is."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.jupyterhub_message = message


def start_deadline(start_timeout: float, margin: float) -> float:
    """Seconds after which start() gives up by itself, before JupyterHub's bare timeout."""
    return max(start_timeout - margin, start_timeout / 2)


class FactorySlurmSpawner(SlurmSpawner):
    """batchspawner's SlurmSpawner with the factory's batch script and clear failure messages."""

    site_profile = Unicode(
        help="Site profile (a shipped name or a .yml path) whose templates folder may hold its "
        f"own {TEMPLATE}; empty: $AIFKIT_SITE, else the packaged one."
    ).tag(config=True)

    # SLURM's commands and the parsing of their answers are aifkit.slurm's, as everywhere else;
    # batchspawner runs them after exec_prefix, formatting {job_id} with str.format.
    batch_submit_cmd = Unicode(shlex.join(slurm.submit_command())).tag(config=True)
    batch_query_cmd = Unicode(shlex.join(slurm.status_command("{job_id}"))).tag(config=True)
    batch_cancel_cmd = Unicode(shlex.join(slurm.cancel_command("{job_id}"))).tag(config=True)

    batch_queue_cmd = Unicode(
        shlex.join(queue_mod.queue_command()),
        help="Command that lists the pending jobs (aifkit.hub.queue reads its answer).",
    ).tag(config=True)

    queue_check_interval = Float(
        10.0, help="Seconds between queue checks (position, estimated start) while pending."
    ).tag(config=True)

    gpus = Integer(
        0, help="GPUs the profile asks for: with its time limit, what a spawn costs the budget."
    ).tag(config=True)

    slurm_timeout = Float(
        30.0,
        help="Seconds each SLURM command may take; then it is killed and the controller counted "
        "as not answering (the job's state is unknown, not gone).",
    ).tag(config=True)

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

    @default("batch_script")
    def _batch_script_default(self) -> str:
        folder = site_mod.load(self.site_profile or None).templates
        return templates.source(TEMPLATE, folder)

    @default("req_logfile")
    def _req_logfile_default(self) -> str:
        return str(Path(self.req_homedir) / ".aifkit-hub-slurm.log")

    @default("batchspawner_singleuser_cmd")
    def _batchspawner_singleuser_cmd_default(self) -> str:
        # absolute: sudo's secure_path replaces PATH, and the job must not depend on it
        return str(Path(sys.executable).parent / "batchspawner-singleuser")

    _pending_since = 0.0  # when start() began (monotonic), for the progress messages
    _pending_reason = ""  # SLURM's reason while the job is queued
    _limit = 0.0  # seconds after which start() gives up
    _queue_view: queue_mod.PendingJob | None = None  # the job's place in the queue
    _stop_requested = False  # Stop Server while start() waits: the spawn was cancelled

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
        return templates.render_text(self.batch_script, label=TEMPLATE, **{**subvars, **trusted})

    # -- SLURM, through aifkit.slurm ----------------------------------------------------------

    async def run_command(self, cmd: str, input: str | None = None, env: Any = None) -> str:
        """batchspawner's run_command with a time limit: stdout, or RuntimeError(stderr).

        The command runs in its own process group: on timeout the whole group is killed, the
        shell and what it started (as far as the hub's user may), and the hub waits 2 s at most.
        """
        proc = await asyncio.create_subprocess_shell(
            cmd,
            env=env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        try:
            out, err = await asyncio.wait_for(
                proc.communicate(input.encode() if input else None), self.slurm_timeout
            )
        except TimeoutError:
            with contextlib.suppress(OSError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), 2)
            raise RuntimeError(slurm.no_answer(cmd, self.slurm_timeout)) from None
        if proc.returncode != 0:
            raise RuntimeError(err.decode(errors="replace").strip())
        return out.decode(errors="replace").strip()

    def parse_job_id(self, output: str) -> str:
        return slurm.parse_job_id(output)

    def slurm_job(self) -> slurm.JobStatus | None:
        """The job as the last query saw it (``scontrol show job``), None if SLURM did not say."""
        found = slurm.parse_scontrol(self.job_status or "")
        return found[0] if found else None

    def state_ispending(self) -> bool:
        job = self.slurm_job()
        return job is not None and job.pending

    def state_isrunning(self) -> bool:
        job = self.slurm_job()
        return job is not None and job.running

    def state_isunknown(self) -> bool:
        return slurm.controller_unreachable(self.job_status or "")

    def state_gethost(self) -> str:
        job = self.slurm_job()
        return job.host if job is not None else ""

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
        self._queue_view = None
        self._stop_requested = False
        keys = self.profile_keys()
        if keys and self.profile_name not in keys:  # wrapspawner kept its default child
            raise SlurmSpawnError(
                f"There is no profile {self.profile_name!r}; choose one of {', '.join(keys)}."
            )
        refused = await self._budget_refusal()
        if refused:
            raise SlurmSpawnError(refused)
        try:
            await self.submit_batch_script()
        except Exception as error:
            self.forget_job()
            raise SlurmSpawnError(
                f"SLURM rejected the request for profile {self.profile_name}: "
                f"{slurm.sbatch_message(str(error))}. Pick a smaller profile or ask the support team."
            ) from error
        if not self.job_id:
            raise SlurmSpawnError(
                f"SLURM gave no job id for profile {self.profile_name}; ask the support team."
            )
        job_id = self.job_id
        self.save_state_now()
        next_queue_check = 0.0
        while True:  # queued until it runs
            status = await self.query_job_status()
            if status == JobStatus.RUNNING:
                break
            if self._stop_requested:
                raise SlurmSpawnError(
                    f"Spawn cancelled: your job {job_id} was cancelled (Stop Server)."
                )
            if status not in (JobStatus.PENDING, JobStatus.UNKNOWN):
                await self._ended(job_id, wall_began)
            waited = time.monotonic() - began
            job = self.slurm_job()
            self._pending_reason = job.reason if job is not None else self._pending_reason
            if status == JobStatus.PENDING and time.monotonic() >= next_queue_check:
                self._queue_view = await self._queue_position(job_id) or self._queue_view
                next_queue_check = time.monotonic() + self.queue_check_interval
            if waited >= limit:
                await self._give_up_pending(job_id, waited)
            await asyncio.sleep(self.startup_poll_interval)
        self._queue_view = None
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
                problem = await self._cancel()
                told = (
                    "the job was cancelled" if not problem else f"cancelling it failed ({problem})"
                )
                raise SlurmSpawnError(
                    f"Your job {job_id} started on {self.ip} but its server did not answer "
                    f"within {limit:.0f} s, so {told}; its log {self.log_tail(wall_began)}"
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

    async def _cancel(self) -> str:
        """Cancel the job and see it leave the queue: "" when it did, else what went wrong.

        scancel is tried up to ``CANCEL_TRIES`` times; the job counts as gone once SLURM no
        longer shows it pending or running. When it stays, the job id is kept, so the hub's
        stop after the failed spawn cancels it again instead of leaving an orphan job.
        """
        problem = ""
        for _ in range(CANCEL_TRIES):
            try:
                await self.cancel_batch_job()
            except Exception as error:
                problem = f"scancel: {error}"
                self.log.warning("scancel %s: %s", self.job_id, error)
            for _ in range(CANCEL_CHECKS):
                if await self.query_job_status() == JobStatus.NOTFOUND:  # ended, or gone
                    self.forget_job()
                    return ""
                await asyncio.sleep(1)
        return problem or f"job {self.job_id} is still in the queue"

    async def _give_up_pending(self, job_id: str, waited: float) -> None:
        reason = self._pending_reason or "unknown"
        view = self._queue_view
        where = f" ({view.place()})" if view is not None else ""
        problem = await self._cancel()
        told = "was cancelled" if not problem else f"could not be cancelled ({problem})"
        if self.req_reservation:
            advice = (
                f"its reservation {self.req_reservation} may not have begun: try again when it "
                f"has, or a smaller profile than {self.profile_name}"
            )
        else:
            advice = (
                f"try a smaller profile than {self.profile_name}, a profile with your class's "
                "reservation (ask your instructor), or try later"
            )
        raise SlurmSpawnError(
            f"Your job {job_id} waited {waited:.0f} s in the queue (reason: {reason}){where} "
            f"and {told}; {advice}."
        )

    # -- the queue and the budget -------------------------------------------------------------

    async def _queue_position(self, job_id: str) -> queue_mod.PendingJob | None:
        """The job's place in the queue (squeue as the learner); None when SLURM did not say."""
        subvars = {**self.get_req_subvars(), "job_id": job_id}
        command = " ".join(
            (
                format_template(self.exec_prefix, **subvars),
                format_template(self.batch_queue_cmd, **subvars),
            )
        )
        try:
            return queue_mod.parse_pending(await self.run_command(command), job_id)
        except RuntimeError as error:
            self.log.warning("squeue for job %s: %s", job_id, error)
            return None

    def _cost(self) -> budget_mod.SpawnCost:
        return budget_mod.cost(self.profile_name, int(self.gpus), self.req_runtime)

    def learner_budget(self) -> accounting.Budget | None:
        """The learner's GPU budget for this profile's account and QOS; None without accounting.

        Blocking (SLURM's commands): call it in a thread.
        """
        return budget_mod.learner_budget(
            self.user.name, account=self.req_account, qos=self.req_qos, timeout_s=self.slurm_timeout
        )

    async def _budget_refusal(self) -> str:
        """Why this spawn does not fit the learner's GPU budget; "" when it does (or no budget).

        When accounting is on but cannot answer, the spawn goes on: SLURM still holds a job
        over a limit in the queue, with that reason, and the progress messages show it.
        """
        spawn = self._cost()
        if not spawn.gpu_minutes:
            return ""
        try:
            found = await asyncio.to_thread(self.learner_budget)
        except (accounting.AccountingError, slurm.JobError) as error:
            self.log.warning("GPU budget of %s unknown: %s", self.user.name, error)
            return ""
        return budget_mod.refusal(spawn, found)

    async def stop(self, now: bool = False) -> None:
        """Stop the server: also Stop Server on the spawn page while the job is queued."""
        if self.job_id and self.state_ispending():
            self._stop_requested = True
            self.log.info(
                "Spawn cancelled: job %s of %s, still queued", self.job_id, self.user.name
            )
        await super().stop(now)

    async def _ended(self, job_id: str, since: float) -> None:
        job = self.slurm_job()
        state = f"{job.state}, reason {job.reason}" if job else "no longer known to SLURM"
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
                view = self._queue_view
                where = (
                    view.describe()
                    if view is not None
                    else f"reason: {self._pending_reason or 'queued'}"
                )
                message = (
                    f"Job {self.job_id} waits in the SLURM queue ({where}); "
                    f"{waited} s of at most {self._limit:.0f} s. "
                    "Stop Server cancels it."
                )
            if message != last:
                yield {"message": message}
                last = message
            await asyncio.sleep(1)


class FactoryProfilesSpawner(ProfilesSpawner):
    """wrapspawner's ProfilesSpawner whose form also shows the learner's GPU budget.

    The budget is asked per account and QOS of the profiles (each GPU profile says what it may
    cost, and whether that is over); without accounting the form is wrapspawner's own.
    """

    async def get_options_form(self) -> str:
        form = str(await super().get_options_form() or "")
        try:
            note = await asyncio.to_thread(self._budget_note)
        except (accounting.AccountingError, slurm.JobError) as error:
            self.log.warning("GPU budget of %s unknown: %s", self.user.name, error)
            note = ""
        return form + note

    def _budget_note(self) -> str:
        """The budget paragraph for this user (blocking: SLURM's commands)."""
        entries = []
        budgets: dict[tuple[str, str], accounting.Budget | None] = {}
        for display, _key, _cls, child in self.profiles:
            gpus = int(child.get("gpus", 0))
            if not gpus:
                continue
            where = (str(child.get("req_account", "")), str(child.get("req_qos", "")))
            if where not in budgets:
                budgets[where] = budget_mod.learner_budget(
                    self.user.name, account=where[0], qos=where[1]
                )
            spawn = budget_mod.cost(str(display), gpus, str(child.get("req_runtime", "")))
            entries.append((spawn, budgets[where]))
        return budget_mod.form_note(entries)


__all__ = ["FactoryProfilesSpawner", "FactorySlurmSpawner", "SlurmSpawnError", "start_deadline"]
