"""The ``aifkit`` command: thin click commands forwarding to the keyword-only Python API.

Exit status of every command: 0 done, 1 done and found problems (failing notebooks, lint
findings, a catalog problem), 2 could not do it: an ``AifkitError`` (see errors.py) or a usage
error, both reported by click as ``Error: ...`` without a traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
import yaml

from aifkit import __version__
from aifkit.course import tiers

COURSES = Path("courses")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="aifkit")
def main() -> None:
    """aifkit: learn HPC and AI on the AI Factory, from a laptop to thousands of GPUs."""


@main.command()
def doctor() -> None:
    """Check this machine or allocation and say how to fix each problem."""
    from aifkit import doctor as doctor_mod

    sys.exit(doctor_mod.run())


@main.group()
def kernels() -> None:
    """Jupyter kernels learners' notebooks run on."""


@kernels.command("install")
@click.option("--user", is_flag=True, help="Install into the user's Jupyter data dir.")
@click.option("--sys-prefix", is_flag=True, help="Install into this Python environment.")
@click.option("--prefix", type=click.Path(file_okay=False), help="Install under this prefix.")
def kernels_install(user: bool, sys_prefix: bool, prefix: str | None) -> None:
    """Install the kernelspecs aifkit ships (e.g. 'Python 3 (AI Factory)')."""
    from aifkit import kernels as kernels_mod

    where = kernels_mod.install(user=user, sys_prefix=sys_prefix, prefix=prefix)
    click.echo(f"installed kernels into {where}")


@kernels.command("list")
def kernels_list() -> None:
    """List installed kernelspecs."""
    from aifkit import kernels as kernels_mod

    for name, where in sorted(kernels_mod.list_installed().items()):
        click.echo(f"{name:20} {where}")


@main.group()
def catalog() -> None:
    """The course catalog (courses/catalog.yml)."""


@catalog.command("check")
@click.argument("courses", type=click.Path(path_type=Path), default=COURSES)
def catalog_check(courses: Path) -> None:
    """Validate the catalog and its agreement with the assignment folders."""
    from aifkit import catalog as catalog_mod

    loaded = catalog_mod.load(courses)
    problems = catalog_mod.check_folders(loaded)
    for problem in problems:
        click.secho(problem, fg="red")
    count = sum(1 for _ in loaded.assignments())
    click.echo(
        f"{count} assignment(s) in {len(loaded.tracks)} track(s); {len(problems)} problem(s)"
    )
    sys.exit(1 if problems else 0)


@catalog.command("list")
@click.argument("courses", type=click.Path(path_type=Path), default=COURSES)
def catalog_list(courses: Path) -> None:
    """Show the curriculum in teaching order."""
    from aifkit import catalog as catalog_mod

    loaded = catalog_mod.load(courses)
    for track in loaded.tracks:
        click.secho(f"{track.id}  {track.title}", bold=True)
        for a in track.assignments:
            click.echo(f"   {a.id:28} {a.minutes:3d} min  {a.title}")


@main.group()
def nb() -> None:
    """Lint, strip and create course notebooks."""


@nb.command("lint")
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
def nb_lint(paths: tuple[Path, ...]) -> None:
    """Report every problem with file, cell, what is wrong and how to fix it."""
    from aifkit.notebooks import lint

    findings = lint.lint(paths or (COURSES,))
    for finding in findings:
        click.echo(str(finding))
    fixable = sum(f.fixable for f in findings)
    click.echo(f"{len(findings)} finding(s), {fixable} fixable by `aifkit nb strip`", err=True)
    sys.exit(1 if findings else 0)


@nb.command("strip")
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option("--check", is_flag=True, help="Only report; exit 1 if anything would change.")
def nb_strip(paths: tuple[Path, ...], check: bool) -> None:
    """Remove outputs, execution counts and metadata outside the allow-list."""
    from aifkit.notebooks import strip

    results = strip.strip(paths or (COURSES,), check=check)
    changed = [r for r in results if r.changes]
    for result in changed:
        click.echo(f"{result.path}: {'would change' if check else 'stripped'}")
        for change in result.changes:
            click.echo(f"  {change}")
    click.echo(
        f"{len(changed)} of {len(results)} notebook(s) {'need' if check else 'were'} stripped",
        err=True,
    )
    sys.exit(1 if check and changed else 0)


@nb.command("new")
@click.argument("assignment_id")
def nb_new(assignment_id: str) -> None:
    """Create courses/<ID>/<ID>.ipynb from the template."""
    from aifkit.notebooks.template import new_assignment

    path = new_assignment(assignment_id, courses=COURSES)
    click.echo(f"created {path}; now add {assignment_id!r} to courses/catalog.yml")


def _parse_parameters(values: tuple[str, ...]) -> dict[str, Any]:
    parameters: dict[str, Any] = {}
    for value in values:
        name, sep, raw = value.partition("=")
        if not sep or not name.isidentifier():
            raise click.BadParameter(f"{value!r}: expected NAME=VALUE", param_hint="-p")
        parameters[name] = yaml.safe_load(raw)
    return parameters


