"""The hub's configuration as data: a YAML file per profile, checked into typed settings.

``hub-config/<profile>/config.yml`` says what the hub is (where it listens, who may log in and
how, how servers start, the course it serves); ``apply.py`` turns it into JupyterHub settings.
Every problem names the key and says what is expected.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from aifkit.errors import AifkitError


class HubConfigError(AifkitError):
    """The hub configuration file is missing, malformed, or asks for something impossible."""


@dataclass(frozen=True)
class SpawnProfile:
    """One choice on the factory's spawn page: a SLURM allocation for a learner's server."""

    key: str
    display: str
    partition: str
    cpus: int = 4
    memory_gb: int = 16
    gpus: int = 0
    time: str = "02:00:00"
    extra: str = ""  # extra #SBATCH options, e.g. "--begin=now+1hour" in a test


@dataclass(frozen=True)
class Oidc:
    """OIDC login through GenericOAuthenticator; the username is a stable claim, never email."""

    authorize_url: str
    token_url: str
    userdata_url: str
    client_id: str
    client_secret_file: str
    callback_url: str
    username_claim: str = "sub"
    scope: tuple[str, ...] = ("openid",)


@dataclass(frozen=True)
class HubConfig:
    """Everything that differs between the local training hub and the factory hub."""

    profile: str  # local | factory
    base: Path  # the folder relative paths are taken from (the config file's folder)
    bind_url: str = "http://127.0.0.1:8000"
    state_dir: str = "build/hub"
    db_url: str = ""  # empty: SQLite in the state folder
    ssl_cert: str = ""
    ssl_key: str = ""
    cookie_secret_file: str = "secrets/cookie_secret"
    proxy_token_file: str = "secrets/proxy_token"
    concurrent_spawn_limit: int = 10
    auth: str = "shared-password"  # shared-password | oidc | none (tests only)
    password_file: str = "secrets/passwords.txt"
    oidc: Oidc | None = None
    instructors: tuple[str, ...] = ()
    learners: tuple[str, ...] = ()
    allowed_groups: tuple[str, ...] = ()
    spawner: str = "local"  # local | slurm
    start_timeout: int = 120
    http_timeout: int = 60
    profiles: tuple[SpawnProfile, ...] = ()
    course_id: str = "aifkit"
    course_root: str = "."
    exchange: str = ""  # empty: exchange/ in the state folder
    release: tuple[str, ...] | str = "all"
    culler_timeout: int = 3600
    culler_every: int = 300
    formgrader_port: int = 0  # 0: picked by apply from the bind port
    extra_env: dict[str, str] = field(default_factory=dict)

    def path(self, value: str) -> Path:
        """A configured path: absolute as given, else inside the state folder."""
        path = Path(value)
        return path if path.is_absolute() else self.state / path

    @property
    def state(self) -> Path:
        path = Path(self.state_dir)
        return path if path.is_absolute() else self.base / path

    @property
    def course(self) -> Path:
        path = Path(self.course_root)
        return path if path.is_absolute() else self.base / path

    @property
    def exchange_root(self) -> Path:
        return Path(self.exchange) if self.exchange else self.state / "exchange"

    @property
    def users(self) -> tuple[str, ...]:
        return self.instructors + self.learners


_TOP = {f for f in HubConfig.__dataclass_fields__ if f not in ("base",)}


def _expect(where: str, value: Any, kind: type | tuple[type, ...], what: str) -> Any:
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise HubConfigError(f"{where}: expected {what}, got {value!r}")
    return value


def _names(where: str, value: Any) -> tuple[str, ...]:
    _expect(where, value, list, "a list of names")
    for item in value:
        _expect(where, item, str, "a list of names")
    return tuple(value)


def parse(data: Any, *, source: str, base: Path) -> HubConfig:
    """Typed settings from parsed YAML; every unknown key or wrong type is an error."""
    _expect(source, data, dict, "a mapping of settings")
    unknown = sorted(set(data) - _TOP)
    if unknown:
        raise HubConfigError(
            f"{source}: unknown key(s) {', '.join(unknown)}; known: {sorted(_TOP)}"
        )
    values: dict[str, Any] = {}
    for key, value in data.items():
        where = f"{source}: {key}"
        default = HubConfig.__dataclass_fields__[key].default
        if key in ("instructors", "learners", "allowed_groups"):
            values[key] = _names(where, value)
        elif key == "release":
            values[key] = value if value == "all" else _names(where, value)
        elif key == "profiles":
            values[key] = tuple(_profile(f"{where}[{i}]", p) for i, p in enumerate(value or []))
        elif key == "oidc":
            values[key] = _oidc(where, value) if value else None
        elif key == "extra_env":
            values[key] = {
                str(k): str(v) for k, v in (_expect(where, value, dict, "a mapping")).items()
            }
        elif isinstance(default, int):
            values[key] = _expect(where, value, int, "a whole number")
        else:
            values[key] = _expect(where, value, str, "text")
    config = HubConfig(base=base, **values)
    _check(config, source)
    return config


def _profile(where: str, data: Any) -> SpawnProfile:
    _expect(where, data, dict, "a mapping")
    allowed = set(SpawnProfile.__dataclass_fields__)
    unknown = sorted(set(data) - allowed)
    if unknown or not {"key", "display", "partition"} <= set(data):
        raise HubConfigError(f"{where}: needs key, display, partition; unknown {unknown}")
    return SpawnProfile(**data)


def _oidc(where: str, data: Any) -> Oidc:
    _expect(where, data, dict, "a mapping")
    fields = set(Oidc.__dataclass_fields__)
    unknown = sorted(set(data) - fields)
    if unknown:
        raise HubConfigError(f"{where}: unknown key(s) {', '.join(unknown)}")
    if "scope" in data:
        data = {**data, "scope": _names(f"{where}.scope", data["scope"])}
    try:
        return Oidc(**data)
    except TypeError as error:
        raise HubConfigError(f"{where}: {error}") from None


def _check(config: HubConfig, source: str) -> None:
    if config.profile not in ("local", "factory"):
        raise HubConfigError(f"{source}: profile must be local or factory, not {config.profile!r}")
    if config.auth not in ("shared-password", "oidc", "none"):
        raise HubConfigError(f"{source}: auth must be shared-password, oidc or none")
    if config.auth == "oidc" and config.oidc is None:
        raise HubConfigError(f"{source}: auth is oidc but the oidc: section is missing")
    if config.spawner not in ("local", "slurm"):
        raise HubConfigError(f"{source}: spawner must be local or slurm, not {config.spawner!r}")
    if config.spawner == "slurm" and not config.profiles:
        raise HubConfigError(f"{source}: the slurm spawner needs at least one entry in profiles")
    if not config.instructors:
        raise HubConfigError(f"{source}: instructors: name at least one instructor")
    overlap = set(config.instructors) & set(config.learners)
    if overlap:
        raise HubConfigError(f"{source}: {sorted(overlap)} are both instructors and learners")


def load(path: Path, *, base: Path | None = None) -> HubConfig:
    """Read ``path``; relative paths in it are taken from ``base`` (default: the file's folder)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise HubConfigError(f"{path}: cannot read the hub configuration: {error}") from None
    except yaml.YAMLError as error:
        raise HubConfigError(f"{path}: not valid YAML: {error}") from None
    return parse(data, source=str(path), base=path.resolve().parent if base is None else base)
