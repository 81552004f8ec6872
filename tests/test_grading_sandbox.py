"""The sandboxed kernel and the proof secret, without nbgrader and without static inspection.

These show each defence on its own: the proof alone zeroes tests that an in-kernel trick made
look passed, the sandbox alone blocks files, network and runaway processes.
"""

from __future__ import annotations

import math
import os
import shutil
import socket
import time
from pathlib import Path

import nbformat
import pytest

from aifkit import verifier
from aifkit.grading import proof, sandbox
from aifkit.grading.execute import run_notebook
from aifkit.grading.scoring import score_test

pytestmark = [
    pytest.mark.sandbox,
    pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap"),
]
LIMITS = sandbox.Limits(cell_timeout_s=6, notebook_timeout_s=60, memory_mb=2048, processes=64)


def _run(
    *sources: str, tests: set[int] | None = None, limits: sandbox.Limits = LIMITS, tmp: Path
) -> tuple[nbformat.NotebookNode, object]:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    workdir = tmp / "work"
    workdir.mkdir(exist_ok=True)
    execution = run_notebook(
        nb, sandbox=sandbox.Bubblewrap(slot=7), limits=limits, workdir=workdir, tests=tests or set()
    )
    return nb, execution


def _score(nb: nbformat.NotebookNode, execution: object, index: int, points: float = 1) -> float:
    run = execution.cells.get(index)  # type: ignore[attr-defined]
    return score_test(nb.cells[index], run, notebook="t", grade_id="t", max_score=points).score


TEST = "assert square(3) == 9"


@pytest.mark.parametrize(
    "trick",
    [
        "get_ipython().showtraceback = lambda *a, **k: None",
        "get_ipython().input_transformers_cleanup.append(lambda lines: [])",
        "get_ipython().input_transformers_post.append(lambda lines: ['pass\\n'])",
        "get_ipython().set_custom_exc((BaseException,), lambda *a, **k: None)",
        "import builtins; builtins.print = lambda *a, **k: None",
        "get_ipython().events.register('pre_run_cell', lambda info: print('aifkit-proof-' + '0' * 32))",
    ],
)
def test_the_proof_alone_zeroes_in_kernel_tricks(trick: str, tmp_path: Path) -> None:
    """A wrong answer behind an in-kernel trick scores zero even without inspection."""
    nb, execution = _run(trick, "def square(x):\n    return 0", TEST, tests={2}, tmp=tmp_path)
    assert _score(nb, execution, 2) == 0


def test_a_passing_test_is_proven_and_no_proof_reaches_the_notebook(tmp_path: Path) -> None:
    nb, execution = _run(
        "def square(x):\n    return x * x", TEST + "\nprint('ok')", tests={1}, tmp=tmp_path
    )
    assert _score(nb, execution, 1) == 1
    assert "aifkit" not in str(nb.cells[1].outputs)
    assert "ok" in str(nb.cells[1].outputs)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("0.5", 0.5), ("2", 2.0), ("-1", 0.0), ("float('nan')", 0.0), ("'x'", 0.0), ("1000", 0.0)],
)
def test_partial_credit_fails_closed(value: str, expected: float, tmp_path: Path) -> None:
    """Negative, NaN, non-numeric or too large partial credit scores zero, never the maximum."""
    nb, execution = _run(f"x = 1\n{value}", tests={0}, tmp=tmp_path)
    assert _score(nb, execution, 0, points=2) == expected


def test_sys_exit_and_os_exit_score_zero(tmp_path: Path) -> None:
    nb, execution = _run(
        "import sys\nsys.exit(0)", "import os\nos._exit(0)", "1", tests={0, 2}, tmp=tmp_path
    )
    assert _score(nb, execution, 0) == 0
    assert execution.status == "kernel-died"  # type: ignore[attr-defined]
    assert execution.cells[2].status == "not-run"  # type: ignore[attr-defined]


def test_no_network_no_host_files_unprivileged(tmp_path: Path) -> None:
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    secret = tmp_path / "secret.txt"
    secret.write_text("s3cret")
    secret.chmod(0o644)
    nb, _ = _run(
        "import os, socket\n"
        f"try:\n    socket.create_connection(('127.0.0.1', {port}), timeout=2)\n    print('NET')\n"
        "except OSError:\n    print('no network')\n"
        f"print('visible' if os.path.exists({str(secret)!r}) else 'hidden')\n"
        "print('uid', os.getuid())",
        tmp=tmp_path,
    )
    server.close()
    text = str(nb.cells[0].outputs)
    assert "no network" in text and "hidden" in text
    if os.geteuid() == 0:
        assert f"uid {sandbox.SANDBOX_UID_BASE + 7}" in text


def test_output_flood_is_cut_and_interrupted(tmp_path: Path) -> None:
    limits = sandbox.Limits(cell_timeout_s=20, notebook_timeout_s=60, output_bytes=200_000)
    started = time.monotonic()
    nb, execution = _run(
        "while True:\n    print('x' * 1000)", "print('after')", limits=limits, tmp=tmp_path
    )
    assert execution.cells[0].status == "output-limit"  # type: ignore[attr-defined]
    assert len(str(nb.cells[0].outputs)) < 250_000
    assert time.monotonic() - started < 15


