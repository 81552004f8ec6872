"""The aifkit kernel, started by papermill, runs with the threads of its SLURM allocation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat
import pytest

from aifkit import launcher
from aifkit.resources import jupyter_data_dir

PROBE = """\
import json, os
import torch
print(json.dumps({
    "torch_threads": torch.get_num_threads(),
    "omp": os.environ.get("OMP_NUM_THREADS"),
    "recorded": os.environ.get("AIFKIT_KERNEL_THREADS"),
    "job": os.environ.get("SLURM_JOB_ID"),
}))
"""


@pytest.mark.slow
def test_kernel_uses_the_allocations_threads(tmp_path: Path) -> None:
    """Under a simulated 3-CPU SLURM allocation, does the kernel see 3 torch and OMP threads?"""
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {
        "name": "aifkit",
        "display_name": "Python 3 (AI Factory)",
        "language": "python",
    }
    notebook.cells = [nbformat.v4.new_code_cell(PROBE)]
    source, executed = tmp_path / "probe.ipynb", tmp_path / "probe.out.ipynb"
    nbformat.write(notebook, source)

    env = {k: v for k, v in os.environ.items() if k not in launcher.managed_names()}
    env.pop(launcher.ENV_THREADS, None)
    env.update(
        SLURM_CPUS_PER_TASK="3",  # more than this 2-core runner: the allocation's word must win
        SLURM_JOB_ID="777",
        JUPYTER_PATH=str(jupyter_data_dir()),  # aifkit's own kernelspec, no install needed
    )
    done = subprocess.run(
        [sys.executable, "-m", "papermill", str(source), str(executed), "--cwd", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]

    result = nbformat.read(executed, as_version=4)
    assert result.metadata["kernelspec"]["name"] == "aifkit"
    streams = [out for out in result.cells[0].outputs if out.get("output_type") == "stream"]
    seen = json.loads("".join(out["text"] for out in streams))
    assert seen == {"torch_threads": 3, "omp": "3", "recorded": "3", "job": "777"}


@pytest.mark.slow
def test_kernel_keeps_the_launchers_pid_so_interrupts_reach_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Is the kernel the very process Jupyter started (exec), so an interrupt stops a cell?"""
    from jupyter_client.manager import start_new_kernel

    monkeypatch.setenv("JUPYTER_PATH", str(jupyter_data_dir()))
    manager, client = start_new_kernel(kernel_name="aifkit", startup_timeout=120)
    try:
        out: list[str] = []
        reply = client.execute_interactive(
            "import os; print(os.getpid())", timeout=60, output_hook=_collect(out)
        )
        assert reply["content"]["status"] == "ok"
        assert int("".join(out)) == manager.provisioner.process.pid  # type: ignore[union-attr]

        msg_id = client.execute("import time; print('asleep', flush=True); time.sleep(120)")
        while True:  # interrupt only once user code runs (earlier, ipykernel may ignore it)
            msg = client.get_iopub_msg(timeout=60)
            if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "stream":
                break
        manager.interrupt_kernel()
        reply = client.get_shell_msg(timeout=30)
        assert reply["parent_header"]["msg_id"] == msg_id
        assert reply["content"]["ename"] == "KeyboardInterrupt"
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def _collect(sink: list[str]) -> Callable[[dict[str, Any]], None]:
    """An iopub hook appending stream text to ``sink``."""

    def hook(msg: dict[str, Any]) -> None:
        if msg["msg_type"] == "stream":
            sink.append(msg["content"]["text"])

    return hook
