"""``aifkit hub check``: lint a JupyterHub configuration for insecure or broken settings.

The check reads a traitlets ``Config``, what JupyterHub itself loads, so a hand-written
``jupyterhub_config.py`` is checked as well as our YAML (``load`` turns either into a Config).
Each rule is a small function registered with ``@rule``; it yields ``Issue``s and ``check`` adds
the rule id. Every finding names the setting and says how to fix it.

Profiles: ``factory`` (an exposed hub whose servers are batch jobs) is held to stricter rules than
``local`` (a single-machine demo on loopback). The profile comes from ``--profile``, else from the
YAML's ``profile:``, else it is detected: batchspawner/wrapspawner servers or a bind address that
is not loopback mean factory.

Secret files are checked where the check runs: a file that is there and readable by others is an
error; a missing one is a warning on the factory (provision it, then run the check on the hub
host) and nothing on the local hub (its first start makes them). Relative paths are taken from the
configuration file's folder.
"""

from __future__ import annotations

import ipaddress
import os
import pkgutil
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple
from urllib.parse import urlparse

from traitlets.config import Config
from traitlets.config.loader import LazyConfigValue, PyFileConfigLoader

from aifkit.hub import apply, reservation, schema
from aifkit.hub.schema import HubConfig, HubConfigError

Severity = Literal["error", "warning"]
Profile = Literal["local", "factory"]

CHECK_ENV = "AIFKIT_HUB_CHECK"
# What a secret stands in for when the check cannot read its file (missing, or not ours to
# read); ``secrets.load`` returns it under AIFKIT_HUB_CHECK=1. A placeholder token is "set".
PLACEHOLDER = "aifkit-hub-check-placeholder"

# Scopes that give power over other users, their servers, tokens, groups or the hub itself.
# A self filter ("!user", "!server") keeps a scope to its owner; any other filter does not.
POWER_SCOPES = frozenset(
    {
        "admin-ui",
        "admin:users",
        "admin:auth_state",
        "users",
        "delete:users",
        "admin:servers",
        "admin:server_state",
        "servers",
        "start:servers",
        "delete:servers",
        "access:servers",
        "tokens",
        "admin:groups",
        "groups",
        "delete:groups",
        "admin:services",
        "shares",
        "users:shares",
        "groups:shares",
        "proxy",
        "shutdown",
    }
)
SELF_FILTERS = ("!user", "!server")
EMAIL_CLAIMS = frozenset({"email", "mail"})
DISCOVERY_TIMEOUT_S = 5.0
LOOPBACK_NAMES = frozenset({"localhost", "ip6-localhost"})
JUPYTERHUB_BIND_URL = "http://:8000"  # JupyterHub's default: every interface
JUPYTERHUB_COOKIE_FILE = "jupyterhub_cookie_secret"
CHP_NAMES = ("configurable-http-proxy", "default", "ConfigurableHTTPProxy")
STUDENT_CODE_COMMANDS = re.compile(
    r"(jupyterhub|aifkit)-singleuser|jupyterhub\.singleuser|aifkit\.hub\.singleuser|jupyter-(lab|notebook|server)"
    r"|jupyter(lab)?\s+(lab|notebook|server)|\bnbgrader\b|formgrader"
)
CULLER_COMMANDS = re.compile(r"jupyterhub[-_]idle[-_]culler|cull_idle_servers")
BATCH_CLASS = re.compile(r"(Slurm|Torque|PBS|Moab|Condor|LSF|SGE|GridEngine|Batch)\w*Spawner")
LEARNER_GROUP = re.compile(r"learner|student|^nbgrader-", re.IGNORECASE)
INSTRUCTOR_GROUP = re.compile(r"instructor|teacher|^formgrade-", re.IGNORECASE)
COURSE_GROUP = re.compile(r"^(formgrade|nbgrader)-(?P<course>.+)$")
SPAWNER_SECTIONS = ("Spawner", "SpawnerBase")


class Issue(NamedTuple):
    """What a rule function reports; ``check`` adds the rule's id."""

    severity: Severity
    setting: str
    message: str
    fix: str


@dataclass(frozen=True)
class HubFinding:
    """One insecure or broken setting and how to fix it."""

    rule: str
    severity: Severity
    setting: str  # e.g. "c.JupyterHub.cookie_secret_file"
    message: str
    fix: str

    def line(self) -> str:
        """``ERROR rule: message (setting) -> fix``: one line of ``aifkit hub check``."""
        return f"{self.severity.upper()} {self.rule}: {self.message} ({self.setting}) -> {self.fix}"


@dataclass(frozen=True)
class Context:
    """What the check knows besides the Config: where it came from and our YAML's settings."""

    source: Path
    base: Path  # relative paths in the config are taken from here
    profile: Profile | None = None  # the YAML's profile: key
    course_ids: tuple[str, ...] = ()  # the formgrader services' names in our YAML
    # secret files whose values went into the Config: setting -> path (only our YAML says)
    secret_files: dict[str, Path] = field(default_factory=dict)
    oidc_issuer: str = ""  # our YAML's oidc.issuer: the check reads its discovery document


# ---------------------------------------------------------------- loading


def load(path: Path) -> tuple[Config, Context]:
    """The Config JupyterHub would load from ``path`` (a .py or our .yml file, or their folder)."""
    path = Path(path)
    if path.is_dir():  # our config.yml, else a hand-written jupyterhub_config.py
        yaml_file = path / "config.yml"
        path = yaml_file if yaml_file.is_file() else path / "jupyterhub_config.py"
    if not path.is_file():
        raise HubConfigError(f"{path}: no such hub configuration file")
    if path.suffix in (".yml", ".yaml"):
        return _load_yaml(path)
    if path.suffix == ".py":
        return _load_python(path)
    raise HubConfigError(f"{path}: expected a jupyterhub_config.py or a config.yml")


