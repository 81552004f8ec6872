"""Job templates: rendered directives for each tier and site, limits enforced, real submissions.

The rendering tests assert on the script text (as batchspawner's tests do), including a site's
own templates folder; the submission tests run the rendered script on the real SLURM test
cluster: 2 gloo processes under srun + torchrun.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from builders import REPO
from click.testing import CliRunner

from aifkit import slurm, templates
from aifkit.cli import main
from aifkit.course import jobs, site

LOCAL = site.load("local")
FACTORY = site.load("factory-example")
ALLREDUCE = REPO / "tests" / "fixtures" / "allreduce_job.py"


def directives(script: str) -> dict[str, str]:
    return dict(re.findall(r"^#SBATCH --([\w-]+)(?:=(\S+))?$", script, flags=re.MULTILINE))


def test_cpu_tiny_renders_two_gloo_processes_on_one_node() -> None:
    """Does cpu-tiny ask for one node, no GPU, and start 2 processes with torchrun under srun?"""
    script = jobs.render(
        jobs.spec_for_tier(["train.py", "--lr", "3e-4"], tier="cpu-tiny", site=LOCAL), LOCAL
    )
    found = directives(script)
    assert found["nodes"] == "1" and found["partition"] == "debug" and "gres" not in found
    assert "account" not in found, "the local cluster charges each user's default account"
    assert found["signal"] == "B:USR1@60" and "requeue" in found
    assert re.search(r"^srun --kill-on-bad-exit=1 ", script, flags=re.MULTILINE)
    assert "--nproc-per-node=2" in script and "train.py --lr 3e-4" in script
    assert "MASTER_PORT=$((20000 + SLURM_JOB_ID % 20000))" in script
    assert '--rdzv-id="$SLURM_JOB_ID"' in script and "--redirects=3" in script


def test_multi_gpu_uses_every_gpu_of_each_node_and_the_account() -> None:
    """Does multi-gpu on the example factory ask for 4 GPUs per node, one process each, and the account?"""
    spec = jobs.spec_for_tier(
        ["train.py"], tier="multi-gpu", site=FACTORY, nodes=8, time_minutes=24 * 60 + 30
    )
    script = jobs.render(spec, FACTORY)
    assert re.search(r"^#SBATCH\s+--account=proj-aifactory-demo$", script, flags=re.MULTILINE)
    found = directives(script)
    assert found["gres"] == "gpu:4" and found["nodes"] == "8" and found["cpus-per-task"] == "72"
    assert found["account"] == "proj-aifactory-demo" and found["time"] == "1-00:30:00"
    assert spec.world_size == 32 and spec.backend == "nccl"


def test_gpu_tier_asks_for_one_gpu_and_its_cores() -> None:
    """Does the gpu tier ask for one GPU and a quarter of a 4-GPU node's cores?"""
    found = directives(jobs.render(jobs.spec_for_tier(["t.py"], tier="gpu", site=FACTORY), FACTORY))
    assert (found["gres"], found["cpus-per-task"], found["nodes"]) == ("gpu:1", "18", "1")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"gpus_per_node": 8}, "nodes have 4; use more nodes instead"),
        ({"nodes": 65}, "allows 1 to 64"),
        ({"time_minutes": 3 * 24 * 60}, "allows at most 2-00:00:00"),
        ({"account": ""}, "charges every job to an account"),
        ({"job_name": "my job!"}, "job name"),
        ({"procs_per_node": 8}, "one process per GPU"),
    ],
)
def test_limits_are_enforced_with_a_fix(overrides: dict[str, object], message: str) -> None:
    """Is each request beyond the site's limits refused, saying what to change?"""
    spec = jobs.spec_for_tier(["t.py"], tier="multi-gpu", site=FACTORY, **overrides)
    with pytest.raises(jobs.JobError, match=re.escape(message)):
        jobs.render(spec, FACTORY)


def test_unknown_partition() -> None:
    """Is an unknown partition an error naming the real ones?"""
    with pytest.raises(site.SiteError, match="has: cpu, gpu, gpu-debug"):
        jobs.spec_for_tier(["t.py"], tier="gpu", site=FACTORY, partition="a100")


@pytest.mark.parametrize(
    ("minutes", "text"), [(5, "00:05:00"), (90, "01:30:00"), (1440, "1-00:00:00")]
)
def test_format_time(minutes: int, text: str) -> None:
    """Are minutes written in SLURM's [D-]HH:MM:SS?"""
    assert slurm.format_time(minutes) == text


def site_with_templates(tmp_path: Path, files: dict[str, str], folder: str = "templates") -> Path:
    """A copy of the local profile naming ``folder`` (relative to it) with ``files`` in it."""
    profile = yaml.safe_load((site.SITES_DIR / "local.yml").read_text(encoding="utf-8"))
    profile.update(name="custom", templates=folder)
    path = tmp_path / "custom.yml"
    tmp_path.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(profile), encoding="utf-8")
    (tmp_path / folder).mkdir(exist_ok=True)
    for name, text in files.items():
        (tmp_path / folder / name).write_text(text, encoding="utf-8")
    return path


