"""One setting switches the course to another site: AIFKIT_SITE=meluxina runs e05 on MeluXina's profile."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from builders import COURSES

from aifkit.course import site
from aifkit.notebooks.validate import validate

NOTEBOOK = COURSES / "e05-llm-at-scale" / "e05-llm-at-scale.ipynb"


def _stdout(executed: Path) -> str:
    nb = json.loads(executed.read_text(encoding="utf-8"))
    return "".join(
        "".join(output.get("text", ""))
        for cell in nb["cells"]
        for output in cell.get("outputs", [])
        if output.get("output_type") == "stream"
    )


@pytest.mark.notebook
def test_meluxina_switches_e05_to_its_gpu_nodes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With AIFKIT_SITE=meluxina, does e05 plan on MeluXina's 4x A100-40GB nodes, budget with
    its A100's peak from the profile's facts, and render (and check) its job for MeluXina's gpu
    partition and project account?"""
    meluxina = site.load("meluxina")
    monkeypatch.setenv(site.ENV_SITE, "meluxina")
    (outcome,) = validate(
        [NOTEBOOK],
        tier="cpu-tiny",
        report_dir=tmp_path / "report",
        state_path=tmp_path / "state.json",
    )
    assert outcome.status == "passed", (
        f"{outcome.kind}: {outcome.reason} [cell {outcome.cell}]\n{outcome.traceback}"
    )
    (executed,) = (tmp_path / "report" / "executed").rglob("*.ipynb")
    text = _stdout(executed)
    gpu = meluxina.partition("gpu")
    assert f"site 'meluxina': planning on site meluxina, partition gpu ({gpu.gpu_model})" in text
    assert f"4 GPUs x {gpu.gpu_memory_gb} GB per node, at most {gpu.max_nodes} nodes" in text
    assert f"#SBATCH --account={meluxina.account}" in text
    assert "#SBATCH --partition=gpu" in text
    # the facts e05 reads through facts.value() are MeluXina's too, and say where they come from
    assert "factory_accelerator_bf16_dense = 3.12e+14 FLOP/s" in text
    assert "[fact of site meluxina; NVIDIA A100 Tensor Core GPU datasheet" in text
    assert "on 1024 GPUs of 312 TFLOP/s" in text
    assert "infiniband_per_gpu = 1e+11 bit/s" in text
    # 40 GB GPUs need more nodes for 70B than the factory's 80 GB ones (4 nodes at local)
    assert int(outcome.figures["AIFKIT_E05_PLAN_70B_NODES"]) > 4
