"""Facts about the AI Factory, with their units and sources: the one place for factory numbers.

Notebooks never write ``989e12`` or ``2100`` themselves; they ask this module::

    from aifkit.course import facts
    peak = facts.value("h100_bf16_dense")          # 9.89e14 (FLOP/s)
    gpus = facts.get("factory_accelerators")        # Fact(name=..., value=2100.0, unit=..., ...)
    print(facts.describe("factory_accelerators", "h100_bf16_dense"))

The data live in ``aifkit/data/facts.yml`` (package data). Each entry is either a ``fact``
(stated by a vendor, the site or a publication) or an ``assumption`` (our estimate; a site
replaces it with its own number), so a learner can always tell which is which.
"""

from __future__ import annotations

import difflib
from collections.abc import Hashable, Mapping
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Final, Literal

import yaml
from pydantic import AfterValidator, BeforeValidator, Field, StringConstraints, model_validator

from aifkit import resources
from aifkit.errors import FactsError
from aifkit.models import Model, Text, name_entries, validate

Kind = Literal["fact", "assumption"]
KINDS: Final[tuple[str, ...]] = ("fact", "assumption")


def _number_from_text(raw: object) -> object:
    """YAML 1.1 reads 989e12 (no dot in the mantissa) as text: read it as the number it spells."""
    if isinstance(raw, str):
        try:
            return float(raw)
        except ValueError:
            return raw
    return raw


def _identifier(name: str) -> str:
    if not name.isidentifier():
        raise ValueError(f"fact name {name!r} must be a snake_case identifier")
    return name


PositiveNumber = Annotated[
    float,
    BeforeValidator(_number_from_text),
    Field(
        gt=0,
        allow_inf_nan=False,
        description="a positive finite number (write a number such as 989e12)",
    ),
]


class Fact(Model):
    """One number about the factory, with what it measures and where it comes from."""

    name: str = Field(default="", exclude=True)  # its key in the file, filled in by the loader
    value: PositiveNumber
    unit: Text = Field(description="a unit")
    source: Text = Field(description="a source (a URL or a document name)")
    kind: Kind
    note: Annotated[str, StringConstraints(strip_whitespace=True)] = ""

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
        return f"{self.name} = {self.value:g} {self.unit}{label}"


class FactsFile(Model):
    """The facts file: ``facts:``, a mapping of fact name -> fact."""

    facts: dict[Annotated[str, AfterValidator(_identifier)], Fact] = Field(
        min_length=1, description="a top-level 'facts:' mapping of name -> fact, with one at least"
    )

    @model_validator(mode="before")
    @classmethod
    def _name_the_facts(cls, data: Any) -> Any:
        return name_entries(data, "facts")


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


def get(name: str) -> Fact:
    """The fact called ``name``; FactsError naming close matches when there is none."""
    known = all_facts()
    try:
        return known[name]
    except (KeyError, TypeError):
        pass
    query = str(name).strip().lower()
    containing = [known_name for known_name in sorted(known) if query and query in known_name]
    similar = difflib.get_close_matches(query, list(known), n=5, cutoff=0.5)
    close = list(dict.fromkeys(containing + similar))[:5]
    hint = f"did you mean {', '.join(close)}?" if close else "see aifkit.course.facts.names()"
    raise FactsError(f"unknown fact {name!r}: {hint} (facts live in {data_path()})")


def value(name: str) -> float:
    """The value of the fact called ``name``, in the unit the fact states (SI base units)."""
    return get(name).value


def describe(*fact_names: str) -> str:
    """One line per fact: value, unit, fact/assumption and source; for 'On the factory' cells."""
    selected = [get(name) for name in fact_names] if fact_names else list(all_facts().values())
    lines = []
    for fact in selected:
        label = "ASSUMPTION" if fact.is_assumption else "fact"
        note = f" - {fact.note}" if fact.note else ""
        lines.append(f"{fact.name} = {fact.value:g} {fact.unit}{note} [{label}; {fact.source}]")
    return "\n".join(lines)
