"""Learners isolated on the local hub: each server runs as its user's own Unix account.

One real hub started as root (isolation: unix-users). learner1 and learner2 fetch and submit
through nbgrader's server extension; then learner1 tries, from a kernel and from a JupyterLab
terminal (its websocket), to read and write learner2's home and submission, the course source,
the gradebook, the hub's secrets, database and log, and the exchange; the instructor's kernel
tries the same. What happened is compared with what must happen and written as a table to
build/test-artifacts/isolation-matrix.md. The instructor then collects and grades through the
formgrader. Without a hub: a hub started by another user is refused (isolation: unix-users) or
warns (isolation: none), and `aifkit hub check` flags servers that share one account.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import shlex
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from builders import REPO
from grading_course import ASSIGNMENT
from hub_client import FETCH, HubError, HubSession
from hub_fixture import (
    COURSE_ID,
    SPAWN_TIMEOUT_S,
    HubFactory,
    LocalHub,
    open_python_to_hub_accounts,
    record,
)

from aifkit.hub import apply, check, permissions, schema

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="the accounts of an isolated hub need root"),
    pytest.mark.skipif(
        shutil.which("npm") is None and shutil.which("configurable-http-proxy") is None,
        reason="needs npm (apt-get install npm) to install configurable-http-proxy",
    ),
]
MATRIX = REPO / "build" / "test-artifacts" / "isolation-matrix.md"
FORMGRADER_API = f"services/{COURSE_ID}/formgrader/api"
NOBODY = 65534


@dataclass(frozen=True)
class Target:
    """Something a learner's code may try to reach; ``kind`` is "dir" or "file"."""

    label: str
    path: Path
    kind: str


# what each reaches: (read, write); "-" for a direction not asked
LEARNER_EXPECTED = {
    "own home": (True, True),
    "another learner's home": (False, False),
    "a file in another learner's home": (False, False),
    "another learner's submission": (False, False),
    "a notebook of another learner's submission": (False, False),
    "the exchange's inbound (listing)": (False, True),
    "the released assignment (outbound)": (True, False),
    "the exchange root (rename a course away)": (True, False),
    "the course folder": (False, False),
    "the source notebook (solutions, hidden tests)": (False, False),
    "the gradebook": (False, False),
    "the hub's secrets folder": (False, False),
    "the shared password": (False, False),
    "the cookie secret": (False, False),
    "the hub's database": (False, False),
    "the hub's log": (False, False),
}
INSTRUCTOR_EXPECTED = {
    **LEARNER_EXPECTED,
    "own home": (True, True),
    "another learner's home": (False, False),
    "a file in another learner's home": (False, False),
    "another learner's submission": (True, False),  # the instructors' group, read only
    "a notebook of another learner's submission": (True, False),
    "the course folder": (True, True),
    "the source notebook (solutions, hidden tests)": (True, False),
    "the gradebook": (True, False),  # written by the formgrader (the hub's user)
}

# run in a learner's kernel: argv-free, the targets come as JSON; prints {label: [read, write]}
KERNEL_PROBE = """
import json, os
def can_read(path, kind):
    try:
        if kind == "dir":
            os.listdir(path)
        else:
            open(path, "rb").close()
        return True
    except OSError:
        return False
def can_write(path, kind, label):
    try:
        if label.startswith("the exchange root"):
            os.rename(os.path.join(path, COURSE), os.path.join(path, COURSE + "-moved"))
            os.rename(os.path.join(path, COURSE + "-moved"), os.path.join(path, COURSE))
        elif kind == "dir":
            probe = os.path.join(path, ".aifkit-isolation-probe")
            open(probe, "w").close()
            os.unlink(probe)
        else:
            open(path, "ab").close()
        return True
    except OSError:
        return False
print(json.dumps({l: [can_read(p, k), can_write(p, k, l)] for l, (p, k) in TARGETS.items()}))
"""

# the same in a terminal, typed as one line: prints "label|read|write" per target (1: it worked)
TERMINAL_PROBE = (
    'probe() { if [ "$3" = dir ]; then ls "$2" >/dev/null 2>&1 && r=1 || r=0; '
    'else head -c1 "$2" >/dev/null 2>&1 && r=1 || r=0; fi; '
    'case "$1" in "the exchange root"*) mv "$2/$COURSE" "$2/$COURSE-moved" 2>/dev/null '
    '&& mv "$2/$COURSE-moved" "$2/$COURSE" && w=1 || w=0 ;; '
    '*) if [ "$3" = dir ]; then touch "$2/.aifkit-isolation-probe" 2>/dev/null '
    '&& rm -f "$2/.aifkit-isolation-probe" && w=1 || w=0; '
    'else (: >> "$2") 2>/dev/null && w=1 || w=0; fi ;; esac; '
    'printf "%s|%s|%s\\n" "$1" "$r" "$w"; }'
)


