"""``aifkit hub check``: a planted-bad config trips every rule, the shipped profiles are clean.

Secret files are made in tmp_path at test time: the world-readable ones the bad fixture points at
through environment variables, and mode-600 ones for copies of the shipped profiles whose
absolute paths (/etc, /srv) are moved into tmp_path.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from traitlets.config import Config

from aifkit import resources
from aifkit.hub import check, schema
from aifkit.hub import secrets as hub_secrets
from aifkit.hub.schema import HubConfigError

REPO = Path(__file__).resolve().parents[1]
BAD = REPO / "tests" / "fixtures" / "hub-bad"
SHIPPED = REPO / "hub-config"
RULE_IDS = [r.id for r in check.RULES]
LINE = re.compile(r"^(ERROR|WARNING) [a-z-]+: .+ \(.+\) -> .+$")


@pytest.fixture(autouse=True)
def _hub_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The proxy token must come from the config, not from whoever runs the tests."""
    for name in ("CONFIGPROXY_AUTH_TOKEN", "AIFKIT_HUB_CONFIG", check.CHECK_ENV):
        monkeypatch.delenv(name, raising=False)


def write(path: Path, text: str = "s3cret", mode: int = 0o600) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")
    path.chmod(mode)
    return path


def rules(findings: list[check.HubFinding], rule_id: str) -> list[check.HubFinding]:
    return [f for f in findings if f.rule == rule_id]


def run(c: Config, rule_id: str, **kwargs: Any) -> list[check.HubFinding]:
    return rules(check.check(c, **kwargs), rule_id)


def lines(findings: list[check.HubFinding]) -> str:
    return "\n".join(f.line() for f in findings)


# ---------------------------------------------------------------- the planted-bad config


