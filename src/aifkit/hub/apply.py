"""Turn a ``HubConfig`` into JupyterHub settings: a pure function of the config and its secrets.

``apply(config, c, secrets)`` only assigns traits on ``c``; it reads no file and starts nothing,
so tests check the resulting settings without a hub. The ``jupyterhub_config.py`` aifkit ships
(``resources.hub_config_file()``) is three lines: load the YAML, load the secrets, apply.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from aifkit import resources
from aifkit.hub.schema import CourseEntry, HubConfig, Oidc

# What single-user servers keep from the hub's environment. JupyterHub >= 5.2 keeps almost
# nothing by default and batchspawner jobs then start without PATH (STACK-NOTES).
ENV_KEEP = [
    "PATH",
    "VIRTUAL_ENV",
    "PYTHONPATH",
    "LD_LIBRARY_PATH",
    "LANG",
    "LC_ALL",
    "JUPYTERHUB_SINGLEUSER_APP",
]
SERVER_TOKEN_SCOPES = ["users:activity!user", "access:servers!server", "read:users:groups!user"]
CULLER_SCOPES = ["list:users", "read:users:activity", "read:servers", "delete:servers"]


@dataclass(frozen=True)
class Secrets:
    """Values read from mode-600 files by ``secrets.load``; never written into the config."""

    proxy_token: str
    user_password: str = ""
    oidc_client_secret: str = ""


def ports(config: HubConfig) -> dict[str, int]:
    """The public port and the internal ones derived from it (proxy API, hub, formgrader).

    Course ``i`` of ``course_list`` has its formgrader on ``formgrader + i``.
    """
    public = urlparse(config.bind_url).port or (443 if config.bind_url.startswith("https") else 80)
    return {
        "public": public,
        "proxy_api": public + 1,
        "hub": public + 2,
        "formgrader": config.formgrader_port or public + 3,
    }


def singleuser_command() -> list[str]:
    """Absolute: batch jobs and services must not depend on the PATH they inherit.

    A script, not ``python -m``: batchspawner-singleuser runs its first argument with runpy.
    """
    return [str(Path(sys.executable).parent / "aifkit-singleuser")]


def role_environment(
    config: HubConfig, role: str, courses: tuple[CourseEntry, ...] | None = None
) -> dict[str, str]:
    """The environment of a learner's or instructor's server (and of a formgrader).

    ``courses`` are the user's (default: every course of the hub), ``AIFKIT_COURSES``; with one,
    its id is also ``AIFKIT_COURSE_ID``. On a hub of several courses (``AIFKIT_HUB_COURSES``)
    a learner's nbgrader lists, fetches and submits only in the courses whose ``nbgrader-<id>``
    group holds them, and files each assignment under ``<course>/<assignment>``.
    """
    courses = config.course_list if courses is None else courses
    one = courses[0] if len(courses) == 1 else None
    return {
        # searched, never written: each user's own settings stay in their ~/.jupyter
        "JUPYTER_CONFIG_PATH": str(resources.singleuser_config_dir(role)),
        "AIFKIT_COURSE_ID": one.id if one else "",
        "AIFKIT_COURSES": ",".join(c.id for c in courses),
        "AIFKIT_HUB_COURSES": ",".join(c.id for c in config.course_list),
        "AIFKIT_EXCHANGE": str(config.exchange_root),
        "AIFKIT_COURSE_ROOT": str(config.course_path(one)) if one else "",
        # isolated: the Unix account of hub user <name> is <prefix><name> (collect checks it)
        "AIFKIT_ACCOUNT_PREFIX": config.user_prefix if config.isolated else "",
        **config.extra_env,
    }


def make_pre_spawn_hook(config: HubConfig) -> Any:
    """A hook that gives each user their role's tools and their own courses."""
    instructors = set(config.instructors_all)
    teaching_groups = instructor_groups(config)

    def pre_spawn_hook(spawner: Any) -> None:
        groups = {g.name for g in getattr(spawner.user, "groups", [])}
        name = spawner.user.name
        teaching = name in instructors or bool(groups & set(teaching_groups))
        role = "instructor" if teaching else "learner"
        courses = config.courses_of(name)
        if not courses and len(config.course_list) == 1:  # a user the YAML does not list (OIDC)
            courses = config.course_list
        spawner.environment.update(role_environment(config, role, courses))
        home = getattr(spawner, "home_dir", None)
        if home:
            Path(home).mkdir(parents=True, exist_ok=True)

    return pre_spawn_hook


def apply(config: HubConfig, c: Any, secrets: Secrets) -> None:
    """Set every JupyterHub trait the config determines."""
    _hub(config, c, secrets)
    _auth(config, c, secrets)
    _spawner(config, c)
    _services(config, c)