@dataclass
class Isolated:
    """The hub, its users' sessions, and where learner2's submission is."""

    hub: LocalHub
    learner1: HubSession
    learner2: HubSession
    instructor: HubSession
    submission: Path


def _assignment_action(user: HubSession, action: str) -> None:
    reply = user.server_api(
        "POST", f"assignments/{action}", data={"course_id": COURSE_ID, "assignment_id": ASSIGNMENT}
    )
    assert reply.status_code == 200 and reply.json()["success"], reply.text[:1000]


@pytest.fixture(scope="module")
def isolated(make_module_hub: HubFactory, tmp_path_factory: pytest.TempPathFactory) -> Isolated:
    """One isolated hub; learner2 then learner1 fetched and submitted."""
    hub = make_module_hub(tmp_path_factory.mktemp("isolation"))
    users = {name: hub.session(name) for name in ("learner1", "learner2", "instructor")}
    for user in users.values():
        try:
            record("spawn", user.start_server(timeout=SPAWN_TIMEOUT_S))
        except HubError as error:
            raise HubError(f"{error}\nthe hub's log:\n{hub.log[-4000:]}") from None
    inbound = hub.exchange / COURSE_ID / "inbound"
    for name in ("learner2", "learner1"):
        _assignment_action(users[name], "fetch")
        _assignment_action(users[name], "submit")
    (submission,) = [p for p in inbound.iterdir() if p.name.startswith("learner2+")]
    users["learner2"].run_cell("open('private.txt', 'w').write('learner2 only')")  # cwd: the home
    return Isolated(hub, users["learner1"], users["learner2"], users["instructor"], submission)


def _targets(iso: Isolated, own: str) -> list[Target]:
    state, course, exchange = iso.hub.state, iso.hub.course_root, iso.hub.exchange
    notebook = next(iso.submission.rglob("*.ipynb"))
    return [
        Target("own home", state / "home" / own, "dir"),
        Target("another learner's home", state / "home" / "learner2", "dir"),
        Target("a file in another learner's home", state / "home/learner2/private.txt", "file"),
        Target("another learner's submission", iso.submission, "dir"),
        Target("a notebook of another learner's submission", notebook, "file"),
        Target("the exchange's inbound (listing)", exchange / COURSE_ID / "inbound", "dir"),
        Target("the released assignment (outbound)", exchange / COURSE_ID / "outbound", "dir"),
        Target("the exchange root (rename a course away)", exchange, "dir"),
        Target("the course folder", course, "dir"),
        Target(
            "the source notebook (solutions, hidden tests)",
            course / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb",
            "file",
        ),
        Target("the gradebook", course / "gradebook.db", "file"),
        Target("the hub's secrets folder", state / "secrets", "dir"),
        Target("the shared password", iso.hub.password_file, "file"),
        Target("the cookie secret", state / "secrets" / "cookie_secret", "file"),
        Target("the hub's database", state / "jupyterhub.sqlite", "file"),
        Target("the hub's log", state / "jupyterhub.log", "file"),
    ]


def _from_kernel(user: HubSession, targets: list[Target]) -> dict[str, tuple[bool, bool]]:
    table = {t.label: (str(t.path), t.kind) for t in targets}
    code = f"TARGETS = {table!r}\nCOURSE = {COURSE_ID!r}\n{KERNEL_PROBE}"
    output = user.run_cell(code, timeout=60)
    return {label: (read, write) for label, (read, write) in json.loads(output).items()}


def _from_terminal(user: HubSession, targets: list[Target]) -> dict[str, tuple[bool, bool]]:
    calls = "; ".join(
        f"probe {shlex.quote(t.label)} {shlex.quote(str(t.path))} {t.kind}" for t in targets
    )
    code, output = user.run_in_terminal(f"COURSE={COURSE_ID}; {TERMINAL_PROBE}; {calls}")
    assert code == 0, output
    found = {}
    for line in output.splitlines():
        label, read, write = line.split("|")
        found[label] = (read == "1", write == "1")
    return found


