"""PostgreSQL as nbgrader's gradebook: a real server from Debian's packages, on 127.0.0.1 only.

Nothing is mocked: scripts/postgres-up.sh starts the server (see tests/postgres_fixture.py) and
nbgrader's own Gradebook API talks to it through psycopg2.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from postgres_fixture import PostgresServer

pytestmark = pytest.mark.slow

ASSIGNMENT, NOTEBOOK, GRADE_CELL, SOLUTION_CELL = "ps1", "problem1", "test1", "answer1"


def _listening(port: int) -> set[str]:
    """Local addresses with a TCP socket listening on ``port``: from ``ss -ltn``, else /proc."""
    if shutil.which("ss"):
        out = subprocess.run(
            ["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True, timeout=30
        )
        assert out.returncode == 0, out.stderr
        # columns: State Recv-Q Send-Q Local-Address:Port Peer-Address:Port
        return {line.split()[3].rsplit(":", 1)[0] for line in out.stdout.splitlines() if line}
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                raw = bytes.fromhex(address)
                # /proc stores each 32-bit word in host (little-endian) order
                words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
                family = socket.AF_INET if len(raw) == 4 else socket.AF_INET6
                found.add(socket.inet_ntop(family, words))
    return found


def _refused(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(2)
        try:
            sock.connect((host, port))
        except OSError:  # refused, or no such address (IPv6 off): either way, no server there
            return True
    return False


def test_listens_on_127_0_0_1_only(postgres_server: PostgresServer) -> None:
    """Does the server answer on 127.0.0.1 and nowhere else, not even 127.0.0.2 or ::1?"""
    with postgres_server.connect() as conn, conn.cursor() as cursor:
        cursor.execute("SELECT current_setting('listen_addresses'), host(inet_server_addr())")
        assert cursor.fetchone() == ("127.0.0.1", "127.0.0.1")
    conn.close()
    assert _listening(postgres_server.port) == {"127.0.0.1"}
    assert _refused("127.0.0.2", postgres_server.port)
    assert _refused("::1", postgres_server.port)


@pytest.mark.parametrize(
    ("user", "password"),
    [("aifkit", "not-the-password"), ("postgres", "aifkit-test")],
    ids=["wrong-password", "superuser-over-tcp"],
)
def test_wrong_password_is_refused(
    postgres_server: PostgresServer, user: str, password: str
) -> None:
    """Is a TCP login with a wrong password refused (scram-sha-256), the superuser's included?"""
    import psycopg2

    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        postgres_server.connect(user=user, password=password)


def _course(url: str) -> None:
    """One assignment with one notebook holding a grade cell (5 points) and a solution cell."""
    from nbgrader.api import Gradebook

    with Gradebook(url) as gb:
        gb.update_or_create_assignment(ASSIGNMENT)
        gb.update_or_create_notebook(NOTEBOOK, ASSIGNMENT)
        gb.update_or_create_grade_cell(
            GRADE_CELL, NOTEBOOK, ASSIGNMENT, max_score=5, cell_type="code"
        )
        gb.update_or_create_solution_cell(SOLUTION_CELL, NOTEBOOK, ASSIGNMENT)


def test_nbgrader_gradebook_on_postgres(
    postgres_server: PostgresServer, postgres_gradebook_url: str
) -> None:
    """Does nbgrader's Gradebook create its schema, a submission and a score in PostgreSQL?"""
    from nbgrader.api import Gradebook

    _course(postgres_gradebook_url)
    with Gradebook(postgres_gradebook_url) as gb:
        assert gb.engine.dialect.name == "postgresql"
        gb.add_student("alice", first_name="Alice", last_name="Lovelace")
        gb.update_or_create_submission(ASSIGNMENT, "alice")
        grade = gb.find_grade(GRADE_CELL, NOTEBOOK, ASSIGNMENT, "alice")
        grade.auto_score = 4.0
        grade.needs_manual_grade = False
        gb.db.commit()
    # read back through a new connection: the score is in the server, not in a session cache
    with Gradebook(postgres_gradebook_url) as gb:
        submission = gb.find_submission(ASSIGNMENT, "alice")
        assert (submission.score, submission.max_score) == (4.0, 5.0)
        assert gb.find_grade(GRADE_CELL, NOTEBOOK, ASSIGNMENT, "alice").auto_score == 4.0
    database = postgres_gradebook_url.rsplit("/", 1)[1]
    with postgres_server.connect(database) as conn, conn.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM grade WHERE auto_score = 4.0")
        assert cursor.fetchone() == (1,)
    conn.close()


# One writer: logs in, says "ready", waits for the go file, then files its student's grade.
WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from nbgrader.api import Gradebook

    url, student, score, go, assignment, notebook, cell = sys.argv[1:]
    with Gradebook(url) as gb:
        print("ready", flush=True)
        deadline = time.monotonic() + 60
        while not Path(go).exists():
            assert time.monotonic() < deadline, "no go signal"
            time.sleep(0.01)
        gb.add_student(student)
        gb.update_or_create_submission(assignment, student)
        grade = gb.find_grade(cell, notebook, assignment, student)
        grade.auto_score = float(score)
        gb.db.commit()
    print("done", flush=True)
    """
)


def test_concurrent_writers_keep_both_grades(postgres_gradebook_url: str, tmp_path: Path) -> None:
    """Do two processes filing different students' grades at once both end up in the table?"""
    from nbgrader.api import Gradebook

    _course(postgres_gradebook_url)
    go = tmp_path / "go"
    scores = {"bob": 3.0, "carol": 5.0}
    writers = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                WRITER,
                postgres_gradebook_url,
                student,
                str(score),
                str(go),
                ASSIGNMENT,
                NOTEBOOK,
                GRADE_CELL,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for student, score in scores.items()
    ]
    try:
        for writer in writers:  # both are logged in before either writes
            assert writer.stdout is not None
            assert writer.stdout.readline().strip() == "ready", writer.communicate(timeout=30)
        go.touch()
        for writer in writers:
            out, err = writer.communicate(timeout=120)
            assert writer.returncode == 0 and out.strip() == "done", err
    finally:
        for writer in writers:
            if writer.poll() is None:
                writer.kill()
                writer.wait(timeout=30)
    with Gradebook(postgres_gradebook_url) as gb:
        filed = {
            student: gb.find_grade(GRADE_CELL, NOTEBOOK, ASSIGNMENT, student).auto_score
            for student in scores
        }
        assert filed == scores
        assert {s.id for s in gb.students} == set(scores)
