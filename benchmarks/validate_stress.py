"""Stress `aifkit validate`'s runner: many parallel runs of the notebooks that once hung.

a06 (ipywidgets: the frontend talks back on the shell channel while a cell runs), d01 and b05
(torch.distributed ranks forked from the kernel, each on its own TCP ports), round robin, N at a
time, through the same runner `aifkit validate` uses (fresh kernel per run, the notebook's real
hard limit). A run that reaches its limit is a hang: the script prints the kernel's and the
runner's stacks from its log and exits 1. Not part of CI: it takes minutes.

Usage: python benchmarks/validate_stress.py [--runs 50] [--jobs 4] [NOTEBOOK ...]
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT = ("a06-allocation", "d01-ddp", "b05-collectives")


def main(argv: list[str]) -> int:
    sys.path.insert(0, str(REPO / "src"))
    from aifkit.notebooks import execute, reading, warm
    from aifkit.notebooks.validate import kernel_environment, timeout_for

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument("--runs", type=int, default=50, help="runs in all (default 50)")
    parser.add_argument("--jobs", type=int, default=4, help="runs at a time (default 4)")
    parser.add_argument("--tier", default="cpu-tiny")
    parser.add_argument("--cold", action="store_true", help="start every kernel (no zygote)")
    parser.add_argument(
        "--keep", type=Path, help="keep executed notebooks and kernel logs here (default: deleted)"
    )
    args = parser.parse_args(argv)
    paths = args.notebooks or [REPO / "courses" / n / f"{n}.ipynb" for n in DEFAULT]
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    environment = kernel_environment(args.jobs)
    with contextlib.ExitStack() as stack:
        out = args.keep or Path(stack.enter_context(tempfile.TemporaryDirectory()))
        jobs = [
            execute.Job(
                path=path,
                output=out / f"{i:03d}-{path.name}",
                tier=args.tier,
                timeout_s=timeout_for(path, reading.read(path), args.tier),
                jupyter_path=str(REPO),
                environment=environment,
            )
            for i, path in enumerate(paths[i % len(paths)] for i in range(args.runs))
        ]
        if not args.cold:
            zygote = stack.enter_context(warm.zygote_for(jobs))
            jobs = [dataclasses.replace(job, zygote=zygote) for job in jobs]
        print(
            f"{args.runs} runs of {', '.join(p.stem for p in paths)}, {args.jobs} at a time, "
            f"{'started' if args.cold else 'forked'} kernels, {os.cpu_count()} CPUs, "
            f"load average {os.getloadavg()[0]:.1f} at the start",
            flush=True,
        )
        start = time.perf_counter()
        results: dict[str, list[execute.Execution]] = collections.defaultdict(list)
        hangs = 0
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            futures = {pool.submit(execute.execute, job): job for job in jobs}
            for done, future in enumerate(as_completed(futures), 1):
                job, run = futures[future], future.result()
                results[job.path.stem].append(run)
                line = f"[{done:3d}/{args.runs}] {job.path.stem:18} {run.status:6} {run.seconds:6.1f} s"
                print(f"{line} {run.kind} {run.reason}".rstrip(), flush=True)
                if run.kind == execute.TIMEOUT:
                    hangs += 1
                    print(
                        f"    cell {run.cell}, log {job.log}; stacks:\n{run.traceback}", flush=True
                    )
                elif run.status != execute.PASSED:
                    print(f"    {run.traceback}", flush=True)
        wall = time.perf_counter() - start
    print(f"\n{'notebook':18} {'runs':>5} {'passed':>7} {'median s':>9} {'max s':>7}  failures")
    for name, runs in sorted(results.items()):
        seconds = [r.seconds for r in runs]
        kinds = collections.Counter(r.kind for r in runs if r.status != execute.PASSED)
        print(
            f"{name:18} {len(runs):5d} {sum(r.status == execute.PASSED for r in runs):7d} "
            f"{statistics.median(seconds):9.1f} {max(seconds):7.1f}  {dict(kinds) or '-'}"
        )
    failed = sum(r.status != execute.PASSED for runs in results.values() for r in runs)
    forked = sum(r.kernel == "forked" for runs in results.values() for r in runs)
    print(
        f"{args.runs} runs in {wall:.0f} s ({forked} kernels forked from the zygote): "
        f"{hangs} hang(s), {failed} failure(s); "
        f"load average {os.getloadavg()[0]:.1f} at the end"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