def _write_matrix(rows: dict[str, dict[str, tuple[bool, bool]]]) -> None:
    """build/test-artifacts/isolation-matrix.md: who can read/write what, as tested."""
    columns = list(rows)
    labels = list(LEARNER_EXPECTED)

    def cell(value: tuple[bool, bool]) -> str:
        return f"{'read' if value[0] else '-'} / {'write' if value[1] else '-'}"

    lines = [
        "| what (as tested on the real hub) | " + " | ".join(columns) + " |",
        "|---|" + "---|" * len(columns),
        *(
            f"| {label} | " + " | ".join(cell(rows[c][label]) for c in columns) + " |"
            for label in labels
        ),
    ]
    MATRIX.parent.mkdir(parents=True, exist_ok=True)
    MATRIX.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_each_server_runs_as_its_own_account_in_a_private_home(isolated: Isolated) -> None:
    code = (
        "import os, pwd; print(pwd.getpwuid(os.getuid()).pw_name, os.getcwd(), "
        "os.environ['HOME'], oct(os.stat('.').st_mode & 0o7777), oct(os.umask(0o77)))"
    )
    for user in (isolated.learner1, isolated.instructor):
        home = isolated.hub.state / "home" / user.username
        expected = f"jupyter-{user.username} {home} {home} 0o700 0o77"
        assert user.run_cell(code).strip() == expected
        assert pwd.getpwuid(home.stat().st_uid).pw_name == f"jupyter-{user.username}"
    exit_code, output = isolated.learner1.run_in_terminal("id -un; pwd")
    assert (exit_code, output.split()) == (
        0,
        ["jupyter-learner1", str(isolated.hub.state / "home" / "learner1")],
    )


def test_what_each_user_can_read_and_write(isolated: Isolated) -> None:
    learner_targets = _targets(isolated, "learner1")
    rows = {
        "learner1, kernel": _from_kernel(isolated.learner1, learner_targets),
        "learner1, terminal": _from_terminal(isolated.learner1, learner_targets),
        "instructor, kernel": _from_kernel(isolated.instructor, _targets(isolated, "instructor")),
    }
    _write_matrix(rows)
    assert rows["learner1, kernel"] == LEARNER_EXPECTED, MATRIX.read_text()
    assert rows["learner1, terminal"] == LEARNER_EXPECTED, MATRIX.read_text()
    assert rows["instructor, kernel"] == INSTRUCTOR_EXPECTED, MATRIX.read_text()
    assert (isolated.hub.exchange / COURSE_ID).is_dir(), "the course's exchange folder moved"


def test_modes_and_owners_on_disk(isolated: Isolated) -> None:
    hub = isolated.hub

    def mode(path: Path) -> int:
        return stat.S_IMODE(path.lstat().st_mode)

    assert mode(hub.state) == 0o711 and mode(hub.state / "home") == 0o711
    assert mode(hub.state / "secrets") == 0o700
    assert mode(hub.state / "jupyterhub.sqlite") == 0o600
    assert mode(hub.state / "jupyterhub.log") == 0o600
    assert mode(hub.exchange) == 0o1777
    inbound = hub.exchange / COURSE_ID / "inbound"
    assert mode(inbound) == 0o3733
    group = f"jupyter-{COURSE_ID}-instructors"
    assert inbound.stat().st_gid == hub.course_root.stat().st_gid
    assert mode(hub.course_root) == 0o2770
    assert grp.getgrgid(hub.course_root.stat().st_gid).gr_name == group
    assert grp.getgrnam(group).gr_mem == ["jupyter-instructor"]
    for submission in inbound.iterdir():
        learner = submission.name.split("+")[0]
        assert pwd.getpwuid(submission.stat().st_uid).pw_name == f"jupyter-{learner}"
        assert mode(submission) == 0o750 and submission.stat().st_gid == inbound.stat().st_gid
        assert {mode(p) for p in submission.rglob("*") if p.is_file()} == {0o640}


def test_the_instructor_collects_and_grades_in_the_formgrader(isolated: Isolated) -> None:
    instructor = isolated.instructor
    chain = instructor.follow(f"services/{COURSE_ID}/formgrader")
    assert chain[-1].status_code == 200, [(r.status_code, r.url) for r in chain]
    headers = {**FETCH, "X-XSRFToken": instructor.xsrf(f"{FORMGRADER_API}/")}

    def post(path: str) -> dict[str, object]:
        reply = instructor.session.post(
            instructor.url(f"{FORMGRADER_API}/{path}"), headers=headers, timeout=300
        )
        assert reply.status_code == 200, reply.text[:1000]
        result: dict[str, object] = reply.json()
        assert result.get("success"), result
        return result

    # learner1 files a later "submission" under learner2's name: collect must not take it
    inbound = isolated.hub.exchange / COURSE_ID / "inbound"
    forged = inbound / f"learner2+{ASSIGNMENT}+2099-01-01 00:00:00.000000 UTC+forged"
    code, output = isolated.learner1.run_in_terminal(
        f"cp -r ~/{ASSIGNMENT} {shlex.quote(str(forged))} && echo forged > "
        f"{shlex.quote(str(forged / 'timestamp.txt'))}"
    )
    assert code == 0, output
    genuine = (isolated.submission / "timestamp.txt").read_text()

    post(f"assignment/{ASSIGNMENT}/collect")
    submitted = isolated.hub.course_root / "submitted"
    assert sorted(p.name for p in submitted.iterdir()) == ["learner1", "learner2"]
    assert (submitted / "learner2" / ASSIGNMENT / "timestamp.txt").read_text() == genuine
    assert not forged.exists() and (inbound / f".forged-{forged.name}").is_dir()
    post(f"submission/{ASSIGNMENT}/learner1/autograde")
    assert (isolated.hub.course_root / "autograded" / "learner1" / ASSIGNMENT).is_dir()