def _load_yaml(path: Path) -> tuple[Config, Context]:
    hub = schema.load(path)
    secrets = apply.Secrets(
        proxy_token=_read_secret(hub.path(hub.proxy_token_file)),
        user_password=_read_secret(hub.path(hub.password_file))
        if hub.auth == "shared-password"
        else "",
        oidc_client_secret=_read_secret(Path(hub.oidc.client_secret_file)) if hub.oidc else "",
    )
    c = Config()
    apply.apply(hub, c, secrets)
    return c, _context(path, hub)


def _read_secret(path: Path) -> str:
    """The secret's text, or PLACEHOLDER when this user cannot read the file."""
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError:
        return PLACEHOLDER


def _context(source: Path, hub: HubConfig | None) -> Context:
    if hub is None:
        return Context(source=source, base=source.resolve().parent)
    where = f" in {source.name}" if source.suffix in (".yml", ".yaml") else " in the hub YAML"
    files = {f"proxy_token_file{where}": hub.path(hub.proxy_token_file)}
    if hub.auth == "shared-password":
        files[f"password_file{where}"] = hub.path(hub.password_file)
    if hub.auth == "oidc" and hub.oidc is not None:
        files[f"oidc.client_secret_file{where}"] = Path(hub.oidc.client_secret_file)
    profile: Profile = "factory" if hub.profile == "factory" else "local"
    return Context(
        source=source,
        base=source.resolve().parent,
        profile=profile,
        course_ids=tuple(course.id for course in hub.course_list),
        secret_files=files,
        oidc_issuer=hub.oidc.issuer if hub.auth == "oidc" and hub.oidc else "",
    )


class _Loader(PyFileConfigLoader):
    """JupyterHub's loader (get_config, load_subconfig) that keeps the file's namespace."""

    namespace: dict[str, Any] | None = None

    def _read_file_as_dict(self) -> None:
        def get_config() -> Config:
            return self.config

        namespace: dict[str, Any] = {
            "c": self.config,
            "load_subconfig": self.load_subconfig,
            "get_config": get_config,
            "__file__": self.full_filename,
        }
        with open(self.full_filename, "rb") as stream:
            exec(compile(stream.read(), self.full_filename, "exec"), namespace, namespace)
        self.namespace = namespace


@contextmanager
def _environment(name: str, value: str) -> Iterator[None]:
    before = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


def _load_python(path: Path) -> tuple[Config, Context]:
    loader = _Loader(path.name, str(path.resolve().parent))
    try:
        with _environment(CHECK_ENV, "1"):
            c = loader.load_config()
    except Exception as error:
        raise HubConfigError(
            f"{path}: loading it (with {CHECK_ENV}=1) failed: {type(error).__name__}: {error}"
        ) from error
    ours = [v for v in (loader.namespace or {}).values() if isinstance(v, HubConfig)]
    return c, _context(path, ours[0] if ours else None)


# ---------------------------------------------------------------- a read-only view of the Config


def _class_name(value: Any) -> str:
    if isinstance(value, type):
        return f"{value.__module__}.{value.__qualname__}"
    return str(value)


def _import_class(spec: Any) -> type | None:
    """The class a spawner setting names, when it imports here (JupyterHub imports it too)."""
    if isinstance(spec, type):
        return spec
    if not isinstance(spec, str) or "." not in spec:
        return None  # an entry-point name such as "simple"
    try:
        found = pkgutil.resolve_name(spec)
    except Exception:
        return None
    return found if isinstance(found, type) else None


def _section_names(spec: Any, fallback: list[str]) -> list[str]:
    """Config sections a class reads, base first (traitlets lets subclasses win)."""
    cls = _import_class(spec)
    if cls is None:
        return [*fallback, _class_name(spec).rsplit(".", 1)[-1]]
    return [k.__name__ for k in reversed(cls.__mro__) if k.__name__.endswith(SPAWNER_SECTIONS)]


def _from_package(spec: Any, package: str, pattern: re.Pattern[str]) -> bool:
    cls = _import_class(spec)
    if cls is not None:
        return any(k.__module__.split(".")[0] == package for k in cls.__mro__)
    name = _class_name(spec)
    return package in name or bool(pattern.search(name))


def is_batch(spec: Any) -> bool:
    """Does this spawner class come from batchspawner (servers as batch jobs)?"""
    return _from_package(spec, "batchspawner", BATCH_CLASS)


def is_wrapper(spec: Any) -> bool:
    """Is this spawner class a wrapspawner (ProfilesSpawner and kin)?"""
    return _from_package(spec, "wrapspawner", re.compile(r"(Profiles|Wrap)Spawner$"))


def _scope_base(scope: str) -> tuple[str, str]:
    base, _, filter_ = scope.partition("!")
    return base, f"!{filter_}" if filter_ else ""


def power_scopes(scopes: Iterable[str]) -> list[str]:
    """The scopes that reach other users (POWER_SCOPES not held to the owner), and inherit."""
    found = []
    for scope in scopes:
        base, filter_ = _scope_base(scope)
        if scope == "inherit" or (base in POWER_SCOPES and filter_ not in SELF_FILTERS):
            found.append(scope)
    return found


