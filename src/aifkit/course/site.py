"""Site profiles: the account, partitions, limits and scratch of one factory, as data.

Notebooks and job templates read the site from here instead of hard-coding it, so the same
notebook fits another factory by choosing another profile: ``AIFKIT_SITE=<name>`` picks a
profile shipped in ``aifkit/data/sites/`` and ``AIFKIT_SITE=/path/to/site.yml`` a site's own.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BeforeValidator, Field, model_validator

from aifkit import resources
from aifkit.errors import AifkitError
from aifkit.models import Items, Model, name_entries, validate

SITES_DIR = resources.data_path("sites")
DEFAULT_SITE = "local"
ENV_SITE = "AIFKIT_SITE"
_TIME = re.compile(r"^(?:(?P<days>\d+)-)?(?P<h>\d{1,2}):(?P<m>\d{2}):(?P<s>\d{2})$")


class SiteError(AifkitError):
    """A site profile is missing or malformed."""


def _seconds(text: str) -> int | None:
    match = _TIME.match(text.strip())
    if not match:
        return None
    days = int(match["days"] or 0)
    return ((days * 24 + int(match["h"])) * 60 + int(match["m"])) * 60 + int(match["s"])


def _time_form(text: str) -> str:
    if _seconds(text) is None:
        raise ValueError(f"time {text!r} is not in SLURM's D-HH:MM:SS or HH:MM:SS form")
    return text


def time_to_minutes(text: str) -> int:
    """SLURM's [D-]HH:MM:SS as whole minutes (rounded up): '1-00:00:00' -> 1440."""
    seconds = _seconds(text)
    if seconds is None:
        raise SiteError(f"time {text!r} is not in SLURM's D-HH:MM:SS or HH:MM:SS form")
    return -(-seconds // 60)


Count = Annotated[int, Field(ge=0, description="a whole number >= 0")]
# Quoted in the file: YAML 1.1 reads an unquoted 1:00:00 as the number 3600.
SlurmTime = Annotated[
    str, AfterValidator(_time_form), Field(description="a quoted SLURM time such as '2-00:00:00'")
]


class Partition(Model):
    """One SLURM partition and its limits."""

    name: str = Field(default="", exclude=True)  # its key under ``partitions``, filled in by Site
    description: str
    max_time: SlurmTime
    max_nodes: Count
    cpus_per_node: Count
    gpus_per_node: Count
    memory_per_node_gb: Count
    qos: Items[str]
    gpu_model: str = ""  # e.g. "NVIDIA A100 40GB"; empty: not stated
    gpu_memory_gb: Count = 0  # memory of ONE GPU; 0: not stated (notebooks fall back to facts.yml)

    @property
    def max_minutes(self) -> int:
        return time_to_minutes(self.max_time)


class StorageTier(Model):
    """One storage tier a user writes to: where it is, how much it holds, how long files stay."""

    name: str = Field(default="", exclude=True)  # its key under ``storage``, filled in by Site
    description: str
    path: str
    quota_gb: Count = Field(description="a whole number of GB >= 0 (0: set per project)")
    files_quota: Count = 0  # 0: no file-count quota stated
    purge_days: Count = 0  # 0: files are not purged
    backed_up: bool = False


def _number_from_text(raw: object) -> object:
    """YAML 1.1 reads 989e12 (no dot in the mantissa) as text: read it as the number it spells."""
    if isinstance(raw, str):
        try:
            return float(raw)
        except ValueError:
            return raw
    return raw


PositiveNumber = Annotated[
    float,
    BeforeValidator(_number_from_text),
    Field(
        gt=0,
        allow_inf_nan=False,
        description="a positive finite number (write a number such as 989e12)",
    ),
]


class FactOverride(Model):
    """The site's own value for a fact of facts.yml (``gpus_per_node``...), in that fact's unit.

    Whether it is a fact or an assumption follows the profile's style: a fact unless
    ``assumptions`` lists ``facts.<name>``. aifkit.course.facts checks the name and unit.
    """

    name: str = Field(default="", exclude=True)  # its key under ``facts``, filled in by Site
    value: PositiveNumber
    unit: str = ""  # when given, it must be the unit facts.yml states for the fact
    source: str = ""  # empty: the profile's source
    note: str = ""


class Qos(Model):
    """One SLURM quality of service: a time limit and a priority on top of a partition."""

    name: str = Field(default="", exclude=True)  # its key under ``qos``, filled in by Site
    description: str
    max_time: SlurmTime
    max_nodes: Count = 0  # 0: the partition's own limit applies


Provenance = Literal["fact", "assumption"]


class Site(Model):
    """A factory as its users see it: where to run, for how long, on whose account.

    ``source`` names the site documentation its values come from; every value listed under
    ``assumptions`` (a dotted key such as ``partitions.gpu.max_nodes``, with why) is our
    estimate instead, so a learner can tell a documented limit from a guess.
    """

    name: str
    description: str
    account: str
    default_partition: str
    scratch: str
    node_local_scratch: str
    partitions: dict[str, Partition] = Field(
        min_length=1, description="a non-empty mapping of partition name -> limits"
    )
    templates: str = Field(
        "", description="a folder whose batch-script templates replace the packaged ones by name"
    )
    source: str = ""
    assumptions: dict[str, str] = Field(
        default_factory=dict, description="a mapping of dotted key -> why the value is assumed"
    )
    storage: dict[str, StorageTier] = Field(default_factory=dict)
    qos: dict[str, Qos] = Field(default_factory=dict)
    facts: dict[str, FactOverride] = Field(
        default_factory=dict,
        description="a mapping of fact name (of facts.yml) -> the site's value, unit and source",
    )

    @model_validator(mode="before")
    @classmethod
    def _name_the_partitions(cls, data: Any) -> Any:
        for key in ("partitions", "storage", "qos", "facts"):
            data = name_entries(data, key)
        return data

    @model_validator(mode="after")
    def _assumptions_and_qos_exist(self) -> Site:
        problems = [
            f"assumptions: {key!r} names no value of the profile (write e.g. partitions.gpu.max_nodes)"
            for key in self.assumptions
            if not self._has_key(key)
        ]
        problems += [
            f"assumptions.{key}: say why the value is assumed"
            for key, why in self.assumptions.items()
            if not why.strip()
        ]
        if self.qos:
            problems += [
                f"partitions.{part.name}.qos: {name!r} is not under qos (has: {', '.join(self.qos)})"
                for part in self.partitions.values()
                for name in part.qos
                if name not in self.qos
            ]
        problems += [
            f"facts.{fact.name}.source: name where the value comes from (or a profile source)"
            for fact in self.facts.values()
            if not (fact.source.strip() or self.source.strip())
        ]
        if self.assumptions and not self.source:
            problems.append(
                "source: name the documentation the values that are not assumptions come from"
            )
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def _has_key(self, dotted: str) -> bool:
        node: Any = self.model_dump()
        for part in dotted.split("."):
            if not isinstance(node, dict) or part not in node:
                return False
            node = node[part]
        return True

    def provenance(self, dotted: str) -> Provenance:
        """'assumption' when the value at ``dotted`` (or a key above it) is assumed, else 'fact'."""
        if not self._has_key(dotted):
            raise SiteError(f"site {self.name!r} has no value {dotted!r}")
        parts = dotted.split(".")
        prefixes = {".".join(parts[:i]) for i in range(1, len(parts) + 1)}
        return "assumption" if prefixes & self.assumptions.keys() else "fact"

    def fact_source(self, name: str) -> str:
        """Where the site's value for fact ``name`` comes from: its own source, else the profile's."""
        return self.facts[name].source or self.source

    @model_validator(mode="after")
    def _default_partition_exists(self) -> Site:
        try:
            self.partition()
        except SiteError as error:
            raise ValueError(f"default_partition: {error}") from None
        return self

    def partition(self, name: str | None = None) -> Partition:
        """The named partition (default: the site's default), or a SiteError listing them."""
        key = name or self.default_partition
        if key not in self.partitions:
            raise SiteError(
                f"site {self.name!r} has no partition {key!r} (has: {', '.join(self.partitions)})"
            )
        return self.partitions[key]


def parse(data: Any, *, source: str) -> Site:
    """Build a Site from loaded YAML, raising SiteError that names the file and key."""
    site = validate(Site, data, source=source, error=SiteError)
    return site.model_copy(update={"templates": _templates_folder(site.templates, source)})


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
