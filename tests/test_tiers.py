"""Tier resolution: cpu-tiny, gpu or multi-gpu from explicit words, AIFKIT_TIER and the machine."""

from __future__ import annotations

import pytest

from aifkit.course import tiers
from aifkit.errors import TierError


@pytest.mark.parametrize("tier", ["cpu-tiny", "gpu", "multi-gpu", " GPU "])
def test_explicit_tier_is_kept(tier: str) -> None:
    """Is an explicit tier returned as is (normalised), whatever the machine has?"""
    env = {"AIFKIT_TIER": "multi-gpu"}
    assert tiers.resolve(tier, env=env, torch_gpus=0) == tier.strip().lower()


def test_env_override_applies_to_auto() -> None:
    """Does AIFKIT_TIER decide when the notebook says 'auto'?"""
    assert tiers.resolve("auto", env={"AIFKIT_TIER": "gpu"}, torch_gpus=0) == "gpu"


def test_env_override_auto_falls_back_to_detection() -> None:
    """Does AIFKIT_TIER=auto (or empty) leave the decision to the machine?"""
    assert tiers.resolve("auto", env={"AIFKIT_TIER": "auto"}, torch_gpus=1) == "gpu"
    assert tiers.resolve("auto", env={"AIFKIT_TIER": ""}, torch_gpus=0) == "cpu-tiny"


@pytest.mark.parametrize(("gpus", "expected"), [(0, "cpu-tiny"), (1, "gpu"), (4, "multi-gpu")])
def test_auto_follows_gpu_count(gpus: int, expected: str) -> None:
    """Does 'auto' give cpu-tiny without GPUs, gpu with one and multi-gpu with several?"""
    assert tiers.resolve("auto", env={}, torch_gpus=gpus) == expected


@pytest.mark.parametrize(
    ("visible", "expected"),
    [("", "cpu-tiny"), ("-1", "cpu-tiny"), ("2", "gpu"), ("0,1", "multi-gpu")],
)
def test_cuda_visible_devices_hides_gpus(visible: str, expected: str) -> None:
    """Can CUDA_VISIBLE_DEVICES hide some or all of the GPUs torch would see?"""
    env = {"CUDA_VISIBLE_DEVICES": visible}
    assert tiers.resolve("auto", env=env, torch_gpus=4) == expected


def test_cuda_visible_devices_cannot_invent_gpus() -> None:
    """Does naming devices in CUDA_VISIBLE_DEVICES leave a GPU-less machine at cpu-tiny?"""
    env = {"CUDA_VISIBLE_DEVICES": "0,1,2,3"}
    assert tiers.resolve("auto", env=env, torch_gpus=0) == "cpu-tiny"


def test_slurm_multi_node_is_multi_gpu() -> None:
    """Is one GPU per node on two SLURM nodes a multi-gpu job?"""
    env = {"SLURM_JOB_ID": "42", "SLURM_JOB_NUM_NODES": "2", "SLURM_NTASKS": "2"}
    assert tiers.resolve("auto", env=env, torch_gpus=1) == "multi-gpu"
    found = tiers.detect(env, torch_gpus=1)
    assert (found.nodes, found.tasks, found.total_gpus) == (2, 2, 2)
    assert "SLURM" in found.source


def test_slurm_counts_with_repetition_suffix() -> None:
    """Is a SLURM count like '2(x3)' read as 2?"""
    found = tiers.detect({"SLURM_NNODES": "2(x3)"}, torch_gpus=0)
    assert found.nodes == 2


def test_slurm_without_gpus_stays_cpu_tiny() -> None:
    """Does a CPU-only multi-node allocation still resolve to cpu-tiny?"""
    env = {"SLURM_JOB_ID": "42", "SLURM_JOB_NUM_NODES": "4"}
    assert tiers.resolve("auto", env=env, torch_gpus=0) == "cpu-tiny"


@pytest.mark.parametrize("bad", ["huge", "tpu"])
def test_unknown_tier_is_an_error(bad: str) -> None:
    """Does an unknown tier, given or from AIFKIT_TIER, raise a TierError naming the choices?"""
    with pytest.raises(TierError, match="cpu-tiny, gpu, multi-gpu"):
        tiers.resolve(bad, env={}, torch_gpus=0)
    with pytest.raises(TierError, match=bad):
        tiers.resolve("auto", env={"AIFKIT_TIER": bad}, torch_gpus=0)


def test_pick_chooses_per_tier() -> None:
    """Does pick return the knob of each tier?"""
    knobs = {"cpu_tiny": 50, "gpu": 5_000, "multi_gpu": 50_000}
    assert [tiers.pick(t, **knobs) for t in tiers.TIERS] == [50, 5_000, 50_000]


def test_pick_rejects_auto() -> None:
    """Does pick refuse an unresolved tier such as 'auto'?"""
    with pytest.raises(TierError):
        tiers.pick("auto", cpu_tiny=1, gpu=2, multi_gpu=3)
