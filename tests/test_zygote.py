"""Warm kernels: a kernel forked from the zygote behaves as a started one, or is not forked."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import psutil
import pytest
from builders import REPO, code

from aifkit.launcher import kernel_environment
from aifkit.notebooks import execute, warm
from aifkit.notebooks.kernel import ForkedKernel, ask_zygote

pytestmark = pytest.mark.skipif(not warm.supported(), reason="warm kernels need Linux's pidfd")

PROBE = r"""
import json, multiprocessing, os, re, signal, sys, threading
import matplotlib, numpy, torch


def is_socket(fd):
    try:
        return os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
    except OSError:  # the descriptor listdir itself used
        return False


print("STATE=" + json.dumps({
    "sys.path": sys.path,
    "argv0": sys.argv[0],
    "cwd": os.getcwd(),
    "env": {k: v for k, v in os.environ.items() if k != "JPY_PARENT_PID"},
    "threads": sorted(re.sub(r"-\d+", "", t.name) for t in threading.enumerate()),
    "tasks": len(os.listdir("/proc/self/task")),
    "own_session": os.getsid(0) == os.getpid() == os.getpgid(0),
    "torch_threads": torch.get_num_threads(),
    "cuda_initialised": torch.cuda.is_initialized(),
    "backend": matplotlib.get_backend(),
    "signals": {s.name: str(signal.getsignal(s)) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD)},
    "aifkit_modules": sorted(m for m in sys.modules if m.startswith("aifkit")),
    "sockets": sum(is_socket(fd) for fd in os.listdir("/proc/self/fd")),
    "random": numpy.random.rand(),
    "authkey": multiprocessing.current_process().authkey.hex(),
}))
"""
PLOT = "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3])\nplt.show()"


def _job(path: Path, out: Path, **env: str) -> execute.Job:
    return execute.Job(
        path=path,
        output=out,
        tier="cpu-tiny",
        timeout_s=120,
        jupyter_path=str(REPO),
        environment={**os.environ, **env},
    )


def _state(output: Path) -> tuple[dict[str, Any], bool]:
    """The probe's printed state, and whether the plot cell showed a PNG."""
    nb = nbformat.read(output, as_version=4)
    texts = [o.get("text", "") for c in nb.cells for o in c.get("outputs", [])]
    state = json.loads("".join(texts).split("STATE=")[1].splitlines()[0])
    png = any("image/png" in o.get("data", {}) for c in nb.cells for o in c.get("outputs", []))
    return state, png


@pytest.mark.slow
def test_forked_kernel_is_as_fresh_as_a_started_one(write_nb, tmp_path: Path) -> None:
    """Does a forked kernel see what a started one sees (paths, environment, threads, session,
    backend, signals, no zygote sockets), with its own random seeds?"""
    path = write_nb("probe", [code(PROBE), code(PLOT)])
    started = _job(path, tmp_path / "started.ipynb", AIFKIT_THREADS="1")
    with warm.zygote_for([started]) as zygote:
        assert zygote is not None
        runs = {"started": execute.execute(started)}
        for name in ("forked", "forked-again"):
            job = dataclasses.replace(started, output=tmp_path / f"{name}.ipynb", zygote=zygote)
            runs[name] = execute.execute(job)
    assert [(r.status, r.kernel) for r in runs.values()] == [
        ("passed", "started"),
        ("passed", "forked"),
        ("passed", "forked"),
    ], runs
    cold, cold_png = _state(tmp_path / "started.ipynb")
    forked, forked_png = _state(tmp_path / "forked.ipynb")
    again, _ = _state(tmp_path / "forked-again.ipynb")
    per_kernel = {"random", "authkey"}
    assert {k: v for k, v in forked.items() if k not in per_kernel} == {
        k: v for k, v in cold.items() if k not in per_kernel
    }
    assert cold_png and forked_png, "the inline backend shows figures in both"
    assert forked["random"] != again["random"] and forked["authkey"] != again["authkey"]
    assert forked["own_session"] and not forked["cuda_initialised"]


