"""``aifkit doctor``: check that this machine (or allocation) can run the course, on one screen.

``collect`` gathers one ``Check`` per item (Python, torch, CPUs and kernel threads, GPUs,
collectives, SLURM, GPU budget, kernels, scratch, tier), ``render`` lays them out with a fix for
every problem, and ``run`` prints them and returns the exit code (1 when a check fails).
torch is imported lazily and any failure to import or query it becomes a check, never a crash.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import textwrap
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import ModuleType

from aifkit import kernels, launcher
from aifkit.course import accounting, tiers
from aifkit.errors import AifkitError

OK, WARN, FAIL = "ok", "warn", "fail"
MIN_PYTHON = (3, 11)
SCRATCH_VARS = ("AIFKIT_SCRATCH", "SCRATCH", "TMPDIR")
INSTALL_KERNEL = "aifkit kernels install --sys-prefix"


@dataclass(frozen=True)
class Check:
    """One line of the report: what was checked, what was found, and how to fix a problem."""

    item: str
    value: str
    status: str = OK
    fix: str = ""
    note: str = ""


@cache
def _torch() -> ModuleType | Exception:
    """The torch module, or the exception importing it raised (a broken CUDA install, say)."""
    try:
        import torch
    except Exception as exc:  # ImportError, OSError from missing CUDA libraries, ...
        return exc
    return torch


def _gpu_count() -> int:
    """GPUs torch can use (0 without torch, without CUDA or with a broken driver)."""
    torch = _torch()
    if isinstance(torch, Exception):
        return 0
    try:
        return int(torch.cuda.device_count())  # NVML first: CUDA stays uninitialised
    except Exception:
        return 0


def check_python(env: Mapping[str, str]) -> Check:
    """Python >= 3.11, and which interpreter runs."""
    version = ".".join(map(str, sys.version_info[:3]))
    value = f"{version} ({sys.executable})"
    if sys.version_info[:2] < MIN_PYTHON:
        return Check("python", value, FAIL, fix="use Python 3.11 or newer (make recreates .venv)")
    return Check("python", value)


def check_torch(env: Mapping[str, str]) -> Check:
    """torch importable, its version and the CUDA version it was built for."""
    torch = _torch()
    if isinstance(torch, Exception):
        fix = "install the pinned torch: pip install -r requirements.lock"
        return Check("torch", f"cannot import: {torch}", FAIL, fix=fix)
    cuda = getattr(torch.version, "cuda", None)
    value = f"{torch.__version__} ({f'CUDA {cuda} build' if cuda else 'CPU-only build'})"
    if not cuda and shutil.which("nvidia-smi", path=env.get("PATH")):
        fix = "nvidia-smi is present but torch has no CUDA: install a CUDA build of torch"
        return Check("torch", value, WARN, fix=fix)
    return Check("torch", value)


def check_cpus(env: Mapping[str, str]) -> Check:
    """CPUs of the machine and of this process's affinity mask."""
    return Check("cpus", f"{os.cpu_count()} online, {launcher.affinity_count()} usable (affinity)")


def check_threads(env: Mapping[str, str]) -> Check:
    """Threads the aifkit kernel would use (launcher.fit_environment) and why."""
    affinity = launcher.affinity_count()
    try:
        choice = launcher.choose_threads(env, affinity=affinity)
        fitted = launcher.fit_environment(env, affinity=affinity)
    except AifkitError as exc:
        return Check("kernel threads", "invalid", FAIL, fix=str(exc))
    value = f"{fitted[launcher.ENV_RECORD]} (from {choice.source})"
    if choice.count > affinity:
        fix = (
            f"{choice.count} threads on {affinity} usable CPUs oversubscribe them: run inside "
            f"the allocation (srun) or set {launcher.ENV_THREADS}"
        )
        return Check("kernel threads", value, WARN, fix=fix)
    return Check("kernel threads", value)


def check_gpus(env: Mapping[str, str]) -> Check:
    """GPUs torch sees (limited by CUDA_VISIBLE_DEVICES) and their memory."""
    torch = _torch()
    if isinstance(torch, Exception):
        return Check("gpus", "unknown (no torch)", WARN, fix="fix torch first")
    try:
        count = tiers.detect(env, torch_gpus=_gpu_count()).gpus
        props = [torch.cuda.get_device_properties(i) for i in range(count)]
    except Exception as exc:
        return Check("gpus", f"error: {exc}", WARN, fix="check the driver: nvidia-smi")
    if not props:
        granted = env.get("SLURM_GPUS_ON_NODE", "").strip()
        if granted.isdigit() and int(granted) > 0:
            fix = (
                f"SLURM granted {granted} GPUs on this node but torch sees none: check "
                "CUDA_VISIBLE_DEVICES and that torch is a CUDA build"
            )
            return Check("gpus", "none", WARN, fix=fix)
        note = "no GPU: notebooks run at cpu-tiny; start a GPU profile for the gpu tiers"
        return Check("gpus", "none", note=note)
    kinds = Counter(f"{p.name} ({p.total_memory / 2**30:.0f} GiB)" for p in props)
    return Check("gpus", ", ".join(f"{n}x {kind}" for kind, n in kinds.items()))


