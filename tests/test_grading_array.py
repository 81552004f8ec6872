"""The grading job array's request and script: checked against the site, rendered from a template.

Only the script is asserted on here (as batchspawner's tests do); test_grading_scale.py grades a
real course with the array on the real SLURM test cluster.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from aifkit.cli import main
from aifkit.course import jobs, site
from aifkit.grading import array
from aifkit.grading.autograde import AutogradeOptions
from aifkit.grading.limits import Limits

LOCAL = site.load("local")
FACTORY = site.load("factory-example")
OPTIONS = AutogradeOptions(limits=Limits(notebook_timeout_s=900))


def directives(script: str) -> dict[str, str]:
    return dict(re.findall(r"^#SBATCH --([\w-]+)(?:=(\S+))?$", script, flags=re.MULTILINE))


def rendered(run_dir: Path, site_profile: site.Site, tasks: int = 3, **kwargs: object) -> str:
    spec = array.array_spec(run_dir, "adv", OPTIONS, site=site_profile, **kwargs)  # type: ignore[arg-type]
    return array.render_script(spec, site_profile, tasks=tasks)


def test_array_on_the_local_cluster(tmp_path: Path) -> None:
    """Does the array ask the local site's default partition, one CPU per task, no account?"""
    script = rendered(tmp_path, LOCAL, chunk=5)
    found = directives(script)
    assert found["partition"] == "debug" and "account" not in found
    assert (found["array"], found["ntasks"], found["cpus-per-task"]) == ("0-2", "1", "1")
    assert found["job-name"] == "aifkit-grade-adv" and "requeue" in found
    assert found["output"] == f"{tmp_path}/logs/task-%a.log"
    assert found["time"] == "01:35:00", "5 notebooks x 900 s, +20% and 5 min"
    last = script.rstrip("\n").splitlines()[-1]
    assert re.match(r"exec \S+ -m aifkit\.grading\.worker --manifest ", last), last
    assert last.endswith(' --task "$SLURM_ARRAY_TASK_ID"')
    assert "--limits '{" in last, "the limits' JSON is one quoted shell word"


def test_array_charges_the_sites_account_within_the_partitions_time(tmp_path: Path) -> None:
    """On a site with accounting, is the account set and the time limit within the partition's?"""
    script = rendered(tmp_path, FACTORY, chunk=1, partition="gpu-debug")
    assert re.search(r"^#SBATCH\s+--account=proj-aifactory-demo$", script, flags=re.MULTILINE)
    found = directives(script)
    assert found["partition"] == "gpu-debug"
    limit = FACTORY.partition("gpu-debug").max_minutes
    assert site.time_to_minutes(found["time"]) <= limit == 30


def test_array_beyond_the_partitions_time_is_refused_with_the_fix(tmp_path: Path) -> None:
    """Is an array whose chunks outlast the partition refused, saying what to change?"""
    with pytest.raises(jobs.JobError) as refused:
        rendered(tmp_path, FACTORY, chunk=5, partition="gpu-debug")
    message = str(refused.value)
    assert "time 01:35:00: partition gpu-debug allows at most 00:30:00" in message
    assert "a smaller --chunk or another partition fits" in message
    with pytest.raises(site.SiteError, match="has: cpu, gpu, gpu-debug"):
        rendered(tmp_path, FACTORY, chunk=1, partition="a100")


def test_site_template_for_the_array(tmp_path: Path) -> None:
    """Does a site's own grade-array.sbatch replace the packaged one?"""
    profile = yaml.safe_load((site.SITES_DIR / "local.yml").read_text(encoding="utf-8"))
    profile.update(name="custom", templates=str(tmp_path / "own"))
    (tmp_path / "own").mkdir()
    (tmp_path / "own" / "grade-array.sbatch").write_text(
        "#!/bin/bash\n#SBATCH --array=0-{{ tasks - 1 }}%2\n#SBATCH --constraint=cpu-only\n"
        'exec {{ spec.command | map("quote") | join(" ") }} --task "$SLURM_ARRAY_TASK_ID"\n',
        encoding="utf-8",
    )
    (tmp_path / "custom.yml").write_text(yaml.safe_dump(profile), encoding="utf-8")
    custom = site.load(str(tmp_path / "custom.yml"))
    found = directives(rendered(tmp_path, custom, tasks=4, chunk=1))
    assert found == {"array": "0-3%2", "constraint": "cpu-only"}


def test_cli_refuses_an_array_the_site_cannot_run(tmp_path: Path) -> None:
    """Does `grade autograde --slurm --site` refuse before grading anything, with exit 2?"""
    result = CliRunner().invoke(
        main,
        [
            "grade",
            "autograde",
            "adv",
            "--course",
            str(tmp_path),
            "--slurm",
            "--site",
            "factory-example",
            "--partition",
            "gpu-debug",
        ],
    )
    assert result.exit_code == 2, result.output
    assert "partition gpu-debug allows at most 00:30:00" in result.output
    assert not any(tmp_path.iterdir()), "nothing was prepared"