class ConfigView:
    """A read-only view of a Config: no section is created, lazy values (append...) resolved."""

    def __init__(self, c: Config, profile: Profile | None, context: Context | None) -> None:
        self.c = c
        self.context = context
        self.profile: Profile = profile or (context.profile if context else None) or self._detect()

    def get(self, section: str, key: str, default: Any = None) -> Any:
        """``c.<section>.<key>`` as set in the config, else ``default``."""
        if not dict.__contains__(self.c, section):
            return default
        values = dict.__getitem__(self.c, section)
        if not isinstance(values, dict) or key not in values:
            return default
        value = dict.__getitem__(values, key)
        if isinstance(value, LazyConfigValue):  # c.X.y.append(...) on a value set nowhere else
            value = value.get_value(_lazy_initial(value, default))
        return value

    def each(self, suffix: str | tuple[str, ...], key: str) -> list[tuple[str, Any]]:
        """``(section, value)`` for every section named ``*<suffix>`` that sets ``key``."""
        sentinel = object()
        found = []
        for section in list(self.c):
            if section.endswith(suffix):
                value = self.get(section, key, sentinel)
                if value is not sentinel:
                    found.append((section, value))
        return found

    def path(self, value: str) -> Path:
        """A path setting: relative ones are taken from the configuration file's folder."""
        path = Path(value)
        base = self.context.base if self.context else Path.cwd()
        return path if path.is_absolute() else base / path

    @property
    def bind_url(self) -> str:
        url = self.get("JupyterHub", "bind_url")
        if url:
            return str(url)
        ip, port = self.get("JupyterHub", "ip"), self.get("JupyterHub", "port")
        if ip is None and port is None:
            return JUPYTERHUB_BIND_URL
        host = f"[{ip}]" if ip and ":" in str(ip) else (ip or "")
        return f"http://{host}:{port or 8000}"

    @property
    def public(self) -> bool:
        """Does the hub listen on an address other than loopback?"""
        url = urlparse(self.bind_url)
        if url.scheme.endswith("+unix"):
            return False
        return _remote_host(url.hostname or "")

    @property
    def spawner_class(self) -> Any:
        return self.get("JupyterHub", "spawner_class", "localprocess")

    @property
    def child_spawners(self) -> list[tuple[Any, dict[str, Any]]]:
        """``(class, child_config)`` of each ProfilesSpawner profile."""
        children = []
        for entry in self.get("ProfilesSpawner", "profiles", []) or []:
            if isinstance(entry, list | tuple) and len(entry) >= 3:
                child_config = entry[3] if len(entry) > 3 and isinstance(entry[3], dict) else {}
                children.append((entry[2], child_config))
        return children

    @property
    def batch(self) -> bool:
        """Do learners' servers run as batch jobs (directly or as ProfilesSpawner children)?"""
        return is_batch(self.spawner_class) or any(is_batch(k) for k, _ in self.child_spawners)

    @property
    def authenticator_class(self) -> str:
        return _class_name(self.get("JupyterHub", "authenticator_class", "pam"))

    @property
    def services(self) -> list[dict[str, Any]]:
        return [s for s in self.get("JupyterHub", "services", []) or [] if isinstance(s, dict)]

    @property
    def roles(self) -> list[dict[str, Any]]:
        return [r for r in self.get("JupyterHub", "load_roles", []) or [] if isinstance(r, dict)]

    @property
    def groups(self) -> dict[str, list[str]]:
        """``load_groups`` as group -> users (both the old list and the newer dict form)."""
        groups: dict[str, list[str]] = {}
        for name, value in (self.get("JupyterHub", "load_groups", {}) or {}).items():
            users = value.get("users", []) if isinstance(value, dict) else value
            groups[str(name)] = [str(u) for u in users or []]
        return groups

    @property
    def learners(self) -> set[str]:
        return {u for g, users in self.groups.items() if LEARNER_GROUP.search(g) for u in users}

    def _detect(self) -> Profile:
        if self.batch or is_wrapper(self.spawner_class) or self.public:
            return "factory"
        return "local"


def _lazy_initial(value: LazyConfigValue, default: Any) -> Any:
    """The empty container a lazy append/update starts from: the default's, else its own kind."""
    if isinstance(default, list | dict | set):
        return default
    update = value.to_dict().get("update")
    return {} if isinstance(update, dict) else set() if update is not None else []


def _command(service: dict[str, Any]) -> str:
    command = service.get("command") or []
    return " ".join(command) if isinstance(command, list | tuple) else str(command)


def runs_student_code(service: dict[str, Any]) -> bool:
    """A Jupyter server or nbgrader (the formgrader autogrades learners' notebooks)."""
    return bool(STUDENT_CODE_COMMANDS.search(_command(service))) or is_formgrader(service, ())


def is_formgrader(service: dict[str, Any], course_ids: tuple[str, ...]) -> bool:
    environment = service.get("environment") or {}
    default_url = str(environment.get("JUPYTERHUB_DEFAULT_URL", ""))
    name = str(service.get("name", ""))
    return (
        "formgrader" in default_url
        or "formgrader" in name
        or "formgrader" in _command(service)
        or name in course_ids
    )


def is_culler(service: dict[str, Any]) -> bool:
    return bool(CULLER_COMMANDS.search(_command(service))) or "cull" in str(service.get("name"))


def _role_scopes(role: dict[str, Any]) -> list[str]:
    """A role's scopes; the built-in admin role has every admin scope whatever it lists."""
    scopes = [str(s) for s in role.get("scopes") or []]
    return [*scopes, "admin:users", "admin:servers"] if role.get("name") == "admin" else scopes


def _role_setting(role: dict[str, Any]) -> str:
    return f"c.JupyterHub.load_roles[{role.get('name')!r}]"


def _service_setting(service: dict[str, Any]) -> str:
    return f"c.JupyterHub.services[{service.get('name')!r}]"


def _mode(path: Path) -> int | None:
    """The permission bits, or None when the file is not there for this user to see."""
    try:
        return path.stat().st_mode & 0o777
    except OSError:
        return None


# ---------------------------------------------------------------- the rules


@dataclass(frozen=True)
class Rule:
    id: str
    summary: str
    run: Callable[[ConfigView], Iterable[Issue]]  # yields what it finds; check() adds the id


RuleFunction = Callable[[ConfigView], Iterable[Issue]]
RULES: list[Rule] = []


def rule(rule_id: str, summary: str) -> Callable[[RuleFunction], RuleFunction]:
    """Register a rule function under ``rule_id`` (the order of RULES is the report's)."""

    def register(run: RuleFunction) -> RuleFunction:
        RULES.append(Rule(rule_id, summary, run))
        return run

    return register


