"""Run a function on N local processes as a torch.distributed job (torchrun semantics).

``run_local(fn, world_size)`` starts ``world_size`` processes, gives each the environment
torchrun would (RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT), initialises the
process group (gloo on CPU, NCCL when every rank has its own GPU), calls ``fn(rank, world_size,
*args)`` and returns each rank's result in rank order. Each rank's output is captured and
printed with a ``[rank r]`` prefix. When one rank fails, the others are stopped at once and a
DistError carries the failing rank's traceback: a notebook never hangs on a dead peer.

Processes are forked so that functions defined in a notebook work as they are.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import pickle
import socket
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from aifkit.errors import AifkitError

_CONTEXT = multiprocessing.get_context("fork")


class DistError(AifkitError):
    """A rank failed, died or ran past the timeout."""


@dataclass(frozen=True)
class RankOutput:
    """What one rank returned and printed."""

    rank: int
    value: Any
    log: str


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now (for MASTER_PORT)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def default_backend(world_size: int) -> str:
    """NCCL when every rank can have its own GPU, gloo otherwise."""
    try:
        import torch

        if torch.cuda.device_count() >= world_size:  # NVML first: CUDA stays uninitialised here
            return "nccl"
    except ImportError:
        pass
    return "gloo"


def _rank_main(
    fn: Callable[..., Any],
    rank: int,
    world_size: int,
    args: Sequence[Any],
    backend: str,
    port: int,
    log: Path,
    conn: Connection,
) -> None:
    """Body of one rank: environment, process group, fn, result back to the parent."""
    with open(log, "w", buffering=1, encoding="utf-8") as stream:
        sys.stdout = sys.stderr = stream
        os.environ.update(
            {
                "RANK": str(rank),
                "LOCAL_RANK": str(rank),
                "WORLD_SIZE": str(world_size),
                "LOCAL_WORLD_SIZE": str(world_size),
                "MASTER_ADDR": "127.0.0.1",
                "MASTER_PORT": str(port),
            }
        )
        try:
            import torch
            import torch.distributed as dist

            torch.set_num_threads(1)  # ranks share the machine's cores
            if backend == "nccl":
                torch.cuda.set_device(rank)
            dist.init_process_group(backend, rank=rank, world_size=world_size)
            message: tuple[str, Any] = ("ok", fn(rank, world_size, *args))
        except BaseException:
            message = ("error", traceback.format_exc())
        stream.flush()
        # Report before leaving the process group, so that a failing rank's own error reaches the
        # parent before its peers notice the lost connection. Plain pickle copies tensors by value
        # (multiprocessing's pickler would share memory with this exiting process).
        conn.send_bytes(pickle.dumps(message))
        with contextlib.suppress(Exception):
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()
    conn.close()
    os._exit(0)  # skip the parent's atexit handlers, inherited by fork


def _stop(processes: Sequence[BaseProcess]) -> None:
    for process in processes:
        if process.is_alive():
            process.kill()
    for process in processes:
        process.join(timeout=5)


def run_local(
    fn: Callable[..., Any],
    world_size: int,
    *,
    args: Sequence[Any] = (),
    backend: str | None = None,
    timeout_s: float = 120.0,
    echo: bool = True,
) -> list[Any]:
    """Run ``fn(rank, world_size, *args)`` on ``world_size`` processes; results in rank order."""
    outputs = launch(fn, world_size, args=args, backend=backend, timeout_s=timeout_s, echo=echo)
    return [out.value for out in outputs]


def launch(
    fn: Callable[..., Any],
    world_size: int,
    *,
    args: Sequence[Any] = (),
    backend: str | None = None,
    timeout_s: float = 120.0,
    echo: bool = True,
) -> list[RankOutput]:
    """Like ``run_local`` but returns each rank's value and captured log."""
    if world_size < 1:
        raise DistError(f"world_size must be >= 1, got {world_size}")
    backend = backend or default_backend(world_size)
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="aifkit-dist-") as scratch:
        logs = [Path(scratch) / f"rank{rank}.log" for rank in range(world_size)]
        receivers: list[Connection] = []
        processes: list[BaseProcess] = []
        for rank in range(world_size):
            # Each pipe is made just before its rank starts and the parent's sending end closed
            # just after, so no other rank inherits it: a rank that dies is seen (EOF) at once,
            # not only when every other rank has ended too.
            receiver, sender = _CONTEXT.Pipe(duplex=False)
            process = _CONTEXT.Process(
                target=_rank_main,
                args=(fn, rank, world_size, args, backend, port, logs[rank], sender),
            )
            process.start()
            sender.close()
            receivers.append(receiver)
            processes.append(process)
        try:
            values = _collect(receivers, timeout_s, logs)
        finally:
            _stop(processes)
        outputs = [
            RankOutput(rank, values[rank], logs[rank].read_text(encoding="utf-8"))
            for rank in range(world_size)
        ]
    if echo:
        for out in outputs:
            for line in out.log.splitlines():
                print(f"[rank {out.rank}] {line}")
    return outputs


