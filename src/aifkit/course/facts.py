"""Facts about the AI Factory, with their units and sources: the one place for factory numbers.

Notebooks never write ``989e12`` or ``2100`` themselves; they ask this module::

    from aifkit.course import facts
    peak = facts.value("h100_bf16_dense")          # 9.89e14 (FLOP/s)
    gpus = facts.get("factory_accelerators")        # Fact(name=..., value=2100.0, unit=..., ...)
    print(facts.describe("factory_accelerators", "h100_bf16_dense"))

The data live in ``aifkit/data/facts.yml`` (package data). Each entry is either a ``fact``
(stated by a vendor, the site or a publication) or an ``assumption`` (our estimate; a site
replaces it with its own number), so a learner can always tell which is which.

A site profile may replace facts with its own values (``facts:`` in
``aifkit/data/sites/<site>.yml``). They apply when the learner selects the site with
``AIFKIT_SITE``; ``describe()`` then names the site and its source. With no site selected the
reference factory of facts.yml is described.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Hashable, Mapping
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Final, Literal

import yaml
from pydantic import AfterValidator, Field, StringConstraints, model_validator

from aifkit import resources
from aifkit.course import site
from aifkit.course.site import PositiveNumber
from aifkit.errors import FactsError
from aifkit.models import Model, Text, name_entries, validate

Kind = Literal["fact", "assumption"]
KINDS: Final[tuple[str, ...]] = ("fact", "assumption")


def _identifier(name: str) -> str:
    if not name.isidentifier():
        raise ValueError(f"fact name {name!r} must be a snake_case identifier")
    return name


class Fact(Model):
    """One number about the factory, with what it measures and where it comes from."""

    name: str = Field(default="", exclude=True)  # its key in the file, filled in by the loader
    value: PositiveNumber
    unit: Text = Field(description="a unit")
    source: Text = Field(description="a source (a URL or a document name)")
    kind: Kind
    note: Annotated[str, StringConstraints(strip_whitespace=True)] = ""
    site: str = Field(default="", exclude=True)  # the site profile the value comes from, if any

    @model_validator(mode="after")
    def _assumptions_say_why(self) -> Fact:
        if self.kind == "assumption" and not self.note:
            raise ValueError("an assumption needs a note saying what is assumed and why")
        return self

    @property
    def is_assumption(self) -> bool:
        """True for our own estimates, which a site should check against its machine."""
        return self.kind == "assumption"

    def __str__(self) -> str:
        label = " [assumption]" if self.is_assumption else ""
        where = f" (site {self.site})" if self.site else ""
        return f"{self.name} = {self.value:g} {self.unit}{label}{where}"


class FactsFile(Model):
    """The facts file: ``facts:``, a mapping of fact name -> fact."""

    facts: dict[Annotated[str, AfterValidator(_identifier)], Fact] = Field(
        min_length=1, description="a top-level 'facts:' mapping of name -> fact, with one at least"
    )

    @model_validator(mode="before")
    @classmethod
    def _name_the_facts(cls, data: Any) -> Any:
        return name_entries(data, "facts")

    @model_validator(mode="after")
    def _no_site_values(self) -> FactsFile:
        written = [name for name, fact in self.facts.items() if fact.site]
        if written:
            raise ValueError(
                f"{', '.join(written)}: 'site' is not written in facts.yml; a site's own values "
                "go under 'facts:' in its site profile"
            )
        return self


def data_path() -> Path:
    """Where the packaged facts file lives."""
    return resources.data_path("facts.yml")


try:  # libyaml's parser reads the file ten times faster: this runs at the start of every kernel
    from yaml import CSafeLoader as _SafeLoader
except ImportError:  # a PyYAML built without libyaml
    from yaml import SafeLoader as _SafeLoader  # type: ignore[assignment]


class _UniqueKeyLoader(_SafeLoader):
    """A safe YAML loader that refuses duplicate keys (PyYAML silently keeps the last one)."""


def _construct_unique_mapping(loader: _SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Hashable] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise FactsError(
                f"duplicate key {key!r} at line {key_node.start_mark.line + 1}: "
                "each fact (and each field of a fact) may appear only once"
            )
        seen.add(key)
    return loader.construct_mapping(node)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping
)


def load(path: str | Path | None = None) -> Mapping[str, Fact]:
    """Read and check a facts file (default: the packaged one); uncached, read-only result."""
    target = data_path() if path is None else Path(path)
    try:
        text = target.read_text(encoding="utf-8")
    except OSError as exc:
        raise FactsError(
            f"cannot read the facts file {target}: {exc.strerror or exc}; "
            "reinstall aifkit (the file is package data)"
        ) from exc
    try:
        document = yaml.load(text, Loader=_UniqueKeyLoader)  # a safe loader
    except yaml.YAMLError as exc:
        raise FactsError(f"{target} is not valid YAML: {exc}") from exc
    except FactsError as exc:
        raise FactsError(f"{target}: {exc}") from None
    return MappingProxyType(validate(FactsFile, document, source=target, error=FactsError).facts)


@lru_cache(maxsize=1)
def all_facts() -> Mapping[str, Fact]:
    """Every fact of the packaged file, by name (read once, then cached)."""
    return load()


def names() -> tuple[str, ...]:
    """The names of every fact, sorted."""
    return tuple(sorted(all_facts()))


def site_facts(profile: site.Site) -> Mapping[str, Fact]:
    """The facts ``profile`` replaces, as Facts naming the site; FactsError for an unknown name
    or a unit other than facts.yml's."""
    reference = all_facts()
    replaced: dict[str, Fact] = {}
    problems = []
    for name, override in profile.facts.items():
        known = reference.get(name)
        if known is None:
            problems.append(f"facts.{name}: no such fact in facts.yml ({_close_matches(name)})")
            continue
        if override.unit and override.unit != known.unit:
            problems.append(
                f"facts.{name}: unit {override.unit!r} is not facts.yml's {known.unit!r}: "
                f"write the value in {known.unit}"
            )
            continue
        kind = profile.provenance(f"facts.{name}")
        why = profile.assumptions.get(f"facts.{name}", "")
        replaced[name] = Fact(
            name=name,
            value=override.value,
            unit=known.unit,
            source=profile.fact_source(name),
            kind=kind,
            note="; ".join(part for part in (override.note or known.note, why) if part),
            site=profile.name,
        )
    if problems:
        raise FactsError(f"site profile {profile.name!r}: " + "; ".join(problems))
    return MappingProxyType(replaced)