@pytest.fixture
def bad(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[check.HubFinding]:
    monkeypatch.setenv("AIFKIT_BAD_COOKIE_SECRET", str(write(tmp_path / "cookie", mode=0o644)))
    monkeypatch.setenv("AIFKIT_BAD_SSL_KEY", str(write(tmp_path / "privkey.pem", mode=0o644)))
    c, context = check.load(BAD)
    return check.check(c, context=context)


@pytest.mark.parametrize("rule_id", RULE_IDS)
def test_planted_bad_config_trips_every_rule(bad: list[check.HubFinding], rule_id: str) -> None:
    """Does each rule report the setting planted for it in tests/fixtures/hub-bad?"""
    assert rules(bad, rule_id), f"{rule_id} did not fire:\n{lines(bad)}"


def test_every_finding_says_what_where_and_how_to_fix(bad: list[check.HubFinding]) -> None:
    """Has every finding a known rule, a severity, a setting, a message and a fix?"""
    assert len(set(RULE_IDS)) == len(RULE_IDS)
    for finding in bad:
        assert finding.rule in RULE_IDS and finding.severity in ("error", "warning")
        assert finding.setting and finding.message and finding.fix
        assert LINE.match(finding.line()), finding.line()
    assert [f.severity for f in bad] == sorted(
        (f.severity for f in bad), key=lambda s: s != "error"
    )


def test_main_check_prints_one_line_per_finding_and_fails(
    bad: list[check.HubFinding], capsys: pytest.CaptureFixture[str]
) -> None:
    """Does the CLI entry print every finding on its line, a summary, and return 1?"""
    assert check.main_check(BAD, None) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[:-1] == [f.line() for f in bad]
    errors = sum(f.severity == "error" for f in bad)
    assert out[-1].endswith(f"{errors} error(s), {len(bad) - errors} warning(s) (factory profile)")


# ---------------------------------------------------------------- the shipped profiles


def provision(tmp_path: Path, profile: str) -> Path:
    """A copy of the shipped profile with every absolute path moved into tmp_path, and its
    secrets made as at first start (mode 600); returns the copy's config.yml."""
    data = yaml.safe_load((SHIPPED / profile / "config.yml").read_text())

    def move(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: move(v) for k, v in value.items()}
        if isinstance(value, str) and value.startswith("/"):
            return str(tmp_path / value.lstrip("/"))
        return value

    path = tmp_path / "hub-config" / profile / "config.yml"
    path.parent.mkdir(parents=True)
    path.write_text(yaml.safe_dump(move(data)))
    config = schema.load(path)
    assert config.base == path.parent.resolve(), "relative paths: from the file's folder"
    hub_secrets.ensure(config)  # cookie secret, proxy token, password: what the hub makes
    if config.oidc is not None:
        write(Path(config.oidc.client_secret_file))
    if config.ssl_key:
        write(Path(config.ssl_key))
        write(Path(config.ssl_cert), "certificate", mode=0o644)
    return path


@pytest.mark.parametrize("profile", ["local", "factory"])
def test_shipped_profiles_are_clean(tmp_path: Path, profile: str) -> None:
    """Do the shipped profiles, provisioned, pass with no error and no warning at all?"""
    c, context = check.load(provision(tmp_path, profile))
    assert context.profile == profile and context.course_ids == ("aifkit",)
    findings = check.check(c, context=context)
    assert findings == [], lines(findings)


def test_shipped_profiles_unprovisioned_have_no_errors(tmp_path: Path) -> None:
    """Missing secret files are nothing locally (first start makes them), warnings on the factory."""
    local = tmp_path / "hub-config" / "local" / "config.yml"
    local.parent.mkdir(parents=True)
    shutil.copy(SHIPPED / "local" / "config.yml", local)
    c, context = check.load(local)
    assert check.check(c, context=context) == []
    c, context = check.load(SHIPPED / "factory" / "config.yml")
    findings = check.check(c, context=context)
    assert [f for f in findings if f.severity == "error"] == [], lines(findings)
    for finding in findings:
        assert finding.rule in ("cookie-secret", "secret-files") and "missing" in finding.message


@pytest.mark.parametrize("profile", ["local", "factory"])
def test_shipped_python_configs_check_like_their_yaml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, profile: str
) -> None:
    """Is the jupyterhub_config.py aifkit ships (what JupyterHub loads) seen as its YAML?"""
    path = provision(tmp_path, profile)
    monkeypatch.setenv("AIFKIT_HUB_CONFIG", str(path))
    c, context = check.load(resources.hub_config_file())
    yaml_c, yaml_context = check.load(path)
    assert check.load(path.parent)[1] == yaml_context, "a folder means its config.yml"
    assert context.profile == profile
    assert context.secret_files == {
        k.replace(" in config.yml", " in the hub YAML"): v
        for k, v in yaml_context.secret_files.items()
    }
    for section, key in [("JupyterHub", "bind_url"), ("JupyterHub", "load_roles")]:
        assert c[section][key] == yaml_c[section][key]
    assert check.check(c, context=context) == []
    Path(c.JupyterHub.cookie_secret_file).chmod(0o644)
    assert rules(check.check(c, context=context), "cookie-secret")


# ---------------------------------------------------------------- loading


def test_python_config_loads_with_check_variable_and_subconfig(tmp_path: Path) -> None:
    """Is AIFKIT_HUB_CHECK=1 set only while the file runs, and does load_subconfig work?"""
    write(tmp_path / "base.py", "c.JupyterHub.concurrent_spawn_limit = 7")
    write(
        tmp_path / "jupyterhub_config.py",
        "import os\nc = get_config()\nload_subconfig('base.py')\n"
        "c.JupyterHub.db_url = os.environ.get('AIFKIT_HUB_CHECK', 'unset')",
    )
    c, context = check.load(tmp_path)
    assert c.JupyterHub.db_url == "1" and c.JupyterHub.concurrent_spawn_limit == 7
    assert check.CHECK_ENV not in os.environ
    assert context.profile is None and context.secret_files == {}
    assert context.base == tmp_path.resolve()