def check_collectives(env: Mapping[str, str]) -> Check:
    """torch.distributed backends: gloo for CPU lessons, NCCL for GPUs."""
    torch = _torch()
    if isinstance(torch, Exception):
        return Check("collectives", "unknown (no torch)", WARN, fix="fix torch first")
    dist = torch.distributed
    if not dist.is_available():
        return Check("collectives", "torch.distributed missing", FAIL, fix="reinstall torch")
    nccl, gloo = bool(dist.is_nccl_available()), bool(dist.is_gloo_available())
    value = f"nccl {'yes' if nccl else 'no'}, gloo {'yes' if gloo else 'no'}"
    if not gloo:
        return Check("collectives", value, FAIL, fix="torch lacks gloo: reinstall the pinned torch")
    if not nccl and _gpu_count():
        fix = "GPUs without NCCL: install a CUDA build of torch (it ships NCCL)"
        return Check("collectives", value, WARN, fix=fix)
    return Check("collectives", value, note="" if nccl else "NCCL is only needed on GPUs")


def _first(env: Mapping[str, str], *names: str) -> str:
    """The first non-empty value of ``names``, or '?'."""
    return next((env[n] for n in names if env.get(n)), "?")


def check_slurm(env: Mapping[str, str]) -> Check:
    """The SLURM allocation this process runs in, if any."""
    if "SLURM_JOB_ID" not in env:
        return Check("slurm", "no allocation")
    gpus = _first(env, "SLURM_GPUS_ON_NODE", "SLURM_GPUS_PER_NODE", "SLURM_GPUS", "SLURM_JOB_GPUS")
    value = (
        f"job {env['SLURM_JOB_ID']}: {_first(env, 'SLURM_JOB_NUM_NODES', 'SLURM_NNODES')} nodes, "
        f"{_first(env, 'SLURM_NTASKS')} tasks, {_first(env, 'SLURM_CPUS_PER_TASK')} cpus/task, "
        f"gpus {gpus}, partition {_first(env, 'SLURM_JOB_PARTITION')}"
    )
    return Check("slurm", value)


def check_slurm_tools(env: Mapping[str, str]) -> Check:
    """Whether sbatch and srun are on PATH (multi-node lessons need them)."""
    found = {tool: shutil.which(tool, path=env.get("PATH")) for tool in ("sbatch", "srun")}
    missing = [tool for tool, path in found.items() if not path]
    if not missing:
        return Check("slurm tools", "sbatch, srun on PATH")
    value = f"{', '.join(missing)} not on PATH"
    if "SLURM_JOB_ID" in env:
        fix = "inside an allocation without srun: load the site's slurm module"
        return Check("slurm tools", value, WARN, fix=fix)
    return Check("slurm tools", value, note="multi-node lessons run where SLURM is (the factory)")


def check_budget(env: Mapping[str, str]) -> Check:
    """The learner's remaining GPU-minutes, when the cluster keeps accounting (slurmdbd)."""
    if not shutil.which("sacct", path=env.get("PATH")):
        return Check("budget", f"{accounting.NO_ACCOUNTING} (no SLURM here)")
    if not accounting.enabled(timeout_s=10):
        return Check("budget", accounting.NO_ACCOUNTING)
    try:
        found = accounting.budget(timeout_s=10)
    except AifkitError as exc:
        return Check("budget", "unknown", WARN, fix=str(exc))
    if found.remaining_min == 0:
        fix = f"{found.describe()}: jobs asking for GPUs will wait; ask the site for more"
        return Check("budget", found.describe(), WARN, fix=fix)
    return Check("budget", found.describe())


