"""The local hub's isolation policy: who a learner's server runs as, and what it can reach.

``isolation: unix-users`` (the default) needs a hub started as root: at every start each user
gets their account and home, each course its instructors' group, and the state, the courses and
the exchange their owners and modes (``aifkit.hub.permissions``); then one account must be able
to run the servers' Python, or the start stops with what to fix. Started as another user it is
refused. ``isolation: none`` runs every server as the hub's own user, and says so at each start.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aifkit.hub import accounts, permissions
from aifkit.hub.schema import CourseEntry, HubConfig, HubConfigError

PROBE_TIMEOUT_S = 60
# what a learner's server needs before it can answer: the Python, JupyterHub, nbgrader, aifkit
PROBE = (
    "import os, sys\n"
    "import aifkit.hub.singleuser, jupyterhub, nbgrader\n"
    "closed = [p for p in sys.argv[1:] if not os.access(p, os.R_OK | os.X_OK)]\n"
    "sys.exit(f'cannot read {closed}' if closed else 0)\n"
)


def home(config: HubConfig, user: str) -> Path:
    """Where ``user``'s server runs: ``<state>/home/<user>``."""
    return config.state / "home" / user


def _me() -> str:
    """The Unix user this process runs as (by its id: the environment may say otherwise)."""
    return accounts.user_name(os.geteuid())


def require(config: HubConfig) -> None:
    """Refuse an isolated local hub that cannot isolate (not root); before anything is made."""
    if config.isolated and os.geteuid() != 0:
        raise HubConfigError(
            f"isolation: unix-users starts each user's server as their own Unix account, which "
            f"needs a hub started as root (this is {_me()}): run it as root, or set isolation: "
            f"none in the hub's configuration to run every server as {_me()} (learners then "
            "read each other's work and the solutions)"
        )


def warning(config: HubConfig) -> str:
    """What a hub without isolation says at every start ('' when it isolates)."""
    if config.spawner != "local" or config.isolated:
        return ""
    return (
        f"WARNING: isolation: none: every server runs as the Unix user {_me()}. Learners are NOT "
        "isolated: each can read and change the others' work, the course source with its "
        "solutions, the gradebook and the hub's secrets. Use it alone or for a demo; for a "
        "class start the hub as root with isolation: unix-users."
    )


def prepare(config: HubConfig, announce: Callable[[str], None] = print) -> None:
    """Accounts, homes, groups, owners and modes for an isolated hub; else the warning."""
    if not config.isolated:
        if text := warning(config):
            announce(text)
        return
    require(config)
    made = {u: accounts.ensure_user(config.account_name(u), home(config, u)) for u in config.users}
    permissions.protect_state(config.state, _sqlite_file(config))
    for course in config.course_list:
        members = tuple(config.account_name(user) for user in course.instructors)
        gid = accounts.ensure_group(config.instructors_group(course), members)
        private = permissions.course_private_paths(_coursedir(config, course))
        permissions.protect_course(private, gid)
        permissions.protect_exchange(config.exchange_root, course.id, gid)
    # a learner if there is one: an instructor's groups could open what a learner's do not
    for user in (config.learners_all or config.users)[:1]:
        probe(made[user], [config.exchange_root, config.exchange_root / config.course_list[0].id])
    announce(f"isolation: each user's server runs as {config.user_prefix}<name> (homes 700)")


def _sqlite_file(config: HubConfig) -> Path | None:
    return None if config.db_url else config.state / "jupyterhub.sqlite"


def _coursedir(config: HubConfig, course: CourseEntry) -> Any:
    """nbgrader's CourseDirectory of a course, as its nbgrader_config.py sets it."""
    from aifkit.hub.run import load_course

    return load_course(config, course).coursedir


def probe(account: accounts.Account, paths: list[Path]) -> None:
    """Can ``account`` run the servers' Python and reach ``paths``? Else say what to open."""
    try:
        done = subprocess.run(
            [sys.executable, "-c", PROBE, *map(str, paths)],
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT_S,
            preexec_fn=accounts.become(account),
            env={k: v for k, v in os.environ.items() if k in ("PATH", "PYTHONPATH", "LANG")},
        )
    except (OSError, subprocess.SubprocessError) as error:
        done = subprocess.CompletedProcess([], 1, "", str(error))
    if done.returncode != 0:
        raise HubConfigError(
            f"the Unix account {account.name} cannot run the servers' Python {sys.executable} "
            f"or reach the hub's folders: {done.stderr.strip()[-800:]}\nEvery folder on the way "
            "to the Python, its packages and the exchange must be readable and searchable by "
            "other users (chmod o+rx on each; a virtualenv under /root is not)"
        )
