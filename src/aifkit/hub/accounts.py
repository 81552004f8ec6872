"""The Unix accounts of an isolated local hub: one per hub user, one group per course's instructors.

Each hub user ``name`` gets the account ``<prefix><name>`` (``jupyter-learner1``), made with
``useradd`` the first time and reused afterwards; its home is the hub's (``<state>/home/<name>``,
mode 700, owned by the account), whatever the password database says. Instructors of a course are
members of its group (``<prefix><course>-instructors``), which owns the course's private files.
"""

from __future__ import annotations

import grp
import os
import pwd
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from aifkit.hub.schema import HubConfigError

COMMENT = "aifkit hub user"
COMMAND_TIMEOUT_S = 30
SERVER_UMASK = 0o077  # what a server creates is its owner's only


@dataclass(frozen=True)
class Account:
    """A hub user's Unix account: who their server runs as, and where."""

    name: str
    uid: int
    gid: int
    groups: tuple[int, ...]  # primary and supplementary group ids
    home: Path


def _run(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S)


def user_name(uid: int) -> str:
    """The account name of ``uid``, or "uid N" for an id the password database lacks."""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def _lookup(name: str) -> pwd.struct_passwd | None:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        return None


def ensure_user(name: str, home: Path) -> Account:
    """The account ``name`` (made when missing) and its home ``home`` (mode 700, its own)."""
    entry = _lookup(name)
    if entry is None:
        done = _run(
            ["useradd", "--user-group", "--no-create-home", "--home-dir", str(home),
             "--shell", "/bin/bash", "--comment", COMMENT, name]
        )  # fmt: skip
        entry = _lookup(name)  # another hub may have made it at the same moment
        if entry is None:
            raise HubConfigError(f"useradd {name} failed ({done.returncode}): {done.stderr}")
    if entry.pw_uid == 0 or entry.pw_gid == 0:
        raise HubConfigError(f"the Unix account {name} is root's (uid/gid 0): refusing to use it")
    home.mkdir(parents=True, exist_ok=True)
    if home.stat().st_uid != entry.pw_uid:  # a home of the hub before isolation: hand it over
        _hand_over(home, entry.pw_uid, entry.pw_gid)
    os.chown(home, entry.pw_uid, entry.pw_gid)
    home.chmod(0o700)
    return Account(
        name=name,
        uid=entry.pw_uid,
        gid=entry.pw_gid,
        groups=tuple(os.getgrouplist(name, entry.pw_gid)),
        home=home,
    )


def _hand_over(home: Path, uid: int, gid: int) -> None:
    """Everything in ``home`` to the account (links themselves, never what they point to)."""
    for folder, dirs, files in os.walk(home):
        for name in dirs + files:
            os.lchown(os.path.join(folder, name), uid, gid)


def ensure_group(name: str, members: tuple[str, ...]) -> int:
    """The group ``name`` (made when missing) with exactly ``members``; its id.

    Exactly: an account that left the course's instructors (or was one by mistake) loses the
    group's access at the next start.
    """
    try:
        group = grp.getgrnam(name)
    except KeyError:
        done = _run(["groupadd", name])
        try:
            group = grp.getgrnam(name)
        except KeyError:
            raise HubConfigError(
                f"groupadd {name} failed ({done.returncode}): {done.stderr}"
            ) from None
    if group.gr_gid == 0:
        raise HubConfigError(f"the Unix group {name} is root's (gid 0): refusing to use it")
    if sorted(group.gr_mem) != sorted(members):
        done = _run(["gpasswd", "--members", ",".join(members), name])
        if done.returncode != 0:
            raise HubConfigError(f"setting the members of group {name} failed: {done.stderr}")
    return group.gr_gid


def become(account: Account) -> Callable[[], None]:
    """A ``preexec_fn`` that turns the child into ``account``, at home, with a private umask.

    Groups first, then the user id (after ``setuid`` nothing else may change); any failure
    raises, and Popen then reports it instead of starting a server with the hub's rights.
    """

    def preexec() -> None:
        os.setgid(account.gid)
        os.setgroups(list(account.groups))
        os.setuid(account.uid)
        os.chdir(account.home)
        os.umask(SERVER_UMASK)

    return preexec