@pytest.mark.slow
def test_forked_kernels_keep_the_launchers_thread_fitting(write_nb, tmp_path: Path) -> None:
    """Does a forked kernel get the threads the launcher fits, and is a kernel whose fitting
    would differ from the zygote's started instead of forked?"""
    probe = "import os, torch\nprint(f\"THREADS={torch.get_num_threads()},{os.environ['OMP_NUM_THREADS']},{os.environ['AIFKIT_KERNEL_THREADS']}\")"
    path = write_nb("threads", [code(probe)])
    three = _job(path, tmp_path / "three.ipynb", AIFKIT_THREADS="3")
    two = _job(path, tmp_path / "two.ipynb", AIFKIT_THREADS="2")
    with warm.zygote_for([three]) as zygote:
        forked = execute.execute(dataclasses.replace(three, zygote=zygote))
        refused = execute.execute(dataclasses.replace(two, zygote=zygote))
    assert (forked.status, forked.kernel, refused.status, refused.kernel) == (
        "passed",
        "forked",
        "passed",
        "started",
    )
    for output, threads in ((three.output, "3"), (two.output, "2")):
        text = json.dumps([c.get("outputs") for c in nbformat.read(output, as_version=4).cells])
        assert f"THREADS={threads},{threads},{threads}" in text


@pytest.fixture
def zygote(tmp_path: Path) -> Iterator[warm.ZygoteProcess]:
    """A zygote with nothing but ipykernel preloaded, for the environment in ``ENV``."""
    with warm.ZygoteProcess.start(ENV, []) as running:
        yield running


ENV = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}


def _kernel_cmd(tmp_path: Path) -> list[str]:
    return [sys.executable, "-m", "aifkit.launcher", "-f", str(tmp_path / "kernel.json")]


def _gone(pid: int, timeout_s: float = 10) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
            return True
        time.sleep(0.05)
    return False


def test_zygote_refuses_what_it_cannot_fork_exactly(zygote, tmp_path: Path) -> None:
    """Is a command that is not an ipykernel of this Python, or a different environment,
    refused with the reason (the caller then starts the kernel the usual way)?"""
    log = str(tmp_path / "k.log")
    env = ENV
    other = ask_zygote(zygote.socket_path, ["python", "-c", "pass"], env, str(tmp_path), log)
    assert isinstance(other, str) and "not an ipykernel of this Python" in other
    changed = {**env, "AIFKIT_THREADS": "7" if env.get("AIFKIT_THREADS") != "7" else "5"}
    differs = ask_zygote(zygote.socket_path, _kernel_cmd(tmp_path), changed, str(tmp_path), log)
    assert isinstance(differs, str) and "AIFKIT_THREADS" in differs


def test_a_kernel_dies_with_its_runner_and_every_kernel_with_the_zygote(
    zygote, tmp_path: Path
) -> None:
    """When the connection that asked for a kernel closes, is the kernel killed, and does
    stopping the zygote kill the kernels it still has?"""
    log = str(tmp_path / "k.log")

    def fork() -> ForkedKernel:
        answer = ask_zygote(zygote.socket_path, _kernel_cmd(tmp_path), ENV, str(tmp_path), log)
        assert isinstance(answer, ForkedKernel), answer
        return answer

    first = fork()
    assert first.poll() is None and psutil.Process(first.pid).ppid() == zygote.process.pid
    first._conn.close()  # the runner is gone
    assert _gone(first.pid)
    second = fork()
    zygote.close()
    assert _gone(second.pid)


def test_kernels_die_with_a_killed_zygote(tmp_path: Path) -> None:
    """If the zygote is SIGKILLed (no chance to clean up), do its kernels die too?"""
    with warm.ZygoteProcess.start(ENV, []) as zygote:
        answer = ask_zygote(
            zygote.socket_path, _kernel_cmd(tmp_path), ENV, str(tmp_path), str(tmp_path / "k")
        )
        assert isinstance(answer, ForkedKernel), answer
        zygote.process.kill()
        assert _gone(answer.pid)


