"""The hub configuration as data, checked without a hub: schema, pure apply, secrets."""

from __future__ import annotations

import stat
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from builders import REPO
from traitlets.config import Config

from aifkit import resources
from aifkit.hub import apply, schema, secrets
from aifkit.hub.schema import HubConfigError, load

LOCAL = REPO / "hub-config" / "local" / "config.yml"
FACTORY = REPO / "hub-config" / "factory" / "config.yml"
SECRETS = apply.Secrets(proxy_token="p" * 64, user_password="pw-1234567890", oidc_client_secret="c")


def _applied(path: Path) -> Config:
    c = Config()
    apply.apply(schema.load(path), c, SECRETS)
    return c


def _parse(**changes: Any) -> schema.HubConfig:
    data = yaml.safe_load(LOCAL.read_text())
    data.update(changes)
    return schema.parse(data, source="test.yml", base=REPO)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"colour": "blue"}, "unknown key"),
        ({"learners": "learner1"}, "a list of names"),
        ({"start_timeout": "soon"}, "a whole number"),
        ({"profile": "cloud"}, "local or factory"),
        ({"auth": "oidc"}, "oidc: section is missing"),
        ({"spawner": "slurm"}, "at least one entry in profiles"),
        ({"instructors": []}, "at least one instructor"),
        ({"learners": ["instructor"]}, "both instructors and learners"),
        ({"profiles": [{"key": "cpu"}]}, "needs key, display, partition"),
    ],
)
def test_schema_names_the_problem(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(HubConfigError, match=message):
        _parse(**changes)


def test_local_profile_is_least_privilege() -> None:
    c = _applied(LOCAL)
    assert c.Authenticator.allow_all is False
    assert c.Authenticator.allowed_users == {"instructor", "learner1", "learner2", "learner3"}
    assert c.Authenticator.admin_users == set()
    assert c.JupyterHub.authenticator_class == "shared-password"
    assert c.SharedPasswordAuthenticator.user_password == SECRETS.user_password
    assert c.JupyterHub.bind_url == "http://127.0.0.1:8000"
    assert c.JupyterHub.concurrent_spawn_limit == 10
    assert c.ConfigurableHTTPProxy.auth_token == SECRETS.proxy_token
    roles = {r["name"]: r for r in c.JupyterHub.load_roles}
    assert roles["formgrade-aifkit"]["groups"] == ["formgrade-aifkit"]
    assert roles["formgrade-aifkit"]["scopes"] == ["access:services!service=aifkit"]
    assert roles["idle-culler"]["scopes"] == [
        "list:users",
        "read:users:activity",
        "read:servers",
        "delete:servers",
    ]
    assert not any("inherit" in r["scopes"] or "admin:users" in r["scopes"] for r in roles.values())
    services = {s["name"]: s for s in c.JupyterHub.services}
    assert services["aifkit"]["environment"]["JUPYTERHUB_DEFAULT_URL"] == "/formgrader"
    assert Path(services["aifkit"]["command"][0]).is_absolute()
    assert c.JupyterHub.load_groups["instructors"] == {"users": ["instructor"]}


def test_servers_get_absolute_commands_and_the_env_keep_fix() -> None:
    c = _applied(LOCAL)
    (command,) = c.Spawner.cmd
    assert command == str(Path(sys.executable).parent / "aifkit-singleuser")
    # batchspawner-singleuser runs it with runpy: it must be a Python script, not a binary
    assert Path(command).read_text().startswith("#!"), command
    assert "PATH" in c.Spawner.env_keep and "VIRTUAL_ENV" in c.Spawner.env_keep
    assert c.Spawner.default_url == "/lab"


@pytest.mark.parametrize(("user", "groups", "role"), [
    ("learner1", [], "learner"),
    ("instructor", [], "instructor"),
    ("ta", ["instructors"], "instructor"),
])  # fmt: skip
def test_pre_spawn_hook_picks_the_role_config(
    user: str, groups: list[str], role: str, tmp_path: Path
) -> None:
    hook = _applied(LOCAL).Spawner.pre_spawn_hook
    spawner = SimpleNamespace(
        user=SimpleNamespace(name=user, groups=[SimpleNamespace(name=g) for g in groups]),
        environment={},
        home_dir=str(tmp_path / user),
    )
    hook(spawner)
    config_path = Path(spawner.environment["JUPYTER_CONFIG_PATH"])
    assert config_path == resources.singleuser_config_dir(role)
    assert (config_path / "jupyter_server_config.py").is_file()
    assert (config_path / "labconfig" / "page_config.json").is_file()
    assert "JUPYTER_CONFIG_DIR" not in spawner.environment, "the shared folder is never written"
    assert Path(spawner.home_dir).is_dir()


def test_factory_profile_uses_slurm_oidc_https_postgres() -> None:
    c = _applied(FACTORY)
    assert c.JupyterHub.spawner_class == "aifkit.hub.spawner.FactoryProfilesSpawner"
    profiles = {key: options for _, key, _, options in c.ProfilesSpawner.profiles}
    assert profiles["gpu"]["req_options"] == "--gres=gpu:1"
    assert profiles["cpu"] == {
        "req_partition": "cpu",
        "req_nprocs": "4",
        "req_memory": "16G",
        "req_runtime": "02:00:00",
        "req_account": "proj-aifactory-demo",  # the site profile's account
        "req_reservation": "",
        "req_qos": "",
        "gpus": 0,
        "site_profile": "factory-example",
        "req_options": "",
    }
    assert "PATH" in c.BatchSpawnerBase.env_keep
    assert c.JupyterHub.authenticator_class == "generic-oauth"
    assert c.GenericOAuthenticator.username_claim == "preferred_username"
    assert c.GenericOAuthenticator.allowed_groups == {"aifkit-learners", "aifkit-instructors"}
    assert c.JupyterHub.ssl_cert.endswith("fullchain.pem")
    assert c.JupyterHub.db_url.startswith("postgresql://")
    assert c.JupyterHub.cleanup_servers is False, "learners' jobs outlive a hub restart"


def test_relative_paths_are_taken_from_the_config_files_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Are state_dir and course_root relative to the YAML's folder, wherever the command runs?"""
    folder = tmp_path / "site" / "hub"
    folder.mkdir(parents=True)
    data = yaml.safe_load(LOCAL.read_text())
    data.update(state_dir="state", course_root="../course")
    (folder / "config.yml").write_text(yaml.safe_dump(data))
    monkeypatch.chdir(tmp_path / "site")
    config = schema.load(Path("hub/config.yml"))
    monkeypatch.chdir(tmp_path)  # later work elsewhere must not move them
    assert config.state == folder / "state"
    assert config.course.resolve() == tmp_path / "site" / "course"
    assert config.path("secrets/proxy_token") == folder / "state" / "secrets" / "proxy_token"
    shipped = schema.load(LOCAL)  # ../.. from hub-config/local: this repository
    assert shipped.course.resolve() == REPO and shipped.state.resolve() == REPO / "build" / "hub"


def test_secrets_are_made_private_once_and_exposed_ones_refused(tmp_path: Path) -> None:
    config = _parse(state_dir=str(tmp_path / "state"))
    made = secrets.ensure(config)
    assert len(made) == 3 and secrets.ensure(config) == [], "made once, at the first start"
    for name in ("cookie_secret", "proxy_token", "passwords.txt"):
        mode = (tmp_path / "state" / "secrets" / name).stat().st_mode
        assert stat.S_IMODE(mode) == 0o600
    loaded = secrets.load(config)
    assert len(loaded.proxy_token) == 64 and len(loaded.user_password) >= 12
    (tmp_path / "state" / "secrets" / "cookie_secret").chmod(0o644)
    with pytest.raises(HubConfigError, match="chmod 600"):
        secrets.load(config)


def test_type_error_and_unknown_key_name_file_and_key(tmp_path: Path) -> None:
    """Is a spawn profile's text GPU count, or a misspelt key, reported with file and key path?"""
    data = yaml.safe_load(FACTORY.read_text())
    data["profiles"][1]["gpus"] = "two"
    data["profiles"][2]["memory"] = 480
    path = tmp_path / "hub-config" / "factory" / "config.yml"
    path.parent.mkdir(parents=True)
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(HubConfigError) as info:
        schema.load(path)
    assert str(info.value).splitlines() == [
        f"{path}: profiles[1].gpus: needs a whole number of GPUs >= 0, got 'two'",
        f"{path}: profiles[2]: unknown key 'memory' (did you mean 'memory_gb'? "
        "allowed: cpus, display, extra, gpus, key, memory_gb, partition, qos, reservation, time)",
    ]


def test_release_is_all_or_names() -> None:
    """Is ``release`` either 'all' or a list of assignments, and anything else one clear error?"""
    assert _parse(release=["a01-welcome"]).release == ("a01-welcome",)
    with pytest.raises(HubConfigError) as info:
        _parse(release="some")
    assert str(info.value) == "test.yml: release: needs 'all' or a list of names, got 'some'"


def _factory_with(tmp_path: Path, **changes: Any) -> Path:
    """The shipped factory config.yml with ``changes`` applied, written to ``tmp_path``."""
    data = yaml.safe_load((REPO / "hub-config" / "factory" / "config.yml").read_text())
    data.update(changes)
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_spawn_profiles_must_fit_the_site(tmp_path: Path) -> None:
    """Is a spawn profile the site's partition cannot hold refused, naming the profile and the
    limit, by the same rules as any job (partition, GPUs, CPUs, time) and the node's memory?"""
    profiles = [
        {"key": "big", "display": "too many GPUs", "partition": "gpu", "gpus": 8},
        {"key": "long", "display": "too long", "partition": "cpu", "time": "3-00:00:00"},
        {"key": "nowhere", "display": "no such partition", "partition": "huge"},
        {"key": "fat", "display": "too much memory", "partition": "cpu", "memory_gb": 4096},
    ]
    with pytest.raises(HubConfigError) as caught:
        load(_factory_with(tmp_path, profiles=profiles))
    message = str(caught.value)
    assert "profiles[0] (big)" in message and "8 GPU(s) per node" in message
    assert "profiles[1] (long)" in message and "allows at most 2-00:00:00" in message
    assert "profiles[2] (nowhere)" in message and "huge" in message
    assert "profiles[3] (fat)" in message and "memory_gb 4096" in message


def test_site_may_be_a_profile_file_beside_the_config(tmp_path: Path) -> None:
    """Is a site .yml path taken from the config file's folder, and a missing one named?"""
    shipped = REPO / "src" / "aifkit" / "data" / "sites" / "factory-example.yml"
    (tmp_path / "mysite.yml").write_text(shipped.read_text(), encoding="utf-8")
    config = load(_factory_with(tmp_path, site="mysite.yml"))
    assert config.site_ref == str(tmp_path / "mysite.yml")
    assert config.site_profile().account == "proj-aifactory-demo"
    with pytest.raises(HubConfigError, match=r"site: .*nosuch\.yml"):
        load(_factory_with(tmp_path, site="nosuch.yml"))


def _two_courses(tmp_path: Path, **changes: Any) -> schema.HubConfig:
    """A local hub with two courses: ml101 (ada teaches alice, bob) and hpc201 (grace teaches bob)."""
    data = yaml.safe_load(LOCAL.read_text())
    for key in ("course_id", "course_root", "instructors", "learners", "release"):
        data.pop(key)
    (tmp_path / "ml101").mkdir(exist_ok=True)
    (tmp_path / "hpc201").mkdir(exist_ok=True)
    data["courses"] = [
        {"id": "ml101", "root": "ml101", "instructors": ["ada"], "learners": ["alice", "bob"]},
        {"id": "hpc201", "root": "hpc201", "instructors": ["grace"], "learners": ["bob"]},
    ]
    data.update(changes)
    return schema.parse(data, source="test.yml", base=tmp_path)


def test_two_courses_get_their_own_groups_formgraders_and_roles(tmp_path: Path) -> None:
    config = _two_courses(tmp_path)
    assert [course.id for course in config.course_list] == ["ml101", "hpc201"]
    assert config.users == ("ada", "grace", "alice", "bob")
    c = Config()
    apply.apply(config, c, SECRETS)
    assert c.Authenticator.allowed_users == {"ada", "grace", "alice", "bob"}
    groups = c.JupyterHub.load_groups
    assert groups["formgrade-ml101"] == {"users": ["ada"]}
    assert groups["nbgrader-ml101"] == {"users": ["alice", "bob"]}
    assert groups["formgrade-hpc201"] == {"users": ["grace"]}
    assert groups["nbgrader-hpc201"] == {"users": ["bob"]}
    services = {s["name"]: s for s in c.JupyterHub.services}
    port = apply.ports(config)["formgrader"]
    assert services["ml101"]["url"].endswith(f":{port}")
    assert services["hpc201"]["url"].endswith(f":{port + 1}")
    assert services["ml101"]["cwd"] == str(tmp_path / "ml101")
    assert services["hpc201"]["environment"]["AIFKIT_COURSE_ID"] == "hpc201"
    roles = {r["name"]: r for r in c.JupyterHub.load_roles}
    assert roles["formgrade-ml101"]["groups"] == ["formgrade-ml101"]
    assert roles["formgrade-hpc201"]["scopes"] == ["access:services!service=hpc201"]
    assert "read:users:groups!user" in c.Spawner.server_token_scopes


@pytest.mark.parametrize(("user", "role", "course_id", "courses"), [
    ("alice", "learner", "ml101", "ml101"),
    ("bob", "learner", "", "ml101,hpc201"),  # nbgrader lists both courses' assignments
    ("grace", "instructor", "hpc201", "hpc201"),
])  # fmt: skip
def test_each_user_gets_their_own_courses(
    user: str, role: str, course_id: str, courses: str, tmp_path: Path
) -> None:
    c = Config()
    apply.apply(_two_courses(tmp_path), c, SECRETS)
    spawner = SimpleNamespace(
        user=SimpleNamespace(name=user, groups=[]), environment={}, home_dir=str(tmp_path / user)
    )
    c.Spawner.pre_spawn_hook(spawner)
    env = spawner.environment
    assert Path(env["JUPYTER_CONFIG_PATH"]) == resources.singleuser_config_dir(role)
    assert (env["AIFKIT_COURSE_ID"], env["AIFKIT_COURSES"]) == (course_id, courses)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"course_id": "extra"}, "either at the top"),
        (
            {"courses": [{"id": "ml101", "root": "ml101", "learners": ["alice"]}]},
            r"courses\[0\] \(ml101\): instructors: name at least one",
        ),
        (
            {
                "courses": [
                    {"id": "ml101", "root": "ml101", "instructors": ["ada"], "learners": ["bob"]},
                    {"id": "hpc201", "root": "hpc201", "instructors": ["bob"]},
                ]
            },
            "both instructors and learners",
        ),
        (
            {
                "courses": [
                    {"id": "ml101", "root": "ml101", "instructors": ["ada"]},
                    {"id": "hpc201", "root": "./ml101", "instructors": ["grace"]},
                ]
            },
            "share the course folder",
        ),
        (
            {
                "courses": [
                    {"id": "ml101", "root": "ml101", "instructors": ["ada"]},
                    {"id": "ml101", "root": "hpc201", "instructors": ["grace"]},
                ]
            },
            "used twice",
        ),
        ({"courses": [{"id": "no spaces", "instructors": ["ada"]}]}, "courses"),
    ],
)
def test_courses_are_checked_at_load(changes: dict[str, Any], message: str, tmp_path: Path) -> None:
    with pytest.raises(HubConfigError, match=message):
        _two_courses(tmp_path, **changes)
