"""``aifkit grade ...``: the instructor's commands, thin wrappers over ``aifkit.grading``.

Exit status: 0 when the step ran (whatever learners' submissions scored or how broken they
were: those are rows in the status table), 2 for an instructor-level error (no course, an
assignment not generated, a missing sandbox), 1 when the grader itself failed on a submission.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from aifkit.grading.limits import SETTINGS

F = TypeVar("F", bound=Callable[..., Any])


def _course(root: Path) -> Any:
    from aifkit.grading.course import Course

    return Course.load(root)


root_option = click.option(
    "--course",
    "root",
    default=Path("."),
    show_default=True,
    envvar="AIFKIT_COURSE_ROOT",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="Course root holding nbgrader_config.py [env: AIFKIT_COURSE_ROOT].",
)


def limit_options(command: F) -> F:
    """A flag per grading limit (``--cell-timeout`` ...); one not given keeps the course's value."""
    for setting in reversed(SETTINGS):
        command = click.option(
            setting.flag,
            setting.name,
            type=setting.kind,
            default=None,
            help=f"{setting.help} [default: the course's {setting.config_key}, "
            f"else {setting.default}]",
        )(command)
    return command


@click.group()
def grade() -> None:
    """Release, collect, autograde (sandboxed, in parallel or on SLURM), feedback, export."""


@grade.command()
@root_option
@click.argument("assignment")
@click.option("--no-exchange", is_flag=True, help="Only generate the release folder.")
def release(root: Path, assignment: str, no_exchange: bool) -> None:
    """Generate the learners' version of ASSIGNMENT and release it to the exchange."""
    from aifkit.grading import workflow

    workflow.release(_course(root), assignment, exchange=not no_exchange)
    click.echo(f"released {assignment}")


@grade.command()
@root_option
@click.argument("assignment")
def collect(root: Path, assignment: str) -> None:
    """Collect learners' submissions of ASSIGNMENT from the exchange."""
    from aifkit.grading import workflow

    course = _course(root)
    workflow.collect(course, assignment)
    students = course.submitted_students(assignment)
    click.echo(f"collected {assignment}: {len(students)} submission(s)")


@grade.command()
@root_option
@click.argument("assignment")
@click.option("--jobs", "-j", default=1, show_default=True, type=click.IntRange(1, 64))
@click.option("--student", "students", multiple=True, help="Only this student (repeatable).")
@click.option("--retry-failed", is_flag=True, help="Only submissions whose last try failed.")
@click.option(
    "--sandbox",
    type=click.Choice(["bubblewrap", "apptainer"]),
    default="bubblewrap",
    show_default=True,
)
@click.option("--no-sandbox", is_flag=True, help="Run learner code unconfined (trusted only).")
@limit_options
@click.option("--slurm", is_flag=True, help="Grade as a SLURM job array (see --chunk).")
@click.option("--chunk", default=5, show_default=True, help="Submissions per array task.")
@click.option(
    "--site",
    "site_name",
    default=None,
    help="Site profile name or .yml path the array must fit [env: AIFKIT_SITE].",
)
@click.option("--partition", default=None, help="Partition (default: the site's default).")
def autograde(
    root: Path,
    assignment: str,
    jobs: int,
    students: tuple[str, ...],
    retry_failed: bool,
    sandbox: str,
    no_sandbox: bool,
    slurm: bool,
    chunk: int,
    site_name: str | None,
    partition: str | None,
    **limit_flags: float | None,
) -> None:
    """Autograde every submission of ASSIGNMENT, each in its own sandbox."""
    from aifkit.course import site
    from aifkit.grading import array
    from aifkit.grading.autograde import AutogradeOptions, status_table
    from aifkit.grading.autograde import autograde as run_autograde
    from aifkit.grading.limits import unread_settings
    from aifkit.grading.progress import GradingProgress

    if no_sandbox:
        click.secho("WARNING: learner code runs WITHOUT a sandbox", fg="yellow", err=True)
    course = _course(root)
    for message in unread_settings(course.config):
        click.secho(f"warning: {message}", fg="yellow", err=True)
    options = AutogradeOptions(
        jobs=jobs,
        sandbox="none" if no_sandbox else sandbox,
        limits=course.limits(**limit_flags),
        students=list(students) or None,
        retry_failed=retry_failed,
    )
    with GradingProgress() as progress:
        if slurm:
            results = array.autograde_array(
                course,
                assignment,
                options,
                chunk=chunk,
                site=site.load(site_name),
                partition=partition,
                on_start=progress.start,
                on_result=progress.update,
            )
        else:
            results = run_autograde(
                course,
                assignment,
                options,
                on_start=progress.start,
                on_result=progress.update,
            )
    click.echo(status_table(results))
    sys.exit(1 if any(r.status == "error" for r in results) else 0)


