"""The instructor's report on one assignment, from the grader's records and the gradebook.

Everything comes from the JSON records under ``grading-results/<assignment>/``; a gradebook
URL, when given, adds the students who have no record and any autograde score the gradebook
holds differently from the record (the gradebook is writable by code nbgrader runs).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple, get_args

from sqlalchemy import select

from aifkit.grading.export import number, read_gradebook
from aifkit.grading.records import SubmissionResult, SubmissionStatus, load_all

TOP = 10
UNFINISHED = ("timeout", "kernel-died", "error")


class FailureRate(NamedTuple):
    notebook: str
    grade_id: str
    failed: int
    total: int
    rate: float


class TimeStats(NamedTuple):
    submissions: int
    mean: float
    p50: float
    p95: float
    max: float


def per_test_failure_rates(results: Iterable[SubmissionResult]) -> list[FailureRate]:
    """Per test, how many submissions scored below its maximum; not-run and flagged always count.

    The denominator is the submissions whose record lists that test. Highest rate first.
    """
    counts: dict[tuple[str, str], list[int]] = {}
    for result in results:
        for test in result.tests:
            tally = counts.setdefault((test.notebook, test.grade_id), [0, 0])
            tally[0] += test.score < test.max_score or test.status in ("not-run", "flagged")
            tally[1] += 1
    rates = [FailureRate(nb, gid, f, n, f / n) for (nb, gid), (f, n) in counts.items()]
    return sorted(rates, key=lambda r: (-r.rate, -r.failed, r.notebook, r.grade_id))


def status_counts(results: Iterable[SubmissionResult]) -> dict[str, int]:
    """Submissions per status, every status present (zero included), in a fixed order."""
    counts = dict.fromkeys(get_args(SubmissionStatus), 0)
    for result in results:
        counts[result.status] = counts.get(result.status, 0) + 1
    return counts


def _percentile(ordered: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def time_stats(results: Iterable[SubmissionResult]) -> TimeStats:
    """Seconds per submission: how many, mean, median, 95th percentile and maximum."""
    seconds = sorted(r.seconds for r in results)
    if not seconds:
        return TimeStats(0, 0.0, 0.0, 0.0, 0.0)
    mean = sum(seconds) / len(seconds)
    return TimeStats(
        len(seconds), mean, _percentile(seconds, 0.5), _percentile(seconds, 0.95), seconds[-1]
    )


def score_distribution_plot(results: Sequence[SubmissionResult], path: Path) -> Path:
    """Histogram of score / max score, saved as a PNG (Agg canvas: no display, no pyplot)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    scored = [r for r in results if r.max_score > 0]
    maxima = sorted({number(r.max_score) for r in scored}, key=float)
    label = maxima[0] if len(maxima) == 1 else f"{maxima[0]} to {maxima[-1]}" if maxima else "-"
    figure = Figure(figsize=(6, 3.5), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.hist([r.score / r.max_score for r in scored], bins=10, range=(0.0, 1.0))
    axes.set_xlim(0.0, 1.0)
    axes.set_xlabel(f"score / max score (max score = {label})")
    axes.set_ylabel("submissions")
    name = results[0].assignment if results else ""
    axes.set_title(f"{name}: {len(scored)} scored of {len(results)} submissions")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")
    return path


def gradebook_checks(
    db_url: str, assignment: str, results: Sequence[SubmissionResult]
) -> dict[str, Any]:
    """Students in the gradebook without a record, and autograde scores that disagree."""
    from nbgrader.api import Assignment, Grade, Student, SubmittedAssignment, SubmittedNotebook

    recorded = {r.student for r in results}
    query = (
        select(Grade)
        .join(SubmittedNotebook, Grade.notebook_id == SubmittedNotebook.id)
        .join(SubmittedAssignment, SubmittedNotebook.assignment_id == SubmittedAssignment.id)
        .join(Assignment, SubmittedAssignment.assignment_id == Assignment.id)
        .where(Assignment.name == assignment)
    )
    with read_gradebook(db_url) as db:
        absent = sorted(s.id for s in db.scalars(select(Student)) if s.id not in recorded)
        stored: dict[tuple[str, str, str], float | None] = {
            (g.notebook.assignment.student_id, g.notebook.name, g.name): g.auto_score
            for g in db.scalars(query)
        }
    disagree = []
    for result in results:
        for test in result.tests:
            notebook = test.notebook.removesuffix(".ipynb")
            key = (result.student, notebook, test.grade_id)
            if key not in stored:
                continue
            held = stored[key]
            if held is None or abs(held - test.score) > 1e-9:
                disagree.append(
                    {"student": result.student, "notebook": notebook, "grade_id": test.grade_id}
                    | {"record": test.score, "gradebook": held}
                )
    return {"no_record": absent, "score_mismatch": disagree}


def report_data(
    root: Path, assignment: str, db_url: str | None = None, top: int = TOP
) -> dict[str, Any]:
    """Everything the report shows, as JSON-ready data."""
    results = load_all(root, assignment)
    scored = [r for r in results if r.max_score > 0]
    fractions = sorted(r.score / r.max_score for r in scored)
    slowest = sorted(results, key=lambda r: -r.seconds)[:top]
    data: dict[str, Any] = {
        "assignment": assignment,
        "submissions": len(results),
        "status": status_counts(results),
        "seconds": time_stats(results)._asdict(),
        "score_fraction": {
            "mean": sum(fractions) / len(fractions) if fractions else None,
            "p50": _percentile(fractions, 0.5) if fractions else None,
        },
        "failure_rates": [r._asdict() for r in per_test_failure_rates(results)],
        "slowest": [
            {"student": r.student, "seconds": r.seconds, "status": r.status} for r in slowest
        ],
        "unfinished": [
            {"student": r.student, "status": r.status, "message": r.message}
            for r in results
            if r.status in UNFINISHED
        ],
        "flagged": [
            {"student": r.student, "constructs": sorted({f.pattern for f in r.findings})}
            for r in results
            if r.status == "flagged" or r.findings
        ],
    }
    if db_url is not None:
        data["gradebook"] = gradebook_checks(db_url, assignment, results)
    return data


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def _first_line(text: str, limit: int = 100) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _text(data: dict[str, Any], top: int) -> str:
    t = data["seconds"]
    lines = [
        f"Assignment {data['assignment']}: {data['submissions']} submissions",
        "Status: " + ", ".join(f"{k} {v}" for k, v in data["status"].items()),
        f"Seconds per submission: mean {t['mean']:.1f}, p50 {t['p50']:.1f}, "
        f"p95 {t['p95']:.1f}, max {t['max']:.1f}",
    ]
    score = data["score_fraction"]
    if score["mean"] is not None:
        lines.append(f"Score / max: mean {score['mean']:.0%}, median {score['p50']:.0%}")
    failing = [r for r in data["failure_rates"] if r["failed"]][:top]
    lines += ["", "Most failed tests:"]
    rows = [["notebook", "test", "failed", "rate"]]
    rows += [
        [r["notebook"], r["grade_id"], f"{r['failed']}/{r['total']}", f"{r['rate']:.0%}"]
        for r in failing
    ]
    lines += _table(rows) if failing else ["  none"]
    lines += ["", "Slowest submissions:"]
    rows = [[r["student"], f"{r['seconds']:.1f} s", r["status"]] for r in data["slowest"]]
    lines += _table(rows) if rows else ["  none"]
    lines += ["", "Timeouts, kernel deaths and errors:"]
    rows = [[r["student"], r["status"], _first_line(r["message"])] for r in data["unfinished"]]
    lines += _table(rows) if rows else ["  none"]
    lines += ["", "Flagged for review:"]
    rows = [[r["student"], ", ".join(r["constructs"]) or "-"] for r in data["flagged"]]
    lines += _table(rows) if rows else ["  none"]
    if "gradebook" in data:
        book = data["gradebook"]
        lines += [
            "",
            f"In the gradebook without a record: {', '.join(book['no_record']) or 'none'}",
        ]
        lines += ["Gradebook autograde scores that differ from the records:"]
        rows = [
            [
                m["student"],
                f"{m['notebook']}/{m['grade_id']}",
                f"record {number(m['record'])}",
                f"gradebook {number(m['gradebook']) or 'empty'}",
            ]
            for m in book["score_mismatch"]
        ]
        lines += _table(rows) if rows else ["  none"]
    return "\n".join(lines) + "\n"


def render_report(root: Path, assignment: str, db_url: str | None = None, top: int = TOP) -> str:
    """The plain-text report of one assignment."""
    return _text(report_data(root, assignment, db_url, top), top)


def write_report(
    root: Path, assignment: str, out_dir: Path, db_url: str | None = None
) -> list[Path]:
    """Write report.txt, report.json and scores.png into ``out_dir``; return their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    data = report_data(root, assignment, db_url)
    text, raw = out_dir / "report.txt", out_dir / "report.json"
    text.write_text(_text(data, TOP), encoding="utf-8")
    raw.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    png = score_distribution_plot(load_all(root, assignment), out_dir / "scores.png")
    return [text, raw, png]