FORGE = """\
kernel = get_ipython().kernel
session, iopub, parent = kernel.session, kernel.iopub_socket, kernel.get_parent()
for frames in ([b'x', b'<IDS|MSG>', b'forged', b'{}', b'{}', b'{}', b'{}'], [b'no delimiter'],
               [b'<IDS|MSG>'], [b'<IDS|MSG>', b'', b'{}', b'{}', b'{}', b'{}']):
    iopub.send_multipart(frames)
replayed = session.serialize(session.msg('stream', {'name': 'stdout', 'text': 'R'}, parent=parent))
iopub.send_multipart(replayed)
iopub.send_multipart(replayed)
for kind, content in (('stream', {'name': 'stdout', 'text': 5}), ('display_data', {'data': 'x'}),
                      ('error', {}), ('execute_result', {'data': {}})):
    session.send(iopub, kind, content, parent=parent)
parts = [session.pack(session.msg_header('stream')), session.pack(parent['header']), b'{}', b'[1]']
iopub.send_multipart([b'<IDS|MSG>', session.sign(parts), *parts])
print('after')
"""


def test_malformed_messages_from_the_kernel_are_left_out(tmp_path: Path) -> None:
    """Learner code reaches the kernel's sockets: whatever it sends there that does not decode
    (forged, replayed, truncated) or decodes to nonsense is left out, never a grader error."""
    nb, execution = _run(FORGE, "def square(x):\n    return x * x", TEST, tests={2}, tmp=tmp_path)
    first = execution.cells[0]  # type: ignore[attr-defined]
    assert first.status == "ok", first.detail
    assert "malformed message(s) from the kernel were left out" in first.detail
    assert "after" in str(nb.cells[0].outputs)
    assert _score(nb, execution, 2) == 1
    nbformat.validate(nb)


TORCHRUN = """\
import socket, subprocess, sys
print('resolves to', socket.gethostbyname(socket.gethostname()))
open('w.py', 'w').write("import torch.distributed as d; d.init_process_group('gloo'); open(f'rank{d.get_rank()}', 'w').write(str(d.get_world_size())); d.destroy_process_group()")
port = socket.create_server(('127.0.0.1', 0)).getsockname()[1]
run = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--nnodes=1', '--nproc-per-node=2',
                      '--rdzv-backend=c10d', f'--rdzv-endpoint=127.0.0.1:{port}', 'w.py'],
                     capture_output=True, text=True, timeout=50)
print(run.returncode, sorted((name, open(name).read()) for name in ('rank0', 'rank1')))
"""


def test_the_sandbox_resolves_its_own_hostname_so_torchrun_starts(tmp_path: Path) -> None:
    """torchrun's c10d rendezvous advertises the agent's hostname: inside the sandbox it must
    resolve (to 127.0.0.1), or the rendezvous retries until the cell's time limit."""
    limits = sandbox.Limits(cell_timeout_s=60, notebook_timeout_s=90, processes=64)
    nb, execution = _run(TORCHRUN, limits=limits, tmp=tmp_path)
    text = str(nb.cells[0].outputs)
    assert execution.cells[0].status == "ok", (execution.cells[0].detail, text)  # type: ignore[attr-defined]
    assert "resolves to 127.0.0.1" in text
    assert "0 [('rank0', '2'), ('rank1', '2')]" in text, text


def test_timeout_then_the_next_cell_still_runs(tmp_path: Path) -> None:
    nb, execution = _run("import time\ntime.sleep(60)", "print('after')", tmp=tmp_path)
    assert execution.cells[0].status == "timeout"  # type: ignore[attr-defined]
    assert "after" in str(nb.cells[1].outputs)


@pytest.mark.skipif(os.geteuid() != 0, reason="process limits need a sandbox uid (root grader)")
def test_fork_bomb_and_daemons_are_contained(tmp_path: Path) -> None:
    nb, _execution = _run(
        "import subprocess\nsubprocess.Popen(['setsid', 'sleep', '331'], start_new_session=True)",
        "import os\nn = 0\nwhile n < 10000:\n    try:\n        if os.fork() == 0:\n            import time\n            time.sleep(300)\n        n += 1\n    except OSError:\n        break\nprint('forked', n)",
        tmp=tmp_path,
    )
    text = str(nb.cells[1].outputs)
    assert "forked" in text and int(text.split("forked ")[1].split("\\")[0].split("'")[0]) < 64
    time.sleep(0.5)
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                assert b"sleep\x00331" not in (proc / "cmdline").read_bytes()
                assert proc.stat().st_uid != sandbox.SANDBOX_UID_BASE + 7
            except FileNotFoundError:
                continue