@grade.command()
@root_option
@click.argument("assignment")
@click.option("--student", default=None, help="Only this student.")
@click.option("--no-exchange", is_flag=True, help="Write feedback files without releasing them.")
def feedback(root: Path, assignment: str, student: str | None, no_exchange: bool) -> None:
    """Feedback HTML per student: sanitized, hidden tests removed."""
    from aifkit.grading import workflow

    course = _course(root)
    paths = workflow.feedback(course, assignment, student=student, exchange=not no_exchange)
    click.echo(f"{len(paths)} feedback file(s) under {course.root / 'feedback'}")


@grade.command()
@root_option
@click.option("--assignment", "assignments", multiple=True, help="Only this assignment.")
@click.option("--output", "-o", default=Path("grades.csv"), type=click.Path(path_type=Path))
def export(root: Path, assignments: tuple[str, ...], output: Path) -> None:
    """CSV for an LMS import: one row per student, one column per graded part."""
    from aifkit.grading.export import export_csv

    course = _course(root)
    source = course.root / course.coursedir.source_directory
    written = export_csv(course.db_url, output, list(assignments) or None, source_dir=source)
    click.echo("wrote " + ", ".join(str(p) for p in written))


@grade.command()
@root_option
@click.argument("assignment")
@click.option("--output", "-o", default=None, type=click.Path(file_okay=False, path_type=Path))
def report(root: Path, assignment: str, output: Path | None) -> None:
    """Scores, the tests most learners fail, time per submission, deaths and timeouts."""
    from aifkit.grading.analytics import render_report, write_report

    course = _course(root)
    out = output or course.root / "grading-reports" / assignment
    written = write_report(course.root, assignment, out, db_url=course.db_url)
    click.echo(render_report(course.root, assignment, db_url=course.db_url))
    click.echo("wrote " + ", ".join(str(p) for p in written))


@grade.command()
@root_option
@click.argument("assignment")
@click.option("--output", "-o", default=None, type=click.Path(file_okay=False, path_type=Path))
@click.option("--top", default=20, show_default=True, type=click.IntRange(1), help="Pairs shown.")
def similarity(root: Path, assignment: str, output: Path | None, top: int) -> None:
    """Rank pairs of learners by how alike their code is (on this machine; nothing penalised)."""
    from aifkit.grading import similarity as compare

    course = _course(root)
    out = output or course.root / "grading-reports" / assignment
    out.mkdir(parents=True, exist_ok=True)
    report = compare.compare(course, assignment)
    click.echo(compare.render(report, top), nl=False)
    written = [
        compare.write_csv(report, out / "similarity.csv"),
        compare.write_html(report, out / "similarity.html", top),
    ]
    click.echo("wrote " + ", ".join(str(p) for p in written))


@grade.command()
@root_option
@click.argument("assignment")
@click.argument("when")
def due(root: Path, assignment: str, when: str) -> None:
    """Set ASSIGNMENT's due date, WHEN with its timezone ("2026-12-01 17:00 CET")."""
    from aifkit.grading import late

    course = _course(root)
    stored = late.set_due(course, assignment, when)
    rule = late.rule_for(course.late_rules(), assignment)
    click.echo(f"{assignment} is due {stored:%Y-%m-%d %H:%M} UTC; late rule: {rule.describe()}")


@grade.command()
@root_option
@click.argument("assignment")
@click.argument("student")
@click.option("--hours", type=click.FloatRange(0), required=True, help="0 removes it.")
def extend(root: Path, assignment: str, student: str, hours: float) -> None:
    """Give STUDENT more time for ASSIGNMENT (after collect; autograde again to apply it)."""
    from aifkit.grading import late

    course = _course(root)
    late.grant_extension(course, assignment, student, hours)
    click.echo(f"{student}: {hours:g} h extension for {assignment}")
