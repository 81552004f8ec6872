"""Site profiles: the account, partitions, limits and scratch of one factory, as data.

Notebooks and job templates read the site from here instead of hard-coding it, so the same
notebook fits another factory by choosing another profile: ``AIFKIT_SITE=<name>`` picks a
profile shipped in ``aifkit/data/sites/`` and ``AIFKIT_SITE=/path/to/site.yml`` a site's own.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from aifkit.errors import AifkitError

SITES_DIR = Path(str(resources.files("aifkit") / "data" / "sites"))  # package data
DEFAULT_SITE = "local"
ENV_SITE = "AIFKIT_SITE"
_SITE_KEYS = {
    "name",
    "description",
    "account",
    "default_partition",
    "scratch",
    "node_local_scratch",
    "partitions",
}
_OPTIONAL_SITE_KEYS = frozenset(
    {"templates"}
)  # a folder of batch-script templates replacing ours by name
_PARTITION_KEYS = {
    "description",
    "max_time",
    "max_nodes",
    "cpus_per_node",
    "gpus_per_node",
    "memory_per_node_gb",
    "qos",
}
_TIME = re.compile(r"^(?:(?P<days>\d+)-)?(?P<h>\d{1,2}):(?P<m>\d{2}):(?P<s>\d{2})$")


class SiteError(AifkitError):
    """A site profile is missing or malformed."""


def time_to_minutes(text: str) -> int:
    """SLURM's [D-]HH:MM:SS as whole minutes (rounded up): '1-00:00:00' -> 1440."""
    match = _TIME.match(text.strip())
    if not match:
        raise SiteError(f"time {text!r} is not in SLURM's D-HH:MM:SS or HH:MM:SS form")
    days = int(match["days"] or 0)
    seconds = ((days * 24 + int(match["h"])) * 60 + int(match["m"])) * 60 + int(match["s"])
    return -(-seconds // 60)


@dataclass(frozen=True)
class Partition:
    """One SLURM partition and its limits."""

    name: str
    description: str
    max_time: str
    max_nodes: int
    cpus_per_node: int
    gpus_per_node: int
    memory_per_node_gb: int
    qos: tuple[str, ...]

    @property
    def max_minutes(self) -> int:
        return time_to_minutes(self.max_time)


@dataclass(frozen=True)
class Site:
    """A factory as its users see it: where to run, for how long, on whose account."""

    name: str
    description: str
    account: str
    default_partition: str
    scratch: str
    node_local_scratch: str
    partitions: Mapping[str, Partition]
    templates: str = ""  # a folder whose batch-script templates replace the packaged ones by name

    def partition(self, name: str | None = None) -> Partition:
        """The named partition (default: the site's default), or a SiteError listing them."""
        key = name or self.default_partition
        if key not in self.partitions:
            raise SiteError(
                f"site {self.name!r} has no partition {key!r} (has: {', '.join(self.partitions)})"
            )
        return self.partitions[key]


def _check_keys(
    where: str, data: Mapping[str, Any], required: set[str], optional: frozenset[str] = frozenset()
) -> None:
    unknown = sorted(set(data) - required - optional)
    missing = sorted(required - set(data))
    if unknown or missing:
        raise SiteError(f"{where}: unknown keys {unknown}, missing keys {missing}")


def _partition(where: str, name: str, data: Any) -> Partition:
    if not isinstance(data, dict):
        raise SiteError(f"{where}: expected a mapping, got {data!r}")
    _check_keys(where, data, _PARTITION_KEYS)
    for key in ("max_nodes", "cpus_per_node", "gpus_per_node", "memory_per_node_gb"):
        if not isinstance(data[key], int) or isinstance(data[key], bool) or data[key] < 0:
            raise SiteError(f"{where}.{key}: expected a whole number >= 0, got {data[key]!r}")
    time_to_minutes(str(data["max_time"]))
    return Partition(
        name=name,
        description=str(data["description"]),
        max_time=str(data["max_time"]),
        max_nodes=data["max_nodes"],
        cpus_per_node=data["cpus_per_node"],
        gpus_per_node=data["gpus_per_node"],
        memory_per_node_gb=data["memory_per_node_gb"],
        qos=tuple(data["qos"] or ()),
    )


def parse(data: Any, *, source: str) -> Site:
    """Build a Site from loaded YAML, raising SiteError that names the file and key."""
    if not isinstance(data, dict):
        raise SiteError(f"{source}: expected a mapping at the top level")
    _check_keys(source, data, _SITE_KEYS, _OPTIONAL_SITE_KEYS)
    partitions = data["partitions"]
    if not isinstance(partitions, dict) or not partitions:
        raise SiteError(f"{source}: partitions must be a non-empty mapping")
    parsed = {
        name: _partition(f"{source}: partitions.{name}", name, p) for name, p in partitions.items()
    }
    site = Site(
        name=str(data["name"]),
        description=str(data["description"]),
        account=str(data["account"] or ""),
        default_partition=str(data["default_partition"]),
        scratch=str(data["scratch"]),
        node_local_scratch=str(data["node_local_scratch"]),
        partitions=parsed,
        templates=_templates_folder(data.get("templates"), source),
    )
    site.partition()  # the default partition must exist
    return site


def _templates_folder(value: Any, source: str) -> str:
    """The site's templates folder: ``~`` expanded, relative to the profile's own folder."""
    if not value:
        return ""
    folder = Path(str(value)).expanduser()
    return str(folder if folder.is_absolute() else Path(source).parent / folder)


def available() -> tuple[str, ...]:
    """Names of the profiles shipped with aifkit."""
    return tuple(sorted(p.stem for p in SITES_DIR.glob("*.yml")))


@lru_cache(maxsize=16)
def _load_file(path: Path) -> Site:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise SiteError(f"{path}: cannot read site profile: {error}") from error
    return parse(data, source=str(path))


def load(name: str | None = None) -> Site:
    """The site profile ``name`` (a shipped name or a .yml path); default: $AIFKIT_SITE or 'local'."""
    chosen = name or os.environ.get(ENV_SITE) or DEFAULT_SITE
    path = Path(chosen) if chosen.endswith((".yml", ".yaml")) else SITES_DIR / f"{chosen}.yml"
    if not path.is_file():
        raise SiteError(
            f"no site profile {chosen!r}: use one of {', '.join(available())} or a path to a .yml"
        )
    return _load_file(path.resolve())
