"""``aifkit validate``: execute notebooks in parallel at a tier and say clearly what failed.

The pipeline, in order: find notebooks -> plan each job (tier, timeout, fingerprint) -> skip
unchanged ones with ``cached`` -> start the run's kernel zygote with the heavy modules the
notebooks import -> run longest first on N workers (fresh kernel each, forked from the zygote
when it can be, one retry only when the kernel fails to start) -> reject suspicious passes ->
remember durations and fingerprints -> report. One notebook's failure never stops the others.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from aifkit import catalog as catalog_mod
from aifkit import resources
from aifkit.course import tiers
from aifkit.errors import CatalogError, NotebookError
from aifkit.notebooks import execute, reading
from aifkit.notebooks.figures import figures_of
from aifkit.notebooks.fingerprint import fingerprint
from aifkit.notebooks.state import State
from aifkit.notebooks.warm import zygote_for

CACHED = "cached"
SUSPICIOUS = "suspicious"
SUSPICIOUS_FRACTION = 0.2  # a pass in under 20% of the fastest recent pass is not believed
DEFAULT_STATE = Path(".aifkit") / "validate-state.json"
TIMEOUT_FACTOR = 2.0  # hard limit = this many times the catalog budget


@dataclass
class Outcome:
    """The verdict on one notebook, as the report shows it."""

    notebook: str
    tier: str
    status: str
    seconds: float = 0.0
    timeout_s: float = 0.0
    kind: str = ""
    reason: str = ""
    cell: int | None = None
    cell_source: str = ""
    traceback: str = ""
    attempts: int = 0
    output: str = ""
    figures: dict[str, str] = field(default_factory=dict)
    kernel: str = ""  # "forked" from the run's zygote or "started"; "" when none ran

    @property
    def ok(self) -> bool:
        return self.status in {execute.PASSED, CACHED}


@dataclass
class Plan:
    """One notebook ready to run: its job, its fingerprint and its expected duration."""

    path: Path
    job: execute.Job
    fingerprint: str
    estimate: float
    min_seconds: float | None
    display: str


@dataclass
class Options:
    """Everything a validation run is asked to do (the keyword arguments of ``validate``)."""

    tier: str = tiers.AUTO
    jobs: int = 1
    cached: bool = False
    report_dir: Path = Path("build") / "validate"
    parameters: Mapping[str, Any] = field(default_factory=dict)
    state_path: Path = DEFAULT_STATE
    reset_timings: bool = False
    warm: bool = True


def display_name(path: Path) -> str:
    """A short, stable name: relative to the working directory when inside it."""
    resolved = path.resolve()
    try:
        return str(resolved.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(resolved).lstrip(os.sep)


def kernel_environment(jobs: int, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment kernels start with: N parallel notebooks share the cores, so each kernel
    gets its share of threads (AIFKIT_THREADS, read by the aifkit kernel's launcher) unless the
    caller already chose; oversubscribed torch threads slow small models down many times over."""
    environment = dict(os.environ if env is None else env)
    if jobs > 1 and "AIFKIT_THREADS" not in environment:
        cpus = (
            len(os.sched_getaffinity(0))
            if hasattr(os, "sched_getaffinity")
            else os.cpu_count() or 1
        )
        environment["AIFKIT_THREADS"] = str(max(1, cpus // jobs))
    return environment


def _catalog_budget(path: Path, tier: str) -> float | None:
    """The catalog budget when ``path`` is an assignment notebook of a catalog."""
    catalog_file = path.resolve().parent.parent / catalog_mod.CATALOG_NAME
    if not catalog_file.is_file():
        return None
    try:
        assignment = _load_catalog(catalog_file, catalog_file.stat().st_mtime_ns).for_notebook(path)
    except CatalogError:
        return None
    return assignment.budget(tier) if assignment else None


@lru_cache(maxsize=8)
def _load_catalog(catalog_file: Path, mtime_ns: int) -> catalog_mod.Catalog:
    """The catalog, read once per run rather than once per notebook (an edit changes mtime_ns)."""
    return catalog_mod.load(catalog_file)


def timeout_for(path: Path, nb: Any, tier: str) -> float:
    """Notebook metadata, else twice the catalog budget, else the tier's default.

    The budget is what a notebook is designed to take; the hard limit leaves headroom so that a
    loaded machine (or a rare stall in a library) does not fail a notebook that fits its budget.
    The measured seconds in the report are what to compare with the budget.
    """
    declared = nb.metadata.get("aifkit", {}).get("timeout", {})
    if isinstance(declared, dict) and isinstance(declared.get(tier), int | float):
        return float(declared[tier])
    budget = _catalog_budget(path, tier)
    return (
        TIMEOUT_FACTOR * budget
        if budget is not None
        else float(catalog_mod.DEFAULT_TIMEOUT_S[tier])
    )


def _plan(path: Path, options: Options, tier: str, state: State) -> Plan | Outcome:
    display = display_name(path)
    try:
        nb = reading.read(path)
        digest = fingerprint(
            path,
            nb=nb,
            tier=tier,
            parameters=options.parameters,
            exclude=(options.report_dir, options.state_path),
        )
    except NotebookError as error:
        return Outcome(display, tier, execute.FAILED, kind=execute.INVALID, reason=str(error))
    timeout = timeout_for(path, nb, tier)
    output = options.report_dir / "executed" / display
    job = execute.Job(
        path=path,
        output=output,
        tier=tier,
        timeout_s=timeout,
        parameters=dict(options.parameters),
        jupyter_path=str(resources.jupyter_data_dir()),  # the kernelspecs of this aifkit
        environment=kernel_environment(options.jobs),
    )
    record = state.get(path, tier)
    declared_min = nb.metadata.get("aifkit", {}).get("min_seconds")
    return Plan(
        path=path,
        job=job,
        fingerprint=digest,
        estimate=record.estimate or timeout / 4,
        min_seconds=declared_min if isinstance(declared_min, int | float) else None,
        display=display,
    )


def _cell_source(path: Path, cell: int | None) -> str:
    if cell is None:
        return ""
    try:
        lines = reading.source_of(reading.read(path).cells[cell]).strip().splitlines()
    except (NotebookError, IndexError):
        return ""
    return lines[0][:120] if lines else ""


def _suspicion(run: execute.Execution, plan: Plan, recorded_min: float | None) -> str:
    """Why a passing run is not believed, or '' when it is."""
    if run.executed_cells == 0:
        return "executed no code cells"
    if plan.min_seconds is not None and run.seconds < plan.min_seconds:
        return f"ran in {run.seconds:.2f} s, under its declared minimum of {plan.min_seconds:.2f} s"
    if recorded_min is not None and run.seconds < SUSPICIOUS_FRACTION * recorded_min:
        return (
            f"ran in {run.seconds:.2f} s, far less than its recorded minimum of "
            f"{recorded_min:.2f} s: did its cells run? (if it really got faster, rerun with "
            "--reset-timings)"
        )
    return ""


def _run(plan: Plan, recorded_min: float | None) -> Outcome:
    """Execute with one retry when (and only when) the kernel failed to start."""
    attempts = 0
    while True:
        attempts += 1
        run = execute.execute(plan.job)
        if run.kind != execute.KERNEL_START or attempts >= 2:
            break
    status, kind, reason = run.status, run.kind, run.reason
    if status == execute.PASSED:
        suspicion = _suspicion(run, plan, recorded_min)
        if suspicion:
            status, kind, reason = execute.FAILED, SUSPICIOUS, suspicion
    return Outcome(
        notebook=plan.display,
        tier=plan.job.tier,
        status=status,
        seconds=round(run.seconds, 2),
        timeout_s=plan.job.timeout_s,
        kind=kind,
        reason=reason,
        cell=run.cell,
        cell_source=_cell_source(plan.path, run.cell),
        traceback=run.traceback,
        attempts=attempts,
        output=str(plan.job.output),
        figures=figures_of(plan.job.output),
        kernel=run.kernel,
    )


def validate(
    paths: Iterable[Path],
    *,
    tier: str = tiers.AUTO,
    jobs: int = 1,
    cached: bool = False,
    report_dir: Path = Path("build") / "validate",
    parameters: Mapping[str, Any] | None = None,
    state_path: Path = DEFAULT_STATE,
    reset_timings: bool = False,
    warm: bool = True,
    on_start: Callable[[int], None] | None = None,
    on_result: Callable[[Outcome], None] | None = None,
) -> list[Outcome]:
    """Validate every notebook below ``paths``; outcomes in the order the notebooks were found.

    ``warm`` forks kernels from a zygote with the run's heavy imports done (see
    ``aifkit.zygote``); ``warm=False`` starts every kernel from scratch."""
    options = Options(
        tier=tier,
        jobs=max(1, jobs),
        cached=cached,
        # absolute: runners and forked kernels work in the notebook's folder, not this one
        report_dir=Path(report_dir).absolute(),
        parameters=dict(parameters or {}),
        state_path=Path(state_path).absolute(),
        reset_timings=reset_timings,
        warm=warm,
    )
    concrete = tiers.resolve(options.tier)
    state = State.load(options.state_path)
    notebooks = reading.find_notebooks(paths)
    outcomes: dict[Path, Outcome] = {}
    plans: list[Plan] = []
    for path in notebooks:
        planned = _plan(path, options, concrete, state)
        if isinstance(planned, Outcome):
            outcomes[path] = planned
        elif options.cached and planned.fingerprint == state.get(path, concrete).passed_fingerprint:
            outcomes[path] = Outcome(
                planned.display,
                concrete,
                CACHED,
                timeout_s=planned.job.timeout_s,
                reason="unchanged since its last pass",
            )
        else:
            if options.reset_timings:
                state.get(path, concrete).durations = []
            plans.append(planned)
    if on_start:
        on_start(len(notebooks))
    for outcome in outcomes.values():
        if on_result:
            on_result(outcome)
    plans.sort(key=lambda plan: plan.estimate, reverse=True)
    zygote = zygote_for([p.job for p in plans]) if options.warm else contextlib.nullcontext()
    with zygote as zygote_socket, ThreadPoolExecutor(options.jobs) as pool:
        for plan in plans:
            plan.job = dataclasses.replace(plan.job, zygote=zygote_socket)
        futures = {
            pool.submit(_run, plan, state.get(plan.path, concrete).minimum): plan for plan in plans
        }
        for future in as_completed(futures):
            plan, outcome = futures[future], future.result()
            outcomes[plan.path] = outcome
            if outcome.status == execute.PASSED:
                state.record_pass(plan.path, concrete, outcome.seconds, plan.fingerprint)
            else:
                state.forget_pass(plan.path, concrete)
            if on_result:
                on_result(outcome)
    state.save()
    return [outcomes[path] for path in notebooks]