def _secret_file(hub: ConfigView, setting: str, path: Path, what: str) -> Iterator[Issue]:
    """A secret file readable by others is an error; a missing one a warning on the factory."""
    mode = _mode(path)
    if mode is None:
        if hub.profile == "factory":
            yield Issue(
                "warning",
                setting,
                f"{what} {path} is missing here (or in a folder this user cannot enter)",
                "provision it on the hub host, mode 600 and owned by the hub's user, then run "
                "the check there as that user",
            )
    elif mode & 0o077:
        yield Issue(
            "error",
            setting,
            f"{what} {path} is readable or writable by others (mode {mode:o})",
            f"chmod 600 {path}",
        )


@rule("cookie-secret", "the cookie secret is in a mode-600 file, never inline in the config")
def cookie_secret(hub: ConfigView) -> Iterator[Issue]:
    if hub.get("JupyterHub", "cookie_secret"):
        yield Issue(
            "error",
            "c.JupyterHub.cookie_secret",
            "the cookie secret is written into the config: whoever reads the config can forge "
            "a login cookie for any user",
            "delete it and set c.JupyterHub.cookie_secret_file to a file only the hub's user "
            "can read (chmod 600)",
        )
    path = hub.path(str(hub.get("JupyterHub", "cookie_secret_file") or JUPYTERHUB_COOKIE_FILE))
    yield from _secret_file(hub, "c.JupyterHub.cookie_secret_file", path, "cookie secret")


@rule("proxy-token", "the proxy's API token is set, from a secret file or the environment")
def proxy_token(hub: ConfigView) -> Iterator[Issue]:
    proxy = _class_name(hub.get("JupyterHub", "proxy_class", "configurable-http-proxy"))
    if not proxy.endswith(CHP_NAMES):
        return  # another proxy (traefik...) has its own credentials
    token = (
        hub.get("ConfigurableHTTPProxy", "auth_token")
        or hub.get("JupyterHub", "proxy_auth_token")
        or os.environ.get("CONFIGPROXY_AUTH_TOKEN")
    )
    if not token:
        yield Issue(
            "error",
            "c.ConfigurableHTTPProxy.auth_token",
            "no proxy auth token: JupyterHub makes a random one at each start, so a proxy that "
            "outlives a restart refuses the new hub and its routes go stale",
            "read it from a mode-600 file (c.ConfigurableHTTPProxy.auth_token = "
            "Path(...).read_text().strip()) or set CONFIGPROXY_AUTH_TOKEN in the hub's environment",
        )


@rule("secret-files", "the TLS key and the secret files the config reads are mode 600")
def secret_files(hub: ConfigView) -> Iterator[Issue]:
    key = hub.get("JupyterHub", "ssl_key")
    if key:
        yield from _secret_file(hub, "c.JupyterHub.ssl_key", hub.path(str(key)), "TLS key")
    for setting, path in (hub.context.secret_files if hub.context else {}).items():
        yield from _secret_file(hub, setting, path, "secret file")


@rule("allow-list", "only listed users or groups log in: no allow_all, open signup or dummy login")
def allow_list(hub: ConfigView) -> Iterator[Issue]:
    fix = "list who may log in: c.Authenticator.allowed_users and/or allowed_groups"
    if hub.authenticator_class in ("dummy", "jupyterhub.auth.DummyAuthenticator"):
        yield Issue(
            "error",
            "c.JupyterHub.authenticator_class",
            "DummyAuthenticator lets anyone log in under any name",
            "use shared-password for the local demo, GenericOAuthenticator (OIDC) on the factory",
        )
    for section, value in hub.each("Authenticator", "allow_all"):
        if value:
            yield Issue(
                "error",
                f"c.{section}.allow_all",
                "allow_all: everybody who can authenticate gets a server",
                f"set it to False and {fix}",
            )
    if hub.get("NativeAuthenticator", "open_signup"):
        yield Issue(
            "error",
            "c.NativeAuthenticator.open_signup",
            "open signup: anyone can create an account and log in at once",
            "set it to False and authorize new accounts by hand, or use OIDC with allowed_groups",
        )
    listed = [
        v for key in ("allowed_users", "allowed_groups") for _, v in hub.each("Authenticator", key)
    ]
    if not any(listed):
        yield Issue(
            "error",
            "c.Authenticator.allowed_users",
            "no allowed_users or allowed_groups: depending on the authenticator nobody but "
            "admins can log in, or everybody who can authenticate can",
            fix,
        )


@rule("plain-http", "an exposed factory hub serves HTTPS (ssl_cert and ssl_key)")
def plain_http(hub: ConfigView) -> Iterator[Issue]:
    if not hub.public or (hub.get("JupyterHub", "ssl_cert") and hub.get("JupyterHub", "ssl_key")):
        return
    message = f"the hub listens on {hub.bind_url} without TLS: passwords and cookies in clear"
    fix = (
        "set c.JupyterHub.ssl_cert and ssl_key (https:// bind_url), or bind to 127.0.0.1 "
        "behind a TLS-terminating reverse proxy"
    )
    severity: Severity = "error" if hub.profile == "factory" else "warning"
    yield Issue(severity, "c.JupyterHub.bind_url", message, fix)