@main.command()
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--tier",
    default=tiers.AUTO,
    show_default=True,
    type=click.Choice([tiers.AUTO, *tiers.TIERS]),
    help="Tier to execute at.",
)
@click.option(
    "--jobs", "-j", default=1, show_default=True, type=click.IntRange(1), help="Parallel workers."
)
@click.option("--cached", is_flag=True, help="Skip notebooks unchanged since they last passed.")
@click.option(
    "--report",
    "report_dir",
    default=Path("build/validate"),
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Where reports and executed notebooks go.",
)
@click.option(
    "-p",
    "--parameter",
    "parameter",
    multiple=True,
    metavar="NAME=VALUE",
    help="Extra papermill parameter (YAML value); repeatable.",
)
@click.option(
    "--reset-timings", is_flag=True, help="Forget recorded durations (after a real speed-up)."
)
@click.option(
    "--state",
    "state_path",
    envvar="AIFKIT_STATE",
    default=Path(".aifkit/validate-state.json"),
    show_default=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Recorded durations and cache fingerprints [env: AIFKIT_STATE].",
)
def validate(
    paths: tuple[Path, ...],
    tier: str,
    jobs: int,
    cached: bool,
    report_dir: Path,
    parameter: tuple[str, ...],
    reset_timings: bool,
    state_path: Path,
) -> None:
    """Execute notebooks with papermill at a tier and report what failed and why."""
    from aifkit.notebooks import report
    from aifkit.notebooks.progress import Progress
    from aifkit.notebooks.validate import validate as run_validate

    parameters = _parse_parameters(parameter)
    with Progress() as progress:
        outcomes = run_validate(
            paths or (COURSES,),
            tier=tier,
            jobs=jobs,
            cached=cached,
            report_dir=report_dir,
            parameters=parameters,
            reset_timings=reset_timings,
            state_path=state_path,
            on_start=progress.start,
            on_result=progress.update,
        )
    written = report.write(outcomes, report_dir)
    click.echo(report.table(outcomes))
    click.echo(f"report: {written['table']}, {written['json']}, {written['junit']}")
    sys.exit(0 if outcomes and all(o.ok for o in outcomes) else 1)


@main.group()
def job() -> None:
    """SLURM job scripts from the site's templates: render, submit, status."""


def _job_options(func: Any) -> Any:
    options = [
        click.argument("command", nargs=-1, required=True),
        click.option(
            "--tier", default=tiers.CPU_TINY, show_default=True, type=click.Choice(tiers.TIERS)
        ),
        click.option(
            "--site",
            "site_name",
            default=None,
            help="Site profile name or .yml path [env: AIFKIT_SITE].",
        ),
        click.option("--partition", default=None, help="Partition (default: the site's default)."),
        click.option(
            "--nodes", type=click.IntRange(1), default=None, help="Nodes (multi-gpu default: 2)."
        ),
        click.option(
            "--time",
            "time_minutes",
            type=click.IntRange(1),
            default=30,
            show_default=True,
            help="Minutes.",
        ),
        click.option("--name", "job_name", default="aifkit", show_default=True),
        click.option("--log-dir", default="logs", show_default=True),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _spec(
    command: tuple[str, ...],
    tier: str,
    site_name: str | None,
    partition: str | None,
    nodes: int | None,
    time_minutes: int,
    job_name: str,
    log_dir: str,
) -> tuple[Any, Any]:
    from aifkit.course import jobs, site

    loaded = site.load(site_name)
    spec = jobs.spec_for_tier(
        command,
        tier=tier,
        site=loaded,
        nodes=nodes,
        partition=partition,
        time_minutes=time_minutes,
        job_name=job_name,
        log_dir=log_dir,
    )
    return spec, loaded


@job.command("render")
@_job_options
def job_render(**kwargs: Any) -> None:
    """Print the sbatch script that runs COMMAND with torchrun at a tier on the site."""
    from aifkit.course import jobs

    spec, loaded = _spec(**kwargs)
    click.echo(jobs.render(spec, loaded), nl=False)


@job.command("submit")
@_job_options
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
)
@click.option("--wait", is_flag=True, help="Wait for the job to end (sbatch --wait).")
def job_submit(workdir: Path, wait: bool, **kwargs: Any) -> None:
    """Render and submit; print the job id (and its final state with --wait)."""
    from aifkit.course import jobs

    spec, loaded = _spec(**kwargs)
    job_id = jobs.submit(spec, loaded, workdir=workdir, wait=wait)
    click.echo(job_id)
    if wait:
        state = jobs.status(job_id)
        click.echo(f"{state.state} exit={state.exit_code}")
        for node, ranks in jobs.node_ranks(job_id, spec, workdir=workdir).items():
            click.echo(f"{node}: ranks {','.join(map(str, ranks)) or '(no output)'}")
        sys.exit(0 if state.state == "COMPLETED" else 1)


@job.command("status")
@click.argument("job_id")
def job_status(job_id: str) -> None:
    """State, exit code and reason of a job."""
    from aifkit.course import jobs

    state = jobs.status(job_id)
    click.echo(f"{state.job_id} {state.state} exit={state.exit_code} reason={state.reason}")


def _register_groups() -> None:
    from aifkit.grading.commands import grade
    from aifkit.hub.commands import hub

    main.add_command(grade)
    main.add_command(hub)


_register_groups()