# -- without a hub: who may start one, and the check ----------------------------------------


def _config(tmp_path: Path, **settings: object) -> Path:
    data = {"profile": "local", "state_dir": str(tmp_path / "state"), "instructors": ["i"],
            "learners": ["a", "b"], **settings}  # fmt: skip
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    path.chmod(0o644)
    tmp_path.chmod(0o755)
    return path


def _as_nobody(code: str, config: Path) -> subprocess.CompletedProcess[str]:
    def nobody() -> None:
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)

    return subprocess.run(
        [sys.executable, "-c", code, str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=nobody,
        env={k: v for k, v in os.environ.items() if k in ("PATH", "PYTHONPATH")},
        cwd="/",
    )


REQUIRE = (
    "import sys\nfrom aifkit.hub import isolation, schema\n"
    "config = schema.load(sys.argv[1])\nisolation.require(config)\n"
    "isolation.prepare(config)\n"
)


def test_a_hub_started_by_another_user_is_refused_or_warns(
    make_module_hub: HubFactory,
) -> None:
    folder = make_module_hub.root / "nobody"  # reachable by nobody (0711 parents)
    folder.mkdir()
    open_python_to_hub_accounts()
    refused = _as_nobody(REQUIRE, _config(folder))
    assert refused.returncode != 0
    assert "isolation: unix-users" in refused.stderr and "needs a hub started as root" in (
        refused.stderr
    ), refused.stderr
    assert not (folder / "state").exists(), "something was made before the refusal"
    warned = _as_nobody(REQUIRE, _config(folder, isolation="none"))
    assert warned.returncode == 0, warned.stderr
    assert "WARNING: isolation: none: every server runs as the Unix user nobody" in warned.stdout


def _findings(tmp_path: Path, **settings: object) -> list[check.HubFinding]:
    config = schema.load(_config(tmp_path, **settings))
    c = check.Config()
    apply.apply(config, c, apply.Secrets(proxy_token="x" * 32, user_password="y" * 12))
    return [f for f in check.check(c, profile="local") if f.rule == "learner-isolation"]


def test_check_flags_several_users_sharing_one_account(tmp_path: Path) -> None:
    shared = _findings(tmp_path, isolation="none")
    assert [f.severity for f in shared] == ["error"], shared
    assert "3 users share one Unix account" in shared[0].message, shared[0].message
    assert _findings(tmp_path) == []  # unix-users
    assert _findings(tmp_path, learners=[], isolation="none") == []  # one user
    shipped = schema.load(REPO / "hub-config" / "local" / "config.yml")
    assert shipped.isolated and shipped.user_prefix == "jupyter-"


def test_a_course_in_the_repository_keeps_the_software_open(tmp_path: Path) -> None:
    """The repository (Python, aifkit) is served as a course by the shipped config: its private
    parts are closed, not the folder; a course folder of its own is closed whole."""
    assert permissions.holds_software(REPO) and not permissions.holds_software(tmp_path)

    class CourseDir:
        root = str(tmp_path)
        db_url = f"sqlite:///{tmp_path / 'gradebook.db'}"

    assert permissions.course_private_paths(CourseDir()) == [tmp_path]


def test_a_home_from_before_isolation_is_handed_over(tmp_path: Path) -> None:
    """A home the hub made as root (before isolation) becomes the account's, links untouched."""
    from aifkit.hub import accounts

    home = tmp_path / "home" / "learner1"
    (home / ".local" / "share").mkdir(parents=True)
    (home / "work.ipynb").write_text("{}")
    (home / "hostname").symlink_to("/etc/hostname")
    account = accounts.ensure_user("jupyter-learner1", home)
    for path in (home, home / ".local", home / ".local" / "share", home / "work.ipynb"):
        assert path.lstat().st_uid == account.uid, path
    assert (home / "hostname").lstat().st_uid == account.uid
    assert Path("/etc/hostname").stat().st_uid == 0, "a link's target changed owner"
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
