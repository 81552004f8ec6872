"""Measure `aifkit grade autograde` against plain nbgrader, in one run, on the same submissions.

The assignment is courses/c01-pytorch-basics (every notebook imports torch). Each way gets its
own throw-away course root and gradebook; both are generated (excluded from the timing) and
receive the same submissions: a mix of full solutions, blank releases and solutions with the
first answer left as released.
(a) baseline: `nbgrader autograde` once for all students, nbgrader's default configuration
    (its Execute preprocessor, one kernel at a time, no nbgrader_config.py in the root);
(b) `aifkit grade autograde --jobs J` (bubblewrap sandbox, fail-closed, J workers).
Target on 2 cores: (b) at least 1.8x faster than (a), with the same score for every student.

The timings assume an idle machine: the last line says how much CPU other processes took
during each way (and whether another aifkit grader ran), next to the CPU each way used itself.

Usage: python benchmarks/autograde.py [--students N] [--jobs J] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections import Counter
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ASSIGNMENT = "c01-pytorch-basics"
NOTEBOOK = f"{ASSIGNMENT}.ipynb"
COURSE_ID = "bench"
TARGET_SPEEDUP = 1.8
MARKERS = ("### BEGIN SOLUTION", "### END SOLUTION")
SANDBOX_UIDS = range(61000, 61064)  # aifkit.grading.sandbox: SANDBOX_UID_BASE + worker slot
TICK = os.sysconf("SC_CLK_TCK")


def processes() -> dict[int, tuple[int, int, float]]:
    """pid -> (parent pid, uid, CPU seconds so far) of every process on the machine."""
    found = {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
                uid = proc.stat().st_uid
            except (OSError, IndexError):
                continue
            parent, utime, stime = int(fields[1]), int(fields[11]), int(fields[12])
            found[int(proc.name)] = (parent, uid, (utime + stime) / TICK)
    return found


class Watch(threading.Thread):
    """CPU seconds used while a command ran: by its processes, and by everything else.

    Samples /proc twice a second (the last half second of a short process is missed). The
    timings assume an idle machine. Another aifkit grader is worse than load: its sandbox uids
    are ours too, and its clean-up kills every process of a uid, our kernels included.
    """

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.start_cpu: dict[int, float] = {}
        self.last_cpu: dict[int, float] = {}
        self.mine: set[int] = set()
        self.graders: set[int] = set()  # other graders' sandboxed processes
        self.done = threading.Event()
        self.sampled = False

    def sample(self) -> None:
        table, me = processes(), os.getpid()
        for pid, (_, uid, cpu) in table.items():
            parent, seen = pid, set()
            while parent not in (0, 1, me) and parent in table and parent not in seen:
                seen.add(parent)
                parent = table[parent][0]
            if pid == me:
                continue
            if parent == me or pid in self.mine:  # ours stay ours when orphaned at shutdown
                self.mine.add(pid)
            elif uid in SANDBOX_UIDS:
                self.graders.add(pid)
            self.start_cpu.setdefault(pid, cpu if not self.sampled else 0.0)  # new: all counts
            self.last_cpu[pid] = cpu
        self.sampled = True

    def run(self) -> None:
        while not self.done.wait(0.5):
            self.sample()

    def __enter__(self) -> Watch:
        self.sample()
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.done.set()
        self.join()
        self.sample()

    def cpu_s(self, mine: bool) -> float:
        return sum(
            cpu - self.start_cpu[pid]
            for pid, cpu in self.last_cpu.items()
            if (pid in self.mine) == mine
        )

    def others(self) -> str:
        text = f"{self.cpu_s(mine=False):.0f} CPU-s"
        if self.graders:
            text += f" (with {len(self.graders)} sandboxed processes of another grader)"
        return text


def db_url(root: Path) -> str:
    return f"sqlite:///{root / 'gradebook.db'}"


def run(command: list[str], root: Path, env: dict[str, str], log: str) -> tuple[float, int]:
    """Wall seconds and exit status of one command run in ``root``, its output in ``log``."""
    start = time.perf_counter()
    with open(root / log, "wb") as out:
        rc = subprocess.run(
            command, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT
        ).returncode
    return time.perf_counter() - start, rc


def checked(command: list[str], root: Path, env: dict[str, str], log: str) -> None:
    """Run a set-up step, which must succeed."""
    _, rc = run(command, root, env, log)
    if rc != 0:
        sys.exit(f"{' '.join(command[:3])} failed ({rc}):\n{(root / log).read_text()[-3000:]}")


def nbgrader_options(root: Path) -> list[str]:
    """The course, on nbgrader's command line: the baseline root has no nbgrader_config.py."""
    return [
        f"--CourseDirectory.root={root}",
        f"--CourseDirectory.course_id={COURSE_ID}",
        f"--CourseDirectory.db_url={db_url(root)}",
    ]