def test_load_failures_name_the_file(tmp_path: Path) -> None:
    """Are a missing file, an unknown kind and a config that raises clear errors?"""
    with pytest.raises(HubConfigError, match="no such hub configuration"):
        check.load(tmp_path / "nowhere.py")
    with pytest.raises(HubConfigError, match=r"expected a jupyterhub_config\.py"):
        check.load(write(tmp_path / "hub.toml", "x = 1"))
    broken = write(tmp_path / "broken.py", "raise RuntimeError('secret file missing')")
    with pytest.raises(
        HubConfigError, match=r"broken\.py.*AIFKIT_HUB_CHECK=1.*secret file missing"
    ):
        check.load(broken)


def test_yaml_secret_files_are_checked(tmp_path: Path) -> None:
    """Do an exposed password file and an empty proxy token file show up, via the YAML?"""
    path = provision(tmp_path, "local")
    config = schema.load(path)
    config.path(config.password_file).chmod(0o640)
    write(config.path(config.proxy_token_file), "")
    c, context = check.load(path)
    findings = check.check(c, context=context)
    exposed = rules(findings, "secret-files")
    assert [f.setting for f in exposed] == ["password_file in config.yml"]
    assert "chmod 600" in exposed[0].fix
    assert rules(findings, "proxy-token")


def test_check_only_reads_the_config() -> None:
    """Does checking an empty Config leave it empty (no section made by reading)?"""
    c = Config()
    assert check.check(c)
    assert c == Config()


# ---------------------------------------------------------------- single rules


def test_cookie_secret_mode_flips_with_chmod(tmp_path: Path) -> None:
    """Is the cookie secret an error exactly while group or others can read or write it?"""
    cookie = write(tmp_path / "cookie_secret")
    c = Config()
    c.JupyterHub.cookie_secret_file = str(cookie)
    assert run(c, "cookie-secret") == []
    for mode, exposed in [(0o640, True), (0o602, True), (0o600, False), (0o400, False)]:
        cookie.chmod(mode)
        assert bool(run(c, "cookie-secret")) is exposed, oct(mode)


def test_cookie_secret_inline_or_missing(tmp_path: Path) -> None:
    """Is an inline secret an error, and a missing file a warning on the factory only?"""
    c = Config()
    c.JupyterHub.cookie_secret = b"deadbeef"
    c.JupyterHub.cookie_secret_file = str(tmp_path / "absent")
    assert [f.severity for f in run(c, "cookie-secret", profile="local")] == ["error"]
    assert [f.severity for f in run(c, "cookie-secret", profile="factory")] == ["error", "warning"]


def test_proxy_token_sources(monkeypatch: pytest.MonkeyPatch) -> None:
    """Does a token from the config, the environment or a placeholder count, and none not?"""
    c = Config()
    assert run(c, "proxy-token")
    c.ConfigurableHTTPProxy.auth_token = check.PLACEHOLDER  # a secret file the check can't read
    assert run(c, "proxy-token") == []
    c = Config()
    monkeypatch.setenv("CONFIGPROXY_AUTH_TOKEN", "t0ken")
    assert run(c, "proxy-token") == []
    monkeypatch.delenv("CONFIGPROXY_AUTH_TOKEN")
    c.JupyterHub.proxy_class = "traefik_proxy.TraefikRedisProxy"
    assert run(c, "proxy-token") == []