@rule(
    "privileged-servers", "no inherit or admin scopes on servers or services that run student code"
)
def privileged_servers(hub: ConfigView) -> Iterator[Issue]:
    fix = (
        "remove inherit and admin scopes: the server role keeps its default "
        "(users:activity!user, access:servers!server), a service gets only what it needs"
    )
    student = {str(s.get("name")): s for s in hub.services if runs_student_code(s)}
    for role in hub.roles:
        targets = (["every user's server"] if role.get("name") == "server" else []) + [
            f"service {name}" for name in role.get("services") or [] if name in student
        ]
        power = power_scopes(_role_scopes(role))
        if targets and power:
            yield Issue(
                "error",
                _role_setting(role),
                f"{', '.join(targets)} runs learners' code with {power}: that code acts with "
                "its owner's or admin rights over other users",
                fix,
            )
    for key in ("server_token_scopes", "oauth_client_allowed_scopes"):
        for where, value in hub.each(SPAWNER_SECTIONS, key):
            power = power_scopes(value) if isinstance(value, list | tuple | set) else []
            if power:
                yield Issue(
                    "error",
                    f"c.{where}.{key}",
                    f"servers get {power} for their tokens, which learners' code can read",
                    "leave it unset (the server role), or list only self-filtered scopes",
                )
    admins = {str(u) for _, users in hub.each("Authenticator", "admin_users") for u in users or []}
    for name, service in student.items():
        power = power_scopes(service.get("oauth_client_allowed_scopes") or [])
        if service.get("admin") or power or {name, str(service.get("user"))} & admins:
            yield Issue(
                "error",
                _service_setting(service),
                f"service {name} runs learners' code (a Jupyter server, nbgrader) with admin "
                f"rights{f' ({power})' if power else ''}",
                "remove admin: True (and its name from admin_users); grant users access to it "
                "with a role scoped access:services!service=<name>",
            )


@rule("privileged-learners", "learners hold no scope over other users")
def privileged_learners(hub: ConfigView) -> Iterator[Issue]:
    learners = hub.learners
    for role in hub.roles:
        groups = [g for g in role.get("groups") or [] if LEARNER_GROUP.search(str(g))]
        users = [u for u in role.get("users") or [] if u in learners]
        who = (["every user"] if role.get("name") == "user" else []) + groups + users
        power = [s for s in power_scopes(_role_scopes(role)) if s != "inherit"]
        if who and power:
            yield Issue(
                "error",
                _role_setting(role),
                f"{', '.join(who)} get {power}: a learner can act on other users' servers, "
                "tokens or accounts",
                "grant these scopes to an instructors group (or a service) only",
            )


@rule("formgrader-reachable", "the formgrader service is reachable by instructors only")
def formgrader_reachable(hub: ConfigView) -> Iterator[Issue]:
    courses = hub.context.course_ids if hub.context else ()
    for service in hub.services:
        name = str(service.get("name"))
        if not is_formgrader(service, courses):
            continue
        granting = [
            r
            for r in hub.roles
            if {"access:services", f"access:services!service={name}"} & set(_role_scopes(r))
        ]
        for role in granting:
            learner_groups = [g for g in role.get("groups") or [] if LEARNER_GROUP.search(str(g))]
            learner_users = [u for u in role.get("users") or [] if u in hub.learners]
            who = (["every user"] if role.get("name") == "user" else []) + learner_groups
            who += learner_users
            if who:
                yield Issue(
                    "error",
                    _role_setting(role),
                    f"{', '.join(who)} can open the formgrader {name}: grades, solutions and "
                    "every learner's submission",
                    f"grant access:services!service={name} to the instructors group only",
                )
        if not [r for r in granting if r.get("name") != "admin"]:
            yield Issue(
                "warning",
                _service_setting(service),
                f"no role grants access to the formgrader {name}: only admins can open it",
                f"add a role with scopes [access:services!service={name}] and groups [instructors]",
            )


@rule("courses", "each course group has its course, no learner teaches, no shared gradebook")
def courses(hub: ConfigView) -> Iterator[Issue]:
    known = hub.context.course_ids if hub.context else ()
    formgraders = [s for s in hub.services if is_formgrader(s, known)]
    names = {str(s.get("name")) for s in formgraders}
    for group in hub.groups:
        match = COURSE_GROUP.match(group)
        if match and match["course"] not in names:
            yield Issue(
                "error",
                f"c.JupyterHub.load_groups[{group!r}]",
                f"group {group} is for course {match['course']}, which has no formgrader service",
                f"add the course {match['course']} (its formgrader service), or remove the group",
            )
    teaching = {u for g, users in hub.groups.items() if INSTRUCTOR_GROUP.search(g) for u in users}
    for user in sorted(teaching & hub.learners):
        yield Issue(
            "error",
            "c.JupyterHub.load_groups",
            f"{user} is in a learner group and an instructor group: as an instructor they see "
            "the solutions, the hidden tests and every learner's work",
            f"take {user} out of one of them (use another account to teach)",
        )
    folders: dict[str, str] = {}
    for service in formgraders:
        folder = str(Path(str(service.get("cwd") or ".")).resolve())
        name = str(service.get("name"))
        if folder in folders:
            yield Issue(
                "error",
                _service_setting(service),
                f"courses {folders[folder]} and {name} run in the same folder {folder}: they "
                "share one gradebook (gradebook.db there) and one source folder",
                "give each course its own folder (courses[].root)",
            )
        folders[folder] = name


@rule(
    "oidc-email", "OIDC usernames come from a stable claim (sub, preferred_username), never email"
)
def oidc_email(hub: ConfigView) -> Iterator[Issue]:
    fix = "use sub or a site-managed stable claim like preferred_username"
    for key in ("username_claim", "username_key"):
        for section, value in hub.each("OAuthenticator", key):
            if callable(value):
                yield Issue(
                    "warning",
                    f"c.{section}.{key}",
                    "the username comes from a function the check cannot read",
                    f"make sure it does not return the email address; {fix}",
                )
            elif str(value).lower() in EMAIL_CLAIMS:
                yield Issue(
                    "error",
                    f"c.{section}.{key}",
                    f"usernames from the {value!r} claim: an address can change or be reassigned, "
                    "and its new owner inherits the old account, its files and grades",
                    fix,
                )


# ---------------------------------------------------------------- OpenID Connect (issue 17)