def test_site_template_replaces_the_packaged_one_by_name(tmp_path: Path) -> None:
    """Does a site's own torchrun.sbatch win, with the same values, while other names stay ours?"""
    own = (
        "#!/bin/bash\n#SBATCH --job-name={{ spec.job_name }}\n#SBATCH --qos=site-default\n"
        "module load pytorch\nsrun {{ spec.command | map('quote') | join(' ') }}\n"
    )
    custom = site.load(str(site_with_templates(tmp_path, {"torchrun.sbatch": own})))
    assert custom.templates == str(tmp_path / "templates"), "relative to the profile's folder"
    spec = jobs.spec_for_tier(["train.py", "a b"], tier="cpu-tiny", site=custom, job_name="mine")
    script = jobs.render(spec, custom)
    assert script == (
        "#!/bin/bash\n#SBATCH --job-name=mine\n#SBATCH --qos=site-default\n"
        "module load pytorch\nsrun train.py 'a b'\n"
    )
    assert "--array=0-" in templates.source("grade-array.sbatch", custom.templates)


def test_site_template_errors_name_the_file_and_the_fix(tmp_path: Path) -> None:
    """Is a misspelt value in a site's template an error naming it, and a missing folder too?"""
    broken = site.load(
        str(site_with_templates(tmp_path, {"torchrun.sbatch": "#SBATCH -J {{ spec.jobname }}\n"}))
    )
    spec = jobs.spec_for_tier(["t.py"], tier="cpu-tiny", site=broken)
    with pytest.raises(templates.TemplateError, match=r"torchrun\.sbatch: .*jobname"):
        jobs.render(spec, broken)
    path = site_with_templates(tmp_path / "other", {}, folder="nowhere")
    (tmp_path / "other" / "nowhere").rmdir()
    missing = site.load(str(path))
    with pytest.raises(templates.TemplateError, match="fix `templates:` in the site profile"):
        jobs.render(jobs.spec_for_tier(["t.py"], tier="cpu-tiny", site=missing), missing)


@pytest.mark.usefixtures("slurm_cluster")
def test_rendered_job_runs_two_ranks_on_real_slurm(tmp_path: Path) -> None:
    """Does the rendered cpu-tiny job complete on the real cluster with the right sum on every rank?"""
    spec = jobs.spec_for_tier(
        [str(ALLREDUCE), str(tmp_path)],
        tier="cpu-tiny",
        site=LOCAL,
        time_minutes=5,
        job_name="allreduce",
    )
    job_id = jobs.submit(spec, LOCAL, workdir=tmp_path, wait=True, timeout_s=180)
    assert jobs.status(job_id).state == "COMPLETED"
    assert "$$" not in (tmp_path / "allreduce.sbatch").read_text(), "no string.Template escapes"
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert [(r["rank"], r["world_size"], r["sum"], r["job"]) for r in ranks] == [
        (0, 2, 3.0, job_id),
        (1, 2, 3.0, job_id),
    ]
    node_log = (tmp_path / "logs" / f"allreduce-{job_id}-node0.out").read_text()
    assert "rank 0 sum 3.0" in node_log and "rank 1 sum 3.0" in node_log, "per-rank output is kept"


@pytest.mark.usefixtures("slurm_cluster")
def test_failing_rank_fails_the_job(tmp_path: Path) -> None:
    """Does a job whose script fails end FAILED, not hang or report success?"""
    spec = jobs.spec_for_tier(
        [str(tmp_path / "missing.py")],
        tier="cpu-tiny",
        site=LOCAL,
        time_minutes=5,
        job_name="broken",
    )
    job_id = jobs.submit(spec, LOCAL, workdir=tmp_path, wait=True, timeout_s=180)
    assert jobs.status(job_id).state == "FAILED"


@pytest.mark.usefixtures("slurm_cluster")
def test_cli_submit_wait_and_status(tmp_path: Path) -> None:
    """Does `aifkit job submit --wait` print the id and COMPLETED, and `job status` agree?"""
    result = CliRunner().invoke(
        main,
        [
            "job",
            "submit",
            "--time",
            "5",
            "--name",
            "cli",
            "--workdir",
            str(tmp_path),
            "--wait",
            str(ALLREDUCE),
            str(tmp_path),
        ],
    )
    assert result.exit_code == 0, result.output
    job_id, final = result.output.splitlines()[:2]
    assert final.startswith("COMPLETED")
    status = CliRunner().invoke(main, ["job", "status", job_id])
    assert f"{job_id} COMPLETED" in status.output


@pytest.mark.usefixtures("slurm_cluster")
def test_two_node_job_runs_four_ranks_and_the_cli_names_each_nodes_ranks(tmp_path: Path) -> None:
    """Does `job submit --nodes 2 --wait` run 4 gloo ranks over both nodes and say which ran where?"""
    result = CliRunner().invoke(
        main,
        [
            "job",
            "submit",
            "--nodes",
            "2",
            "--time",
            "5",
            "--name",
            "two",
            "--workdir",
            str(tmp_path),
            "--wait",
            str(ALLREDUCE),
            str(tmp_path),
        ],
    )
    assert result.exit_code == 0, result.output
    job_id, final, *per_node = result.output.splitlines()
    assert final.startswith("COMPLETED")
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(4)]
    assert {(r["world_size"], r["sum"], r["job"]) for r in ranks} == {(4, 10.0, job_id)}
    where = {r["node"] for r in ranks}
    assert where == {"aifkit-n1", "aifkit-n2"}, f"ranks ran on {where}"
    by_node = {node: sorted(r["rank"] for r in ranks if r["node"] == node) for node in where}
    assert sorted(per_node) == sorted(
        f"{node}: ranks {','.join(map(str, found))}" for node, found in by_node.items()
    )
    script = (tmp_path / "two.sbatch").read_text()
    assert "#SBATCH --nodes=2" in script and "--kill-on-bad-exit=1" in script