@pytest.mark.parametrize(
    ("settings", "profile"),
    [
        ({"bind_url": "http://127.0.0.1:8000"}, "local"),
        ({"bind_url": "http://localhost:8000", "spawner_class": "simple"}, "local"),
        ({"bind_url": "http://[::1]:8000"}, "local"),
        ({"bind_url": "http://0.0.0.0:8000"}, "factory"),
        ({}, "factory"),  # JupyterHub's default http://:8000 is every interface
        ({"ip": "127.0.0.1", "port": 9000}, "local"),
        (
            {"bind_url": "http://127.0.0.1:8000", "spawner_class": "batchspawner.SlurmSpawner"},
            "factory",
        ),
        (
            {"bind_url": "http://127.0.0.1:8000", "spawner_class": "wrapspawner.ProfilesSpawner"},
            "factory",
        ),
        (
            {"bind_url": "http://127.0.0.1:8000", "spawner_class": "site.hub.MySlurmSpawner"},
            "factory",
        ),
    ],
)
def test_profile_detection(settings: dict[str, Any], profile: str) -> None:
    """Do batch/wrap spawners or a non-loopback address mean the factory profile?"""
    c = Config()
    for key, value in settings.items():
        setattr(c.JupyterHub, key, value)
    assert check.ConfigView(c, None, None).profile == profile


def test_plain_http_is_an_error_on_the_factory_only() -> None:
    """Is HTTP on every interface an error (factory), a warning (declared local), TLS fine?"""
    c = Config()
    c.JupyterHub.bind_url = "http://0.0.0.0:8000"
    assert [f.severity for f in run(c, "plain-http")] == ["error"]
    assert [f.severity for f in run(c, "plain-http", profile="local")] == ["warning"]
    c.JupyterHub.ssl_cert, c.JupyterHub.ssl_key = "/tls/cert.pem", "/tls/key.pem"
    assert run(c, "plain-http") == []
    c = Config()
    c.JupyterHub.bind_url = "http://127.0.0.1:8000"
    assert run(c, "plain-http", profile="factory") == []  # behind a TLS-terminating proxy


def test_allow_list() -> None:
    """Is a listed set of users or groups enough, and open signup an error?"""
    c = Config()
    c.JupyterHub.authenticator_class = "shared-password"
    assert run(c, "allow-list")
    c.GenericOAuthenticator.allowed_groups = {"aifkit-learners"}
    assert run(c, "allow-list") == []
    c.NativeAuthenticator.open_signup = True
    assert [f.setting for f in run(c, "allow-list")] == ["c.NativeAuthenticator.open_signup"]
    c = Config()
    c.Authenticator.allowed_users.add("learner1")  # a lazy value: add to the default
    assert run(c, "allow-list") == []


def test_spawn_limit_severity_follows_the_profile() -> None:
    """Is a missing or zero limit a warning locally and an error on the factory?"""
    c = Config()
    assert [f.severity for f in run(c, "spawn-limit", profile="local")] == ["warning"]
    assert [f.severity for f in run(c, "spawn-limit", profile="factory")] == ["error"]
    c.JupyterHub.concurrent_spawn_limit = 0
    assert "unlimited" in run(c, "spawn-limit")[0].message
    c.JupyterHub.concurrent_spawn_limit = 20
    assert run(c, "spawn-limit", profile="factory") == []


KEEP = ["PATH", "VIRTUAL_ENV"]
PROFILES = [("CPU", "cpu", "batchspawner.SlurmSpawner", {"req_partition": "cpu"})]


@pytest.mark.parametrize(
    ("spawner", "settings", "broken"),
    [
        ("batchspawner.SlurmSpawner", {}, True),
        ("batchspawner.SlurmSpawner", {"Spawner": KEEP}, False),
        ("batchspawner.SlurmSpawner", {"BatchSpawnerBase": KEEP}, False),
        ("batchspawner.SlurmSpawner", {"BatchSpawnerBase": KEEP, "SlurmSpawner": ["LANG"]}, True),
        ("wrapspawner.ProfilesSpawner", {"Spawner": KEEP}, False),
        # wrapspawner copies the wrapper's env_keep onto the child: BatchSpawnerBase loses
        ("wrapspawner.ProfilesSpawner", {"BatchSpawnerBase": KEEP}, True),
        ("wrapspawner.ProfilesSpawner", {"child": KEEP}, False),
        ("simple", {}, False),  # local processes: not this rule's business
    ],
)
def test_env_keep(spawner: str, settings: dict[str, list[str]], broken: bool) -> None:
    """Do batch jobs keep PATH, seen through traitlets' and wrapspawner's precedence?"""
    c = Config()
    c.JupyterHub.spawner_class = spawner
    child = {"req_partition": "cpu"}
    for section, keep in settings.items():
        if section == "child":
            child["env_keep"] = keep  # type: ignore[assignment]
        else:
            c[section].env_keep = keep
    c.ProfilesSpawner.profiles = [(*PROFILES[0][:3], child)]
    assert bool(run(c, "env-keep")) is broken


