"""Fork safety: does lint find CUDA initialised in the kernel before the kernel forks ranks?"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from aifkit.notebooks import fork_safety, lint
from tests.builders import code

REPO = Path(__file__).resolve().parents[1]

BAD_SNIPPETS = (
    "import torch\nok = torch.cuda.is_available()",
    "import torch\nif torch.cuda.is_available():\n    device = 'cuda'",
    "import torch\nx = torch.ones(2).cuda()",
    "import torch\nx = torch.ones(2).to('cuda')",
    "import torch\nx = torch.ones(2).to(device='cuda:0')",
    "import torch\ntorch.cuda.synchronize()",
)


def fork_findings(path: Path) -> list[lint.LintFinding]:
    return [f for f in lint.lint([path]) if f.rule == "fork-safety"]


@pytest.mark.parametrize("cuda_cell", BAD_SNIPPETS)
def test_cuda_before_run_local_is_found(write_nb: Callable[..., Path], cuda_cell: str) -> None:
    """Is each way of initialising CUDA in the kernel reported at the fork that follows it?"""
    path = write_nb(
        "bad",
        [
            code(cuda_cell),
            code("from aifkit.course.dist import run_local\nrun_local(print, 2)"),
        ],
    )
    [finding] = fork_findings(path)
    assert finding.cell == 2 and "cell 1" in finding.message and "device_count" in finding.fix


@pytest.mark.parametrize(
    "fork", ["mp.spawn(fn, nprocs=2)", "os.fork()", "multiprocessing.Process(target=f).start()"]
)
def test_every_kind_of_fork_is_checked(fork: str) -> None:
    """Do spawn, os.fork and multiprocessing count as forks as well as run_local?"""
    [hazard] = fork_safety.find_hazards([(0, "torch.cuda.init()"), (1, fork)])
    assert (hazard.cuda_cell, hazard.fork_cell) == (0, 1)


@pytest.mark.parametrize(
    "cuda_cell",
    [
        "n = torch.cuda.device_count()  # NVML",
        "device = torch.device('cuda')  # a name, no context",
        "def on_rank(rank):\n    return torch.ones(1).cuda()  # runs in the forked rank",
        "f = lambda: torch.cuda.is_available()",
    ],
)
def test_nvml_names_and_rank_functions_are_safe(cuda_cell: str) -> None:
    """Are NVML's count, device names and CUDA inside rank functions left alone?"""
    assert fork_safety.find_hazards([(0, cuda_cell), (1, "run_local(on_rank, 2)")]) == []


def test_order_matters_and_markers_are_respected() -> None:
    """Is CUDA after the last fork fine, and a fork marked fork-safe accepted?"""
    assert fork_safety.find_hazards([(0, "run_local(f, 2)"), (1, "torch.cuda.synchronize()")]) == []
    assert fork_safety.find_hazards([(0, "run_local(f, 2)\nx = torch.ones(1).cuda()")]) == []
    [hazard] = fork_safety.find_hazards([(0, "x = torch.ones(1).cuda()\nrun_local(f, 2)")])
    assert hazard.fork_cell == 0
    marked = "run_local(f, 2, backend='gloo')  # fork-safe: the ranks stay on the CPU"
    assert fork_safety.find_hazards([(0, "torch.cuda.is_available()"), (1, marked)]) == []
    assert fork_safety.find_hazards([(0, "%timeit x"), (1, "run_local(f, 2)")]) == []


def test_course_notebooks_do_not_fork_after_cuda() -> None:
    """Does no catalog notebook initialise CUDA in its kernel before forking ranks?"""
    assert fork_findings(REPO / "courses") == []