OAUTH_SECTIONS = "OAuthenticator"
GROUPS_KEYS = ("auth_state_groups_key", "claim_groups_key")
USER_INFO_PREFIX = "oauth_user."  # OAuthenticator keeps the userinfo answer under this key


def _oauth(hub: ConfigView, key: str) -> list[tuple[str, Any]]:
    return hub.each(OAUTH_SECTIONS, key)


def _groups_claim(hub: ConfigView) -> tuple[str, str] | None:
    """``(setting, claim)`` of the userinfo claim the hub takes groups from, if it names one."""
    for key in GROUPS_KEYS:
        for section, value in _oauth(hub, key):
            if isinstance(value, str) and value:
                claim = value.removeprefix(USER_INFO_PREFIX) if key != "claim_groups_key" else value
                return f"c.{section}.{key}", claim
            if callable(value):
                return f"c.{section}.{key}", ""
    return None


@rule("oidc-groups", "OIDC allowed groups come from a group claim, with manage_groups on")
def oidc_groups(hub: ConfigView) -> Iterator[Issue]:
    for section, groups in _oauth(hub, "allowed_groups"):
        if not groups:
            continue
        if not hub.get(section, "manage_groups") and not hub.get("OAuthenticator", "manage_groups"):
            yield Issue(
                "error",
                f"c.{section}.manage_groups",
                f"allowed_groups {sorted(groups)} without manage_groups: OAuthenticator >= 17 "
                "refuses it and the hub exits at start",
                f"set c.{section}.manage_groups = True",
            )
        if _groups_claim(hub) is None:
            yield Issue(
                "error",
                f"c.{section}.auth_state_groups_key",
                f"allowed_groups {sorted(groups)} but no group claim: no user ever has a group, "
                "so nobody outside allowed_users can log in",
                f'set c.{section}.auth_state_groups_key = "oauth_user.groups" (the claim your '
                "provider sends the groups in)",
            )


def _remote_host(host: str) -> bool:
    """A host other than loopback: "" is every interface, a name resolves to who knows what."""
    if host in LOOPBACK_NAMES:
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True


def _plain_http(url: str) -> bool:
    """An http:// URL to a host other than loopback (tokens and codes travel in clear)."""
    parsed = urlparse(url)
    return parsed.scheme == "http" and _remote_host(parsed.hostname or "")


@rule("oidc-https", "the OIDC callback and the provider's endpoints use HTTPS")
def oidc_https(hub: ConfigView) -> Iterator[Issue]:
    for section, url in _oauth(hub, "oauth_callback_url"):
        if isinstance(url, str) and _plain_http(url):
            yield Issue(
                "error" if hub.profile == "factory" else "warning",
                f"c.{section}.oauth_callback_url",
                f"the callback {url} is plain HTTP: the authorization code and the login "
                "cookie cross the network in clear",
                "use https:// (the hub's public URL + /hub/oauth_callback) and register "
                "exactly that URL at the provider",
            )
    for key in ("authorize_url", "token_url", "userdata_url"):
        for section, url in _oauth(hub, key):
            if isinstance(url, str) and _plain_http(url):
                yield Issue(
                    "error",
                    f"c.{section}.{key}",
                    f"{url} is plain HTTP: the client secret and users' tokens travel in clear",
                    "use the provider's https:// endpoint (or its issuer's discovery document)",
                )


def _supported(document: dict[str, Any], key: str) -> set[str] | None:
    """A list the discovery document publishes, or None when it says nothing (optional)."""
    value = document.get(key)
    return {str(v) for v in value} if isinstance(value, list) else None


@rule("oidc-discovery", "the provider publishes the scopes and claims the hub asks for")
def oidc_discovery(hub: ConfigView) -> Iterator[Issue]:
    issuer = hub.context.oidc_issuer if hub.context else ""
    if not issuer:
        return
    from aifkit.hub import discovery
    from aifkit.hub.schema import Oidc

    setting = "oidc.issuer in the hub YAML"
    probe = Oidc(issuer=issuer, client_id="-", client_secret_file="-", callback_url="-")
    try:
        document = discovery.fetch(probe, timeout_s=DISCOVERY_TIMEOUT_S)
    except HubConfigError as error:
        yield Issue(
            "warning",
            setting,
            f"{error}; the hub reads it at start and cannot log anyone in without it",
            "run the check on the hub host, where the provider is reachable, and fix the "
            "issuer URL if it is wrong",
        )
        return
    for key in discovery.ENDPOINTS.values():
        url = document.get(key)
        if isinstance(url, str) and _plain_http(url):
            yield Issue(
                "error",
                setting,
                f"the provider's {key} {url} is plain HTTP: the client secret and users' "
                "tokens would travel in clear",
                "serve the provider over HTTPS (its issuer URL and endpoints)",
            )
    scopes = _supported(document, "scopes_supported")
    for section, wanted in _oauth(hub, "scope"):
        missing = sorted(set(wanted or ()) - scopes) if scopes is not None else []
        if missing:
            yield Issue(
                "warning",
                f"c.{section}.scope",
                f"the provider does not publish the scopes {missing} (scopes_supported: "
                f"{sorted(scopes or ())}): it may refuse the login or leave their claims out",
                "create those scopes at the provider (for Keycloak: client scopes), or remove them",
            )
    claims = _supported(document, "claims_supported")
    if claims is None:
        return
    wanted_claims = [
        (f"c.{section}.username_claim", str(value), "usernames")
        for section, value in _oauth(hub, "username_claim")
        if isinstance(value, str)
    ]
    found = _groups_claim(hub)
    if found and found[1]:
        wanted_claims.append((found[0], found[1], "groups"))
    for where, claim, purpose in wanted_claims:
        if claim not in claims:
            # claims_supported is only recommended, and some providers (Keycloak) leave mapped
            # claims such as groups out of it: a warning, verified at the first real login
            yield Issue(
                "warning",
                where,
                f"the provider does not list the claim {claim!r} the hub takes {purpose} from "
                f"(claims_supported: {sorted(claims)}): without it "
                + (
                    "nobody has a group and allowed_groups let nobody in"
                    if purpose == "groups"
                    else "nobody can log in"
                ),
                f"make the provider send {claim!r} in userinfo (for Keycloak: a mapper in a "
                "client scope the hub requests), or set the claim it does send",
            )


