"""`aifkit doctor`: one screen of checks, each problem with its fix, exit code 1 on failure."""

from __future__ import annotations

from pathlib import Path

import pytest

from aifkit import doctor, launcher
from aifkit.resources import jupyter_data_dir


@pytest.fixture(autouse=True)
def _two_cpus_and_aifkit_kernels(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test sees 2 usable CPUs and aifkit's own kernelspec (on JUPYTER_PATH)."""
    monkeypatch.setattr(launcher, "affinity_count", lambda: 2)
    monkeypatch.setenv("JUPYTER_PATH", str(jupyter_data_dir()))


def _slurm_tools(tmp_path: Path) -> str:
    """A PATH holding stand-in sbatch and srun executables."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("sbatch", "srun"):
        (bin_dir / tool).write_text("#!/bin/sh\nexit 0\n")
        (bin_dir / tool).chmod(0o755)
    return str(bin_dir)


@pytest.fixture
def allocation(tmp_path: Path) -> dict[str, str]:
    """A SLURM allocation of 2 nodes x 4 tasks x 3 CPUs whose scratch is a file, not a folder."""
    not_a_folder = tmp_path / "scratch-is-a-file"
    not_a_folder.write_text("")
    return {
        "PATH": _slurm_tools(tmp_path),
        "SLURM_JOB_ID": "4242",
        "SLURM_JOB_NUM_NODES": "2",
        "SLURM_NTASKS": "8",
        "SLURM_CPUS_PER_TASK": "3",
        "SLURM_GPUS_ON_NODE": "4",
        "SLURM_JOB_PARTITION": "booster",
        "AIFKIT_SCRATCH": str(not_a_folder),
        "CUDA_VISIBLE_DEVICES": "",  # the same report on a GPU runner
    }


def _by_item(checks: list[doctor.Check]) -> dict[str, doctor.Check]:
    return {check.item: check for check in checks}


def test_collect_reports_every_item(allocation: dict[str, str]) -> None:
    """Does collect return one check per item, in the documented order?"""
    items = [check.item for check in doctor.collect(allocation)]
    assert items == [
        "python",
        "torch",
        "cpus",
        "kernel threads",
        "gpus",
        "collectives",
        "slurm",
        "slurm tools",
        "budget",
        "kernels",
        "scratch",
        "tier",
    ]


def test_collect_reads_the_slurm_allocation(allocation: dict[str, str]) -> None:
    """Are job id, nodes, tasks, CPUs per task, GPUs and partition shown from SLURM_*?"""
    checks = _by_item(doctor.collect(allocation))
    slurm = checks["slurm"].value
    for part in ("job 4242", "2 nodes", "8 tasks", "3 cpus/task", "gpus 4", "partition booster"):
        assert part in slurm
    assert checks["slurm tools"].status == doctor.OK
    assert checks["tier"].value.startswith("cpu-tiny (gpus 0, nodes 2, tasks 8")


def test_kernel_threads_follow_the_allocation(allocation: dict[str, str]) -> None:
    """Does the doctor show the launcher's 3 threads, warning that 2 CPUs are oversubscribed?"""
    threads = _by_item(doctor.collect(allocation))["kernel threads"]
    assert threads.value == "3 (from SLURM_CPUS_PER_TASK)"
    assert threads.status == doctor.WARN
    assert "AIFKIT_THREADS" in threads.fix


def test_unwritable_scratch_fails_with_a_fix(allocation: dict[str, str]) -> None:
    """Is a scratch path that cannot take a file a failure that says to set AIFKIT_SCRATCH?"""
    scratch = _by_item(doctor.collect(allocation))["scratch"]
    assert scratch.status == doctor.FAIL
    assert "$AIFKIT_SCRATCH" in scratch.value
    assert "AIFKIT_SCRATCH" in scratch.fix


def test_writable_scratch_is_used_and_left_clean(tmp_path: Path) -> None:
    """Does the scratch check really write, and leave nothing behind?"""
    scratch = _by_item(doctor.collect({"SCRATCH": str(tmp_path)}))["scratch"]
    assert scratch.status == doctor.OK
    assert "$SCRATCH" in scratch.value
    assert list(tmp_path.iterdir()) == []


def test_granted_gpus_that_torch_cannot_see_are_a_warning(allocation: dict[str, str]) -> None:
    """If SLURM granted GPUs but torch sees none, does the doctor warn and say what to check?"""
    gpus = _by_item(doctor.collect(allocation))["gpus"]
    assert gpus.status == doctor.WARN
    assert "CUDA_VISIBLE_DEVICES" in gpus.fix


def test_no_gpu_is_fine_at_cpu_tiny() -> None:
    """Without a GPU, is 'none' ok with a note, and the tier cpu-tiny?"""
    checks = _by_item(doctor.collect({"CUDA_VISIBLE_DEVICES": ""}))
    assert (checks["gpus"].value, checks["gpus"].status) == ("none", doctor.OK)
    assert "cpu-tiny" in checks["gpus"].note
    assert checks["tier"].value.startswith("cpu-tiny")


def test_gpu_tier_without_gpus_is_a_warning() -> None:
    """Is AIFKIT_TIER=gpu on a machine without GPUs a warning saying how to fix it?"""
    tier = _by_item(doctor.collect({"AIFKIT_TIER": "gpu", "CUDA_VISIBLE_DEVICES": ""}))["tier"]
    assert tier.status == doctor.WARN
    assert tier.value.startswith("gpu ")
    assert "unset AIFKIT_TIER" in tier.fix


def test_unknown_tier_and_bad_threads_fail() -> None:
    """Are an unknown AIFKIT_TIER and a non-numeric AIFKIT_THREADS failures?"""
    checks = _by_item(doctor.collect({"AIFKIT_TIER": "huge", "AIFKIT_THREADS": "all"}))
    assert checks["tier"].status == doctor.FAIL
    assert checks["kernel threads"].status == doctor.FAIL
    assert "AIFKIT_THREADS" in checks["kernel threads"].fix


def test_missing_kernel_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the aifkit kernelspec, is the fix `aifkit kernels install --sys-prefix`?"""
    monkeypatch.setattr(doctor.kernels, "list_installed", lambda: {"python3": Path("/x")})
    check = _by_item(doctor.collect({}))["kernels"]
    assert check.status == doctor.FAIL
    assert check.fix == "aifkit kernels install --sys-prefix"
    assert "python3" in check.value


def test_a_broken_torch_is_reported_not_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    """If importing torch fails, do the torch checks say so while the others still run?"""
    monkeypatch.setattr(doctor, "_torch", lambda: OSError("libcudart.so.12: cannot open"))
    checks = _by_item(doctor.collect({}))
    assert checks["torch"].status == doctor.FAIL
    assert "libcudart" in checks["torch"].value
    assert checks["gpus"].status == doctor.WARN
    assert checks["tier"].value.startswith("cpu-tiny")


def test_a_crashing_check_becomes_a_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    """Does an unexpected exception in one check turn into a failed line, not a traceback?"""

    def boom() -> dict[str, Path]:
        raise RuntimeError("jupyter paths are broken")

    monkeypatch.setattr(doctor.kernels, "list_installed", boom)
    check = _by_item(doctor.collect({}))["kernels"]
    assert check.status == doctor.FAIL
    assert "jupyter paths are broken" in check.value


def test_render_fits_one_screen_with_aligned_columns(allocation: dict[str, str]) -> None:
    """Is the report one screen, with status in one column and a fix per problem?"""
    checks = doctor.collect(allocation)
    text = doctor.render(checks)
    lines = text.splitlines()
    assert len(lines) <= 40 and max(map(len, lines)) <= 100
    table = lines[: len(checks) + 1]
    column = table[0].index("status")
    assert all(line[column:] in {"status", "ok", "warn", "fail"} for line in table)
    assert "to fix:" in text
    for check in checks:
        if check.status != doctor.OK:
            assert f"[{check.status}] {check.item}:" in text
    assert text.splitlines()[-1].endswith("fail")


def test_render_clips_long_values() -> None:
    """Does a very long value get clipped instead of breaking the columns?"""
    text = doctor.render([doctor.Check("scratch", "/very/long/" * 40, doctor.OK)])
    assert max(map(len, text.splitlines())) <= 100
    assert "…" in text


def test_run_exit_codes(
    allocation: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Does run() print the report and return 1 when a check fails, 0 otherwise?"""
    assert doctor.run(allocation) == 1
    assert "scratch" in capsys.readouterr().out
    healthy = {**allocation, "AIFKIT_SCRATCH": str(tmp_path)}
    assert doctor.run(healthy) == 0
    assert "0 fail" in capsys.readouterr().out