def _hub(config: HubConfig, c: Any, secrets: Secrets) -> None:
    state, port = config.state, ports(config)
    c.JupyterHub.bind_url = config.bind_url
    c.JupyterHub.hub_bind_url = f"http://127.0.0.1:{port['hub']}"
    c.JupyterHub.db_url = config.db_url or f"sqlite:///{state / 'jupyterhub.sqlite'}"
    c.JupyterHub.cookie_secret_file = str(config.path(config.cookie_secret_file))
    c.JupyterHub.pid_file = str(state / "jupyterhub.pid")
    c.JupyterHub.concurrent_spawn_limit = config.concurrent_spawn_limit
    c.JupyterHub.cleanup_servers = config.profile == "local"  # factory jobs outlive a restart
    c.JupyterHub.cleanup_proxy = True
    c.JupyterHub.allow_named_servers = False
    c.ConfigurableHTTPProxy.auth_token = secrets.proxy_token
    c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{port['proxy_api']}"
    c.ConfigurableHTTPProxy.pid_file = str(state / "proxy.pid")
    c.ConfigurableHTTPProxy.should_start = True
    if config.ssl_cert:
        c.JupyterHub.ssl_cert = config.ssl_cert
        c.JupyterHub.ssl_key = config.ssl_key
    if manages_groups(config):
        # the provider's groups claim sets every user's groups at login; JupyterHub refuses
        # load_groups when the authenticator manages groups
        c.JupyterHub.load_groups = {}
        return
    c.JupyterHub.load_groups = {
        "instructors": {"users": list(config.instructors_all)},
        "learners": {"users": list(config.learners_all)},
    }
    for course in config.course_list:  # nbgrader's names: formgrade-<course>, nbgrader-<course>
        c.JupyterHub.load_groups[f"formgrade-{course.id}"] = {"users": list(course.instructors)}
        c.JupyterHub.load_groups[f"nbgrader-{course.id}"] = {"users": list(course.learners)}


def _auth(config: HubConfig, c: Any, secrets: Secrets) -> None:
    c.Authenticator.allow_all = False
    c.Authenticator.allowed_users = set(config.users)
    c.Authenticator.admin_users = set()
    if config.auth == "shared-password":
        c.JupyterHub.authenticator_class = "shared-password"
        c.SharedPasswordAuthenticator.user_password = secrets.user_password
    elif config.auth == "oidc":
        assert config.oidc is not None  # schema checked
        _oidc(config, config.oidc, c, secrets)
    else:  # "none": tests only; `aifkit hub check` reports it
        c.JupyterHub.authenticator_class = "dummy"


def refusal_message(config: HubConfig) -> str:
    """What a user the provider knows but the hub does not allow reads on the 403 page."""
    groups = ", ".join(config.allowed_groups) or "none"
    return (
        "You signed in at your identity provider, but your account is not in a group that may "
        f"use this hub (allowed groups: {groups}). Ask your site's support to add you to one of "
        "them, then sign in again."
    )


def _oidc(config: HubConfig, oidc: Oidc, c: Any, secrets: Secrets) -> None:
    """GenericOAuthenticator: endpoints, a stable username, groups from the provider's claim."""
    c.JupyterHub.authenticator_class = "generic-oauth"
    auth = c.GenericOAuthenticator
    auth.client_id = oidc.client_id
    auth.client_secret = secrets.oidc_client_secret
    auth.oauth_callback_url = oidc.callback_url
    for setting in ("authorize_url", "token_url", "userdata_url"):
        if getattr(oidc, setting):  # empty: discovery.resolve fills it at hub start
            auth[setting] = getattr(oidc, setting)
    auth.username_claim = oidc.username_claim
    auth.scope = list(oidc.scope)
    if oidc.authorize_params:
        auth.extra_authorize_params = dict(oidc.authorize_params)
    auth.allow_existing_users = False  # who may log in is the provider's groups, at each login
    auth.custom_403_message = refusal_message(config)
    if manages_groups(config):
        # the hub's groups follow the provider's claim at every login (OAuthenticator >= 17
        # refuses allowed_groups and the groups key without manage_groups: the hub would exit)
        auth.manage_groups = True
        auth.auth_state_groups_key = f"oauth_user.{oidc.groups_claim}"
        auth.allowed_groups = set(config.allowed_groups)


def manages_groups(config: HubConfig) -> bool:
    """Do the provider's groups (OIDC) decide the hub's groups, instead of load_groups?"""
    oidc = config.oidc if config.auth == "oidc" else None
    return oidc is not None and bool(config.allowed_groups or oidc.instructor_groups)


def provider_instructor_groups(config: HubConfig) -> tuple[str, ...]:
    """Under OIDC, the provider's groups whose members teach every course."""
    return tuple(config.oidc.instructor_groups) if config.auth == "oidc" and config.oidc else ()


def instructor_groups(config: HubConfig) -> tuple[str, ...]:
    """Hub groups whose members teach every course: ``instructors``, and the provider's."""
    return ("instructors", *provider_instructor_groups(config))