@rule("spawn-limit", "concurrent_spawn_limit is set (bursts at the start of a session)")
def spawn_limit(hub: ConfigView) -> Iterator[Issue]:
    limit = hub.get("JupyterHub", "concurrent_spawn_limit")
    if not limit:
        yield Issue(
            "error" if hub.profile == "factory" else "warning",
            "c.JupyterHub.concurrent_spawn_limit",
            "no concurrent_spawn_limit"
            + (" (0 is unlimited)" if limit == 0 else " (JupyterHub's default of 100 is implicit)")
            + ": a whole class logging in at once floods the spawner and the scheduler",
            "set it to what the hub and the scheduler absorb, e.g. 10 locally, 50 on the factory",
        )


@rule("env-keep", "batch servers keep PATH (env_keep): JupyterHub >= 5.2 keeps almost nothing")
def env_keep(hub: ConfigView) -> Iterator[Issue]:
    spawner = hub.spawner_class
    if is_batch(spawner):
        sections = _section_names(spawner, ["Spawner", "BatchSpawnerBase"])
        yield from _env_keep(hub, sections, {}, _class_name(spawner))
    elif is_wrapper(spawner):
        # wrapspawner links every trait the child shares with the wrapper, env_keep included:
        # the wrapper's value wins over the child's own sections unless child_config sets it
        sections = _section_names(spawner, ["Spawner", "WrapSpawner"])
        for child, child_config in hub.child_spawners:
            if is_batch(child):
                yield from _env_keep(hub, sections, child_config, _class_name(child))


def _env_keep(
    hub: ConfigView, sections: list[str], child: dict[str, Any], name: str
) -> Iterator[Issue]:
    value, where = None, "c.Spawner.env_keep"
    for section in sections:
        found = hub.get(section, "env_keep")
        if found is not None:
            value, where = found, f"c.{section}.env_keep"
    if "env_keep" in child:
        value, where = child["env_keep"], "c.ProfilesSpawner.profiles (child config env_keep)"
    if value is None or "PATH" not in value:
        yield Issue(
            "error",
            where,
            f"{name} jobs keep {list(value) if value is not None else 'only JupyterHub defaults'}"
            " from the hub's environment: without PATH the job cannot find jupyterhub-singleuser",
            "set c.Spawner.env_keep (wrapspawner copies it to its children) to include PATH, "
            "VIRTUAL_ENV, LANG and what the servers need",
        )


# ---------------------------------------------------------------- reservations (issue 16)


class _BatchRequest(NamedTuple):
    """What one batch profile asks SLURM for, as far as the reservations rule reads it."""

    setting: str
    partition: str
    reservation: str
    qos: str
    options: str


def _batch_requests(hub: ConfigView) -> list[_BatchRequest]:
    """The reservation, QOS, partition and options of every batch profile (or the one spawner)."""
    found = []
    for entry in hub.get("ProfilesSpawner", "profiles", []) or []:
        if isinstance(entry, list | tuple) and len(entry) > 3 and isinstance(entry[3], dict):
            child = entry[3]
            found.append(
                _BatchRequest(
                    f"c.ProfilesSpawner.profiles[{entry[1]!r}]",
                    str(child.get("req_partition", "")),
                    str(child.get("req_reservation", "")),
                    str(child.get("req_qos", "")),
                    str(child.get("req_options", "")),
                )
            )
    for section, name in hub.each("Spawner", "req_reservation"):
        found.append(
            _BatchRequest(
                f"c.{section}.req_reservation",
                str(hub.get(section, "req_partition", "")),
                str(name),
                str(hub.get(section, "req_qos", "")),
                str(hub.get(section, "req_options", "")),
            )
        )
    return found


@rule(
    "reservations",
    "a profile's reservation and QOS exist on the cluster, the reservation not over, "
    "on the profile's partition",
)
def reservations(hub: ConfigView) -> Iterator[Issue]:
    requests = _batch_requests(hub)
    to_ask = []
    for request in requests:
        if re.search(r"--(reservation|qos)\b", request.options):
            yield Issue(
                "warning",
                request.setting,
                f"--reservation or --qos in the extra options ({request.options}): "
                "nothing checks them there",
                "name them in the profile's reservation: and qos: keys",
            )
        for what, value in (("reservation", request.reservation), ("QOS", request.qos)):
            if value and not reservation.NAME.match(value):
                yield Issue(
                    "error",
                    request.setting,
                    f"{what} {value!r} is not a SLURM name (letters, digits, _ . -)",
                    f"give the {what}'s name exactly as the site created it",
                )
            elif value:
                to_ask.append(request)
    if not to_ask:
        return
    try:
        known = reservation.query()
        nodes_of = {r.partition: reservation.partition_nodes(r.partition) for r in to_ask}
        qos_known = reservation.qos_names() if any(r.qos for r in to_ask) else frozenset()
    except reservation.ReservationError as error:
        yield Issue(
            "warning",
            to_ask[0].setting,
            f"the reservations and QOS of the profiles were not checked: {error}",
            "run `aifkit hub check` on the hub host, where SLURM's commands answer",
        )
        return
    for request in dict.fromkeys(to_ask):
        if request.reservation and reservation.NAME.match(request.reservation):
            for problem in reservation.problems(
                request.reservation, request.partition, known, nodes_of
            ):
                yield Issue(
                    "error",
                    request.setting,
                    problem,
                    "create the reservation (scontrol create reservation) for the class's "
                    "dates and partition, or fix the profile's reservation:",
                )
        if request.qos and reservation.NAME.match(request.qos) and request.qos not in qos_known:
            yield Issue(
                "error",
                request.setting,
                f"the cluster has no QOS {request.qos!r} (it has: {', '.join(sorted(qos_known))})",
                "create it with sacctmgr add qos, or fix the profile's qos:",
            )