def _collect(
    receivers: Sequence[Connection], timeout_s: float, logs: Sequence[Path]
) -> dict[int, Any]:
    """Wait for every rank's result; fail fast on the first error, death or the timeout."""
    values: dict[int, Any] = {}
    pending = dict(enumerate(receivers))
    deadline = time.monotonic() + timeout_s
    while pending:
        remaining = deadline - time.monotonic()
        ready = wait(list(pending.values()), timeout=max(remaining, 0))
        if not ready:
            raise DistError(
                f"timed out after {timeout_s:.0f} s waiting for rank(s) {sorted(pending)}: "
                "a rank may be stuck in a collective that another rank never called"
            )
        failures: dict[int, str] = {}
        for rank in [r for r, conn in pending.items() if conn in ready]:
            try:
                status, payload = pickle.loads(pending.pop(rank).recv_bytes())
            except EOFError:
                if failures:  # peers that already failed did so because this rank died
                    failures[rank] = _death(rank, logs[rank])
                    break
                raise DistError(
                    f"{_death(rank, logs[rank])}\nThe other ranks were stopped."
                ) from None
            if status == "error":
                failures[rank] = payload
            else:
                values[rank] = payload
        if failures:
            failures.update(_late_failures(pending, logs, grace_s=1.0))
            raise _first_failure(failures, len(receivers))
    return values


def _death(rank: int, log: Path) -> str:
    return (
        f"rank {rank} died before returning (killed, out of memory or os._exit). "
        f"Its output:\n{_tail(log)}"
    )


def _late_failures(
    pending: dict[int, Connection], logs: Sequence[Path], grace_s: float
) -> dict[int, str]:
    """Errors and deaths other ranks report within ``grace_s``: the cause may arrive last."""
    late: dict[int, str] = {}
    ready = wait(list(pending.values()), timeout=grace_s)
    for rank, conn in pending.items():
        if conn not in ready:
            continue
        try:
            status, payload = pickle.loads(conn.recv_bytes())
        except EOFError:
            late[rank] = _death(rank, logs[rank])
            continue
        if status == "error":
            late[rank] = payload
    return late


_PEER_LOST = ("Connection closed by peer", "Connection reset by peer", "DistBackendError")


def _first_failure(failures: dict[int, str], world_size: int) -> DistError:
    """The error to report when ranks fail together: the cause, not a peer's lost connection."""
    causes = [r for r, trace in failures.items() if not any(m in trace for m in _PEER_LOST)]
    rank = min(causes or failures)
    others = sorted(set(failures) - {rank})
    also = f" (rank(s) {others} failed as a consequence)" if others else ""
    return DistError(
        f"rank {rank} of {world_size} failed{also}; the other ranks were stopped:\n{failures[rank]}"
    )


def _tail(log: Path, lines: int = 20) -> str:
    try:
        return "\n".join(log.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no output)"