def test_scopes_that_reach_other_users() -> None:
    """Are self-filtered scopes harmless and unfiltered or other-filtered power scopes not?"""
    assert check.power_scopes(["access:servers!server", "users:activity!user", "read:users"]) == []
    risky = ["inherit", "admin:users", "access:servers!user=bob", "servers!group=learners"]
    assert check.power_scopes(risky) == risky


def test_privileged_servers_tokens_and_services() -> None:
    """Are inherit on server tokens, and admin on a Jupyter-server service, errors?"""
    c = Config()
    c.Spawner.server_token_scopes = ["inherit"]
    c.SlurmSpawner.oauth_client_allowed_scopes = ["access:servers!server", "admin:servers"]
    found = run(c, "privileged-servers")
    assert [f.setting for f in found] == [
        "c.Spawner.server_token_scopes",
        "c.SlurmSpawner.oauth_client_allowed_scopes",
    ]
    c = Config()
    c.JupyterHub.services.append({"name": "lab", "command": ["jupyter", "lab"]})  # lazy
    c.JupyterHub.load_roles = [{"name": "admin", "services": ["lab"]}]
    assert run(c, "privileged-servers")
    c.JupyterHub.load_roles = [{"name": "server", "scopes": ["users:activity!user"]}]
    assert run(c, "privileged-servers") == []


def formgrader(*roles: dict[str, Any]) -> Config:
    c = Config()
    c.JupyterHub.services = [{"name": "course101", "command": ["jupyterhub-singleuser"]}]
    c.JupyterHub.load_groups = {"instructors": ["ada"], "learners": {"users": ["bob"]}}
    c.JupyterHub.load_roles = list(roles)
    return c


def test_formgrader_reachable() -> None:
    """Is the course service (our YAML's course id) for instructors only, and reachable?"""
    context = check.Context(source=Path("config.yml"), base=Path("."), course_ids=("course101",))
    only = {"groups": ["instructors"], "scopes": ["access:services!service=course101"]}
    assert run(formgrader({"name": "fg", **only}), "formgrader-reachable", context=context) == []
    nobody = run(formgrader(), "formgrader-reachable", context=context)
    assert [f.severity for f in nobody] == ["warning"]
    for role in [
        {"name": "user", "scopes": ["self", "access:services"]},
        {"name": "fg", "users": ["ada", "bob"], "scopes": ["access:services!service=course101"]},
        {"name": "fg", "groups": ["learners"], "scopes": ["access:services"]},
    ]:
        found = run(formgrader(role), "formgrader-reachable", context=context)
        assert [f.severity for f in found] == ["error"], role


def test_oidc_username_claim() -> None:
    """Is email an error whatever the OAuthenticator, sub fine, a function a warning?"""
    c = Config()
    c.GenericOAuthenticator.username_claim = "sub"
    assert run(c, "oidc-email") == []
    c.GoogleOAuthenticator.username_key = "email"
    c.GenericOAuthenticator.username_claim = lambda user: user["email"]
    assert sorted(f.severity for f in run(c, "oidc-email")) == ["error", "warning"]