@rule("culler-privilege", "the idle culler has least privilege, not admin")
def culler_privilege(hub: ConfigView) -> Iterator[Issue]:
    for service in hub.services:
        if not is_culler(service):
            continue
        name = str(service.get("name"))
        allowed = {"delete:servers"} | (
            {"admin:users", "delete:users"} if "--cull-users" in _command(service) else set()
        )
        roles = [r for r in hub.roles if name in (r.get("services") or [])]
        excess = [
            s
            for r in roles
            for s in power_scopes(_role_scopes(r))
            if _scope_base(s)[0] not in allowed
        ]
        if service.get("admin") or excess:
            yield Issue(
                "error",
                _service_setting(service),
                f"the idle culler {name} runs as {'admin' if service.get('admin') else excess}: "
                "its token can do anything to any user",
                f"drop admin: True; give it a role with scopes {apply.CULLER_SCOPES}",
            )


@rule("admin-users", "no hub admins on the factory: roles give instructors what they need")
def admin_users(hub: ConfigView) -> Iterator[Issue]:
    if hub.profile != "factory":
        return
    for section, users in hub.each("Authenticator", "admin_users"):
        if users:
            yield Issue(
                "warning",
                f"c.{section}.admin_users",
                f"{sorted(users)} are full hub admins: access to every learner's server and token",
                "grant instructors a role with only what they need (e.g. the formgrader)",
            )


@rule("sqlite-db", "the factory hub's database is a server (PostgreSQL), not SQLite")
def sqlite_db(hub: ConfigView) -> Iterator[Issue]:
    url = str(hub.get("JupyterHub", "db_url") or "sqlite:///jupyterhub.sqlite")
    if hub.profile == "factory" and url.startswith("sqlite"):
        yield Issue(
            "warning",
            "c.JupyterHub.db_url",
            f"{url}: SQLite locks under a class of concurrent users and breaks on shared filesystems",
            "use PostgreSQL (postgresql://user@host/db)",
        )


# ---------------------------------------------------------------- learner isolation

SHARED_USER_SPAWNERS = re.compile(r"^simple$|SimpleLocalProcessSpawner$")


def _runs_as_hub_user(spec: Any) -> bool:
    """Does this spawner class run every server as the hub's own Unix user?"""
    cls = _import_class(spec)
    if cls is not None:
        return any(k.__name__ == "SimpleLocalProcessSpawner" for k in cls.__mro__)
    return bool(SHARED_USER_SPAWNERS.search(_class_name(spec)))


def _shared_user_reasons(hub: ConfigView) -> list[str]:
    """Why servers of this hub run as the hub's own Unix user (none: each as its own)."""
    spawner = hub.spawner_class
    classes = [k for k, _ in hub.child_spawners] if is_wrapper(spawner) else [spawner]
    reasons = [
        f"{_class_name(k)} runs every server as the hub's own Unix user"
        for k in classes
        if _runs_as_hub_user(k)
    ]
    if not any(is_batch(k) for k in classes):  # local processes of a hub run as root
        for section, args in hub.each(SPAWNER_SECTIONS, "args"):
            if "--allow-root" in (args or []):
                reasons.append(f"c.{section}.args has --allow-root: the servers run as root")
    return reasons


@rule("learner-isolation", "a hub for several users runs no two users' servers as one account")
def learner_isolation(hub: ConfigView) -> Iterator[Issue]:
    reasons = _shared_user_reasons(hub)
    users = {str(u) for _, v in hub.each("Authenticator", "allowed_users") for u in v or []}
    users |= {u for members in hub.groups.values() for u in members}
    groups = [g for _, v in hub.each("Authenticator", "allowed_groups") for g in v or []]
    if not reasons or (len(users) <= 1 and not groups):
        return
    who = f"{len(users)} users" + (f" and the groups {sorted(groups)}" if groups else "")
    yield Issue(
        "error",
        "c.JupyterHub.spawner_class",
        f"{who} share one Unix account ({'; '.join(reasons)}): each learner's kernel and "
        "terminal can read and change the others' work, the course source with its solutions, "
        "the gradebook and the hub's secrets",
        "start the local hub as root with isolation: unix-users (each server as its user's own "
        "account: aifkit.hub.local_spawner.IsolatedLocalSpawner), or serve a single user",
    )


# ---------------------------------------------------------------- entry points


def _as_profile(value: str | None) -> Profile | None:
    if value is None:
        return None
    if value not in ("local", "factory"):
        raise HubConfigError(f"profile must be local or factory, not {value!r}")
    return "factory" if value == "factory" else "local"


def check(
    c: Config, *, profile: str | None = None, context: Context | None = None
) -> list[HubFinding]:
    """Every finding of every rule on ``c``, errors first."""
    hub = ConfigView(c, _as_profile(profile), context)
    findings = [HubFinding(r.id, *issue) for r in RULES for issue in r.run(hub)]
    return sorted(findings, key=lambda f: f.severity != "error")


def main_check(path: Path, profile: str | None) -> int:
    """Print the findings on ``path``, one a line; 1 when any is an error, else 0."""
    wanted = _as_profile(profile)
    c, context = load(path)
    hub_profile = ConfigView(c, wanted, context).profile
    findings = check(c, profile=hub_profile, context=context)
    for finding in findings:
        print(finding.line())
    errors = sum(f.severity == "error" for f in findings)
    print(f"{path}: {errors} error(s), {len(findings) - errors} warning(s) ({hub_profile} profile)")
    return 1 if errors else 0
