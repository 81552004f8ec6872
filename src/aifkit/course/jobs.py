"""SLURM job scripts as data: a template rendered for a tier and a site profile, validated first.

``spec_for_tier`` turns a tier into a job shape (cpu-tiny: 2 gloo processes on one node; gpu: one
GPU; multi-gpu: every GPU of N nodes), ``validate`` checks it against the site's partition limits
with errors that say what to change, and ``render`` fills ``data/templates/torchrun.sbatch``:
``srun --kill-on-bad-exit=1`` runs torchrun on every node, the rendezvous port comes from the job
id, every rank logs to its own file, and ``--signal`` warns the job before its time limit.
``submit`` writes the script and hands it to the one SLURM client, ``aifkit.slurm``, whose
``status``, ``JobStatus`` and ``JobError`` this module passes on to notebooks.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

from aifkit import slurm, templates
from aifkit.course import site as site_mod
from aifkit.course import tiers
from aifkit.slurm import JobError, JobStatus, format_time, status

__all__ = [
    "JobError",
    "JobSpec",
    "JobStatus",
    "format_time",
    "node_ranks",
    "render",
    "spec_for_tier",
    "status",
    "submit",
    "validate",
]

_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_RANK_LINE = re.compile(r"^\[rank(\d+)\]:", flags=re.MULTILINE)


@dataclass(frozen=True)
class JobSpec:
    """Everything a rendered job script depends on."""

    command: tuple[str, ...]
    tier: str
    job_name: str = "aifkit"
    nodes: int = 1
    procs_per_node: int = 2
    gpus_per_node: int = 0
    cpus_per_task: int = 2
    time_minutes: int = 30
    partition: str = ""
    account: str = ""
    log_dir: str = "logs"
    signal_lead_s: int = 60
    requeue: bool = True
    python: str = field(default_factory=lambda: sys.executable)
    environment: tuple[tuple[str, str], ...] = ()

    @property
    def world_size(self) -> int:
        return self.nodes * self.procs_per_node

    @property
    def backend(self) -> str:
        return "nccl" if self.gpus_per_node else "gloo"


def spec_for_tier(
    command: list[str] | tuple[str, ...],
    *,
    tier: str,
    site: site_mod.Site,
    nodes: int | None = None,
    partition: str | None = None,
    **overrides: object,
) -> JobSpec:
    """The job shape a tier implies on this site's partition; keyword overrides win."""
    tier = tiers.validate(tier)
    part = site.partition(partition)
    if tier == tiers.CPU_TINY:  # 2 gloo processes on one node's CPUs
        n_nodes, procs, gpus, cpus = 1, 2, 0, min(2, part.cpus_per_node)
    elif tier == tiers.GPU:  # one GPU and its share of the node's cores
        n_nodes, procs, gpus = 1, 1, 1
        cpus = max(1, part.cpus_per_node // max(part.gpus_per_node, 1))
    else:  # every GPU of each node, one process per GPU
        n_nodes, procs, gpus, cpus = 2, part.gpus_per_node, part.gpus_per_node, part.cpus_per_node
    spec = JobSpec(
        command=tuple(command),
        tier=tier,
        nodes=nodes or n_nodes,
        procs_per_node=procs,
        gpus_per_node=gpus,
        cpus_per_task=cpus,
        partition=part.name,
        account=site.account,
    )
    return replace(spec, **overrides)  # type: ignore[arg-type]


def validate(spec: JobSpec, site: site_mod.Site) -> None:
    """Raise JobError listing every way ``spec`` breaks the site's limits, with the fix."""
    problems: list[str] = []
    try:
        part = site.partition(spec.partition)
    except site_mod.SiteError as error:
        raise JobError(str(error)) from error
    if not spec.command:
        problems.append("no command to run: give the training script and its arguments")
    if not _NAME.match(spec.job_name):
        problems.append(f"job name {spec.job_name!r}: use 1-64 letters, digits, '.', '_' or '-'")
    if spec.nodes < 1 or spec.nodes > part.max_nodes:
        problems.append(f"{spec.nodes} node(s): partition {part.name} allows 1 to {part.max_nodes}")
    if spec.procs_per_node < 1:
        problems.append("procs_per_node must be at least 1")
    if spec.gpus_per_node > part.gpus_per_node:
        problems.append(
            f"{spec.gpus_per_node} GPU(s) per node: partition {part.name} nodes have {part.gpus_per_node}; "
            "use more nodes instead"
        )
    if spec.gpus_per_node and spec.procs_per_node > spec.gpus_per_node:
        problems.append(
            f"{spec.procs_per_node} processes per node share {spec.gpus_per_node} GPU(s): use one process per GPU"
        )
    if spec.cpus_per_task < 1 or spec.cpus_per_task > part.cpus_per_node:
        problems.append(
            f"{spec.cpus_per_task} CPUs per task: partition {part.name} nodes have {part.cpus_per_node}"
        )
    if spec.time_minutes < 1 or spec.time_minutes > part.max_minutes:
        problems.append(
            f"time {format_time(spec.time_minutes)}: partition {part.name} allows at most {part.max_time}"
        )
    if spec.signal_lead_s < 0 or spec.signal_lead_s >= spec.time_minutes * 60:
        problems.append(
            f"--signal lead of {spec.signal_lead_s} s must be shorter than the time limit"
        )
    if site.account and not spec.account:
        problems.append(
            f"site {site.name} charges every job to an account: set account (e.g. {site.account!r})"
        )
    if problems:
        raise JobError(
            f"job {spec.job_name!r} does not fit site {site.name!r}:\n  " + "\n  ".join(problems)
        )


def render(spec: JobSpec, site: site_mod.Site) -> str:
    """The sbatch script for ``spec`` (the site's ``torchrun.sbatch``), after validating it."""
    validate(spec, site)
    return templates.render("torchrun.sbatch", site.templates, spec=spec, site=site)


def submit(
    spec: JobSpec, site: site_mod.Site, *, workdir: Path, wait: bool = False, timeout_s: float = 600
) -> str:
    """Render ``spec``, write it to ``workdir/<name>.sbatch`` and submit it from there; return the job id.

    The log folder is made first: SLURM cannot open ``--output`` in a folder that does not exist.
    With ``wait``, return once the job has ended (JobError if it runs past ``timeout_s``).
    """
    script = render(spec, site)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / spec.log_dir).mkdir(
        parents=True, exist_ok=True
    )  # an absolute log_dir stays absolute
    path = workdir / f"{spec.job_name}.sbatch"
    path.write_text(script, encoding="utf-8")
    job_id = slurm.submit(path, chdir=workdir, timeout_s=min(timeout_s, slurm.SUBMIT_TIMEOUT_S))
    if wait:
        slurm.wait(job_id, timeout_s=timeout_s)
    return job_id


def node_ranks(job_id: str, spec: JobSpec, *, workdir: Path) -> dict[str, list[int]]:
    """Node name -> the global ranks that ran there, read from the job's per-node logs.

    srun writes node ``n`` of the job to ``<log_dir>/<name>-<id>-node<n>.out`` and torchrun prefixes
    each rank's lines with ``[rank<r>]:``; node ``n`` is the n-th of ``scontrol show hostnames``.
    A node whose ranks printed nothing maps to [].
    """
    nodes = status(job_id).nodes
    done = slurm.run(["scontrol", "show", "hostnames", nodes], slurm.QUERY_TIMEOUT_S)
    if done.returncode != 0 or not nodes:
        raise JobError(f"cannot list the nodes of job {job_id} ({nodes!r}): {done.stderr.strip()}")
    log_dir = workdir / spec.log_dir
    found: dict[str, list[int]] = {}
    for index, node in enumerate(done.stdout.split()):
        log = log_dir / f"{spec.job_name}-{job_id}-node{index}.out"
        text = log.read_text(encoding="utf-8", errors="replace") if log.exists() else ""
        found[node] = sorted({int(rank) for rank in _RANK_LINE.findall(text)})
    return found