@lru_cache(maxsize=8)
def _selected_site_facts(chosen: str) -> Mapping[str, Fact]:
    try:
        profile = site.load(chosen)
    except site.SiteError as error:
        raise FactsError(f"{site.ENV_SITE}={chosen}: {error}") from error
    return site_facts(profile)


def selected_site_facts() -> Mapping[str, Fact]:
    """The facts the site chosen with $AIFKIT_SITE replaces; empty when none is chosen."""
    chosen = os.environ.get(site.ENV_SITE, "").strip()
    return _selected_site_facts(chosen) if chosen else MappingProxyType({})


def current() -> Mapping[str, Fact]:
    """Every fact as the learner's site sees it: facts.yml, with the selected site's values."""
    return MappingProxyType({**all_facts(), **selected_site_facts()})


def _close_matches(name: str) -> str:
    known = all_facts()
    query = str(name).strip().lower()
    containing = [known_name for known_name in sorted(known) if query and query in known_name]
    similar = difflib.get_close_matches(query, list(known), n=5, cutoff=0.5)
    close = list(dict.fromkeys(containing + similar))[:5]
    return f"did you mean {', '.join(close)}?" if close else "see aifkit.course.facts.names()"


def get(name: str) -> Fact:
    """The fact called ``name`` (the selected site's value when it has one); FactsError naming
    close matches when there is none."""
    known = all_facts()
    if isinstance(name, str) and name in known:
        return selected_site_facts().get(name) or known[name]
    raise FactsError(f"unknown fact {name!r}: {_close_matches(name)} (facts live in {data_path()})")


def value(name: str) -> float:
    """The value of the fact called ``name``, in the unit the fact states (SI base units);
    the selected site's value when it has one."""
    return get(name).value


def describe(*fact_names: str) -> str:
    """One line per fact: value, unit, fact/assumption and source; for 'On the factory' cells."""
    selected = [get(name) for name in fact_names] if fact_names else list(current().values())
    lines = []
    for fact in selected:
        label = "ASSUMPTION" if fact.is_assumption else "fact"
        if fact.site:
            label += f" of site {fact.site}"
        note = f" - {fact.note}" if fact.note else ""
        lines.append(f"{fact.name} = {fact.value:g} {fact.unit}{note} [{label}; {fact.source}]")
    return "\n".join(lines)
