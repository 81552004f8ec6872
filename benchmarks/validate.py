"""Measure `aifkit validate` against what a maintainer would otherwise run, in one run, on the
same notebooks, on the same machine.

(a) baseline: the papermill CLI, one process per notebook, one after the other;
(n) baseline: `pytest --nbmake -n 2` (nbmake 1.5.5 on pytest-xdist, TIER "auto" = cpu-tiny);
(b) `aifkit validate --jobs 2` (fork server with papermill loaded, kernels forked from a warm
    zygote, 2 workers, longest first, empty cache);
(c) `aifkit validate --jobs 2 --cached` with nothing changed.
(n) and (b) alternate for ``--rounds`` rounds (the order flips each round), so that a change in
the machine's load falls on both; ratios use the sums over the rounds.
Targets on 2 cores: (b) at least 1.3x faster than (n) and 1.8x faster than (a); (c) at most 5 s.

Usage: python benchmarks/validate.py [--rounds N] [--no-papermill] [--cold] [NOTEBOOK_OR_DIR ...]
(default: courses/). ``--cold`` adds (k): the same validation with every kernel started, not
forked (``validate(warm=False)``), to show what the zygote is worth.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TARGET_VS_NBMAKE = 1.3
TARGET_VS_PAPERMILL = 1.8
TARGET_CACHED_S = 5.0


def timed(command: list[str], env: dict[str, str]) -> float:
    """Wall seconds of one command, which must succeed."""
    start = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"failed ({done.returncode}): {' '.join(command)}\n{done.stdout[-3000:]}")
    return time.perf_counter() - start


def verdict(ratio: float, target: float) -> str:
    return f"(target >= {target}x: {'met' if ratio >= target else 'NOT met'})"


def main(argv: list[str]) -> int:
    sys.path.insert(0, str(REPO / "src"))
    from aifkit.notebooks.reading import find_notebooks
    from aifkit.resources import jupyter_data_dir

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", type=Path)
    parser.add_argument("--rounds", type=int, default=1, help="nbmake/validate pairs (default 1)")
    parser.add_argument("--no-papermill", action="store_true", help="skip baseline (a)")
    parser.add_argument("--cold", action="store_true", help="add (k): validate, kernels started")
    args = parser.parse_args(argv)
    notebooks = find_notebooks(args.paths or [REPO / "courses"])
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "JUPYTER_PATH": os.pathsep.join(
            p for p in (str(jupyter_data_dir()), os.environ.get("JUPYTER_PATH")) if p
        ),
    }
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="aifkit-bench-") as scratch:
        work = Path(scratch)
        (work / "pytest.ini").write_text("[pytest]\n")  # not the project's test settings
        nbmake = [
            *(str(BIN / "python"), "-m", "pytest", "--nbmake", "-n", "2", "-q"),
            *("-p", "no:cacheprovider", "-c", str(work / "pytest.ini")),
            *("--nbmake-timeout", "600", *map(str, notebooks)),
        ]

        def validate(round_: int, *extra: str) -> list[str]:
            report = work / f"report-{round_}"
            return [
                str(BIN / "aifkit"),
                "validate",
                *map(str, notebooks),
                *("--tier", "cpu-tiny", "--jobs", "2", "--report", str(report), *extra),
            ]

        times: dict[str, list[float]] = {"nbmake": [], "validate": []}
        for round_ in range(args.rounds):
            env["AIFKIT_STATE"] = str(work / f"state-{round_}.json")  # an empty cache each round
            order = ["nbmake", "validate"] if round_ % 2 == 0 else ["validate", "nbmake"]
            for name in order:
                command = nbmake if name == "nbmake" else validate(round_)
                times[name].append(timed(command, env))
                print(f"round {round_ + 1}: {name:9} {times[name][-1]:7.2f} s", flush=True)
        cached = timed([*validate(args.rounds - 1), "--cached"], env)
        cold = None
        if args.cold:
            code = (
                "import sys; from pathlib import Path; "
                "from aifkit.notebooks.validate import validate; "
                "o = validate([Path(p) for p in sys.argv[1:]], tier='cpu-tiny', jobs=2, "
                f"report_dir=Path({str(work / 'report-cold')!r}), "
                f"state_path=Path({str(work / 'state-cold.json')!r}), warm=False); "
                "sys.exit(any(not x.ok for x in o))"
            )
            cold = timed([str(BIN / "python"), "-c", code, *map(str, notebooks)], env)
        in_parallel = {
            Path(o["notebook"]).name: o["seconds"]
            for o in json.loads((work / "report-0" / "report.json").read_text())["notebooks"]
        }
        alone: list[float] = []
        if not args.no_papermill:
            for i, nb in enumerate(notebooks):
                papermill = [str(BIN / "papermill"), str(nb), str(work / f"baseline-{i}.ipynb")]
                papermill += ["-p", "TIER", "cpu-tiny", "--cwd", str(nb.parent)]
                alone.append(timed([*papermill, "--no-progress-bar"], env))
    if alone:
        print(f"\n{'notebook':34} {'papermill CLI alone':>20} {'in validate --jobs 2':>21}")
        for nb, seconds in zip(notebooks, alone, strict=True):
            print(f"{nb.name:34} {seconds:19.1f}s {in_parallel.get(nb.name, float('nan')):20.1f}s")
    ours, theirs = sum(times["validate"]), sum(times["nbmake"])
    print(
        f"\nnotebooks: {len(notebooks)}, cores: {os.cpu_count()}, rounds: {args.rounds}, "
        f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after"
    )
    if alone:
        baseline = sum(alone)
        print(f"(a) papermill CLI, sequential      {baseline:7.2f} s")
    print(f"(n) pytest --nbmake -n 2           {theirs / args.rounds:7.2f} s (mean of rounds)")
    print(f"(b) aifkit validate --jobs 2       {ours / args.rounds:7.2f} s (mean of rounds)")
    print(f"    speed-up (n)/(b) = {theirs / ours:.2f}x {verdict(theirs / ours, TARGET_VS_NBMAKE)}")
    if alone:
        ratio = baseline / (ours / args.rounds)
        print(f"    speed-up (a)/(b) = {ratio:.2f}x {verdict(ratio, TARGET_VS_PAPERMILL)}")
    if cold is not None:
        print(f"(k) validate, kernels started      {cold:7.2f} s   (b) forks them from a zygote")
    print(
        f"(c) aifkit validate --cached       {cached:7.2f} s   "
        f"(target <= {TARGET_CACHED_S:.0f} s: {'met' if cached <= TARGET_CACHED_S else 'NOT met'})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
