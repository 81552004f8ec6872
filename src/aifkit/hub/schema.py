"""The hub's configuration as data: a YAML file per profile, checked into typed settings.

``hub-config/<profile>/config.yml`` says what the hub is (where it listens, who may log in and
how, how servers start, the course it serves); ``apply.py`` turns it into JupyterHub settings.
Every problem names the key and says what is expected.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BeforeValidator, Field, model_validator

from aifkit.course import site as site_mod
from aifkit.course.site import Site, SlurmTime, time_to_minutes
from aifkit.errors import AifkitError
from aifkit.models import Items, Model, validate


class HubConfigError(AifkitError):
    """The hub configuration file is missing, malformed, or asks for something impossible."""


def _number_as_text(raw: object) -> object:
    """An environment value written as a YAML number (``OMP_NUM_THREADS: 4``) is its text."""
    return str(raw) if isinstance(raw, int | float) and not isinstance(raw, bool) else raw


UNIX_NAME = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
Names = Annotated[Items[str], Field(description="a list of names")]
EnvText = Annotated[str, BeforeValidator(_number_as_text)]


class SpawnProfile(Model):
    """One choice on the factory's spawn page: a SLURM allocation for a learner's server."""

    key: str
    display: str
    partition: str
    cpus: int = Field(default=4, ge=1, description="a whole number of cores >= 1")
    memory_gb: int = Field(default=16, ge=1, description="a whole number of GB >= 1")
    gpus: int = Field(default=0, ge=0, description="a whole number of GPUs >= 0")
    time: SlurmTime = "02:00:00"
    reservation: str = Field(
        default="",
        pattern=r"^([A-Za-z0-9_.-]{1,64})?$",
        description="a SLURM reservation's name (letters, digits, _ . -), e.g. a class's nodes",
    )
    qos: str = Field(
        default="",
        pattern=r"^([A-Za-z0-9_.-]{1,64})?$",
        description="a SLURM QOS name (letters, digits, _ . -); empty: the account's default",
    )
    extra: str = ""  # extra #SBATCH options, e.g. "--begin=now+1hour" in a test


class Oidc(Model):
    """OIDC login through GenericOAuthenticator; the username is a stable claim, never email.

    ``issuer`` is the provider's issuer URL: its discovery document
    (``<issuer>/.well-known/openid-configuration``) gives the endpoints at hub start, and
    ``aifkit hub check`` verifies scopes and claims against it. Endpoints given here win over
    the document's. ``groups_claim`` is the userinfo claim holding the user's groups at the
    provider; the hub's groups follow it at every login. Members of ``instructor_groups`` reach
    the formgrader. ``authorize_params`` go on every authorization request (a provider that
    insists on a ``nonce`` in the code flow gets one here).
    """

    issuer: str = ""
    authorize_url: str = ""
    token_url: str = ""
    userdata_url: str = ""
    client_id: str
    client_secret_file: str
    callback_url: str
    username_claim: str = "sub"
    scope: Names = ("openid",)
    groups_claim: str = Field(
        default="groups", pattern=r"^[A-Za-z0-9_:.-]+$", description="a claim name"
    )
    instructor_groups: Names = ()
    authorize_params: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _endpoints(self) -> Oidc:
        missing = [
            key for key in ("authorize_url", "token_url", "userdata_url") if not getattr(self, key)
        ]
        if missing and not self.issuer:
            raise ValueError(
                f"oidc: give issuer (its discovery document has the endpoints) or all of "
                f"{', '.join(missing)}"
            )
        return self

    @property
    def discovery_url(self) -> str:
        """Where the provider publishes its metadata ("" without an issuer)."""
        if not self.issuer:
            return ""
        return self.issuer.rstrip("/") + "/.well-known/openid-configuration"


class CourseEntry(Model):
    """One course on the hub: its nbgrader course folder, its instructors and its learners.

    Each course has its own gradebook (in its folder), its own exchange folder (``<exchange>/<id>``,
    nbgrader's layout), its own formgrader service (``/services/<id>/``) and its own groups:
    ``formgrade-<id>`` (instructors) and ``nbgrader-<id>`` (learners), as nbgrader's JupyterHub
    integration names them.
    """

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", description="a course id")
    root: str = "."
    instructors: Names = ()
    learners: Names = ()
    release: Literal["all"] | Names = "all"


class HubConfig(Model):
    """Everything that differs between the local training hub and the factory hub."""

    profile: Literal["local", "factory"] = Field(description="local or factory")
    base: Path = Field(exclude=True)  # the folder relative paths are taken from (the config file's)
    bind_url: str = "http://127.0.0.1:8000"
    state_dir: str = "build/hub"
    db_url: str = ""  # empty: SQLite in the state folder
    ssl_cert: str = ""
    ssl_key: str = ""
    cookie_secret_file: str = "secrets/cookie_secret"
    proxy_token_file: str = "secrets/proxy_token"
    concurrent_spawn_limit: int = 10
    auth: Literal["shared-password", "oidc", "none"] = "shared-password"  # none: tests only
    password_file: str = "secrets/passwords.txt"
    oidc: Oidc | None = None
    instructors: Names = ()
    learners: Names = ()
    allowed_groups: Names = ()
    spawner: Literal["local", "slurm"] = "local"
    # the local spawner: each user's server as their own Unix account (needs root), or all as
    # the hub's own user (``none``: learners are not isolated, said at every start)
    isolation: Literal["unix-users", "none"] = "unix-users"
    user_prefix: str = Field(
        "jupyter-",
        pattern=r"^[a-z_][a-z0-9_-]{0,15}$",
        description="a Unix name prefix: lowercase letters, digits, _ or -, at most 16",
    )
    start_timeout: int = 120
    http_timeout: int = 60
    profiles: Items[SpawnProfile] = ()
    site: str = Field(
        "",
        description="the site profile (a shipped name or a .yml path from this file's folder) "
        "the spawn profiles must fit; it also charges the jobs to its account",
    )
    course_id: str = "aifkit"
    course_root: str = "."
    courses: Items[CourseEntry] = ()  # several courses; empty: the one course above
    exchange: str = ""  # empty: exchange/ in the state folder
    release: Literal["all"] | Names = "all"
    culler_timeout: int = 3600
    culler_every: int = 300
    formgrader_port: int = 0  # 0: picked by apply from the bind port
    extra_env: dict[str, EnvText] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> HubConfig:
        problems: list[str] = []
        if self.auth == "oidc" and self.oidc is None:
            problems.append("auth is oidc but the oidc: section is missing")
        if self.oidc is not None and self.allowed_groups:
            outside = [g for g in self.oidc.instructor_groups if g not in self.allowed_groups]
            if outside:
                problems.append(
                    f"oidc.instructor_groups: {outside} are not in allowed_groups, so their "
                    "members could not log in: add them to allowed_groups"
                )
        if self.spawner == "slurm" and not self.profiles:
            problems.append("the slurm spawner needs at least one entry in profiles")
        problems += self._courses_problems()
        problems += self._account_problems()
        problems += self._profiles_fit_the_site()
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def _courses_problems(self) -> list[str]:
        """Every course has an instructor, no one both teaches and learns, no shared gradebook."""
        if self.courses and {"course_id", "course_root", "instructors", "learners", "release"} & (
            self.model_fields_set
        ):
            return [
                "courses: give course_id, course_root, instructors, learners and release either "
                "at the top (one course) or in each entry of courses, not both"
            ]
        problems = []
        for index, course in enumerate(self.course_list):
            where = f"courses[{index}] ({course.id}): " if self.courses else ""
            if not course.instructors:
                problems.append(f"{where}instructors: name at least one instructor")
        both = set(self.instructors_all) & set(self.learners_all)
        if both:
            problems.append(
                f"learners: {sorted(both)} are both instructors and learners (a learner in an "
                "instructor group would see every learner's work and the solutions)"
            )
        seen: set[str] = set()
        roots: dict[Path, str] = {}
        for course in self.course_list:
            if course.id in seen:
                problems.append(f"courses: the id {course.id!r} is used twice")
            seen.add(course.id)
            root = self.course_path(course).resolve()
            if root in roots:
                problems.append(
                    f"courses: {roots[root]!r} and {course.id!r} share the course folder {root}, "
                    "so they would share one gradebook: give each course its own folder"
                )
            roots[root] = course.id
        return problems

    @property
    def isolated(self) -> bool:
        """Does each user's server run as their own Unix account (the local spawner only)?"""
        return self.spawner == "local" and self.isolation == "unix-users"

    def account_name(self, user: str) -> str:
        """The Unix account of hub user ``user``: the prefix, then the name."""
        return self.user_prefix + user

    def instructors_group(self, course: CourseEntry) -> str:
        """The Unix group of a course's instructors: they, and the hub, read its files."""
        return f"{self.user_prefix}{course.id}-instructors"

    def _account_problems(self) -> list[str]:
        """With isolation, every user and course must give a valid Unix name (32 characters)."""
        if not self.isolated:
            return []
        problems = []
        for user in self.users:
            name = self.account_name(user)
            if not UNIX_NAME.fullmatch(name):
                problems.append(
                    f"user {user!r}: its Unix account {name!r} is not a valid name (lowercase "
                    "letters, digits, _ or -, at most 32 characters): rename the user or "
                    "shorten user_prefix"
                )
        for course in self.course_list:
            group = self.instructors_group(course)
            if not UNIX_NAME.fullmatch(group):
                problems.append(
                    f"course {course.id!r}: its instructors' Unix group {group!r} is not a valid "
                    "name (lowercase letters, digits, _ or -, at most 32 characters): shorten "
                    "the course id or user_prefix"
                )
        return problems

    @property
    def course_list(self) -> tuple[CourseEntry, ...]:
        """The hub's courses: ``courses``, else the one course of the top-level keys."""
        if self.courses:
            return self.courses
        return (
            CourseEntry(
                id=self.course_id,
                root=self.course_root,
                instructors=self.instructors,
                learners=self.learners,
                release=self.release,
            ),
        )

    def course_path(self, course: CourseEntry) -> Path:
        """A course's folder (relative paths from this file's folder)."""
        path = Path(course.root)
        return path if path.is_absolute() else self.base / path

    @property
    def instructors_all(self) -> tuple[str, ...]:
        """Every course's instructors, each once, in order."""
        return tuple(dict.fromkeys(n for c in self.course_list for n in c.instructors))

    @property
    def learners_all(self) -> tuple[str, ...]:
        """Every course's learners, each once, in order."""
        return tuple(dict.fromkeys(n for c in self.course_list for n in c.learners))

    def courses_of(self, user: str) -> tuple[CourseEntry, ...]:
        """The courses ``user`` teaches or learns in."""
        return tuple(c for c in self.course_list if user in c.instructors or user in c.learners)

    def _profiles_fit_the_site(self) -> list[str]:
        """Each spawn profile checked as a one-task job against the site, by jobs' own rules."""
        if not self.site or not self.profiles:
            return []
        from aifkit.course import jobs

        try:
            site = self.site_profile()
        except AifkitError as error:
            return [f"site: {error}"]
        problems = []
        for index, p in enumerate(self.profiles):
            spec = jobs.JobSpec(
                command=("aifkit-singleuser",),
                tier="gpu" if p.gpus else "cpu-tiny",
                job_name=f"aifkit-hub-{p.key}",
                procs_per_node=1,
                gpus_per_node=p.gpus,
                cpus_per_task=p.cpus,
                time_minutes=time_to_minutes(p.time),
                partition=p.partition,
                account=site.account,
                signal_lead_s=0,
            )
            try:
                jobs.validate(spec, site)
            except AifkitError as error:
                problems.append(f"profiles[{index}] ({p.key}): {error}")
                continue
            memory = site.partition(p.partition).memory_per_node_gb
            if memory and p.memory_gb > memory:
                problems.append(
                    f"profiles[{index}] ({p.key}): memory_gb {p.memory_gb}: partition "
                    f"{p.partition} nodes have {memory} GB"
                )
        return problems

    @property
    def site_ref(self) -> str:
        """``site`` as the spawner loads it: a name, or a .yml path made absolute."""
        if self.site.endswith((".yml", ".yaml")) and not Path(self.site).is_absolute():
            return str(self.base / self.site)
        return self.site

    def site_profile(self) -> Site:
        """The configured site profile (a path is taken from this file's folder)."""
        return site_mod.load(self.site_ref)

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
        return self.instructors_all + self.learners_all


def parse(data: Any, *, source: str, base: Path) -> HubConfig:
    """Typed settings from parsed YAML; every unknown key or wrong type is an error."""
    if isinstance(data, dict):
        data = {**data, "base": base}
    return validate(HubConfig, data, source=source, error=HubConfigError)


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