def check_kernels(env: Mapping[str, str]) -> Check:
    """The aifkit kernelspec is installed (and equals the repository's copy).

    Jupyter's search path comes from this process (JUPYTER_PATH, user, environment, system).
    """
    installed = kernels.list_installed()
    where = installed.get(kernels.KERNEL_NAME)
    if where is None:
        value = f"aifkit missing (found: {', '.join(installed) or 'none'})"
        return Check("kernels", value, FAIL, fix=INSTALL_KERNEL)
    if not kernels.is_current(where):
        fix = f"reinstall the current kernelspec: {INSTALL_KERNEL}"
        return Check("kernels", f"aifkit at {where} is outdated", WARN, fix=fix)
    return Check("kernels", f"aifkit at {where}")


def check_scratch(env: Mapping[str, str]) -> Check:
    """The scratch folder ($AIFKIT_SCRATCH, $SCRATCH, $TMPDIR, /tmp) accepts a file."""
    name = next((n for n in SCRATCH_VARS if env.get(n)), None)
    folder = Path(env[name]) if name else Path("/tmp")
    value = f"{folder} (from {'$' + name if name else 'default'})"
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".aifkit-doctor-") as handle:
            handle.write(b"ok")
            handle.flush()
    except OSError as exc:
        fix = f"cannot write there ({exc.strerror or exc}): set AIFKIT_SCRATCH to a writable folder"
        return Check("scratch", value + " not writable", FAIL, fix=fix)
    return Check("scratch", value + " writable")


def check_tier(env: Mapping[str, str]) -> Check:
    """The tier ``resolve('auto')`` picks and the resources it saw."""
    found = tiers.detect(env, torch_gpus=_gpu_count())
    try:
        tier = tiers.resolve(tiers.AUTO, env=env, torch_gpus=_gpu_count())
    except AifkitError as exc:
        return Check(
            "tier", f"{tiers.ENV_OVERRIDE}={env.get(tiers.ENV_OVERRIDE)!r}", FAIL, str(exc)
        )
    seen = f"gpus {found.gpus}, nodes {found.nodes}, tasks {found.tasks}; {found.source}"
    value = f"{tier} ({seen})"
    supported = tiers.tier_for(found)
    if tiers.TIERS.index(tier) > tiers.TIERS.index(supported):
        fix = (
            f"{tiers.ENV_OVERRIDE}={tier} but this machine supports {supported}: unset "
            f"{tiers.ENV_OVERRIDE} or run on a GPU profile/allocation"
        )
        return Check("tier", value, WARN, fix=fix)
    return Check("tier", value)


CHECKS: tuple[Callable[[Mapping[str, str]], Check], ...] = (
    check_python,
    check_torch,
    check_cpus,
    check_threads,
    check_gpus,
    check_collectives,
    check_slurm,
    check_slurm_tools,
    check_budget,
    check_kernels,
    check_scratch,
    check_tier,
)


def collect(env: Mapping[str, str] | None = None) -> list[Check]:
    """Run every check against ``env`` (default: os.environ); a crashing check becomes a fail."""
    env = os.environ if env is None else env
    results: list[Check] = []
    for check in CHECKS:
        try:
            results.append(check(env))
        except Exception as exc:
            item = check.__name__.removeprefix("check_").replace("_", " ")
            results.append(Check(item, f"check crashed: {exc!r}", FAIL, fix="report this bug"))
    return results


def render(checks: list[Check], *, width: int = 100) -> str:
    """One screen: aligned item/value/status columns, then a fix for each problem and notes."""
    item_w = max([len("item"), *(len(c.item) for c in checks)])
    value_w = min(max([len("value"), *(len(c.value) for c in checks)]), width - item_w - 10)

    def clip(text: str) -> str:
        text = " ".join(text.split())  # an exception message may span lines
        return text if len(text) <= value_w else text[: value_w - 1] + "…"

    lines = [f"{'item':<{item_w}}  {'value':<{value_w}}  status"]
    lines += [f"{c.item:<{item_w}}  {clip(c.value):<{value_w}}  {c.status}" for c in checks]
    sections = {
        "to fix:": [f"[{c.status}] {c.item}: {c.fix or c.value}" for c in checks if c.status != OK],
        "notes:": [f"{c.item}: {c.note}" for c in checks if c.note],
    }
    for title, entries in sections.items():
        if entries:
            lines += ["", title]
            for entry in entries:
                lines += textwrap.wrap(entry, width, initial_indent="  ", subsequent_indent="    ")
    counts = Counter(c.status for c in checks)
    lines += ["", ", ".join(f"{counts[s]} {s}" for s in (OK, WARN, FAIL))]
    return "\n".join(lines)


def run(env: Mapping[str, str] | None = None) -> int:
    """Print the report; exit code 1 when any check fails, else 0."""
    checks = collect(env)
    print(render(checks))
    return 1 if any(c.status == FAIL for c in checks) else 0