def test_a_test_is_sent_as_one_signed_statement_with_its_value_in_the_sentinel() -> None:
    key = proof.new_key()
    text = proof.instrument("x = 2\nx + 1", "abc", key)
    marker, body = text.split("\n", 1)
    assert marker == f"{verifier.TEST_MARK}abc {verifier.mac(key, 'abc', body)}"
    assert body.splitlines() == [
        "if True:",
        "    x = 2",
        "    (lambda __aifkit_test_value__=x + 1: 'aifkit-end abc').__code__ and None",
    ]
    assert verifier.mac(proof.new_key(), "abc", body) != verifier.mac(key, "abc", body)


def test_only_proofs_made_with_the_key_count(tmp_path: Path) -> None:
    key = proof.new_key()
    lines = [
        f"t1 {verifier.proof(key, 't1')}",
        f"t2 {verifier.proof(key, 't2')} 1.5",
        f"t3 {verifier.proof(proof.new_key(), 't3')}",  # another key: forged
        f"t4 {verifier.proof(key, 't1')}",  # another test's proof
        "t5 aifkit-proof-0000",
        f"t6 {verifier.proof(key, 't6')} not-a-number",
    ]
    (tmp_path / "proofs").write_text("\n".join(lines) + "\n", encoding="utf-8")
    found = proof.read(tmp_path / "proofs", key)
    assert set(found) == {"t1", "t2", "t6"}
    assert found["t1"] is None and found["t2"] == 1.5 and math.isnan(found["t6"] or 0.0)


def test_apptainer_renders_an_isolated_command(tmp_path: Path) -> None:
    box = sandbox.Apptainer(image="/images/grader.sif")
    argv = box.wrap(
        ["python", "-m", "ipykernel"],
        workdir=tmp_path,
        runtime_dir=tmp_path / "rt",
        env={"HOME": "/home/learner"},
        limits=sandbox.Limits(memory_mb=1024),
    )
    assert argv[:2] == ["prlimit", f"--as={1024 * 2**20}"]
    for flag in ("--containall", "--cleanenv", "--no-home", "--net"):
        assert flag in argv
    assert argv[argv.index("--network") + 1] == "none"
    assert f"{tmp_path}:{sandbox.INSIDE_WORKDIR}" in argv
    assert argv[-4:] == ["/images/grader.sif", "python", "-m", "ipykernel"]


def test_no_sandbox_warns() -> None:
    with pytest.warns(UserWarning, match="WITHOUT a sandbox"):
        sandbox.make("none").check()
    with pytest.raises(sandbox.SandboxError, match="unknown sandbox"):
        sandbox.make("docker")


FILL_TMPFS = """
import errno, os
def shmem():
    for line in open('/proc/meminfo'):
        if line.startswith('Shmem:'):
            return int(line.split()[1]) * 1024
for folder in ('/tmp', '/dev/shm'):
    size = os.statvfs(folder).f_blocks * os.statvfs(folder).f_frsize
    before, written, chunk, error = shmem(), 0, b'x' * 2**24, None
    try:
        for n in range(2 * size // len(chunk) + 1):  # twice the size, 16 MiB files
            with open(f'{folder}/fill{n}', 'wb') as out:
                out.write(chunk)
            written += len(chunk)
    except OSError as e:
        error = errno.errorcode[e.errno]
    print(folder, size, written, shmem() - before, error)
"""


def test_every_tmpfs_is_sized_and_a_flood_stops_at_enospc(tmp_path: Path) -> None:
    """Does writing twice the size into /tmp and /dev/shm stop at ENOSPC, host memory bounded?"""
    limits = sandbox.Limits(cell_timeout_s=30, notebook_timeout_s=60, memory_mb=2048)
    sizes = limits.tmpfs_bytes()
    assert sum(sizes.values()) <= limits.memory_mb * 2**20 // 4
    nb, _ = _run(FILL_TMPFS, limits=limits, tmp=tmp_path)
    lines = "".join(o.get("text", "") for o in nb.cells[0].outputs).splitlines()
    assert len(lines) == 2, nb.cells[0].outputs
    for line in lines:
        folder, size, written, grown, error = line.split()
        assert int(size) == sizes[folder], line  # bubblewrap's --size reached the mount
        assert error == "ENOSPC" and int(written) <= int(size), line
        # the host's shared memory grew by no more than the size (other processes add noise)
        assert int(grown) <= int(size) + 2**24, line


def test_matplotlib_starts_from_the_graders_font_list_in_a_folder_of_its_own(
    tmp_path: Path,
) -> None:
    nb, _ = _run(
        "import os\n"
        "folder = os.environ['MPLCONFIGDIR']\n"
        "print('lists', sorted(os.listdir(folder)))\n"
        "from matplotlib import font_manager\n"
        "print('writable', os.access(folder, os.W_OK), 'fonts', len(font_manager.fontManager.ttflist))",
        tmp=tmp_path,
    )
    text = str(nb.cells[0].outputs)
    assert "lists ['fontlist-v" in text and "writable True" in text, text
    assert "fonts 0" not in text, text