def test_a_thread_surviving_a_fork_turns_warm_kernels_off(tmp_path: Path) -> None:
    """If a preloaded module leaves a thread that a fork does not stop, is the forked child
    discarded and every later request refused, so kernels start the usual way?"""
    (tmp_path / "threaded_module.py").write_text(
        "import threading, time\nthreading.Thread(target=time.sleep, args=(600,), daemon=True).start()\n"
    )
    env = {**ENV, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}
    with warm.ZygoteProcess.start(env, ["threaded_module"]) as threaded:
        for _ in range(2):
            answer = ask_zygote(
                threaded.socket_path,
                _kernel_cmd(tmp_path),
                env,
                str(tmp_path),
                str(tmp_path / "k.log"),
            )
            assert isinstance(answer, str) and "thread" in answer, answer


@pytest.mark.slow
def test_interrupts_reach_a_forked_kernel(zygote, tmp_path: Path) -> None:
    """Does Jupyter's interrupt (SIGINT to the kernel's process group) stop a forked kernel's cell?"""
    from traitlets.config import Config

    from aifkit.notebooks.kernel import ValidationKernelManager

    launched: list[tuple[int, bool]] = []
    config = Config(
        {
            "ValidationKernelManager": {
                "transport": "ipc",
                "connection_file": str(tmp_path / "kernel.json"),
                "zygote_socket": zygote.socket_path,
                "kernel_log": str(tmp_path / "k.log"),
                "on_launch": lambda pid, forked: launched.append((pid, forked)),
            }
        }
    )

    async def run() -> str:
        manager = ValidationKernelManager(kernel_name="aifkit", config=config)
        await manager.start_kernel(cwd=str(tmp_path), env=ENV)
        client = manager.client()
        client.start_channels()
        try:
            await client.wait_for_ready(timeout=60)
            msg_id = client.execute("import time; print('asleep', flush=True); time.sleep(120)")
            while True:  # interrupt only once user code runs
                msg = await client.get_iopub_msg(timeout=60)
                if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "stream":
                    break
            await manager.interrupt_kernel()
            while True:  # wait_for_ready may have left kernel_info replies before it
                reply = await client.get_shell_msg(timeout=30)
                if reply["parent_header"].get("msg_id") == msg_id:
                    return str(reply["content"].get("ename"))
        finally:
            client.stop_channels()
            await manager.shutdown_kernel(now=True)

    assert asyncio.run(run()) == "KeyboardInterrupt"
    assert launched and launched[0][1], "the kernel was forked"
    assert _gone(launched[0][0])


def test_preloads_are_what_several_notebooks_import(write_nb) -> None:
    """Does the zygote preload only allowed packages' modules that two notebooks share?"""
    shared = (
        "import numpy as np\nfrom matplotlib import pyplot as plt\nimport json\n%matplotlib inline"
    )
    first = write_nb("one", [code(shared + "\nimport torch")])
    second = write_nb("two", [code(shared + "\nimport ipywidgets")])
    assert warm.preloads_for([first, second]) == ["matplotlib", "matplotlib.pyplot", "numpy"]
    assert warm.preloads_for([first, second], shared_by=1) == [
        "matplotlib",
        "matplotlib.pyplot",
        "numpy",
        "torch",
    ]


def test_validate_forks_kernels_by_default(write_nb, tmp_path: Path) -> None:
    """Does ``validate`` run kernels forked from its zygote, and ``warm=False`` started ones?"""
    from aifkit.notebooks.validate import validate

    path = write_nb("pid", [code("import os\nprint(os.getppid())")])
    seen: dict[bool, str] = {}
    for warm_kernels in (True, False):
        (outcome,) = validate(
            [path],
            tier="cpu-tiny",
            report_dir=tmp_path / f"report-{warm_kernels}",
            state_path=tmp_path / "state.json",
            warm=warm_kernels,
            reset_timings=True,
        )
        assert outcome.status == "passed", outcome
        seen[warm_kernels] = outcome.kernel
    assert seen == {True: "forked", False: "started"}


def test_kernel_environment_is_the_launchers(monkeypatch) -> None:
    """Does the zygote fit environments with the launcher's own function (bad values dropped)?"""
    fitted = kernel_environment({"AIFKIT_THREADS": "2", "PATH": "/bin"})
    assert fitted["OMP_NUM_THREADS"] == "2" and fitted["PATH"] == "/bin"
    assert re.fullmatch(
        r"\d+", kernel_environment({"AIFKIT_THREADS": "x"}, warn=False)["OMP_NUM_THREADS"]
    )
