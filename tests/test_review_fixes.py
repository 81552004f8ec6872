"""Defects a review found in tracks A and B (issue 12 item 3), each pinned by a test.

The notebooks' own cells are executed where they are pure computations on the facts, so a
test fails on the old content (a wrong ratio, a wrong byte count), not on wording.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import re
from pathlib import Path
from typing import Any

import pytest
from builders import COURSES

from aifkit.course import facts
from aifkit.notebooks import reading


def notebook(assignment: str) -> Any:
    return reading.read(COURSES / assignment / f"{assignment}.ipynb")


def cell_with(nb: Any, needle: str, kind: str = "code") -> Any:
    """The one cell of ``kind`` whose source holds ``needle``."""
    cells = [c for c in nb.cells if c.cell_type == kind and needle in reading.source_of(c)]
    assert len(cells) == 1, f"expected one {kind} cell holding {needle!r}, found {len(cells)}"
    return cells[0]


def run_cells(*sources: str, namespace: dict[str, Any] | None = None) -> tuple[dict[str, Any], str]:
    """Execute cell sources in one namespace (with the course facts); return it and stdout."""
    namespace = {"facts": facts, **(namespace or {})}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        for source in sources:
            exec(compile(source, "<cell>", "exec"), namespace)
    return namespace, out.getvalue()


def test_a01_compares_the_laptop_with_the_factory_in_one_precision() -> None:
    """Does a01 compare the laptop's FP32 peak with the factory's FP32 peak, not its BF16 one?"""
    nb = notebook("a01-welcome")
    ns, out = run_cells(reading.source_of(cell_with(nb, 'facts.value("laptop_fp32_peak")')))
    laptop_lines = [line for line in out.splitlines() if "laptop" in line]
    assert laptop_lines, "a01 no longer compares the factory with a laptop"
    expected = (
        facts.value("factory_accelerators")
        * facts.value("h100_fp32")
        / facts.value("laptop_fp32_peak")
    )
    assert ns.get("factory_over_laptop") == pytest.approx(expected), (
        "the laptop ratio must divide the factory's FP32 peak by the laptop's FP32 peak"
    )
    assert all("FP32" in line for line in laptop_lines), laptop_lines
    days = re.search(r"= ([\d.]+) days", out)
    assert days, f"a01 no longer prints the laptop-days line:\n{out}"
    assert float(days.group(1)) == pytest.approx(expected / 86_400, abs=0.05)


SRUN_LINE = re.compile(r"^\s*srun\b.*$", re.MULTILINE)


@pytest.mark.parametrize(
    "path", sorted(COURSES.glob("[ab]0*/*.ipynb")), ids=lambda p: p.parent.name
)
def test_one_task_per_node_steps_name_their_task_count(path: Path) -> None:
    """Does every `srun --ntasks-per-node=1` step also set -N and -n, so it does not inherit the
    job's task count (srun then starts SLURM_NTASKS copies, several per node)?"""
    for cell in reading.read(path).cells:
        for line in SRUN_LINE.findall(reading.source_of(cell)):
            if "--ntasks-per-node=1" not in line:
                continue
            assert re.search(r"(\s-N\s*\S|--nodes[= ])", line) and re.search(
                r"(\s-n\s*\S|--ntasks[= ])", line
            ), f"{path.name}: {line.strip()!r} must say -N $SLURM_NNODES -n $SLURM_NNODES"


def test_a05_quiz_cannot_be_passed_by_guessing() -> None:
    """Of every answer a learner could give in the quiz's format, does only one earn the points?"""
    nb = notebook("a05-data-storage")
    solution = cell_with(nb, "def small_files_answers")
    tests = [
        c
        for c in nb.cells
        if reading.is_test_cell(c) and "small_files_answers()" in reading.source_of(c)
    ]
    assert len(tests) == 1, "the quiz must be one graded cell: its points need every choice right"
    letters = re.search(r'CHOICES = "([A-Z]+)"', reading.source_of(solution))
    assert letters, "the quiz declares its choices as CHOICES = 'ABC...'"
    choices = letters.group(1)
    assert len(choices) >= 6, "at least 6 statements: a guess then passes with p <= 1/64"
    passed = []
    for k in range(len(choices) + 1):
        for subset in itertools.combinations(choices, k):
            guess = set(subset)
            try:
                run_cells(
                    reading.source_of(tests[0]),
                    namespace={"small_files_answers": lambda guess=guess: guess},
                )
            except AssertionError:
                continue
            passed.append(guess)
    assert len(passed) == 1, f"{len(passed)} of {2 ** len(choices)} possible answers pass"


def test_b05_prices_the_gradient_all_reduce_in_fp32() -> None:
    """Does b05's estimate use 4 B per gradient (DDP all-reduces fp32) and teach the bf16 hook?"""
    nb = notebook("b05-collectives")
    costs = reading.source_of(cell_with(nb, "def ring_allreduce_time"))
    networks = reading.source_of(cell_with(nb, "NETWORKS = ["))
    estimate = reading.source_of(cell_with(nb, "EXAMPLE_PARAMS ="))
    ns, out = run_cells("import math", costs, networks, estimate)
    assert ns["grad_bytes"] == 4 * ns["EXAMPLE_PARAMS"], "DDP all-reduces fp32 gradients: 4 B each"
    text = "\n".join(reading.source_of(c) for c in nb.cells)
    assert "bf16_compress_hook" in text and "reduce_dtype" in text, (
        "b05 must name the bf16 compression hook and FSDP's reduce_dtype"
    )
    assert "bf16_compress_hook" in out, "the estimate says what the hook would save"


def b05_config(tier: str) -> dict[str, Any]:
    """b05's tier-config cell run alone with TIER set, as papermill would inject it."""
    nb = notebook("b05-collectives")
    cells = [c for c in nb.cells if reading.has_tag(c, "tier-config")]
    assert len(cells) == 1, "b05 must have exactly one cell tagged 'tier-config'"
    namespace, _ = run_cells(reading.source_of(cells[0]), namespace={"TIER": tier})
    return namespace


@pytest.mark.parametrize(
    ("tier", "gpus", "world", "backend"),
    [
        ("cpu-tiny", 0, 2, "gloo"),
        ("gpu", 1, 4, "gloo"),
        ("multi-gpu", 1, 8, "gloo"),
        ("multi-gpu", 0, 8, "gloo"),
        ("multi-gpu", 2, 2, "nccl"),
        ("multi-gpu", 4, 4, "nccl"),
        ("multi-gpu", 8, 8, "nccl"),
        ("multi-gpu", 16, 8, "nccl"),
    ],
)
def test_b05_world_fits_the_gpus_there_are(
    monkeypatch: pytest.MonkeyPatch, tier: str, gpus: int, world: int, backend: str
) -> None:
    """At a GPU tier, does b05 run NCCL on no more ranks than GPUs, and otherwise say it runs gloo
    on CPUs and why (never a silent fallback)?"""
    import torch

    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)  # mock only the GPU count
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.delenv("AIFKIT_TIER", raising=False)
    monkeypatch.setenv("PYTORCH_NVML_BASED_CUDA_CHECK", "1")
    config = b05_config(tier)
    assert (config["WORLD_SIZE"], config["BACKEND"]) == (world, backend)
    if backend == "nccl":
        assert config["WORLD_SIZE"] <= gpus, "NCCL needs one GPU per rank"
    if tier != "cpu-tiny" and backend == "gloo":
        assert "gloo" in config["RUNS_ON"] and "NCCL needs one GPU per rank" in config["RUNS_ON"]
