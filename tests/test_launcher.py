"""The kernel launcher fits threads and CUDA/NCCL settings to the allocation, then execs."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from aifkit import launcher
from aifkit.errors import LauncherError


def test_affinity_is_the_default() -> None:
    """Without SLURM or AIFKIT_THREADS, does the kernel get one thread per usable CPU?"""
    env = launcher.fit_environment({}, affinity=2)
    assert all(env[name] == "2" for name in launcher.THREAD_VARS)
    assert env["AIFKIT_KERNEL_THREADS"] == "2"


def test_slurm_cpus_per_task_wins_over_affinity() -> None:
    """Does SLURM_CPUS_PER_TASK win over affinity, even when it exceeds it (3 on 2 CPUs)?"""
    env = launcher.fit_environment({"SLURM_CPUS_PER_TASK": "3"}, affinity=2)
    assert env["OMP_NUM_THREADS"] == "3"
    assert env["AIFKIT_KERNEL_THREADS"] == "3"
    assert launcher.choose_threads({"SLURM_CPUS_PER_TASK": "3"}, affinity=2).source == (
        "SLURM_CPUS_PER_TASK"
    )


def test_aifkit_threads_overrides_everything() -> None:
    """Does an explicit AIFKIT_THREADS beat both SLURM and the affinity?"""
    env = launcher.fit_environment({"SLURM_CPUS_PER_TASK": "8", "AIFKIT_THREADS": "5"}, affinity=2)
    assert {env[name] for name in launcher.THREAD_VARS} == {"5"}


@pytest.mark.parametrize("bad", ["0", "-2", "many", "2.5"])
def test_bad_aifkit_threads_is_an_error(bad: str) -> None:
    """Is a nonsensical AIFKIT_THREADS refused with a message saying how to fix it?"""
    with pytest.raises(LauncherError, match="positive integer"):
        launcher.fit_environment({"AIFKIT_THREADS": bad}, affinity=2)


@pytest.mark.parametrize("bad", ["", "0", "x"])
def test_bad_slurm_value_falls_back_to_affinity(bad: str) -> None:
    """Does an unusable SLURM_CPUS_PER_TASK fall back to the affinity instead of failing?"""
    env = launcher.fit_environment({"SLURM_CPUS_PER_TASK": bad}, affinity=2)
    assert env["OMP_NUM_THREADS"] == "2"


def test_affinity_zero_still_gives_one_thread() -> None:
    """Is the thread count at least 1 even when the affinity is unknown?"""
    assert launcher.fit_environment({}, affinity=0)["OMP_NUM_THREADS"] == "1"


def test_stale_thread_settings_are_replaced() -> None:
    """Are thread variables inherited from a login shell replaced by the allocation's count?"""
    env = launcher.fit_environment({"OMP_NUM_THREADS": "64", "MKL_DYNAMIC": "TRUE"}, affinity=4)
    assert env["OMP_NUM_THREADS"] == "4"
    assert env["MKL_DYNAMIC"] == "FALSE"  # else MKL (and torch) cap at the physical cores


def test_cuda_defaults_are_only_defaults() -> None:
    """Are CUDA/NCCL defaults added when absent and a site's own values kept?"""
    fresh = launcher.fit_environment({}, affinity=1)
    assert fresh["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"
    assert fresh["TORCH_NCCL_ASYNC_ERROR_HANDLING"] == "1"
    assert fresh["PYTORCH_CUDA_ALLOC_CONF"] == "expandable_segments:True"
    site = {
        "CUDA_DEVICE_ORDER": "FASTEST_FIRST",
        "TORCH_NCCL_ASYNC_ERROR_HANDLING": "0",
        "PYTORCH_ALLOC_CONF": "max_split_size_mb:128",
    }
    kept = launcher.fit_environment(site, affinity=1)
    assert {k: kept[k] for k in site} == site
    assert "PYTORCH_CUDA_ALLOC_CONF" not in kept  # torch reads either; the site's one stays


def test_input_is_not_changed_and_the_rest_passes_through() -> None:
    """Is the given mapping left alone, with unrelated variables (MPLBACKEND) passed through?"""
    given = {"MPLBACKEND": "Agg", "HOME": "/home/learner"}
    env = launcher.fit_environment(given, affinity=2)
    assert given == {"MPLBACKEND": "Agg", "HOME": "/home/learner"}
    assert env["MPLBACKEND"] == "Agg" and env["HOME"] == "/home/learner"


def test_main_execs_ipykernel_with_the_fitted_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Does main replace itself with `python -m ipykernel_launcher <args>` and the new env?"""
    calls: list[tuple[str, list[str], dict[str, str]]] = []

    def fake_execve(path: str, argv: list[str], env: dict[str, str]) -> None:
        calls.append((path, argv, env))
        raise SystemExit(0)

    monkeypatch.setattr(os, "execve", fake_execve)
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "3")
    monkeypatch.delenv("AIFKIT_THREADS", raising=False)
    with pytest.raises(SystemExit):
        launcher.main(["-f", "/tmp/kernel-1.json"])
    path, argv, env = calls[0]
    assert path == sys.executable
    assert argv == [sys.executable, "-m", "ipykernel_launcher", "-f", "/tmp/kernel-1.json"]
    assert env["OMP_NUM_THREADS"] == "3"


def test_main_ignores_a_bad_aifkit_threads_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Does a typo in AIFKIT_THREADS still start the kernel, warning on stderr?"""
    seen: list[dict[str, str]] = []

    def fake_execve(path: str, argv: list[str], env: dict[str, str]) -> None:
        seen.append(env)
        raise SystemExit(0)

    monkeypatch.setattr(os, "execve", fake_execve)
    monkeypatch.setattr(launcher, "affinity_count", lambda: 2)
    monkeypatch.setenv("AIFKIT_THREADS", "lots")
    monkeypatch.delenv("SLURM_CPUS_PER_TASK", raising=False)
    with pytest.raises(SystemExit):
        launcher.main(["-f", "conn.json"])
    assert seen[0]["OMP_NUM_THREADS"] == "2"
    assert "AIFKIT_THREADS" in capsys.readouterr().err


def test_print_env_shows_what_would_be_set() -> None:
    """Does `python -m aifkit.launcher --print-env` list the settings and their source?"""
    env = {k: v for k, v in os.environ.items() if k != "AIFKIT_THREADS"}
    env["SLURM_CPUS_PER_TASK"] = "3"
    done = subprocess.run(
        [sys.executable, "-m", "aifkit.launcher", "--print-env"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert "OMP_NUM_THREADS=3" in done.stdout.splitlines()
    assert "AIFKIT_KERNEL_THREADS=3" in done.stdout.splitlines()
    assert "from SLURM_CPUS_PER_TASK" in done.stdout
