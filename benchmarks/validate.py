"""Measure `aifkit validate` against the plain baseline, in one run, on the same notebooks.

(a) baseline: the papermill CLI, one process per notebook, one after the other;
(b) `aifkit validate --jobs 2` (fork server with papermill loaded, 2 workers, longest first);
(c) `aifkit validate --jobs 2 --cached` with nothing changed.
Targets on 2 cores: (b) at least 1.8x faster than (a); (c) at most 5 s.

Usage: python benchmarks/validate.py [NOTEBOOK_OR_DIR ...]   (default: courses/)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TARGET_SPEEDUP = 1.8
TARGET_CACHED_S = 5.0


def timed(command: list[str], env: dict[str, str]) -> float:
    """Wall seconds of one command, which must succeed."""
    start = time.perf_counter()
    subprocess.run(
        command, check=True, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    return time.perf_counter() - start


def main(argv: list[str]) -> int:
    sys.path.insert(0, str(REPO / "src"))
    from aifkit.notebooks.reading import find_notebooks
    from aifkit.resources import jupyter_data_dir

    notebooks = find_notebooks([Path(a) for a in argv] or [REPO / "courses"])
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "JUPYTER_PATH": os.pathsep.join(
            p for p in (str(jupyter_data_dir()), os.environ.get("JUPYTER_PATH")) if p
        ),
    }
    with tempfile.TemporaryDirectory(prefix="aifkit-bench-") as scratch:
        work = Path(scratch)
        alone = [
            timed(
                [
                    str(BIN / "papermill"),
                    str(nb),
                    str(work / f"baseline-{i}.ipynb"),
                    "-p",
                    "TIER",
                    "cpu-tiny",
                    "--cwd",
                    str(nb.parent),
                    "--no-progress-bar",
                ],
                env,
            )
            for i, nb in enumerate(notebooks)
        ]
        baseline = sum(alone)
        validate = [
            str(BIN / "aifkit"),
            "validate",
            *map(str, notebooks),
            "--tier",
            "cpu-tiny",
            "--jobs",
            "2",
            "--report",
            str(work / "report"),
        ]
        env["AIFKIT_STATE"] = str(work / "state.json")
        parallel = timed(validate, env)
        in_parallel = {
            Path(o["notebook"]).name: o["seconds"]
            for o in json.loads((work / "report" / "report.json").read_text())["notebooks"]
        }
        cached = timed([*validate, "--cached"], env)
    print(f"{'notebook':34} {'papermill CLI alone':>20} {'in validate --jobs 2':>21}")
    for nb, seconds in zip(notebooks, alone, strict=True):
        print(f"{nb.name:34} {seconds:19.1f}s {in_parallel.get(nb.name, float('nan')):20.1f}s")
    speedup = baseline / parallel
    print(
        f"notebooks: {len(notebooks)} ({', '.join(nb.name for nb in notebooks)}), cores: {os.cpu_count()}"
    )
    print(f"(a) papermill CLI, sequential      {baseline:7.2f} s")
    print(
        f"(b) aifkit validate --jobs 2       {parallel:7.2f} s   speed-up (a)/(b) = {speedup:.2f}x "
        f"(target >= {TARGET_SPEEDUP}x: {'met' if speedup >= TARGET_SPEEDUP else 'NOT met'})"
    )
    print(
        f"(c) aifkit validate --cached       {cached:7.2f} s   "
        f"(target <= {TARGET_CACHED_S:.0f} s: {'met' if cached <= TARGET_CACHED_S else 'NOT met'})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