def make_roots(work: Path, env: dict[str, str]) -> tuple[Path, Path]:
    """Two course roots with the assignment generated: the baseline's and ours."""
    baseline, ours = work / "baseline", work / "ours"
    for root in (baseline, ours):
        shutil.copytree(REPO / "courses" / ASSIGNMENT, root / "source" / ASSIGNMENT)
    # ours: only the course id and gradebook; Course.load adds aifkit's guarantees itself
    (ours / "nbgrader_config.py").write_text(
        "c = get_config()  # noqa: F821\n"
        f"c.CourseDirectory.course_id = {COURSE_ID!r}\n"
        f"c.CourseDirectory.db_url = {db_url(ours)!r}\n",
        encoding="utf-8",
    )
    generate = [str(BIN / "nbgrader"), "generate_assignment", ASSIGNMENT, "--force"]
    checked([*generate, *nbgrader_options(baseline)], baseline, env, "generate.log")
    release = [str(BIN / "aifkit"), "grade", "release", ASSIGNMENT, "--no-exchange"]
    checked([*release, "--course", str(ours)], ours, env, "generate.log")
    return baseline, ours


def solution_code(source: str) -> str:
    """An instructor's answer cell as a learner would write it: the markers removed."""
    return "\n".join(line for line in source.splitlines() if line.strip() not in MARKERS)


def submissions(root: Path, count: int) -> dict[str, tuple[str, nbformat.NotebookNode]]:
    """``count`` students -> (kind, notebook): 40 % full, 30 % blank, 30 % first answer blank."""
    source = nbformat.read(str(root / "source" / ASSIGNMENT / NOTEBOOK), as_version=4)
    release = nbformat.read(str(root / "release" / ASSIGNMENT / NOTEBOOK), as_version=4)
    answers = {
        cell.metadata["nbgrader"]["grade_id"]: solution_code(cell.source)
        for cell in source.cells
        if cell.metadata.get("nbgrader", {}).get("solution")
    }
    full = nbformat.from_dict(release)
    for cell in full.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if cell.metadata.get("nbgrader", {}).get("solution") and grade_id in answers:
            cell.source = answers[grade_id]
    partial = nbformat.from_dict(full)
    first = next(
        i for i, c in enumerate(release.cells) if c.metadata.get("nbgrader", {}).get("solution")
    )
    partial.cells[first].source = release.cells[first].source
    n_full, n_blank = round(0.4 * count), round(0.3 * count)
    kinds = ["full"] * n_full + ["blank"] * n_blank + ["partial"] * (count - n_full - n_blank)
    random.Random(0).shuffle(kinds)  # a fixed mix, in no particular order
    notebooks = {"full": full, "blank": release, "partial": partial}
    return {f"student{i + 1:02d}": (kind, notebooks[kind]) for i, kind in enumerate(kinds)}


def submit(root: Path, students: dict[str, tuple[str, nbformat.NotebookNode]]) -> None:
    """Place the submissions as nbgrader's collect would."""
    for student, (_, nb) in students.items():
        folder = root / "submitted" / student / ASSIGNMENT
        folder.mkdir(parents=True)
        (folder / "timestamp.txt").write_text("2026-11-27 10:00:00.000000 UTC", encoding="utf-8")
        nbformat.write(nb, str(folder / NOTEBOOK))


def scores(root: Path) -> dict[str, float]:
    """Autograded total per student whose submission was graded (gradebook + autograded file)."""
    from nbgrader.api import Gradebook, MissingEntry
    from sqlalchemy.exc import SAWarning

    warnings.filterwarnings("ignore", message=".*not in session.*", category=SAWarning)
    graded: dict[str, float] = {}
    with Gradebook(db_url(root), COURSE_ID) as gb:
        try:
            record = gb.find_assignment(ASSIGNMENT)
        except MissingEntry:
            return graded
        for submission in record.submissions:
            student = submission.student.id
            if (root / "autograded" / student / ASSIGNMENT / NOTEBOOK).is_file():
                graded[student] = float(
                    sum(g.auto_score or 0 for n in submission.notebooks for g in n.grades)
                )
    return graded


def max_score(root: Path) -> float:
    from nbgrader.api import Gradebook

    with Gradebook(db_url(root), COURSE_ID) as gb:
        return float(gb.find_assignment(ASSIGNMENT).max_score)


def expected(kind: str, score: float | None, top: float) -> bool:
    if score is None:
        return False
    return {"full": score == top, "blank": score == 0, "partial": 0 < score < top}[kind]


