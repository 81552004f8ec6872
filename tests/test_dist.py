"""aifkit.course.dist.run_local: real gloo process groups on local CPU processes, failing fast."""

from __future__ import annotations

import os
import time

import pytest

from aifkit.course.dist import DistError, launch, run_local


def all_reduce_sum(rank: int, world_size: int) -> float:
    import torch
    import torch.distributed as dist

    tensor = torch.tensor([float(rank + 1)])
    dist.all_reduce(tensor)
    print(f"rank {rank} of {world_size}: {os.environ['RANK']} {os.environ['MASTER_ADDR']}")
    return float(tensor.item())


def test_all_reduce_on_two_ranks() -> None:
    """Does each rank see the torchrun environment and the same all-reduced sum?"""
    outputs = launch(all_reduce_sum, 2, echo=False)
    assert [o.value for o in outputs] == [3.0, 3.0]
    assert "rank 1 of 2: 1 127.0.0.1" in outputs[1].log


def test_results_in_rank_order_with_args(capsys: pytest.CaptureFixture[str]) -> None:
    """Are extra args passed and results returned by rank, with [rank r] echo lines?"""
    assert run_local(lambda rank, size, k: rank * k, 3, args=(10,)) == [0, 10, 20]
    assert run_local(all_reduce_sum, 1) == [1.0]
    assert "[rank 0] rank 0 of 1" in capsys.readouterr().out


def failing(rank: int, world_size: int) -> None:
    import torch
    import torch.distributed as dist

    if rank == 1:
        raise ValueError("rank one is broken")
    dist.all_reduce(torch.zeros(1))  # would wait forever for rank 1


def test_failing_rank_stops_the_others_fast() -> None:
    """Does one rank's exception surface with its traceback, without waiting for the timeout?"""
    start = time.monotonic()
    with pytest.raises(DistError, match="rank 1 of 2 failed") as info:
        run_local(failing, 2, timeout_s=60, echo=False)
    assert "ValueError: rank one is broken" in str(info.value)
    assert time.monotonic() - start < 30


def test_dead_rank_is_reported() -> None:
    """Is a rank that dies without a word (os._exit) reported as died, not hung?"""
    with pytest.raises(DistError, match="rank 0 died"):
        run_local(
            lambda rank, size: os._exit(7) if rank == 0 else time.sleep(30),
            2,
            timeout_s=60,
            echo=False,
        )


def test_stuck_rank_times_out() -> None:
    """Does a rank stuck past the timeout end the run with a clear message?"""
    with pytest.raises(DistError, match="timed out after 3 s"):
        run_local(lambda rank, size: time.sleep(60), 2, timeout_s=3, echo=False)


def test_world_size_must_be_positive() -> None:
    """Is a world size of 0 refused?"""
    with pytest.raises(DistError, match="world_size"):
        run_local(all_reduce_sum, 0)


def test_tensors_come_back_by_value() -> None:
    """Can a rank return a torch tensor (copied, not shared with the exited rank)?"""
    import torch

    results = run_local(lambda rank, size: torch.full((3,), float(rank)), 2, echo=False)
    assert [r.tolist() for r in results] == [[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]]


def test_the_cause_is_reported_not_the_peer_that_lost_it() -> None:
    """When ranks fail together, is the rank that raised reported rather than its waiting peer?"""
    from aifkit.course.dist import _first_failure

    error = _first_failure(
        {0: "DistBackendError: Connection closed by peer", 1: "ValueError: boom"}, 2
    )
    assert str(error).startswith("rank 1 of 2 failed (rank(s) [0] failed as a consequence)")
    assert "ValueError: boom" in str(error)
