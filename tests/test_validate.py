"""aifkit validate on real kernels: every failure is located, the batch goes on, passes are proven."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import nbformat
import pytest
from builders import code
from click.testing import CliRunner

from aifkit.cli import main
from aifkit.notebooks import report
from aifkit.notebooks.state import State
from aifkit.notebooks.validate import validate


def run(paths: list[Path], tmp_path: Path, **kwargs):
    kwargs.setdefault("tier", "cpu-tiny")
    return validate(
        paths, report_dir=tmp_path / "report", state_path=tmp_path / "state.json", **kwargs
    )


@pytest.fixture
def batch(write_nb, tmp_path: Path) -> dict[str, Path]:
    """One notebook of each kind a validation run must tell apart."""
    fast = {"timeout": {"cpu-tiny": 8}}
    return {
        "good": write_nb("good", [code("x = 6 * 7\nprint(TIER)")]),
        "error": write_nb("error", [code("x = 1"), code("raise ValueError('tier too small')")]),
        "loop": write_nb("loop", [code("while True:\n    pass")], aifkit=fast),
        "dead": write_nb("dead", [code("x = 1"), code("import os\nos._exit(3)")]),
        "json": _invalid_json(tmp_path / "broken.ipynb"),
    }


def _invalid_json(path: Path) -> Path:
    path.write_text('{"cells": [}', encoding="utf-8")
    return path


def test_batch_classifies_every_failure_and_goes_on(batch: dict[str, Path], tmp_path: Path) -> None:
    """Does each bad notebook fail with its own located reason while the good one passes?"""
    outcomes = {Path(o.notebook).stem: o for o in run(list(batch.values()), tmp_path, jobs=2)}
    assert outcomes["good"].status == "passed"
    error = outcomes["error"]
    assert (error.status, error.kind, error.cell) == ("failed", "cell-error", 2)
    assert "ValueError: tier too small" in error.reason and "raise ValueError" in error.cell_source
    assert "ValueError" in error.traceback
    loop = outcomes["loop"]
    assert (loop.kind, loop.cell, loop.timeout_s) == ("timeout", 1, 8.0)
    assert loop.seconds < 30, "the timeout must stop the notebook"
    dead = outcomes["dead"]
    assert (dead.kind, dead.cell) == ("dead-kernel", 2)
    assert (
        outcomes["broken"].kind == "invalid-notebook"
        and "not valid JSON" in outcomes["broken"].reason
    )
    assert all(o.attempts <= 1 for o in outcomes.values()), "cell errors are never retried"


def test_no_kernel_outlives_a_timeout(write_nb, tmp_path: Path) -> None:
    """After a timed-out notebook, is its kernel process gone (no orphan burning a core)?"""
    marker = f"aifkit-orphan-check-{os.getpid()}"
    path = write_nb(
        "spin",
        [code(f"# {marker}\nimport time\nwhile True:\n    time.sleep(0.05)")],
        aifkit={"timeout": {"cpu-tiny": 4}},
    )
    (outcome,) = run([path], tmp_path)
    assert outcome.kind == "timeout"
    cmdlines = [p.read_bytes() for p in Path("/proc").glob("[0-9]*/cmdline") if p.exists()]
    assert not any(b"ipykernel" in c and b"spin" in c for c in cmdlines)


def test_executed_notebook_and_reports_are_kept(write_nb, tmp_path: Path) -> None:
    """Are the executed notebook, JSON, JUnit XML and the table all written and consistent?"""
    good = write_nb("good", [code("print('hello from the kernel')")])
    bad = write_nb("bad", [code("1 / 0")])
    outcomes = run([good, bad], tmp_path)
    executed = nbformat.read(Path(outcomes[0].output), 4)
    assert "hello from the kernel" in json.dumps(executed.cells[-1].outputs)
    paths = report.write(outcomes, tmp_path / "report")
    data = json.loads(paths["json"].read_text())
    assert [n["status"] for n in data["notebooks"]] == ["passed", "failed"]
    suite = ET.parse(paths["junit"]).getroot()
    assert suite.get("tests") == "2" and suite.get("failures") == "1"
    assert "ZeroDivisionError" in suite.find("testcase/failure").get("message")
    text = paths["table"].read_text()
    assert (
        "PASSED" in text and "FAILED" in text and "cell-error" in text and "2 notebook(s)" in text
    )


def test_measured_figures_are_reported(write_nb, tmp_path: Path) -> None:
    """Do AIFKIT_<NAME>=<value> lines on stdout reach the outcome, report.json and the table?"""
    measuring = write_nb(
        "measuring",
        [
            code('print("warm-up")\nprint("AIFKIT_DEMO_THROUGHPUT=10.0")'),
            code("import sys\nprint('AIFKIT_ON_STDERR=1', file=sys.stderr)"),
            code('print(f"AIFKIT_DEMO_THROUGHPUT={6 * 7:.1f}")  # the last one wins'),
            code('print("not AIFKIT_INLINE=2, nor AIFKIT_lower=3")'),
        ],
    )
    (outcome,) = run([measuring], tmp_path)
    assert outcome.status == "passed", outcome
    assert outcome.figures == {"AIFKIT_DEMO_THROUGHPUT": "42.0"}
    paths = report.write([outcome], tmp_path / "report")
    assert json.loads(paths["json"].read_text())["notebooks"][0]["figures"] == outcome.figures
    assert "measuring.ipynb  AIFKIT_DEMO_THROUGHPUT=42.0" in paths["table"].read_text()


def test_cache_skips_unchanged_and_notices_changes(write_nb, tmp_path: Path) -> None:
    """Does --cached skip an unchanged notebook, ignore prose edits, and rerun after a code edit?"""
    path = write_nb("cached", [code("x = 1")])
    assert run([path], tmp_path, cached=True)[0].status == "passed"
    assert run([path], tmp_path, cached=True)[0].status == "cached"
    nb = nbformat.read(path, 4)
    nb.cells.append(nbformat.v4.new_markdown_cell("Some prose."))
    nbformat.write(nb, str(path))
    assert run([path], tmp_path, cached=True)[0].status == "cached"
    (path.parent / "data.csv").write_text("a,b\n1,2\n")
    assert run([path], tmp_path, cached=True)[0].status == "passed", "files beside it count"
    nb.cells[1].source = "x = 2"
    nbformat.write(nb, str(path))
    assert run([path], tmp_path, cached=True)[0].status == "passed"
    assert run([path], tmp_path, cached=True, tier="gpu")[0].status != "cached", "per tier"


def test_failed_notebook_is_never_cached(write_nb, tmp_path: Path) -> None:
    """Is a notebook that failed run again by --cached (no stale pass)?"""
    path = write_nb("flaky", [code("import os\nassert os.environ.get('AIFKIT_PASS') == '1'")])
    os.environ["AIFKIT_PASS"] = "1"
    try:
        assert run([path], tmp_path, cached=True)[0].status == "passed"
    finally:
        del os.environ["AIFKIT_PASS"]
    nb = nbformat.read(path, 4)
    nb.cells[1].source += "\n# edited"
    nbformat.write(nb, str(path))
    assert run([path], tmp_path, cached=True)[0].status == "failed"
    assert run([path], tmp_path, cached=True)[0].status == "failed"


def test_notebook_with_no_code_is_suspicious(write_nb, tmp_path: Path) -> None:
    """Does a notebook that executed no cells fail instead of passing in 0 s?"""
    path = write_nb("empty", [nbformat.v4.new_markdown_cell("only prose")], with_parameters=False)
    (outcome,) = run([path], tmp_path)
    assert (outcome.status, outcome.kind) == ("failed", "suspicious")
    assert "no code cells" in outcome.reason


def test_far_faster_than_recorded_is_suspicious(write_nb, tmp_path: Path) -> None:
    """Does a run far below the recorded minimum fail, and does --reset-timings accept it?"""
    path = write_nb("fast", [code("x = 1")])
    state = State.load(tmp_path / "state.json")
    state.record_pass(path, "cpu-tiny", 300.0, "old")
    state.save()
    (outcome,) = run([path], tmp_path)
    assert outcome.kind == "suspicious" and "recorded minimum" in outcome.reason
    (outcome,) = run([path], tmp_path, reset_timings=True)
    assert outcome.status == "passed"


def test_kernel_start_failure_is_retried_once(write_nb, tmp_path: Path, monkeypatch) -> None:
    """Is a kernel that fails to start retried exactly once, and reported as a start failure?"""
    spec = tmp_path / "jupyter" / "kernels" / "broken"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": ["python", "-c", "import sys; sys.exit(3)", "{connection_file}"],
                "display_name": "broken",
                "language": "python",
            }
        )
    )
    monkeypatch.setenv(
        "JUPYTER_PATH", f"{tmp_path / 'jupyter'}{os.pathsep}{os.environ['JUPYTER_PATH']}"
    )
    path = write_nb("nostart", [code("x = 1")], aifkit={"timeout": {"cpu-tiny": 20}})
    nb = nbformat.read(path, 4)
    nb.metadata.kernelspec = {"name": "broken", "display_name": "broken", "language": "python"}
    nbformat.write(nb, str(path))
    (outcome,) = run([path], tmp_path)
    assert (outcome.status, outcome.kind, outcome.attempts) == ("failed", "kernel-start", 2)


def test_parallel_scores_match_sequential(write_nb, tmp_path: Path) -> None:
    """Do 2 workers give the same verdicts as 1, in the order the notebooks were given?"""
    paths = [write_nb(f"nb{i}", [code(f"assert {i} % 3 != 0")]) for i in range(4)]
    sequential = [(o.notebook, o.status) for o in run(paths, tmp_path, jobs=1)]
    parallel = [(o.notebook, o.status) for o in run(paths, tmp_path, jobs=2, reset_timings=True)]
    assert sequential == parallel
    assert [s for _, s in parallel] == ["failed", "passed", "passed", "failed"]


def test_cli_exit_code_and_parameters(write_nb, tmp_path: Path, monkeypatch) -> None:
    """Does the CLI pass -p parameters and TIER to the notebook and exit 0 only when all pass?"""
    path = write_nb("params", [code("assert TIER == 'cpu-tiny'\nassert STEPS == 3")])
    args = ["validate", str(path), "--tier", "cpu-tiny", "--report", str(tmp_path / "r")]
    monkeypatch.chdir(tmp_path)
    ok = CliRunner().invoke(main, [*args, "-p", "STEPS=3"])
    assert ok.exit_code == 0, ok.output
    bad = CliRunner().invoke(main, [*args, "-p", "STEPS=4"])
    assert bad.exit_code == 1 and "AssertionError" in bad.output


def test_hard_limit_is_twice_the_catalog_budget(tmp_path: Path) -> None:
    """Is an assignment stopped at twice its catalog budget, and metadata able to override it?"""
    from aifkit.notebooks.reading import read
    from aifkit.notebooks.validate import timeout_for

    (tmp_path / "catalog.yml").write_text(
        "schema_version: 1\ncourse_id: demo\ntracks:\n  - id: A\n    title: A\n    assignments:\n"
        "      - {id: a01-x, title: X, minutes: 5, objectives: [x], budget_s: {cpu-tiny: 30}}\n"
    )
    folder = tmp_path / "a01-x"
    folder.mkdir()
    path = folder / "a01-x.ipynb"
    nbformat.write(nbformat.v4.new_notebook(), str(path))
    assert timeout_for(path, read(path), "cpu-tiny") == 60.0
    assert timeout_for(path, read(path), "gpu") == 1200.0
    nb = read(path)
    nb.metadata["aifkit"] = {"timeout": {"cpu-tiny": 45}}
    assert timeout_for(path, nb, "cpu-tiny") == 45.0


def test_parallel_kernels_share_the_cores() -> None:
    """With N parallel notebooks, does each kernel get its share of threads (unless set)?"""
    import os

    from aifkit.notebooks.validate import kernel_environment

    cpus = len(os.sched_getaffinity(0))
    assert "AIFKIT_THREADS" not in kernel_environment(1, {})
    assert kernel_environment(2, {})["AIFKIT_THREADS"] == str(max(1, cpus // 2))
    assert kernel_environment(64, {})["AIFKIT_THREADS"] == "1"
    assert kernel_environment(2, {"AIFKIT_THREADS": "7"})["AIFKIT_THREADS"] == "7"


@pytest.mark.parametrize(
    ("tier", "status", "message"),
    [
        ("gpu", 1, "tier gpu needs 1 CUDA GPU(s)"),
        ("multi-gpu", 1, "tier multi-gpu needs 2 CUDA GPU(s)"),
        ("tpu", 2, "tier must be gpu or multi-gpu"),
    ],
)
def test_gpu_validation_refuses_to_run_gpu_sizes_on_the_cpu(
    tier: str, status: int, message: str
) -> None:
    """Does scripts/gpu-validate.sh stop, with the fix, where no CUDA GPU would run the tier?"""
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a GPU is here: the script would validate for real")
    script = Path(__file__).resolve().parents[1] / "scripts" / "gpu-validate.sh"
    done = subprocess.run(
        [str(script), tier],
        env={**os.environ, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == status, done
    assert message in done.stderr, done.stderr


def _reply_wait(channel_class: type) -> float:
    """Seconds until a channel's pending get_msg sees a reply that arrived while the channel
    was sending (the widget cell's comm_msg racing the kernel's execute_reply)."""
    import asyncio
    import time

    import zmq
    import zmq.asyncio
    from jupyter_client.session import Session

    async def race() -> float:
        session = Session(key=b"secret")
        kernel = zmq.Context.instance().socket(zmq.ROUTER)
        port = kernel.bind_to_random_port("tcp://127.0.0.1")
        runner = zmq.asyncio.Context.instance().socket(zmq.DEALER)
        runner.connect(f"tcp://127.0.0.1:{port}")
        channel = channel_class(runner, session)
        try:
            channel.send(session.msg("execute_request", {"code": "display(out)"}))
            ident, *_ = kernel.recv_multipart()
            pending = asyncio.ensure_future(channel.get_msg(timeout=3))
            await asyncio.sleep(0.1)  # get_msg is polling the socket now
            session.send(kernel, "execute_reply", {"status": "ok"}, ident=[ident])
            time.sleep(0.2)  # the reply is in the runner's socket before the loop runs again
            channel.send(session.msg("comm_msg", {"comm_id": "out"}))  # the Output widget
            start = time.perf_counter()
            reply = await pending
            assert reply["msg_type"] == "execute_reply"
            return time.perf_counter() - start
        finally:
            runner.close(linger=0)
            kernel.close(linger=0)

    return asyncio.run(race())


def test_a_reply_arriving_while_the_runner_sends_is_not_stranded() -> None:
    """Does the runner's shell channel deliver a reply that landed while it sent a message?

    jupyter_client's Session.send writes through a blocking shadow of the asyncio socket, which
    can consume the socket's wake-up: the plain channel then sees the reply only when its poll
    times out (forever without a timeout: the a06 hang). If the plain channel stops being late,
    jupyter_client has fixed this and RearmedChannel can go.
    """
    from jupyter_client.channels import AsyncZMQSocketChannel

    from aifkit.notebooks.kernel import RearmedChannel, ValidationKernelManager

    assert _reply_wait(RearmedChannel) < 1.0
    assert _reply_wait(AsyncZMQSocketChannel) > 2.5, "upstream fixed? see the docstring"
    client = ValidationKernelManager(kernel_name="aifkit").client()
    assert client.shell_channel_class is RearmedChannel


def test_a_timed_out_notebook_is_saved_as_far_as_it_ran(write_nb, tmp_path: Path) -> None:
    """With the notebook written once at the end, does a timeout still leave the executed
    notebook with the outputs of the cells that ran, and name the right cell?"""
    path = write_nb(
        "slow",
        [code("print('before the loop')"), code("import time\nwhile True:\n    time.sleep(0.1)")],
        aifkit={"timeout": {"cpu-tiny": 12}},
    )
    (outcome,) = run([path], tmp_path)
    assert (outcome.kind, outcome.cell) == ("timeout", 2), outcome
    assert re.search(r'ipykernel_\d+/\d+\.py", line 3', outcome.traceback), "the sleeping line"
    saved = nbformat.read(Path(outcome.output), 4)
    assert "before the loop" in json.dumps([c.get("outputs") for c in saved.cells])