def tail(path: Path, lines: int = 15) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=20, help="submissions (default 20)")
    parser.add_argument("--jobs", type=int, default=2, help="aifkit workers (default 2)")
    parser.add_argument("--keep", type=Path, help="keep the two course roots in this folder")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(REPO / "src"))
    from aifkit.grading import records
    from aifkit.launcher import affinity_count, choose_threads

    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    baseline_threads = choose_threads(env, affinity=affinity_count())
    ours_threads = max(1, (os.cpu_count() or 1) // args.jobs)  # what aifkit's workers set

    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix="aifkit-bench-autograde-", dir=args.keep))
    else:
        work = Path(tempfile.mkdtemp(prefix="aifkit-bench-autograde-"))
    try:
        baseline, ours = make_roots(work, env)
        students = submissions(ours, args.students)
        submit(baseline, students)
        submit(ours, students)

        stock = [str(BIN / "nbgrader"), "autograde", ASSIGNMENT, "--force"]
        stock += [*nbgrader_options(baseline), "--Execute.timeout=300"]
        with Watch() as watch_a:
            seconds_a, rc_a = run(stock, baseline, env, "autograde.log")
        aifkit = [str(BIN / "aifkit"), "grade", "autograde", ASSIGNMENT]
        aifkit += ["--jobs", str(args.jobs), "--course", str(ours)]
        with Watch() as watch_b:
            seconds_b, rc_b = run(aifkit, ours, env, "autograde.log")

        scores_a, scores_b = scores(baseline), scores(ours)
        statuses = Counter(r.status for r in records.load_all(ours, ASSIGNMENT))
        top = max_score(ours)
        if rc_a != 0:
            print(f"(a) nbgrader autograde exited {rc_a}:\n{tail(baseline / 'autograde.log')}")
        if rc_b != 0:
            print(f"(b) aifkit grade autograde exited {rc_b}:\n{tail(ours / 'autograde.log')}")
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)

    def shown(score: float | None) -> str:
        return "not graded" if score is None else f"{score:g}/{top:g}"

    problems: list[str] = []
    print(f"{'student':10} {'submission':10} {'(a) nbgrader':>13} {'(b) aifkit':>13}")
    for student, (kind, _) in students.items():
        a, b = scores_a.get(student), scores_b.get(student)
        print(f"{student:10} {kind:10} {shown(a):>13} {shown(b):>13}")
        if a != b:
            problems.append(f"{student} ({kind}): (a) {shown(a)} but (b) {shown(b)}")
        wrong = [way for way, score in (("(a)", a), ("(b)", b)) if not expected(kind, score, top)]
        if wrong:
            problems.append(
                f"{student} ({kind}): not the expected score from {' and '.join(wrong)}"
            )

    n = len(students)
    kinds = [kind for kind, _ in students.values()]
    speedup = seconds_a / seconds_b
    print(
        f"assignment: {ASSIGNMENT}, submissions: {n} ({kinds.count('full')} full, "
        f"{kinds.count('blank')} blank, {kinds.count('partial')} one answer blank), "
        f"cores: {os.cpu_count()}"
    )
    ways = [
        (
            "(a) nbgrader autograde, sequential",
            seconds_a,
            watch_a,
            len(scores_a),
            f"{baseline_threads.count} ({baseline_threads.source}, the plain kernelspec)",
        ),
        (
            f"(b) aifkit grade autograde --jobs {args.jobs}",
            seconds_b,
            watch_b,
            len(scores_b),
            f"{ours_threads} (AIFKIT_THREADS = cores / jobs)",
        ),
    ]
    print(
        f"{'way':36} {'wall':>8} {'per submission':>15} {'CPU used':>9} {'graded':>7}  "
        "threads per kernel"
    )
    for label, seconds, watch, graded, threads in ways:
        print(
            f"{label:36} {seconds:7.1f}s {seconds / n:14.2f}s {watch.cpu_s(mine=True):8.0f}s "
            f"{graded:4d}/{n:<2d}  {threads}"
        )
    print(f"(b) statuses: {', '.join(f'{c} {s}' for s, c in sorted(statuses.items()))}")
    print(
        f"speed-up (a)/(b) = {speedup:.2f}x (target >= {TARGET_SPEEDUP}x on 2 cores: "
        f"{'met' if speedup >= TARGET_SPEEDUP else 'NOT met'})"
    )
    print(
        f"idle machine? other processes used {watch_a.others()} during (a), "
        f"{watch_b.others()} during (b)"
    )
    if problems:
        print("scores: DISAGREE or unexpected:")
        for line in problems:
            print(f"  {line}")
    else:
        print("scores: identical for every student (full = max, blank = 0, partial in between)")
    if args.keep is not None:
        print(f"course roots kept in {work}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
