"""Resolve the execution tier (cpu-tiny, gpu, multi-gpu) from what this process can use.

Every notebook has a papermill parameter ``TIER = "auto"``; ``resolve`` turns it into a
concrete tier and ``pick`` derives each size knob (steps, batch, width, world size) from it,
so one notebook runs as a tiny CPU example and, unchanged, as a real GPU job.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar

from aifkit.errors import TierError

CPU_TINY = "cpu-tiny"
GPU = "gpu"
MULTI_GPU = "multi-gpu"
TIERS: tuple[str, ...] = (CPU_TINY, GPU, MULTI_GPU)
AUTO = "auto"
ENV_OVERRIDE = "AIFKIT_TIER"

T = TypeVar("T")


@dataclass(frozen=True)
class Resources:
    """What the process may use: visible GPUs, nodes and tasks of its allocation."""

    gpus: int
    nodes: int
    tasks: int
    source: str

    @property
    def total_gpus(self) -> int:
        """GPUs across the whole allocation (SLURM gives the same count on every node)."""
        return self.gpus * self.nodes


def _count_cuda_visible(value: str) -> int:
    """Number of devices named by a CUDA_VISIBLE_DEVICES value ('' or '-1' hide all)."""
    items = [item.strip() for item in value.split(",") if item.strip()]
    if not items or items[0] in {"-1", "NoDevFiles"}:
        return 0
    return len(items)


def _torch_gpu_count() -> int:
    """GPUs torch can use; 0 when torch is missing or was built without CUDA.

    ``device_count`` asks NVML first and, unlike ``is_available``, does not initialise CUDA in
    this process, so processes forked later (aifkit.course.dist ranks) can still use their GPU.
    """
    try:
        import torch
    except ImportError:
        return 0
    try:
        return int(torch.cuda.device_count())
    except Exception:  # a broken driver must not break tier resolution
        return 0


def _int_env(env: Mapping[str, str], *names: str, default: int) -> int:
    """First of ``names`` that holds an integer (SLURM writes e.g. '2(x3)' for counts)."""
    for name in names:
        raw = env.get(name, "").split("(")[0].strip()
        if raw.isdigit():
            return int(raw)
    return default


def detect(env: Mapping[str, str] | None = None, *, torch_gpus: int | None = None) -> Resources:
    """Detect the GPUs, nodes and tasks available to this process.

    ``torch_gpus`` (what torch.cuda sees) is the authority when given or importable;
    CUDA_VISIBLE_DEVICES can only hide devices torch would see, never invent them.
    """
    env = os.environ if env is None else env
    gpus = _torch_gpu_count() if torch_gpus is None else torch_gpus
    source = "torch.cuda"
    visible = env.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and gpus:
        gpus = min(gpus, _count_cuda_visible(visible))
        source = "torch.cuda + CUDA_VISIBLE_DEVICES"
    nodes = _int_env(env, "SLURM_JOB_NUM_NODES", "SLURM_NNODES", default=1)
    tasks = _int_env(env, "SLURM_NTASKS", "WORLD_SIZE", default=1)
    if "SLURM_JOB_ID" in env:
        source += " + SLURM allocation"
    return Resources(gpus=gpus, nodes=max(nodes, 1), tasks=max(tasks, 1), source=source)


def tier_for(resources: Resources) -> str:
    """The tier a set of resources supports."""
    if resources.gpus == 0:
        return CPU_TINY
    if resources.total_gpus > 1 or resources.nodes > 1:
        return MULTI_GPU
    return GPU


def validate(tier: str) -> str:
    """Return ``tier`` if it is a known concrete tier, else raise TierError."""
    if tier not in TIERS:
        raise TierError(f"unknown tier {tier!r}: use one of {', '.join(TIERS)} or {AUTO!r}")
    return tier


def resolve(
    tier: str = AUTO,
    *,
    env: Mapping[str, str] | None = None,
    torch_gpus: int | None = None,
) -> str:
    """Turn ``tier`` ('auto' or a tier name) into a concrete tier.

    Order: an explicit tier wins; then the AIFKIT_TIER environment variable; then what
    ``detect`` finds. An explicit GPU tier is honoured even without a GPU (``aifkit doctor``
    reports the mismatch), so sizes of every tier can be checked on a laptop.
    """
    env = os.environ if env is None else env
    requested = tier.strip().lower() if tier else AUTO
    if requested == AUTO:
        requested = env.get(ENV_OVERRIDE, AUTO).strip().lower() or AUTO
    if requested == AUTO:
        return tier_for(detect(env, torch_gpus=torch_gpus))
    return validate(requested)


def pick(tier: str, *, cpu_tiny: T, gpu: T, multi_gpu: T) -> T:
    """Choose a size knob for ``tier``: ``steps = pick(TIER, cpu_tiny=50, gpu=5_000, multi_gpu=50_000)``."""
    choices: dict[str, T] = {CPU_TINY: cpu_tiny, GPU: gpu, MULTI_GPU: multi_gpu}
    return choices[validate(tier)]