def _spawner(config: HubConfig, c: Any) -> None:
    c.Spawner.cmd = singleuser_command()
    c.Spawner.default_url = "/lab"
    c.Spawner.env_keep = ENV_KEEP
    c.Spawner.environment = role_environment(config, "learner")
    c.Spawner.pre_spawn_hook = make_pre_spawn_hook(config)
    # the server's own token may read its user's groups: nbgrader lists a learner's courses
    c.Spawner.server_token_scopes = SERVER_TOKEN_SCOPES
    c.Spawner.start_timeout = config.start_timeout
    c.Spawner.http_timeout = config.http_timeout
    if config.spawner == "local":
        _local_spawner(config, c)
        return
    # Registers /hub/api/batchspawner, where a job reports its server's port: the hub builds
    # its handlers before it makes any spawner, so the import cannot wait for the first spawn.
    import batchspawner.api  # noqa: F401

    # wrapspawner's ProfilesSpawner, with the learner's GPU budget on its form
    c.JupyterHub.spawner_class = "aifkit.hub.spawner.FactoryProfilesSpawner"
    c.BatchSpawnerBase.env_keep = ENV_KEEP
    account = config.site_profile().account if config.site else ""
    c.ProfilesSpawner.profiles = profiles = [
        (
            p.display,
            p.key,
            "aifkit.hub.spawner.FactorySlurmSpawner",
            {
                "req_partition": p.partition,
                "req_nprocs": str(p.cpus),
                "req_memory": f"{p.memory_gb}G",
                "req_runtime": p.time,
                "req_account": account,
                "req_reservation": p.reservation,
                "req_qos": p.qos,
                "gpus": p.gpus,
                "site_profile": config.site_ref,
                "req_options": " ".join(
                    o for o in (f"--gres=gpu:{p.gpus}" if p.gpus else "", p.extra) if o
                ),
            },
        )
        for p in config.profiles
    ]
    # A missing or unknown profile would keep wrapspawner's default child, a LocalProcessSpawner
    # on the hub's own machine: default to the first profile (the spawner refuses unknown ones).
    c.ProfilesSpawner.child_class = "aifkit.hub.spawner.FactorySlurmSpawner"
    c.ProfilesSpawner.child_config = dict(profiles[0][3])


def _local_spawner(config: HubConfig, c: Any) -> None:
    """Each server as its user's own Unix account, or (isolation: none) as the hub's user."""
    home = str(config.state / "home" / "{username}")
    if config.isolated:
        c.JupyterHub.spawner_class = "aifkit.hub.local_spawner.IsolatedLocalSpawner"
        c.IsolatedLocalSpawner.user_prefix = config.user_prefix
        c.IsolatedLocalSpawner.home_dir_template = home
        return
    c.JupyterHub.spawner_class = "simple"
    c.SimpleLocalProcessSpawner.home_dir_template = home
    if os.geteuid() == 0:
        c.Spawner.args = ["--allow-root"]  # every server as the hub's own user: root


def _services(config: HubConfig, c: Any) -> None:
    port = ports(config)
    formgrader_args = ["--allow-root"] if os.geteuid() == 0 else []
    c.JupyterHub.services = [
        {
            "name": course.id,
            "url": f"http://127.0.0.1:{port['formgrader'] + index}",
            "command": [*singleuser_command(), *formgrader_args],
            "cwd": str(config.course_path(course)),
            "environment": {
                **role_environment(config, "instructor", (course,)),
                "JUPYTERHUB_DEFAULT_URL": "/formgrader",
            },
            "oauth_no_confirm": True,
            # JupyterHub 6 gives a managed service 30 s to answer, then the hub exits; the
            # formgrader is a whole single-user server: it gets the servers' start limit
            "timeout": config.start_timeout,
        }
        for index, course in enumerate(config.course_list)
    ] + [
        {
            "name": "idle-culler",
            "command": [
                sys.executable,
                "-m",
                "jupyterhub_idle_culler",
                f"--timeout={config.culler_timeout}",
                f"--cull-every={config.culler_every}",
            ],
        },
    ]
    c.JupyterHub.load_roles = [
        {
            "name": f"formgrade-{course.id}",
            "description": f"the instructors of {course.id} reach its formgrader, no one else",
            # under OIDC also the provider's instructor groups (the hub's groups follow them)
            "groups": [f"formgrade-{course.id}", *provider_instructor_groups(config)],
            # and the course's named instructors themselves: managed groups leave them out
            **({"users": list(course.instructors)} if manages_groups(config) else {}),
            "scopes": [f"access:services!service={course.id}"],
        }
        for course in config.course_list
    ] + [
        {
            "name": "idle-culler",
            "description": "least privilege: list users, read activity, stop idle servers",
            "services": ["idle-culler"],
            "scopes": CULLER_SCOPES,
        },
    ]