@pytest.mark.parametrize(
    ("command", "scopes", "bad"),
    [
        ([], ["list:users", "read:users:activity", "read:servers", "delete:servers"], False),
        ([], ["list:users", "read:users", "admin:servers"], True),
        (["--cull-users"], ["list:users", "read:servers", "delete:servers", "admin:users"], False),
        ([], ["list:users", "read:servers", "delete:servers", "admin:users"], True),
    ],
)
def test_culler_least_privilege(command: list[str], scopes: list[str], bad: bool) -> None:
    """Does the culler get only what it needs (admin:users only to cull users)?"""
    c = Config()
    c.JupyterHub.services = [
        {"name": "idle-culler", "command": ["jupyterhub-idle-culler", *command]}
    ]
    c.JupyterHub.load_roles = [{"name": "culler", "services": ["idle-culler"], "scopes": scopes}]
    assert bool(run(c, "culler-privilege")) is bad


def test_factory_only_warnings() -> None:
    """Are admin users and SQLite warnings on the factory and silent locally?"""
    c = Config()
    c.Authenticator.admin_users = {"ada"}
    c.JupyterHub.db_url = "sqlite:////srv/hub/jupyterhub.sqlite"
    for rule_id in ("admin-users", "sqlite-db"):
        assert [f.severity for f in run(c, rule_id, profile="factory")] == ["warning"]
        assert run(c, rule_id, profile="local") == []
    c.JupyterHub.db_url = "postgresql://hub@db/hub"
    assert run(c, "sqlite-db", profile="factory") == []


def test_main_check_clean_profile(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Does a clean profile print only the summary and return 0?"""
    assert check.main_check(provision(tmp_path, "factory"), None) == 0
    assert (
        capsys.readouterr()
        .out.splitlines()[-1]
        .endswith("0 error(s), 0 warning(s) (factory profile)")
    )
    with pytest.raises(HubConfigError, match="local or factory"):
        check.main_check(BAD, "cloud")


def test_courses_rules() -> None:
    """A course group without its course, a learner who teaches, two courses in one folder."""
    context = check.Context(
        source=Path("config.yml"), base=Path("."), course_ids=("ml101", "hpc201")
    )

    def service(name: str, cwd: str) -> dict[str, Any]:
        return {"name": name, "cwd": cwd, "command": ["aifkit-singleuser"]}

    c = Config()
    c.JupyterHub.services = [service("ml101", "/srv/ml101"), service("hpc201", "/srv/hpc201")]
    c.JupyterHub.load_groups = {
        "formgrade-ml101": ["ada"],
        "nbgrader-ml101": ["alice", "bob"],
        "formgrade-hpc201": ["grace"],
        "nbgrader-hpc201": ["bob"],
    }
    assert run(c, "courses", context=context) == []
    c.JupyterHub.load_groups["formgrade-ai301"] = ["ada"]  # no such course
    c.JupyterHub.load_groups["formgrade-hpc201"] = ["grace", "bob"]  # bob learns in ml101
    c.JupyterHub.services[1]["cwd"] = "/srv/ml101"  # one gradebook for two courses
    found = [f.message for f in run(c, "courses", context=context)]
    assert len(found) == 3, found
    assert "formgrade-ai301 is for course ai301" in found[0]
    assert found[1].startswith("bob is in a learner group and an instructor group")
    assert "courses ml101 and hpc201 run in the same folder" in found[2]


def test_a_two_course_yaml_checks_clean(tmp_path: Path) -> None:
    data = yaml.safe_load((REPO / "hub-config" / "local" / "config.yml").read_text())
    for key in ("course_id", "course_root", "instructors", "learners", "release"):
        data.pop(key)
    data["courses"] = [
        {"id": "ml101", "root": "ml101", "instructors": ["ada"], "learners": ["alice", "bob"]},
        {"id": "hpc201", "root": "hpc201", "instructors": ["grace"], "learners": ["bob"]},
    ]
    data["state_dir"] = "state"
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump(data))
    c, context = check.load(path)
    assert context.course_ids == ("ml101", "hpc201")
    assert rules(check.check(c, context=context), "courses") == []
    assert rules(check.check(c, context=context), "formgrader-reachable") == []
